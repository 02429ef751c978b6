package azauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// aadstsOutcomes are the sign-in codes with an outcome of their own, and a
// customer-safe description of each. Sources: Microsoft Entra's AADSTS
// reference (learn.microsoft.com/entra/identity-platform/reference-error-codes)
// unless noted; docs/operations.md lists them with their outcome.
var aadstsOutcomes = map[int]struct {
	code   outcome.Code
	detail string
}{
	700016: {outcome.AppNotInTenant, "the application is not present in the tenant (admin consent is missing)"},
	// The service principal is required for every app-only sign-in since
	// March 2026 (Entra's "service principal-less authentication" retirement).
	7000229: {outcome.AppNotInTenant, "the app has no service principal in the tenant, which an app-only sign-in needs"},
	7000112: {outcome.AppDisabled, "the app's enterprise application is disabled in the tenant"},
	53003:   {outcome.BlockedByPolicy, "a Conditional Access policy for workload identities in the tenant blocks the app's sign-in"},
	530032:  {outcome.BlockedByPolicy, "a security policy of the tenant blocks the app's sign-in"},
	// Tenant restrictions are added to the request by the proxy or device
	// the app signs in from, and belong to that network's tenant.
	5000211: {outcome.BlockedByPolicy, "a tenant restrictions policy of the network the app signs in from does not allow access to the tenant"},
	500021:  {outcome.BlockedByPolicy, "tenant restrictions of the network the app signs in from deny access to the tenant"},
	500022:  {outcome.BlockedByPolicy, "tenant restrictions of the network the app signs in from deny access to the tenant"},
	90002:   {outcome.TenantNotFound, "the tenant does not exist"},
	// Not in the reference: Entra's answer for a tenant id that is neither
	// a GUID of a tenant nor a domain.
	900023: {outcome.TenantNotFound, "the tenant identifier is not valid"},
	// Not in the reference: a tenant deleted or deauthenticated (Microsoft
	// Q&A); 5000225 is a tenant blocked for inactivity, deleted 20 days
	// later (Entra's "Tenant inaccessible due to inactivity").
	5000224: {outcome.TenantNotFound, "the tenant is no longer available (deleted or deactivated)"},
	5000225: {outcome.TenantNotFound, "the tenant was blocked for inactivity and is deleted 20 days after"},
	900382:  {outcome.WrongCloud, "the tenant is in another Microsoft cloud (no app sign-in across clouds)"},
	900432:  {outcome.WrongCloud, "the tenant is in another Microsoft cloud (no app sign-in across clouds)"},
	90038:   {outcome.WrongCloud, "the tenant belongs to another national cloud"},
	7000215: {outcome.AppCredentialInvalid, "the app's client secret is invalid"},
	7000222: {outcome.AppCredentialInvalid, "the app's client secret has expired"},
	700027:  {outcome.AppCredentialInvalid, "the app's certificate or client assertion was rejected"},
	// A federated credential that does not match the managed identity is the
	// app's configuration too.
	70021:  {outcome.AppCredentialInvalid, "no federated credential of the app matches the managed identity"},
	700211: {outcome.AppCredentialInvalid, "no federated credential of the app matches the assertion's issuer"},
	700213: {outcome.AppCredentialInvalid, "no federated credential of the app matches the assertion's subject"},
}

// resourceNotInTenant is AADSTS500011: the resource of the token asked for
// has no service principal in the tenant. Its detail names the resource,
// which only the request knows.
const resourceNotInTenant = 500011

var (
	aadstsRE   = regexp.MustCompile(`AADSTS(\d{4,8})`)
	oauthErrRE = regexp.MustCompile(`^[a-z_]{1,40}$`)
)

// secretRejected reports whether err is Entra ID refusing the client secret.
func secretRejected(err error) bool {
	code, _, _ := signInFailure(err)
	return code == 7000215 || code == 7000222
}

// signInFailure extracts the AADSTS code, OAuth error and HTTP status of a
// response carried by an MSAL error (the tenant credentials) or an
// azidentity one (the managed identity).
func signInFailure(err error) (aadsts int, oauthErr string, resp *http.Response) {
	var afe *azidentity.AuthenticationFailedError
	var ce msalerrors.CallErr
	var ae *answerError
	switch {
	case errors.As(err, &afe) && afe.RawResponse != nil:
		resp = afe.RawResponse
	case errors.As(err, &ce) && ce.Resp != nil:
		resp = ce.Resp
	case errors.As(err, &ae):
		resp = ae.resp
	default:
		return 0, "", nil
	}
	body := payload(resp)
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Codes       []int  `json:"error_codes"`
	}
	_ = json.Unmarshal(body, &e)
	if len(e.Codes) > 0 {
		aadsts = e.Codes[0]
	} else if m := aadstsRE.FindStringSubmatch(e.Description); m != nil {
		aadsts, _ = strconv.Atoi(m[1])
	}
	if oauthErrRE.MatchString(e.Error) {
		oauthErr = e.Error
	}
	return aadsts, oauthErr, resp
}

