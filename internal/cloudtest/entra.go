package cloudtest

import (
	"cmp"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// App is the multi-tenant app registration the token endpoint knows.
type App struct {
	ClientID string
	// Secret is the app's client secret; empty means none is valid.
	Secret string
	// Expired makes sign-ins with the right secret fail with AADSTS7000222.
	Expired bool
	// Certificate, when set, is accepted as the signer of PS256 (or RS256)
	// client assertions whose aud is the token endpoint and iss = sub =
	// ClientID.
	Certificate *x509.Certificate
	// AcceptMIAssertions accepts as client_assertion a token the fake MSI
	// endpoint issued for api://AzureADTokenExchange (a federated identity
	// credential trusting a managed identity).
	AcceptMIAssertions bool
	// FederatedMIClientID, when set, accepts only assertions of the managed
	// identity with this client id.
	FederatedMIClientID string

	// HomeTenant is the tenant the app is registered in: its Graph tokens
	// may look other tenants up (findTenantInformationByTenantId, with
	// CrossTenantInformation.ReadBasic.All among the tenant's GraphRoles)
	// and read the registration (applications(appId=...), with
	// Application.Read.All). Add it as a Tenant too.
	HomeTenant string
	// Secrets and Certificates are the registration's credentials as Graph
	// lists them (passwordCredentials, keyCredentials).
	Secrets, Certificates []AppCredential
}

// AppCredential is a credential of the app registration as Graph lists it:
// never its secret.
type AppCredential struct {
	KeyID       string
	DisplayName string
	EndDateTime time.Time
}

// SignInFault is an AADSTS code, as a string, that the token endpoint answers
// with; empty means sign-ins succeed. Each constant below is answered as
// Entra ID answers it (HTTP status, OAuth error, AADSTS description,
// error_codes); codes other than these are answered with 400
// invalid_request. The tenant faults (TenantNotFound, TenantUnavailable,
// TenantInactive, InvalidTenantID) are answered by the OpenID metadata
// endpoint as well, as Entra ID does for a tenant it cannot serve.
type SignInFault string

const (
	SignInOK              SignInFault = ""
	FaultAppNotInTenant   SignInFault = "700016" // admin consent missing
	FaultTenantNotFound   SignInFault = "90002"  // also fails openid-configuration
	FaultInvalidSecret    SignInFault = "7000215"
	FaultSecretExpired    SignInFault = "7000222"
	FaultInvalidAssertion SignInFault = "700027"
	// FaultNoServicePrincipal: an app-only sign-in by an app without a
	// service principal in the tenant.
	FaultNoServicePrincipal SignInFault = "7000229"
	// FaultAppDisabled: the app's enterprise application is disabled in the
	// tenant (Enabled for users to sign-in: No).
	FaultAppDisabled SignInFault = "7000112"
	// FaultConditionalAccess: a Conditional Access policy for workload
	// identities blocks the app.
	FaultConditionalAccess SignInFault = "53003"
	// FaultSecurityPolicy: a security policy of the tenant blocks it.
	FaultSecurityPolicy SignInFault = "530032"
	// FaultTenantRestrictions: a tenant restrictions (v2) policy, added to
	// the request by the network the app signs in from, blocks the tenant.
	FaultTenantRestrictions SignInFault = "5000211"
	// FaultTenantRestrictionsV1: the v1 header (Restrict-Access-To-Tenants).
	FaultTenantRestrictionsV1 SignInFault = "500021"
	// FaultTenantUnavailable: a deleted or deauthenticated tenant; also
	// fails openid-configuration.
	FaultTenantUnavailable SignInFault = "5000224"
	// FaultTenantInactive: a tenant blocked for inactivity; also fails
	// openid-configuration.
	FaultTenantInactive SignInFault = "5000225"
	// FaultInvalidTenantID: an identifier Entra ID cannot read as a tenant;
	// also fails openid-configuration.
	FaultInvalidTenantID SignInFault = "900023"
	// FaultCrossCloud: a confidential client signing in to a tenant of
	// another cloud; a tenant whose Cloud is another cloud's answers it.
	FaultCrossCloud SignInFault = "900382"
)

// Cloud instances as the OpenID metadata's cloud_instance_name names them,
// and the metadata a tenant of each shows at the public endpoint. A US
// Government tenant (GCC High, DoD) is found there and shows its own cloud;
// a tenant of Microsoft Azure operated by 21Vianet is not found there at
// all (AADSTS90002). Commercial tenants show their region (NA, EU, AS...)
// and GCC ones NA with the sub-scope GCC.
const (
	InstancePublic = "microsoftonline.com"
	InstanceUSGov  = "microsoftonline.us"
	InstanceChina  = "partner.microsoftonline.cn"
)

// Tenant is one customer tenant. Change it with UpdateTenant.
type Tenant struct {
	SignIn SignInFault
	// SignInStatus, when non-zero, answers every token request with this
	// HTTP status (say 500 or 503) and an Entra ID error body.
	SignInStatus int
	// SignInThrottle is the number of token requests answered with 429
	// (Retry-After: 0, retry-after-ms: 5) before they succeed.
	SignInThrottle int

	OrgName string
	// Users is the number of users /v1.0/users lists, 100 a page by
	// default ($top up to 999).
	Users int
	// Groups is the number of groups /v1.0/groups lists, paged as users
	// are: Microsoft 365, security and mail-enabled security groups in turn.
	Groups int
	// GraphStatus, when non-zero, answers every Graph request with this
	// status: 403 Authorization_RequestDenied, 429 TooManyRequests, 503
	// serviceNotAvailable (429 and 503 with Retry-After: 0).
	GraphStatus int
	// GraphThrottle is the number of Graph requests answered with 429
	// (Retry-After: 0) before they succeed.
	GraphThrottle int
	// GraphHang makes Graph requests wait until the client gives up.
	GraphHang bool
	// CountStatus, when non-zero (400 or 404), answers the advanced query
	// $count (users/$count, users?$count=true, and the same of groups) with
	// it, as a tenant or cloud without advanced queries does.
	CountStatus int
	// GraphRoles are the application permissions the tenant granted the
	// app: the roles claim of its Graph tokens lists them, as Entra ID
	// does, and the fake Graph lets a token do what they allow (see
	// GraphPermissionsFor). nil means DefaultGraphRoles, and an empty
	// non-nil slice none at all. A token keeps the roles of its issue.
	GraphRoles []string
	// GraphToken shapes the tenant's Graph tokens: what a client can read
	// from them, not what Graph lets them do.
	GraphToken TokenShape

	// Cloud is the tenant's cloud_instance_name; empty means InstancePublic.
	// A tenant of InstanceUSGov shows its metadata (with RegionScope
	// "USGov" and RegionSubScope "DODCON" or "DOD") and refuses sign-ins
	// with AADSTS900382; one of InstanceChina is not found.
	Cloud string
	// RegionScope and RegionSubScope are tenant_region_scope and
	// tenant_region_sub_scope; empty RegionScope means "EU".
	RegionScope, RegionSubScope string
	// DefaultDomain is what findTenantInformationByTenantId answers for
	// the tenant (its default domain); empty means <id prefix>.onmicrosoft.com.
	DefaultDomain string
	// MissingResources are resources (token audiences, such as
	// VaultResource) that have no service principal in the tenant: token
	// requests for them fail with AADSTS500011.
	MissingResources []string
}

// DefaultGraphRoles are the Graph application permissions the app needs
// (config's GRAPH_PERMISSIONS default), granted in every tenant unless its
// GraphRoles say otherwise.
var DefaultGraphRoles = []string{"Organization.Read.All", "User.Read.All"}

// TokenShape is the form of the Graph tokens a tenant is issued. Graph
// accepts each of them, and enforces the tenant's GraphRoles whatever the
// shape: a real token always carries its roles, and only a client that
// reads the token can be kept from seeing them.
type TokenShape int

const (
	TokenWithRoles TokenShape = iota // a JWT with a roles claim
	TokenNoRoles                     // a JWT without a roles claim
	TokenOpaque                      // not a JWT at all
)

// Claims is what a fake token says.
type Claims struct {
	Tenant          string
	Audience        string
	AppID           string
	ExpiresAt       time.Time
	ManagedIdentity bool
}

type tokenClaims struct {
	Aud   string `json:"aud"`
	Iss   string `json:"iss"`
	Iat   int64  `json:"iat"`
	Nbf   int64  `json:"nbf"`
	Exp   int64  `json:"exp"`
	AppID string `json:"appid"`
	IDTyp string `json:"idtyp"`
	Oid   string `json:"oid"`
	Sub   string `json:"sub"`
	Tid   string `json:"tid"`
	Uti   string `json:"uti"`
	Ver   string `json:"ver"`
	// Roles is nil for tokens without the claim.
	Roles *[]string `json:"roles,omitempty"`
}

type tokenInfo struct {
	claims tokenClaims
	mi     bool
	// graphRoles are the application permissions a Graph token grants,
	// recorded at issue whether or not its claims show them.
	graphRoles []string
}

// SetApp replaces the app registration.
func (c *Cloud) SetApp(a App) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a.ClientID = strings.ToLower(a.ClientID)
	c.app = a
}

