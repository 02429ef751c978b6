package sweep

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/governor"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// What a tenant's run leaves for the fleet is written with its result, in
// the same batch, and never into the result.
func TestWorkerWritesTheSharedStateWithTheResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(2), 2)
		issued := time.Now()
		for i := range 2 {
			p.prober.script[id(i)] = func(ctx context.Context) tenant.SweepResult {
				governor.MeterOf(ctx).Graph(2)
				governor.MeterOf(ctx).Token()
				return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK, Shared: tenant.SharedUpdate{Put: []tenant.SharedToken{
					{Resource: "https://graph.microsoft.com", IssuedAt: issued, ExpiresOn: issued.Add(time.Hour), Key: "k", Sealed: "sealed-" + id(i)}}}}
			}
		}
		writes := p.reg.Writes()
		wr, err := p.worker.Do(t.Context(), Work{Run: "r", Seq: 0, Tenants: []string{id(0), id(1)}}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if n := p.reg.Writes() - writes; n != 2 || p.reg.Batches() != 1 {
			t.Errorf("%d writes in %d batches, want the two results in one", n, p.reg.Batches())
		}
		for i := range 2 {
			rec := get(p.reg, id(i))
			if len(rec.Shared.Tokens) != 1 || rec.Shared.Tokens[0].Sealed != "sealed-"+id(i) || !rec.LastSweep.Shared.Empty() {
				t.Errorf("tenant %d: shared %+v, result's %+v", i, rec.Shared, rec.LastSweep.Shared)
			}
		}
		if wr.GraphRequests != 4 || wr.TokenRequests != 2 {
			t.Errorf("work result counts %d Graph and %d token requests, want 4 and 2", wr.GraphRequests, wr.TokenRequests)
		}
	})
}

// While Graph throttles the app as a whole no tenant starts: it waits at
// the gate before its time budget starts, so a pause longer than the
// budget costs it nothing; the wait is counted.
func TestWorkerWaitsAtTheGateOutsideTheTenantsBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := governor.NewGate(governor.Options{})
		p := newPipelineWith(active(1), 1, Options{Concurrency: 4, TenantTimeout: 2 * time.Second, Budget: time.Minute, Gate: gate})
		p.prober.script[id(0)] = func(ctx context.Context) tenant.SweepResult {
			time.Sleep(time.Second)
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
		}
		gate.Throttled("", "Application/ReadWrite/app/x", 5*time.Second)
		start := time.Now()
		wr, err := p.worker.Do(t.Context(), Work{Run: "r", Seq: 0, Tenants: []string{id(0)}}, 1)
		if err != nil || wr.OK != 1 {
			t.Fatalf("%+v: %v", wr, err)
		}
		if took := time.Since(start); took != 6*time.Second || wr.PausedMs != 5000 {
			t.Errorf("took %v, paused %d ms; want 6s and 5000", took, wr.PausedMs)
		}
	})
}

// A tenant whose requests the app's throttling held past its deadline is
// not recorded (not throttled, not a timeout): the message is delivered
// again, and the tenant swept then.
func TestWorkerDoesNotBlameATenantHeldByTheAppsThrottling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := governor.NewGate(governor.Options{})
		p := newPipelineWith(active(2), 2, Options{Concurrency: 4, TenantTimeout: 10 * time.Second, Budget: time.Minute, Gate: gate})
		p.prober.script[id(0)] = func(ctx context.Context) tenant.SweepResult {
			// Mid-probe, Graph throttles the app for longer than the
			// tenant has left.
			gate.Throttled(id(0), "Application/ReadWrite/app/"+id(0), 30*time.Second)
			_, err := gate.Wait(ctx)
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.Of(err), Message: outcome.Detail(err)}
		}
		p.prober.script[id(1)] = func(ctx context.Context) tenant.SweepResult {
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.OK}
		}
		_, err := p.worker.Do(t.Context(), Work{Run: "r", Seq: 0, Tenants: []string{id(0), id(1)}}, 1)
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("err = %v, want the message given back", err)
		}
		if rec := get(p.reg, id(0)); rec.LastSweep != nil || rec.ConsecutiveFailures != 0 {
			t.Errorf("the held tenant was recorded: %+v", rec.LastSweep)
		}
		if rec := get(p.reg, id(1)); rec.LastSweep == nil || rec.LastSweep.Outcome != outcome.OK {
			t.Errorf("the other tenant: %+v", rec.LastSweep)
		}
		// The next delivery, after the pause, sweeps it.
		time.Sleep(30 * time.Second)
		p.prober.script[id(0)] = nil
		wr, err := p.worker.Do(t.Context(), Work{Run: "r", Seq: 0, Tenants: []string{id(0), id(1)}}, 2)
		if err != nil || wr.OK != 2 || get(p.reg, id(0)).LastSweep == nil {
			t.Errorf("redelivery: %+v, %v", wr, err)
		}
	})
}

