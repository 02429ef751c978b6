package sweep

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/logtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/runid"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tenant/tenanttest"
)

var (
	_ Registry   = (*tenanttest.Store)(nil)
	_ PlanSource = (*tenanttest.Store)(nil)
)

// get returns a tenant as stored (the zero record when missing).
func get(reg *tenanttest.Store, id string) tenant.Record {
	r, _ := reg.Stored(id)
	return r
}

// scriptProber answers per tenant from a script keyed by tenant id.
type scriptProber struct {
	mu      sync.Mutex
	script  map[string]func(ctx context.Context) tenant.SweepResult
	started []string
}

func (p *scriptProber) Probe(ctx context.Context, rec tenant.Record) tenant.SweepResult {
	p.mu.Lock()
	p.started = append(p.started, rec.TenantID)
	f := p.script[rec.TenantID]
	p.mu.Unlock()
	if f == nil {
		return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
	}
	return f(ctx)
}

func id(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-000000000000", i) }

func active(n int) []tenant.Record {
	recs := make([]tenant.Record, n)
	for i := range recs {
		recs[i] = tenant.Record{TenantID: id(i), Status: tenant.StatusActive, Graph: true}
	}
	return recs
}

func fails(code outcome.Code) func(context.Context) tenant.SweepResult {
	return func(context.Context) tenant.SweepResult {
		return tenant.SweepResult{At: time.Now(), Outcome: code, Message: string(code)}
	}
}

// localRun is `handler sweep`: the planner plans into a Local queue whose
// messages run through the worker, and the summary adds up their results.
func (p *pipeline) localRun(ctx context.Context, req Request, opt LocalOptions) (Run, error) {
	if req.ID == "" {
		req.ID = runid.New()
	}
	l := NewLocal(ctx, p.worker, opt)
	run, err := p.planner.Into(l).Plan(ctx, req)
	results := l.Wait()
	if err != nil {
		return run, err
	}
	if err := p.planner.Release(context.WithoutCancel(ctx), req.ID); err != nil {
		return run, err
	}
	return Summarize(run, results), nil
}

func TestLocalRunRecordsEveryOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		recs := active(40)
		recs[39].Status = tenant.StatusDisabled
		p := newPipelineWith(recs, 4, Options{Concurrency: 8, TenantTimeout: 200 * time.Millisecond, Budget: time.Minute})
		codes := []outcome.Code{outcome.AppNotInTenant, outcome.TenantNotFound, outcome.GraphConsentMissing,
			outcome.KeyVaultAccessDenied, outcome.SecretNotFound, outcome.Throttled, outcome.UpstreamError}
		want := map[string]outcome.Code{}
		for i, c := range codes {
			p.prober.script[id(i)] = fails(c)
			want[id(i)] = c
		}
		p.prober.script[id(10)] = func(context.Context) tenant.SweepResult { panic("boom") }
		want[id(10)] = outcome.InternalError
		p.prober.script[id(11)] = func(ctx context.Context) tenant.SweepResult {
			<-ctx.Done() // honours its deadline
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.UpstreamError}
		}
		want[id(11)] = outcome.Timeout
		p.prober.script[id(12)] = func(ctx context.Context) tenant.SweepResult {
			time.Sleep(3 * time.Second) // ignores its deadline: abandoned after the grace
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
		}
		want[id(12)] = outcome.Timeout

		run, err := p.localRun(t.Context(), Request{ID: "r1", Trigger: "cli", PastDue: true}, LocalOptions{})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if run.Total != 39 || run.OK != 39-len(want) || sum(run.Failed) != len(want) || run.NotReached != 0 || !run.PastDue ||
			run.MessagesDone != run.Messages || run.Messages != 10 {
			t.Fatalf("summary = %+v", run)
		}
		for i := range 39 {
			got := get(p.reg, id(i))
			if got.LastSweep == nil {
				t.Fatalf("tenant %d has no lastSweep", i)
			}
			wantCode := outcome.OK
			if c, ok := want[id(i)]; ok {
				wantCode = c
			}
			if got.LastSweep.Outcome != wantCode || got.LastSweep.RunID != "r1" {
				t.Errorf("tenant %d outcome = %s of run %s, want %s of r1", i, got.LastSweep.Outcome, got.LastSweep.RunID, wantCode)
			}
			wantFailures := 0
			if wantCode != outcome.OK {
				wantFailures = 1
			}
			if got.ConsecutiveFailures != wantFailures {
				t.Errorf("tenant %d consecutiveFailures = %d, want %d", i, got.ConsecutiveFailures, wantFailures)
			}
		}
		if get(p.reg, id(39)).LastSweep != nil {
			t.Error("disabled tenant was swept")
		}
		// The run is over: the next one may start.
		if st, err := p.planner.lock.State(t.Context(), p.leases.lease); err != nil || st.Active || st.Status != "finished" {
			t.Errorf("after the run its state is %+v, %v; want finished", st, err)
		}
		// The abandoned work of id(12) still sleeps; the bubble must not end
		// before it does.
		time.Sleep(3 * time.Second)
	})
}

