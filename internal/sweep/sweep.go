package sweep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Registry is what the sweep needs of the tenant registry.
type Registry interface {
	// ListActive returns every active tenant, following every page.
	ListActive(ctx context.Context) ([]tenant.Record, error)
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

// Prober does one tenant's work; *tenant.Prober is one.
type Prober interface {
	Probe(ctx context.Context, rec tenant.Record) tenant.SweepResult
}

// Options tune a Sweeper. Zero values take the defaults noted.
type Options struct {
	Concurrency   int           // tenants in flight; default 64
	TenantTimeout time.Duration // per-tenant deadline; default 60s
	// Budget is the sweep's wall time: no tenant starts after it, and work
	// still running at its end is abandoned and reported as not reached.
	Budget     time.Duration // default 4m30s
	BackoffMax time.Duration // default 24h
	// AppWideStop is how many app-wide failures (the app's own credential
	// rejected) stop the fan-out; default 3.
	AppWideStop int
	// Results are written back in batches of up to BatchSize, at least every
	// FlushEvery, by Writers goroutines.
	BatchSize  int           // default 100
	FlushEvery time.Duration // default 200ms
	Writers    int           // default 4
	// WriteTimeout bounds saving the run history. Write-back calls are not
	// bounded as a whole (one bound over a batch of up to 100 partitions
	// lost results on slow storage): the registry bounds each request.
	WriteTimeout time.Duration // default 20s
	// WriteRetries is how many more times, after the fan-out, the results
	// that could not be written are tried again; default 3.
	WriteRetries int
	// RetryPause is the pause before the first retry, doubled for each
	// next one; default 1s.
	RetryPause time.Duration
}

func (o *Options) setDefaults() {
	o.Concurrency = cmp.Or(o.Concurrency, 64)
	o.TenantTimeout = cmp.Or(o.TenantTimeout, 60*time.Second)
	o.Budget = cmp.Or(o.Budget, 4*time.Minute+30*time.Second)
	o.BackoffMax = cmp.Or(o.BackoffMax, 24*time.Hour)
	o.AppWideStop = cmp.Or(o.AppWideStop, 3)
	o.BatchSize = cmp.Or(o.BatchSize, 100)
	o.FlushEvery = cmp.Or(o.FlushEvery, 200*time.Millisecond)
	o.Writers = cmp.Or(o.Writers, 4)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, 20*time.Second)
	o.WriteRetries = cmp.Or(o.WriteRetries, 3)
	o.RetryPause = cmp.Or(o.RetryPause, time.Second)
}

// abandonGrace is how long a tenant's work may overrun its deadline before
// the sweep stops waiting for it; work that ignores its context must not hold
// up the whole sweep.
const abandonGrace = 2 * time.Second

// Errors of Run.
var (
	// ErrAppWide means the app itself could not sign in; the run was cut
	// short and no tenant was blamed.
	ErrAppWide = errors.New("app-wide sign-in failure")
	// ErrTenantNotActive means a one-tenant run named a tenant that is not
	// onboarded or is disabled.
	ErrTenantNotActive = errors.New("tenant is not an active onboarded tenant")
)

// Sweeper runs sweeps.
type Sweeper struct {
	reg    Registry
	hist   History
	prober Prober
	opt    Options
	// slots bounds the tenants in flight in the process, across every run
	// and work message it is given at once.
	slots chan struct{}
}

// New returns a Sweeper; hist may be nil.
func New(reg Registry, hist History, prober Prober, opt Options) *Sweeper {
	opt.setDefaults()
	return &Sweeper{reg: reg, hist: hist, prober: prober, opt: opt, slots: make(chan struct{}, opt.Concurrency)}
}

// Request describes one sweep.
type Request struct {
	ID      string
	Trigger string
	PastDue bool
	// TenantID, when set, sweeps only that tenant, ignoring its backoff.
	TenantID string
	// Progress, when set, is told after every tenant that finished (from
	// the goroutine that runs the sweep, so it must be quick).
	Progress func(Progress)
}

