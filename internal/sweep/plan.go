package sweep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/posture"
	"github.com/tenantsweep/tenantsweep/internal/runid"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// LeaseState is where the run holding the lease is.
type LeaseState string

const (
	// LeasePlanning: the planner is listing tenants and enqueuing work.
	LeasePlanning LeaseState = "planning"
	// LeasePlanned: every message is enqueued; workers are on it.
	LeasePlanned LeaseState = "planned"
)

// Lease is the registry's record of the run in progress, so that runs do
// not overlap: a tenant is never queued twice, and never swept by two runs at
// once.
type Lease struct {
	RunID     string     `json:"runId"`
	Trigger   string     `json:"trigger"`
	State     LeaseState `json:"state"`
	StartedAt time.Time  `json:"startedAt"`
	// ExpiresAt is when a holder still planning is presumed dead (its
	// instance was killed).
	ExpiresAt time.Time `json:"expiresAt"`
	// HeldUntil is, for a run whose queue is the planning process's own
	// (`handler sweep`), when that process is presumed gone: its work is not
	// on the shared queue, whose backlog then says nothing of it.
	HeldUntil time.Time `json:"heldUntil,omitzero"`
	// Messages is how many work messages the run enqueued.
	Messages int `json:"messages"`
	// ETag is the store's concurrency token of the version read; empty when
	// no lease was ever taken.
	ETag string `json:"-"`
}

// Leases stores the run lease and the runs' work results.
type Leases interface {
	// ReadLease returns the lease, or a zero Lease when none was taken.
	ReadLease(ctx context.Context) (Lease, error)
	// WriteLease stores l on condition that the stored lease is still the
	// version l.ETag names (absent when empty), and returns it with its new
	// ETag; ErrLeaseTaken when another writer came first.
	WriteLease(ctx context.Context, l Lease) (Lease, error)
	// WorkResults returns the work results recorded for a run.
	WorkResults(ctx context.Context, runID string) ([]WorkResult, error)
}

// Backlog reports how many messages the work queue holds, invisible ones
// (being worked on) included.
type Backlog interface {
	Pending(ctx context.Context) (int, error)
}

// ErrLeaseTaken means another run wrote the lease between our read and
// write.
var ErrLeaseTaken = errors.New("run lease taken concurrently")

// ErrRunActive means another run is still active.
var ErrRunActive = errors.New("another sweep run is active")

// ActiveRunError names the active run; it matches ErrRunActive.
type ActiveRunError struct {
	Lease Lease
	State RunState
}

func (e *ActiveRunError) Error() string {
	return fmt.Sprintf("%s: run %s (%s, started %s) is %s",
		ErrRunActive, e.Lease.RunID, e.Lease.Trigger, e.Lease.StartedAt.UTC().Format(time.RFC3339), e.State.Describe())
}

func (e *ActiveRunError) Is(target error) bool { return target == ErrRunActive }

// RunState is how far the lease's run has come.
type RunState struct {
	Active bool
	// Status is planning, running, finished or incomplete: a run that
	// stopped with work not done and none of it queued any more (its
	// messages were poisoned, or its planner or process was killed).
	Status string
	// Done is how many of its messages are done; Pending the queue's
	// backlog when it was looked at (-1 when not).
	Done, Pending int
	Results       []WorkResult
}

// Describe is the state for a message.
func (s RunState) Describe() string {
	switch {
	case s.Pending > 0:
		return fmt.Sprintf("%s (%d messages done, %d still queued)", s.Status, s.Done, s.Pending)
	case s.Status == "planning":
		return "still planning"
	}
	return s.Status
}

// RunLock keeps one run at a time.
type RunLock struct {
	leases Leases
	queue  Backlog
}

// NewRunLock returns a RunLock over the lease store and the work queue.
func NewRunLock(leases Leases, queue Backlog) *RunLock { return &RunLock{leases: leases, queue: queue} }

// Read returns the current lease.
func (l *RunLock) Read(ctx context.Context) (Lease, error) {
	cur, err := l.leases.ReadLease(ctx)
	if err != nil {
		return Lease{}, fmt.Errorf("read run lease: %w", err)
	}
	return cur, nil
}