// What an operator reads in `handler runs` when the governor slowed a run:
// how long the plan spread it and why, and the app-wide throttling its
// tenants waited out.
func TestRunSaysWhatSlowedIt(t *testing.T) {
	start := time.Date(2026, 12, 1, 22, 15, 0, 0, time.UTC)
	run := Summarize(Run{ID: "r", Mode: ModeQueue, StartedAt: start, Messages: 2, Queued: 4, Total: 4,
		Pacing: Pacing{GraphRate: 5000, TokenRate: 2000, Until: start.Add(54 * time.Second)}},
		[]WorkResult{{Run: "r", Seq: 0, Tenants: 2, OK: 2, GraphRequests: 4, TokenRequests: 2, AppThrottles: 3, PausedMs: 2500, FinishedAt: start.Add(time.Minute)}})
	s := run.String()
	for _, want := range []string{"1 of 2 messages done",
		"paced over 54s to keep within Graph 5000/s and tokens 2000/s (the last message deliverable at 22:15:54)",
		"4 Graph and 2 token requests",
		"Graph throttled the app as a whole 3 times and its tenants waited 2.5s in all"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
}

// A result that is stale when it is written (the tenant was registered
// again since the sweep started) shares nothing: re-registering cleared the
// tenant's shared state so that the next sweep signs in afresh.
func TestStaleResultSharesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeline(active(1), 1)
		issued := time.Now()
		p.prober.script[id(0)] = func(ctx context.Context) tenant.SweepResult {
			// Registered again while its probe runs.
			time.Sleep(time.Second)
			rec, _ := p.reg.Stored(id(0))
			rec.UpdatedAt = time.Now()
			p.reg.Put(rec)
			return tenant.SweepResult{At: issued, Outcome: outcome.OK, Shared: tenant.SharedUpdate{Put: []tenant.SharedToken{
				{Resource: "https://graph.microsoft.com", IssuedAt: issued, ExpiresOn: issued.Add(time.Hour), Sealed: "stale"}}}}
		}
		if _, err := p.worker.Do(t.Context(), Work{Run: "r", Seq: 0, Tenants: []string{id(0)}}, 1); err != nil {
			t.Fatal(err)
		}
		if rec := get(p.reg, id(0)); rec.LastSweep != nil || len(rec.Shared.Tokens) != 0 {
			t.Errorf("a stale result was written: %+v, shared %+v", rec.LastSweep, rec.Shared)
		}
	})
}

