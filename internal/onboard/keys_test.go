package onboard

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// A vault entry registers keys beside secrets, or keys alone: POST stores
// them, verifies with them and answers them, and GET reads them back.
func TestPostRegistersKeys(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"tenantId":"` + tenantA + `","graph":false,"keyVaults":[` +
		`{"vaultUrl":"https://contoso.vault.azure.net/","secrets":["db-password"],"keys":["cmk","tls"]},` +
		`{"vaultUrl":"https://CONTOSO-keys.vault.azure.net","keys":["cmk"]}]}`
	rr := e.do(t, "POST", "/api/tenants", body)
	if rr.Code != http.StatusCreated {
		t.Fatalf("status %d, body %s", rr.Code, rr.Body)
	}
	want := []tenant.KeyVault{
		{VaultURL: "https://contoso.vault.azure.net/", Secrets: []string{"db-password"}, Keys: []string{"cmk", "tls"}},
		{VaultURL: "https://contoso-keys.vault.azure.net/", Keys: []string{"cmk"}},
	}
	if got := decodeRecord(t, rr).KeyVaults; !reflect.DeepEqual(got, want) {
		t.Errorf("answered keyVaults %+v, want %+v", got, want)
	}
	if strings.Contains(rr.Body.String(), `"secrets":null`) {
		t.Errorf("a keys-only vault answers secrets null: %s", rr.Body)
	}
	if e.ver.callCount() != 1 || !reflect.DeepEqual(e.ver.calls[0].KeyVaults, want) {
		t.Errorf("verified %+v", e.ver.calls)
	}
	got := e.do(t, "GET", "/api/tenants/"+tenantA, "")
	if got.Code != http.StatusOK || !reflect.DeepEqual(decodeRecord(t, got).KeyVaults, want) {
		t.Errorf("GET: %d %s", got.Code, got.Body)
	}
}

func TestPostRejectsBadKeys(t *testing.T) {
	vault := func(entry string) string {
		return `{"tenantId":"` + tenantA + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/",` + entry + `}]}`
	}
	for _, tt := range []struct{ name, body, msg string }{
		{"a key name with a slash", vault(`"keys":["cmk/1"]`), "keyVaults[0].keys[0]"},
		{"a key twice", vault(`"keys":["cmk","CMK"]`), "keyVaults[0].keys[1]"},
		{"neither secrets nor keys", vault(`"keys":[]`), "keyVaults[0].secrets"},
		{"keys not an array", vault(`"keys":"cmk"`), "keyVaults.keys"},
		{"keys given twice", vault(`"keys":["a"],"keys":["b"]`), "keyVaults[].keys"},
		{"keys in another case", vault(`"Keys":["cmk"]`), `field names are case-sensitive: \"keys\"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			msg := wantError(t, e.do(t, "POST", "/api/tenants", tt.body), http.StatusBadRequest, "invalid_request")
			if !strings.Contains(msg, strings.ReplaceAll(tt.msg, `\"`, `"`)) {
				t.Errorf("message %q does not mention %q", msg, tt.msg)
			}
			if e.store.Writes() != 0 || e.ver.callCount() != 0 {
				t.Error("a rejected registration was written or verified")
			}
		})
	}
}

// The consent page says what the app will check, keys included.
func TestRecordedChecksCountsKeys(t *testing.T) {
	for _, tt := range []struct {
		kvs  []tenant.KeyVault
		want string
	}{
		{[]tenant.KeyVault{{Secrets: []string{"a", "b"}}}, ", to be checked for Microsoft Graph and 2 Key Vault secret(s) in 1 vault(s)"},
		{[]tenant.KeyVault{{Keys: []string{"k"}}, {Keys: []string{"k"}}}, ", to be checked for Microsoft Graph and 2 Key Vault key(s) in 2 vault(s)"},
		{[]tenant.KeyVault{{Secrets: []string{"a"}, Keys: []string{"k"}}}, ", to be checked for Microsoft Graph and 1 Key Vault secret(s) and 1 key(s) in 1 vault(s)"},
	} {
		if got := recordedChecks(tenant.Record{Graph: true, KeyVaults: tt.kvs}); got != tt.want {
			t.Errorf("recordedChecks = %q, want %q", got, tt.want)
		}
	}
}
