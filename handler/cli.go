package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
)

type sweepFailed struct{ err error }

func (e sweepFailed) Error() string { return e.err.Error() }
func (e sweepFailed) Unwrap() error { return e.err }

// ExitCode is 3 for an app-wide failure, so scripts can tell "our credential
// is broken" from "the sweep could not run".
func (e sweepFailed) ExitCode() int {
	if errors.Is(e.err, sweep.ErrAppWide) {
		return 3
	}
	return 1
}

// sweepOnce is `handler sweep`: one sweep with the same settings as the
// function, logs to stderr and the summary on stdout.
func sweepOnce(ctx context.Context, e env, tenantID string, stdout, stderr io.Writer) error {
	ctx, _ = funchost.Begin(ctx, funchost.NewLogger(e.cfg.LogLevel, stderr, stderr), sweepFunction, "")
	a, err := newApp(ctx, e.cfg, deps{})
	if err != nil {
		return err
	}
	run, err := a.sweeper.Run(ctx, sweep.Request{ID: funchost.InvocationID(ctx), Trigger: "cli", TenantID: tenantID})
	if err == nil || errors.Is(err, sweep.ErrAppWide) {
		fmt.Fprintln(stdout, run.String())
	}
	if err != nil {
		return sweepFailed{err}
	}
	return nil
}

// printRuns is `handler runs`: the newest runs first, one summary line each.
// It reads only the run history, so it needs no app credential to work.
func printRuns(ctx context.Context, e env, last int, stdout io.Writer) error {
	store, err := openRegistry(ctx, e.cfg, deps{})
	if err != nil {
		return err
	}
	runs, err := store.RecentRuns(ctx, last)
	if err != nil {
		return fmt.Errorf("read run history: %w", err)
	}
	for _, r := range runs {
		fmt.Fprintf(stdout, "%s  %-5s  %s\n", r.StartedAt.UTC().Format(time.RFC3339), r.Trigger, r)
	}
	return nil
}
