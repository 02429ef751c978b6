package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/azauth"
	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/graph"
	"github.com/tenantsweep/tenantsweep/internal/keyvault"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

const homeTenantID = "0e0e0e0e-1111-4222-8333-000000000001"

type postAnswer struct {
	tenant.Record
	TenantCheck *struct {
		Checked       bool   `json:"checked"`
		CloudInstance string `json:"cloudInstance"`
		RegionScope   string `json:"regionScope"`
		Message       string `json:"message"`
	} `json:"tenantCheck"`
	Error *struct{ Code, Message string } `json:"error"`
}

func post(t *testing.T, a *app, body map[string]any) (int, postAnswer) {
	t.Helper()
	raw, _ := json.Marshal(body)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/api/tenants", strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	a.api.ServeHTTP(rec, req)
	var ans postAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
		t.Fatalf("answer %d %s: %v", rec.Code, rec.Body, err)
	}
	return rec.Code, ans
}

// Before a tenant is recorded, its OpenID metadata says whether it exists
// and which cloud it lives in: a typo'd, deleted or other-cloud tenant is
// refused with nothing recorded, and a metadata endpoint that is down lets
// onboarding go on, saying the tenant was not checked. With APP_TENANT_ID,
// the home tenant fills the display name and default domain when the app
// may look tenants up there.
func TestPreOnboardingCheck(t *testing.T) {
	fx := newFixture(t)
	fx.cloud.UpdateApp(func(a *cloudtest.App) { a.HomeTenant = homeTenantID })
	fx.cloud.AddTenant(homeTenantID, cloudtest.Tenant{OrgName: "Developer", GraphRoles: []string{"CrossTenantInformation.ReadBasic.All"}})
	a := fx.inProcess(t, deps{}, "ONBOARD_VERIFY_TIMEOUT", "2s", "APP_TENANT_ID", homeTenantID,
		"ONBOARD_REDIRECT_URI", "https://tenantsweep.example/api/consent/callback", "ONBOARD_STATE_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	for i, tc := range []struct {
		name  string
		setup func(id string)
		code  string
		says  string
	}{
		{"unknown tenant", func(string) {}, "tenant_not_found", "AADSTS90002"},
		{"deleted tenant", func(id string) { fx.cloud.AddTenant(id, cloudtest.Tenant{SignIn: cloudtest.FaultTenantUnavailable}) }, "tenant_not_found", "AADSTS5000224"},
		{"US Government tenant", func(id string) {
			fx.cloud.AddTenant(id, cloudtest.Tenant{Cloud: cloudtest.InstanceUSGov, RegionSubScope: "DODCON"})
		}, "wrong_cloud", "lives in AzureUSGovernment (cloud_instance_name microsoftonline.us, tenant_region_scope USGov, tenant_region_sub_scope DODCON), but this deployment serves AzurePublic"},
		{"21Vianet tenant", func(id string) { fx.cloud.AddTenant(id, cloudtest.Tenant{Cloud: cloudtest.InstanceChina}) }, "tenant_not_found", "21Vianet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tenantID(7800 + i)
			tc.setup(id)
			for _, body := range []map[string]any{{"tenantId": id, "graph": true}, {"tenantId": id, "consent": true}} {
				status, ans := post(t, a, body)
				if status != http.StatusUnprocessableEntity || ans.Error == nil || ans.Error.Code != tc.code || !strings.Contains(ans.Error.Message, tc.says) {
					t.Errorf("POST %v: %d %+v, want 422 %s saying %q", body, status, ans.Error, tc.code, tc.says)
				}
			}
			if _, err := fx.store.Get(context.Background(), id); err == nil {
				t.Error("a refused tenant was recorded")
			}
			if n := fx.cloud.TokenRequests(id); n != 0 {
				t.Errorf("%d token requests for a refused tenant", n)
			}
		})
	}

	t.Run("checked and filled from the home tenant", func(t *testing.T) {
		id := tenantID(7810)
		fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "Fabrikam", Users: 1, RegionScope: "NA", DefaultDomain: "fabrikam.onmicrosoft.com"})
		status, ans := post(t, a, map[string]any{"tenantId": id, "graph": true})
		if status != http.StatusCreated || ans.TenantCheck == nil || !ans.TenantCheck.Checked || ans.TenantCheck.CloudInstance != "microsoftonline.com" ||
			ans.TenantCheck.RegionScope != "NA" || ans.DisplayName != "Fabrikam" || ans.DefaultDomain != "fabrikam.onmicrosoft.com" ||
			ans.Verification == nil || ans.Verification.Outcome != outcome.OK {
			t.Fatalf("answer %d %+v", status, ans)
		}
		if stored, err := fx.store.Get(context.Background(), id); err != nil || stored.DefaultDomain != "fabrikam.onmicrosoft.com" {
			t.Errorf("stored %+v, %v", stored, err)
		}
		// The home tenant's token serves every lookup of the process.
		next := tenantID(7813)
		fx.cloud.AddTenant(next, cloudtest.Tenant{OrgName: "Tailspin", Users: 1, DefaultDomain: "tailspin.onmicrosoft.com"})
		if status, ans := post(t, a, map[string]any{"tenantId": next, "graph": true}); status != http.StatusCreated || ans.DisplayName != "Tailspin" {
			t.Fatalf("second lookup: %d %+v", status, ans)
		}
		if n := fx.cloud.TokenRequests(homeTenantID); n != 1 {
			t.Errorf("%d token requests in the home tenant for two lookups, want 1", n)
		}
	})

	t.Run("without the lookup permission", func(t *testing.T) {
		fx.cloud.UpdateTenant(homeTenantID, func(tn *cloudtest.Tenant) { tn.GraphRoles = []string{} })
		b := inProcessFresh(t, fx, "APP_TENANT_ID", homeTenantID)
		id := tenantID(7811)
		fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "Woodgrove", Users: 1})
		status, ans := post(t, b, map[string]any{"tenantId": id, "graph": true})
		if status != http.StatusCreated || ans.DisplayName != "" || ans.DefaultDomain != "" || !ans.TenantCheck.Checked {
			t.Errorf("answer %d %+v", status, ans)
		}
	})

	t.Run("metadata endpoint down", func(t *testing.T) {
		id := tenantID(7812)
		fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", Users: 1})
		fx.cloud.SetMetadataStatus(http.StatusServiceUnavailable)
		defer fx.cloud.SetMetadataStatus(0)
		start := time.Now()
		status, ans := post(t, a, map[string]any{"tenantId": id, "graph": true})
		if status != http.StatusCreated || ans.TenantCheck == nil || ans.TenantCheck.Checked ||
			!strings.Contains(ans.TenantCheck.Message, "Entra ID answered HTTP 503") || ans.Verification == nil {
			t.Fatalf("answer %d %+v", status, ans)
		}
		// The sign-in does not read the document (azauth answers MSAL's
		// discovery in the process), so the verification still runs.
		if ans.Verification.Outcome != outcome.OK {
			t.Errorf("verification %+v, want ok", *ans.Verification)
		}
		if _, err := fx.store.Get(context.Background(), id); err != nil {
			t.Errorf("not recorded: %v", err)
		}
		t.Logf("onboarding with the metadata endpoint down answered in %s", time.Since(start).Round(time.Millisecond))
	})
}

