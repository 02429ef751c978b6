package tasks_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/task/tasktest"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

const keyRoleCommand = `az role assignment create --role "Key Vault Crypto Service Encryption User" --assignee `

// withKeys registers keys of one vault.
func withKeys(url string, keys ...string) func(*tenant.Record) {
	return func(r *tenant.Record) { r.KeyVaults = []tenant.KeyVault{{VaultURL: url, Keys: keys}} }
}

// noKeyMaterial fails when a value a vault wrapped or unwrapped shows in s,
// raw, in base64 (either alphabet) or in hex.
func noKeyMaterial(t *testing.T, c *cloudtest.Cloud, vault, s string) {
	t.Helper()
	values := c.KeyOperationValues(vault)
	for _, v := range values {
		for _, form := range []string{string(v), base64.RawURLEncoding.EncodeToString(v), base64.StdEncoding.EncodeToString(v), hex.EncodeToString(v)} {
			if strings.Contains(s, form) {
				t.Errorf("key material leaked: %q in %s", form, s)
			}
		}
	}
}

// Every outcome a key can have, in a sweep and in onboarding verification,
// against the fake vault's real RSA keys and its documented answers.
func TestKeysOutcomes(t *testing.T) {
	env := tasktest.New(t)
	keys := tasks.Keys{Vaults: env.Vaults, ExpiryWarning: 30 * 24 * time.Hour,
		Advisor: tenant.Advisor{AppID: cloudtest.DefaultApp.ClientID, Cloud: cloud.AzurePublic}}
	soon, past := time.Now().Add(10*24*time.Hour), time.Now().Add(-time.Hour)
	tests := []struct {
		name    string
		key     cloudtest.Key
		vault   cloudtest.Vault // instead of key, when set
		want    outcome.Code
		message string // in the tenant's message
		remedy  string // in the remediation
		// unwrapped: the vault really unwrapped (UnwrapCount > 0)
		unwrapped bool
		status    func(t *testing.T, st tenant.KeyStatus)
	}{
		{name: "ok", key: cloudtest.Key{Enabled: true}, want: outcome.OK, unwrapped: true,
			status: func(t *testing.T, st tenant.KeyStatus) {
				if st.Version == "" || st.Enabled == nil || !*st.Enabled || st.PurgeProtection == nil || !*st.PurgeProtection || st.ExpiresSoon || st.OutcomeDetail != "" {
					t.Errorf("status %+v", st)
				}
			}},
		{name: "no role: 403 on every operation", key: cloudtest.Key{Enabled: true, Status: 403}, want: outcome.KeyVaultAccessDenied,
			message: `the get operation on key "cmk" (ForbiddenByRbac)`, remedy: keyRoleCommand + cloudtest.DefaultApp.ClientID},
		{name: "a role that reads but cannot unwrap", key: cloudtest.Key{Enabled: true, UnwrapStatus: 403}, want: outcome.KeyVaultAccessDenied,
			message: `the unwrapKey operation on key "cmk" (ForbiddenByRbac)`, remedy: `--scope "$(az keyvault show --name keys-kv --query id -o tsv)/keys/cmk"`},
		{name: "an access policy without wrapKey", key: cloudtest.Key{Enabled: true, AccessPolicyDenied: []string{"wrapKey"}}, want: outcome.KeyVaultAccessDenied,
			message: "lacks the keys wrapKey permission", remedy: "--key-permissions get wrapKey unwrapKey"},
		{name: "the vault's firewall", key: cloudtest.Key{Enabled: true, Firewall: true}, want: outcome.KeyVaultAccessDenied,
			message: "trusted Microsoft services", remedy: "az keyvault network-rule add --name keys-kv"},
		{name: "no such key", vault: cloudtest.Vault{Keys: map[string]cloudtest.Key{"other": {Enabled: true}}}, want: outcome.KeyNotFound,
			message: `no key named "cmk"`, remedy: "az keyvault key recover --vault-name keys-kv --name cmk"},
		{name: "disabled", key: cloudtest.Key{Enabled: false}, want: outcome.KeyDisabled,
			message: "enabled: false", remedy: "--enabled true",
			status: func(t *testing.T, st tenant.KeyStatus) {
				if st.Enabled == nil || *st.Enabled {
					t.Errorf("status %+v, want enabled false", st)
				}
			}},
		{name: "expired: the vault still unwraps, the attributes tell", key: cloudtest.Key{Enabled: true, ExpiresOn: past}, want: outcome.KeyExpired,
			message: "refuses to wrap", remedy: "az keyvault key rotate --vault-name keys-kv --name cmk", unwrapped: true,
			status: func(t *testing.T, st tenant.KeyStatus) {
				if st.ExpiresOn == nil || !st.ExpiresSoon {
					t.Errorf("status %+v, want its expiry and expiresSoon", st)
				}
			}},
		{name: "expires soon: a flag, not a failure", key: cloudtest.Key{Enabled: true, ExpiresOn: soon}, want: outcome.OK, unwrapped: true,
			status: func(t *testing.T, st tenant.KeyStatus) {
				if !st.ExpiresSoon || st.ExpiresOn == nil {
					t.Errorf("status %+v, want expiresSoon", st)
				}
			}},
		{name: "purgeable: a flag, not a failure", key: cloudtest.Key{Enabled: true, RecoveryLevel: "Recoverable+Purgeable"}, want: outcome.OK, unwrapped: true,
			status: func(t *testing.T, st tenant.KeyStatus) {
				if st.PurgeProtection == nil || *st.PurgeProtection {
					t.Errorf("status %+v, want purgeProtection false", st)
				}
			}},
		{name: "key_ops without wrapKey", key: cloudtest.Key{Enabled: true, KeyOps: []string{"encrypt", "decrypt", "unwrapKey"}}, want: outcome.KeyUnusable,
			message: "do not include both wrapKey and unwrapKey", remedy: "--ops wrapKey unwrapKey", unwrapped: true},
		{name: "not an RSA key", key: cloudtest.Key{Enabled: true, Kty: "EC"}, want: outcome.KeyUnusable, message: "type is EC, not RSA"},
		{name: "the vault unwraps to another value", key: cloudtest.Key{Enabled: true, WrongUnwrap: true}, want: outcome.KeyUnusable,
			message: "to a different value"},
		{name: "throttled once", key: cloudtest.Key{Enabled: true, Throttle: 1}, want: outcome.OK, unwrapped: true},
		{name: "throttled past the budget", key: cloudtest.Key{Enabled: true, Status: 429}, want: outcome.Throttled},
		{name: "failing", key: cloudtest.Key{Enabled: true, Status: 500}, want: outcome.UpstreamError, message: "Key Vault answered HTTP 500 three times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := env.Tenant(cloudtest.Tenant{OrgName: "Contoso"}, keys)
			v := tt.vault
			if v.Keys == nil {
				v = cloudtest.Vault{Keys: map[string]cloudtest.Key{"cmk": tt.key}}
			}
			url := env.Vault(id, "keys-kv", v)
			rec := env.Record(id, withKeys(url, "cmk"), func(r *tenant.Record) { r.Graph = false })

			res := env.Run(t, rec, keys)
			ver := env.Verify(t, rec, keys)
			if res.Outcome != tt.want || ver.Outcome != tt.want {
				t.Fatalf("sweep %s, verification %s, want %s\n%+v", res.Outcome, ver.Outcome, tt.want, res)
			}
			if len(res.Keys) != 1 || res.Keys[0].Outcome != tt.want || res.Keys[0].Key != "cmk" || res.Keys[0].VaultURL != url {
				t.Fatalf("lastSweep.keys = %+v", res.Keys)
			}
			if got := res.Tasks[tasks.KeysName]; got.Outcome != tt.want || got.Body != nil {
				t.Errorf("tasks.keys = %+v, want %s and its body in lastSweep.keys", got, tt.want)
			}
			step := "5"
			if tt.want == outcome.Throttled || tt.want == outcome.UpstreamError {
				step = "" // nobody's step: retried next sweep
			}
			if tt.want != outcome.OK {
				if res.Step != step || ver.Step != step || !strings.Contains(res.Message, tt.message) || !strings.Contains(ver.Message, tt.message) ||
					!strings.Contains(res.Keys[0].OutcomeDetail, strings.TrimSuffix(tt.message, " (ForbiddenByRbac)")) {
					t.Errorf("step %q/%q, message %q / %q / key %q; want step %q and %q", res.Step, ver.Step, res.Message, ver.Message, res.Keys[0].OutcomeDetail, step, tt.message)
				}
				if !strings.Contains(res.Remediation, tt.remedy) || ver.Remediation != res.Remediation {
					t.Errorf("remediation %q (verification %q), want %q", res.Remediation, ver.Remediation, tt.remedy)
				}
				// The key's own advice, for the line that tells its change.
				if k := res.Keys[0]; k.Step != res.Step || k.Remediation != res.Remediation {
					t.Errorf("key advice %q %q, want the tenant's %q %q", k.Step, k.Remediation, res.Step, res.Remediation)
				}
			}
			if n := env.Cloud.UnwrapCount("keys-kv", "cmk"); (n > 0) != tt.unwrapped {
				t.Errorf("the vault unwrapped %d times; want unwrapped %v", n, tt.unwrapped)
			}
			if tt.status != nil {
				tt.status(t, res.Keys[0])
			}
			b, _ := json.Marshal(struct {
				R tenant.SweepResult
				V tenant.Verification
			}{res, ver})
			noKeyMaterial(t, env.Cloud, "keys-kv", string(b))
		})
	}
}