// A tenant that waited for the app's throttling within its budget and then
// ran out of time is not recorded as a timeout: the fleet's throttling cost
// it the time.
func TestWorkerDoesNotTimeOutATenantTheAppsThrottlingDelayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := governor.NewGate(governor.Options{})
		p := newPipelineWith(active(1), 1, Options{Concurrency: 4, TenantTimeout: 10 * time.Second, Budget: time.Minute, Gate: gate})
		p.prober.script[id(0)] = func(ctx context.Context) tenant.SweepResult {
			gate.Throttled(id(0), "Application/ReadWrite/app/"+id(0), 4*time.Second)
			if _, err := gate.Wait(ctx); err != nil { // 4 s of its 10 s
				t.Errorf("wait: %v", err)
			}
			<-ctx.Done() // then its own work runs out of time
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.Timeout}
		}
		if _, err := p.worker.Do(t.Context(), Work{Run: "r", Seq: 0, Tenants: []string{id(0)}}, 1); !errors.Is(err, ErrInterrupted) {
			t.Fatalf("err = %v, want the message given back", err)
		}
		if rec := get(p.reg, id(0)); rec.LastSweep != nil {
			t.Errorf("recorded %s", rec.LastSweep.Outcome)
		}
		// Its own timeout, with no wait for the app, is recorded.
		p.prober.script[id(0)] = func(ctx context.Context) tenant.SweepResult {
			<-ctx.Done()
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.Timeout}
		}
		time.Sleep(time.Minute) // past the pacing the throttle left
		if _, err := p.worker.Do(t.Context(), Work{Run: "r", Seq: 0, Tenants: []string{id(0)}}, 2); err != nil {
			t.Fatal(err)
		}
		if rec := get(p.reg, id(0)); rec.LastSweep == nil || rec.LastSweep.Outcome != outcome.Timeout {
			t.Errorf("its own timeout: %+v", rec.LastSweep)
		}
		// A short wait for the app does not excuse a tenant that hangs: it
		// would come back, wait again and never be recorded.
		p.prober.script[id(0)] = func(ctx context.Context) tenant.SweepResult {
			gate.Throttled(id(0), "Application/ReadWrite/app/"+id(0), time.Second)
			if _, err := gate.Wait(ctx); err != nil { // 1 s of its 10 s
				t.Errorf("wait: %v", err)
			}
			<-ctx.Done()
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.Timeout}
		}
		time.Sleep(time.Minute)
		if _, err := p.worker.Do(t.Context(), Work{Run: "r2", Seq: 0, Tenants: []string{id(0)}}, 1); err != nil {
			t.Fatalf("a short wait then a hang: %v, want its timeout recorded", err)
		}
		if rec := get(p.reg, id(0)); rec.LastSweep == nil || rec.LastSweep.Outcome != outcome.Timeout || rec.LastSweep.RunID != "r2" {
			t.Errorf("a short wait then a hang: %+v", rec.LastSweep)
		}
	})
}

// A tenant whose last seconds the app's throttling took is not recorded
// however briefly it waited; from the message's third delivery on it is
// recorded with what it got, so that its message never reaches the poison
// queue because of the fleet.
func TestWorkerGivesBackATenantTheAppsThrottlingHeldTwiceAtMost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := governor.NewGate(governor.Options{})
		p := newPipelineWith(active(1), 1, Options{Concurrency: 4, TenantTimeout: 10 * time.Second, Budget: time.Minute, Gate: gate})
		p.prober.script[id(0)] = func(ctx context.Context) tenant.SweepResult {
			time.Sleep(9 * time.Second) // its own work, within its budget
			gate.Throttled(id(0), "Application/ReadWrite/app/"+id(0), 30*time.Second)
			_, err := gate.Wait(ctx) // the pause ends past its deadline
			return tenant.SweepResult{At: time.Now(), Outcome: outcome.Of(err), Message: outcome.Detail(err)}
		}
		for delivery := int64(1); delivery <= 3; delivery++ {
			_, err := p.worker.Do(t.Context(), Work{Run: "r", Seq: 0, Tenants: []string{id(0)}}, delivery)
			rec := get(p.reg, id(0))
			switch {
			case delivery <= 2 && (!errors.Is(err, ErrInterrupted) || rec.LastSweep != nil):
				t.Errorf("delivery %d: %v, recorded %+v; want it given back", delivery, err, rec.LastSweep)
			case delivery == 3 && (err != nil || rec.LastSweep == nil || rec.LastSweep.Outcome != outcome.Throttled):
				t.Errorf("delivery 3: %v, recorded %+v; want its throttled outcome recorded", err, rec.LastSweep)
			}
			time.Sleep(time.Minute) // past the pause
		}
	})
}
