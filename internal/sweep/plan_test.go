package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tenant/tenanttest"
)

// memLeases is the lease row and work results with the store's ETag
// semantics.
type memLeases struct {
	mu      sync.Mutex
	lease   Lease
	version int
	results map[string][]WorkResult
}

func (m *memLeases) ReadLease(context.Context) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease, nil
}

func (m *memLeases) WriteLease(_ context.Context, l Lease) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.ETag != m.lease.ETag {
		return l, ErrLeaseTaken
	}
	m.version++
	l.ETag = fmt.Sprint(m.version)
	m.lease = l
	return l, nil
}

func (m *memLeases) WorkResults(_ context.Context, runID string) ([]WorkResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]WorkResult(nil), m.results[runID]...), nil
}

func (m *memLeases) AddWorkResult(_ context.Context, r WorkResult) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.results == nil {
		m.results = map[string][]WorkResult{}
	}
	m.results[r.Run] = append(m.results[r.Run], r)
	return nil
}

// memQueue is a work queue: what was enqueued, and what is still pending,
// with each message's delay.
type memQueue struct {
	mu     sync.Mutex
	msgs   []Work
	delays map[int]time.Duration // by seq
	fail   error
}

func (q *memQueue) EnqueueAfter(_ context.Context, text string, delay time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail != nil {
		return q.fail
	}
	w, err := ParseWork([]byte(text))
	if err != nil {
		return err
	}
	q.msgs = append(q.msgs, w)
	if q.delays == nil {
		q.delays = map[int]time.Duration{}
	}
	q.delays[w.Seq] = delay
	return nil
}

func (q *memQueue) Pending(context.Context) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs), nil
}

// take removes and returns every message.
func (q *memQueue) take() []Work {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.msgs
	q.msgs = nil
	return m
}

type pipeline struct {
	reg     *tenanttest.Store
	leases  *memLeases
	queue   *memQueue
	hist    *memHistory
	planner *Planner
	worker  *Worker
	prober  *scriptProber
}

type memHistory struct {
	mu   sync.Mutex
	runs []Run
}

func (h *memHistory) AddRun(_ context.Context, r Run) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runs = append(h.runs, r)
	return nil
}

func newPipeline(recs []tenant.Record, perMessage int) *pipeline {
	return newPipelineWith(recs, perMessage, Options{Concurrency: 4, TenantTimeout: 10 * time.Second, Budget: time.Minute})
}

func newPipelineWith(recs []tenant.Record, perMessage int, opt Options) *pipeline {
	p := &pipeline{reg: tenanttest.New(), leases: &memLeases{}, queue: &memQueue{}, hist: &memHistory{},
		prober: &scriptProber{script: map[string]func(context.Context) tenant.SweepResult{}}}
	for _, r := range recs {
		p.reg.Put(r)
	}
	lock := NewRunLock(p.leases, p.queue)
	p.planner = NewPlanner(p.reg, p.queue, lock, p.hist, PlanOptions{TenantsPerMessage: perMessage})
	p.worker = NewWorker(p.reg, p.prober, p.leases, opt)
	return p
}

// drain works every queued message once, as deliveries number 1.
func (p *pipeline) drain(t *testing.T, ctx context.Context) {
	t.Helper()
	for _, w := range p.queue.take() {
		if _, err := p.worker.Do(ctx, w, 1); err != nil {
			t.Fatalf("work message %d: %v", w.Seq, err)
		}
	}
}

func TestPlanQueuesLongestUnsweptFirstAndSkipsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		recs := active(7)
		for i := range recs {
			// Tenant i was last swept i hours ago; 0 never.
			if i > 0 {
				recs[i].LastSweep = &tenant.SweepResult{At: now.Add(-time.Duration(i) * time.Hour), Outcome: outcome.OK}
			}
		}
		later := now.Add(time.Hour)
		recs[3].BackoffUntil = &later
		recs[5].Damage = &tenant.Damage{Code: tenant.DamageCode, Property: "KeyVaults"}
		p := newPipeline(recs, 2)

		run, err := p.planner.Plan(t.Context(), Request{ID: "run-1", Trigger: "timer"})
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		msgs := p.queue.msgs
		slices.SortFunc(msgs, func(a, b Work) int { return a.Seq - b.Seq })
		for _, w := range msgs {
			if w.Run != "run-1" || len(w.Tenants) > 2 {
				t.Errorf("message %+v: want run-1 and at most 2 tenants", w)
			}
			order = append(order, w.Tenants...)
		}
		want := []string{id(0), id(6), id(4), id(2), id(1)}
		if fmt.Sprint(order) != fmt.Sprint(want) {
			t.Errorf("queued %v, want %v (never swept, then oldest first; backed-off and damaged left out)", order, want)
		}
		if run.Total != 7 || run.Queued != 5 || run.Messages != 3 || run.SkippedBackoff != 1 || len(run.Unreadable) != 1 {
			t.Errorf("run = %+v, want total 7, queued 5 in 3 messages, 1 backed off, 1 unreadable", run)
		}
		if l := p.leases.lease; l.RunID != "run-1" || l.State != LeasePlanned || l.Messages != 3 {
			t.Errorf("lease = %+v, want run-1 planned with 3 messages", l)
		}
		if len(p.hist.runs) != 1 || p.hist.runs[0].Mode != ModeQueue {
			t.Errorf("history = %+v, want the planned run", p.hist.runs)
		}
	})
}

