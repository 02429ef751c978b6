package sweep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/governor"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Registry is what the worker needs of the tenant registry.
type Registry interface {
	// GetMany returns the tenants found among tenantIDs, by lower-case id.
	GetMany(ctx context.Context, tenantIDs []string) (map[string]tenant.Record, error)
	// MutateMany applies every change conditionally on Base.ETag; a change
	// that lost to a concurrent writer is re-read and re-applied on its own.
	// errs[i] is the error of changes[i] (nil on success, nil for a tenant
	// that was deleted).
	MutateMany(ctx context.Context, changes []tenant.Change) (errs []error)
}

// History keeps one row per run.
type History interface {
	AddRun(ctx context.Context, run Run) error
}

// Prober does one tenant's work; *task.Runner is one.
type Prober interface {
	Probe(ctx context.Context, rec tenant.Record) tenant.SweepResult
}

// Options tune a Worker. Zero values take the defaults noted.
type Options struct {
	// Concurrency bounds the tenants in flight in the process, across every
	// work message it is given at once; default 64.
	Concurrency   int
	TenantTimeout time.Duration // per-tenant deadline; default 60s
	// Budget is one delivery's wall time (or less, when its context ends
	// sooner): no tenant starts after it, and work still running at its end
	// is abandoned; the message is then delivered again.
	Budget     time.Duration // default 4m30s
	BackoffMax time.Duration // default 24h
	// WriteTimeout bounds recording a message's work result.
	WriteTimeout time.Duration // default 20s
	// WriteRetries is how many more times the results that could not be
	// written are tried again before the message is given back; default 3.
	WriteRetries int
	// RetryPause is the pause before the first retry, doubled for each
	// next one; default 1s.
	RetryPause time.Duration
	// Gate is the process's Graph gate (see governor): while the app as a
	// whole is throttled no tenant starts, and its wait is not taken from
	// the tenant's time budget. Nil: none.
	Gate *governor.Gate
}

func (o *Options) setDefaults() {
	o.Concurrency = cmp.Or(o.Concurrency, 64)
	o.TenantTimeout = cmp.Or(o.TenantTimeout, 60*time.Second)
	o.Budget = cmp.Or(o.Budget, 4*time.Minute+30*time.Second)
	o.BackoffMax = cmp.Or(o.BackoffMax, 24*time.Hour)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, 20*time.Second)
	o.WriteRetries = cmp.Or(o.WriteRetries, 3)
	o.RetryPause = cmp.Or(o.RetryPause, time.Second)
}

// abandonGrace is how long a tenant's work may overrun its deadline before
// the worker stops waiting for it; work that ignores its context must not
// hold up the whole message.
const abandonGrace = 2 * time.Second

// fleetRedeliveries is how many deliveries of a message give back a tenant
// that failed because of the app's throttling; the next records what it
// got. Below host.json's maxDequeueCount (5), so such a tenant never sends
// its message to the poison queue.
const fleetRedeliveries = 2

// ErrInterrupted means a work message was not finished: the process is
// shutting down, the invocation's budget ended, or the registry could not be
// read or written. What was finished is recorded; the message must be
// delivered again, and then skips what is recorded.
var ErrInterrupted = errors.New("work interrupted")

// Worker executes work messages: SweepWorker's invocations, and `handler
// sweep`'s in-process queue (Local), so that the command line runs the code
// the host runs. It is safe for concurrent use.
type Worker struct {
	reg    Registry
	prober Prober
	ledger Ledger
	opt    Options
	// slots bounds the tenants in flight in the process, across every work
	// message it is given at once.
	slots chan struct{}
}

// NewWorker returns a Worker; ledger may be nil.
func NewWorker(reg Registry, prober Prober, ledger Ledger, opt Options) *Worker {
	opt.setDefaults()
	return &Worker{reg: reg, prober: prober, ledger: ledger, opt: opt, slots: make(chan struct{}, opt.Concurrency)}
}

type result struct {
	rec tenant.Record
	res tenant.SweepResult
	// cut means the budget, an interruption or the app's throttling
	// (throttled) ended the work: nothing is recorded and the message is
	// delivered again.
	cut, throttled bool
	// counts are the tenant's requests, and what the app's throttling cost
	// it.
	counts governor.Counts
}

type workSlot struct {
	rec tenant.Record
	r   result
	// prior is this run's result already recorded by an earlier delivery.
	prior              *tenant.SweepResult
	gone, unreadable   bool
	probed, unfinished bool
	throttled          bool // unfinished because of the app's throttling
}

