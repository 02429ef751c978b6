package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
)

// sweepTimer is the TenantSweep function. An app-wide failure fails the
// invocation (500), so it shows as a failed execution and can alert; the
// tenants' outcomes it did record stay recorded.
func (a *app) sweepTimer(ctx context.Context, timer funchost.TimerInfo) (funchost.Result, error) {
	run, err := a.sweeper.Run(ctx, sweep.Request{
		ID:      funchost.InvocationID(ctx),
		Trigger: "timer",
		PastDue: timer.IsPastDue,
	})
	if err != nil {
		return funchost.Result{}, fmt.Errorf("sweep: %w", err)
	}
	return funchost.Result{Logs: []string{run.String()}, ReturnValue: run}, nil
}

// lazyApp lets the handler listen, and answer the host's readiness probe,
// before it does any network I/O: the registry and the app credential are
// set up in the background, and invocations wait for them.
type lazyApp struct {
	ready chan struct{}
	app   *app
	err   error
	wait  time.Duration
}

const initWait = 30 * time.Second

func startApp(ctx context.Context, cfg config.Config, d deps, log zerolog.Logger) *lazyApp {
	l := &lazyApp{ready: make(chan struct{}), wait: initWait}
	go func() {
		defer close(l.ready)
		delay := time.Second
		for {
			a, err := newApp(ctx, cfg, d)
			if err == nil {
				l.app = a
				log.Info().Msg("app ready")
				return
			}
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

func (l *lazyApp) get(ctx context.Context) (*app, error) {
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case <-l.ready:
		if l.err != nil {
			return nil, l.err
		}
		return l.app, nil
	case <-t.C:
		return nil, errNotReady
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
