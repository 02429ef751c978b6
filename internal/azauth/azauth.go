// Package azauth holds the multi-tenant app's credential and hands out a
// customer tenant's credential for each piece of work done there (a
// Session). Each signs in to its own tenant only, uses the tokens the fleet
// shares through the registry when they are fresh (tokenshare), hands its
// own over for sharing, keeps nothing once the work is done, and returns
// *outcome.Error for every failure.
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
	"slices"
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
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/posture"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tokenshare"
)

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
	// Sealer opens the tokens the fleet shares through the registry and
	// seals those a Session requests (Session.Share); nil shares nothing:
	// every piece of work signs in.
	Sealer *tokenshare.Sealer
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

// Tenants hands out a tenant's credential for each piece of work done
// there (Session); it keeps no tenant's state between them.
type Tenants struct {
	build  builder
	secret *secretSource // keyvault-secret method only
	// authority is the cloud's sign-in host; hc sends every request to it.
	authority string
	hc        *tokenHTTP
	// certificate is the leaf certificate the app signs in with (the
	// certificate method only), for its posture.
	certificate *x509.Certificate
	// sealer opens the fleet's shared tokens and seals the ones a Session
	// requests; nil shares nothing.
	sealer *tokenshare.Sealer
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
	t := &Tenants{sealer: opts.Sealer}
	disableID := opts.DisableInstanceDiscovery
	host := cl.AuthorityHost
	if u, err := url.Parse(host); err != nil || u.Scheme != "https" {
		return nil, errors.New("the cloud's authority host must be an https URL")
	}
	// One pipeline for every tenant's token requests: it holds no tenant
	// state, and one per credential was a tenth of the live heap.
	hc := newTokenHTTP(&co, host)
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

// Credential returns a new credential of the tenant for one piece of work
// (a probe, a verification): it keeps the tokens it gets for as long as the
// work holds it, and nothing outlives it. A tenant id that
// tenant.ParseTenantID refuses is tenant_not_found, before any request.
func (t *Tenants) Credential(tenantID string) (*Session, error) {
	id, err := tenant.ParseTenantID(tenantID)
	if err != nil {
		return nil, outcome.New(outcome.TenantNotFound, "the tenant id must be the GUID of a customer directory",
			fmt.Errorf("%w: %w", ErrInvalidTenantID, err))
	}
	s := &Session{t: t, tenantID: id}
	if _, _, err := s.current(); err != nil {
		return nil, fmt.Errorf("credential for tenant %s: %w", id, err)
	}
	return s, nil
}

// SignIn returns the tenant's credential for one piece of work, with every
// token of scopes at hand: those of shared.Tokens (the tokens the fleet
// stored for the tenant) that open, name the tenant and the scope's resource, and are
// fresh (see tokenshare) are used as they are, and the others are requested
// at once, so a cold tenant's work waits for one token round trip however
// many resources it uses (see Session for why the requests really run at
// once). Each is asked for with CAE enabled, as the Azure SDK's clients and
// the Graph SDK ask, so that the token it gets is the one the clients then
// reuse.
//
// It fails only when every scope failed, with the first scope's error; a
// scope that failed alone is asked for again by the request that needs it,
// which then reports its own outcome. With no scopes it makes no request.
// Its errors are *outcome.Error, or a cancellation.
func (t *Tenants) SignIn(ctx context.Context, tenantID string, scopes []string, shared tenant.Shared) (azcore.TokenCredential, error) {
	s, err := t.Credential(tenantID)
	if err != nil {
		return nil, err
	}
	s.seed(ctx, shared)
	if len(scopes) == 0 {
		return s, nil
	}
	errs := make([]error, len(scopes))
	var wg sync.WaitGroup
	for i, scope := range scopes[1:] {
		wg.Go(func() {
			_, errs[i+1] = s.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}, EnableCAE: true})
		})
	}
	_, errs[0] = s.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scopes[0]}, EnableCAE: true})
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return s, nil
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

// Session is one tenant's credential for one piece of work. It requests
// tokens through one MSAL confidential client of the tenant, built when it
// first needs one and dropped with the Session: with the fleet's tokens in
// the registry, nothing of a tenant needs to live on in the process
// between its sweeps.
//
// MSAL's client serves every scope at once (see msalCredential), so a cold
// tenant's tokens are requested in parallel. Requests for one scope take
// turns, so that two concurrent cold requests for one scope make one token
// request. A Session rebuilds its MSAL credential when the app secret read
// from Key Vault changes.
type Session struct {
	t        *Tenants
	tenantID string

	mu     sync.Mutex
	gen    uint64
	inner  azcore.TokenCredential
	scopes []*scopeState // a tenant's tasks use a handful of resources
	// vaults are the hosts known to be the tenant's (or found not to be),
	// learned says which this Session found out.
	vaults  map[string]bool
	learned map[string]bool
}

