// Package azauth holds the multi-tenant app's credential and hands out one
// azcore.TokenCredential per customer tenant. Each credential signs in to its
// own tenant only, keeps MSAL's token cache for the life of the process, and
// returns *outcome.Error for every failure.
package azauth

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// DefaultMaxTenants bounds the cached credentials when Options.MaxTenants is 0.
const DefaultMaxTenants = 100000

// Options tune New. The zero value is right for production.
type Options struct {
	// Transport sends every request (Entra ID, the managed identity endpoint
	// and Key Vault). Nil means the SDK's default transport, which honours
	// HTTPS_PROXY and SSL_CERT_FILE.
	Transport policy.Transporter
	// Retry overrides azcore's retry options of the credentials.
	Retry *policy.RetryOptions
	// DisableInstanceDiscovery skips MSAL's instance metadata request (one
	// GET /common/discovery/instance per tenant credential).
	DisableInstanceDiscovery bool
	// MaxTenants bounds the cached tenant credentials; the least recently
	// used is dropped past it. 0 means DefaultMaxTenants.
	MaxTenants int
	// MSIClientOptions, when set, are the client options of the managed
	// identity credential (keyvault-secret and federated-identity methods)
	// instead of Transport and Retry.
	MSIClientOptions *azcore.ClientOptions
	// SecretRereadInterval is the least time between two re-reads of the
	// app secret from Key Vault after a sign-in rejected it. 0 means a minute.
	SecretRereadInterval time.Duration
}

// ErrInvalidTenantID is wrapped by Credential's error for a tenant id that
// is not a GUID or names a shared endpoint.
var ErrInvalidTenantID = errors.New("invalid tenant id")

// ErrWrongTenant is wrapped by GetToken's error when a token for another
// tenant than the credential's is asked for (a Key Vault challenge naming a
// vault owned by another tenant, say).
var ErrWrongTenant = errors.New("token requested for another tenant")

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// consumersTenant is the Microsoft-account tenant, the GUID of "consumers":
// no customer's directory.
const consumersTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

// builder makes the SDK credential of one tenant from the current app
// secret (empty for the methods that do not use one).
type builder func(tenantID, secret string) (azcore.TokenCredential, error)

// Tenants hands out one credential per customer tenant.
type Tenants struct {
	clientID string
	build    builder
	secret   *secretSource // keyvault-secret method only
	max      int

	mu    sync.Mutex
	creds map[string]*list.Element // of *tenantCredential
	lru   *list.List               // front: most recently used
}

// New prepares the app's credential. For the keyvault-secret method it reads
// the secret from Key Vault with the managed identity now, so that a broken
// deployment fails at start.
func New(ctx context.Context, app config.App, cl cloud.Cloud, opts Options) (*Tenants, error) {
	if !guidRE.MatchString(app.ClientID) {
		return nil, errors.New("azauth: the app's client id must be a GUID")
	}
	co := azcore.ClientOptions{
		Cloud:     azcloud.Configuration{ActiveDirectoryAuthorityHost: cl.AuthorityHost},
		Transport: opts.Transport,
	}
	if opts.Retry != nil {
		co.Retry = *opts.Retry
	}
	miOpts := azcore.ClientOptions{Transport: opts.Transport}
	if opts.Retry != nil {
		miOpts.Retry = *opts.Retry
	}
	if opts.MSIClientOptions != nil {
		miOpts = *opts.MSIClientOptions
	}
	t := &Tenants{
		clientID: strings.ToLower(app.ClientID),
		max:      opts.MaxTenants,
		creds:    map[string]*list.Element{},
		lru:      list.New(),
	}
	if t.max <= 0 {
		t.max = DefaultMaxTenants
	}
	clientID := t.clientID
	disableID := opts.DisableInstanceDiscovery

	secretCred := func(tenantID, secret string) (azcore.TokenCredential, error) {
		return azidentity.NewClientSecretCredential(tenantID, clientID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: disableID})
	}

	switch app.Method {
	case config.MethodSecret:
		if app.Secret == "" {
			return nil, errors.New("azauth: the app's client secret is empty")
		}
		t.build = func(tenantID, _ string) (azcore.TokenCredential, error) { return secretCred(tenantID, app.Secret) }

	case config.MethodCertificate:
		data, err := os.ReadFile(app.CertificatePath)
		if err != nil {
			return nil, fmt.Errorf("azauth: read the app's certificate: %w", err)
		}
		certs, key, err := azidentity.ParseCertificates(data, []byte(app.CertificatePassword))
		if err != nil {
			return nil, fmt.Errorf("azauth: parse the app's certificate (PEM or PKCS#12 with its private key): %w", err)
		}
		t.build = func(tenantID, _ string) (azcore.TokenCredential, error) {
			return azidentity.NewClientCertificateCredential(tenantID, clientID, certs, key,
				&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: disableID})
		}

	case config.MethodKeyVault:
		mi, err := newMI(app.ManagedIdentityClientID, miOpts)
		if err != nil {
			return nil, err
		}
		read, err := secretReader(app.SecretURI, mi, co)
		if err != nil {
			return nil, err
		}
		secret, err := read(ctx)
		if err != nil {
			return nil, fmt.Errorf("azauth: read the app secret from APP_CLIENT_SECRET_URI with the managed identity: %w", err)
		}
		interval := opts.SecretRereadInterval
		if interval <= 0 {
			interval = time.Minute
		}
		t.secret = &secretSource{read: read, value: secret, interval: interval}
		t.build = secretCred

	case config.MethodFederated:
		if !guidRE.MatchString(app.FederatedClientID) {
			return nil, errors.New("azauth: the federated managed identity's client id must be a GUID")
		}
		mi, err := newMI(app.FederatedClientID, miOpts)
		if err != nil {
			return nil, err
		}
		scope := []string{cl.TokenExchangeAudience + "/.default"}
		assertion := func(ctx context.Context) (string, error) {
			tk, err := mi.GetToken(ctx, policy.TokenRequestOptions{Scopes: scope})
			return tk.Token, err
		}
		t.build = func(tenantID, _ string) (azcore.TokenCredential, error) {
			return azidentity.NewClientAssertionCredential(tenantID, clientID, assertion,
				&azidentity.ClientAssertionCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: disableID})
		}

	default:
		return nil, fmt.Errorf("azauth: unknown credential method %q", app.Method)
	}
	return t, nil
}

