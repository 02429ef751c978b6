package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// sweepTimer is the TenantSweep function: it plans a run onto the work
// queue and answers once the run is planned. While the previous run still
// has work queued it enqueues nothing and succeeds: an occurrence skipped
// on purpose is not a failed execution. A planning failure fails it (500).
func (a *app) sweepTimer(ctx context.Context, timer funchost.TimerInfo) (funchost.Result, error) {
	run, err := a.planner.Plan(ctx, sweep.Request{
		ID:      funchost.InvocationID(ctx),
		Trigger: "timer",
		PastDue: timer.IsPastDue,
	})
	if active, ok := errors.AsType[*sweep.ActiveRunError](err); ok {
		msg := fmt.Sprintf("sweep %s not planned: %s", run.ID, err)
		zerolog.Ctx(ctx).Warn().Str("activeRunId", active.Lease.RunID).Bool("pastDue", timer.IsPastDue).Msg(msg)
		return funchost.Result{Logs: []string{msg}}, nil
	}
	if err != nil {
		return funchost.Result{}, fmt.Errorf("plan sweep: %w", err)
	}
	logs := []string{run.PlanString()}
	if line := run.PostureString(); line != "" {
		logs = append(logs, line)
	}
	return funchost.Result{Logs: logs, ReturnValue: run}, nil
}

// sweepWork is the SweepWorker function: one delivery of a work message. A
// tenant's failure is recorded and answered 200, since it is an outcome; an
// interrupted or unrecorded message, or one that is not ours, fails (500) so
// that the host delivers it again, and after maxDequeueCount poisons it.
func (a *app) sweepWork(ctx context.Context, msg funchost.QueueMessage) (funchost.Result, error) {
	work, err := sweep.ParseWork(msg.Body)
	if err != nil {
		return funchost.Result{}, fmt.Errorf("queue message %s: %w", msg.ID, err)
	}
	wr, err := a.worker.Do(ctx, work, msg.DequeueCount)
	if err != nil {
		return funchost.Result{}, err
	}
	return funchost.Result{Logs: []string{fmt.Sprintf("run %s message %d: %d tenants, %d ok, %d failed, %d gone",
		wr.Run, wr.Seq, wr.Tenants, wr.OK, wr.Tenants-wr.OK-wr.Gone-wr.Unreadable, wr.Gone)}}, nil
}

// lazyApp lets the handler listen, and answer the host's readiness probe,
// before it does any network I/O: the registry and the app credential are
// set up in the background, and invocations wait for them.
type lazyApp struct {
	ready chan struct{}
	app   *app
	err   error
	wait  time.Duration
	// apiWait is how long an API request waits for the start: the
	// registry's deadline, so that it answers 503 within it.
	apiWait time.Duration
	// hint is added to a not-ready answer: how to start a local Azurite.
	hint string

	mu      sync.Mutex
	lastErr error // of the last failed attempt
}

const initWait = 30 * time.Second

func startApp(ctx context.Context, cfg config.Config, d deps, log zerolog.Logger) *lazyApp {
	l := &lazyApp{ready: make(chan struct{}), wait: initWait, apiWait: cmp.Or(cfg.Registry.Timeout, tablestore.DefaultTimeout),
		hint: azuriteHint(cfg.Registry)}
	go func() {
		defer close(l.ready)
		delay := time.Second
		for {
			a, err := newApp(log.WithContext(ctx), cfg, d)
			if err == nil {
				l.app = a
				log.Info().Msg("app ready")
				return
			}
			l.mu.Lock()
			l.lastErr = err
			l.mu.Unlock()
			log.Error().Err(err).Dur("retryIn", delay).Msg("app start failed")
			select {
			case <-ctx.Done():
				l.err = err
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, 30*time.Second)
		}
	}()
	return l
}

var errNotReady = errors.New("the app is still starting: its registry or credential is not reachable yet")

// startErr is why the app is not ready: errRegistryNotReady while the
// registry has not answered (or nothing has failed yet), errNotReady for
// anything else.
func (l *lazyApp) startErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastErr == nil || errors.Is(l.lastErr, tenant.ErrUnavailable) {
		return errRegistryNotReady
	}
	return errNotReady
}

var errRegistryNotReady = fmt.Errorf("%w (the tenant registry has not answered yet)", errNotReady)

// notReady is the message of a not-ready answer.
func (l *lazyApp) notReady() string { return errNotReady.Error() + l.hint }

// readyNow reports, without waiting, whether the app has started.
func (l *lazyApp) readyNow() bool {
	select {
	case <-l.ready:
		return l.err == nil
	default:
		return false
	}
}

func (l *lazyApp) get(ctx context.Context) (*app, error) {
	return l.getWithin(ctx, l.wait)
}

func (l *lazyApp) getWithin(ctx context.Context, wait time.Duration) (*app, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-l.ready:
		if l.err != nil {
			return nil, l.err
		}
		return l.app, nil
	case <-t.C:
		return nil, l.startErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