// scopeState is what a Session keeps for one scope: the turn its requests
// take, and the last token it got (or was given by the fleet). A tenant's
// work asks for its Graph token twice (its sign-in, then Graph's
// authentication) and for its Key Vault token twice (the sign-in, then the
// vault read).
type scopeState struct {
	scope string // lower case
	turn  sync.Mutex
	last  lastToken
}

// lastToken is the token a Session holds for a scope.
type lastToken struct {
	scope string
	cae   bool
	gen   uint64    // of the app secret it was acquired with
	at    time.Time // when this process got it (requested or opened)
	tk    azcore.AccessToken
	// shared says it came from the registry (another sweep's, or another
	// instance's), not from this Session; issued is then its iat (one this
	// Session acquired is read from the token when needed).
	issued time.Time
	shared bool
}

// seed takes what the fleet shares of the tenant: the vaults known to be
// its own, and the tokens the Sealer opens.
func (s *Session) seed(ctx context.Context, shared tenant.Shared) {
	s.mu.Lock()
	for _, h := range shared.Vaults {
		if s.vaults == nil {
			s.vaults = map[string]bool{}
		}
		s.vaults[strings.ToLower(h)] = true
	}
	s.mu.Unlock()
	if s.t.sealer == nil || len(shared.Tokens) == 0 {
		return
	}
	_, gen := s.secretGen()
	now := time.Now()
	for _, st := range shared.Tokens {
		tk, err := s.t.sealer.Open(s.tenantID, st)
		if err != nil {
			// The reason names no token: an old or foreign key, a row
			// altered or copied from another tenant, a stale token.
			zerolog.Ctx(ctx).Debug().Str("tenantId", s.tenantID).Str("resource", st.Resource).Str("reason", err.Error()).
				Msg("shared token not used")
			continue
		}
		scope := st.Resource + "/.default"
		tro := policy.TokenRequestOptions{Scopes: []string{scope}, EnableCAE: true}
		if state := s.state(tro); state != nil {
			s.mu.Lock()
			state.last = lastToken{scope: scope, cae: true, gen: gen, at: now, tk: tk, issued: st.IssuedAt, shared: true}
			s.mu.Unlock()
		}
	}
}

// VaultKnown reports whether the vault at host is known to be the tenant's:
// its token may go there without asking the vault's challenge first.
func (s *Session) VaultKnown(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vaults[strings.ToLower(host)]
}

// VaultIs records what the vault at host's challenge said: that the vault
// is the tenant's own, or not.
func (s *Session) VaultIs(host string, own bool) {
	host = strings.ToLower(host)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vaults == nil {
		s.vaults, s.learned = map[string]bool{}, map[string]bool{}
	}
	if s.learned == nil {
		s.learned = map[string]bool{}
	}
	s.vaults[host] = own
	s.learned[host] = true
}

