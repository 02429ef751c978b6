package onboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// fakeHomes answers Home from a map: a tenant without an entry is
// tenant_not_found, and err (when set) is every answer.
type fakeHomes struct {
	homes map[string]tenant.Home
	err   error
	calls int
}

func (f *fakeHomes) Home(_ context.Context, tenantID string) (tenant.Home, error) {
	f.calls++
	if f.err != nil {
		return tenant.Home{}, f.err
	}
	h, ok := f.homes[tenantID]
	if !ok {
		return tenant.Home{}, outcome.New(outcome.TenantNotFound, "AADSTS90002: the tenant does not exist", errors.New("400"))
	}
	return h, nil
}

type fakeLookup struct {
	info tenant.TenantInfo
	err  error
}

func (f fakeLookup) FindTenant(context.Context, string) (tenant.TenantInfo, error) {
	return f.info, f.err
}

const tenantGov = "99999999-0000-4000-8000-000000000001"

var public = tenant.Home{Instance: "microsoftonline.com", RegionScope: "EU"}

func checkedEnv(t *testing.T, homes *fakeHomes, lookup TenantLookup) *env {
	t.Helper()
	return newEnv(t, func(c *Config) {
		c.Homes = homes
		if lookup != nil {
			c.Lookup = lookup
		}
	})
}

func decodePostAnswer(t *testing.T, rr *httptest.ResponseRecorder) postResponse {
	t.Helper()
	var p postResponse
	if err := json.Unmarshal(rr.Body.Bytes(), &p); err != nil {
		t.Fatalf("answer %s: %v", rr.Body, err)
	}
	return p
}

// A tenant Entra ID does not know, or one of another cloud, is refused
// before anything is recorded, at POST and for a consent link alike.
func TestPreOnboardingCheckRefuses(t *testing.T) {
	homes := &fakeHomes{homes: map[string]tenant.Home{
		tenantGov: {Instance: "microsoftonline.us", RegionScope: "USGov", RegionSubScope: "DODCON"},
	}}
	for _, tc := range []struct {
		name, tenant, code string
		says               []string
	}{
		{"unknown tenant", tenantA, "tenant_not_found", []string{"knows no tenant " + tenantA, "AADSTS90002", "AzurePublic", "21Vianet", "Tenant ID", "nothing was recorded"}},
		{"US Government tenant", tenantGov, "wrong_cloud", []string{"AzureUSGovernment", "AzurePublic", "microsoftonline.us", "USGov", "DODCON", "AZURE_CLOUD is AzureUSGovernment", "nothing was recorded"}},
	} {
		for kind, body := range map[string]string{"registration": registrationBody(tc.tenant), "consent link": `{"tenantId":"` + tc.tenant + `","consent":true}`} {
			t.Run(tc.name+", "+kind, func(t *testing.T) {
				e := checkedEnv(t, homes, nil)
				msg := wantError(t, e.do(t, "POST", "/api/tenants", body), 422, tc.code)
				for _, s := range tc.says {
					if !strings.Contains(msg, s) {
						t.Errorf("message %q lacks %q", msg, s)
					}
				}
				if e.store.Writes() != 0 || e.ver.callCount() != 0 {
					t.Errorf("%d writes, %d verifications for a refused tenant", e.store.Writes(), e.ver.callCount())
				}
			})
		}
	}
	// A tenant of a cloud this app does not know is refused as well.
	e := checkedEnv(t, &fakeHomes{homes: map[string]tenant.Home{tenantA: {Instance: "microsoftonline.example"}}}, nil)
	if msg := wantError(t, e.do(t, "POST", "/api/tenants", registrationBody(tenantA)), 422, "wrong_cloud"); !strings.Contains(msg, "does not serve") {
		t.Errorf("message %q", msg)
	}
	// Deployed in the US Government cloud, that tenant is at home.
	e = newEnv(t, func(c *Config) { c.Homes = homes; c.Cloud = cloud.AzureUSGovernment })
	if rr := e.do(t, "POST", "/api/tenants", strings.ReplaceAll(registrationBody(tenantGov), "vault.azure.net", "vault.usgovcloudapi.net")); rr.Code != 201 {
		t.Errorf("US Government tenant in a US Government deployment: %d %s", rr.Code, rr.Body)
	}
}

