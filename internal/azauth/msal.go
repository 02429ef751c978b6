package azauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/tenantsweep/tenantsweep/internal/governor"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// msalCredential is a customer tenant's credential on MSAL's confidential
// client, the client that azidentity's ClientSecretCredential,
// ClientCertificateCredential and ClientAssertionCredential wrap. azidentity
// holds one lock per credential (and CAE mode) across a whole token request,
// so from one of its credentials a cold tenant's Graph and Key Vault tokens
// were requested one after the other, and getting them in parallel took two
// credentials, each with its own MSAL client (authority metadata, client
// capabilities, cache) and its own azcore pipeline. MSAL's client is safe for
// concurrent use and does not serialise requests (its cache has its own
// locks, its authority metadata is resolved once per client through a
// singleflight), so one client per tenant serves both scopes at once;
// tenantCredential serialises requests of the same scope. Its HTTP requests
// go through one azcore pipeline shared by every tenant (tokenHTTP): the
// pipeline holds no tenant state.
type msalCredential struct {
	authority, clientID string
	cred                confidential.Credential
	opts                []confidential.Option

	mu         sync.Mutex
	cae, noCAE *confidential.Client // built on first use, as azidentity does
}

var _ azcore.TokenCredential = (*msalCredential)(nil)

// cp1 is the client capability that asks for CAE tokens, as azidentity
// declares it.
var cp1 = []string{"CP1"}

// regionEnv is azidentity's setting for a regional authority; it is honoured
// here as azidentity honours it.
const regionEnv = "AZURE_REGIONAL_AUTHORITY_NAME"

func newMSALCredential(authority, clientID string, cred confidential.Credential, hc *tokenHTTP, disableInstanceDiscovery bool) *msalCredential {
	opts := []confidential.Option{confidential.WithHTTPClient(hc)}
	if region := os.Getenv(regionEnv); region != "" {
		opts = append(opts, confidential.WithAzureRegion(region))
	}
	if disableInstanceDiscovery {
		opts = append(opts, confidential.WithInstanceDiscovery(false))
	}
	return &msalCredential{authority: authority, clientID: clientID, cred: cred, opts: opts}
}

func (c *msalCredential) client(cae bool) (*confidential.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &c.noCAE
	opts := c.opts
	if cae {
		p = &c.cae
		opts = append(opts[:len(opts):len(opts)], confidential.WithClientCapabilities(cp1))
	}
	if *p == nil {
		cl, err := confidential.New(c.authority, c.clientID, c.cred, opts...)
		if err != nil {
			return nil, err
		}
		*p = &cl
	}
	return *p, nil
}

// GetToken returns a token of MSAL's cache or requests one, as azidentity's
// confidential credentials do, without their lock.
func (c *msalCredential) GetToken(ctx context.Context, tro policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(tro.Scopes) == 0 {
		return azcore.AccessToken{}, errors.New("GetToken requires at least one scope")
	}
	cl, err := c.client(tro.EnableCAE)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	// It looks in MSAL's cache first itself (unless for a claims challenge).
	ar, err := cl.AcquireTokenByCredential(ctx, tro.Scopes, confidential.WithClaims(tro.Claims), confidential.WithTenantID(tro.TenantID))
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: ar.AccessToken, ExpiresOn: ar.ExpiresOn.UTC(), RefreshOn: ar.Metadata.RefreshOn.UTC()}, nil
}

// tokenHTTP sends MSAL's requests through an azcore pipeline (retries,
// the transport's proxy and CA handling, outcome.SentPolicy), as azidentity does
// through each credential's own, and counts token requests in the
// request's governor.Meter.
//
// It answers MSAL's tenant discovery itself: an MSAL client asks once for
// its tenant's OpenID configuration (GET {authority}/{tenant}/v2.0/
// .well-known/openid-configuration) before its first token request, and a
// Session's client lives for one piece of work. For the fixed Microsoft
// authority hosts of internal/cloud that document is the same for every
// tenant but for the tenant id in its endpoints, so answering it here costs
// no round trip, where asking would cost one before every cold sign-in. A
// tenant that does not exist is still told apart: its token request fails
// with AADSTS90002, as the discovery would have.
type tokenHTTP struct {
	pl        runtime.Pipeline
	authority *url.URL // scheme and host of the cloud's authority
}

func newTokenHTTP(co *azcore.ClientOptions, authorityHost string) *tokenHTTP {
	u, _ := url.Parse(authorityHost) // New checked it
	return &tokenHTTP{pl: runtime.NewPipeline("azauth", "v1", runtime.PipelineOptions{}, co), authority: u}
}

func (*tokenHTTP) CloseIdleConnections() {}

// discovery answers a tenant discovery request of the cloud's authority
// host for a tenant GUID; ok is false for any other request.
func (h *tokenHTTP) discovery(r *http.Request) (*http.Response, bool) {
	if r.Method != http.MethodGet || r.URL.Scheme != h.authority.Scheme || !strings.EqualFold(r.URL.Host, h.authority.Host) {
		return nil, false
	}
	id, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/v2.0/.well-known/openid-configuration")
	if !ok {
		return nil, false
	}
	if _, guid := tenant.ParseGUID(id); !guid || strings.Contains(id, "/") {
		return nil, false
	}
	base := h.authority.Scheme + "://" + h.authority.Host + "/" + id
	body, _ := json.Marshal(map[string]string{
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"issuer":                 base + "/v2.0",
	})
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}, true
}

func (h *tokenHTTP) Do(r *http.Request) (*http.Response, error) {
	if resp, ok := h.discovery(r); ok {
		return resp, nil
	}
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		governor.MeterOf(r.Context()).Token()
	}
	req, err := runtime.NewRequest(r.Context(), r.Method, r.URL.String())
	if err != nil {
		return nil, err
	}
	if r.Body != nil && r.Body != http.NoBody {
		// The retry policy needs a body it can rewind.
		body, ok := r.Body.(io.ReadSeekCloser)
		if !ok {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, err
			}
			body = streaming.NopCloser(bytes.NewReader(b))
		}
		if err := req.SetBody(body, r.Header.Get("Content-Type")); err != nil {
			return nil, err
		}
	}
	h2 := req.Raw().Header
	for k, vs := range r.Header {
		if _, has := h2[k]; !has {
			h2[k] = append([]string(nil), vs...)
		}
	}
	return h.pl.Do(req)
}