// Do executes one delivery of a work message: its tenants are read in one
// request, then each is probed under its own deadline and recorded,
// isolated from the others.
// A tenant this run already recorded (an earlier delivery of the message) is
// counted, not probed again. It returns the message's WorkResult, recorded in
// the ledger, or an error wrapping ErrInterrupted when the message must be
// delivered again (an interruption is never a tenant's failure).
func (w *Worker) Do(ctx context.Context, work Work, delivery int64) (WorkResult, error) {
	log := zerolog.Ctx(ctx).With().Str("runId", work.Run).Int("seq", work.Seq).Int64("delivery", delivery).Logger()
	budgetEnd := time.Now().Add(w.opt.Budget)
	if d, ok := ctx.Deadline(); ok && d.Before(budgetEnd) {
		budgetEnd = d
	}
	slots := make([]workSlot, len(work.Tenants))
	// One read for the message: its tenants share a registry partition.
	rctx, cancel := context.WithDeadline(ctx, budgetEnd)
	recs, err := w.reg.GetMany(rctx, work.Tenants)
	cancel()
	if err != nil {
		log.Warn().Err(err).Msg("read the message's tenants failed; the message will be redelivered")
		return WorkResult{}, fmt.Errorf("%w: run %s message %d: read its tenants: %w", ErrInterrupted, work.Run, work.Seq, err)
	}
	var wg sync.WaitGroup
	for i, id := range work.Tenants {
		rec, found := recs[id]
		wg.Go(func() { slots[i] = w.slot(ctx, work.Run, delivery, rec, found, budgetEnd) })
	}
	wg.Wait()

	var changes []tenant.Change
	var written []*recorded // beside changes
	var unfinished, throttled int
	appWide := ""
	for i := range slots {
		sl := &slots[i]
		switch {
		case sl.unfinished:
			unfinished++
			if sl.throttled {
				throttled++
			}
		case sl.probed:
			logResult(&log, sl.r)
			if sl.r.res.Outcome.AppWide() {
				appWide = cmp.Or(appWide, sl.r.res.Message)
				continue // not the tenant's fault: its record stays as it was
			}
			res := sl.r.res
			res.RunID = work.Run
			// What it leaves for the fleet (its tokens) goes with its
			// result, in the same batch; never into the result itself.
			shared := res.Shared
			res.Shared = tenant.SharedUpdate{}
			rc := &recorded{res: res}
			written = append(written, rc)
			changes = append(changes, tenant.Change{Base: sl.rec, Apply: func(rec *tenant.Record) {
				// The last application is the one written: its record is
				// what the result changes.
				rc.before = *rec
				rc.applied = tenant.RecordSweep(rec, res, w.opt.BackoffMax)
				// A stale result's tokens are not shared either: the tenant
				// may have been registered again since (its shared state
				// cleared so that the next sweep signs in afresh).
				if rc.applied {
					tenant.MergeShared(rec, shared, time.Now())
				}
			}})
		}
	}
	failed := w.write(ctx, changes)
	writeErrs := 0
	for i, rc := range written {
		switch {
		case failed[i]:
			writeErrs++
		case rc.applied:
			// Logged once written, and only when the result was recorded
			// (a redelivery or a newer result drops it), so that each change
			// is one line.
			logStatusChanges(&log, rc.before, rc.res)
		}
	}
	if unfinished > 0 || writeErrs > 0 {
		cause := "interrupted"
		switch {
		case ctx.Err() != nil || unfinished == 0:
		case throttled == unfinished:
			cause = "the app's throttling cost them their time"
		case throttled > 0:
			cause = fmt.Sprintf("the invocation's budget ended; the app's throttling cost %d of them their time", throttled)
		default:
			cause = "the invocation's budget ended"
		}
		log.Warn().Int("unfinished", unfinished).Int("writeErrors", writeErrs).
			Int("recorded", len(changes)-writeErrs).Msg("work message not finished; it will be redelivered")
		return WorkResult{}, fmt.Errorf("%w: run %s message %d: %d tenants unfinished (%s), %d results not written",
			ErrInterrupted, work.Run, work.Seq, unfinished, cause, writeErrs)
	}

	wr := WorkResult{Run: work.Run, Seq: work.Seq, Tenants: len(work.Tenants), Failed: map[outcome.Code]int{},
		Delivery: delivery, FinishedAt: time.Now(), AppWideFailure: appWide}
	for _, sl := range slots {
		wr.addCounts(sl.r.counts)
		var res *tenant.SweepResult
		switch {
		case sl.gone:
			wr.Gone++
			continue
		case sl.unreadable:
			wr.Unreadable++
			continue
		case sl.prior != nil:
			res = sl.prior
		default:
			res = &sl.r.res
		}
		wr.count(*res)
	}
	if w.ledger != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opt.WriteTimeout)
		err := w.ledger.AddWorkResult(lctx, wr)
		cancel()
		if err != nil {
			return WorkResult{}, fmt.Errorf("%w: run %s message %d: record its result: %w", ErrInterrupted, work.Run, work.Seq, err)
		}
	}
	ev := log.Info().Int("tenants", wr.Tenants).Int("ok", wr.OK).Int("failed", sum(wr.Failed)).Int("gone", wr.Gone).
		Int("graphRequests", wr.GraphRequests).Int("tokenRequests", wr.TokenRequests)
	if wr.AppThrottles > 0 || wr.PausedMs > 0 {
		ev = ev.Int("appThrottles", wr.AppThrottles).Int64("pausedMs", wr.PausedMs)
	}
	ev.Msg("work message done")
	return wr, nil
}