// While a local run works, its lease holds the run lock (its work is in
// its process, not on the shared queue): a timer plans nothing.
func TestLocalRunHoldsTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(4), 2)
		started := make(chan struct{})
		release := make(chan struct{})
		p.prober.script[id(0)] = func(context.Context) tenant.SweepResult {
			close(started)
			<-release
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
		}
		done := make(chan error)
		go func() {
			_, err := p.localRun(t.Context(), Request{ID: "cli", Trigger: "cli", Hold: time.Hour}, LocalOptions{})
			done <- err
		}()
		<-started
		synctest.Wait()
		if _, err := p.planner.Plan(t.Context(), Request{ID: "timer", Trigger: "timer"}); !errors.Is(err, ErrRunActive) {
			t.Errorf("a timer during a local run: %v, want ErrRunActive", err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := p.planner.Plan(t.Context(), Request{ID: "timer", Trigger: "timer"}); err != nil {
			t.Errorf("a timer after the local run released its lease: %v", err)
		}
	})
}

func TestLocalRunStopsOnAppWideFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(200), 4, Options{Concurrency: 4, Budget: time.Minute})
		for i := range 200 {
			p.prober.script[id(i)] = func(ctx context.Context) tenant.SweepResult {
				time.Sleep(time.Millisecond)
				return tenant.SweepResult{At: time.Now(), Outcome: outcome.AppCredentialInvalid, Message: "secret expired"}
			}
		}
		run, err := p.localRun(t.Context(), Request{ID: "r"}, LocalOptions{InFlight: 1})
		if err != nil {
			t.Fatal(err)
		}
		if run.AppWideFailure != "secret expired" || run.NotReached < 150 {
			t.Fatalf("summary = %+v: want the run stopped early on the app-wide failure", run)
		}
		for i := range 200 {
			if r := get(p.reg, id(i)); r.ConsecutiveFailures != 0 || r.LastSweep != nil {
				t.Fatalf("tenant %d was blamed for an app-wide failure: %+v", i, r)
			}
		}
	})
}

func TestAppWideFailureBelowTheStopCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(2), 16)
		p.prober.script[id(0)] = fails(outcome.AppCredentialInvalid)
		p.prober.script[id(1)] = fails(outcome.AppCredentialInvalid)
		run, err := p.localRun(t.Context(), Request{}, LocalOptions{})
		if err != nil || run.AppWideFailure == "" {
			t.Fatalf("run = %+v, err = %v; want the app-wide failure reported", run, err)
		}
		// One tenant refusing our credential while another accepts it is that
		// tenant's problem, not the app's.
		p = newPipeline(active(2), 16)
		p.prober.script[id(0)] = fails(outcome.AppCredentialInvalid)
		if run, err := p.localRun(t.Context(), Request{}, LocalOptions{}); err != nil || run.AppWideFailure != "" {
			t.Fatalf("run = %+v, err = %v; want no app-wide failure", run, err)
		}
	})
}

func TestBackoffSkipsAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// In the bubble the clock moves only when every goroutine waits, so
		// three instant runs all happen at now.
		now := time.Now()
		p := newPipelineWith(active(1), 16, Options{Budget: time.Minute})
		failing := true
		p.prober.script[id(0)] = func(context.Context) tenant.SweepResult {
			if failing {
				return tenant.SweepResult{At: time.Now(), Outcome: outcome.GraphConsentMissing}
			}
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
		}
		for i := range 3 {
			run, err := p.localRun(t.Context(), Request{}, LocalOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if run.OK != 0 || run.Failed[outcome.GraphConsentMissing] != 1 || sum(run.Failed) != 1 {
				t.Fatalf("run %d: summary = %+v, want one graph_consent_missing", i, run)
			}
		}
		r := get(p.reg, id(0))
		if r.ConsecutiveFailures != 3 || r.BackoffUntil == nil || !r.BackoffUntil.Equal(now.Add(15*time.Minute)) {
			t.Fatalf("after 3 failures: %+v", r)
		}
		run, _ := p.localRun(t.Context(), Request{}, LocalOptions{})
		if run.SkippedBackoff != 1 || len(p.prober.started) != 3 {
			t.Fatalf("backed-off tenant was not skipped: %+v, started %d", run, len(p.prober.started))
		}
		time.Sleep(16 * time.Minute)
		failing = false
		run, _ = p.localRun(t.Context(), Request{}, LocalOptions{})
		if run.OK != 1 || sum(run.Failed) != 0 {
			t.Fatalf("tenant did not resume: %+v", run)
		}
		r = get(p.reg, id(0))
		if r.ConsecutiveFailures != 0 || r.BackoffUntil != nil {
			t.Fatalf("success did not clear the backoff: %+v", r)
		}
		if r.LastSweep == nil || r.LastSweep.Outcome != outcome.OK || !r.LastSweep.At.Equal(now.Add(16*time.Minute)) {
			t.Fatalf("after resuming: lastSweep = %+v, want ok at now+16m", r.LastSweep)
		}
	})
}

// A run whose budget ends leaves the rest not reached and unblamed; the
// next run takes them first.
func TestBudgetLeavesRestNotReachedAndFirstNextTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(20), 1, Options{Concurrency: 2, TenantTimeout: time.Minute})
		for i := range 20 {
			p.prober.script[id(i)] = func(ctx context.Context) tenant.SweepResult {
				select {
				case <-time.After(100 * time.Millisecond):
					return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
				case <-ctx.Done():
					return tenant.SweepResult{At: time.Now(), Outcome: outcome.UpstreamError}
				}
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 350*time.Millisecond)
		run, err := p.localRun(ctx, Request{}, LocalOptions{InFlight: 2})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if run.OK == 0 || run.NotReached == 0 || run.OK+run.NotReached != 20 || sum(run.Failed) != 0 {
			t.Fatalf("summary = %+v: want some ok, the rest not reached, none failed", run)
		}
		var unswept []string
		for i := range 20 {
			if r := get(p.reg, id(i)); r.LastSweep == nil {
				unswept = append(unswept, id(i))
			} else if r.ConsecutiveFailures != 0 {
				t.Errorf("tenant %d blamed: %+v", i, r)
			}
		}
		if len(unswept) != run.NotReached {
			t.Fatalf("%d tenants without lastSweep, summary says %d not reached", len(unswept), run.NotReached)
		}
		p.prober.started = nil
		if _, err := p.localRun(t.Context(), Request{}, LocalOptions{InFlight: 1}); err != nil {
			t.Fatal(err)
		}
		for i, id := range unswept {
			if p.prober.started[i] != id {
				t.Fatalf("next run started %v first, want the %d not reached %v", p.prober.started[:len(unswept)], len(unswept), unswept)
			}
		}
	})
}

func TestOneTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		recs := active(5)
		later := time.Now().Add(time.Hour)
		recs[3].BackoffUntil = &later // a one-tenant run ignores the backoff
		recs[4].Status = tenant.StatusDisabled
		p := newPipeline(recs, 16)
		run, err := p.localRun(t.Context(), Request{TenantID: strings.ToUpper(id(3))}, LocalOptions{})
		if err != nil || run.Total != 1 || run.OK != 1 || len(p.prober.started) != 1 || p.prober.started[0] != id(3) {
			t.Fatalf("run = %+v, err = %v, started %v", run, err, p.prober.started)
		}
		for _, other := range []string{id(99), id(4), "not-a-tenant"} {
			if _, err := p.localRun(t.Context(), Request{TenantID: other}, LocalOptions{}); !errors.Is(err, ErrTenantNotActive) {
				t.Errorf("tenant %s: err = %v, want ErrTenantNotActive", other, err)
			}
		}
	})
}

