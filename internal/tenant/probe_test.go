package tenant

import (
	"context"
	"slices"
	"strings"
	"sync"
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

// mu guards every fakeAccess's calls; the tests copy fakeAccess values.
var mu sync.Mutex

// fakeAccess fails the steps it is told to and counts calls. It is the
// Signer, Directory and Vaults of a Prober whose credential is the tenant id.
type fakeAccess struct {
	signIn  error
	org     error
	secrets map[string]error // by secret name
	meta    SecretMeta

	calls []string // under mu: the reads run at once

}

func (f *fakeAccess) call(c string) {
	mu.Lock()
	defer mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeAccess) SignIn(ctx context.Context, tenantID string, keyVault bool) (string, error) {
	f.call("signin")
	return tenantID, f.signIn
}

func (f *fakeAccess) Organization(ctx context.Context, cred string) (GraphInfo, error) {
	f.call("graph:" + cred)
	return GraphInfo{Organization: "Contoso", UserCount: 42}, f.org
}

func (f *fakeAccess) Secret(ctx context.Context, tenantID, vaultURL, name, cred string) (SecretMeta, error) {
	f.call("secret:" + name + ":" + cred)
	return f.meta, f.secrets[name]
}

// prober is a Prober over a, as the adapters are wired in production.
func prober(a *fakeAccess) *Prober[string] {
	return &Prober[string]{SignIn: a, Directory: a, Vaults: a, Advisor: Advisor{AppID: appID, Cloud: cloud.AzurePublic}, Now: time.Now}
}

func record() Record {
	return Record{TenantID: tenantID, Status: StatusActive, Graph: true,
		KeyVaults: []KeyVault{{VaultURL: vaultURL, Secrets: []string{"db-password", "api-key"}}}}
}

func TestVerifyNamesTheMissingStep(t *testing.T) {
	fault := func(c outcome.Code) error { return outcome.New(c, "detail of "+string(c), nil) }
	tests := []struct {
		name        string
		access      fakeAccess
		wantOutcome outcome.Code
		wantStep    string
		wantRemedy  string
		wantCalls   int
	}{
		{"all done", fakeAccess{}, outcome.OK, "", "", 4},
		{"app not added", fakeAccess{signIn: fault(outcome.AppNotInTenant)}, outcome.AppNotInTenant, "3", "az ad sp create --id " + appID, 1},
		{"wrong tenant", fakeAccess{signIn: fault(outcome.TenantNotFound)}, outcome.TenantNotFound, "onboarding", "tenant id", 1},
		{"our secret expired", fakeAccess{signIn: fault(outcome.AppCredentialInvalid)}, outcome.AppCredentialInvalid, "1", "developer rotates", 1},
		{"no consent", fakeAccess{org: fault(outcome.GraphConsentMissing)}, outcome.GraphConsentMissing, "4", "Grant admin consent", 4},
		{"no vault role", fakeAccess{secrets: map[string]error{"api-key": fault(outcome.KeyVaultAccessDenied)}}, outcome.KeyVaultAccessDenied, "5", "--scope $(az keyvault show --name contoso", 4},
		{"no secret", fakeAccess{secrets: map[string]error{"db-password": fault(outcome.SecretNotFound)}}, outcome.SecretNotFound, "5", "--name db-password", 4},
		{"graph step reported before vault step", fakeAccess{org: fault(outcome.GraphConsentMissing), secrets: map[string]error{"db-password": fault(outcome.KeyVaultAccessDenied)}}, outcome.GraphConsentMissing, "4", "adminconsent?client_id=" + appID, 4},
		{"timeout", fakeAccess{org: context.DeadlineExceeded}, outcome.Timeout, "", "next sweep", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := prober(&tt.access).Verify(context.Background(), record())
			if v.Outcome != tt.wantOutcome || v.Step != tt.wantStep {
				t.Fatalf("verification = %+v, want outcome %s step %q", v, tt.wantOutcome, tt.wantStep)
			}
			if !strings.Contains(v.Remediation, tt.wantRemedy) {
				t.Errorf("remediation %q does not contain %q", v.Remediation, tt.wantRemedy)
			}
			if v.Message == "" || v.At.IsZero() {
				t.Errorf("verification lacks a message or time: %+v", v)
			}
			if len(tt.access.calls) != tt.wantCalls {
				t.Errorf("calls = %v, want %d", tt.access.calls, tt.wantCalls)
			}
		})
	}
}