// State tells whether cur's run is still active.
func (l *RunLock) State(ctx context.Context, cur Lease) (RunState, error) {
	now := time.Now()
	switch {
	case cur.RunID == "":
		return RunState{Status: "finished", Pending: -1}, nil
	case cur.State == LeasePlanning && now.Before(cur.ExpiresAt):
		return RunState{Active: true, Status: "planning", Pending: -1}, nil
	}
	// Planned, or a planner that died: active while its work is queued.
	// The backlog is read first: a message leaves the queue only after its
	// result is recorded, so results read after an empty backlog are all
	// there are (read the other way round, the last message could finish
	// in between and its run look incomplete).
	pending, err := l.queue.Pending(ctx)
	if err != nil {
		return RunState{}, fmt.Errorf("read the work queue's backlog: %w", err)
	}
	results, err := l.leases.WorkResults(ctx, cur.RunID)
	if err != nil {
		return RunState{}, fmt.Errorf("read work results of run %s: %w", cur.RunID, err)
	}
	st := RunState{Done: doneMessages(results), Results: results, Pending: pending}
	if cur.State == LeasePlanned && st.Done >= cur.Messages {
		st.Status = "finished"
		return st, nil
	}
	if st.Pending > 0 || now.Before(cur.HeldUntil) {
		st.Active, st.Status = true, "running"
	} else {
		st.Status = "incomplete"
	}
	return st, nil
}

// Acquire takes the lease for next, unless the run holding it is still
// active (then an *ActiveRunError); force takes it regardless. Two callers
// racing for it cannot both win: the write is conditional. It also returns
// the state of the run that held the lease (not looked at when forced).
func (l *RunLock) Acquire(ctx context.Context, next Lease, force bool) (Lease, RunState, error) {
	for range 5 {
		cur, err := l.Read(ctx)
		if err != nil {
			return Lease{}, RunState{}, err
		}
		var st RunState
		if !force {
			if st, err = l.State(ctx, cur); err != nil {
				return Lease{}, RunState{}, err
			}
			if st.Active {
				return Lease{}, RunState{}, &ActiveRunError{Lease: cur, State: st}
			}
		}
		next.ETag = cur.ETag
		got, err := l.leases.WriteLease(ctx, next)
		if errors.Is(err, ErrLeaseTaken) {
			continue // look at whoever won
		}
		if err != nil {
			return Lease{}, RunState{}, fmt.Errorf("take run lease: %w", err)
		}
		return got, st, nil
	}
	return Lease{}, RunState{}, fmt.Errorf("take run lease: %w", ErrLeaseTaken)
}

// Update stores the holder's new lease.
func (l *RunLock) Update(ctx context.Context, lease Lease) (Lease, error) {
	got, err := l.leases.WriteLease(ctx, lease)
	if err != nil {
		return lease, fmt.Errorf("update run lease: %w", err)
	}
	return got, nil
}

func doneMessages(results []WorkResult) int {
	seen := map[int]bool{}
	for _, r := range results {
		seen[r.Seq] = true
	}
	return len(seen)
}

// PlanSource is what planning needs of the registry.
type PlanSource interface {
	// EachActive calls fn with each page of active tenants, in key order, so
	// that the registry is never held in memory whole.
	EachActive(ctx context.Context, fn func([]tenant.Record) error) error
	// GetMany returns the tenants found among tenantIDs, by lower-case id.
	GetMany(ctx context.Context, tenantIDs []string) (map[string]tenant.Record, error)
	// PartitionOf is a tenant's registry partition: the tenants of one
	// message share one, so that the worker reads them in one request and
	// writes them in one batch.
	PartitionOf(tenantID string) string
}

// Enqueuer puts work messages on the work queue.
type Enqueuer interface {
	// EnqueueAfter adds a message that becomes visible (deliverable) after
	// delay.
	EnqueueAfter(ctx context.Context, text string, delay time.Duration) error
}