// Each message's results are written in one batch: its tenants share a
// registry partition.
func TestOneWriteAMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(1000), 16, Options{Concurrency: 50})
		run, err := p.localRun(t.Context(), Request{}, LocalOptions{})
		if err != nil || run.OK != 1000 {
			t.Fatalf("run = %+v, err = %v", run, err)
		}
		if p.reg.Writes() != 1000 || p.reg.Batches() != run.Messages {
			t.Fatalf("writes = %d in %d batches, want 1000 in %d (one a message)", p.reg.Writes(), p.reg.Batches(), run.Messages)
		}
	})
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		ms   []int64
		p    int
		want int64
	}{
		{nil, 50, 0},
		{[]int64{7}, 95, 7},
		{[]int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 50, 5},
		{[]int64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 95, 10},
	}
	for _, tt := range tests {
		if got := percentile(tt.ms, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %d) = %d, want %d", tt.ms, tt.p, got, tt.want)
		}
	}
}

// The line operators alert on comes once per change of a task's outcome in
// a tenant, not once per sweep, also when another task's failure keeps the
// tenant's outcome the same.
func TestStatusChangeLoggedOncePerChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(1), 16, Options{Budget: time.Minute, BackoffMax: time.Minute})
		type step struct{ access, keys outcome.Code }
		steps := []step{{outcome.OK, outcome.OK}, {outcome.OK, outcome.OK}, {outcome.GraphConsentMissing, outcome.OK},
			{outcome.GraphConsentMissing, outcome.KeyVaultAccessDenied}, {outcome.SecretNotFound, outcome.KeyVaultAccessDenied}, {outcome.OK, outcome.OK}}
		var sweep int
		p.prober.script[id(0)] = func(context.Context) tenant.SweepResult {
			s := steps[sweep]
			res := tenant.SweepResult{At: time.Now(), Outcome: s.access, Step: "4", Remediation: "grant consent", Tasks: map[string]tenant.TaskResult{
				"access": {Outcome: s.access, Step: "4", Remediation: "grant consent"},
				"keys":   {Outcome: s.keys, Step: "5", Remediation: "grant the key role"},
			}}
			if res.Outcome == outcome.OK {
				res.Outcome = s.keys
			}
			return res
		}
		var logs logtest.Buffer
		ctx := zerolog.New(&logs).WithContext(t.Context())
		for sweep = range steps {
			if _, err := p.localRun(ctx, Request{}, LocalOptions{}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Hour) // past any backoff
		}
		var changes []string
		for _, l := range logs.Lines(t) {
			if l["message"] == "tenant status changed" {
				if l["tenantId"] != id(0) || l["step"] == "" || l["remediation"] == "" {
					t.Errorf("change line %v", l)
				}
				changes = append(changes, fmt.Sprint(l["task"], ":", l["from"], ">", l["to"], ":", l["level"]))
			}
		}
		want := []string{"access:none>ok:info", "keys:none>ok:info", "access:ok>graph_consent_missing:warn",
			"keys:ok>keyvault_access_denied:warn", "access:graph_consent_missing>secret_not_found:warn",
			"access:secret_not_found>ok:info", "keys:keyvault_access_denied>ok:info"}
		if fmt.Sprint(changes) != fmt.Sprint(want) {
			t.Errorf("status changes\n %v\nwant\n %v", changes, want)
		}
		if r := get(p.reg, id(0)); r.LastSweep == nil || !r.LastSweep.OutcomeSince.Equal(r.LastSweep.At) {
			t.Errorf("outcome since %v, want the last sweep's time (it changed then)", r.LastSweep)
		}
	})
}