func newMI(clientID string, co azcore.ClientOptions) (*azidentity.ManagedIdentityCredential, error) {
	o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
	if clientID != "" {
		o.ID = azidentity.ClientID(clientID)
	}
	mi, err := azidentity.NewManagedIdentityCredential(o)
	if err != nil {
		return nil, fmt.Errorf("azauth: managed identity: %w", err)
	}
	return mi, nil
}

// CheckTenantID returns the canonical (lower-case) form of a customer tenant
// id, or an error wrapping ErrInvalidTenantID: it must be a GUID, and not a
// shared endpoint (common, organizations, consumers).
func CheckTenantID(tenantID string) (string, error) {
	id := strings.ToLower(strings.TrimSpace(tenantID))
	if !guidRE.MatchString(id) || id == consumersTenant {
		return "", outcome.New(outcome.TenantNotFound, "the tenant id must be the GUID of a customer directory",
			fmt.Errorf("%w: %q", ErrInvalidTenantID, tenantID))
	}
	return id, nil
}

// Credential returns the tenant's credential, created on first use and kept
// so that its tokens are cached.
func (t *Tenants) Credential(tenantID string) (azcore.TokenCredential, error) {
	id, err := CheckTenantID(tenantID)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.creds[id]; ok {
		t.lru.MoveToFront(el)
		return el.Value.(*tenantCredential), nil
	}
	tc := &tenantCredential{t: t, tenantID: id}
	if _, _, err := tc.current(); err != nil {
		return nil, fmt.Errorf("azauth: credential for tenant %s: %w", id, err)
	}
	t.creds[id] = t.lru.PushFront(tc)
	for t.lru.Len() > t.max {
		old := t.lru.Back()
		t.lru.Remove(old)
		delete(t.creds, old.Value.(*tenantCredential).tenantID)
	}
	return tc, nil
}

// Forget drops the tenant's credential and its cached tokens.
func (t *Tenants) Forget(tenantID string) {
	id := strings.ToLower(strings.TrimSpace(tenantID))
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.creds[id]; ok {
		t.lru.Remove(el)
		delete(t.creds, id)
	}
}

// Len is the number of cached tenant credentials.
func (t *Tenants) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}

// tenantCredential is one tenant's credential. It rebuilds its SDK
// credential when the app secret read from Key Vault changes.
type tenantCredential struct {
	t        *Tenants
	tenantID string

	mu    sync.Mutex
	gen   uint64
	inner azcore.TokenCredential
}

var _ azcore.TokenCredential = (*tenantCredential)(nil)

// current returns the SDK credential for the current app secret.
func (c *tenantCredential) current() (azcore.TokenCredential, uint64, error) {
	secret, gen := "", uint64(0)
	if c.t.secret != nil {
		secret, gen = c.t.secret.current()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil || c.gen != gen {
		inner, err := c.t.build(c.tenantID, secret)
		if err != nil {
			return nil, 0, err
		}
		c.inner, c.gen = inner, gen
	}
	return c.inner, c.gen, nil
}

// GetToken gets a token in the credential's tenant, and only there.
func (c *tenantCredential) GetToken(ctx context.Context, tro policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if tro.TenantID != "" && !strings.EqualFold(tro.TenantID, c.tenantID) {
		return azcore.AccessToken{}, outcome.New(outcome.UpstreamError,
			"a token for another tenant was requested (the resource belongs to tenant "+safeTenant(tro.TenantID)+")",
			fmt.Errorf("%w: credential of %s, requested %q", ErrWrongTenant, c.tenantID, tro.TenantID))
	}
	tro.TenantID = c.tenantID
	inner, gen, err := c.current()
	if err != nil {
		return azcore.AccessToken{}, outcome.New(outcome.InternalError, "the tenant's credential could not be built", err)
	}
	tk, err := inner.GetToken(ctx, tro)
	if err == nil {
		return tk, nil
	}
	if c.t.secret == nil || !secretRejected(err) {
		return azcore.AccessToken{}, classify(ctx, err)
	}
	// The secret in Key Vault may have been rotated since it was read.
	changed, rerr := c.t.secret.refresh(ctx, gen)
	if rerr != nil {
		zerolog.Ctx(ctx).Warn().Str("tenantId", c.tenantID).Err(rerr).Msg("re-reading the app secret from Key Vault failed")
	}
	if !changed {
		return azcore.AccessToken{}, classify(ctx, err)
	}
	zerolog.Ctx(ctx).Info().Str("tenantId", c.tenantID).Msg("app secret changed in Key Vault; retrying the sign-in with it")
	if inner, _, err = c.current(); err != nil {
		return azcore.AccessToken{}, outcome.New(outcome.InternalError, "the tenant's credential could not be built", err)
	}
	tk, err = inner.GetToken(ctx, tro)
	if err != nil {
		return azcore.AccessToken{}, classify(ctx, err)
	}
	return tk, nil
}

// safeTenant keeps only a GUID-shaped tenant id for a customer-facing text.
func safeTenant(id string) string {
	if guidRE.MatchString(id) {
		return strings.ToLower(id)
	}
	return "(not a GUID)"
}