// PlanOptions tune a Planner. Zero values take the defaults noted.
type PlanOptions struct {
	TenantsPerMessage int           // default 16
	Budget            time.Duration // planning's wall time; default 4m30s
	Enqueuers         int           // messages enqueued at once; default 32
	WriteTimeout      time.Duration // lease and history writes; default 20s
	// GraphRate and TokenRate are the requests a second the whole run may
	// send to Microsoft Graph (a $batch's steps counted) and to Entra ID's
	// token endpoint, across every instance; 0 paces nothing by it. The
	// planner paces the run by them: each message becomes visible on the
	// queue when the requests of the messages before it fit the budgets.
	GraphRate, TokenRate float64
	// Freshness is how long a tenant's shared tokens are used (see
	// tokenshare): a tenant whose tokens are due by its message's time
	// counts its token requests; default 30m.
	Freshness time.Duration
	// Posture, when set, is read once a run is planned, for its summary
	// and its status line (see Planner.posture).
	Posture Posture
	// PostureTimeout bounds reading it; default 10s.
	PostureTimeout time.Duration
}

// Posture reads the app's own credentials (*posture.Checker is one).
type Posture interface {
	Check(ctx context.Context) posture.Report
}

// Pacing is how the planner spread a run's messages over time to keep the
// fleet within the app's budgets, without any coordination among the
// instances: a message is not delivered before its time.
type Pacing struct {
	GraphRate float64 `json:"graphRate,omitempty"`
	TokenRate float64 `json:"tokenRate,omitempty"`
	// GraphPerTenant is the Graph requests a tenant was expected to make:
	// the previous run's average, or defaultGraphPerTenant.
	GraphPerTenant float64 `json:"graphPerTenant,omitempty"`
	// GraphRequests and TokenRequests are what the plan expected the run
	// to send.
	GraphRequests int `json:"graphRequests,omitempty"`
	TokenRequests int `json:"tokenRequests,omitempty"`
	// Until is when its last message became visible.
	Until time.Time `json:"until,omitzero"`
}

// defaultGraphPerTenant is the Graph requests expected of a tenant when no
// previous run says: the access task's $batch of two steps.
const defaultGraphPerTenant = 2.0

// defaultTokensPerTenant is the token requests expected of a tenant that
// shares no token: Graph's and Key Vault's.
const defaultTokensPerTenant = 2

// Planner plans a run onto the work queue: TenantSweep's timer.
type Planner struct {
	reg   PlanSource
	queue Enqueuer
	lock  *RunLock
	hist  History
	opt   PlanOptions
}

// NewPlanner returns a Planner; hist may be nil.
func NewPlanner(reg PlanSource, queue Enqueuer, lock *RunLock, hist History, opt PlanOptions) *Planner {
	opt.TenantsPerMessage = min(cmp.Or(opt.TenantsPerMessage, 16), MaxWorkTenants)
	opt.Budget = cmp.Or(opt.Budget, 4*time.Minute+30*time.Second)
	opt.Enqueuers = cmp.Or(opt.Enqueuers, 32)
	opt.WriteTimeout = cmp.Or(opt.WriteTimeout, 20*time.Second)
	opt.PostureTimeout = cmp.Or(opt.PostureTimeout, 10*time.Second)
	opt.Freshness = cmp.Or(opt.Freshness, 30*time.Minute)
	return &Planner{reg: reg, queue: queue, lock: lock, hist: hist, opt: opt}
}

// Into returns a planner like p that enqueues into q, `handler sweep`'s
// queue of its own, one message at a time: enqueuing costs no round trip
// there, and its work starts in the plan's order (longest unswept first).
func (p *Planner) Into(q Enqueuer) *Planner {
	c := *p
	c.queue = q
	c.opt.Enqueuers = 1
	return &c
}

type planEntry struct {
	id   string
	last time.Time
	// tokensDue is when the tenant's shared tokens stop being fresh (zero:
	// it shares none), tokens how many it shares.
	tokensDue time.Time
	tokens    int
}

func entryOf(r tenant.Record, freshness time.Duration) planEntry {
	due, n := r.TokensDue(freshness)
	return planEntry{id: r.TenantID, last: lastSweepAt(r), tokensDue: due, tokens: n}
}