// slot works on one tenant of a work message, as read (found false: not
// in the registry any more).
func (w *Worker) slot(ctx context.Context, runID string, delivery int64, rec tenant.Record, found bool, budgetEnd time.Time) workSlot {
	switch {
	case !found:
		return workSlot{gone: true}
	case rec.Damage != nil:
		zerolog.Ctx(ctx).Error().Str("tenantId", rec.TenantID).Str("property", rec.Damage.Property).Str("detail", rec.Damage.Message).
			Msg("tenant row does not decode; not swept")
		return workSlot{unreadable: true}
	case !rec.Active():
		return workSlot{gone: true}
	case rec.LastSweep != nil && rec.LastSweep.RunID == runID:
		return workSlot{prior: rec.LastSweep}
	}
	r := w.one(ctx, rec, delivery, budgetEnd)
	if r.cut {
		return workSlot{unfinished: true, throttled: r.throttled}
	}
	return workSlot{rec: rec, r: r, probed: true}
}

// one runs a tenant's work under its own deadline, isolated from the rest:
// a panic becomes an internal_error result and work that overruns its
// deadline is abandoned.
func (w *Worker) one(ctx context.Context, rec tenant.Record, delivery int64, budgetEnd time.Time) result {
	wait := time.NewTimer(time.Until(budgetEnd))
	select {
	case w.slots <- struct{}{}:
		wait.Stop()
	case <-wait.C:
		return result{rec: rec, cut: true}
	case <-ctx.Done():
		wait.Stop()
		return result{rec: rec, cut: true}
	}
	defer func() { <-w.slots }()
	// While the app as a whole is throttled, tenants wait here, before
	// their time budget starts; one that cannot start within the
	// delivery's budget is redone by the next delivery.
	gctx, gcancel := context.WithDeadline(ctx, budgetEnd)
	waited, err := w.opt.Gate.WaitPause(gctx)
	gcancel()
	if err != nil {
		return result{rec: rec, cut: true, counts: governor.Counts{Paused: waited}}
	}
	start := time.Now()
	deadline := start.Add(w.opt.TenantTimeout)
	budgetCut := budgetEnd.Before(deadline)
	if budgetCut {
		deadline = budgetEnd
	}
	log := zerolog.Ctx(ctx).With().Str("tenantId", rec.TenantID).Logger()
	tctx, cancel := context.WithDeadline(log.WithContext(ctx), deadline)
	defer cancel()
	tctx, meter := governor.WithMeter(tctx)

	done := make(chan tenant.SweepResult, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				log.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("tenant work panicked")
				done <- tenant.SweepResult{At: start, Outcome: outcome.InternalError,
					Message: "tenantsweep failed on this tenant (a bug, logged with the tenant id)"}
			}
		}()
		done <- w.prober.Probe(tctx, rec)
	}()

	var res tenant.SweepResult
	select {
	case res = <-done:
	case <-tctx.Done():
		select {
		case res = <-done:
		case <-time.After(abandonGrace):
			log.Warn().Msg("tenant work ignored its deadline; abandoned")
			res = tenant.SweepResult{At: start, Outcome: outcome.Timeout}
		}
	}
	counts := meter.Counts()
	// A tenant the app's throttling held past its deadline, or whose
	// deadline came after waiting at the gate for a quarter of its budget
	// or more, failed because of the fleet, not of itself. A short wait
	// does not excuse a tenant that hangs, and from the message's third
	// delivery on nothing does: its message would come back, wait again and
	// end in the poison queue with the tenant never recorded.
	fleet := meter.Held() || counts.Paused*4 >= w.opt.TenantTimeout && errors.Is(tctx.Err(), context.DeadlineExceeded)
	counts.Paused += waited
	if res.Outcome != outcome.OK && (ctx.Err() != nil || fleet && delivery <= fleetRedeliveries) {
		// Interrupted (SIGTERM, the host's request ended), or failed
		// because of the app's throttling: never the tenant's fault, so
		// nothing is recorded and its work is redone.
		return result{rec: rec, cut: true, throttled: ctx.Err() == nil, counts: counts}
	}
	if res.Outcome != outcome.OK && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		if budgetCut {
			return result{rec: rec, cut: true, counts: counts}
		}
		// A result with tasks already says which of them ran out of time
		// (and keeps the others' outcomes, the first failure first); one
		// without (abandoned work) is the tenant's timeout.
		if len(res.Tasks) == 0 {
			res.Outcome, res.Step, res.Remediation = outcome.Timeout, "", ""
			res.Message = fmt.Sprintf("the tenant did not finish within its time budget of %s", w.opt.TenantTimeout)
		}
	}
	res.DurationMs = time.Since(start).Milliseconds()
	return result{rec: rec, res: res, counts: counts}
}

