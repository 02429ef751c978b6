// Package azauth holds the multi-tenant app's credential and hands out one
// azcore.TokenCredential per customer tenant. Each credential signs in to its
// own tenant only, keeps MSAL's token cache for the life of the process, and
// returns *outcome.Error for every failure.
package azauth

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/lru"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/posture"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// DefaultMaxTenants bounds the cached credentials when Options.MaxTenants is 0.
const DefaultMaxTenants = 100000

// Options tune New. The zero value works; production also sets
// DisableInstanceDiscovery.
type Options struct {
	// Transport sends every request (Entra ID, the managed identity endpoint
	// and Key Vault). Nil means the SDK's default transport, which honours
	// HTTPS_PROXY and SSL_CERT_FILE.
	Transport policy.Transporter
	// Retry overrides azcore's retry options of the credentials.
	Retry *policy.RetryOptions
	// DisableInstanceDiscovery skips MSAL's instance metadata request (one
	// GET /common/discovery/instance per MSAL client). Set it only when the
	// cloud is one of internal/cloud's, whose authority hosts are Microsoft's
	// own: MSAL then has nothing to validate.
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
// tenant.ParseTenantID refuses.
var ErrInvalidTenantID = errors.New("invalid tenant id")

// ErrWrongTenant is wrapped by GetToken's error when a token for another
// tenant than the credential's is asked for (a Key Vault challenge naming a
// vault owned by another tenant, say).
var ErrWrongTenant = errors.New("token requested for another tenant")

// builder makes the SDK credential of one tenant from the current app
// secret (empty for the methods that do not use one).
type builder func(tenantID, secret string) (azcore.TokenCredential, error)

// Tenants hands out one credential per customer tenant.
type Tenants struct {
	build  builder
	secret *secretSource // keyvault-secret method only
	// authority is the cloud's sign-in host; hc sends every request to it.
	authority string
	hc        *tokenHTTP
	// certificate is the leaf certificate the app signs in with (the
	// certificate method only), for its posture.
	certificate *x509.Certificate

	mu    sync.Mutex
	creds *lru.Cache[string, *tenantCredential]
}

// New prepares the app's credential. For the keyvault-secret method it reads
// the secret from Key Vault with the managed identity now, so that a broken
// deployment fails at start.
func New(ctx context.Context, app config.App, cl cloud.Cloud, opts Options) (*Tenants, error) {
	clientID, ok := tenant.ParseGUID(app.ClientID)
	if !ok {
		return nil, errors.New("the app's client id must be a GUID")
	}
	transport := opts.Transport
	if transport == nil {
		transport = signInHTTP
	}
	co := azcore.ClientOptions{
		Cloud:     azcloud.Configuration{ActiveDirectoryAuthorityHost: cl.AuthorityHost},
		Transport: transport,
		// Counts each try, for the retry budget and the outcome's detail.
		PerRetryPolicies: []policy.Policy{outcome.SentPolicy{}},
	}
	if opts.Retry != nil {
		co.Retry = *opts.Retry
	}
	if co.Retry.ShouldRetry == nil {
		// A sign-in host that does not resolve or refuses the connection,
		// and a retry that would wait past the deadline, end the sign-in
		// at once with the cause (see classify), in onboarding and the
		// sweep alike.
		co.Retry.ShouldRetry = outcome.RetryWithin(co.Retry.RetryDelay, co.Retry.MaxRetryDelay)
	}
	miOpts := azcore.ClientOptions{Transport: opts.Transport}
	if opts.Retry != nil {
		miOpts.Retry = *opts.Retry
	}
	if opts.MSIClientOptions != nil {
		miOpts = *opts.MSIClientOptions
	}
	size := opts.MaxTenants
	if size <= 0 {
		size = DefaultMaxTenants
	}
	t := &Tenants{creds: lru.New[string, *tenantCredential](size)}
	disableID := opts.DisableInstanceDiscovery
	host := cl.AuthorityHost
	if u, err := url.Parse(host); err != nil || u.Scheme != "https" {
		return nil, errors.New("the cloud's authority host must be an https URL")
	}
	// One pipeline for every tenant's token requests: it holds no tenant
	// state, and one per credential was a tenth of the live heap.
	hc := newTokenHTTP(&co)
	t.authority, t.hc = host, hc
	msal := func(tenantID string, cred confidential.Credential) azcore.TokenCredential {
		return newMSALCredential(runtime.JoinPaths(host, tenantID), clientID, cred, hc, disableID)
	}
	secretCred := func(tenantID, secret string) (azcore.TokenCredential, error) {
		cred, err := confidential.NewCredFromSecret(secret)
		if err != nil {
			return nil, err
		}
		return msal(tenantID, cred), nil
	}

	switch app.Method {
	case config.MethodSecret:
		if app.Secret == "" {
			return nil, errors.New("the app's client secret is empty")
		}
		t.build = func(tenantID, _ string) (azcore.TokenCredential, error) { return secretCred(tenantID, app.Secret) }

	case config.MethodCertificate:
		data, err := os.ReadFile(app.CertificatePath)
		if err != nil {
			return nil, fmt.Errorf("read the app's certificate: %w", err)
		}
		certs, key, err := azidentity.ParseCertificates(data, []byte(app.CertificatePassword))
		if err != nil {
			return nil, fmt.Errorf("parse the app's certificate (PEM or PKCS#12 with its private key): %w", err)
		}
		cred, err := confidential.NewCredFromCert(certs, key)
		if err != nil {
			return nil, fmt.Errorf("the app's certificate: %w", err)
		}
		t.certificate = certs[0]
		t.build = func(tenantID, _ string) (azcore.TokenCredential, error) { return msal(tenantID, cred), nil }

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
			return nil, fmt.Errorf("read the app secret from APP_CLIENT_SECRET_URI with the managed identity: %w", err)
		}
		interval := opts.SecretRereadInterval
		if interval <= 0 {
			interval = time.Minute
		}
		t.secret = &secretSource{read: read, value: secret, interval: interval}
		t.build = secretCred

	case config.MethodFederated:
		if _, ok := tenant.ParseGUID(app.FederatedClientID); !ok {
			return nil, errors.New("the federated managed identity's client id must be a GUID")
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
		cred := confidential.NewCredFromAssertionCallback(func(ctx context.Context, _ confidential.AssertionRequestOptions) (string, error) {
			return assertion(ctx)
		})
		t.build = func(tenantID, _ string) (azcore.TokenCredential, error) { return msal(tenantID, cred), nil }

	default:
		return nil, fmt.Errorf("unknown credential method %q", app.Method)
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
		return nil, fmt.Errorf("managed identity: %w", err)
	}
	return mi, nil
}

// Credential returns the tenant's credential, created on first use and kept
// so that its tokens are cached. A tenant id that tenant.ParseTenantID
// refuses is tenant_not_found, before any request.
func (t *Tenants) Credential(tenantID string) (azcore.TokenCredential, error) {
	id, err := tenant.ParseTenantID(tenantID)
	if err != nil {
		return nil, outcome.New(outcome.TenantNotFound, "the tenant id must be the GUID of a customer directory",
			fmt.Errorf("%w: %w", ErrInvalidTenantID, err))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tc, ok := t.creds.Get(id); ok {
		return tc, nil
	}
	tc := &tenantCredential{t: t, tenantID: id}
	if _, _, err := tc.current(); err != nil {
		return nil, fmt.Errorf("credential for tenant %s: %w", id, err)
	}
	t.creds.Put(id, tc)
	return tc, nil
}

// SignIn requests (or reuses) the tenant's token of every scope at once and
// returns the tenant's credential, which then hands them out from its cache:
// a cold tenant's work waits for one token round trip, however many
// resources it uses (see tenantCredential for why the requests really run
// at once). Each is asked for with CAE enabled, as the Azure SDK's clients
// and the Graph SDK ask, because MSAL keeps CAE and non-CAE tokens in
// separate caches: the token it gets is the one the clients then reuse.
//
// It fails only when every request failed, with the first scope's error;
// a scope that failed alone is asked for again by the request that needs
// it, which then reports its own outcome. With no scopes it makes no
// request. Its errors are *outcome.Error, or a cancellation.
func (t *Tenants) SignIn(ctx context.Context, tenantID string, scopes []string) (azcore.TokenCredential, error) {
	cred, err := t.Credential(tenantID)
	if err != nil || len(scopes) == 0 {
		return cred, err
	}
	errs := make([]error, len(scopes))
	var wg sync.WaitGroup
	for i, scope := range scopes[1:] {
		wg.Go(func() {
			_, errs[i+1] = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}, EnableCAE: true})
		})
	}
	_, errs[0] = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scopes[0]}, EnableCAE: true})
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return cred, nil
		}
	}
	return nil, errs[0]
}