func TestPlanEnqueuesNothingWhileARunIsActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(10), 3)
		if _, err := p.planner.Plan(t.Context(), Request{ID: "first", Trigger: "timer"}); err != nil {
			t.Fatal(err)
		}
		queued := len(p.queue.msgs)

		// Three timers at once while the first run's work is queued.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = p.planner.Plan(t.Context(), Request{ID: fmt.Sprint("next-", i), Trigger: "timer"})
			})
		}
		wg.Wait()
		for i, err := range errs {
			var active *ActiveRunError
			if !errors.As(err, &active) || !errors.Is(err, ErrRunActive) || active.Lease.RunID != "first" {
				t.Errorf("timer %d: err = %v, want the first run active", i, err)
			}
		}
		if len(p.queue.msgs) != queued {
			t.Fatalf("%d messages queued, want still %d", len(p.queue.msgs), queued)
		}

		// Once its work is done a new run starts.
		p.drain(t, t.Context())
		if _, err := p.planner.Plan(t.Context(), Request{ID: "second", Trigger: "timer"}); err != nil {
			t.Fatalf("after the first run finished: %v", err)
		}
		if got := len(p.queue.msgs); got != 4 {
			t.Errorf("%d messages, want 4", got)
		}
	})
}

func TestConcurrentPlannersQueueEachTenantOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(50), 4)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range 3 {
			wg.Go(func() {
				_, err := p.planner.Plan(t.Context(), Request{ID: fmt.Sprint("timer-", i), Trigger: "timer"})
				if err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				} else if !errors.Is(err, ErrRunActive) {
					t.Errorf("timer %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		seen := map[string]int{}
		for _, w := range p.queue.msgs {
			for _, id := range w.Tenants {
				seen[id]++
			}
		}
		if won != 1 || len(seen) != 50 {
			t.Fatalf("%d planners won, %d tenants queued; want 1 and 50", won, len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("tenant %s queued %d times", id, n)
			}
		}
	})
}

func TestPlanAfterAnIncompleteRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(4), 2)
		if _, err := p.planner.Plan(t.Context(), Request{ID: "lost", Trigger: "timer"}); err != nil {
			t.Fatal(err)
		}
		p.queue.take() // poisoned: nothing left queued, nothing done
		st, err := p.planner.lock.State(t.Context(), p.leases.lease)
		if err != nil || st.Active || st.Status != "incomplete" {
			t.Fatalf("state = %+v, %v; want incomplete and not active", st, err)
		}
		if _, err := p.planner.Plan(t.Context(), Request{ID: "next", Trigger: "timer"}); err != nil {
			t.Fatalf("after an incomplete run: %v", err)
		}
	})
}

func TestWorkRedeliveredCountsARunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(3), 3)
		p.prober.script[id(1)] = fails(outcome.GraphConsentMissing)
		w := Work{Run: "r1", Seq: 0, Tenants: []string{id(0), id(1), id(2)}}

		first, err := p.worker.Do(t.Context(), w, 1)
		if err != nil {
			t.Fatal(err)
		}
		again, err := p.worker.Do(t.Context(), w, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(p.prober.started); n != 3 {
			t.Errorf("%d probes, want 3: a redelivery must not probe what the run recorded", n)
		}
		rec := get(p.reg, id(1))
		if rec.ConsecutiveFailures != 1 || rec.LastSweep.RunID != "r1" {
			t.Errorf("failing tenant: consecutiveFailures %d, runId %q; want 1 and r1", rec.ConsecutiveFailures, rec.LastSweep.RunID)
		}
		for _, r := range []WorkResult{first, again} {
			if r.OK != 2 || r.Failed[outcome.GraphConsentMissing] != 1 || r.Tenants != 3 {
				t.Errorf("work result %+v, want 2 ok and 1 graph_consent_missing", r)
			}
		}
		if again.Delivery != 2 {
			t.Errorf("delivery = %d, want 2", again.Delivery)
		}
	})
}

func TestWorkInterruptedRecordsNoFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(2), 2)
		ctx, cancel := context.WithCancel(t.Context())
		p.prober.script[id(1)] = func(ctx context.Context) tenant.SweepResult {
			cancel() // SIGTERM arrives while this tenant is in flight
			<-ctx.Done()
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.UpstreamError, Message: "context canceled"}
		}
		p.prober.script[id(0)] = func(context.Context) tenant.SweepResult {
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
		}
		_, err := p.worker.Do(ctx, Work{Run: "r1", Tenants: []string{id(0), id(1)}}, 1)
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("err = %v, want ErrInterrupted (redeliver)", err)
		}
		if rec := get(p.reg, id(1)); rec.LastSweep != nil || rec.ConsecutiveFailures != 0 {
			t.Errorf("interrupted tenant recorded: %+v", rec)
		}
		if len(p.leases.results["r1"]) != 0 {
			t.Errorf("an unfinished message recorded a work result")
		}
	})
}

func TestWorkKeepsAReOnboardingThatHappenedDuringTheProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(1), 1)
		p.prober.script[id(0)] = func(context.Context) tenant.SweepResult {
			start := time.Now()
			time.Sleep(time.Second)
			// The customer re-onboards while the probe runs.
			if _, _, err := p.reg.Mutate(context.Background(), id(0), func(rec *tenant.Record, _ bool) error {
				rec.UpdatedAt = time.Now()
				rec.DisplayName = "re-onboarded"
				return nil
			}); err != nil {
				t.Error(err)
			}
			return tenant.SweepResult{At: start, Outcome: outcome.GraphConsentMissing}
		}
		if _, err := p.worker.Do(t.Context(), Work{Run: "r1", Tenants: []string{id(0)}}, 1); err != nil {
			t.Fatal(err)
		}
		rec := get(p.reg, id(0))
		if rec.DisplayName != "re-onboarded" || rec.LastSweep != nil || rec.ConsecutiveFailures != 0 {
			t.Errorf("record = %+v: the stale result undid the re-onboarding", rec)
		}
	})
}

func TestSummarizeAddsUpWorkResults(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	run := Run{ID: "r", Mode: ModeQueue, StartedAt: t0, Messages: 3, Queued: 7}
	results := []WorkResult{
		{Run: "r", Seq: 0, Tenants: 3, OK: 2, Failed: map[outcome.Code]int{outcome.Timeout: 1}, DurationsMs: []int64{10, 20, 30}, Delivery: 1, FinishedAt: t0.Add(time.Second)},
		{Run: "r", Seq: 1, Tenants: 3, OK: 2, Gone: 1, DurationsMs: []int64{40, 50}, Delivery: 3, FinishedAt: t0.Add(3 * time.Second)},
		{Run: "r", Seq: 1, Tenants: 3, OK: 2, Gone: 1, DurationsMs: []int64{40, 50}, Delivery: 3, FinishedAt: t0.Add(3 * time.Second)},
	}
	got := Summarize(run, results)
	if got.OK != 4 || got.Failed[outcome.Timeout] != 1 || got.Gone != 1 || got.MessagesDone != 2 || got.NotReached != 1 ||
		got.Redeliveries != 2 || got.WallMs != 3000 || got.P50Ms != 30 || got.P95Ms != 50 {
		b, _ := json.Marshal(got)
		t.Errorf("summary %s", b)
	}
}