// Progress is how far a run has come.
type Progress struct {
	Done, Todo, OK, Failed int
	Elapsed                time.Duration
}

type result struct {
	rec tenant.Record
	res tenant.SweepResult
	// cut means the sweep's budget ended the work: nothing is recorded and
	// the tenant counts as not reached.
	cut bool
}

// Run sweeps every active tenant once and returns the run's summary. It
// returns an error when the tenants could not be listed, when TenantID is not
// active, and (with the summary filled in) when the run stopped on an
// app-wide failure.
func (s *Sweeper) Run(ctx context.Context, req Request) (Run, error) {
	log := zerolog.Ctx(ctx)
	start := time.Now()
	budgetEnd := start.Add(s.opt.Budget)
	run := Run{ID: req.ID, Trigger: req.Trigger, PastDue: req.PastDue, StartedAt: start, Failed: map[outcome.Code]int{}}

	listCtx, cancel := context.WithDeadline(ctx, budgetEnd)
	recs, err := s.reg.ListActive(listCtx)
	cancel()
	if err != nil {
		return run, fmt.Errorf("list active tenants: %w", err)
	}
	recs = s.skipUnreadable(log, recs, &run)
	todo, err := s.plan(recs, req, start, &run)
	if err != nil {
		return run, err
	}
	if req.TenantID == "" {
		run.Total += len(run.Unreadable)
	}

	results := make(chan result, s.opt.Concurrency)
	stop := make(chan struct{})
	go s.fanOut(ctx, todo, budgetEnd, stop, results)

	w := s.startWriters(ctx)
	var durations []int64
	var appWide int
	var appWideMsg string
	flush := time.NewTicker(s.opt.FlushEvery)
	defer flush.Stop()
	var pending []tenant.Change
	for open := true; open; {
		select {
		case r, ok := <-results:
			if !ok {
				open = false
				break
			}
			if r.cut { // counted below as not reached
				continue
			}
			durations = append(durations, r.res.DurationMs)
			s.logResult(log, r)
			if code := r.res.Outcome; code == outcome.OK {
				run.OK++
			} else {
				run.Failed[code]++
			}
			if req.Progress != nil {
				failed := sum(run.Failed)
				req.Progress(Progress{Done: run.OK + failed, Todo: len(todo), OK: run.OK, Failed: failed, Elapsed: time.Since(start)})
			}
			if r.res.Outcome.AppWide() {
				appWide++
				appWideMsg = r.res.Message
				if appWide == s.opt.AppWideStop {
					run.AppWideFailure = appWideMsg
					close(stop)
				}
				continue // not the tenant's fault: its record stays as it was
			}
			res := r.res
			res.RunID = req.ID
			logStatusChange(log, r.rec, res)
			pending = append(pending, tenant.Change{Base: r.rec, Apply: func(rec *tenant.Record) {
				tenant.RecordSweep(rec, res, s.opt.BackoffMax)
			}})
			if len(pending) >= s.opt.BatchSize {
				w.queue <- pending
				pending = nil
			}
		case <-flush.C:
			if len(pending) > 0 {
				w.queue <- pending
				pending = nil
			}
		}
	}
	if len(pending) > 0 {
		w.queue <- pending
	}
	// Not reached: cut by the budget, plus never dispatched.
	run.NotReached = len(todo) - run.OK - sum(run.Failed)
	run.WriteErrors = s.retryWrites(ctx, w.wait())
	if run.AppWideFailure == "" && appWide > 0 && run.OK == 0 {
		// Fewer tenants than AppWideStop, all refused the app itself.
		run.AppWideFailure = appWideMsg
	}

	run.P50Ms, run.P95Ms = percentile(durations, 50), percentile(durations, 95)
	run.FinishedAt = time.Now()
	run.WallMs = run.FinishedAt.Sub(start).Milliseconds()
	s.saveRun(ctx, run)
	logRun(log, run)
	if run.AppWideFailure != "" {
		return run, fmt.Errorf("%w: %s", ErrAppWide, run.AppWideFailure)
	}
	return run, nil
}

