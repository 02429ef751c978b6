package tablestore

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// bigResult lists n secrets and n keys with long names, every tenth of each
// failing.
func bigResult(secrets, keys int) tenant.SweepResult {
	res := tenant.SweepResult{At: time.Now(), Outcome: outcome.KeyDisabled, Message: "m"}
	exp := time.Now().Add(time.Hour)
	enabled := true
	for i := range secrets {
		st := tenant.SecretStatus{VaultURL: fmt.Sprintf("https://kv%02d.vault.azure.net/", i/50), Secret: fmt.Sprintf("secret-%04d-%s", i, strings.Repeat("s", 40)),
			Version: strings.Repeat("0", 32), Enabled: &enabled, ExpiresOn: &exp, Outcome: outcome.OK}
		if i%10 == 3 {
			st.Outcome, st.OutcomeDetail = outcome.SecretNotFound, "the vault has no such secret"
		}
		res.KeyVault = append(res.KeyVault, st)
	}
	for i := range keys {
		pp := true
		k := tenant.KeyStatus{VaultURL: fmt.Sprintf("https://kv%02d.vault.azure.net/", i/50), Key: fmt.Sprintf("key-%04d-%s", i, strings.Repeat("k", 40)),
			Version: strings.Repeat("f", 32), Enabled: &enabled, ExpiresOn: &exp, PurgeProtection: &pp, Outcome: outcome.OK}
		if i%10 == 7 {
			k.Outcome, k.OutcomeDetail = outcome.KeyDisabled, "the key's current version is disabled (enabled: false)"
		}
		res.Keys = append(res.Keys, k)
	}
	return res
}

// A result too long for its property keeps the failing keys, then the
// failing secrets, then the rest, as many as fit, and counts every secret
// and key by outcome.
func TestFitSweepBoundsKeysAndSecrets(t *testing.T) {
	for _, tt := range []struct{ secrets, keys int }{{1000, 1000}, {0, 1000}, {1000, 0}, {30, 1000}} {
		t.Run(fmt.Sprintf("%d secrets, %d keys", tt.secrets, tt.keys), func(t *testing.T) {
			out, err := fitSweep(bigResult(tt.secrets, tt.keys))
			if err != nil {
				t.Fatal(err)
			}
			if n := 2 * utf16Len(out); n > maxStringBytes {
				t.Fatalf("%d bytes, over the %d-byte limit", n, maxStringBytes)
			}
			var got tenant.SweepResult
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			sum := func(m map[outcome.Code]int) (n int) {
				for _, v := range m {
					n += v
				}
				return n
			}
			if sum(got.KeyCounts) != tt.keys || got.KeyCounts[outcome.KeyDisabled] != tt.keys/10 || len(got.Keys)+got.KeysOmitted != tt.keys {
				t.Errorf("keys: counts %v, %d listed, %d omitted; want %d counted", got.KeyCounts, len(got.Keys), got.KeysOmitted, tt.keys)
			}
			if sum(got.SecretCounts) != tt.secrets || len(got.KeyVault)+got.Omitted != tt.secrets {
				t.Errorf("secrets: counts %v, %d listed, %d omitted; want %d counted", got.SecretCounts, len(got.KeyVault), got.Omitted, tt.secrets)
			}
			if got.KeysOmitted+got.Omitted == 0 {
				t.Fatal("nothing left out: the case does not test the bound")
			}
			// Every failing key is kept before any healthy one.
			failing := 0
			for i, k := range got.Keys {
				if k.Outcome != outcome.OK {
					failing++
					if i >= tt.keys/10 {
						t.Errorf("failing key %d listed after a healthy one", i)
					}
				}
			}
			if failing != min(tt.keys/10, len(got.Keys)) {
				t.Errorf("%d failing keys kept of %d", failing, tt.keys/10)
			}
			if tt.keys > 0 && tt.secrets > 0 && len(got.KeyVault) > 0 && len(got.Keys) < tt.keys/10 {
				t.Errorf("a secret was kept before a failing key")
			}
		})
	}
}

// A result that fits is stored as it is.
func TestFitSweepKeepsWhatFits(t *testing.T) {
	res := bigResult(3, 3)
	out, err := fitSweep(res)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(res)
	if out != string(want) || strings.Contains(out, "keyCounts") || strings.Contains(out, "keysOmitted") {
		t.Errorf("stored %s\nwant %s", out, want)
	}
}
