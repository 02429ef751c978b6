package tenant

import (
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// Each outcome of a registered key names the key and its vault, is the
// vault owner's (step 5), and its remediation is the command that fixes it.
func TestKeyAdvice(t *testing.T) {
	a := Advisor{AppID: appID, Cloud: cloud.AzurePublic}
	key := Subject{TenantID: regTenant, VaultURL: "https://contoso-kv.vault.azure.net/", Key: "cmk"}
	firewall := key
	firewall.Firewall = true
	tests := []struct {
		name    string
		code    outcome.Code
		s       Subject
		message []string
		remedy  []string
	}{
		{"no role on the key", outcome.KeyVaultAccessDenied, key,
			[]string{`key "cmk"`, "https://contoso-kv.vault.azure.net/", "get, wrapKey and unwrapKey"},
			[]string{`az role assignment create --role "Key Vault Crypto Service Encryption User" --assignee ` + appID +
				` --scope "$(az keyvault show --name contoso-kv --query id -o tsv)/keys/cmk"`,
				"az keyvault set-policy --name contoso-kv --spn " + appID + " --key-permissions get wrapKey unwrapKey"}},
		{"the vault's firewall", outcome.KeyVaultAccessDenied, firewall,
			[]string{"firewall", "trusted Microsoft services", "its own network addresses"},
			[]string{"az keyvault network-rule add --name contoso-kv --ip-address <address>"}},
		{"no such key", outcome.KeyNotFound, key,
			[]string{`key "cmk" does not exist`},
			[]string{"az keyvault key recover --vault-name contoso-kv --name cmk", "az keyvault key create --vault-name contoso-kv --name cmk --kty RSA"}},
		{"disabled", outcome.KeyDisabled, key,
			[]string{`key "cmk"`, "is disabled"},
			[]string{"az keyvault key set-attributes --vault-name contoso-kv --name cmk --enabled true"}},
		{"expired", outcome.KeyExpired, key,
			[]string{`key "cmk"`, "has expired", "refuses to wrap"},
			[]string{"az keyvault key rotate --vault-name contoso-kv --name cmk", "--expires <date>"}},
		{"unusable", outcome.KeyUnusable, key,
			[]string{`key "cmk"`, "RSA-OAEP-256"},
			[]string{"az keyvault key set-attributes --vault-name contoso-kv --name cmk --ops wrapKey unwrapKey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adv := a.Advise(tt.code, tt.s)
			if adv.Step != "5" {
				t.Errorf("step %q, want 5", adv.Step)
			}
			for _, want := range tt.message {
				if !strings.Contains(adv.Message, want) {
					t.Errorf("message %q lacks %q", adv.Message, want)
				}
			}
			for _, want := range tt.remedy {
				if !strings.Contains(adv.Remediation, want) {
					t.Errorf("remediation %q lacks %q", adv.Remediation, want)
				}
			}
		})
	}

	// A secret's refusal keeps its own advice.
	secret := a.Advise(outcome.KeyVaultAccessDenied, Subject{TenantID: regTenant, VaultURL: "https://contoso-kv.vault.azure.net/", Secret: "db"})
	if !strings.Contains(secret.Remediation, `--role "Key Vault Secrets User"`) || strings.Contains(secret.Remediation, KeyRole) {
		t.Errorf("a secret's remediation %q", secret.Remediation)
	}
}