// Share is what the Session leaves for the fleet: the vaults it found to be
// the tenant's (or not), and the tokens it requested, sealed, except those
// of the refused scopes (whose grants a resource refused: such a token must
// not stand for the tenant's consent), which the registry drops instead,
// whoever got them.
func (s *Session) Share(refused ...string) tenant.SharedUpdate {
	var u tenant.SharedUpdate
	if s == nil {
		return u
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for h := range s.learned {
		if s.vaults[h] {
			u.Vaults = append(u.Vaults, h)
		} else {
			u.NotVaults = append(u.NotVaults, h)
		}
	}
	slices.Sort(u.Vaults)
	slices.Sort(u.NotVaults)
	if s.t.sealer == nil {
		return u
	}
	for _, st := range s.scopes {
		l := st.last
		if l.tk.Token == "" || !l.cae {
			continue
		}
		if slices.ContainsFunc(refused, func(r string) bool { return strings.EqualFold(r, st.scope) }) {
			issued := l.issued
			if !l.shared {
				issued, _ = tokenshare.IssuedAt(l.tk.Token)
			}
			u.Drop = append(u.Drop, tenant.SharedToken{Resource: tokenshare.Resource(st.scope), IssuedAt: issued})
			continue
		}
		if l.shared {
			continue // the registry has it
		}
		sealed, err := s.t.sealer.Seal(s.tenantID, st.scope, l.tk)
		if err != nil {
			continue // not a token whose tid and aud can be checked: not shared
		}
		u.Put = append(u.Put, sealed)
	}
	return u
}

func (s *Session) secretGen() (string, uint64) {
	if s.t.secret == nil {
		return "", 0
	}
	return s.t.secret.current()
}

// remembered returns the scope's last token when it answers tro as MSAL's
// cache would: same scope and CAE mode, no claims challenge, acquired with
// the current app secret, neither due for refresh nor near its expiry.
func (s *Session) remembered(st *scopeState, tro policy.TokenRequestOptions, now time.Time) (azcore.AccessToken, bool) {
	if st == nil || tro.Claims != "" {
		return azcore.AccessToken{}, false
	}
	_, gen := s.secretGen()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := st.last
	// A clock set back past the acquisition is not trusted, as MSAL does not
	// trust a cache entry from the future.
	if l.tk.Token == "" || !strings.EqualFold(l.scope, tro.Scopes[0]) || l.cae != tro.EnableCAE || l.gen != gen || now.Before(l.at) ||
		!now.Before(l.tk.ExpiresOn.Add(-tokenshare.Margin)) || (!l.tk.RefreshOn.IsZero() && !now.Before(l.tk.RefreshOn)) {
		return azcore.AccessToken{}, false
	}
	return l.tk, true
}

// remember keeps tk as the scope's last token. A token acquired for a
// claims challenge replaces the last one too, as it does in MSAL's cache.
func (s *Session) remember(st *scopeState, tro policy.TokenRequestOptions, gen uint64, tk azcore.AccessToken) {
	if st == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.last = lastToken{scope: tro.Scopes[0], cae: tro.EnableCAE, gen: gen, at: time.Now(), tk: tk}
}

func (s *Session) forgetLast(st *scopeState) {
	if st == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.last = lastToken{}
}

// maxScopes bounds the scopes a Session keeps state for; a request for yet
// another scope goes to MSAL's cache without a turn.
const maxScopes = 8

// state is the scope's state, created on first use; nil for a request of
// several scopes (which the SDKs never make) or past maxScopes.
func (s *Session) state(tro policy.TokenRequestOptions) *scopeState {
	if len(tro.Scopes) != 1 {
		return nil
	}
	scope := strings.ToLower(tro.Scopes[0])
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.scopes {
		if st.scope == scope {
			return st
		}
	}
	if len(s.scopes) == maxScopes {
		return nil
	}
	st := &scopeState{scope: scope}
	s.scopes = append(s.scopes, st)
	return st
}

var _ azcore.TokenCredential = (*Session)(nil)

// current returns the SDK credential for the current app secret.
func (s *Session) current() (azcore.TokenCredential, uint64, error) {
	secret, gen := s.secretGen()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		s.inner, s.gen = nil, gen
	}
	if s.inner == nil {
		inner, err := s.t.build(s.tenantID, secret)
		if err != nil {
			return nil, 0, err
		}
		s.inner = inner
	}
	return s.inner, s.gen, nil
}

// GetToken gets a token in the Session's tenant, and only there.
func (s *Session) GetToken(ctx context.Context, tro policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if tro.TenantID != "" && !strings.EqualFold(tro.TenantID, s.tenantID) {
		return azcore.AccessToken{}, outcome.New(outcome.UpstreamError,
			"a token for another tenant was requested (the resource belongs to tenant "+safeTenant(tro.TenantID)+")",
			fmt.Errorf("%w: credential of %s, requested %q", ErrWrongTenant, s.tenantID, tro.TenantID))
	}
	tro.TenantID = s.tenantID
	st := s.state(tro)
	if tro.Claims != "" {
		// The resource refused the last token: nobody gets it again while
		// the claims request runs.
		s.forgetLast(st)
	} else if tk, ok := s.remembered(st, tro, time.Now()); ok {
		return tk, nil
	}
	ctx = outcome.WithAttempts(ctx)
	if st != nil {
		st.turn.Lock()
		defer st.turn.Unlock()
		// Another request for this scope may have got the token meanwhile.
		if tk, ok := s.remembered(st, tro, time.Now()); ok {
			return tk, nil
		}
	}
	inner, gen, err := s.current()
	if err != nil {
		return azcore.AccessToken{}, outcome.New(outcome.InternalError, "the tenant's credential could not be built", err)
	}
	tk, err := inner.GetToken(ctx, tro)
	if err == nil {
		s.remember(st, tro, gen, tk)
		return tk, nil
	}
	if s.t.secret == nil || !secretRejected(err) {
		return azcore.AccessToken{}, classify(ctx, err, scopeOf(tro))
	}
	// The secret in Key Vault may have been rotated since it was read.
	changed, rerr := s.t.secret.refresh(ctx, gen)
	if rerr != nil {
		zerolog.Ctx(ctx).Warn().Str("tenantId", s.tenantID).Err(rerr).Msg("re-reading the app secret from Key Vault failed")
	}
	if !changed {
		return azcore.AccessToken{}, classify(ctx, err, scopeOf(tro))
	}
	zerolog.Ctx(ctx).Info().Str("tenantId", s.tenantID).Msg("app secret changed in Key Vault; retrying the sign-in with it")
	if inner, gen, err = s.current(); err != nil {
		return azcore.AccessToken{}, outcome.New(outcome.InternalError, "the tenant's credential could not be built", err)
	}
	tk, err = inner.GetToken(ctx, tro)
	if err != nil {
		return azcore.AccessToken{}, classify(ctx, err, scopeOf(tro))
	}
	s.remember(st, tro, gen, tk)
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
