package tenant

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

const (
	appID    = "11111111-2222-4333-8444-555555555555"
	tenantID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	vaultURL = "https://contoso.vault.azure.net/"
)

func TestRecordSweepAndBackoff(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := Record{}
	for i := 1; i <= 8; i++ {
		RecordSweep(&rec, SweepResult{At: at, Outcome: outcome.UpstreamError}, 2*time.Hour)
		want := Backoff(i, 2*time.Hour)
		if rec.ConsecutiveFailures != i {
			t.Fatalf("failures = %d, want %d", rec.ConsecutiveFailures, i)
		}
		if (want == 0) != (rec.BackoffUntil == nil) || (want > 0 && !rec.BackoffUntil.Equal(at.Add(want))) {
			t.Fatalf("after %d failures backoffUntil = %v, want +%s", i, rec.BackoffUntil, want)
		}
	}
	RecordSweep(&rec, SweepResult{At: at, Outcome: outcome.AppCredentialInvalid}, 2*time.Hour)
	if rec.ConsecutiveFailures != 8 {
		t.Fatalf("an app-wide failure was counted against the tenant")
	}
	RecordSweep(&rec, SweepResult{At: at, Outcome: outcome.OK}, 2*time.Hour)
	if rec.ConsecutiveFailures != 0 || rec.BackoffUntil != nil || rec.BackedOff(at) {
		t.Fatalf("success did not reset: %+v", rec)
	}
	wants := map[int]time.Duration{1: 0, 2: 0, 3: 15 * time.Minute, 4: 30 * time.Minute, 5: time.Hour, 6: 2 * time.Hour, 20: 2 * time.Hour}
	for n, want := range wants {
		if got := Backoff(n, 2*time.Hour); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

var t0 = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

func TestMarkPending(t *testing.T) {
	notInTenant := Verification{Outcome: outcome.AppNotInTenant, Step: "3", Message: "not found", Remediation: "add it", At: t0}
	tests := []struct {
		name        string
		v           Verification
		onboardedAt time.Time
		now         time.Time
		pending     bool
	}{
		{"at onboarding", notInTenant, t0, t0, true},
		{"just inside the hour", notInTenant, t0, t0.Add(time.Hour - time.Second), true},
		{"clock behind onboarding", notInTenant, t0, t0.Add(-time.Minute), true},
		{"exactly an hour", notInTenant, t0, t0.Add(time.Hour), false},
		{"a day later", notInTenant, t0, t0.Add(24 * time.Hour), false},
		{"unknown onboarding time", notInTenant, time.Time{}, t0, false},
		{"other outcome", Verification{Outcome: outcome.GraphConsentMissing, Step: "4", Message: "403"}, t0, t0, false},
		{"ok", Verification{Outcome: outcome.OK}, t0, t0, false},
		{"no step or remediation from the verifier", Verification{Outcome: outcome.AppNotInTenant}, t0, t0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Advisor{AppID: appID}.MarkPending(tt.v, tt.onboardedAt, tt.now)
			if !tt.pending {
				if !reflect.DeepEqual(got, tt.v) {
					t.Errorf("changed: %+v", got)
				}
				return
			}
			if got.Outcome != outcome.AppNotInTenant || got.Step != "3" || !strings.HasPrefix(got.Message, "pending:") ||
				!strings.Contains(got.Message, "propagating") || got.Remediation == "" || got.At != tt.v.At {
				t.Errorf("got %+v", got)
			}
			if tt.v.Remediation != "" && got.Remediation != tt.v.Remediation {
				t.Errorf("remediation %q replaced", tt.v.Remediation)
			}
		})
	}
}

func TestRecordSweepKeepsOutcomeSince(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := Record{}
	steps := []struct {
		code  outcome.Code
		since time.Duration // after at
	}{{outcome.OK, 0}, {outcome.OK, 0}, {outcome.SecretNotFound, 2 * time.Hour}, {outcome.SecretNotFound, 2 * time.Hour}, {outcome.OK, 4 * time.Hour}}
	for i, s := range steps {
		res := SweepResult{At: at.Add(time.Duration(i) * time.Hour), Outcome: s.code}
		if changed := len(rec.StatusChanges(res)) > 0; changed != (i == 0 || steps[i-1].code != s.code) {
			t.Errorf("sweep %d: StatusChanges = %v", i, rec.StatusChanges(res))
		}
		RecordSweep(&rec, res, time.Hour)
		if !rec.LastSweep.OutcomeSince.Equal(at.Add(s.since)) {
			t.Errorf("sweep %d (%s): outcome since %v, want %v", i, s.code, rec.LastSweep.OutcomeSince, at.Add(s.since))
		}
	}
}

func TestStatusChanges(t *testing.T) {
	tr := func(c outcome.Code) TaskResult {
		return TaskResult{Outcome: c, Step: "4", Remediation: "fix " + string(c)}
	}
	tests := []struct {
		name string
		prev *SweepResult
		res  SweepResult
		want []string // task:from>to
	}{
		{"first sweep", nil, SweepResult{Outcome: outcome.OK, Tasks: map[string]TaskResult{"access": tr(outcome.OK), "groups": tr(outcome.OK)}},
			[]string{"access:none>ok", "groups:none>ok"}},
		{"unchanged", &SweepResult{Outcome: outcome.OK, Tasks: map[string]TaskResult{"access": tr(outcome.OK)}},
			SweepResult{Outcome: outcome.OK, Tasks: map[string]TaskResult{"access": tr(outcome.OK)}}, nil},
		{"one task of two changes while the tenant's outcome stays", &SweepResult{Outcome: outcome.GraphConsentMissing,
			Tasks: map[string]TaskResult{"access": tr(outcome.GraphConsentMissing), "keys": tr(outcome.OK)}},
			SweepResult{Outcome: outcome.GraphConsentMissing, Tasks: map[string]TaskResult{"access": tr(outcome.GraphConsentMissing), "keys": tr(outcome.KeyVaultAccessDenied)}},
			[]string{"keys:ok>keyvault_access_denied"}},
		{"a record from before tasks stands for each task", &SweepResult{Outcome: outcome.SecretNotFound},
			SweepResult{Outcome: outcome.SecretNotFound, Tasks: map[string]TaskResult{"access": tr(outcome.SecretNotFound)}}, nil},
		{"a task newly enabled starts from none", &SweepResult{Outcome: outcome.OK, Tasks: map[string]TaskResult{"access": tr(outcome.OK)}},
			SweepResult{Outcome: outcome.OK, Tasks: map[string]TaskResult{"access": tr(outcome.OK), "groups": tr(outcome.GraphPermissionMissing)}},
			[]string{"groups:none>graph_permission_missing"}},
		{"a result that ran no task compares the tenant's outcome", &SweepResult{Outcome: outcome.OK, Tasks: map[string]TaskResult{"access": tr(outcome.OK)}},
			SweepResult{Outcome: outcome.Timeout}, []string{":ok>timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := Record{LastSweep: tt.prev}
			var got []string
			for _, ch := range rec.StatusChanges(tt.res) {
				got = append(got, ch.Task+":"+ch.From+">"+string(ch.To))
				if ch.Task != "" && ch.Key == "" && (ch.Step != "4" || ch.Remediation != "fix "+string(ch.To)) {
					t.Errorf("change %+v lacks the task's step and remediation", ch)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("changes = %v, want %v", got, tt.want)
			}
		})
	}
}

// A remediation that sends the reader to docs/operations.md names a section
// that is there.
func TestRemediationsNameRealSections(t *testing.T) {
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	ref := regexp.MustCompile(`docs/operations\.md, '([^']+(?:'s[^']*)?)'`)
	a := Advisor{AppID: appID, Cloud: cloud.AzurePublic}
	found := 0
	for _, c := range outcome.Codes {
		adv := a.Advise(c, Subject{TenantID: tenantID, VaultURL: vaultURL, Secret: "s"})
		for _, m := range ref.FindAllStringSubmatch(adv.Message+" "+adv.Remediation, -1) {
			found++
			if !regexp.MustCompile(`(?m)^#+ .*` + regexp.QuoteMeta(m[1]) + `$`).Match(ops) {
				t.Errorf("%s: the remediation names the section %q, which docs/operations.md lacks", c, m[1])
			}
		}
	}
	if found == 0 {
		t.Error("no remediation names a section: the check checks nothing")
	}
}

// Each key whose outcome changed is one change of its own, named by key and
// vault, with the key's own advice; the keys task's own change is listed
// only when no key tells it.
func TestKeyStatusChanges(t *testing.T) {
	const vault = "https://contoso-kv.vault.azure.net/"
	key := func(name string, c outcome.Code) KeyStatus {
		k := KeyStatus{VaultURL: vault, Key: name, Outcome: c}
		if c != outcome.OK {
			k.Step, k.Remediation = "5", "fix key "+name
		}
		return k
	}
	task := func(c outcome.Code) TaskResult { return TaskResult{Outcome: c, Step: "5", Remediation: "fix the task"} }
	tasks := func(access, keys outcome.Code) map[string]TaskResult {
		return map[string]TaskResult{"access": task(access), KeysTask: task(keys)}
	}
	tests := []struct {
		name string
		prev *SweepResult
		res  SweepResult
		want []string // task[/key]:from>to
	}{
		{"first sweep: every key from none", nil,
			SweepResult{Tasks: tasks(outcome.OK, outcome.KeyDisabled), Keys: []KeyStatus{key("a", outcome.OK), key("b", outcome.KeyDisabled)}},
			[]string{"access:none>ok", "keys/a:none>ok", "keys/b:none>key_disabled"}},
		{"unchanged", &SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("a", outcome.OK)}},
			SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("a", outcome.OK)}}, nil},
		{"a key lost while another keeps the task failing",
			&SweepResult{Tasks: tasks(outcome.OK, outcome.KeyDisabled), Keys: []KeyStatus{key("a", outcome.KeyDisabled), key("b", outcome.OK)}},
			SweepResult{Tasks: tasks(outcome.OK, outcome.KeyDisabled), Keys: []KeyStatus{key("a", outcome.KeyDisabled), key("b", outcome.KeyVaultAccessDenied)}},
			[]string{"keys/b:ok>keyvault_access_denied"}},
		{"two keys change at once: two lines, not the task's",
			&SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("a", outcome.OK), key("b", outcome.OK)}},
			SweepResult{Tasks: tasks(outcome.OK, outcome.KeyNotFound), Keys: []KeyStatus{key("a", outcome.KeyNotFound), key("b", outcome.Throttled)}},
			[]string{"keys/a:ok>key_not_found", "keys/b:ok>throttled"}},
		{"upgrade: a record from before tasks and keys starts each key from none",
			&SweepResult{Outcome: outcome.OK},
			SweepResult{Outcome: outcome.OK, Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("a", outcome.OK)}},
			[]string{"keys/a:none>ok"}},
		{"a key newly registered beside known ones",
			&SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("a", outcome.OK)}},
			SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("a", outcome.OK), key("new", outcome.OK)}},
			[]string{"keys/new:none>ok"}},
		{"the task did not reach its keys: the task's own change",
			&SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("a", outcome.OK)}},
			SweepResult{Tasks: tasks(outcome.AppNotInTenant, outcome.AppNotInTenant)},
			[]string{"access:ok>app_not_in_tenant", "keys:ok>app_not_in_tenant"}},
		{"back from a sweep that did not reach the keys: from the task's outcome",
			&SweepResult{Tasks: tasks(outcome.Timeout, outcome.Timeout)},
			SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("a", outcome.OK)}},
			[]string{"access:timeout>ok", "keys/a:timeout>ok"}},
		{"a failing key left the registration: the task's own change",
			&SweepResult{Tasks: tasks(outcome.OK, outcome.KeyDisabled), Keys: []KeyStatus{key("a", outcome.KeyDisabled), key("b", outcome.OK)}},
			SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("b", outcome.OK)}},
			[]string{"keys:key_disabled>ok"}},
		{"keys the registry left out start from ok",
			&SweepResult{Tasks: tasks(outcome.OK, outcome.KeyDisabled), Keys: []KeyStatus{key("a", outcome.KeyDisabled)}, KeysOmitted: 40},
			SweepResult{Tasks: tasks(outcome.OK, outcome.KeyDisabled), Keys: []KeyStatus{key("a", outcome.KeyDisabled), key("z", outcome.OK), key("y", outcome.KeyExpired)}},
			[]string{"keys/y:ok>key_expired"}},
		{"vault and key names compare in any case",
			&SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{{VaultURL: "https://CONTOSO-kv.vault.azure.net/", Key: "A", Outcome: outcome.OK}}},
			SweepResult{Tasks: tasks(outcome.OK, outcome.OK), Keys: []KeyStatus{key("a", outcome.OK)}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, ch := range (Record{LastSweep: tt.prev}).StatusChanges(tt.res) {
				name := ch.Task
				if ch.Key != "" {
					name += "/" + ch.Key
					if ch.VaultURL != vault {
						t.Errorf("change %+v does not name the vault", ch)
					}
					if ch.To != outcome.OK && (ch.Step != "5" || ch.Remediation != "fix key "+ch.Key) {
						t.Errorf("change %+v lacks the key's advice", ch)
					}
				}
				got = append(got, name+":"+ch.From+">"+string(ch.To))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("changes = %v, want %v", got, tt.want)
			}
		})
	}
}
