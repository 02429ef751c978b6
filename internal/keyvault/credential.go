package keyvault

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

var (
	errForeignTenant = errors.New("keyvault: the vault's challenge names another tenant")
	errForeignScope  = errors.New("keyvault: the vault's challenge names an unexpected resource")
	errForeignHost   = errors.New("keyvault: request to a host other than the vault refused")
)

// tenantCredential is what an azsecrets client authenticates with. Key
// Vault's 401 challenge chooses the tenant and the resource of the token; this
// refuses any but the customer's tenant and the cloud's Key Vault scope, so a
// vault in another tenant is reported as such (instead of as the credential's
// "isn't configured to acquire tokens for tenant" error) and no token for
// another resource is ever minted for a vault.
type tenantCredential struct {
	tenantID string
	scope    string

	mu   sync.Mutex
	cred azcore.TokenCredential
}

// use makes cred the credential of the next token requests.
func (c *tenantCredential) use(cred azcore.TokenCredential) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cred = cred
}

func (c *tenantCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if opts.TenantID != "" && !strings.EqualFold(opts.TenantID, c.tenantID) {
		return azcore.AccessToken{}, outcome.New(outcome.KeyVaultAccessDenied,
			"the vault belongs to another Entra ID tenant, not this customer's: register a vault of the customer's own tenant",
			errForeignTenant)
	}
	if len(opts.Scopes) != 1 || !strings.EqualFold(opts.Scopes[0], c.scope) {
		return azcore.AccessToken{}, outcome.New(outcome.UpstreamError,
			"the vault asked for a token for a resource other than Key Vault", errForeignScope)
	}
	// The customer's tenant as registered, not the challenge's spelling of it,
	// so the credential uses the cache of its own tenant.
	opts.TenantID = c.tenantID
	c.mu.Lock()
	cred := c.cred
	c.mu.Unlock()
	return cred.GetToken(ctx, opts)
}
