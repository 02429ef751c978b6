package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Every customer-visible outcome is produced by its fault, through the real
// SDKs, and lands in the onboarding response and the stored verification.
func TestVerificationNamesEachFault(t *testing.T) {
	fx := newFixture(t)
	type tc struct {
		name     string
		setup    func(id string) map[string]any
		want     outcome.Code
		step     string
		remedy   string
		appFault bool
	}
	body := func(id string, graph bool, vault string, secrets ...string) map[string]any {
		b := map[string]any{"tenantId": id, "graph": graph}
		if vault != "" {
			b["keyVaults"] = []map[string]any{{"vaultUrl": cloudtest.VaultURL(vault) + "/", "secrets": secrets}}
		}
		return b
	}
	tests := []tc{
		{"ok", func(id string) map[string]any {
			fx.healthyTenant(id, "vok")
			return body(id, true, "vok", "db-password")
		}, outcome.OK, "", "", false},
		{"app not in tenant", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{SignIn: cloudtest.FaultAppNotInTenant})
			return body(id, true, "")
		}, outcome.AppNotInTenant, "3", "az ad sp create --id " + testAppID, false},
		{"no service principal", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{SignIn: cloudtest.FaultNoServicePrincipal})
			return body(id, true, "")
		}, outcome.AppNotInTenant, "3", "az ad sp create --id " + testAppID, false},
		{"app disabled", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{SignIn: cloudtest.FaultAppDisabled})
			return body(id, true, "")
		}, outcome.AppDisabled, "3", "az ad sp update --id " + testAppID + " --set accountEnabled=true", false},
		{"conditional access", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{SignIn: cloudtest.FaultConditionalAccess})
			return body(id, true, "")
		}, outcome.BlockedByPolicy, "policy", "Service principal sign-ins", false},
		{"tenant restrictions", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{SignIn: cloudtest.FaultTenantRestrictions})
			return body(id, true, "")
		}, outcome.BlockedByPolicy, "policy", "network or device the app signs in from", false},
		{"no Key Vault principal", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", MissingResources: []string{cloudtest.VaultResource}})
			fx.cloud.AddVault("vnokv", id, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"db-password": {Value: "v", Enabled: true}}})
			return body(id, true, "vnokv", "db-password")
		}, outcome.ResourceNotInTenant, "5", "az ad sp create --id cfa8b339-82a2-471a-a3c9-0fc0be7a4093", false},
		{"graph consent missing", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", GraphStatus: 403})
			return body(id, true, "")
		}, outcome.GraphConsentMissing, "4", "adminconsent?client_id=" + testAppID, false},
		{"graph permission missing", func(id string) map[string]any {
			// The app gained User.Read.All after this tenant consented; the
			// vault is read all the same.
			fx.healthyTenant(id, "vdrift")
			fx.cloud.UpdateTenant(id, func(tn *cloudtest.Tenant) { tn.GraphRoles = []string{"Organization.Read.All"} })
			return body(id, true, "vdrift", "db-password")
		}, outcome.GraphPermissionMissing, "4", "adminconsent?client_id=" + testAppID, false},
		{"key vault access denied", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x"})
			fx.cloud.AddVault("vdenied", id, cloudtest.Vault{Status: 403})
			return body(id, false, "vdenied", "db-password")
		}, outcome.KeyVaultAccessDenied, "5", "Key Vault Secrets User", false},
		{"secret not found", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x"})
			fx.cloud.AddVault("vempty", id, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{}})
			return body(id, false, "vempty", "missing-secret")
		}, outcome.SecretNotFound, "5", "missing-secret", false},
		{"throttled", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", GraphStatus: 429})
			return body(id, true, "")
		}, outcome.Throttled, "", "next sweep", false},
		{"upstream error", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", GraphStatus: 503})
			return body(id, true, "")
		}, outcome.UpstreamError, "", "next sweep", false},
		{"timeout", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", GraphHang: true})
			return body(id, true, "")
		}, outcome.Timeout, "", "next sweep", false},
		{"our credential expired", func(id string) map[string]any {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x"})
			fx.cloud.UpdateApp(func(a *cloudtest.App) { a.Expired = true })
			return body(id, true, "")
		}, outcome.AppCredentialInvalid, "1", "developer rotates", true},
	}
	a := fx.inProcess(t, deps{}, "ONBOARD_VERIFY_TIMEOUT", "2s")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tenantID(7000 + i)
			raw, _ := json.Marshal(tt.setup(id))
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/api/tenants", strings.NewReader(string(raw)))
			req.Header.Set("Content-Type", "application/json")
			a.api.ServeHTTP(rec, req)
			var got tenant.Record
			if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &got) != nil || got.Verification == nil {
				t.Fatalf("POST: %d %s", rec.Code, rec.Body)
			}
			v := got.Verification
			if v.Outcome != tt.want || v.Step != tt.step || !strings.Contains(v.Remediation, tt.remedy) || v.Message == "" {
				t.Fatalf("verification = %+v, want %s, step %q, remediation with %q", v, tt.want, tt.step, tt.remedy)
			}
			stored, err := fx.store.Get(t.Context(), id)
			if err != nil || stored.Verification == nil || stored.Verification.Outcome != tt.want {
				t.Fatalf("stored verification = %+v, %v", stored.Verification, err)
			}
			// The message names the cause (a policy's kind, never its name).
			if kind, ok := map[string]string{
				"conditional access":     "AADSTS53003: a Conditional Access policy for workload identities",
				"tenant restrictions":    "AADSTS5000211: a tenant restrictions policy of the network the app signs in from",
				"app disabled":           "AADSTS7000112",
				"no Key Vault principal": "AADSTS500011: the tenant has no service principal for https://vault.azure.net",
			}[tt.name]; ok && !strings.Contains(v.Message, kind) {
				t.Errorf("message %q lacks %q", v.Message, kind)
			}
			if tt.want == outcome.GraphPermissionMissing {
				checkPermissionMissing(t, fx, id, v.Message, v.Remediation)
			}
			if strings.Contains(rec.Body.String(), testAppSecret) || strings.Contains(rec.Body.String(), cloudtest.TokenMarker) {
				t.Fatal("response leaks a secret or a token")
			}
		})
	}
}

// checkPermissionMissing checks what a graph_permission_missing outcome of
// tenant id (granted Organization.Read.All only) says and did: it names the
// missing permission, links to that tenant's admin consent, sent Graph
// nothing and still read the tenant's vault.
func checkPermissionMissing(t *testing.T, fx *fixture, id, message, remediation string) {
	t.Helper()
	if !strings.Contains(message, "User.Read.All (or Directory.Read.All)") || strings.Contains(message, "Organization.Read.All") {
		t.Errorf("message %q should name User.Read.All, and only it", message)
	}
	link := tenant.Advisor{AppID: testAppID, Cloud: cloud.AzurePublic}.AdminConsentURL(id)
	if !strings.Contains(remediation, link) {
		t.Errorf("remediation %q lacks the tenant's consent link %s", remediation, link)
	}
	vaultReads := 0
	for _, r := range fx.cloud.Requests() {
		switch {
		case r.Tenant != id:
		case r.Host == cloudtest.GraphHost:
			t.Errorf("Graph received %s %s for a tenant lacking a permission", r.Method, r.Path)
		case strings.HasSuffix(r.Host, "."+cloudtest.VaultSuffix):
			vaultReads++
		}
	}
	if vaultReads == 0 {
		t.Error("the tenant's vault was not read")
	}
}