// recorded is one result the worker writes, and what writing it did.
type recorded struct {
	res     tenant.SweepResult
	before  tenant.Record // as the write found it
	applied bool          // RecordSweep kept the result
}

// write records the results, trying again those that failed, and returns
// which did not get written (by index). An interrupted worker gets one
// attempt: the process is going away, and what is not written is redone by
// the next delivery. A result the registry cannot hold however it is cut
// (tenant.ErrTooLarge: a registration near Table Storage's limits) is not
// tried again, nor held against the message: it would fail every delivery.
func (w *Worker) write(ctx context.Context, changes []tenant.Change) map[int]bool {
	failed := map[int]bool{}
	if len(changes) == 0 {
		return failed
	}
	wctx := context.WithoutCancel(ctx)
	pending := make([]int, len(changes))
	for i := range pending {
		pending[i] = i
	}
	pause := w.opt.RetryPause
	for round := 0; ; round++ {
		batch := make([]tenant.Change, len(pending))
		for i, ci := range pending {
			batch[i] = changes[ci]
		}
		errs := w.reg.MutateMany(wctx, batch)
		var again []int
		for i, err := range errs {
			ci := pending[i]
			switch {
			case err == nil:
				delete(failed, ci)
			case errors.Is(err, tenant.ErrTooLarge):
				zerolog.Ctx(ctx).Error().Err(err).Str("tenantId", changes[ci].Base.TenantID).Msg("sweep result too large for the registry; not recorded")
				delete(failed, ci)
			default:
				zerolog.Ctx(ctx).Debug().Err(err).Str("tenantId", changes[ci].Base.TenantID).Msg("write sweep result failed")
				failed[ci] = true
				again = append(again, ci)
			}
		}
		if len(again) == 0 || round == w.opt.WriteRetries || ctx.Err() != nil {
			for _, ci := range again {
				zerolog.Ctx(ctx).Error().Str("tenantId", changes[ci].Base.TenantID).Msg("sweep result not written")
			}
			return failed
		}
		pending = again
		select {
		case <-time.After(pause):
		case <-ctx.Done():
		}
		pause *= 2
	}
}

func logResult(log *zerolog.Logger, r result) {
	ev := log.Debug()
	if r.res.Outcome != outcome.OK {
		ev = log.Warn()
	}
	ev.Str("tenantId", r.rec.TenantID).Str("outcome", string(r.res.Outcome)).
		Int64("durationMs", r.res.DurationMs).Str("detail", r.res.Message).Msg("tenant swept")
}

// logStatusChanges logs the lines operators alert on: one per change of a
// task's outcome in the tenant (ok to a failure, a failure to ok, one
// failure to another; "none" for its first sweep), and for the keys task
// one per key whose outcome changed (with key and vaultUrl), not on every
// sweep. It compares with the record as this run read it.
func logStatusChanges(log *zerolog.Logger, rec tenant.Record, res tenant.SweepResult) {
	for _, ch := range rec.StatusChanges(res) {
		ev := log.Info()
		if ch.To != outcome.OK {
			ev = log.Warn()
		}
		if ch.Task != "" {
			ev = ev.Str("task", ch.Task)
		}
		if ch.Key != "" {
			ev = ev.Str("key", ch.Key).Str("vaultUrl", ch.VaultURL)
		}
		ev.Str("tenantId", rec.TenantID).Str("from", ch.From).Str("to", string(ch.To)).
			Str("step", ch.Step).Str("remediation", ch.Remediation).Msg("tenant status changed")
	}
}

func sum(m map[outcome.Code]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// percentile is the nearest-rank percentile of ms.
func percentile(ms []int64, p int) int64 {
	if len(ms) == 0 {
		return 0
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank, 1)-1]
}