// LocalCredentials is the posture source of the certificate the app signs
// in with, read from the file at start; nil for the other credential
// methods, whose secret's expiry only the app registration knows.
func (t *Tenants) LocalCredentials() posture.Source {
	if t.certificate == nil {
		return nil
	}
	return localCertificate{t.certificate}
}

type localCertificate struct{ cert *x509.Certificate }

func (localCertificate) Name() string { return "the app's certificate file" }

func (l localCertificate) Credentials(context.Context) ([]posture.Credential, error) {
	sum := sha1.Sum(l.cert.Raw) // the thumbprint Entra ID shows for it
	return []posture.Credential{{Kind: "certificate", Name: l.cert.Subject.String(), ID: strings.ToUpper(hex.EncodeToString(sum[:])),
		ExpiresOn: l.cert.NotAfter.UTC(), Where: "local"}}, nil
}

// Home reads the tenant's OpenID metadata at the cloud's sign-in host: one
// unauthenticated request, through the sign-in's transport and retries, to
// learn whether Entra ID knows the tenant and which cloud it lives in
// before it is recorded. Its errors are those of a sign-in (tenant_not_found
// for a tenant Entra ID does not know, deleted or blocked; upstream_error,
// throttled and timeout when it could not tell), as *outcome.Error, or a
// cancellation.
func (t *Tenants) Home(ctx context.Context, tenantID string) (tenant.Home, error) {
	id, err := tenant.ParseTenantID(tenantID)
	if err != nil {
		return tenant.Home{}, outcome.New(outcome.TenantNotFound, "the tenant id must be the GUID of a customer directory",
			fmt.Errorf("%w: %w", ErrInvalidTenantID, err))
	}
	ctx = outcome.WithAttempts(ctx)
	req, err := runtime.NewRequest(ctx, http.MethodGet, runtime.JoinPaths(t.authority, id, "v2.0/.well-known/openid-configuration"))
	if err != nil {
		return tenant.Home{}, outcome.New(outcome.InternalError, "the metadata request could not be built", err)
	}
	resp, err := t.hc.pl.Do(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = &answerError{resp: resp}
	}
	if err != nil {
		return tenant.Home{}, classify(ctx, err, "")
	}
	body, err := runtime.Payload(resp)
	var m struct {
		Instance       string `json:"cloud_instance_name"`
		RegionScope    string `json:"tenant_region_scope"`
		RegionSubScope string `json:"tenant_region_sub_scope"`
	}
	if err == nil {
		err = json.Unmarshal(body, &m)
	}
	if err != nil {
		return tenant.Home{}, outcome.New(outcome.UpstreamError, "Entra ID's OpenID metadata for the tenant is not JSON", err)
	}
	// Entra ID's text, kept only when it looks like the identifiers it is.
	return tenant.Home{Instance: outcome.SafeCode(m.Instance), RegionScope: outcome.SafeCode(m.RegionScope),
		RegionSubScope: outcome.SafeCode(m.RegionSubScope)}, nil
}