// UpdateApp changes the app registration under the fake's lock; fn must not
// call the Cloud.
func (c *Cloud) UpdateApp(fn func(*App)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(&c.app)
	c.app.ClientID = strings.ToLower(c.app.ClientID)
}

// AddTenant adds (or replaces) a customer tenant.
func (c *Cloud) AddTenant(id string, tn Tenant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tenants[strings.ToLower(id)] = &tn
}

// UpdateTenant changes a tenant under the fake's lock; fn must not call the
// Cloud. A tenant never added is added (fn gets a zero Tenant); the result
// reports whether it existed.
func (c *Cloud) UpdateTenant(id string, fn func(*Tenant)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	tn, ok := c.tenants[strings.ToLower(id)]
	if !ok {
		tn = &Tenant{}
		c.tenants[strings.ToLower(id)] = tn
	}
	fn(tn)
	return ok
}

// RemoveTenant deletes a tenant: sign-ins then fail with AADSTS90002.
func (c *Cloud) RemoveTenant(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tenants, strings.ToLower(id))
}

// TokenClaims returns what a token the fakes issued says.
func (c *Cloud) TokenClaims(token string) (Claims, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ti, ok := c.lookupLocked(token)
	if !ok {
		return Claims{}, false
	}
	return Claims{Tenant: ti.claims.Tid, Audience: ti.claims.Aud, AppID: ti.claims.AppID,
		ExpiresAt: time.Unix(ti.claims.Exp, 0), ManagedIdentity: ti.mi}, true
}