func TestProbeSecretExpiry(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	soon, later := now.Add(10*24*time.Hour), now.Add(90*24*time.Hour)
	enabled := true
	for _, tt := range []struct {
		expires *time.Time
		want    bool
	}{{&soon, true}, {&later, false}, {nil, false}} {
		a := &fakeAccess{meta: SecretMeta{Version: "v1", Enabled: &enabled, ExpiresOn: tt.expires}}
		p := prober(a)
		p.ExpiryWarning, p.Now = 30*24*time.Hour, func() time.Time { return now }
		res := p.Probe(context.Background(), record())
		if res.Outcome != outcome.OK || len(res.KeyVault) != 2 || res.Graph == nil || res.Graph.UserCount != 42 {
			t.Fatalf("result = %+v", res)
		}
		if got := res.KeyVault[0]; got.ExpiresSoon != tt.want || got.Version != "v1" || got.Outcome != outcome.OK {
			t.Errorf("expires %v: status = %+v, want expiresSoon %v", tt.expires, got, tt.want)
		}
	}
}

func TestUnclassifiedErrorTextIsNotPassedOn(t *testing.T) {
	leak := "https://contoso.vault.azure.net/secrets/x?sig=SECRETSIG"
	a := &fakeAccess{org: &rawErr{leak}}
	res := prober(a).Probe(context.Background(), record())
	if res.Outcome != outcome.UpstreamError || strings.Contains(res.Message, "SECRETSIG") {
		t.Fatalf("result = %+v", res)
	}
}

type rawErr struct{ s string }

func (e *rawErr) Error() string { return e.s }

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

// The reads use the credential that signing in handed out; they run at
// once, after the sign-in, so only the sign-in's place is fixed.
func TestProbeReadsWithTheSignedInCredential(t *testing.T) {
	a := &fakeAccess{}
	prober(a).Probe(context.Background(), record())
	want := []string{"signin", "graph:" + tenantID, "secret:api-key:" + tenantID, "secret:db-password:" + tenantID}
	if len(a.calls) > 1 {
		slices.Sort(a.calls[1:])
	}
	if strings.Join(a.calls, " ") != strings.Join(want, " ") {
		t.Errorf("calls = %v, want %v", a.calls, want)
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
				if got != tt.v {
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

// Verify reports a missing service principal as pending within the
// propagation window of the tenant's onboarding, and as the probe found it
// after.
func TestVerifyMarksPendingPropagation(t *testing.T) {
	a := &fakeAccess{signIn: outcome.New(outcome.AppNotInTenant, "AADSTS700016: app not found", nil)}
	p := prober(a)
	now := t0
	p.Now = func() time.Time { return now }
	rec := record()
	rec.OnboardedAt = t0
	plain := p.Advisor.Advise(outcome.AppNotInTenant, Subject{TenantID: tenantID})

	v := p.Verify(context.Background(), rec)
	if v.Step != "3" || !strings.Contains(v.Message, "propagating") || !strings.Contains(v.Message, "pending") || v.Remediation != plain.Remediation {
		t.Errorf("fresh tenant: verification = %+v", v)
	}
	now = t0.Add(PropagationWindow)
	v = p.Verify(context.Background(), rec)
	if !strings.Contains(v.Message, "AADSTS700016: app not found") || strings.Contains(v.Message, "pending") {
		t.Errorf("an hour later: verification = %+v, want the probe's", v)
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
		if changed := rec.StatusChanged(res); changed != (i == 0 || steps[i-1].code != s.code) {
			t.Errorf("sweep %d: StatusChanged = %v", i, changed)
		}
		RecordSweep(&rec, res, time.Hour)
		if !rec.LastSweep.OutcomeSince.Equal(at.Add(s.since)) {
			t.Errorf("sweep %d (%s): outcome since %v, want %v", i, s.code, rec.LastSweep.OutcomeSince, at.Add(s.since))
		}
	}
}