// inProcessFresh is inProcess for a second app over the same fixture.
func inProcessFresh(t *testing.T, fx *fixture, settings ...string) *app {
	t.Helper()
	return fx.inProcess(t, deps{}, append([]string{"ONBOARD_VERIFY_TIMEOUT", "2s"}, settings...)...)
}

// The sweep records what the access task finds, with the adapters newApp
// wires: a tenant recorded earlier that lost the app's access in any of
// these ways gets its own outcome, step and remediation, as onboarding's
// verification does.
func TestSweepNamesLostAccess(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: testAppID, Secret: testAppSecret})
	creds, err := azauth.New(context.Background(), config.App{ClientID: testAppID, Method: config.MethodSecret, Secret: testAppSecret},
		cloud.AzurePublic, azauth.Options{Transport: c.HTTPClient(), DisableInstanceDiscovery: true,
			Retry: &policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	gr := graph.New(cloud.AzurePublic, graph.Options{Transport: c.HTTPClient().Transport})
	p, err := task.New(task.Config{
		Tasks: []task.Task{tasks.Access{Directory: gr,
			Vaults: keyvault.New(cloud.AzurePublic, keyvault.Options{Transport: c.HTTPClient()})}},
		SignIn: creds, Graph: gr, Advisor: tenant.Advisor{AppID: testAppID, Cloud: cloud.AzurePublic}, Cloud: cloud.AzurePublic,
		ClientOptions: azcore.ClientOptions{Transport: c.HTTPClient()},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name   string
		tenant *cloudtest.Tenant // nil: deleted after it was recorded
		vault  bool
		code   outcome.Code
		step   string
		detail string
	}{
		{"deleted", nil, false, outcome.TenantNotFound, "onboarding", "AADSTS90002"},
		{"deactivated", &cloudtest.Tenant{SignIn: cloudtest.FaultTenantUnavailable}, false, outcome.TenantNotFound, "onboarding", "AADSTS5000224"},
		{"blocked for inactivity", &cloudtest.Tenant{SignIn: cloudtest.FaultTenantInactive}, false, outcome.TenantNotFound, "onboarding", "AADSTS5000225"},
		{"app disabled", &cloudtest.Tenant{SignIn: cloudtest.FaultAppDisabled}, false, outcome.AppDisabled, "3", "AADSTS7000112"},
		{"no service principal", &cloudtest.Tenant{SignIn: cloudtest.FaultNoServicePrincipal}, false, outcome.AppNotInTenant, "3", "AADSTS7000229"},
		{"conditional access", &cloudtest.Tenant{SignIn: cloudtest.FaultConditionalAccess}, false, outcome.BlockedByPolicy, "policy", "Conditional Access policy for workload identities"},
		{"tenant restrictions", &cloudtest.Tenant{SignIn: cloudtest.FaultTenantRestrictions}, false, outcome.BlockedByPolicy, "policy", "tenant restrictions policy"},
		{"another cloud", &cloudtest.Tenant{Cloud: cloudtest.InstanceUSGov}, false, outcome.WrongCloud, "onboarding", "AADSTS900382"},
		{"no Key Vault principal", &cloudtest.Tenant{OrgName: "x", MissingResources: []string{cloudtest.VaultResource}}, true, outcome.ResourceNotInTenant, "5", "AADSTS500011"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tenantID(7900 + i)
			rec := tenant.Record{TenantID: id, Status: tenant.StatusActive, Graph: true}
			if tc.tenant != nil {
				c.AddTenant(id, *tc.tenant)
			}
			if tc.vault {
				c.AddVault("lost"+id[:6], id, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"s": {Value: "v", Enabled: true}}})
				rec.KeyVaults = []tenant.KeyVault{{VaultURL: cloudtest.VaultURL("lost"+id[:6]) + "/", Secrets: []string{"s"}}}
			}
			res := p.Probe(context.Background(), rec)
			if res.Outcome != tc.code || res.Step != tc.step || res.Remediation == "" || !strings.Contains(res.Message, tc.detail) {
				t.Errorf("result = %s step %q: %s | %s; want %s step %q with %q", res.Outcome, res.Step, res.Message, res.Remediation, tc.code, tc.step, tc.detail)
			}
		})
	}
}

