package keyvault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

const (
	tenantA     = "11111111-1111-1111-1111-111111111111"
	tenantB     = "22222222-2222-2222-2222-222222222222"
	secretValue = "hunter2-do-not-leak"
)

// fakeVault is an in-process Key Vault behind a policy.Transporter: it
// answers an unauthenticated request with the 401 challenge naming owner, and
// an authenticated one with handle's answer.
type fakeVault struct {
	owner  string
	handle func(r *http.Request) (int, http.Header, string)

	mu   sync.Mutex
	reqs []*http.Request
}

func (f *fakeVault) Do(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.mu.Unlock()
	if r.Header.Get("Authorization") == "" {
		h := http.Header{}
		h.Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="https://vault.azure.net"`, f.owner))
		return resp(r, 401, h, `{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}`), nil
	}
	status, h, body := f.handle(r)
	return resp(r, status, h, body), nil
}

func (f *fakeVault) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

func resp(r *http.Request, status int, h http.Header, body string) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}
}

// staticCred records the token requests it gets.
type staticCred struct {
	mu   sync.Mutex
	opts []policy.TokenRequestOptions
	err  error
}

func (c *staticCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opts = append(c.opts, o)
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: "token-" + o.TenantID, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (c *staticCred) calls() []policy.TokenRequestOptions {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]policy.TokenRequestOptions(nil), c.opts...)
}

func secretBody(host, name, version string, enabled bool, expires int64) string {
	return fmt.Sprintf(`{"value":%q,"id":"https://%s/secrets/%s/%s","attributes":{"enabled":%t,"exp":%d,"created":1700000000,"updated":1700000000}}`,
		secretValue, host, name, version, enabled, expires)
}

func fastRetry() *policy.RetryOptions {
	return &policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Second}
}

func TestSecretMetadata(t *testing.T) {
	const version = "0123456789abcdef0123456789abcdef"
	exp := time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)
	fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
		return 200, nil, secretBody(r.URL.Host, "db-password", version, true, exp.Unix())
	}}
	cred := &knowingCred{}
	r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
	for range 3 {
		meta, err := r.Secret(context.Background(), tenantA, "https://contoso-kv.vault.azure.net/", "db-password", cred)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Version != version || meta.Enabled == nil || !*meta.Enabled || meta.ExpiresOn == nil || !meta.ExpiresOn.Equal(exp) {
			t.Fatalf("meta = %+v", meta)
		}
		if strings.Contains(fmt.Sprintf("%+v %v", meta, *meta.ExpiresOn), secretValue) {
			t.Fatal("the value leaked into the metadata")
		}
	}
	// One challenge for the tenant's credential, then one authorized
	// request per read.
	if n := len(fv.requests()); n != 4 {
		t.Errorf("vault requests = %d, want 4 (1 challenge + 3 reads)", n)
	}
	calls := cred.calls()
	if len(calls) == 0 {
		t.Fatal("no token requested")
	}
	for _, o := range calls {
		if o.TenantID != tenantA || len(o.Scopes) != 1 || o.Scopes[0] != "https://vault.azure.net/.default" || !o.EnableCAE {
			t.Errorf("token request %+v", o)
		}
	}
	for _, req := range fv.requests()[1:] {
		if got := req.Header.Get("Authorization"); got != "Bearer token-"+tenantA {
			t.Errorf("authorization = %q", got)
		}
	}
}

func TestSecretErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   outcome.Code
		detail string
	}{
		{"forbidden", 403, nil, `{"error":{"code":"Forbidden","message":"Caller is not authorized ` + secretValue + `","innererror":{"code":"ForbiddenByRbac"}}}`,
			outcome.KeyVaultAccessDenied, "the app has no role on the vault that allows reading secrets: grant it Key Vault Secrets User"},
		{"firewall", 403, nil, `{"error":{"code":"Forbidden","message":"Client address is not authorized","innererror":{"code":"ForbiddenByFirewall"}}}`,
			outcome.KeyVaultAccessDenied, ""},
		{"not found", 404, nil, `{"error":{"code":"SecretNotFound","message":"A secret with (name/id) db-password was not found in this key vault."}}`,
			outcome.SecretNotFound, ""},
		{"throttled", 429, http.Header{"Retry-After": {"0"}}, `{"error":{"code":"Throttled","message":"slow down"}}`, outcome.Throttled, ""},
		{"server", 500, nil, `{"error":{"code":"InternalServerError","message":"boom"}}`, outcome.UpstreamError, ""},
		{"unauthorized after token", 401, nil, `{"error":{"code":"Unauthorized","message":"bad token"}}`, outcome.UpstreamError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
				return tt.status, tt.header.Clone(), tt.body
			}}
			r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
			_, err := r.Secret(context.Background(), tenantA, "https://contoso-kv.vault.azure.net", "db-password", &staticCred{})
			var oe *outcome.Error
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v, want an *outcome.Error", err)
			}
			if oe.Code != tt.want {
				t.Errorf("code = %s, want %s (%v)", oe.Code, tt.want, err)
			}
			if tt.detail != "" && oe.Detail != tt.detail {
				t.Errorf("detail = %q", oe.Detail)
			}
			for _, leak := range []string{secretValue, "https://", "message", "boom", "bad token"} {
				if strings.Contains(err.Error(), leak) || strings.Contains(oe.Err.Error(), leak) {
					t.Errorf("error text %q / %q leaks %q", err.Error(), oe.Err.Error(), leak)
				}
			}
			var re *azcore.ResponseError
			if !errors.As(err, &re) || re.StatusCode != tt.status {
				t.Errorf("the ResponseError is not in the chain")
			}
		})
	}
}

func TestSecretRetriesThrottling(t *testing.T) {
	n := 0
	fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
		n++
		if n <= 2 {
			return 429, http.Header{"Retry-After": {"0"}}, `{"error":{"code":"Throttled","message":"x"}}`
		}
		return 200, nil, secretBody(r.URL.Host, "s", "v1", true, 0)
	}}
	r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
	meta, err := r.Secret(context.Background(), tenantA, "https://contoso-kv.vault.azure.net", "s", &staticCred{})
	if err != nil || meta.Version != "v1" {
		t.Fatalf("meta %+v, err %v", meta, err)
	}
}

// A Retry-After beyond what is left of the tenant's budget is not waited for.
func TestSecretLongRetryAfterIsThrottledAtOnce(t *testing.T) {
	fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
		return 429, http.Header{"Retry-After": {"30"}}, `{"error":{"code":"Throttled","message":"x"}}`
	}}
	r := New(cloud.AzurePublic, Options{Transport: fv}) // production retry defaults
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := r.Secret(ctx, tenantA, "https://contoso-kv.vault.azure.net", "s", &staticCred{})
	if got := outcome.Of(err); got != outcome.Throttled {
		t.Errorf("outcome = %s (%v), want throttled", got, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v, want an immediate return", d)
	}
}

func TestSecretDeadline(t *testing.T) {
	fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
		<-r.Context().Done()
		return 500, nil, `{}`
	}}
	r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := r.Secret(ctx, tenantA, "https://contoso-kv.vault.azure.net", "s", &staticCred{})
	if got := outcome.Of(err); got != outcome.Timeout {
		t.Errorf("outcome = %s (%v), want timeout", got, err)
	}
}

func TestSecretDisabled(t *testing.T) {
	const disabledBody = `{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}`
	version := func(host, v string, created, exp int64) string {
		return fmt.Sprintf(`{"id":"https://%s/secrets/s/%s","attributes":{"enabled":false,"created":%d,"updated":%d,"exp":%d}}`, host, v, created, created, exp)
	}
	tests := []struct {
		name        string
		list        func(host string) string
		wantVersion string
		wantExp     int64
	}{
		{"latest created wins", func(h string) string {
			return `{"value":[` + version(h, "old", 1700000000, 1800000000) + `,` + version(h, "new", 1700000100, 1900000000) + `,` + version(h, "mid", 1700000050, 1850000000) + `]}`
		}, "new", 1900000000},
		{"tie leaves the version unknown", func(h string) string {
			return `{"value":[` + version(h, "a", 1700000000, 1800000000) + `,` + version(h, "b", 1700000000, 1900000000) + `]}`
		}, "", 0},
		{"paged", func(h string) string {
			return `{"value":[` + version(h, "old", 1700000000, 1800000000) + `],"nextLink":"https://` + h + `/secrets/s/versions?page=2"}`
		}, "new", 1900000000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
				switch {
				case r.URL.Query().Get("page") == "2":
					return 200, nil, `{"value":[` + version(r.URL.Host, "new", 1700000100, 1900000000) + `]}`
				case strings.HasSuffix(r.URL.Path, "/versions"):
					return 200, nil, tt.list(r.URL.Host)
				}
				return 403, nil, disabledBody
			}}
			r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
			meta, err := r.Secret(context.Background(), tenantA, "https://contoso-kv.vault.azure.net", "s", &staticCred{})
			if err != nil || meta.Enabled == nil || *meta.Enabled {
				t.Fatalf("meta %+v, err %v; want Enabled=false and no error", meta, err)
			}
			if meta.Version != tt.wantVersion {
				t.Errorf("version = %q, want %q", meta.Version, tt.wantVersion)
			}
			if tt.wantExp == 0 && meta.ExpiresOn != nil || tt.wantExp != 0 && (meta.ExpiresOn == nil || meta.ExpiresOn.Unix() != tt.wantExp) {
				t.Errorf("expiresOn = %v, want %d", meta.ExpiresOn, tt.wantExp)
			}
		})
	}
}

// A next-page link to another host is refused before it is sent (the
// challenge policy would attach the vault token to it).
func TestSecretNextLinkToAnotherHost(t *testing.T) {
	fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
		if strings.HasSuffix(r.URL.Path, "/versions") {
			return 200, nil, `{"value":[],"nextLink":"https://evil.example.com/steal"}`
		}
		return 403, nil, `{"error":{"code":"Forbidden","message":"x","innererror":{"code":"SecretDisabled"}}}`
	}}
	r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
	_, err := r.Secret(context.Background(), tenantA, "https://contoso-kv.vault.azure.net", "s", &staticCred{})
	if outcome.Of(err) != outcome.UpstreamError || !errors.Is(err, errForeignHost) {
		t.Errorf("err = %v", err)
	}
	for _, req := range fv.requests() {
		if req.URL.Host != "contoso-kv.vault.azure.net" {
			t.Errorf("request sent to %s", req.URL)
		}
	}
}

func TestSecretVaultInAnotherTenant(t *testing.T) {
	fv := &fakeVault{owner: tenantB, handle: func(r *http.Request) (int, http.Header, string) {
		t.Error("an authorized request reached the vault")
		return 200, nil, "{}"
	}}
	cred := &staticCred{}
	r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
	_, err := r.Secret(context.Background(), tenantA, "https://other-kv.vault.azure.net", "s", cred)
	if got := outcome.Of(err); got != outcome.KeyVaultAccessDenied {
		t.Fatalf("outcome = %s (%v)", got, err)
	}
	if !strings.Contains(outcome.Detail(err), "another Entra ID tenant") {
		t.Errorf("detail = %q", outcome.Detail(err))
	}
	if len(cred.calls()) != 0 {
		t.Errorf("a token was requested: %+v", cred.calls())
	}
}

func TestSecretCredentialOutcomeKept(t *testing.T) {
	fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) { return 200, nil, "{}" }}
	cred := &staticCred{err: outcome.New(outcome.AppNotInTenant, "the app is not registered in the tenant", errors.New("AADSTS700016"))}
	r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
	_, err := r.Secret(context.Background(), tenantA, "https://contoso-kv.vault.azure.net", "s", cred)
	if got := outcome.Of(err); got != outcome.AppNotInTenant {
		t.Errorf("outcome = %s (%v)", got, err)
	}
}

func TestSecretNetworkError(t *testing.T) {
	tr := transporterFunc(func(r *http.Request) (*http.Response, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	})
	r := New(cloud.AzurePublic, Options{Transport: tr, Retry: fastRetry()})
	_, err := r.Secret(context.Background(), tenantA, "https://contoso-kv.vault.azure.net", "s", &staticCred{})
	if got := outcome.Of(err); got != outcome.UpstreamError || outcome.Detail(err) != "could not reach the vault" {
		t.Errorf("outcome = %s %q (%v)", got, outcome.Detail(err), err)
	}
}

func TestSecretRefusesForeignVaultURLs(t *testing.T) {
	tr := transporterFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("request sent to %s", r.URL)
		return nil, errors.New("no")
	})
	cred := &staticCred{}
	r := New(cloud.AzurePublic, Options{Transport: tr})
	for _, u := range []string{
		"http://contoso-kv.vault.azure.net",
		"https://evil.example.com",
		"https://contoso-kv.vault.azure.net.evil.example.com",
		"https://a.b.vault.azure.net",
		"https://vault.azure.net",
		"https://contoso-kv.vault.usgovcloudapi.net", // another cloud
		"https://contoso-kv.vault.azure.net:8443",
		"https://user:pw@contoso-kv.vault.azure.net",
		"https://contoso-kv.vault.azure.net/secrets/x",
		"https://contoso-kv.vault.azure.net/?x=1",
		"contoso-kv.vault.azure.net",
		"://",
	} {
		_, err := r.Secret(context.Background(), tenantA, u, "s", cred)
		var oe *outcome.Error
		if err == nil || errors.As(err, &oe) {
			t.Errorf("%q: err = %v, want a plain error", u, err)
		} else if strings.Contains(err.Error(), "pw@") {
			t.Errorf("%q: the error repeats the URL's credentials: %v", u, err)
		}
	}
	for _, name := range []string{"", "../keys/k", "a b", "a/b", strings.Repeat("a", 128)} {
		if _, err := r.Secret(context.Background(), tenantA, "https://contoso-kv.vault.azure.net", name, cred); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if len(cred.calls()) != 0 {
		t.Error("a token was requested")
	}
}

// knowingCred is a tenant credential that knows which vaults are the
// tenant's, as *azauth.Session does.
type knowingCred struct {
	staticCred
	mu     sync.Mutex
	vaults map[string]bool
}

func (c *knowingCred) VaultKnown(host string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.vaults[host]
}

func (c *knowingCred) VaultIs(host string, own bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vaults == nil {
		c.vaults = map[string]bool{}
	}
	c.vaults[host] = own
}

// A vault known to be the tenant's gets its token without asking the
// challenge again; one that moved to another tenant since is told apart by
// the challenge its 401 carries, and forgotten.
func TestKnownVaultSkipsTheChallenge(t *testing.T) {
	fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
		return 200, nil, secretBody(r.URL.Host, "s", "v", true, 0)
	}}
	r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
	cred := &knowingCred{}
	for range 3 {
		if _, err := r.Secret(context.Background(), tenantA, "https://KV1.vault.azure.net/", "s", cred); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fv.requests()); n != 4 || !cred.VaultKnown("kv1.vault.azure.net") {
		t.Fatalf("requests = %d, want 4 (1 challenge + 3 reads); known %v", n, cred.vaults)
	}
	// Another credential of the tenant that knows it (the fleet's row said
	// so): no challenge at all.
	other := &knowingCred{vaults: map[string]bool{"kv1.vault.azure.net": true}}
	if _, err := r.Secret(context.Background(), tenantA, "https://kv1.vault.azure.net", "s", other); err != nil {
		t.Fatal(err)
	}
	if n := len(fv.requests()); n != 5 {
		t.Fatalf("requests = %d, want 5 (the read alone)", n)
	}

	// The vault is now another tenant's: its 401 names that tenant.
	moved := &fakeVault{owner: tenantB, handle: func(r *http.Request) (int, http.Header, string) {
		h := http.Header{"Www-Authenticate": {`Bearer authorization="https://login.microsoftonline.com/` + tenantB + `", resource="https://vault.azure.net"`}}
		return 401, h, `{"error":{"code":"Unauthorized","message":"AKV10032: Invalid issuer."}}`
	}}
	r = New(cloud.AzurePublic, Options{Transport: moved, Retry: fastRetry()})
	_, err := r.Secret(context.Background(), tenantA, "https://kv1.vault.azure.net", "s", other)
	if outcome.Of(err) != outcome.KeyVaultAccessDenied || !errors.Is(err, errForeignTenant) || other.VaultKnown("kv1.vault.azure.net") {
		t.Errorf("moved vault: %v; still known %v", err, other.VaultKnown("kv1.vault.azure.net"))
	}
	for _, o := range other.calls() {
		if o.TenantID != tenantA {
			t.Errorf("a token was requested for %s", o.TenantID)
		}
	}
}

// A claims challenge (continuous access evaluation) on the authorized
// request gets one more try with a token carrying the claims.
func TestSecretClaimsChallenge(t *testing.T) {
	const claims = `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	tries := 0
	fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
		tries++
		if tries == 1 {
			h := http.Header{"Www-Authenticate": {`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="` +
				base64.StdEncoding.EncodeToString([]byte(claims)) + `"`}}
			return 401, h, `{"error":{"code":"Unauthorized","message":"token revoked"}}`
		}
		return 200, nil, secretBody(r.URL.Host, "s", "v2", true, 0)
	}}
	cred := &knowingCred{vaults: map[string]bool{"kv1.vault.azure.net": true}}
	r := New(cloud.AzurePublic, Options{Transport: fv, Retry: fastRetry()})
	meta, err := r.Secret(context.Background(), tenantA, "https://kv1.vault.azure.net", "s", cred)
	if err != nil || meta.Version != "v2" {
		t.Fatalf("meta %+v: %v", meta, err)
	}
	calls := cred.calls()
	if len(calls) != 2 || calls[0].Claims != "" || calls[1].Claims != claims {
		t.Errorf("token requests %+v, want a second one with the claims", calls)
	}
}