// plan picks the tenants to work on: skips backed-off ones and puts those
// swept longest ago first, so tenants a previous run did not reach go first.
func (s *Sweeper) plan(recs []tenant.Record, req Request, now time.Time, run *Run) ([]tenant.Record, error) {
	if req.TenantID != "" {
		id := strings.ToLower(req.TenantID)
		for _, r := range recs {
			if r.TenantID == id {
				run.Total = 1
				return []tenant.Record{r}, nil
			}
		}
		return nil, fmt.Errorf("sweep tenant %s: %w", id, ErrTenantNotActive)
	}
	run.Total = len(recs)
	todo := make([]tenant.Record, 0, len(recs))
	for _, r := range recs {
		if r.BackedOff(now) {
			run.SkippedBackoff++
			continue
		}
		todo = append(todo, r)
	}
	slices.SortStableFunc(todo, func(a, b tenant.Record) int {
		return lastSweepAt(a).Compare(lastSweepAt(b))
	})
	return todo, nil
}

func lastSweepAt(r tenant.Record) time.Time {
	if r.LastSweep == nil {
		return time.Time{}
	}
	return r.LastSweep.At
}

// fanOut feeds todo to Concurrency workers until it is done, the budget ends
// or stop is closed, then closes results.
func (s *Sweeper) fanOut(ctx context.Context, todo []tenant.Record, budgetEnd time.Time, stop <-chan struct{}, results chan<- result) {
	work := make(chan tenant.Record)
	var wg sync.WaitGroup
	for range min(s.opt.Concurrency, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rec := range work {
				results <- s.one(ctx, rec, budgetEnd)
			}
		}()
	}
	budget := time.NewTimer(time.Until(budgetEnd))
	defer budget.Stop()
dispatch:
	for _, rec := range todo {
		select {
		case <-stop:
			break dispatch
		default:
		}
		select {
		case work <- rec:
		case <-stop:
			break dispatch
		case <-budget.C:
			break dispatch
		case <-ctx.Done():
			break dispatch
		}
	}
	close(work)
	wg.Wait()
	close(results)
}

// one runs a tenant's work under its own deadline, isolated from the rest:
// a panic becomes an internal_error result and work that overruns its
// deadline is abandoned.
func (s *Sweeper) one(ctx context.Context, rec tenant.Record, budgetEnd time.Time) result {
	wait := time.NewTimer(time.Until(budgetEnd))
	select {
	case s.slots <- struct{}{}:
		wait.Stop()
	case <-wait.C:
		return result{rec: rec, cut: true}
	case <-ctx.Done():
		wait.Stop()
		return result{rec: rec, cut: true}
	}
	defer func() { <-s.slots }()
	start := time.Now()
	deadline := start.Add(s.opt.TenantTimeout)
	budgetCut := budgetEnd.Before(deadline)
	if budgetCut {
		deadline = budgetEnd
	}
	log := zerolog.Ctx(ctx).With().Str("tenantId", rec.TenantID).Logger()
	tctx, cancel := context.WithDeadline(log.WithContext(ctx), deadline)
	defer cancel()

	done := make(chan tenant.SweepResult, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				log.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("tenant work panicked")
				done <- tenant.SweepResult{At: start, Outcome: outcome.InternalError,
					Message: "tenantsweep failed on this tenant (a bug, logged with the tenant id)"}
			}
		}()
		done <- s.prober.Probe(tctx, rec)
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
	if res.Outcome != outcome.OK && ctx.Err() != nil {
		// Interrupted (SIGTERM, the host's request ended): never the
		// tenant's fault, so nothing is recorded and its work is redone.
		return result{rec: rec, cut: true}
	}
	if res.Outcome != outcome.OK && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		if budgetCut {
			return result{rec: rec, cut: true}
		}
		res.Outcome = outcome.Timeout
		res.Message = fmt.Sprintf("the tenant did not finish within its time budget of %s", s.opt.TenantTimeout)
	}
	res.DurationMs = time.Since(start).Milliseconds()
	return result{rec: rec, res: res}
}