// Request describes one run.
type Request struct {
	ID      string
	Trigger string
	PastDue bool
	// TenantID, when set, plans only that tenant, ignoring its backoff.
	TenantID string
	// Force takes the run lease even while another run is active.
	Force bool
	// Hold is, for a queue of the planning process's own, how long that
	// process may take to run the work (Lease.HeldUntil).
	Hold time.Duration
}

// Errors of Plan.
var (
	// ErrTenantNotActive means a one-tenant run named a tenant that is not
	// onboarded, is disabled, or whose row does not decode.
	ErrTenantNotActive = errors.New("tenant is not an active onboarded tenant")
	// ErrAppWide means the app itself could not sign in; no tenant was
	// blamed.
	ErrAppWide = errors.New("app-wide sign-in failure")
)

// Plan takes the run lease, lists the active tenants page by page, skips
// the backed-off ones and enqueues the rest, those swept longest ago first,
// in messages of TenantsPerMessage. It returns an *ActiveRunError, and
// enqueues nothing, while another run is active (unless Force). The run's
// summary starts in the history; the workers' results complete it
// (Summarize).
func (p *Planner) Plan(ctx context.Context, req Request) (Run, error) {
	log := zerolog.Ctx(ctx)
	start := time.Now()
	run := Run{ID: req.ID, Trigger: req.Trigger, PastDue: req.PastDue, StartedAt: start, Mode: ModeQueue, Failed: map[outcome.Code]int{}}
	if err := runid.Check(req.ID); err != nil {
		return run, fmt.Errorf("run id %q: %w", truncate(req.ID, runid.MaxLen), err)
	}
	var only []planEntry
	if req.TenantID != "" {
		var err error
		if only, err = p.oneTenant(ctx, req.TenantID); err != nil {
			return run, err
		}
	}
	next := Lease{RunID: req.ID, Trigger: req.Trigger, State: LeasePlanning, StartedAt: start, ExpiresAt: start.Add(p.opt.Budget)}
	if req.Hold > 0 {
		next.HeldUntil = start.Add(req.Hold)
	}
	lease, prev, err := p.lock.Acquire(ctx, next, req.Force)
	if err != nil {
		return run, err
	}
	pctx, cancel := context.WithDeadline(ctx, start.Add(p.opt.Budget))
	defer cancel()
	run.Posture = p.posture(pctx, run.ID)

	todo := only
	if req.TenantID == "" {
		err = p.reg.EachActive(pctx, func(recs []tenant.Record) error {
			for _, r := range recs {
				switch {
				case r.Damage != nil:
					log.Error().Str("tenantId", r.TenantID).Str("property", r.Damage.Property).Str("detail", r.Damage.Message).
						Msg("tenant row does not decode; not swept")
					run.Unreadable = append(run.Unreadable, Unreadable{TenantID: r.TenantID, Property: r.Damage.Property})
				case r.BackedOff(start):
					run.SkippedBackoff++
				default:
					todo = append(todo, entryOf(r, p.opt.Freshness))
				}
			}
			return nil
		})
	}
	run.Total = len(todo) + run.SkippedBackoff + len(run.Unreadable)
	if err != nil {
		// Nothing queued: not active.
		lease.State, lease.ExpiresAt, lease.HeldUntil = LeasePlanned, start, time.Time{}
		p.finish(ctx, lease, run)
		return run, fmt.Errorf("list active tenants: %w", err)
	}
	slices.SortStableFunc(todo, func(a, b planEntry) int { return a.last.Compare(b.last) })

	run.Pacing = Pacing{GraphRate: p.opt.GraphRate, TokenRate: p.opt.TokenRate, GraphPerTenant: graphPerTenant(prev.Results)}
	run.Messages, run.Queued, err = p.enqueue(pctx, req.ID, todo, &run.Pacing)
	lease.State, lease.Messages = LeasePlanned, run.Messages
	run.WallMs = time.Since(start).Milliseconds()
	p.finish(ctx, lease, run)
	ev := log.Info()
	if err != nil {
		ev = log.Error().Err(err)
	}
	ev.Str("runId", run.ID).Str("trigger", run.Trigger).Bool("pastDue", run.PastDue).Int("total", run.Total).
		Int("queued", run.Queued).Int("messages", run.Messages).Int("skippedBackoff", run.SkippedBackoff).
		Int("unreadable", len(run.Unreadable)).Int64("wallMs", run.WallMs).
		Int("graphRequestsPlanned", run.Pacing.GraphRequests).Int("tokenRequestsPlanned", run.Pacing.TokenRequests).
		Time("pacedUntil", run.Pacing.Until).Msg("sweep planned")
	if err != nil {
		return run, fmt.Errorf("enqueue work: %w (%d of %d tenants queued)", err, run.Queued, len(todo))
	}
	return run, nil
}