// ExpireTokens makes every token issued so far invalid for Graph and Key
// Vault (they answer 401), as if it had expired.
func (c *Cloud) ExpireTokens() {
	c.mu.Lock()
	defer c.mu.Unlock()
	past := time.Now().Add(-time.Minute).Unix()
	for tok, ti := range c.tokens {
		ti.claims.Exp = past
		c.tokens[tok] = ti
	}
}

// issueLocked mints a token; c.mu is held.
func (c *Cloud) issueLocked(tenant, resource, appID string, mi bool, ttl time.Duration) string {
	return c.issueShapedLocked(tenant, resource, appID, mi, ttl, nil, nil, false)
}

// issueShapedLocked mints a token that grants graphRoles, with a roles claim
// (nil: none), as a JWT or, when opaque, as a string that is not one; c.mu
// is held.
func (c *Cloud) issueShapedLocked(tenant, resource, appID string, mi bool, ttl time.Duration, graphRoles []string, roles *[]string, opaque bool) string {
	now := time.Now()
	oid := guidFrom("sp", tenant, appID)
	cl := tokenClaims{
		Aud: resource, Iss: "https://sts.windows.net/" + tenant + "/",
		Iat: now.Unix(), Nbf: now.Add(-5 * time.Minute).Unix(), Exp: now.Add(ttl).Unix(),
		AppID: appID, IDTyp: "app", Oid: oid, Sub: oid, Tid: tenant, Uti: randHex(11), Ver: "1.0", Roles: roles,
	}
	payload, _ := json.Marshal(cl)
	tok := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + TokenMarker + randHex(24)
	if opaque {
		tok = TokenMarker + randHex(32)
	}
	c.tokens[tok] = tokenInfo{claims: cl, mi: mi, graphRoles: graphRoles}
	c.issued = append(c.issued, tok)
	if mi {
		miTokens.Store(tok, tokenInfo{claims: cl, mi: true})
	}
	return tok
}