// A key that goes away is one line, naming the key and its vault, in the
// sweep that finds it; a key that stays failing is not told again, and a
// second key's loss is told while the first keeps the task failing.
func TestKeyStatusChangeLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(1), 16, Options{Budget: time.Minute, BackoffMax: time.Minute})
		const vault = "https://contoso-kv.vault.azure.net/"
		steps := [][2]outcome.Code{{outcome.OK, outcome.OK}, {outcome.KeyDisabled, outcome.OK}, {outcome.KeyDisabled, outcome.OK},
			{outcome.KeyDisabled, outcome.KeyVaultAccessDenied}, {outcome.OK, outcome.OK}}
		var sweep int
		p.prober.script[id(0)] = func(context.Context) tenant.SweepResult {
			res := tenant.SweepResult{At: time.Now(), Outcome: outcome.OK, Tasks: map[string]tenant.TaskResult{"access": {Outcome: outcome.OK}}}
			first := outcome.OK
			for i, c := range steps[sweep] {
				k := tenant.KeyStatus{VaultURL: vault, Key: fmt.Sprint("cmk-", i), Outcome: c}
				if c != outcome.OK {
					k.Step, k.Remediation = "5", "fix "+k.Key
					if first == outcome.OK {
						first = c
					}
				}
				res.Keys = append(res.Keys, k)
			}
			res.Outcome = first
			res.Tasks[tenant.KeysTask] = tenant.TaskResult{Outcome: first, Step: "5", Remediation: "fix the first key"}
			return res
		}
		var logs logtest.Buffer
		ctx := zerolog.New(&logs).WithContext(t.Context())
		for sweep = range steps {
			if _, err := p.localRun(ctx, Request{}, LocalOptions{}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Hour) // past any backoff
		}
		var changes []string
		for _, l := range logs.Lines(t) {
			if l["message"] != "tenant status changed" || l["task"] != tenant.KeysTask {
				continue
			}
			if l["vaultUrl"] != vault || l["key"] == nil {
				t.Errorf("key change line %v lacks the key or its vault", l)
			}
			if l["to"] != "ok" && (l["step"] != "5" || l["remediation"] != fmt.Sprint("fix ", l["key"])) {
				t.Errorf("key change line %v lacks the key's advice", l)
			}
			changes = append(changes, fmt.Sprint(l["key"], ":", l["from"], ">", l["to"], ":", l["level"]))
		}
		want := []string{"cmk-0:none>ok:info", "cmk-1:none>ok:info", "cmk-0:ok>key_disabled:warn",
			"cmk-1:ok>keyvault_access_denied:warn", "cmk-0:key_disabled>ok:info", "cmk-1:keyvault_access_denied>ok:info"}
		if fmt.Sprint(changes) != fmt.Sprint(want) {
			t.Errorf("key status changes\n %v\nwant\n %v", changes, want)
		}
	})
}

func TestProgressCountsEveryTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(5), 1, Options{Concurrency: 2, Budget: time.Minute})
		p.prober.script[id(1)] = fails(outcome.SecretNotFound)
		var mu sync.Mutex
		var seen []Progress
		run, err := p.localRun(t.Context(), Request{}, LocalOptions{InFlight: 1, Progress: func(pr Progress) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, pr)
		}})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 5 {
			t.Fatalf("progress told %d times, want 5: %+v", len(seen), seen)
		}
		for i, pr := range seen {
			if pr.Done != i+1 || pr.Todo < pr.Done || pr.OK+pr.Failed != pr.Done {
				t.Errorf("progress %d = %+v", i, pr)
			}
		}
		if last := seen[4]; last.OK != run.OK || last.Failed != 1 || last.Todo != 5 {
			t.Errorf("last progress %+v, run %+v", last, run)
		}
	})
}

