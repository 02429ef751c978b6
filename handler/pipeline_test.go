package main

// Issue 9: the sweep as a queue pipeline. TenantSweep plans onto the Azurite
// queue; local.QueueListener stands in for each instance's Functions host,
// leasing messages, renewing the lease, delivering host-shaped envelopes to
// POST /SweepWorker, deleting on success, releasing on failure and
// poisoning past maxDequeueCount.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/funchost/local"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// testListenerOptions are host.json's extensions.queues with the lease
// shortened from the host's 10 minutes, so that a killed instance's messages
// come back within the test.
var testListenerOptions = local.ListenerOptions{
	BatchSize:          4,
	NewBatchThreshold:  2,
	MaxDequeueCount:    5,
	VisibilityTimeout:  time.Second,
	Lease:              3 * time.Second,
	MaxPollingInterval: 200 * time.Millisecond,
}

// instance is one handler process and the host's queue listener in front
// of it.
type instance struct {
	p        *proc
	listener *local.QueueListener
	stop     context.CancelFunc
	done     chan struct{}
}

// startInstances starts n handler processes, each with its own listener.
func startInstances(t testing.TB, fx *fixture, n int, env []string) []*instance {
	t.Helper()
	out := make([]*instance, n)
	for i := range out {
		out[i] = listen(t, fx, startHost(t, env))
	}
	return out
}

// listen puts a host's queue listener in front of p.
func listen(t testing.TB, fx *fixture, p *proc) *instance {
	t.Helper()
	return listenWith(t, fx, p, testListenerOptions)
}