// The tenant's outcome is its first failing key in registration order,
// every key is proven and reported, and a tenant that registered no keys is
// not touched by the task.
func TestKeysOrderAndScope(t *testing.T) {
	env := tasktest.New(t)
	keys := tasks.Keys{Vaults: env.Vaults}
	access := tasks.Access{Directory: env.Graph, Vaults: env.Vaults}
	id := env.Tenant(cloudtest.Tenant{OrgName: "Contoso", Users: 3}, access, keys)
	kv1 := env.Vault(id, "order-kv1", cloudtest.Vault{
		Secrets: map[string]cloudtest.Secret{"db": {Value: "not-to-be-seen", Enabled: true}},
		Keys:    map[string]cloudtest.Key{"a": {Enabled: true}, "b": {Enabled: false}},
	})
	kv2 := env.Vault(id, "order-kv2", cloudtest.Vault{Keys: map[string]cloudtest.Key{"c": {Enabled: true, Status: 404}}})
	rec := env.Record(id, func(r *tenant.Record) {
		r.KeyVaults = []tenant.KeyVault{{VaultURL: kv1, Secrets: []string{"db"}, Keys: []string{"a", "b"}}, {VaultURL: kv2, Keys: []string{"c"}}}
	})
	res := env.Run(t, rec, access, keys)
	var got []string
	for _, st := range res.Keys {
		got = append(got, st.Key+":"+string(st.Outcome))
	}
	if strings.Join(got, " ") != "a:ok b:key_disabled c:key_not_found" {
		t.Errorf("keys %v", got)
	}
	if res.Outcome != outcome.KeyDisabled || res.Tasks[tasks.AccessName].Outcome != outcome.OK || len(res.KeyVault) != 1 ||
		!strings.Contains(res.Message, `key "b"`) {
		t.Errorf("tenant %s %q; access %+v", res.Outcome, res.Message, res.Tasks[tasks.AccessName])
	}

	noKeys := env.Tenant(cloudtest.Tenant{OrgName: "Fabrikam"}, access, keys)
	res = env.Run(t, env.Record(noKeys), access, keys)
	if _, ran := res.Tasks[tasks.KeysName]; ran || res.Keys != nil || res.Outcome != outcome.OK {
		t.Errorf("a tenant without keys: %+v", res)
	}
	if _, ok := (tasks.Keys{}).Needs(env.Record(noKeys)); ok {
		t.Error("Needs says the task applies to a tenant without keys")
	}
	if n, ok := (tasks.Keys{}).Needs(rec); !ok || !n.KeyVault || n.Graph {
		t.Errorf("Needs = %+v, %v; want a Key Vault token only", n, ok)
	}
}

