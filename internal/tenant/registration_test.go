package tenant

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

const regTenant = "3c1e8b2a-5f4d-4e6b-9a7c-2d8f0e1b4a6c"

func regBoolPtr(b bool) *bool { return &b }

// regVaultsJSON builds n distinct vaults with one secret each.
func regVaultsJSON(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`{"vaultUrl":"https://kv%03d.vault.azure.net/","secrets":["s"]}`, i))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func regSecretsJSON(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"s%d"`, i))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func regKeysBody(keys string) string {
	return fmt.Sprintf(`{"tenantId":%q,"keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","keys":%s}]}`, regTenant, keys)
}

func regVaultBody(vaultURL string) string {
	return fmt.Sprintf(`{"tenantId":%q,"keyVaults":[{"vaultUrl":%q,"secrets":["db-password"]}]}`, regTenant, vaultURL)
}

func regSecretsBody(secrets string) string {
	return fmt.Sprintf(`{"tenantId":%q,"keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":%s}]}`, regTenant, secrets)
}

// validate decodes body leniently (strict decoding is the onboarding API's and
// is tested there) and validates it.
func validate(t *testing.T, body string, cl cloud.Cloud) (Registration, error) {
	t.Helper()
	var in RegistrationRequest
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return in.Validate(cl)
}

func TestValidateRegistrationValid(t *testing.T) {
	tests := []struct {
		name string
		body string
		cl   cloud.Cloud
		want Registration
	}{
		{
			name: "blog example",
			body: `{"tenantId":"3c1e8b2a-5f4d-4e6b-9a7c-2d8f0e1b4a6c","displayName":"Contoso","graph":true,"keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":["db-password"]}]}`,
			want: Registration{TenantID: regTenant, DisplayName: "Contoso", Graph: regBoolPtr(true),
				KeyVaults: []KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Secrets: []string{"db-password"}}}},
		},
		{
			name: "tenant id only: graph defaults to true",
			body: `{"tenantId":"3c1e8b2a-5f4d-4e6b-9a7c-2d8f0e1b4a6c"}`,
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(true)},
		},
		{
			name: "upper-case tenant id is lowered",
			body: `{"tenantId":"3C1E8B2A-5F4D-4E6B-9A7C-2D8F0E1B4A6C"}`,
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(true)},
		},
		{
			name: "graph false with a vault",
			body: `{"tenantId":"` + regTenant + `","graph":false,"keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net","secrets":["a"]}]}`,
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(false),
				KeyVaults: []KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Secrets: []string{"a"}}}},
		},
		{
			name: "vault URL normalised to lower case with a slash",
			body: regVaultBody("HTTPS://Contoso-KV1.Vault.Azure.NET"),
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(true),
				KeyVaults: []KeyVault{{VaultURL: "https://contoso-kv1.vault.azure.net/", Secrets: []string{"db-password"}}}},
		},
		{
			name: "other cloud's vault",
			body: regVaultBody("https://contoso.vault.usgovcloudapi.net/"),
			cl:   cloud.AzureUSGovernment,
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(true),
				KeyVaults: []KeyVault{{VaultURL: "https://contoso.vault.usgovcloudapi.net/", Secrets: []string{"db-password"}}}},
		},
		{
			name: "empty display name is accepted",
			body: `{"tenantId":"` + regTenant + `","displayName":""}`,
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(true)},
		},
		{
			name: "display name of 256 characters, not bytes",
			body: `{"tenantId":"` + regTenant + `","displayName":"` + strings.Repeat("é", 256) + `"}`,
			want: Registration{TenantID: regTenant, DisplayName: strings.Repeat("é", 256), Graph: regBoolPtr(true)},
		},
		{
			name: "20 vaults and trailing whitespace",
			body: `{"tenantId":"` + regTenant + `","keyVaults":` + regVaultsJSON(20) + "}\n\t ",
		},
		{
			name: "50 secrets",
			body: regSecretsBody(regSecretsJSON(50)),
		},
		{
			name: "keys only",
			body: regKeysBody(`["cmk-1","cmk-2"]`),
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(true),
				KeyVaults: []KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Keys: []string{"cmk-1", "cmk-2"}}}},
		},
		{
			name: "secrets and keys, a key named as a secret (a certificate has both)",
			body: `{"tenantId":"` + regTenant + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net","secrets":["tls"],"keys":["tls","cmk"]}]}`,
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(true),
				KeyVaults: []KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Secrets: []string{"tls"}, Keys: []string{"tls", "cmk"}}}},
		},
		{
			name: "keys and an empty list of secrets",
			body: `{"tenantId":"` + regTenant + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net","secrets":[],"keys":["cmk"]}]}`,
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(true),
				KeyVaults: []KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Keys: []string{"cmk"}}}},
		},
		{
			name: "50 keys",
			body: regKeysBody(regSecretsJSON(50)),
		},
		{
			name: "127-character secret name",
			body: regSecretsBody(`["` + strings.Repeat("a", 127) + `"]`),
			want: Registration{TenantID: regTenant, Graph: regBoolPtr(true),
				KeyVaults: []KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Secrets: []string{strings.Repeat("a", 127)}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := tt.cl
			if cl.Name == "" {
				cl = cloud.AzurePublic
			}
			got, err := validate(t, tt.body, cl)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.want.TenantID == "" { // only checking acceptance
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestValidateRegistrationInvalid(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantField string
		wantMsg   string // substring of the message
	}{
		{"null", `null`, "tenantId", "required"},
		{"missing tenant id", `{"displayName":"Contoso"}`, "tenantId", "required"},
		{"empty tenant id", `{"tenantId":""}`, "tenantId", "required"},
		{"tenant id not a GUID", `{"tenantId":"contoso.onmicrosoft.com"}`, "tenantId", "GUID"},
		{"tenant id in braces", `{"tenantId":"{` + regTenant + `}"}`, "tenantId", "GUID"},
		{"tenant id without hyphens", `{"tenantId":"3c1e8b2a5f4d4e6b9a7c2d8f0e1b4a6c"}`, "tenantId", "GUID"},
		{"tenant id with spaces", `{"tenantId":" ` + regTenant + `"}`, "tenantId", "GUID"},
		{"tenant id not hex", `{"tenantId":"3c1e8b2a-5f4d-4e6b-9a7c-2d8f0e1b4a6g"}`, "tenantId", "GUID"},
		{"nil GUID", `{"tenantId":"00000000-0000-0000-0000-000000000000"}`, "tenantId", "nil GUID"},
		{"display name too long", `{"tenantId":"` + regTenant + `","displayName":"` + strings.Repeat("a", 257) + `"}`, "displayName", "at most 256"},
		{"display name with newline", `{"tenantId":"` + regTenant + `","displayName":"Con\ntoso"}`, "displayName", "control"},
		{"display name with NUL", `{"tenantId":"` + regTenant + `","displayName":"Con\u0000toso"}`, "displayName", "control"},
		{"display name with C1 control", `{"tenantId":"` + regTenant + `","displayName":"Con\u0085toso"}`, "displayName", "control"},
		{"nothing to do", `{"tenantId":"` + regTenant + `","graph":false}`, "keyVaults", "nothing to check"},
		{"nothing to do, empty vault list", `{"tenantId":"` + regTenant + `","graph":false,"keyVaults":[]}`, "keyVaults", "nothing to check"},
		{"21 vaults", `{"tenantId":"` + regTenant + `","keyVaults":` + regVaultsJSON(21) + `}`, "keyVaults", "at most 20"},
		{"vault URL missing", `{"tenantId":"` + regTenant + `","keyVaults":[{"secrets":["s"]}]}`, "keyVaults[0].vaultUrl", "required"},
		{"vault null", `{"tenantId":"` + regTenant + `","keyVaults":[null]}`, "keyVaults[0].vaultUrl", "required"},
		{"http vault", regVaultBody("http://contoso.vault.azure.net/"), "keyVaults[0].vaultUrl", "https"},
		{"no scheme", regVaultBody("contoso.vault.azure.net"), "keyVaults[0].vaultUrl", "https://<vault-name>.vault.azure.net/"},
		{"another host", regVaultBody("https://evil.example/"), "keyVaults[0].vaultUrl", "not a Key Vault"},
		{"suffix trick", regVaultBody("https://x.vault.azure.net.evil.com/"), "keyVaults[0].vaultUrl", "not a Key Vault"},
		{"two labels", regVaultBody("https://a.b.vault.azure.net/"), "keyVaults[0].vaultUrl", "not a Key Vault"},
		{"bare suffix", regVaultBody("https://vault.azure.net/"), "keyVaults[0].vaultUrl", "not a Key Vault"},
		{"escaped dot", regVaultBody("https://evil%2ecom.vault.azure.net/"), "keyVaults[0].vaultUrl", ""},
		{"other cloud", regVaultBody("https://contoso.vault.azure.cn/"), "keyVaults[0].vaultUrl", "not a Key Vault of AzurePublic"},
		{"port", regVaultBody("https://contoso.vault.azure.net:443/"), "keyVaults[0].vaultUrl", "port"},
		{"empty port", regVaultBody("https://contoso.vault.azure.net:/"), "keyVaults[0].vaultUrl", "port"},
		{"userinfo", regVaultBody("https://user:pw@contoso.vault.azure.net/"), "keyVaults[0].vaultUrl", "user information"},
		{"userinfo host trick", regVaultBody("https://contoso.vault.azure.net@evil.example/"), "keyVaults[0].vaultUrl", "user information"},
		{"query", regVaultBody("https://contoso.vault.azure.net/?x=1"), "keyVaults[0].vaultUrl", "query"},
		{"empty query", regVaultBody("https://contoso.vault.azure.net/?"), "keyVaults[0].vaultUrl", "query"},
		{"fragment", regVaultBody("https://contoso.vault.azure.net/#x"), "keyVaults[0].vaultUrl", "fragment"},
		{"path", regVaultBody("https://contoso.vault.azure.net/secrets/db"), "keyVaults[0].vaultUrl", "path"},
		{"double slash path", regVaultBody("https://contoso.vault.azure.net//"), "keyVaults[0].vaultUrl", "path"},
		{"vault name too short", regVaultBody("https://ab.vault.azure.net/"), "keyVaults[0].vaultUrl", "vault name"},
		{"vault name too long", regVaultBody("https://" + strings.Repeat("a", 25) + ".vault.azure.net/"), "keyVaults[0].vaultUrl", "vault name"},
		{"vault name starts with a digit", regVaultBody("https://1contoso.vault.azure.net/"), "keyVaults[0].vaultUrl", "vault name"},
		{"vault name double hyphen", regVaultBody("https://con--toso.vault.azure.net/"), "keyVaults[0].vaultUrl", "vault name"},
		{"vault name underscore", regVaultBody("https://con_toso.vault.azure.net/"), "keyVaults[0].vaultUrl", ""},
		{"IP address", regVaultBody("https://10.0.0.1/"), "keyVaults[0].vaultUrl", "not a Key Vault"},
		{"duplicate vault after normalisation", `{"tenantId":"` + regTenant + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":["a"]},{"vaultUrl":"HTTPS://CONTOSO.vault.azure.net","secrets":["b"]}]}`, "keyVaults[1].vaultUrl", "listed twice"},
		{"no secrets", regSecretsBody(`[]`), "keyVaults[0].secrets", "at least one"},
		{"secrets missing", `{"tenantId":"` + regTenant + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/"}]}`, "keyVaults[0].secrets", "at least one"},
		{"51 secrets", regSecretsBody(regSecretsJSON(51)), "keyVaults[0].secrets", "at most 50"},
		{"empty secret name", regSecretsBody(`[""]`), "keyVaults[0].secrets[0]", "1-127"},
		{"128-character secret name", regSecretsBody(`["` + strings.Repeat("a", 128) + `"]`), "keyVaults[0].secrets[0]", "1-127"},
		{"secret name with underscore", regSecretsBody(`["db_password"]`), "keyVaults[0].secrets[0]", "1-127"},
		{"secret name with slash", regSecretsBody(`["a","db/password"]`), "keyVaults[0].secrets[1]", "1-127"},
		{"secret name with dot", regSecretsBody(`["db.password"]`), "keyVaults[0].secrets[0]", "1-127"},
		{"secret name non-ASCII", regSecretsBody(`["pässword"]`), "keyVaults[0].secrets[0]", "1-127"},
		{"duplicate secret, other case", regSecretsBody(`["db-password","DB-Password"]`), "keyVaults[0].secrets[1]", "listed twice"},
		{"neither secrets nor keys", `{"tenantId":"` + regTenant + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":[],"keys":[]}]}`, "keyVaults[0].secrets", "key name (keys)"},
		{"51 keys", regKeysBody(regSecretsJSON(51)), "keyVaults[0].keys", "at most 50 keys"},
		{"empty key name", regKeysBody(`["cmk",""]`), "keyVaults[0].keys[1]", "key names are 1-127"},
		{"128-character key name", regKeysBody(`["` + strings.Repeat("k", 128) + `"]`), "keyVaults[0].keys[0]", "1-127"},
		{"key name with underscore", regKeysBody(`["cmk_1"]`), "keyVaults[0].keys[0]", "1-127"},
		{"key name with a version", regKeysBody(`["cmk/0123456789abcdef0123456789abcdef"]`), "keyVaults[0].keys[0]", "1-127"},
		{"duplicate key, other case", regKeysBody(`["cmk","CMK"]`), "keyVaults[0].keys[1]", "listed twice"},
		{"bad key after good secrets", `{"tenantId":"` + regTenant + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":["s"],"keys":["a b"]}]}`, "keyVaults[0].keys[0]", "1-127"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := validate(t, tt.body, cloud.AzurePublic)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v (%T), want a *ValidationError", err, err)
			}
			if tt.wantField != "" && ve.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (%v)", ve.Field, tt.wantField, ve)
			}
			if !strings.Contains(ve.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", ve.Message, tt.wantMsg)
			}
			if strings.Contains(ve.Message, "Go value") || strings.Contains(ve.Message, "tenant.") {
				t.Errorf("Message %q leaks Go type names", ve.Message)
			}
		})
	}
}

func TestValidationErrorText(t *testing.T) {
	if got := (&ValidationError{Field: "tenantId", Message: "is required"}).Error(); got != "tenantId: is required" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&ValidationError{Message: "malformed JSON"}).Error(); got != "malformed JSON" {
		t.Errorf("Error() = %q", got)
	}
}

func TestParseTenantID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{regTenant, regTenant, true},
		{strings.ToUpper(regTenant), regTenant, true},
		{"", "", false},
		{"{" + regTenant + "}", "", false},
		{"00000000-0000-0000-0000-000000000000", "", false},
		{regTenant + "\n", "", false},
		{"common", "", false},
	}
	for _, tt := range tests {
		got, err := ParseTenantID(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseTenantID(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestRegistrationApply(t *testing.T) {
	onboarded := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	now := onboarded.Add(48 * time.Hour)
	backoff := now.Add(time.Hour)
	reg := Registration{
		TenantID:    regTenant,
		DisplayName: "Contoso",
		Graph:       regBoolPtr(false),
		KeyVaults:   []KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Secrets: []string{"a"}}},
	}
	verification := &Verification{Outcome: outcome.OK, At: onboarded}
	lastSweep := &SweepResult{Outcome: outcome.Throttled, At: onboarded}
	existing := Record{
		TenantID:            regTenant,
		DisplayName:         "Old",
		Status:              StatusDisabled,
		Graph:               true,
		KeyVaults:           []KeyVault{{VaultURL: "https://old.vault.azure.net/", Secrets: []string{"x"}}},
		OnboardedAt:         onboarded,
		UpdatedAt:           onboarded,
		Verification:        verification,
		LastSweep:           lastSweep,
		ConsecutiveFailures: 7,
		BackoffUntil:        &backoff,
		ETag:                "W/1",
	}

	tests := []struct {
		name   string
		rec    Record
		exists bool
		reg    Registration
		want   Record
	}{
		{
			name:   "new record",
			rec:    Record{ETag: "stale", ConsecutiveFailures: 3}, // zero record is not assumed
			exists: false,
			reg:    reg,
			want: Record{TenantID: regTenant, DisplayName: "Contoso", Status: StatusActive, Graph: false,
				KeyVaults: reg.KeyVaults, OnboardedAt: now, UpdatedAt: now},
		},
		{
			name:   "existing disabled record in backoff is re-activated and keeps its history",
			rec:    existing,
			exists: true,
			reg:    reg,
			want: Record{TenantID: regTenant, DisplayName: "Contoso", Status: StatusActive, Graph: false,
				KeyVaults: reg.KeyVaults, OnboardedAt: onboarded, UpdatedAt: now,
				Verification: verification, LastSweep: lastSweep, ETag: "W/1"},
		},
		{
			name:   "nil Graph means true, no vaults gives an empty list",
			rec:    existing,
			exists: true,
			reg:    Registration{TenantID: regTenant},
			want: Record{TenantID: regTenant, Status: StatusActive, Graph: true, KeyVaults: []KeyVault{},
				OnboardedAt: onboarded, UpdatedAt: now, Verification: verification, LastSweep: lastSweep, ETag: "W/1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.rec
			tt.reg.Apply(&rec, tt.exists, now)
			if !reflect.DeepEqual(rec, tt.want) {
				t.Errorf("got  %+v\nwant %+v", rec, tt.want)
			}
		})
	}

	t.Run("record does not share slices with the registration", func(t *testing.T) {
		var rec Record
		reg.Apply(&rec, false, now)
		rec.KeyVaults[0].Secrets[0] = "changed"
		if reg.KeyVaults[0].Secrets[0] != "a" {
			t.Error("Apply aliased the registration's secrets")
		}
		withKeys := Registration{TenantID: regTenant, KeyVaults: []KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Keys: []string{"cmk"}}}}
		withKeys.Apply(&rec, true, now)
		if !reflect.DeepEqual(rec.KeyVaults, withKeys.KeyVaults) {
			t.Fatalf("keyVaults %+v, want %+v", rec.KeyVaults, withKeys.KeyVaults)
		}
		rec.KeyVaults[0].Keys[0] = "changed"
		if withKeys.KeyVaults[0].Keys[0] != "cmk" {
			t.Error("Apply aliased the registration's keys")
		}
	})
}

// What the home tenant tells of a tenant fills an empty display name and
// the default domain, only with values a record may hold.
func TestRegistrationFill(t *testing.T) {
	for _, tc := range []struct {
		name       string
		reg        Registration
		info       TenantInfo
		wantName   string
		wantDomain string
	}{
		{"fills", Registration{}, TenantInfo{DisplayName: "Contoso", DefaultDomain: "Contoso.onmicrosoft.com"}, "Contoso", "contoso.onmicrosoft.com"},
		{"keeps the given name", Registration{DisplayName: "Ours"}, TenantInfo{DisplayName: "Contoso", DefaultDomain: "contoso.com"}, "Ours", "contoso.com"},
		{"refuses a deceptive name", Registration{}, TenantInfo{DisplayName: "evil\u202egnp.exe"}, "", ""},
		{"refuses a domain that is not one", Registration{}, TenantInfo{DefaultDomain: "contoso .com/<x>"}, "", ""},
		{"refuses a label with a leading hyphen", Registration{}, TenantInfo{DefaultDomain: "-contoso.com"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.reg
			r.Fill(tc.info)
			if r.DisplayName != tc.wantName || r.DefaultDomain != tc.wantDomain {
				t.Errorf("got %q %q, want %q %q", r.DisplayName, r.DefaultDomain, tc.wantName, tc.wantDomain)
			}
		})
	}
	var rec Record
	Registration{TenantID: "t", DefaultDomain: "contoso.com"}.Apply(&rec, false, time.Now())
	Registration{TenantID: "t"}.Apply(&rec, true, time.Now())
	if rec.DefaultDomain != "contoso.com" {
		t.Errorf("a registration without a lookup dropped the default domain: %q", rec.DefaultDomain)
	}
}
