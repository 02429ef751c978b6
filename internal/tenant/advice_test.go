package tenant

import (
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// Every outcome has advice of its own: a failure that is not transient
// names the step still owed and a remediation that says who does what,
// with the command where there is one.
func TestEveryOutcomeHasItsAdvice(t *testing.T) {
	a := Advisor{AppID: appID, Cloud: cloud.AzurePublic}
	sign := Subject{TenantID: tenantID}
	vault := Subject{TenantID: tenantID, VaultURL: vaultURL, Secret: "db-password"}
	fallback := a.Advise("no_such_code", sign)
	for _, tc := range []struct {
		code    outcome.Code
		subject Subject
		step    string
		remedy  []string // each must be in the remediation
	}{
		{outcome.AppNotInTenant, sign, "3", []string{"az ad sp create --id " + appID, tenantID}},
		{outcome.AppDisabled, sign, "3", []string{"az ad sp update --id " + appID + " --set accountEnabled=true", tenantID, "Enabled for users to sign-in"}},
		{outcome.BlockedByPolicy, sign, StepPolicy, []string{"Conditional Access", "Tenant restrictions", "Service principal sign-ins", appID, "not the customer"}},
		{outcome.TenantNotFound, sign, "onboarding", []string{"Tenant ID", "DELETE /api/tenants/" + tenantID}},
		{outcome.WrongCloud, sign, "onboarding", []string{"DELETE /api/tenants/" + tenantID, "AzureUSGovernment", "AzureChina"}},
		{outcome.AppCredentialInvalid, sign, "1", []string{"developer"}},
		{outcome.GraphConsentMissing, sign, "4", []string{"adminconsent?client_id=" + appID}},
		{outcome.GraphPermissionMissing, sign, "4", []string{"adminconsent?client_id=" + appID}},
		{outcome.ResourceNotInTenant, vault, "5", []string{"az ad sp create --id " + keyVaultAppID, tenantID}},
		{outcome.ResourceNotInTenant, sign, "4", []string{"az ad sp create --id " + graphAppID}},
		{outcome.KeyVaultAccessDenied, vault, "5", []string{"Key Vault Secrets User", "contoso"}},
		{outcome.SecretNotFound, vault, "5", []string{"db-password"}},
	} {
		adv := a.Advise(tc.code, tc.subject)
		if adv.Step != tc.step || adv.Message == "" || adv.Message == fallback.Message {
			t.Errorf("%s: step %q message %q, want step %q and a message of its own", tc.code, adv.Step, adv.Message, tc.step)
		}
		for _, want := range tc.remedy {
			if !strings.Contains(adv.Remediation, want) {
				t.Errorf("%s: remediation %q lacks %q", tc.code, adv.Remediation, want)
			}
		}
	}
	for _, c := range outcome.Codes {
		adv := a.Advise(c, sign)
		if c != outcome.UpstreamError && adv.Message == fallback.Message {
			t.Errorf("%s falls to the default advice", c)
		}
		if c.Transient() && (adv.Step != "" || !strings.Contains(adv.Remediation, "retried")) {
			t.Errorf("%s is transient: advice %+v should name no step and say it is retried", c, adv)
		}
	}
	// Tenants of 21Vianet are invisible from the global cloud, not
	// reported in another one.
	if m := a.Advise(outcome.TenantNotFound, sign).Message; !strings.Contains(m, "21Vianet") {
		t.Errorf("tenant_not_found in AzurePublic: %q", m)
	}
	if m := (Advisor{AppID: appID, Cloud: cloud.AzureChina}).Advise(outcome.TenantNotFound, sign).Message; strings.Contains(m, "21Vianet") {
		t.Errorf("tenant_not_found in AzureChina: %q", m)
	}
}
