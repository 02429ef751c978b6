package keyvault

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// keyCalls are the authorized keys requests the vault got, as "METHOD
// /keys/name[/version]/op" with the version replaced by v.
func keyCalls(c *cloudtest.Cloud) []string {
	var out []string
	for _, r := range vaultRequests(c) {
		if r.Tenant == "" {
			continue
		}
		segs := strings.Split(strings.Trim(r.Path, "/"), "/")
		if len(segs) == 4 {
			segs[2] = "v"
		}
		out = append(out, r.Method+" /"+strings.Join(segs, "/"))
	}
	slices.Sort(out)
	return out
}

// noKeyMaterial fails when a value the vault wrapped or unwrapped shows in
// s, raw, in base64 (either alphabet) or hex.
func noKeyMaterial(t *testing.T, c *cloudtest.Cloud, vault, s string) {
	t.Helper()
	for _, v := range c.KeyOperationValues(vault) {
		for _, form := range []string{string(v), base64.RawURLEncoding.EncodeToString(v), base64.StdEncoding.EncodeToString(v), hex.EncodeToString(v)} {
			if len(form) >= 16 && strings.Contains(s, form) {
				t.Errorf("key material %q leaked in %q", form, s)
			}
		}
	}
}

// A healthy key: the first probe reads the key while the vault wraps, then
// has it unwrap what it wrapped; from then on the read and an unwrap of a
// value wrapped locally go out together. Each probe really unwrapped.
func TestCloudKeyColdThenWarm(t *testing.T) {
	c := startCloud(t)
	exp := time.Now().Add(400 * 24 * time.Hour).Truncate(time.Second).UTC()
	c.AddVault("contoso-kv", tenantA, cloudtest.Vault{Keys: map[string]cloudtest.Key{
		"cmk": {Enabled: true, ExpiresOn: exp},
	}})
	version := c.KeyVersions("contoso-kv", "cmk")[0]
	r := newReader(c)
	cred := c.SecretCredential(t, tenantA)
	for i, want := range [][]string{
		{"GET /keys/cmk", "POST /keys/cmk/wrapkey", "POST /keys/cmk/v/unwrapkey"},
		{"GET /keys/cmk", "POST /keys/cmk/v/unwrapkey"},
		{"GET /keys/cmk", "POST /keys/cmk/v/unwrapkey"},
	} {
		c.ResetCounters()
		check, err := r.Key(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "cmk", cred)
		if err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		if !check.Unwrapped || check.Mismatch || check.WrapErr != nil || check.UnwrapErr != nil || check.Version != version ||
			check.Kty != "RSA" || check.Enabled == nil || !*check.Enabled || check.ExpiresOn == nil || !check.ExpiresOn.Equal(exp) ||
			check.RecoveryLevel != "Recoverable" || !slices.Contains(check.KeyOps, "unwrapKey") {
			t.Errorf("probe %d: %+v", i, check)
		}
		if got := keyCalls(c); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("probe %d: requests %v, want %v", i, got, want)
		}
		if n := c.UnwrapCount("contoso-kv", "cmk"); n != i+1 {
			t.Errorf("probe %d: the vault unwrapped %d times, want %d", i, n, i+1)
		}
		noKeyMaterial(t, c, "contoso-kv", fmt.Sprintf("%+v", check))
	}
}