func TestParseChallenge(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want challenge
	}{
		{`Bearer authorization="https://login.microsoftonline.com/` + tenantA + `", resource="https://vault.azure.net"`,
			challenge{tenant: tenantA, resource: "https://vault.azure.net", present: true}},
		{`Bearer authorization="https://login.microsoftonline.com/` + tenantA + `", scope="https://vault.azure.net/.default", resource="x"`,
			challenge{tenant: tenantA, resource: "https://vault.azure.net", present: true}},
		{`Basic realm="x"`, challenge{}},
		{``, challenge{}},
	} {
		if got := parseChallenge(tc.h); got != tc.want {
			t.Errorf("parseChallenge(%q) = %+v, want %+v", tc.h, got, tc.want)
		}
	}
}

func TestTenantCredential(t *testing.T) {
	inner := &staticCred{}
	c := &tenantCredential{cred: inner, tenantID: tenantA, scope: "https://vault.azure.net/.default"}
	if _, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}, TenantID: strings.ToUpper(tenantA), EnableCAE: true}); err != nil {
		t.Fatal(err)
	}
	if got := inner.calls()[0]; got.TenantID != tenantA || !got.EnableCAE {
		t.Errorf("passed on %+v", got)
	}
	_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}, TenantID: tenantA})
	if outcome.Of(err) != outcome.UpstreamError || !errors.Is(err, errForeignScope) {
		t.Errorf("foreign scope: %v", err)
	}
	if len(inner.calls()) != 1 {
		t.Error("a token for a foreign scope was requested")
	}
}