// When Entra ID cannot tell (its metadata endpoint down), the tenant is
// recorded and the answer says it was not checked.
func TestPreOnboardingCheckUnavailable(t *testing.T) {
	homes := &fakeHomes{err: outcome.New(outcome.UpstreamError, "Entra ID answered HTTP 503 three times", errors.New("503"))}
	e := checkedEnv(t, homes, nil)
	rr := e.do(t, "POST", "/api/tenants", registrationBody(tenantA))
	if rr.Code != 201 {
		t.Fatalf("status %d %s", rr.Code, rr.Body)
	}
	p := decodePostAnswer(t, rr)
	if p.TenantCheck == nil || p.TenantCheck.Checked || !strings.Contains(p.TenantCheck.Message, "503 three times") || p.Verification == nil {
		t.Errorf("answer = %s", rr.Body)
	}
	if _, ok := e.store.Stored(tenantA); !ok || e.ver.callCount() != 1 {
		t.Error("not recorded and verified")
	}
	if !strings.Contains(e.logs.String(), `"level":"warn"`) || !strings.Contains(e.logs.String(), "recording it unchecked") {
		t.Errorf("log %s", e.logs)
	}

	// The consent link is handed out all the same, saying so.
	rr = e.do(t, "POST", "/api/tenants", `{"tenantId":"`+tenantB+`","consent":true}`)
	var link struct {
		ConsentURL  string       `json:"consentUrl"`
		TenantCheck *TenantCheck `json:"tenantCheck"`
	}
	if err := json.Unmarshal(rr.Body.Bytes(), &link); err != nil || rr.Code != 200 || link.ConsentURL == "" || link.TenantCheck == nil || link.TenantCheck.Checked {
		t.Errorf("consent link: %d %s", rr.Code, rr.Body)
	}
}

// A checked tenant's answer says where it lives; the home tenant's lookup
// fills an empty display name and the default domain, and without the
// permission is skipped, said at debug only.
func TestPreOnboardingCheckFills(t *testing.T) {
	homes := &fakeHomes{homes: map[string]tenant.Home{tenantA: public}}
	body := `{"tenantId":"` + tenantA + `","graph":true}`

	e := checkedEnv(t, homes, fakeLookup{info: tenant.TenantInfo{DisplayName: "Contoso Ltd", DefaultDomain: "contoso.onmicrosoft.com"}})
	rr := e.do(t, "POST", "/api/tenants", body)
	p := decodePostAnswer(t, rr)
	if rr.Code != 201 || p.TenantCheck == nil || !p.TenantCheck.Checked || p.TenantCheck.Instance != "microsoftonline.com" ||
		p.DisplayName != "Contoso Ltd" || p.DefaultDomain != "contoso.onmicrosoft.com" {
		t.Errorf("answer %d %s", rr.Code, rr.Body)
	}
	if rec, _ := e.store.Stored(tenantA); rec.DisplayName != "Contoso Ltd" || rec.DefaultDomain != "contoso.onmicrosoft.com" {
		t.Errorf("stored %+v", rec)
	}
	// A given name is kept.
	rr = e.do(t, "POST", "/api/tenants", registrationBody(tenantA))
	if p := decodePostAnswer(t, rr); p.DisplayName != "Contoso" || p.DefaultDomain != "contoso.onmicrosoft.com" {
		t.Errorf("answer %s", rr.Body)
	}

	denied := outcome.New(outcome.GraphConsentMissing, "Graph answered 403 Authorization_RequestDenied", errors.New("403"))
	e = checkedEnv(t, homes, fakeLookup{err: denied})
	rr = e.do(t, "POST", "/api/tenants", body)
	if p := decodePostAnswer(t, rr); rr.Code != 201 || p.DisplayName != "" || p.DefaultDomain != "" || !p.TenantCheck.Checked {
		t.Errorf("answer %d %s", rr.Code, rr.Body)
	}
	if !strings.Contains(e.logs.String(), `"level":"debug"`) || !strings.Contains(e.logs.String(), "CrossTenantInformation.ReadBasic.All") ||
		strings.Contains(e.logs.String(), `"level":"warn"`) {
		t.Errorf("log %s", e.logs)
	}
}