// After a rotation the read shows the new version: the unwrap is done again
// at once with it, and the next probe is warm with the new version.
func TestCloudKeyRotated(t *testing.T) {
	c := startCloud(t)
	c.AddVault("contoso-kv", tenantA, cloudtest.Vault{Keys: map[string]cloudtest.Key{"cmk": {Enabled: true}}})
	r := newReader(c)
	cred := c.SecretCredential(t, tenantA)
	probe := func() tenant.KeyCheck {
		t.Helper()
		c.ResetCounters()
		check, err := r.Key(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "cmk", cred)
		if err != nil || !check.Unwrapped {
			t.Fatalf("check %+v, err %v", check, err)
		}
		return check
	}
	old := probe().Version
	rotated, _ := c.RotateKey("contoso-kv", "cmk")
	if check := probe(); check.Version != rotated || rotated == old {
		t.Fatalf("version %s after rotating %s to %s", check.Version, old, rotated)
	}
	// The old version's unwrap (sent with the read) and the new one's.
	want := []string{"GET /keys/cmk", "POST /keys/cmk/" + old + "/unwrapkey", "POST /keys/cmk/" + rotated + "/unwrapkey"}
	var got []string
	for _, q := range vaultRequests(c) {
		if q.Tenant != "" {
			got = append(got, q.Method+" "+strings.TrimSuffix(q.Path, "/"))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("requests after the rotation %v, want %v", got, want)
	}
	probe()
	if got := keyCalls(c); !slices.Equal(got, []string{"GET /keys/cmk", "POST /keys/cmk/v/unwrapkey"}) {
		t.Errorf("requests after that %v, want the warm pair", got)
	}
}

// Every fault of a key, as Key Vault answers it, in the sweep's vocabulary,
// naming the operation refused; no error text carries the vault's message
// or key material.
func TestCloudKeyFaults(t *testing.T) {
	past := time.Now().Add(-time.Hour)
	tests := []struct {
		name  string
		vault cloudtest.Vault
		// where: "read" (err), "wrap" (WrapErr) or "unwrap" (UnwrapErr)
		where  string
		want   outcome.Code
		detail string
		check  func(t *testing.T, check tenant.KeyCheck)
	}{
		{name: "no role (every operation)", vault: keyVault(cloudtest.Key{Enabled: true, Status: 403}),
			where: "read", want: outcome.KeyVaultAccessDenied, detail: "the get operation on key \"cmk\" (ForbiddenByRbac)"},
		{name: "a role that reads but cannot unwrap", vault: keyVault(cloudtest.Key{Enabled: true, UnwrapStatus: 403}),
			where: "unwrap", want: outcome.KeyVaultAccessDenied, detail: "the unwrapKey operation on key \"cmk\" (ForbiddenByRbac)"},
		{name: "an access policy without wrapKey", vault: keyVault(cloudtest.Key{Enabled: true, AccessPolicyDenied: []string{"wrapKey"}}),
			where: "wrap", want: outcome.KeyVaultAccessDenied, detail: "lacks the keys wrapKey permission"},
		{name: "an access policy without unwrapKey", vault: keyVault(cloudtest.Key{Enabled: true, AccessPolicyDenied: []string{"unwrapKey"}}),
			where: "unwrap", want: outcome.KeyVaultAccessDenied, detail: "lacks the keys unwrapKey permission"},
		{name: "an access policy without get", vault: keyVault(cloudtest.Key{Enabled: true, AccessPolicyDenied: []string{"get"}}),
			where: "read", want: outcome.KeyVaultAccessDenied, detail: "lacks the keys get permission"},
		{name: "a vault whose access policy has no key permission", vault: cloudtest.Vault{Status: 403, Keys: map[string]cloudtest.Key{"cmk": {Enabled: true}}},
			where: "read", want: outcome.KeyVaultAccessDenied, detail: "(AccessDenied)"},
		{name: "firewall", vault: keyVault(cloudtest.Key{Enabled: true, Firewall: true}),
			where: "read", want: outcome.KeyVaultAccessDenied, detail: "firewall",
			check: func(t *testing.T, _ tenant.KeyCheck) {}},
		{name: "no such key", vault: cloudtest.Vault{Keys: map[string]cloudtest.Key{"other": {Enabled: true}}},
			where: "read", want: outcome.KeyNotFound, detail: "no key named \"cmk\""},
		{name: "always throttled", vault: keyVault(cloudtest.Key{Enabled: true, Status: 429}), where: "read", want: outcome.Throttled},
		{name: "failing", vault: keyVault(cloudtest.Key{Enabled: true, Status: 500}), where: "read", want: outcome.UpstreamError,
			detail: "Key Vault answered HTTP 500 three times"},
		{name: "disabled", vault: keyVault(cloudtest.Key{Enabled: false}), where: "unwrap", want: outcome.KeyDisabled, detail: "(KeyDisabled)",
			check: func(t *testing.T, check tenant.KeyCheck) {
				if check.Enabled == nil || *check.Enabled {
					t.Errorf("enabled %v, want false", check.Enabled)
				}
			}},
		{name: "key_ops without unwrapKey", vault: keyVault(cloudtest.Key{Enabled: true, KeyOps: []string{"wrapKey", "encrypt"}}),
			where: "unwrap", want: outcome.KeyUnusable, detail: "(KeyOperationForbidden)",
			check: func(t *testing.T, check tenant.KeyCheck) {
				if slices.Contains(check.KeyOps, "unwrapKey") {
					t.Errorf("key_ops %v", check.KeyOps)
				}
			}},
		{name: "the vault unwraps to another value", vault: keyVault(cloudtest.Key{Enabled: true, WrongUnwrap: true}),
			check: func(t *testing.T, check tenant.KeyCheck) {
				if !check.Mismatch || check.Unwrapped {
					t.Errorf("check %+v, want a mismatch", check)
				}
			}},
		{name: "expired: refused to wrap, still unwraps", vault: keyVault(cloudtest.Key{Enabled: true, ExpiresOn: past}),
			check: func(t *testing.T, check tenant.KeyCheck) {
				if !check.Unwrapped || check.WrapErr != nil || check.ExpiresOn == nil || !check.ExpiresOn.Before(time.Now()) {
					t.Errorf("check %+v, want unwrapped with exp in the past", check)
				}
			}},
		{name: "purgeable", vault: keyVault(cloudtest.Key{Enabled: true, RecoveryLevel: "Recoverable+Purgeable"}),
			check: func(t *testing.T, check tenant.KeyCheck) {
				if !check.Unwrapped || check.RecoveryLevel != "Recoverable+Purgeable" {
					t.Errorf("check %+v", check)
				}
			}},
		{name: "an EC key: no RSA part, nothing to unwrap", vault: keyVault(cloudtest.Key{Enabled: true, Kty: "EC"}),
			check: func(t *testing.T, check tenant.KeyCheck) {
				if check.Kty != "EC" || check.Unwrapped || check.UnwrapErr != nil || check.WrapErr != nil {
					t.Errorf("check %+v", check)
				}
			}},
		{name: "throttled once", vault: keyVault(cloudtest.Key{Enabled: true, Throttle: 1}),
			check: func(t *testing.T, check tenant.KeyCheck) {
				if !check.Unwrapped {
					t.Errorf("check %+v", check)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCloud(t)
			c.AddVault("contoso-kv", tenantA, tt.vault)
			check, err := newReader(c).Key(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "cmk", c.SecretCredential(t, tenantA))
			got := map[string]error{"read": err, "wrap": check.WrapErr, "unwrap": check.UnwrapErr}
			for where, e := range got {
				switch {
				case where == tt.where:
					if outcome.Of(e) != tt.want || !strings.Contains(outcome.Detail(e), tt.detail) {
						t.Errorf("%s: %v, want %s with %q", where, e, tt.want, tt.detail)
					}
					noLeak(t, c, e.Error())
					noKeyMaterial(t, c, "contoso-kv", e.Error())
					if strings.Contains(e.Error(), "appid=") || strings.Contains(e.Error(), "https://") {
						t.Errorf("error text carries the vault's message: %v", e)
					}
				case e != nil:
					t.Errorf("%s: unexpected %v", where, e)
				}
			}
			if tt.name == "firewall" && !tenant.SubjectOf(err, tenantA).Firewall {
				t.Errorf("a firewall's refusal is not marked as one: %v", err)
			}
			if tt.check != nil {
				tt.check(t, check)
			}
			noKeyMaterial(t, c, "contoso-kv", fmt.Sprintf("%+v", check))
		})
	}
}

func keyVault(k cloudtest.Key) cloudtest.Vault {
	return cloudtest.Vault{Keys: map[string]cloudtest.Key{"cmk": k}}
}

// A refused wrap leaves the key cold: the next probe asks the vault to wrap
// again, so a grant that arrives later is seen, and one that never does is
// reported every time.
func TestCloudKeyWrapRefusedStaysCold(t *testing.T) {
	c := startCloud(t)
	c.AddVault("contoso-kv", tenantA, keyVault(cloudtest.Key{Enabled: true, AccessPolicyDenied: []string{"wrapKey"}}))
	r := newReader(c)
	cred := c.SecretCredential(t, tenantA)
	for range 2 {
		c.ResetCounters()
		check, err := r.Key(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "cmk", cred)
		if err != nil || outcome.Of(check.WrapErr) != outcome.KeyVaultAccessDenied {
			t.Fatalf("check %+v, err %v", check, err)
		}
		if got := keyCalls(c); !slices.Equal(got, []string{"GET /keys/cmk", "POST /keys/cmk/wrapkey"}) {
			t.Errorf("requests %v", got)
		}
	}
	c.SetKey("contoso-kv", "cmk", cloudtest.Key{Enabled: true, Version: c.KeyVersions("contoso-kv", "cmk")[0]})
	check, err := r.Key(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "cmk", cred)
	if err != nil || !check.Unwrapped || check.WrapErr != nil {
		t.Fatalf("after the grant: check %+v, err %v", check, err)
	}
}

// A key's public part stands in for the vault's wrap for keyFreshness:
// a wrapKey permission removed since shows once it is that old, when the
// vault is asked to wrap again; offboarding forgets the tenant's keys.
func TestCloudKeyProvedAgainWhenStale(t *testing.T) {
	c := startCloud(t)
	c.AddVault("contoso-kv", tenantA, keyVault(cloudtest.Key{Enabled: true}))
	version := c.KeyVersions("contoso-kv", "cmk")[0]
	r := newReader(c)
	cred := c.SecretCredential(t, tenantA)
	probe := func(name string, want ...string) tenant.KeyCheck {
		t.Helper()
		c.ResetCounters()
		check, err := r.Key(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "cmk", cred)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := keyCalls(c); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("%s: requests %v, want %v", name, got, want)
		}
		return check
	}
	cold := []string{"GET /keys/cmk", "POST /keys/cmk/wrapkey", "POST /keys/cmk/v/unwrapkey"}
	warm := []string{"GET /keys/cmk", "POST /keys/cmk/v/unwrapkey"}
	probe("cold", cold...)
	c.SetKey("contoso-kv", "cmk", cloudtest.Key{Enabled: true, Version: version, AccessPolicyDenied: []string{"wrapKey"}})
	if check := probe("warm, wrapKey removed", warm...); !check.Unwrapped || check.WrapErr != nil {
		t.Errorf("warm: %+v", check)
	}
	r.keys.mu.Lock()
	for id, k := range r.keys.m {
		k.proved = k.proved.Add(-keyFreshness)
		r.keys.m[id] = k
	}
	r.keys.mu.Unlock()
	if check := probe("stale", "GET /keys/cmk", "POST /keys/cmk/wrapkey"); outcome.Of(check.WrapErr) != outcome.KeyVaultAccessDenied {
		t.Errorf("stale: %+v, want the wrap refused", check)
	}

	c.SetKey("contoso-kv", "cmk", cloudtest.Key{Enabled: true, Version: version})
	probe("granted again", cold...)
	probe("warm", warm...)
	r.Forget(strings.ToUpper(tenantA))
	probe("after offboarding", cold...)
}

func TestKeyRefusesBadInput(t *testing.T) {
	c := startCloud(t)
	r := newReader(c)
	cred := c.SecretCredential(t, tenantA)
	for _, in := range []struct{ tenant, vault, key string }{
		{"common", cloudtest.VaultURL("contoso-kv"), "cmk"},
		{tenantA, "https://contoso-kv.vault.azure.net.evil.example.com", "cmk"},
		{tenantA, "https://graph.microsoft.com", "cmk"},
		{tenantA, cloudtest.VaultURL("contoso-kv"), "cmk/0123"},
		{tenantA, cloudtest.VaultURL("contoso-kv"), ""},
	} {
		if _, err := r.Key(context.Background(), in.tenant, in.vault, in.key, cred); err == nil {
			t.Errorf("%+v accepted", in)
		}
	}
	if n := len(c.Requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}
