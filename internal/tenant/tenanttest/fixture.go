package tenanttest

import (
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// FullRecord sets every field of a record, with text that needs escaping,
// for round-trip tests of a store.
func FullRecord(id string) tenant.Record {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	backoff := at.Add(90 * time.Minute)
	expires := at.Add(24 * time.Hour)
	enabled := true
	return tenant.Record{
		TenantID:      id,
		DisplayName:   "Contoso Ltd — Zürich 😀",
		DefaultDomain: "contoso.onmicrosoft.com",
		Status:        tenant.StatusActive,
		Graph:         true,
		KeyVaults: []tenant.KeyVault{
			{VaultURL: "https://contoso-kv.vault.azure.net/", Secrets: []string{"db-password", "api-key"}},
			{VaultURL: "https://contoso-kv2.vault.azure.net/", Secrets: []string{"x"}},
		},
		OnboardedAt: at,
		UpdatedAt:   at.Add(time.Nanosecond),
		Verification: &tenant.Verification{
			Outcome: outcome.KeyVaultAccessDenied, Step: "keyvault", Message: "403 from the vault",
			Remediation: "grant Key Vault Secrets User", At: at.Add(time.Second),
		},
		LastSweep: &tenant.SweepResult{
			At: at.Add(time.Minute), Outcome: outcome.OK, DurationMs: 812, Message: "fine",
			Graph: &tenant.GraphInfo{Organization: "Contoso", UserCount: 4211},
			KeyVault: []tenant.SecretStatus{{
				VaultURL: "https://contoso-kv.vault.azure.net/", Secret: "db-password", Version: "0123456789abcdef",
				Enabled: &enabled, ExpiresOn: &expires, ExpiresSoon: true, Outcome: outcome.OK, OutcomeDetail: "expires in 24h",
			}},
		},
		ConsecutiveFailures: 3,
		BackoffUntil:        &backoff,
	}
}