func TestParseWork(t *testing.T) {
	good := Work{Run: "r1", Seq: 2, Tenants: []string{id(1)}}.Text()
	tests := []struct {
		name, body string
		ok         bool
	}{
		{"ours", good, true},
		{"upper-case id", `{"v":1,"run":"r","seq":0,"tenants":["0000000A-0000-4000-8000-000000000000"]}`, true},
		{"other version", `{"v":2,"run":"r","seq":0,"tenants":["` + id(1) + `"]}`, false},
		{"no run", `{"v":1,"seq":0,"tenants":["` + id(1) + `"]}`, false},
		{"run with a quote", `{"v":1,"run":"a'b","seq":0,"tenants":["` + id(1) + `"]}`, false},
		{"no tenants", `{"v":1,"run":"r","seq":0,"tenants":[]}`, false},
		{"bad tenant", `{"v":1,"run":"r","seq":0,"tenants":["nope"]}`, false},
		{"twice", `{"v":1,"run":"r","seq":0,"tenants":["` + id(1) + `","` + id(1) + `"]}`, false},
		{"not json", `hello`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWork([]byte(tt.body))
			if (err == nil) != tt.ok {
				t.Errorf("ParseWork = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadWork) {
				t.Errorf("err %v does not match ErrBadWork", err)
			}
		})
	}
}

// finishingLeases completes the run's last message just after its results
// are read: the worker records the result, then the host deletes the
// message.
type finishingLeases struct {
	*memLeases
	finish func()
}

func (f finishingLeases) WorkResults(ctx context.Context, runID string) ([]WorkResult, error) {
	r, err := f.memLeases.WorkResults(ctx, runID)
	if f.finish != nil {
		f.finish()
	}
	return r, err
}

// The last message finishing while the state is read must not make a run
// look incomplete.
func TestRunStateRacesTheLastMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(2), 2)
		if _, err := p.planner.Plan(t.Context(), Request{ID: "r", Trigger: "timer"}); err != nil {
			t.Fatal(err)
		}
		last := p.queue.msgs[0]
		fl := finishingLeases{memLeases: p.leases, finish: func() {
			if _, err := p.worker.Do(context.Background(), last, 1); err != nil {
				t.Error(err)
			}
			p.queue.take()
		}}
		st, err := NewRunLock(fl, p.queue).State(t.Context(), p.leases.lease)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == "incomplete" {
			t.Fatalf("state = %+v: a run whose last message finished meanwhile looks incomplete", st)
		}
		st, err = NewRunLock(p.leases, p.queue).State(t.Context(), p.leases.lease)
		if err != nil || st.Status != "finished" {
			t.Fatalf("then: %+v, %v; want finished", st, err)
		}
	})
}

// A message's tenants share a registry partition, so that the worker reads
// them in one request and writes them in one batch; across partitions the
// longest-unswept still go first.
func TestPlanGroupsMessagesByPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		var recs []tenant.Record
		for i := range 12 {
			// Partitions "a0", "b0", "c0", four tenants each; older first in b0.
			r := tenant.Record{TenantID: fmt.Sprintf("%c%07x-0000-4000-8000-000000000000", 'a'+i%3, i), Status: tenant.StatusActive}
			r.LastSweep = &tenant.SweepResult{At: now.Add(-time.Duration(i) * time.Minute), Outcome: outcome.OK}
			recs = append(recs, r)
		}
		p := newPipeline(recs, 3)
		if _, err := p.planner.Plan(t.Context(), Request{ID: "g", Trigger: "timer"}); err != nil {
			t.Fatal(err)
		}
		msgs := p.queue.msgs
		slices.SortFunc(msgs, func(a, b Work) int { return a.Seq - b.Seq })
		seen := 0
		for _, w := range msgs {
			for _, id := range w.Tenants {
				if p.reg.PartitionOf(id) != p.reg.PartitionOf(w.Tenants[0]) {
					t.Errorf("message %d mixes partitions: %v", w.Seq, w.Tenants)
				}
			}
			seen += len(w.Tenants)
		}
		if seen != 12 || len(msgs) != 6 {
			t.Fatalf("%d tenants in %d messages, want 12 in 6", seen, len(msgs))
		}
		// The oldest tenant (11, partition c0) leads the first message.
		if msgs[0].Tenants[0] != recs[11].TenantID {
			t.Errorf("first message %v, want it to start with the longest unswept %s", msgs[0].Tenants, recs[11].TenantID)
		}
	})
}