// hostListenerOptions are host.json's extensions.queues as the host reads
// them, for the benchmarks.
func hostListenerOptions(t testing.TB) local.ListenerOptions {
	t.Helper()
	o, err := local.QueueOptions("..")
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// listenWith is listen with the listener's options.
func listenWith(t testing.TB, fx *fixture, p *proc, opts local.ListenerOptions) *instance {
	t.Helper()
	l := &local.QueueListener{Queue: fx.work, Function: workerFunction, Binding: workBinding, Target: p.base,
		Options: opts, Log: zerolog.New(os.Stderr).Level(zerolog.WarnLevel)}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{p: p, listener: l, stop: cancel, done: make(chan struct{})}
	go func() { defer close(in.done); _ = l.Run(ctx) }()
	t.Cleanup(func() { cancel(); l.Kill(); <-in.done })
	return in
}

// sweepThrough runs a whole sweep through p as the platform would: the
// timer plans it, a listener delivers its work to p, and the summary is
// what the workers recorded. The timer's answer is returned too.
func sweepThrough(t *testing.T, fx *fixture, p *proc, invocation string) (sweep.Run, []byte) {
	t.Helper()
	in := listen(t, fx, p)
	defer func() { in.stop(); <-in.done }()
	code, raw := timer(t, p, invocation)
	if code != http.StatusOK || !isPlanned(string(raw)) {
		t.Fatalf("timer: %d %s", code, raw)
	}
	run, st := waitRun(t, fx, invocation, 5*time.Minute)
	if st.Status != "finished" {
		t.Fatalf("run %s is %s", invocation, st.Describe())
	}
	return run, raw
}

// timer invokes TenantSweep on p as the host does.
func timer(t testing.TB, p *proc, invocation string) (int, []byte) {
	t.Helper()
	code, _, raw, err := send("POST", p.base+"/"+sweepFunction, timerEnvelope(t, "timer_steady.json"),
		map[string]string{"Content-Type": "application/json; charset=utf-8", "X-Azure-Functions-InvocationId": invocation})
	if err != nil {
		t.Fatal(err)
	}
	return code, raw
}

// isPlanned reports whether TenantSweep's answer says it planned a run.
func isPlanned(answer string) bool {
	return strings.Contains(answer, " planned: ") && !strings.Contains(answer, " not planned: ")
}

// waitRun waits until the lease's run is no longer active and returns its
// summary as `handler runs` adds it up.
func waitRun(t testing.TB, fx *fixture, runID string, limit time.Duration) (sweep.Run, sweep.RunState) {
	t.Helper()
	lock := sweep.NewRunLock(fx.store, fx.work)
	deadline := time.Now().Add(limit)
	for {
		lease, err := lock.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if lease.RunID != runID {
			t.Fatalf("lease is held by run %q, want %q", lease.RunID, runID)
		}
		st, err := lock.State(t.Context(), lease)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Active {
			runs, err := fx.store.RecentRuns(t.Context(), 20)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs {
				if r.ID == runID {
					return sweep.Summarize(r, st.Results), st
				}
			}
			t.Fatalf("run %s is not in the history", runID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after %s", runID, st.Describe(), limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// graphCalls counts each tenant's Graph requests: one probe of a healthy
// tenant makes the same number, so a tenant probed twice shows double.
func graphCalls(c *cloudtest.Cloud) map[string]int {
	n := map[string]int{}
	for _, r := range c.Requests() {
		if strings.HasPrefix(r.Host, "graph.") && r.Tenant != "" {
			n[r.Tenant]++
		}
	}
	return n
}

// pipelineTenants onboards healthy tenants and failing ones (Graph consent
// revoked), with failing ones at consecutiveFailures 1.
func pipelineTenants(t *testing.T, fx *fixture, healthy, failing int) (ok, bad []string) {
	t.Helper()
	regs := fx.healthyTenants(9000, healthy+failing, "pipe", true)
	fx.onboard(t, regs...)
	for i, r := range regs {
		if i < healthy {
			ok = append(ok, r.TenantID)
			continue
		}
		bad = append(bad, r.TenantID)
		fx.cloud.UpdateTenant(r.TenantID, func(tn *cloudtest.Tenant) { tn.GraphStatus = http.StatusForbidden })
		if _, _, err := fx.store.Mutate(t.Context(), r.TenantID, func(rec *tenant.Record, _ bool) error {
			rec.ConsecutiveFailures = 1
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return ok, bad
}

// checkSwept asserts every tenant's lastSweep is the run's, with its
// expected outcome, and each failing tenant's consecutiveFailures is 2.
func checkSwept(t *testing.T, fx *fixture, runID string, ok, bad []string) {
	t.Helper()
	for _, id := range append(append([]string{}, ok...), bad...) {
		rec, err := fx.store.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		want, failures := outcome.OK, 0
		if !contains(ok, id) {
			want, failures = outcome.GraphConsentMissing, 2
		}
		if rec.LastSweep == nil || rec.LastSweep.RunID != runID || rec.LastSweep.Outcome != want || rec.ConsecutiveFailures != failures {
			t.Errorf("tenant %s: lastSweep %+v, consecutiveFailures %d; want run %s, %s and %d", id, rec.LastSweep, rec.ConsecutiveFailures, runID, want, failures)
		}
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestPipelineAcrossThreeInstances(t *testing.T) {
	fx := newFixture(t)
	ok, bad := pipelineTenants(t, fx, 40, 8)
	ins := startInstances(t, fx, 3, fx.env("SWEEP_MESSAGE_TENANTS=4", "LOG_LEVEL=info"))

	// Three timer invocations within two seconds, one per instance (the
	// host's singleton lock fails over, runs overlap after restarts).
	var wg sync.WaitGroup
	answers := make([]string, 3)
	for i, in := range ins {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 300 * time.Millisecond)
			code, raw := timer(t, in.p, fmt.Sprintf("timer-%d", i))
			if code != http.StatusOK {
				t.Errorf("timer %d: %d %s", i, code, raw)
			}
			answers[i] = string(raw)
		})
	}
	wg.Wait()
	planned := ""
	for i, a := range answers {
		if isPlanned(a) {
			if planned != "" {
				t.Fatalf("two timers planned a run:\n%s", strings.Join(answers, "\n"))
			}
			planned = fmt.Sprintf("timer-%d", i)
		} else if !strings.Contains(a, "not planned") {
			t.Errorf("timer %d answered %s", i, a)
		}
	}
	if planned == "" {
		t.Fatalf("no timer planned a run:\n%s", strings.Join(answers, "\n"))
	}

	run, st := waitRun(t, fx, planned, 2*time.Minute)
	if st.Status != "finished" || run.Queued != 48 || run.Messages == 0 || run.MessagesDone != run.Messages || run.OK != 40 ||
		run.Failed[outcome.GraphConsentMissing] != 8 || run.NotReached != 0 || run.Redeliveries != 0 {
		b, _ := json.Marshal(run)
		t.Fatalf("run %s: %s", st.Status, b)
	}
	checkSwept(t, fx, planned, ok, bad)
	calls := graphCalls(fx.cloud)
	one := calls[ok[0]]
	for _, id := range ok {
		if calls[id] != one || one == 0 {
			t.Errorf("tenant %s: %d Graph calls, others %d: probed twice or not at all", id, calls[id], one)
		}
	}
	// Work was spread over the instances.
	for i, in := range ins {
		if !strings.Contains(in.p.stdout.String(), `"message":"work message done"`) {
			t.Errorf("instance %d did no work", i)
		}
	}
	if poisoned, err := fx.work.Poisoned(t.Context(), 32); err != nil || len(poisoned) != 0 {
		t.Errorf("poison queue: %d messages, %v", len(poisoned), err)
	}
	assertNoLeaks(t, fx, ins[0].p.stdout.String()+ins[1].p.stdout.String()+ins[2].p.stdout.String())
}

// An instance killed with SIGKILL mid-run and another drained (its host
// stops delivering, waits 2 s, then kills it) leave no tenant blamed: the
// messages they held come back when their lease ends, and the run's tenants
// are each recorded once.
func TestPipelineSurvivesAKilledAndADrainedInstance(t *testing.T) {
	fx := newFixture(t)
	ok, bad := pipelineTenants(t, fx, 40, 8)
	fx.cloud.SetLatency(150 * time.Millisecond)
	ins := startInstances(t, fx, 3, fx.env("SWEEP_MESSAGE_TENANTS=2", "SWEEP_CONCURRENCY=4", "LOG_LEVEL=info"))

	if code, raw := timer(t, ins[0].p, "run-kill"); code != http.StatusOK || !isPlanned(string(raw)) {
		t.Fatalf("timer: %d %s", code, raw)
	}
	// Let every instance get work in flight.
	deadline := time.Now().Add(30 * time.Second)
	for !(strings.Contains(ins[1].p.stdout.String(), `"tenantId"`) && strings.Contains(ins[2].p.stdout.String(), `"tenantId"`)) {
		if time.Now().After(deadline) {
			t.Fatal("instances 1 and 2 never started work")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Instance 1: the process is killed, and its host with it.
	ins[1].listener.Kill()
	_ = ins[1].p.cmd.Process.Signal(syscall.SIGKILL)
	// Instance 2: drained.
	ins[2].stop()
	time.Sleep(2 * time.Second)
	ins[2].listener.Kill()
	_ = ins[2].p.cmd.Process.Signal(syscall.SIGKILL)

	run, st := waitRun(t, fx, "run-kill", 3*time.Minute)
	if st.Status != "finished" || run.MessagesDone != run.Messages || run.OK != 40 || run.Failed[outcome.GraphConsentMissing] != 8 {
		b, _ := json.Marshal(run)
		t.Fatalf("run %s: %s", st.Status, b)
	}
	checkSwept(t, fx, "run-kill", ok, bad)
	if poisoned, err := fx.work.Poisoned(t.Context(), 32); err != nil || len(poisoned) != 0 {
		t.Errorf("poison queue: %d messages, %v", len(poisoned), err)
	}
	t.Logf("run: %s", run)
}

// SIGTERM (the platform draining an instance) in the middle of work: the
// tenants in flight are not recorded, the invocation fails so that the
// message is delivered again, and nothing is blamed.
func TestWorkerSIGTERMRecordsNoFailure(t *testing.T) {
	fx := newFixture(t)
	ok, bad := pipelineTenants(t, fx, 6, 2)
	fx.cloud.SetLatency(time.Second)
	p := startHost(t, fx.env("SWEEP_MESSAGE_TENANTS=8"))
	work := sweep.Work{Run: "run-term", Tenants: append(append([]string{}, ok...), bad...)}
	body, _ := json.Marshal(map[string]any{
		"Data": map[string]string{workBinding: mustJSON(work.Text())},
		"Metadata": map[string]any{"DequeueCount": "1", "Id": mustJSON("m1"), "PopReceipt": mustJSON("p1"),
			"run": mustJSON("run-term"), "v": "1", "seq": "0", "sys": map[string]string{"MethodName": workerFunction}},
	})
	type answer struct {
		code int
		raw  []byte
	}
	got := make(chan answer, 1)
	go func() {
		code, _, raw, _ := send("POST", p.base+"/"+workerFunction, body, map[string]string{"Content-Type": "application/json"})
		got <- answer{code, raw}
	}()
	time.Sleep(500 * time.Millisecond) // tenants are in flight
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	a := <-got
	if a.code < 500 {
		t.Fatalf("interrupted work answered %d %s, want a failure so that the host redelivers", a.code, a.raw)
	}
	for _, id := range work.Tenants {
		rec, err := fx.store.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.LastSweep != nil || (contains(bad, id) && rec.ConsecutiveFailures != 1) {
			t.Errorf("tenant %s blamed for the interruption: %+v, consecutiveFailures %d", id, rec.LastSweep, rec.ConsecutiveFailures)
		}
	}
}

// mustJSON is v JSON-encoded, as a string: the host's first encoding of a
// string value (marshalling the envelope adds the second).
func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A run whose work was poisoned (each message failed maxDequeueCount
// deliveries, here moved as the host moves them) is incomplete: the next
// timer plans a new run, and `handler runs` shows the run's state and the
// poisoned messages with their tenant ids.
func TestRunsShowsIncompleteRunsAndPoisonedWork(t *testing.T) {
	fx := newFixture(t)
	// Three tenants of three partitions: three messages.
	ok, _ := pipelineTenants(t, fx, 3, 0)
	parts := map[string]bool{}
	for _, id := range ok {
		parts[fx.store.PartitionOf(id)] = true
	}
	if len(parts) != 3 {
		t.Fatalf("the test's tenants share partitions: %v", ok)
	}
	p := startHost(t, fx.env("SWEEP_MESSAGE_TENANTS=2"))
	if code, raw := timer(t, p, "doomed"); code != http.StatusOK || !isPlanned(string(raw)) {
		t.Fatalf("timer: %d %s", code, raw)
	}
	code, out, errOut := runCommand(t, fx.env(), "runs")
	if code != 0 || !strings.Contains(out, "timer  running     sweep doomed") || !strings.Contains(out, "0 of 3 messages done") {
		t.Fatalf("runs while the work is queued: exit %d\n%s%s", code, out, errOut)
	}
	msgs, err := fx.work.Receive(t.Context(), 32, time.Minute)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("receive: %d messages, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if err := fx.work.MoveToPoison(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = runCommand(t, fx.env(), "runs")
	if code != 0 || !strings.Contains(out, "timer  incomplete  sweep doomed") || !strings.Contains(out, "3 poisoned work messages") {
		t.Fatalf("runs after the work was poisoned: exit %d\n%s%s", code, out, errOut)
	}
	for _, id := range ok {
		if !strings.Contains(out, id) {
			t.Errorf("runs does not name poisoned tenant %s:\n%s", id, out)
		}
	}
	// Nothing is queued any more: the next timer plans.
	if code, raw := timer(t, p, "next"); code != http.StatusOK || !isPlanned(string(raw)) {
		t.Fatalf("timer after an incomplete run: %d %s", code, raw)
	}
}