// answerError is Entra ID's error answer to a request of ours (the OpenID
// metadata Home reads), classified as MSAL's error for the same answer is.
type answerError struct{ resp *http.Response }

func (e *answerError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d", e.resp.Request.Method, e.resp.Request.URL.Path, e.resp.StatusCode)
}

// payloadMu serialises reading a failed response's body. MSAL resolves a
// tenant's OpenID metadata once for all the requests waiting on it (a
// singleflight), so a tenant's Graph sign-in and its Key Vault prefetch get
// the same error holding the same *http.Response. MSAL leaves its body as a
// one-shot buffer, which runtime.Payload drains and then replaces with a
// re-readable copy: read by both at once, one of them could find it empty
// and lose the AADSTS code (a tenant that does not exist was then reported
// as "Entra ID refused the sign-in with HTTP 400", about once in 3,600
// not-found sign-ins, and the race detector flagged it). Only failures take
// the lock.
var payloadMu sync.Mutex

func payload(resp *http.Response) []byte {
	payloadMu.Lock()
	defer payloadMu.Unlock()
	body, _ := runtime.Payload(resp)
	return body
}

// classify turns a GetToken failure for scope into an *outcome.Error that
// keeps err as its cause; outcome.Settled takes an outcome, a deadline and a
// cancellation first.
func classify(ctx context.Context, err error, scope string) error {
	code, oauthErr, resp := signInFailure(err)
	if settled, ok := outcome.Settled(ctx, err, resp != nil, "the sign-in did not finish in time"); ok {
		return settled
	}
	if known, ok := aadstsOutcomes[code]; ok {
		return outcome.New(known.code, fmt.Sprintf("AADSTS%d: %s", code, known.detail), err)
	}
	if code == resourceNotInTenant {
		return outcome.New(outcome.ResourceNotInTenant,
			fmt.Sprintf("AADSTS%d: the tenant has no service principal for %s", code, resourceOf(scope)), err)
	}
	if resp != nil {
		who := "Entra ID"
		if resp.Request != nil && !strings.Contains(resp.Request.URL.Path, "/oauth2/") && !strings.Contains(resp.Request.URL.Path, "/.well-known/") {
			who = "the managed identity endpoint"
		}
		switch st := resp.StatusCode; {
		case st == http.StatusTooManyRequests:
			return outcome.New(outcome.Throttled, "sign-in was throttled by "+who, err)
		case st >= 500:
			return outcome.New(outcome.UpstreamError, outcome.Answered(ctx, who, st), err)
		case code != 0 && oauthErr != "":
			return outcome.New(outcome.UpstreamError, fmt.Sprintf("AADSTS%d: sign-in was refused (%s)", code, oauthErr), err)
		case code != 0:
			return outcome.New(outcome.UpstreamError, fmt.Sprintf("AADSTS%d: sign-in was refused", code), err)
		default:
			return outcome.New(outcome.UpstreamError, fmt.Sprintf("%s refused the sign-in with HTTP %d", who, st), err)
		}
	}
	// azidentity (and MSAL, for some failures) flattens errors into text, so
	// a deadline may be visible only there.
	if strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
		return outcome.New(outcome.Timeout, "the sign-in did not finish in time", err)
	}
	// No answer: the host did not resolve, refused the connection (both
	// not retried, see outcome.RetryWithin) or dropped it. The error holds
	// the URL and the network error, no response body, so no token.
	zerolog.Ctx(ctx).Debug().Err(err).Msg("the sign-in service could not be reached")
	if pe, ok := errors.AsType[*outcome.ProxyRefusedError](err); ok {
		return outcome.New(outcome.UpstreamError, "the sign-in service could not be reached: "+pe.Detail(), err)
	}
	return outcome.New(outcome.UpstreamError, "the sign-in service could not be reached", err)
}

// resourceOf names the resource of a token scope of ours ("https://vault.azure.net"
// for "https://vault.azure.net/.default").
func resourceOf(scope string) string {
	if r, ok := strings.CutSuffix(scope, "/.default"); ok && r != "" {
		return r
	}
	return "the resource"
}
