package sweep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// LocalOptions tune a Local queue. Zero values take the defaults noted.
type LocalOptions struct {
	// InFlight is how many messages run at once; default 24, what the
	// host's queue listener keeps in flight with host.json's batchSize 16
	// and newBatchThreshold 8. The worker's Concurrency bounds the tenants.
	InFlight int
	// MaxDeliveries is how often a message that was not finished (a
	// registry write that failed, say) is run again, as the host delivers
	// it again up to maxDequeueCount; default 5.
	MaxDeliveries int
	// AppWideStop is how many tenants refusing the app's own credential,
	// with none ok, stop the run: the messages in flight are interrupted and
	// no further one starts; default 3.
	AppWideStop int
	// Progress, when set, is told after every message that finished; it
	// runs on the message's goroutine, so it must be quick.
	Progress func(Progress)
}

// Progress is how far a run has come.
type Progress struct {
	Done, Todo, OK, Failed int
	Elapsed                time.Duration
}

// Local is a work queue of the process's own: `handler sweep` plans into it
// (it is the planner's Enqueuer), and it runs each message through the
// Worker as SweepWorker's invocations would, so the command line runs the
// code the host runs. Work is started as it is enqueued; Wait returns the
// messages' results once planning is over and every message is done.
type Local struct {
	// ctx is the run's: a Local lives exactly as long as its run, and
	// every message it runs is bounded by the run's budget and interrupted
	// with it (Enqueue's context is the planner's request, not the run).
	ctx   context.Context
	stop  context.CancelFunc
	w     *Worker
	opt   LocalOptions
	start time.Time

	mu      sync.Mutex
	cond    *sync.Cond
	pending []localWork // in the planner's order, so by time
	closed  bool
	results []WorkResult
	// progress and appWide add up the results as they come.
	progress Progress
	appWide  int
	todo     int
	stopped  bool
	wg       sync.WaitGroup
}

// NewLocal starts a Local queue whose messages run in ctx: its deadline is
// the run's budget (a message is not started after it), its cancellation
// an interruption.
func NewLocal(ctx context.Context, w *Worker, opt LocalOptions) *Local {
	opt.InFlight = cmp.Or(opt.InFlight, 24)
	opt.MaxDeliveries = cmp.Or(opt.MaxDeliveries, 5)
	opt.AppWideStop = cmp.Or(opt.AppWideStop, 3)
	ctx, stop := context.WithCancel(ctx)
	l := &Local{ctx: ctx, stop: stop, w: w, opt: opt, start: time.Now()}
	l.cond = sync.NewCond(&l.mu)
	context.AfterFunc(ctx, l.wake) // messages waiting for their time are dropped
	for range opt.InFlight {
		l.wg.Go(l.serve)
	}
	return l
}

// localWork is a message and when it may start.
type localWork struct {
	w  Work
	at time.Time
}

// EnqueueAfter takes a message as the planner wrote it for the queue; it
// starts once delay has passed, as the host would deliver it, so that the
// command line keeps to the run's pacing too.
func (l *Local) EnqueueAfter(_ context.Context, text string, delay time.Duration) error {
	work, err := ParseWork([]byte(text))
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("local queue: enqueue after Wait")
	}
	at := time.Now().Add(delay)
	if n := len(l.pending); n > 0 && at.Before(l.pending[n-1].at) {
		at = l.pending[n-1].at // the planner's order stands
	}
	l.pending = append(l.pending, localWork{w: work, at: at})
	l.todo += len(work.Tenants)
	l.cond.Signal()
	if delay > 0 {
		time.AfterFunc(delay, l.wake)
	}
	return nil
}

func (l *Local) wake() {
	l.mu.Lock()
	l.cond.Broadcast()
	l.mu.Unlock()
}

// Wait ends enqueuing, waits until every message is done (or dropped: past
// the budget, after an interruption or an app-wide stop) and returns their
// results.
func (l *Local) Wait() []WorkResult {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	l.wg.Wait()
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.results
}

// next is the next message to run; false once the queue is closed and
// empty, or when no further message may start.
func (l *Local) next() (Work, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for (len(l.pending) == 0 && !l.closed || len(l.pending) > 0 && time.Now().Before(l.pending[0].at)) &&
		!l.stopped && l.ctx.Err() == nil {
		l.cond.Wait()
	}
	if len(l.pending) == 0 || l.stopped || l.ctx.Err() != nil {
		l.pending = nil // dropped: not reached
		return Work{}, false
	}
	w := l.pending[0].w
	l.pending = l.pending[1:]
	return w, true
}

func (l *Local) serve() {
	for {
		work, ok := l.next()
		if !ok {
			return
		}
		wr, err := l.deliver(work)
		if err != nil {
			zerolog.Ctx(l.ctx).Warn().Err(err).Str("runId", work.Run).Int("seq", work.Seq).Msg("work message not done; its tenants count as not reached")
			continue
		}
		l.done(wr)
	}
}

// deliver runs a message, and again while it was interrupted by something
// other than the run's end, as the host redelivers it.
func (l *Local) deliver(work Work) (WorkResult, error) {
	var err error
	for delivery := int64(1); delivery <= int64(l.opt.MaxDeliveries); delivery++ {
		var wr WorkResult
		wr, err = l.w.Do(l.ctx, work, delivery)
		if err == nil || !errors.Is(err, ErrInterrupted) || l.ctx.Err() != nil {
			return wr, err
		}
	}
	return WorkResult{}, fmt.Errorf("given up after %d deliveries: %w", l.opt.MaxDeliveries, err)
}

func (l *Local) done(wr WorkResult) {
	l.mu.Lock()
	l.results = append(l.results, wr)
	l.progress.Done += wr.Tenants
	l.progress.OK += wr.OK
	l.progress.Failed += sum(wr.Failed)
	for c, k := range wr.Failed {
		if c.AppWide() {
			l.appWide += k
		}
	}
	p := l.progress
	if p.OK == 0 && p.Failed > 0 && l.appWide >= l.opt.AppWideStop && !l.stopped {
		// The app itself cannot sign in: the work in flight stops as on an
		// interruption (nothing recorded, nobody blamed) and no more starts.
		l.stopped = true
		l.stop()
	}
	p.Todo, p.Elapsed = l.todo, time.Since(l.start)
	l.mu.Unlock()
	if l.opt.Progress != nil {
		l.opt.Progress(p)
	}
}