// The task's declaration: the role the customer grants on each key, and
// that onboarding verification runs it.
func TestKeysAbout(t *testing.T) {
	a := (tasks.Keys{}).About()
	if a.Name != "keys" || !a.Verify || len(a.Graph) != 0 || len(a.Roles) != 1 || a.Roles[0] != "Key Vault Crypto Service Encryption User" {
		t.Errorf("About = %+v", a)
	}
	all := tasks.All(tasks.Deps{})
	if _, err := tasks.Select(all, []string{"access", "keys"}); err != nil {
		t.Errorf("the default SWEEP_TASKS: %v", err)
	}
}

// A vault that does not answer within the tenant's budget: the key is
// recorded as timed out, as a secret would be, and the task still reports.
func TestKeysTimeout(t *testing.T) {
	env := tasktest.New(t)
	keys := tasks.Keys{Vaults: env.Vaults}
	id := env.Tenant(cloudtest.Tenant{OrgName: "Contoso"}, keys)
	url := env.Vault(id, "slow-kv", cloudtest.Vault{Keys: map[string]cloudtest.Key{"cmk": {Enabled: true}}})
	rec := env.Record(id, withKeys(url, "cmk"), func(r *tenant.Record) { r.Graph = false })
	if res := env.Run(t, rec, keys); res.Outcome != outcome.OK {
		t.Fatalf("warming up: %+v", res)
	}
	env.Cloud.SetLatency(3 * time.Second) // the tokens are cached: only the vault is slow
	env.Timeout = 500 * time.Millisecond
	start := time.Now()
	res := env.Run(t, rec, keys)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s: the budget was not kept", took)
	}
	if res.Outcome != outcome.Timeout || len(res.Keys) != 1 || res.Keys[0].Outcome != outcome.Timeout {
		t.Errorf("result %+v, want the key timed out", res)
	}
}