// TenantSweep's answer and the run history carry the app's posture: here a
// client secret of the registration expiring in 10 days (read from the
// home tenant with Application.Read.All), as a status line of its own.
func TestPlannedRunReportsThePosture(t *testing.T) {
	fx := newFixture(t)
	fx.cloud.UpdateApp(func(a *cloudtest.App) {
		a.HomeTenant = homeTenantID
		a.Secrets = []cloudtest.AppCredential{
			{KeyID: "11111111-2222-4333-8444-000000000001", DisplayName: "sweep", EndDateTime: time.Now().Add(10*24*time.Hour + time.Hour)},
			{KeyID: "11111111-2222-4333-8444-000000000002", DisplayName: "next", EndDateTime: time.Now().Add(400 * 24 * time.Hour)},
		}
	})
	fx.cloud.AddTenant(homeTenantID, cloudtest.Tenant{OrgName: "Developer", GraphRoles: []string{"Application.Read.All"}})
	a := fx.inProcess(t, deps{}, "APP_TENANT_ID", homeTenantID)
	ctx, _ := funchost.Begin(context.Background(), zerolog.Nop(), sweepFunction, "")
	res, err := a.sweepTimer(ctx, funchost.TimerInfo{})
	if err != nil {
		t.Fatal(err)
	}
	want := "app posture: client secret sweep (11111111-2222-4333-8444-000000000001) expires on"
	if len(res.Logs) != 2 || !strings.HasPrefix(res.Logs[1], want) || !strings.Contains(res.Logs[1], "in 10 days") || strings.Contains(res.Logs[1], "next") {
		t.Errorf("logs = %q, want the posture line %q...", res.Logs, want)
	}
	runs, err := fx.store.RecentRuns(context.Background(), 1)
	if err != nil || len(runs) != 1 || runs[0].Posture == nil || len(runs[0].Posture.Expiring) != 1 {
		t.Fatalf("run history = %+v, %v", runs, err)
	}
}