// The planner paces a run: each message becomes visible when the requests
// of the messages before it fit the budgets (Graph's, and the token
// endpoint's, counting only tenants whose shared tokens are due), with a
// tenant's Graph requests as the previous run measured them.
func TestPlanPacesTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		recs := active(8)
		// Tenants 0-3 share fresh tokens (two each), 4-5 tokens due in 90 s,
		// 6-7 none.
		for i := range 6 {
			issued := now.Add(-10 * time.Minute)
			if i >= 4 {
				issued = now.Add(-30*time.Minute + 90*time.Second)
			}
			recs[i].Shared.Tokens = []tenant.SharedToken{{Resource: "https://graph.microsoft.com", IssuedAt: issued, ExpiresOn: issued.Add(time.Hour)},
				{Resource: "https://vault.azure.net", IssuedAt: issued, ExpiresOn: issued.Add(time.Hour)}}
		}
		p := newPipeline(recs, 2)
		p.planner.opt.GraphRate, p.planner.opt.TokenRate = 4, 100
		run, err := p.planner.Plan(t.Context(), Request{ID: "paced", Trigger: "timer"})
		if err != nil {
			t.Fatal(err)
		}
		// Two tenants a message, two Graph requests a tenant (no previous
		// run), 4 a second: a message a second.
		for seq, want := range []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second} {
			if got := p.queue.delays[seq]; got != want {
				t.Errorf("message %d visible after %v, want %v", seq, got, want)
			}
		}
		if pc := run.Pacing; pc.GraphRequests != 16 || pc.TokenRequests != 4 || !pc.Until.Equal(now.Add(3*time.Second)) || pc.GraphPerTenant != 2 {
			// Tokens: tenants 6 and 7 (none shared, two each); 4 and 5 are
			// due at +90 s, after their message's time.
			t.Errorf("pacing %+v", pc)
		}

		// The token budget binds: 4 tokens a message at 2 a second.
		p.drain(t, t.Context())
		p.planner.opt.GraphRate, p.planner.opt.TokenRate = 1000, 2
		for i := range recs {
			recs[i].Shared = tenant.Shared{}
			p.reg.Put(recs[i])
		}
		if _, err := p.planner.Plan(t.Context(), Request{ID: "tokens", Trigger: "timer"}); err != nil {
			t.Fatal(err)
		}
		for seq, want := range []time.Duration{0, 2 * time.Second, 4 * time.Second, 6 * time.Second} {
			if got := p.queue.delays[seq]; got != want {
				t.Errorf("token-bound message %d visible after %v, want %v", seq, got, want)
			}
		}
	})
}

// The Graph requests a tenant made in the previous run set the next run's
// pace.
func TestPlanPacesByThePreviousRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(4), 2)
		p.planner.opt.GraphRate = 10
		p.leases.lease = Lease{RunID: "before", State: LeasePlanned, Messages: 2, ETag: "0"}
		p.leases.results = map[string][]WorkResult{"before": {
			{Run: "before", Seq: 0, Tenants: 2, OK: 2, GraphRequests: 10},
			{Run: "before", Seq: 1, Tenants: 2, OK: 1, Failed: map[outcome.Code]int{outcome.Timeout: 1}, GraphRequests: 10},
			{Run: "before", Seq: 1, Tenants: 2, OK: 1, GraphRequests: 99, Delivery: 2}, // a redelivery's second record
		}}
		run, err := p.planner.Plan(t.Context(), Request{ID: "next", Trigger: "timer"})
		if err != nil {
			t.Fatal(err)
		}
		if run.Pacing.GraphPerTenant != 5 || p.queue.delays[1] != time.Second {
			t.Errorf("Graph requests a tenant %v, message 1 after %v; want 5 and 1s", run.Pacing.GraphPerTenant, p.queue.delays[1])
		}
	})
}

// `handler sweep`'s queue keeps to the pacing too: a message starts when
// its delay has passed.
func TestLocalStartsMessagesOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(4), 2)
		var mu sync.Mutex
		started := map[string]time.Duration{}
		start := time.Now()
		for i := range 4 {
			p.prober.script[id(i)] = func(context.Context) tenant.SweepResult {
				mu.Lock()
				started[id(i)] = time.Since(start)
				mu.Unlock()
				return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
			}
		}
		l := NewLocal(t.Context(), p.worker, LocalOptions{})
		for seq, delay := range []time.Duration{0, 3 * time.Second} {
			w := Work{Run: "local", Seq: seq, Tenants: []string{id(2 * seq), id(2*seq + 1)}}
			if err := l.EnqueueAfter(t.Context(), w.Text(), delay); err != nil {
				t.Fatal(err)
			}
		}
		if results := l.Wait(); len(results) != 2 {
			t.Fatalf("results %+v", results)
		}
		if started[id(0)] != 0 || started[id(2)] != 3*time.Second || started[id(3)] != 3*time.Second {
			t.Errorf("tenants started at %v", started)
		}
	})
}