// miTokens holds every managed identity token issued in this process. MSAL
// caches managed identity tokens process-wide, so a later Cloud (another
// test, or -count=2) can be handed a token an earlier one issued; it is
// accepted as if this Cloud had issued it.
var miTokens sync.Map // token -> tokenInfo

// lookupLocked finds a token this Cloud, or any Cloud's MSI endpoint, issued;
// c.mu is held.
func (c *Cloud) lookupLocked(tok string) (tokenInfo, bool) {
	if ti, ok := c.tokens[tok]; ok {
		return ti, true
	}
	if v, ok := miTokens.Load(tok); ok {
		return v.(tokenInfo), true
	}
	return tokenInfo{}, false
}

// NewClientID returns a random GUID, for a managed identity client id that
// no other test of the process uses (MSAL's managed identity token cache is
// process-wide).
func NewClientID() string { return guidFrom("client", randHex(16)) }

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"RS256","kid":"cloudtest"}`))

// checkToken looks up a bearer token and checks its lifetime and audience.
func (c *Cloud) checkToken(tok, audience string) (tokenClaims, error) {
	c.mu.Lock()
	ti, ok := c.lookupLocked(tok)
	c.mu.Unlock()
	switch {
	case tok == "":
		return tokenClaims{}, errors.New("missing bearer token")
	case !ok:
		return tokenClaims{}, errors.New("token not issued by cloudtest")
	case time.Now().Unix() >= ti.claims.Exp:
		return ti.claims, errors.New("token expired")
	case ti.claims.Aud != audience:
		return ti.claims, fmt.Errorf("invalid audience %q", ti.claims.Aud)
	}
	return ti.claims, nil
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// tenantOfToken is the tid of a known bearer token, for the request log.
func (c *Cloud) tenantOfToken(tok string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ti, _ := c.lookupLocked(tok)
	return ti.claims.Tid
}

func (c *Cloud) serveEntra(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	tenant := strings.ToLower(segs[0])
	c.record(r, tenant)
	isToken := r.Method == http.MethodPost && len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token"
	if isToken && !c.wait(r) {
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/common/discovery/instance":
		c.serveInstanceDiscovery(w, r)
	case r.Method == http.MethodGet && len(segs) == 4 && segs[1] == "v2.0" && segs[2] == ".well-known" && segs[3] == "openid-configuration":
		c.serveOpenIDConfig(w, r, tenant)
	case isToken:
		c.serveToken(w, r, tenant)
	default:
		writeAADError(w, &aadFailure{status: http.StatusNotFound, err: "invalid_request", code: 900561,
			desc: "The endpoint only accepts POST requests or the path is unknown."})
	}
}

func (c *Cloud) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := "common"
	if u, err := url.Parse(r.URL.Query().Get("authorization_endpoint")); err == nil {
		if seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/"); seg != "" {
			tenant = seg
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + LoginHost + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": LoginHost,
			"preferred_cache":   "login.windows.net",
			"aliases":           []string{LoginHost, "login.windows.net", "login.microsoft.com", "sts.windows.net"},
		}},
	})
}

// entraState is how the OpenID metadata endpoint misbehaves for every
// tenant.
type entraState struct {
	metadataStatus int  // answer every metadata request with it
	metadataHang   bool // hold every metadata request until the client gives up
}

// SetMetadataStatus makes the OpenID metadata endpoint answer every tenant
// with this HTTP status (503 and an Entra ID error body, say); 0 restores
// it. Sign-ins, which need the metadata first, fail with it.
func (c *Cloud) SetMetadataStatus(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entra.metadataStatus = status
}

// SetMetadataHang makes the OpenID metadata endpoint hold every request
// until the client gives up (or not, with false).
func (c *Cloud) SetMetadataHang(hang bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entra.metadataHang = hang
}

// metadataFault is what the metadata endpoint answers for a tenant it
// cannot serve, or nil.
func metadataFault(tenant string, tn *Tenant) *aadFailure {
	if tenant == "common" || tenant == "organizations" {
		return nil
	}
	var f *aadFailure
	switch {
	case tn == nil || tn.SignIn == FaultTenantNotFound || tn.Cloud == InstanceChina:
		f = tenantNotFound(tenant)
	case tn.SignIn == FaultTenantUnavailable || tn.SignIn == FaultTenantInactive || tn.SignIn == FaultInvalidTenantID:
		code, _ := strconv.Atoi(string(tn.SignIn))
		f = faultFor(code, tenant, "")
	default:
		return nil
	}
	f.err = "invalid_tenant"
	return f
}

func (c *Cloud) serveOpenIDConfig(w http.ResponseWriter, r *http.Request, tenant string) {
	c.mu.Lock()
	var tn *Tenant
	if t, ok := c.tenants[tenant]; ok {
		cp := *t
		tn = &cp
	}
	state := c.entra
	c.mu.Unlock()
	if state.metadataHang {
		select {
		case <-r.Context().Done():
		case <-c.done:
		}
		return
	}
	if state.metadataStatus != 0 {
		writeAADError(w, &aadFailure{status: state.metadataStatus, err: "temporarily_unavailable", retryAfter: true,
			desc: "cloudtest: the metadata endpoint is unavailable."})
		return
	}
	if f := metadataFault(tenant, tn); f != nil {
		writeAADError(w, f)
		return
	}
	instance, scope, subScope, graphHost := InstancePublic, "EU", "", GraphHost
	if tn != nil {
		instance = cmp.Or(tn.Cloud, InstancePublic)
		scope, subScope = cmp.Or(tn.RegionScope, "EU"), tn.RegionSubScope
		if instance == InstanceUSGov {
			scope, graphHost = cmp.Or(tn.RegionScope, "USGov"), "graph.microsoft.us"
		}
	}
	base := "https://" + LoginHost + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              "https://" + LoginHost + "/" + tenant + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"tenant_region_scope":                   scope,
		"tenant_region_sub_scope":               nilIfEmpty(subScope),
		"cloud_instance_name":                   instance,
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          graphHost,
	})
}

// nilIfEmpty leaves an empty string out of a JSON answer (as null), as
// Entra ID leaves tenant_region_sub_scope out for a commercial tenant.
func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// aadFailure is an Entra ID error answer.
type aadFailure struct {
	status     int
	err        string
	code       int
	desc       string
	suberror   string
	retryAfter bool
}

func tenantNotFound(tenant string) *aadFailure {
	return &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: 90002,
		desc: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant)}
}

func faultFor(code int, tenant, clientID string) *aadFailure {
	switch code {
	case 90002:
		return tenantNotFound(tenant)
	case 7000229:
		return &aadFailure{status: http.StatusUnauthorized, err: "invalid_client", code: code,
			desc: fmt.Sprintf("The client application %s is missing service principal in the tenant %s. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119", clientID, tenant)}
	case 7000112:
		return &aadFailure{status: http.StatusBadRequest, err: "unauthorized_client", code: code,
			desc: fmt.Sprintf("Application '%s'(tenantsweep test app) is disabled.", clientID)}
	case 53003:
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_grant", code: code, suberror: "message_only",
			desc: "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."}
	case 530032:
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_grant", code: code,
			desc: "The tenant admin has configured a security policy that blocks this request. Check the security policies that are defined on the tenant level to determine if your request meets the policy requirements."}
	case 5000211:
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: code,
			desc: fmt.Sprintf("A tenant restrictions policy added to this request by a device or network administrator does not allow access to '%s'.", tenant)}
	case 500021:
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: code,
			desc: fmt.Sprintf("Access to '%s' tenant is denied.", tenant)}
	case 5000224:
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: code,
			desc: "We are sorry, this resource is not available."}
	case 5000225:
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: code,
			desc: "This tenant has been blocked due to inactivity. To learn more about tenant lifecycle policies, see https://aka.ms/TenantLifecycle"}
	case 900023:
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: code,
			desc: fmt.Sprintf("Specified tenant identifier '%s' is neither a valid DNS name, nor a valid external domain.", tenant)}
	case 900382:
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: code,
			desc: "Confidential Client is not supported in Cross Cloud request."}
	case 700016:
		return &aadFailure{status: http.StatusBadRequest, err: "unauthorized_client", code: code,
			desc: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant)}
	case 7000215:
		return &aadFailure{status: http.StatusUnauthorized, err: "invalid_client", code: code,
			desc: fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)}
	case 7000222:
		return &aadFailure{status: http.StatusUnauthorized, err: "invalid_client", code: code,
			desc: fmt.Sprintf("The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", clientID)}
	case 700027:
		return &aadFailure{status: http.StatusUnauthorized, err: "invalid_client", code: code,
			desc: "Client assertion failed signature validation."}
	case 700213:
		return &aadFailure{status: http.StatusUnauthorized, err: "invalid_client", code: code,
			desc: "No matching federated identity record found for presented assertion subject."}
	case 700024:
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_client", code: code,
			desc: "Client assertion is not within its valid time range."}
	}
	return &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: code,
		desc: "cloudtest injected this sign-in fault."}
}

func writeAADError(w http.ResponseWriter, f *aadFailure) {
	now := time.Now().UTC()
	ts := now.Format("2006-01-02 15:04:05Z")
	trace, corr := guidFrom("trace", randHex(8)), guidFrom("corr", randHex(8))
	desc := f.desc
	if f.code != 0 {
		desc = fmt.Sprintf("AADSTS%d: %s", f.code, f.desc)
	}
	body := map[string]any{
		"error":             f.err,
		"error_description": fmt.Sprintf("%s Trace ID: %s Correlation ID: %s Timestamp: %s", desc, trace, corr, ts),
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
	}
	if f.code != 0 {
		body["error_codes"] = []int{f.code}
		body["error_uri"] = fmt.Sprintf("https://%s/error?code=%d", LoginHost, f.code)
	}
	if f.suberror != "" {
		body["suberror"] = f.suberror
	}
	if f.retryAfter {
		w.Header().Set("Retry-After", "0")
		w.Header().Set("retry-after-ms", "5")
	}
	writeJSON(w, f.status, body)
}

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

func (c *Cloud) serveToken(w http.ResponseWriter, r *http.Request, tenant string) {
	c.mu.Lock()
	c.tokenReqs[tenant]++
	c.totalTokenReqs++
	c.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		writeAADError(w, &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: 900144,
			desc: "The request body must be application/x-www-form-urlencoded."})
		return
	}
	resp, f := c.grant(tenant, r.PostForm)
	if f != nil {
		writeAADError(w, f)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (c *Cloud) grant(tenant string, form url.Values) (map[string]any, *aadFailure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clientID := strings.ToLower(form.Get("client_id"))
	tn := c.tenants[tenant]
	switch {
	case tn == nil || tn.SignIn == FaultTenantNotFound || tn.Cloud == InstanceChina:
		return nil, tenantNotFound(tenant)
	case tn.Cloud != "" && tn.Cloud != InstancePublic:
		return nil, faultFor(900382, tenant, clientID)
	}
	if tn.SignInThrottle > 0 {
		tn.SignInThrottle--
		return nil, &aadFailure{status: http.StatusTooManyRequests, err: "temporarily_unavailable", retryAfter: true,
			desc: "The service is temporarily unavailable because of too many requests. Retry later."}
	}
	if tn.SignInStatus != 0 {
		return nil, &aadFailure{status: tn.SignInStatus, err: "temporarily_unavailable", retryAfter: true,
			desc: "cloudtest: the service is unavailable."}
	}
	if tn.SignIn != SignInOK {
		code, err := strconv.Atoi(string(tn.SignIn))
		if err != nil {
			code = 50000
		}
		return nil, faultFor(code, tenant, clientID)
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		return nil, &aadFailure{status: http.StatusBadRequest, err: "unsupported_grant_type", code: 70003,
			desc: fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt)}
	}
	if clientID == "" {
		return nil, &aadFailure{status: http.StatusBadRequest, err: "invalid_request", code: 900144,
			desc: "The request body must contain the following parameter: 'client_id'."}
	}
	if c.app.ClientID == "" || clientID != c.app.ClientID {
		return nil, faultFor(700016, tenant, clientID)
	}
	if f := c.authenticateLocked(tenant, form); f != nil {
		return nil, f
	}
	resource, f := scopeResource(form.Get("scope"))
	if f != nil {
		return nil, f
	}
	if slices.Contains(tn.MissingResources, resource) {
		return nil, &aadFailure{status: http.StatusBadRequest, err: "invalid_resource", code: 500011,
			desc: fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, tenant)}
	}
	var granted []string
	var roles *[]string
	if resource == GraphResource {
		granted = slices.Clone(DefaultGraphRoles)
		if tn.GraphRoles != nil {
			granted = slices.Clone(tn.GraphRoles)
		}
		if tn.GraphToken == TokenWithRoles {
			claim := slices.Clone(granted)
			roles = &claim
		}
	}
	opaque := resource == GraphResource && tn.GraphToken == TokenOpaque
	tok := c.issueShapedLocked(tenant, resource, clientID, false, time.Hour, granted, roles, opaque)
	return map[string]any{"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": tok}, nil
}

// authenticateLocked checks the client's secret or assertion; c.mu is held.
func (c *Cloud) authenticateLocked(tenant string, form url.Values) *aadFailure {
	app := c.app
	if secret := form.Get("client_secret"); secret != "" {
		if app.Secret == "" || secret != app.Secret {
			return faultFor(7000215, tenant, app.ClientID)
		}
		if app.Expired {
			return faultFor(7000222, tenant, app.ClientID)
		}
		return nil
	}
	if form.Get("client_assertion_type") != jwtBearer || form.Get("client_assertion") == "" {
		return &aadFailure{status: http.StatusBadRequest, err: "invalid_client", code: 7000216,
			desc: "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."}
	}
	assertion := form.Get("client_assertion")
	if ti, ok := c.lookupLocked(assertion); ok {
		switch {
		case !app.AcceptMIAssertions || !ti.mi || ti.claims.Aud != TokenExchangeResource ||
			(app.FederatedMIClientID != "" && !strings.EqualFold(app.FederatedMIClientID, ti.claims.AppID)):
			return faultFor(700213, tenant, app.ClientID)
		case time.Now().Unix() >= ti.claims.Exp:
			return faultFor(700024, tenant, app.ClientID)
		}
		return nil
	}
	tokenURL := "https://" + LoginHost + "/" + tenant + "/oauth2/v2.0/token"
	if app.Certificate == nil || verifyAssertion(assertion, app.Certificate, app.ClientID, tokenURL) != nil {
		return faultFor(700027, tenant, app.ClientID)
	}
	return nil
}

// verifyAssertion checks a certificate-signed client assertion.
func verifyAssertion(a string, cert *x509.Certificate, clientID, tokenURL string) error {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return err
	}
	var hdr struct {
		Alg     string `json:"alg"`
		X5tS256 string `json:"x5t#S256"`
		X5t     string `json:"x5t"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return err
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("certificate key is not RSA")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch hdr.Alg {
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
	default:
		err = fmt.Errorf("alg %q", hdr.Alg)
	}
	if err != nil {
		return err
	}
	if hdr.X5tS256 != "" {
		// MSAL writes the thumbprint in standard base64, RFC 7515 says base64url.
		thumb := sha256.Sum256(cert.Raw)
		if hdr.X5tS256 != base64.StdEncoding.EncodeToString(thumb[:]) && hdr.X5tS256 != base64.RawURLEncoding.EncodeToString(thumb[:]) {
			return errors.New("x5t#S256 does not match the certificate")
		}
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var cl struct {
		Aud any    `json:"aud"`
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
		Nbf int64  `json:"nbf"`
	}
	if err := json.Unmarshal(pb, &cl); err != nil {
		return err
	}
	audOK := false
	switch aud := cl.Aud.(type) {
	case string:
		audOK = aud == tokenURL
	case []any:
		for _, v := range aud {
			audOK = audOK || v == tokenURL
		}
	}
	now := time.Now().Unix()
	switch {
	case !audOK:
		return fmt.Errorf("aud %v is not %s", cl.Aud, tokenURL)
	case !strings.EqualFold(cl.Iss, clientID) || !strings.EqualFold(cl.Sub, clientID):
		return errors.New("iss and sub must be the client id")
	case cl.Exp <= now:
		return errors.New("assertion expired")
	case cl.Nbf > now+300:
		return errors.New("assertion not yet valid")
	}
	return nil
}

func scopeResource(scope string) (string, *aadFailure) {
	for s := range strings.FieldsSeq(scope) {
		if res, ok := strings.CutSuffix(s, "/.default"); ok && res != "" {
			return res, nil
		}
	}
	return "", &aadFailure{status: http.StatusBadRequest, err: "invalid_scope", code: 1002012,
		desc: fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