// SIGTERM during a local run (`handler sweep`): the tenants in flight are
// not recorded and count as not reached; those finished are recorded, with
// the run's id.
func TestLocalRunInterruptedBlamesNoTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(4), 1, Options{Concurrency: 4, TenantTimeout: time.Minute, Budget: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		for i := 1; i < 4; i++ {
			p.prober.script[id(i)] = func(ctx context.Context) tenant.SweepResult {
				time.Sleep(time.Second)
				cancel() // the signal arrives while three tenants are in flight
				<-ctx.Done()
				return tenant.SweepResult{At: time.Now(), Outcome: outcome.UpstreamError, Message: "context canceled"}
			}
		}
		run, err := p.localRun(ctx, Request{ID: "cli-run", Trigger: "cli"}, LocalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if run.OK != 1 || sum(run.Failed) != 0 || run.NotReached != 3 {
			t.Fatalf("summary = %+v, want 1 ok and 3 not reached", run)
		}
		if got := get(p.reg, id(0)); got.LastSweep == nil || got.LastSweep.RunID != "cli-run" {
			t.Errorf("finished tenant: lastSweep %+v, want one of run cli-run", got.LastSweep)
		}
		for i := 1; i < 4; i++ {
			if got := get(p.reg, id(i)); got.LastSweep != nil || got.ConsecutiveFailures != 0 {
				t.Errorf("tenant %d blamed for the interruption: %+v", i, got)
			}
		}
	})
}

// A message a registry write failed for is run again, as the host
// redelivers it; the run then counts every tenant once.
func TestLocalRunRedeliversAnUnfinishedMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(3), 16, Options{WriteRetries: 1, RetryPause: time.Millisecond})
		fail := 6 // every write of the first delivery and its one retry
		p.reg.BeforeWrite(func(string) {
			if fail > 0 {
				fail--
				p.reg.FailWritesWith(errors.New("storage blip"))
			} else {
				p.reg.FailWritesWith(nil)
			}
		})
		run, err := p.localRun(t.Context(), Request{}, LocalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if run.OK != 3 || run.NotReached != 0 || run.Redeliveries != 1 {
			t.Fatalf("summary = %+v, want 3 ok after one redelivery", run)
		}
	})
}

// One task running into the tenant's deadline does not rewrite the others'
// results: the tenant keeps the first failure in task order, with its step.
func TestDeadlineKeepsTheTasksFirstFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(1), 16, Options{TenantTimeout: time.Second})
		p.prober.script[id(0)] = func(ctx context.Context) tenant.SweepResult {
			<-ctx.Done() // a slow task took the whole budget
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.GraphConsentMissing, Step: "4", Remediation: "grant consent",
				Tasks: map[string]tenant.TaskResult{
					"access": {Outcome: outcome.GraphConsentMissing, Step: "4", Remediation: "grant consent"},
					"slow":   {Outcome: outcome.Timeout},
				}}
		}
		if _, err := p.worker.Do(t.Context(), Work{Run: "r1", Tenants: []string{id(0)}}, 1); err != nil {
			t.Fatal(err)
		}
		got := get(p.reg, id(0)).LastSweep
		if got == nil || got.Outcome != outcome.GraphConsentMissing || got.Step != "4" || got.Tasks["slow"].Outcome != outcome.Timeout {
			t.Errorf("lastSweep = %+v, want the access task's graph_consent_missing kept", got)
		}
	})
}

// A status change is logged once it is written, and once: a delivery whose
// write failed logs nothing, the redelivery that records it logs it, and a
// later delivery of the same run logs nothing again.
func TestStatusChangeLoggedOnceWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipelineWith(active(1), 16, Options{WriteRetries: 1, RetryPause: time.Millisecond})
		p.prober.script[id(0)] = fails(outcome.GraphConsentMissing)
		var logs logtest.Buffer
		ctx := zerolog.New(&logs).WithContext(t.Context())
		p.reg.FailWritesWith(errors.New("storage blip"))
		w := Work{Run: "r1", Tenants: []string{id(0)}}
		if _, err := p.worker.Do(ctx, w, 1); !errors.Is(err, ErrInterrupted) {
			t.Fatalf("delivery 1: %v, want ErrInterrupted", err)
		}
		p.reg.FailWritesWith(nil)
		for d := int64(2); d <= 3; d++ {
			if _, err := p.worker.Do(ctx, w, d); err != nil {
				t.Fatalf("delivery %d: %v", d, err)
			}
		}
		n := 0
		for _, l := range logs.Lines(t) {
			if l["message"] == "tenant status changed" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d status change lines over three deliveries, want 1", n)
		}
	})
}
