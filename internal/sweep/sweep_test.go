package sweep

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/logtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tenant/tenanttest"
)

var _ Registry = (*tenanttest.Store)(nil)

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

func TestRunRecordsEveryOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		recs := active(40)
		recs[39].Status = tenant.StatusDisabled
		reg := tenanttest.New(recs...)
		codes := []outcome.Code{outcome.AppNotInTenant, outcome.TenantNotFound, outcome.GraphConsentMissing,
			outcome.KeyVaultAccessDenied, outcome.SecretNotFound, outcome.Throttled, outcome.UpstreamError}
		p := &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{}}
		want := map[string]outcome.Code{}
		for i, c := range codes {
			p.script[id(i)] = fails(c)
			want[id(i)] = c
		}
		p.script[id(10)] = func(context.Context) tenant.SweepResult { panic("boom") }
		want[id(10)] = outcome.InternalError
		p.script[id(11)] = func(ctx context.Context) tenant.SweepResult {
			<-ctx.Done() // honours its deadline
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.UpstreamError}
		}
		want[id(11)] = outcome.Timeout
		p.script[id(12)] = func(ctx context.Context) tenant.SweepResult {
			time.Sleep(3 * time.Second) // ignores its deadline: abandoned after the grace
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
		}
		want[id(12)] = outcome.Timeout

		s := New(reg, nil, p, Options{Concurrency: 8, TenantTimeout: 200 * time.Millisecond, Budget: time.Minute})
		run, err := s.Run(context.Background(), Request{ID: "r1", Trigger: "test", PastDue: true})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if run.Total != 39 || run.OK != 39-len(want) || sum(run.Failed) != len(want) || run.NotReached != 0 || !run.PastDue {
			t.Fatalf("summary = %+v", run)
		}
		for i := range 39 {
			got := get(reg, id(i))
			if got.LastSweep == nil {
				t.Fatalf("tenant %d has no lastSweep", i)
			}
			wantCode := outcome.OK
			if c, ok := want[id(i)]; ok {
				wantCode = c
			}
			if got.LastSweep.Outcome != wantCode {
				t.Errorf("tenant %d outcome = %s, want %s", i, got.LastSweep.Outcome, wantCode)
			}
			wantFailures := 0
			if wantCode != outcome.OK {
				wantFailures = 1
			}
			if got.ConsecutiveFailures != wantFailures {
				t.Errorf("tenant %d consecutiveFailures = %d, want %d", i, got.ConsecutiveFailures, wantFailures)
			}
		}
		if get(reg, id(39)).LastSweep != nil {
			t.Error("disabled tenant was swept")
		}
		// The abandoned work of id(12) still sleeps; the bubble must not end
		// before it does.
		time.Sleep(3 * time.Second)
	})
}

func TestRunStopsOnAppWideFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := tenanttest.New(active(200)...)
		p := &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{}}
		for i := range 200 {
			p.script[id(i)] = func(ctx context.Context) tenant.SweepResult {
				time.Sleep(time.Millisecond)
				return tenant.SweepResult{At: time.Now(), Outcome: outcome.AppCredentialInvalid, Message: "secret expired"}
			}
		}
		s := New(reg, nil, p, Options{Concurrency: 4, Budget: time.Minute})
		run, err := s.Run(context.Background(), Request{ID: "r"})
		if !errors.Is(err, ErrAppWide) {
			t.Fatalf("err = %v, want ErrAppWide", err)
		}
		if run.AppWideFailure == "" || run.NotReached < 150 {
			t.Fatalf("summary = %+v: want the fan-out stopped early", run)
		}
		for i := range 200 {
			if r := get(reg, id(i)); r.ConsecutiveFailures != 0 || r.LastSweep != nil {
				t.Fatalf("tenant %d was blamed for an app-wide failure: %+v", i, r)
			}
		}
	})
}

func TestAppWideFailureBelowTheStopCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := tenanttest.New(active(2)...)
		p := &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{
			id(0): fails(outcome.AppCredentialInvalid), id(1): fails(outcome.AppCredentialInvalid)}}
		run, err := New(reg, nil, p, Options{}).Run(context.Background(), Request{})
		if !errors.Is(err, ErrAppWide) || run.AppWideFailure == "" {
			t.Fatalf("run = %+v, err = %v; want the app-wide failure reported", run, err)
		}
		// One tenant refusing our credential while another accepts it is that
		// tenant's problem, not the app's.
		reg = tenanttest.New(active(2)...)
		p = &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{id(0): fails(outcome.AppCredentialInvalid)}}
		if run, err := New(reg, nil, p, Options{}).Run(context.Background(), Request{}); err != nil || run.AppWideFailure != "" {
			t.Fatalf("run = %+v, err = %v; want no app-wide failure", run, err)
		}
	})
}

func TestBackoffSkipsAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// In the bubble the clock moves only when every goroutine waits, so
		// three instant runs all happen at now.
		now := time.Now()
		reg := tenanttest.New(active(1)...)
		failing := true
		p := &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{id(0): func(context.Context) tenant.SweepResult {
			if failing {
				return tenant.SweepResult{At: time.Now(), Outcome: outcome.GraphConsentMissing}
			}
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
		}}}
		s := New(reg, nil, p, Options{Budget: time.Minute})
		for i := range 3 {
			run, err := s.Run(context.Background(), Request{})
			if err != nil {
				t.Fatal(err)
			}
			if run.OK != 0 || run.Failed[outcome.GraphConsentMissing] != 1 || sum(run.Failed) != 1 {
				t.Fatalf("run %d: summary = %+v, want one graph_consent_missing", i, run)
			}
		}
		r := get(reg, id(0))
		if r.ConsecutiveFailures != 3 || r.BackoffUntil == nil || !r.BackoffUntil.Equal(now.Add(15*time.Minute)) {
			t.Fatalf("after 3 failures: %+v", r)
		}
		if r.LastSweep == nil || r.LastSweep.Outcome != outcome.GraphConsentMissing {
			t.Fatalf("after 3 failures: lastSweep = %+v, want graph_consent_missing", r.LastSweep)
		}
		run, _ := s.Run(context.Background(), Request{})
		if run.SkippedBackoff != 1 || len(p.started) != 3 {
			t.Fatalf("backed-off tenant was not skipped: %+v, started %d", run, len(p.started))
		}
		time.Sleep(16 * time.Minute)
		failing = false
		run, _ = s.Run(context.Background(), Request{})
		if run.OK != 1 || sum(run.Failed) != 0 {
			t.Fatalf("tenant did not resume: %+v", run)
		}
		r = get(reg, id(0))
		if r.ConsecutiveFailures != 0 || r.BackoffUntil != nil {
			t.Fatalf("success did not clear the backoff: %+v", r)
		}
		if r.LastSweep == nil || r.LastSweep.Outcome != outcome.OK || !r.LastSweep.At.Equal(now.Add(16*time.Minute)) {
			t.Fatalf("after resuming: lastSweep = %+v, want ok at now+16m", r.LastSweep)
		}
	})
}

func TestBudgetLeavesRestNotReachedAndFirstNextTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := tenanttest.New(active(20)...)
		p := &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{}}
		for i := range 20 {
			p.script[id(i)] = func(ctx context.Context) tenant.SweepResult {
				select {
				case <-time.After(100 * time.Millisecond):
					return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
				case <-ctx.Done():
					return tenant.SweepResult{At: time.Now(), Outcome: outcome.UpstreamError}
				}
			}
		}
		s := New(reg, nil, p, Options{Concurrency: 2, Budget: 350 * time.Millisecond, TenantTimeout: time.Minute})
		run, err := s.Run(context.Background(), Request{})
		if err != nil {
			t.Fatal(err)
		}
		if run.OK == 0 || run.NotReached == 0 || run.OK+run.NotReached != 20 || sum(run.Failed) != 0 {
			t.Fatalf("summary = %+v: want some ok, the rest not reached, none failed", run)
		}
		var unswept []string
		for i := range 20 {
			if get(reg, id(i)).LastSweep == nil {
				unswept = append(unswept, id(i))
			}
		}
		if len(unswept) != run.NotReached {
			t.Fatalf("%d tenants without lastSweep, summary says %d not reached", len(unswept), run.NotReached)
		}
		p.started = nil
		s2 := New(reg, nil, p, Options{Concurrency: 1, Budget: time.Minute})
		if _, err := s2.Run(context.Background(), Request{}); err != nil {
			t.Fatal(err)
		}
		for i, id := range unswept {
			if p.started[i] != id {
				t.Fatalf("next run started %v first, want the %d not reached %v", p.started[:len(unswept)], len(unswept), unswept)
			}
		}
	})
}

func TestOneTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := tenanttest.New(active(5)...)
		p := &scriptProber{}
		s := New(reg, nil, p, Options{})
		run, err := s.Run(context.Background(), Request{TenantID: id(3)})
		if err != nil || run.Total != 1 || run.OK != 1 || len(p.started) != 1 || p.started[0] != id(3) {
			t.Fatalf("run = %+v, err = %v, started %v", run, err, p.started)
		}
		if _, err := s.Run(context.Background(), Request{TenantID: id(99)}); !errors.Is(err, ErrTenantNotActive) {
			t.Fatalf("err = %v, want ErrTenantNotActive", err)
		}
	})
}

func TestBatchedWriteBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := tenanttest.New(active(1000)...)
		s := New(reg, nil, &scriptProber{}, Options{Concurrency: 50, BatchSize: 100, FlushEvery: time.Hour})
		run, err := s.Run(context.Background(), Request{})
		if err != nil || run.OK != 1000 {
			t.Fatalf("run = %+v, err = %v", run, err)
		}
		if reg.Writes() != 1000 || reg.Batches() != 10 {
			t.Fatalf("writes = %d in %d batches, want 1000 in 10", reg.Writes(), reg.Batches())
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

// The line operators alert on comes once per change of a tenant's outcome,
// not once per sweep.
func TestStatusChangeLoggedOncePerChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := tenanttest.New(active(1)...)
		outcomes := []outcome.Code{outcome.OK, outcome.OK, outcome.GraphConsentMissing, outcome.GraphConsentMissing, outcome.SecretNotFound, outcome.OK}
		var sweep int
		p := &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{id(0): func(context.Context) tenant.SweepResult {
			return tenant.SweepResult{At: time.Now(), Outcome: outcomes[sweep], Step: "4", Remediation: "grant consent"}
		}}}
		s := New(reg, nil, p, Options{Budget: time.Minute, BackoffMax: time.Minute})
		var logs logtest.Buffer
		ctx := zerolog.New(&logs).WithContext(context.Background())
		for sweep = range outcomes {
			if _, err := s.Run(ctx, Request{}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Hour) // past any backoff
		}
		var changes []string
		for _, l := range logs.Lines(t) {
			if l["message"] == "tenant status changed" {
				if l["tenantId"] != id(0) || l["step"] != "4" || l["remediation"] != "grant consent" {
					t.Errorf("change line %v", l)
				}
				changes = append(changes, fmt.Sprint(l["from"], ">", l["to"], ":", l["level"]))
			}
		}
		want := []string{"none>ok:info", "ok>graph_consent_missing:warn", "graph_consent_missing>secret_not_found:warn", "secret_not_found>ok:info"}
		if fmt.Sprint(changes) != fmt.Sprint(want) {
			t.Errorf("status changes %v, want %v", changes, want)
		}
		if r := get(reg, id(0)); r.LastSweep == nil || !r.LastSweep.OutcomeSince.Equal(r.LastSweep.At) {
			t.Errorf("outcome since %v, want the last sweep's time (it changed then)", r.LastSweep)
		}
	})
}

func TestProgressCountsEveryTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := tenanttest.New(active(5)...)
		p := &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{id(1): fails(outcome.SecretNotFound)}}
		var seen []Progress
		run, err := New(reg, nil, p, Options{Concurrency: 2, Budget: time.Minute}).
			Run(context.Background(), Request{Progress: func(pr Progress) { seen = append(seen, pr) }})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 5 {
			t.Fatalf("progress told %d times, want 5: %+v", len(seen), seen)
		}
		for i, pr := range seen {
			if pr.Done != i+1 || pr.Todo != 5 || pr.OK+pr.Failed != pr.Done {
				t.Errorf("progress %d = %+v", i, pr)
			}
		}
		if last := seen[4]; last.OK != run.OK || last.Failed != 1 {
			t.Errorf("last progress %+v, run %+v", last, run)
		}
	})
}

// SIGTERM during an in-process run (`handler sweep`): the tenants in flight
// are not recorded and count as not reached; those finished are recorded,
// with the run's id.
func TestRunInterruptedBlamesNoTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := tenanttest.New(active(4)...)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{}}
		for i := 1; i < 4; i++ {
			p.script[id(i)] = func(ctx context.Context) tenant.SweepResult {
				time.Sleep(time.Second)
				cancel() // the signal arrives while three tenants are in flight
				<-ctx.Done()
				return tenant.SweepResult{At: time.Now(), Outcome: outcome.UpstreamError, Message: "context canceled"}
			}
		}
		s := New(reg, nil, p, Options{Concurrency: 4, TenantTimeout: time.Minute, Budget: time.Hour})
		run, err := s.Run(ctx, Request{ID: "cli-run", Trigger: "cli"})
		if err != nil {
			t.Fatal(err)
		}
		if run.OK != 1 || sum(run.Failed) != 0 || run.NotReached != 3 {
			t.Fatalf("summary = %+v, want 1 ok and 3 not reached", run)
		}
		if got := get(reg, id(0)); got.LastSweep == nil || got.LastSweep.RunID != "cli-run" {
			t.Errorf("finished tenant: lastSweep %+v, want one of run cli-run", got.LastSweep)
		}
		for i := 1; i < 4; i++ {
			if got := get(reg, id(i)); got.LastSweep != nil || got.ConsecutiveFailures != 0 {
				t.Errorf("tenant %d blamed for the interruption: %+v", i, got)
			}
		}
	})
}