func TestBoundRetry(t *testing.T) {
	r := New(cloud.AzurePublic, Options{})
	if r.retry.MaxRetryDelay != DefaultMaxRetryDelay {
		t.Errorf("default MaxRetryDelay = %v", r.retry.MaxRetryDelay)
	}
	if ctx := r.boundRetry(context.Background()); ctx != context.Background() {
		t.Error("no deadline: context changed")
	}
}

type transporterFunc func(*http.Request) (*http.Response, error)

func (f transporterFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// A vault that fails every try is reported by its answer, not as a timeout:
// no retry starts whose backoff would end past the deadline. With 100 ms
// backoff (at most 130 ms, 390 ms, 910 ms after tries 1, 2, 3) and a 1 s
// budget, the third try is the last.
func TestSecretRetryBudgetNamesTheCause(t *testing.T) {
	fv := &fakeVault{owner: tenantA, handle: func(r *http.Request) (int, http.Header, string) {
		return 500, nil, `{"error":{"code":"InternalServerError","message":"x"}}`
	}}
	r := New(cloud.AzurePublic, Options{Transport: fv, Retry: &policy.RetryOptions{MaxRetries: 10, RetryDelay: 100 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := r.Secret(ctx, tenantA, "https://contoso-kv.vault.azure.net", "s", &staticCred{})
	if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != "Key Vault answered HTTP 500 three times" {
		t.Errorf("err = %v (%s), want upstream_error: Key Vault answered HTTP 500 three times", err, outcome.Of(err))
	}
	if n := len(fv.requests()); n != 4 {
		t.Errorf("vault requests = %d, want 4 (the challenge and three tries)", n)
	}
}

// A vault host that refuses the connection is an upstream error at once,
// with production's retry options (0.8 s, 1.6 s, 3.2 s of backoff).
func TestSecretRefusedIsUpstreamAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tr := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}}
	r := New(cloud.AzurePublic, Options{Transport: tr})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = r.Secret(ctx, tenantA, "https://contoso-kv.vault.azure.net", "s", &staticCred{})
	if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != "could not reach the vault" {
		t.Errorf("err = %v, want upstream_error: could not reach the vault", err)
	}
	if d := time.Since(start); d > 700*time.Millisecond {
		t.Errorf("took %v: the refused connection was retried", d)
	}
}