// oneTenant is the plan of a one-tenant run: the tenant, whatever its
// backoff, when it is active and its row decodes.
func (p *Planner) oneTenant(ctx context.Context, tenantID string) ([]planEntry, error) {
	id, err := tenant.ParseTenantID(tenantID)
	if err != nil {
		return nil, fmt.Errorf("sweep tenant %q: %w: %w", truncate(tenantID, 64), ErrTenantNotActive, err)
	}
	recs, err := p.reg.GetMany(ctx, []string{id})
	if err != nil {
		return nil, fmt.Errorf("read tenant %s: %w", id, err)
	}
	r, ok := recs[id]
	if !ok || !r.Active() || r.Damage != nil {
		return nil, fmt.Errorf("sweep tenant %s: %w", id, ErrTenantNotActive)
	}
	return []planEntry{entryOf(r, p.opt.Freshness)}, nil
}

// Release ends the hold of a run whose process ran its work itself, once
// that process is done, so that the run reads as finished or incomplete at
// once rather than at HeldUntil. A lease another run took meanwhile is left
// alone.
func (p *Planner) Release(ctx context.Context, runID string) error {
	cur, err := p.lock.Read(ctx)
	if err != nil {
		return err
	}
	if cur.RunID != runID || cur.HeldUntil.IsZero() {
		return nil
	}
	cur.HeldUntil = time.Time{}
	if cur.State == LeasePlanning {
		cur.ExpiresAt = time.Now()
	}
	_, err = p.lock.Update(ctx, cur)
	return err
}

// posture reads the app's own posture for the run's summary, and logs it as
// one "app posture" line: at warn level when a credential of the app
// expires within the window, the line an alert fires on.
func (p *Planner) posture(ctx context.Context, runID string) *posture.Report {
	if p.opt.Posture == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opt.PostureTimeout)
	defer cancel()
	r := p.opt.Posture.Check(ctx)
	log := zerolog.Ctx(ctx)
	ev := log.Info()
	if !r.OK() {
		ev = log.Warn()
	}
	ev.Str("runId", runID).Bool("postureOk", r.OK()).Int("expiring", len(r.Expiring)).Str("posture", r.String()).Msg("app posture")
	return &r
}

// finish stores the lease and the run's first history row; they outlive
// the caller's cancellation.
func (p *Planner) finish(ctx context.Context, lease Lease, run Run) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opt.WriteTimeout)
	defer cancel()
	if _, err := p.lock.Update(wctx, lease); err != nil {
		// Its ExpiresAt still ends it; until then the run counts as active.
		zerolog.Ctx(ctx).Error().Err(err).Str("runId", run.ID).Msg("mark run planned")
	}
	if p.hist != nil {
		if err := p.hist.AddRun(wctx, run); err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("runId", run.ID).Msg("save sweep run history")
		}
	}
}