type writers struct {
	queue  chan []tenant.Change
	wg     sync.WaitGroup
	mu     sync.Mutex
	failed []tenant.Change
}

// startWriters starts the goroutines that write results back while the
// sweep goes on. Writes outlive the budget (they are what the margin before
// functionTimeout is for), so they do not inherit the sweep's cancellation.
func (s *Sweeper) startWriters(ctx context.Context) *writers {
	w := &writers{queue: make(chan []tenant.Change, s.opt.Writers)}
	wctx := context.WithoutCancel(ctx)
	for range s.opt.Writers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for batch := range w.queue {
				errs := s.reg.MutateMany(wctx, batch)
				for i, err := range errs {
					if err != nil {
						zerolog.Ctx(ctx).Debug().Err(err).Str("tenantId", batch[i].Base.TenantID).Msg("write sweep result failed; retried later in the run")
						w.mu.Lock()
						w.failed = append(w.failed, batch[i])
						w.mu.Unlock()
					}
				}
			}
		}()
	}
	return w
}

// wait returns the changes that could not be written.
func (w *writers) wait() []tenant.Change {
	close(w.queue)
	w.wg.Wait()
	return w.failed
}

// retryWrites tries the changes that failed again, after a pause that
// doubles each round, and logs with its tenant id each one that still could
// not be written. It returns how many those are.
func (s *Sweeper) retryWrites(ctx context.Context, failed []tenant.Change) int {
	log := zerolog.Ctx(ctx)
	wctx := context.WithoutCancel(ctx)
	pause := s.opt.RetryPause
	var errs []error
	for round := 0; round < s.opt.WriteRetries && len(failed) > 0; round++ {
		time.Sleep(pause)
		pause *= 2
		errs = s.reg.MutateMany(wctx, failed)
		var still []tenant.Change
		var stillErrs []error
		for i, err := range errs {
			if err != nil {
				still, stillErrs = append(still, failed[i]), append(stillErrs, err)
			}
		}
		log.Info().Int("round", round+1).Int("tried", len(failed)).Int("failed", len(still)).Msg("retried sweep results that were not written")
		failed, errs = still, stillErrs
	}
	for i, ch := range failed {
		ev := log.Error().Str("tenantId", ch.Base.TenantID)
		if i < len(errs) {
			ev = ev.Err(errs[i])
		}
		ev.Msg("sweep result not written")
	}
	return len(failed)
}

// skipUnreadable takes out the records whose row did not decode: each is
// logged with its tenant id and the property, and listed in the run; the
// other tenants are swept as usual.
func (s *Sweeper) skipUnreadable(log *zerolog.Logger, recs []tenant.Record, run *Run) []tenant.Record {
	ok := recs[:0:0]
	for _, r := range recs {
		if r.Damage == nil {
			ok = append(ok, r)
			continue
		}
		log.Error().Str("tenantId", r.TenantID).Str("property", r.Damage.Property).Str("detail", r.Damage.Message).
			Msg("tenant row does not decode; not swept")
		run.Unreadable = append(run.Unreadable, Unreadable{TenantID: r.TenantID, Property: r.Damage.Property})
	}
	return ok
}

func (s *Sweeper) saveRun(ctx context.Context, run Run) {
	if s.hist == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.WriteTimeout)
	defer cancel()
	if err := s.hist.AddRun(cctx, run); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Msg("save sweep run history")
	}
}

func (s *Sweeper) logResult(log *zerolog.Logger, r result) {
	ev := log.Debug()
	if r.res.Outcome != outcome.OK {
		ev = log.Warn()
	}
	ev.Str("tenantId", r.rec.TenantID).Str("outcome", string(r.res.Outcome)).
		Int64("durationMs", r.res.DurationMs).Str("detail", r.res.Message).Msg("tenant swept")
}

