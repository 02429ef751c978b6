// Package access is the app's reach into customer tenants: it joins the
// per-tenant credentials with the Graph and Key Vault readers into a
// tenant.Access.
package access

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/graph"
	"github.com/tenantsweep/tenantsweep/internal/keyvault"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Credentials hands out one credential per customer tenant. *azauth.Tenants
// satisfies it.
type Credentials interface {
	// Credential returns the credential that signs in to tenantID.
	Credential(tenantID string) (azcore.TokenCredential, error)
	// Forget drops the tenant's credential and its cached tokens.
	Forget(tenantID string)
}

// Access implements tenant.Access.
type Access struct {
	creds Credentials
	graph *graph.Reader
	kv    *keyvault.Reader
	cl    cloud.Cloud
}

var _ tenant.Access = (*Access)(nil)

// New returns an Access that signs in with creds and reads through g and kv,
// all of them for the cloud cl.
func New(creds Credentials, g *graph.Reader, kv *keyvault.Reader, cl cloud.Cloud) *Access {
	return &Access{creds: creds, graph: g, kv: kv, cl: cl}
}

// SignIn obtains (or reuses) a Graph token in the tenant. It asks with CAE
// enabled, as the Graph and Key Vault SDKs do, because MSAL keeps CAE and
// non-CAE tokens in separate caches: the token it gets is the one the Graph
// reader then reuses.
func (a *Access) SignIn(ctx context.Context, tenantID string) error {
	cred, err := a.creds.Credential(tenantID)
	if err != nil {
		return err
	}
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{a.cl.GraphScope()}, EnableCAE: true})
	if err == nil {
		return nil
	}
	var oe *outcome.Error
	switch {
	case errors.As(err, &oe):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return outcome.New(outcome.Timeout, "signing in to the tenant did not finish within its time budget", err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("sign in: %w", err)
	default:
		// Credentials are expected to classify their faults; an error that
		// is not classified carries Entra ID's text, which is not passed on.
		return outcome.New(outcome.UpstreamError, "signing in to the tenant failed", err)
	}
}

// Organization reads the tenant's display name and number of users.
func (a *Access) Organization(ctx context.Context, tenantID string) (tenant.GraphInfo, error) {
	cred, err := a.creds.Credential(tenantID)
	if err != nil {
		return tenant.GraphInfo{}, err
	}
	return a.graph.Organization(ctx, cred)
}

// Secret reads a secret's metadata from a vault of the tenant.
func (a *Access) Secret(ctx context.Context, tenantID, vaultURL, name string) (tenant.SecretMeta, error) {
	cred, err := a.creds.Credential(tenantID)
	if err != nil {
		return tenant.SecretMeta{}, err
	}
	return a.kv.Secret(ctx, tenantID, vaultURL, name, cred)
}

// Forget drops the tenant's credential and its Key Vault clients (Graph keeps
// nothing per tenant).
func (a *Access) Forget(tenantID string) {
	a.creds.Forget(tenantID)
	a.kv.Forget(tenantID)
}