// enqueue sends todo in messages, Enqueuers at a time, each visible at its
// time in the pacing, and stops at the first failure (the tenants not
// queued go first next run). It returns the messages and tenants queued,
// and fills in the pacing's expectations.
func (p *Planner) enqueue(ctx context.Context, runID string, todo []planEntry, pacing *Pacing) (messages, tenants int, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type paced struct {
		w  Work
		at time.Time
	}
	work := make(chan paced)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range p.opt.Enqueuers {
		wg.Go(func() {
			for m := range work {
				if err := p.queue.EnqueueAfter(ctx, m.w.Text(), max(time.Until(m.at), 0)); err != nil {
					cancel(fmt.Errorf("message %d: %w", m.w.Seq, err))
					continue
				}
				mu.Lock()
				messages++
				tenants += len(m.w.Tenants)
				mu.Unlock()
			}
		})
	}
	seq := 0
	origin := time.Now()
	var graph, tokens float64 // requests of the messages before this one
feed:
	for _, batch := range p.batches(todo) {
		at := origin.Add(pacing.delay(graph, tokens))
		graph += pacing.GraphPerTenant * float64(len(batch))
		ids := make([]string, len(batch))
		for i, e := range batch {
			ids[i] = e.id
			tokens += float64(tokensAt(e, at))
		}
		select {
		case work <- paced{w: Work{Run: runID, Seq: seq, Tenants: ids}, at: at}:
			seq++
			if at.After(pacing.Until) {
				pacing.Until = at
			}
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	pacing.GraphRequests, pacing.TokenRequests = int(math.Round(graph)), int(tokens)
	return messages, tenants, context.Cause(ctx)
}

// delay is how long after the run's start a message may become visible
// when graph and tokens requests were planned before it: when the budgets
// have room for them.
func (pc Pacing) delay(graph, tokens float64) time.Duration {
	var d float64
	if pc.GraphRate > 0 {
		d = graph / pc.GraphRate
	}
	if pc.TokenRate > 0 {
		d = max(d, tokens/pc.TokenRate)
	}
	return time.Duration(d * float64(time.Second))
}

// tokensAt is how many token requests e's tenant is expected to make when
// it is swept at at: none while its shared tokens are fresh, the ones it
// shares when they are due, and defaultTokensPerTenant when it shares none.
func tokensAt(e planEntry, at time.Time) int {
	switch {
	case e.tokensDue.IsZero():
		return defaultTokensPerTenant
	case at.Before(e.tokensDue):
		return 0
	}
	return e.tokens
}

// graphPerTenant is the Graph requests a tenant made in a run with these
// work results, or defaultGraphPerTenant when they say nothing.
func graphPerTenant(results []WorkResult) float64 {
	requests, tenants := 0, 0
	seen := map[int]bool{}
	for _, r := range results {
		if seen[r.Seq] {
			continue
		}
		seen[r.Seq] = true
		requests += r.GraphRequests
		tenants += r.OK + sum(r.Failed)
	}
	if requests == 0 || tenants == 0 {
		return defaultGraphPerTenant
	}
	return float64(requests) / float64(tenants)
}

// partitionsPerWindow is how many registry partitions a window of the
// plan spans (the registry has 256).
const partitionsPerWindow = 256

// batches cuts todo, in its order (longest unswept first), into messages of
// tenants of one partition each: todo is taken a window of
// TenantsPerMessage × partitionsPerWindow tenants at a time, so that the
// order holds window by window while most messages are full.
func (p *Planner) batches(todo []planEntry) [][]planEntry {
	n := p.opt.TenantsPerMessage
	window := n * partitionsPerWindow
	var out [][]planEntry
	for len(todo) > 0 {
		w := todo[:min(window, len(todo))]
		todo = todo[len(w):]
		var order []string
		byPK := map[string][]planEntry{}
		for _, e := range w {
			pk := p.reg.PartitionOf(e.id)
			if _, ok := byPK[pk]; !ok {
				order = append(order, pk)
			}
			byPK[pk] = append(byPK[pk], e)
		}
		for _, pk := range order {
			ids := byPK[pk]
			for len(ids) > 0 {
				m := min(n, len(ids))
				out = append(out, ids[:m:m])
				ids = ids[m:]
			}
		}
	}
	return out
}

func lastSweepAt(r tenant.Record) time.Time {
	if r.LastSweep == nil {
		return time.Time{}
	}
	return r.LastSweep.At
}