// logStatusChange logs the line operators alert on, once per change of a
// tenant's outcome (ok to a failure, a failure to ok, one failure to
// another; "none" for a tenant's first sweep), not on every sweep. It
// compares with the record as this run read it.
func logStatusChange(log *zerolog.Logger, rec tenant.Record, res tenant.SweepResult) {
	if !rec.StatusChanged(res) {
		return
	}
	from := "none"
	if rec.LastSweep != nil {
		from = string(rec.LastSweep.Outcome)
	}
	ev := log.Info()
	if res.Outcome != outcome.OK {
		ev = log.Warn()
	}
	ev.Str("tenantId", rec.TenantID).Str("from", from).Str("to", string(res.Outcome)).
		Str("step", res.Step).Str("remediation", res.Remediation).Msg("tenant status changed")
}

func logRun(log *zerolog.Logger, run Run) {
	failed := zerolog.Dict()
	for code, n := range run.Failed {
		failed.Int(string(code), n)
	}
	ev := log.Info()
	if run.AppWideFailure != "" {
		ev = log.Error().Str("appWideFailure", run.AppWideFailure)
	}
	ev.Str("runId", run.ID).Str("trigger", run.Trigger).Bool("pastDue", run.PastDue).
		Int("total", run.Total).Int("ok", run.OK).Dict("failed", failed).
		Int("skippedBackoff", run.SkippedBackoff).Int("notReached", run.NotReached).
		Int("writeErrors", run.WriteErrors).Int("unreadable", len(run.Unreadable)).Int64("p50Ms", run.P50Ms).Int64("p95Ms", run.P95Ms).
		Int64("wallMs", run.WallMs).Msg("sweep finished")
}

// PlanString is the one-line summary of a planned run, returned to the
// Functions host by TenantSweep.
func (r Run) PlanString() string {
	s := fmt.Sprintf("sweep %s planned: %d tenants, %d queued in %d messages, %d skipped by backoff, wall %dms",
		r.ID, r.Total, r.Queued, r.Messages, r.SkippedBackoff, r.WallMs)
	if r.PastDue {
		s += ", past due"
	}
	if len(r.Unreadable) > 0 {
		s += fmt.Sprintf(", %d unreadable rows not swept", len(r.Unreadable))
	}
	return s
}

// String is the one-line summary returned to the Functions host.
func (r Run) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sweep %s: %d tenants, %d ok, %d failed", r.ID, r.Total, r.OK, sum(r.Failed))
	if len(r.Failed) > 0 {
		codes := make([]string, 0, len(r.Failed))
		for c, n := range r.Failed {
			codes = append(codes, fmt.Sprintf("%s=%d", c, n))
		}
		sort.Strings(codes)
		fmt.Fprintf(&b, " (%s)", strings.Join(codes, ", "))
	}
	fmt.Fprintf(&b, ", %d skipped by backoff, %d not reached, p50 %dms, p95 %dms, wall %dms",
		r.SkippedBackoff, r.NotReached, r.P50Ms, r.P95Ms, r.WallMs)
	if r.PastDue {
		b.WriteString(", past due")
	}
	if r.Mode == ModeQueue {
		fmt.Fprintf(&b, ", %d of %d messages done, %d redeliveries", r.MessagesDone, r.Messages, r.Redeliveries)
		if r.Gone > 0 {
			fmt.Fprintf(&b, ", %d gone since planned", r.Gone)
		}
	}
	if r.WriteErrors > 0 {
		fmt.Fprintf(&b, ", %d results not written", r.WriteErrors)
	}
	if len(r.Unreadable) > 0 {
		rows := make([]string, 0, min(len(r.Unreadable), 5))
		for _, u := range r.Unreadable[:min(len(r.Unreadable), 5)] {
			rows = append(rows, u.TenantID+" "+u.Property)
		}
		more := ""
		if len(r.Unreadable) > 5 {
			more = ", ..."
		}
		fmt.Fprintf(&b, ", %d unreadable rows not swept (%s%s)", len(r.Unreadable), strings.Join(rows, ", "), more)
	}
	if r.AppWideFailure != "" {
		fmt.Fprintf(&b, "; STOPPED: %s", r.AppWideFailure)
	}
	return b.String()
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