// The consent callback checks the tenant before recording it too.
func TestConsentCallbackChecksTheTenant(t *testing.T) {
	homes := &fakeHomes{homes: map[string]tenant.Home{tenantA: public}}
	e := checkedEnv(t, homes, nil)
	state := consentState(t, e, tenantA)
	delete(homes.homes, tenantA) // deleted between the link and the consent
	rr := e.do(t, "GET", callbackURL("admin_consent", "True", "tenant", tenantA, "state", state), "")
	wantHTML(t, rr, 422, "cannot be onboarded here", "nothing was recorded", "knows no tenant "+tenantA)
	if e.store.Writes() != 0 {
		t.Error("recorded")
	}

	homes.err = outcome.New(outcome.Timeout, "the sign-in did not finish in time", context.DeadlineExceeded)
	rr = e.do(t, "GET", callbackURL("admin_consent", "True", "tenant", tenantA, "state", state), "")
	wantHTML(t, rr, 200, "Onboarding succeeded", "Note: Microsoft Entra ID could not be asked whether the tenant exists")
	if _, ok := e.store.Stored(tenantA); !ok {
		t.Error("not recorded")
	}
}

// The page after consent says what is left: for a transient outcome, that
// it is retried and nothing is missing; for the app's own problem, that it
// is the app's; otherwise the step and its fix.
func TestConsentCallbackPages(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v       tenant.Verification
		says    []string
		mustNot []string
	}{
		{"upstream error", tenant.Verification{Outcome: outcome.UpstreamError, Message: "an Azure service failed or could not be reached (Key Vault answered HTTP 500 three times)",
			Remediation: "Nothing to do unless it persists: the tenant is retried on the next sweep."},
			[]string{"the check will run again", "could not finish checking it just now (upstream_error)", "HTTP 500 three times", "checks the tenant again on its next sweep", "asks nothing of you"},
			[]string{"still missing", "Nothing to do", "To finish it"}},
		{"timeout", tenant.Verification{Outcome: outcome.Timeout, Message: "the tenant did not answer within its time budget"},
			[]string{"the check will run again", "(timeout)", "next sweep"}, []string{"still missing", "To finish it"}},
		{"throttled", tenant.Verification{Outcome: outcome.Throttled, Message: "Microsoft Graph or Key Vault throttled the app"},
			[]string{"the check will run again"}, []string{"still missing"}},
		{"app credential", tenant.Verification{Outcome: outcome.AppCredentialInvalid, Step: "1", Message: "the app's own credential was rejected",
			Remediation: "The app's developer rotates the client secret"},
			[]string{"a problem of its own", "not with your tenant", "developer"}, []string{"still missing", "To finish it"}},
		{"app disabled", tenant.Verification{Outcome: outcome.AppDisabled, Step: "3", Message: "the app is disabled in tenant",
			Remediation: "az ad sp update --id x --set accountEnabled=true"},
			[]string{"One step is still missing", "step 3 of the setup", "keeping it enabled", "To finish it:", "accountEnabled=true"}, nil},
		{"blocked by policy", tenant.Verification{Outcome: outcome.BlockedByPolicy, Step: tenant.StepPolicy, Message: "a policy blocked the app",
			Remediation: "Conditional Access ... Tenant restrictions ..."},
			[]string{"a policy blocks the app&#39;s sign-in", "To finish it:"}, []string{"step policy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.ver.result = tc.v
			state := consentState(t, e, tenantA)
			rr := e.do(t, "GET", callbackURL("admin_consent", "True", "tenant", tenantA, "state", state), "")
			wantHTML(t, rr, 200, tc.says...)
			for _, s := range tc.mustNot {
				if strings.Contains(rr.Body.String(), s) {
					t.Errorf("page says %q:\n%s", s, rr.Body)
				}
			}
		})
	}
}

// The API's JSON is plain: a consent link reads as it is, with &.
func TestConsentLinkIsPlainJSON(t *testing.T) {
	e := newEnv(t, nil)
	rr := e.do(t, "POST", "/api/tenants", `{"tenantId":"`+tenantA+`","consent":true}`)
	if body := rr.Body.String(); !strings.Contains(body, "&scope=") || strings.Contains(body, `\u0026`) {
		t.Errorf("body %s", body)
	}
}