// Forget drops the tenant's credential and its cached tokens.
func (t *Tenants) Forget(tenantID string) {
	id, err := tenant.ParseTenantID(tenantID)
	if err != nil {
		return // never cached
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.creds.Remove(id)
}

// tenantCredential is one tenant's credential. It rebuilds its SDK
// credential when the app secret read from Key Vault changes.
//
// Its one MSAL client serves every scope at once (see msalCredential), so a
// cold tenant's tokens are requested in parallel. Requests for one scope
// take turns, as they did in azidentity's credentials, so that two
// concurrent cold requests for one scope make one token request.
type tenantCredential struct {
	t        *Tenants
	tenantID string

	mu     sync.Mutex
	gen    uint64
	inner  azcore.TokenCredential
	scopes []*scopeState // a tenant's tasks use a handful of resources
}

// scopeState is what a tenant credential keeps for one scope: the turn its
// requests take, and the last token MSAL returned for it. A warm tenant
// asks for its Graph token twice a sweep (its sign-in, then Graph's
// authentication) and for its Key Vault token twice (the sign-in, then the
// vault's challenge); answering those from here instead of searching
// MSAL's cache again saves a few percent of a warm sweep's CPU for ~100
// bytes a scope.
type scopeState struct {
	scope string // lower case
	turn  sync.Mutex
	last  lastToken
}

// lastToken is the token the tenant's MSAL client returned last for a
// scope.
type lastToken struct {
	scope string
	cae   bool
	gen   uint64    // of the app secret it was acquired with
	at    time.Time // when it was acquired
	tk    azcore.AccessToken
}

// tokenRefreshMargin is how long before its expiry a remembered token is no
// longer handed out, as MSAL does not hand out a cached one either.
const tokenRefreshMargin = 5 * time.Minute

// remembered returns the scope's last token when it answers tro as MSAL's
// cache would: same scope and CAE mode, no claims challenge, acquired with
// the current app secret, neither due for refresh nor near its expiry.
func (c *tenantCredential) remembered(st *scopeState, tro policy.TokenRequestOptions, now time.Time) (azcore.AccessToken, bool) {
	if st == nil || tro.Claims != "" {
		return azcore.AccessToken{}, false
	}
	gen := uint64(0)
	if c.t.secret != nil {
		_, gen = c.t.secret.current()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l := st.last
	// A clock set back past the acquisition is not trusted, as MSAL does not
	// trust a cache entry from the future.
	if l.tk.Token == "" || l.scope != tro.Scopes[0] || l.cae != tro.EnableCAE || l.gen != gen || now.Before(l.at) ||
		!now.Before(l.tk.ExpiresOn.Add(-tokenRefreshMargin)) || (!l.tk.RefreshOn.IsZero() && !now.Before(l.tk.RefreshOn)) {
		return azcore.AccessToken{}, false
	}
	return l.tk, true
}

// remember keeps tk as the scope's last token. A token acquired for a claims
// challenge replaces the last one too, as it does in MSAL's cache.
func (c *tenantCredential) remember(st *scopeState, tro policy.TokenRequestOptions, gen uint64, tk azcore.AccessToken) {
	if st == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st.last = lastToken{scope: tro.Scopes[0], cae: tro.EnableCAE, gen: gen, at: time.Now(), tk: tk}
}

func (c *tenantCredential) forgetLast(st *scopeState) {
	if st == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st.last = lastToken{}
}

// maxScopes bounds the scopes a tenant credential keeps state for; a
// request for yet another scope goes to MSAL's cache without a turn.
const maxScopes = 8

// state is the scope's state, created on first use; nil for a request of
// several scopes (which the SDKs never make) or past maxScopes.
func (c *tenantCredential) state(tro policy.TokenRequestOptions) *scopeState {
	if len(tro.Scopes) != 1 {
		return nil
	}
	scope := strings.ToLower(tro.Scopes[0])
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.scopes {
		if st.scope == scope {
			return st
		}
	}
	if len(c.scopes) == maxScopes {
		return nil
	}
	st := &scopeState{scope: scope}
	c.scopes = append(c.scopes, st)
	return st
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
	if c.gen != gen {
		c.inner, c.gen = nil, gen
	}
	if c.inner == nil {
		inner, err := c.t.build(c.tenantID, secret)
		if err != nil {
			return nil, 0, err
		}
		c.inner = inner
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
	st := c.state(tro)
	if tro.Claims != "" {
		// The resource refused the last token: nobody gets it again while
		// the claims request runs.
		c.forgetLast(st)
	} else if tk, ok := c.remembered(st, tro, time.Now()); ok {
		return tk, nil
	}
	ctx = outcome.WithAttempts(ctx)
	if st != nil {
		st.turn.Lock()
		defer st.turn.Unlock()
		// Another request for this scope may have got the token meanwhile.
		if tk, ok := c.remembered(st, tro, time.Now()); ok {
			return tk, nil
		}
	}
	inner, gen, err := c.current()
	if err != nil {
		return azcore.AccessToken{}, outcome.New(outcome.InternalError, "the tenant's credential could not be built", err)
	}
	tk, err := inner.GetToken(ctx, tro)
	if err == nil {
		c.remember(st, tro, gen, tk)
		return tk, nil
	}
	if c.t.secret == nil || !secretRejected(err) {
		return azcore.AccessToken{}, classify(ctx, err, scopeOf(tro))
	}
	// The secret in Key Vault may have been rotated since it was read.
	changed, rerr := c.t.secret.refresh(ctx, gen)
	if rerr != nil {
		zerolog.Ctx(ctx).Warn().Str("tenantId", c.tenantID).Err(rerr).Msg("re-reading the app secret from Key Vault failed")
	}
	if !changed {
		return azcore.AccessToken{}, classify(ctx, err, scopeOf(tro))
	}
	zerolog.Ctx(ctx).Info().Str("tenantId", c.tenantID).Msg("app secret changed in Key Vault; retrying the sign-in with it")
	if inner, gen, err = c.current(); err != nil {
		return azcore.AccessToken{}, outcome.New(outcome.InternalError, "the tenant's credential could not be built", err)
	}
	tk, err = inner.GetToken(ctx, tro)
	if err != nil {
		return azcore.AccessToken{}, classify(ctx, err, scopeOf(tro))
	}
	c.remember(st, tro, gen, tk)
	return tk, nil
}

// signInHTTP sends the token and OpenID metadata requests when
// Options.Transport is nil. It is azcore's default transport in what that
// default is for (HTTPS_PROXY and NO_PROXY, the system's roots and
// SSL_CERT_FILE, TLS 1.2 at least, HTTP/2, its timeouts), with
// outcome.CheckProxyConnect: behind a proxy that refuses to tunnel to the
// sign-in host, azcore's retries otherwise slept through the verification's
// whole budget (9.7 s of 10) before saying upstream_error.
var signInHTTP = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.OnProxyConnectResponse = outcome.CheckProxyConnect
	return &http.Client{Transport: tr}
}()

// scopeOf is the one scope our token requests ask for.
func scopeOf(tro policy.TokenRequestOptions) string {
	if len(tro.Scopes) == 1 {
		return tro.Scopes[0]
	}
	return ""
}

// safeTenant keeps only a GUID-shaped tenant id for a customer-facing text.
func safeTenant(id string) string {
	if guid, ok := tenant.ParseGUID(id); ok {
		return guid
	}
	return "(not a GUID)"
}
