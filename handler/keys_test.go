package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Tenants that register keys, through the built binary with the default
// SWEEP_TASKS: onboarding verifies each key and names the step still owed,
// the sweep records lastSweep.keys, a key that goes away is one "tenant
// status changed" line naming it in the next sweep, and no value the vaults
// wrapped or unwrapped shows in any log, answer or registry row.
func TestKeysThroughTheBinary(t *testing.T) {
	fx := newFixture(t)
	type keyTenant struct {
		vault string
		key   cloudtest.Key
		want  outcome.Code
	}
	cases := []keyTenant{
		{"keys-ok", cloudtest.Key{Enabled: true}, outcome.OK},
		{"keys-disabled", cloudtest.Key{Enabled: false}, outcome.KeyDisabled},
		{"keys-wrong", cloudtest.Key{Enabled: true, WrongUnwrap: true}, outcome.KeyUnusable},
		{"keys-no-unwrap", cloudtest.Key{Enabled: true, UnwrapStatus: 403}, outcome.KeyVaultAccessDenied},
	}
	p := startHost(t, fx.env())
	var answers strings.Builder
	ids := make([]string, len(cases))
	for i, c := range cases {
		id := tenantID(500 + i)
		ids[i] = id
		fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "Org " + id[:8], Users: 3})
		fx.cloud.AddVault(c.vault, id, cloudtest.Vault{
			Secrets: map[string]cloudtest.Secret{"db-password": {Value: "customer-secret-value-" + id[:8], Enabled: true}},
			Keys:    map[string]cloudtest.Key{"cmk": c.key},
		})
		body := map[string]any{"tenantId": id, "displayName": "Keys " + id[:8], "graph": true, "keyVaults": []map[string]any{
			{"vaultUrl": cloudtest.VaultURL(c.vault) + "/", "secrets": []string{"db-password"}, "keys": []string{"cmk"}}}}
		var rec tenant.Record
		code, _, raw := do(t, "POST", p.base+"/api/tenants", body, hostHeaders(fmt.Sprint("inv-keys-", i)), &rec)
		answers.Write(raw)
		if code != http.StatusCreated || rec.Verification == nil || rec.Verification.Outcome != c.want ||
			len(rec.KeyVaults) != 1 || len(rec.KeyVaults[0].Keys) != 1 {
			t.Fatalf("%s: POST %d %s", c.vault, code, raw)
		}
		if v := rec.Verification; c.want != outcome.OK && (v.Step != "5" || !strings.Contains(v.Message, `key "cmk"`)) {
			t.Errorf("%s: verification %+v does not name the key and step 5", c.vault, v)
		}
	}

	sweepThrough(t, fx, p, "keys-sweep-1")
	for i, c := range cases {
		rec, err := fx.store.Get(context.Background(), ids[i])
		if err != nil || rec.LastSweep == nil || rec.LastSweep.Outcome != c.want || len(rec.LastSweep.Keys) != 1 ||
			rec.LastSweep.Keys[0].Outcome != c.want || rec.LastSweep.Tasks["keys"].Outcome != c.want {
			t.Fatalf("%s: lastSweep %+v (%v)", c.vault, rec.LastSweep, err)
		}
	}
	if n := fx.cloud.UnwrapCount("keys-ok", "cmk"); n < 2 {
		t.Errorf("the healthy key was unwrapped %d times in verification and a sweep", n)
	}

	// The healthy key is disabled: the next sweep tells it, once.
	version := fx.cloud.KeyVersions("keys-ok", "cmk")[0]
	fx.cloud.SetKey("keys-ok", "cmk", cloudtest.Key{Enabled: false, Version: version})
	sweepThrough(t, fx, p, "keys-sweep-2")
	sweepThrough(t, fx, p, "keys-sweep-3")
	var lost []map[string]any
	for line := range strings.Lines(p.stdout.String() + p.stderr.String()) {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["message"] == "tenant status changed" && l["tenantId"] == ids[0] && l["to"] == string(outcome.KeyDisabled) {
			lost = append(lost, l)
		}
	}
	if len(lost) != 1 || lost[0]["task"] != "keys" || lost[0]["key"] != "cmk" || lost[0]["vaultUrl"] != cloudtest.VaultURL("keys-ok")+"/" ||
		lost[0]["from"] != "ok" || lost[0]["step"] != "5" || !strings.Contains(fmt.Sprint(lost[0]["remediation"]), "--enabled true") {
		t.Errorf("the lost key's status change lines: %v", lost)
	}

	for _, id := range ids {
		_, _, raw := do(t, "GET", p.base+"/api/tenants/"+id, nil, hostHeaders("inv-get-"+id[:8]), nil)
		answers.Write(raw)
	}
	_, _, raw := do(t, "GET", p.base+"/api/tenants?pageSize=100", nil, hostHeaders("inv-list"), nil)
	answers.Write(raw)
	if !strings.Contains(answers.String(), `"keys":[{"vaultUrl":`) {
		t.Errorf("the answers show no lastSweep.keys: %.500s", answers.String())
	}

	logs := p.stdout.String() + p.stderr.String()
	page, err := fx.store.List(context.Background(), 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := json.Marshal(page.Records)
	assertNoLeaks(t, fx, logs+answers.String())
	var values int
	for _, c := range cases {
		for _, v := range fx.cloud.KeyOperationValues(c.vault) {
			values++
			for _, form := range []string{string(v), base64.RawURLEncoding.EncodeToString(v), base64.StdEncoding.EncodeToString(v), hex.EncodeToString(v)} {
				for where, s := range map[string]string{"logs": logs, "answers": answers.String(), "registry": string(stored)} {
					if strings.Contains(s, form) {
						t.Errorf("%s: a value the vault wrapped or unwrapped shows in the %s", c.vault, where)
					}
				}
			}
		}
	}
	if values < 2*len(cases) {
		t.Errorf("only %d key operation values to look for: the scan proves nothing", values)
	}
}
