package keyvault

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

var (
	errForeignTenant = errors.New("keyvault: the vault's challenge names another tenant")
	errForeignScope  = errors.New("keyvault: the vault's challenge names an unexpected resource")
	errForeignHost   = errors.New("keyvault: request to a host other than the vault refused")
	errNoChallenge   = errors.New("keyvault: the vault's 401 carries no challenge")
)

// tenantCredential is what a vault read authenticates with. Key Vault's 401
// challenge chooses the tenant and the resource of the token; this refuses
// any but the customer's tenant and the cloud's Key Vault scope, so a vault
// in another tenant is reported as such (instead of as the credential's
// "isn't configured to acquire tokens for tenant" error) and no token for
// another resource is ever minted for a vault.
type tenantCredential struct {
	tenantID string
	scope    string
	cred     azcore.TokenCredential
}

func (c *tenantCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if opts.TenantID != "" && !strings.EqualFold(opts.TenantID, c.tenantID) {
		return azcore.AccessToken{}, foreignTenant()
	}
	if len(opts.Scopes) != 1 || !strings.EqualFold(opts.Scopes[0], c.scope) {
		return azcore.AccessToken{}, foreignScope()
	}
	// The customer's tenant as registered, not the challenge's spelling of it,
	// so the credential uses the cache of its own tenant.
	opts.TenantID = c.tenantID
	return c.cred.GetToken(ctx, opts)
}

func foreignTenant() error {
	return outcome.New(outcome.KeyVaultAccessDenied,
		"the vault belongs to another Entra ID tenant, not this customer's: register a vault of the customer's own tenant",
		errForeignTenant)
}

func foreignScope() error {
	return outcome.New(outcome.UpstreamError, "the vault asked for a token for a resource other than Key Vault", errForeignScope)
}

// challenge is what a vault's WWW-Authenticate asks for.
type challenge struct {
	tenant   string // the authorization URL's first path segment
	resource string // scope, else resource, without /.default
	claims   string // a claims challenge's claims, decoded
	present  bool
}

var challengeParam = regexp.MustCompile(`([A-Za-z_]+)="([^"]*)"`)

// parseChallenge reads a Bearer challenge:
// Bearer authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"
// and CAE's error="insufficient_claims", claims="<base64 JSON>".
func parseChallenge(h string) challenge {
	scheme, params, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return challenge{}
	}
	vals := map[string]string{}
	for _, m := range challengeParam.FindAllStringSubmatch(params, -1) {
		vals[strings.ToLower(m[1])] = m[2]
	}
	ch := challenge{present: len(vals) > 0}
	auth := vals["authorization"]
	if auth == "" {
		auth = vals["authorization_uri"]
	}
	if u, err := url.Parse(auth); err == nil {
		ch.tenant, _, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	}
	ch.resource = vals["scope"]
	if ch.resource == "" {
		ch.resource = vals["resource"]
	}
	ch.resource = strings.TrimSuffix(strings.TrimSuffix(ch.resource, "/.default"), "/")
	if c := vals["claims"]; c != "" && vals["error"] == "insufficient_claims" {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(c); err == nil {
				ch.claims = string(b)
				break
			}
		}
	}
	return ch
}

// check reports whether a challenge asks for a token this credential may
// get: its own tenant, the cloud's Key Vault resource.
func (c *tenantCredential) check(ch challenge) error {
	switch {
	case !ch.present:
		return outcome.New(outcome.UpstreamError, "the vault's authentication challenge is not valid for its host", errNoChallenge)
	case ch.claims != "":
		// A claims challenge is about the token, not the vault's owner.
		return nil
	case ch.tenant != "" && !strings.EqualFold(ch.tenant, c.tenantID):
		return foreignTenant()
	case !strings.EqualFold(ch.resource, strings.TrimSuffix(c.scope, "/.default")):
		return foreignScope()
	}
	return nil
}
