package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
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

// runActive is `handler sweep` refusing while another run is active.
type runActive struct{ err error }

func (e runActive) Error() string {
	return e.err.Error() + "; wait for it (`handler runs` shows its progress) or pass --force to sweep anyway"
}
func (e runActive) Unwrap() error { return e.err }

// ExitCode 4 tells a script "not now" from a failure.
func (runActive) ExitCode() int { return 4 }

// holdGrace is how long past its budget a `handler sweep` run holds the
// run lease: a process killed with its lease held blocks the next run no
// longer.
const holdGrace = time.Minute

// sweepOnce is `handler sweep`: one run now, planned by the planner
// TenantSweep uses into a queue of this process's own, whose every message
// runs through the Worker that SweepWorker uses; logs go to stderr and the
// summary to stdout. It holds the run lease, so it refuses while another run
// is active unless force.
func sweepOnce(ctx context.Context, e env, tenantID string, force bool, stdout, stderr io.Writer) error {
	ctx, log := funchost.Begin(ctx, funchost.NewLogger(e.cfg.LogLevel, stderr, stderr), sweepFunction, "")
	warnRetired(log, e.getenv)
	a, err := newApp(ctx, e.cfg, deps{})
	if err != nil {
		return err
	}
	run, err := a.sweepNow(ctx, tenantID, force, stderr)
	switch {
	case errors.Is(err, sweep.ErrRunActive):
		return runActive{err}
	case err != nil && !errors.Is(err, sweep.ErrAppWide):
		return sweepFailed{err}
	}
	fmt.Fprintln(stdout, run.String())
	logFinished(&log, run)
	if err != nil {
		return sweepFailed{err}
	}
	return nil
}

// sweepNow runs one sweep in this process, through the planner and the
// worker, and returns its summary; ErrAppWide (with the summary) when no
// tenant accepted the app's own credential. Progress goes to progress when
// it is a terminal.
func (a *app) sweepNow(ctx context.Context, tenantID string, force bool, progress io.Writer) (sweep.Run, error) {
	budget := a.cfg.Sweep.Budget
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var opts sweep.LocalOptions
	if isTerminal(progress) {
		var p progressLine
		opts.Progress = func(pr sweep.Progress) { p.show(progress, pr) }
		defer p.end(progress)
	}
	local := sweep.NewLocal(rctx, a.worker, opts)
	id := funchost.InvocationID(ctx)
	run, err := a.planner.Into(local).Plan(rctx, sweep.Request{ID: id, Trigger: "cli", TenantID: tenantID, Force: force, Hold: budget + holdGrace})
	results := local.Wait()
	// Whatever happened (an interrupted plan too), this run holds the lease
	// no longer; Release leaves another run's alone.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer wcancel()
	if rerr := a.planner.Release(wctx, id); rerr != nil {
		// It lapses on its own at HeldUntil.
		zerolog.Ctx(ctx).Warn().Err(rerr).Msg("release the run lease")
	}
	if err != nil {
		return run, err
	}
	run = sweep.Summarize(run, results)
	if run.AppWideFailure != "" {
		// The run ends on it: stopped before its last messages, or with
		// none left to start.
		run.Stopped = true
		return run, fmt.Errorf("%w: %s", sweep.ErrAppWide, run.AppWideFailure)
	}
	return run, nil
}

// logFinished logs a finished run's summary line.
func logFinished(log *zerolog.Logger, run sweep.Run) {
	failed := zerolog.Dict()
	for code, n := range run.Failed {
		failed.Int(string(code), n)
	}
	ev := log.Info()
	if run.AppWideFailure != "" {
		ev = log.Error().Str("appWideFailure", run.AppWideFailure)
	}
	ev.Str("runId", run.ID).Str("trigger", run.Trigger).Int("total", run.Total).Int("ok", run.OK).Dict("failed", failed).
		Int("skippedBackoff", run.SkippedBackoff).Int("notReached", run.NotReached).Int("unreadable", len(run.Unreadable)).
		Int64("p50Ms", run.P50Ms).Int64("p95Ms", run.P95Ms).Int64("wallMs", run.WallMs).Msg("sweep finished")
}

// isTerminal reports whether w is a terminal, where a progress line that
// rewrites itself reads well (and a log file would fill with it).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine is `handler sweep`'s progress on a terminal: one line,
// rewritten at most every progressEvery, and always for the last tenant.
type progressLine struct {
	last  time.Time
	shown bool
}

const progressEvery = 200 * time.Millisecond

func (p *progressLine) show(w io.Writer, pr sweep.Progress) {
	if pr.Done < pr.Todo && time.Since(p.last) < progressEvery {
		return
	}
	p.last, p.shown = time.Now(), true
	rate := 0.0
	if s := pr.Elapsed.Seconds(); s > 0 {
		rate = float64(pr.Done) / s
	}
	// The cursor goes back to the line's start, so that a log line written
	// meanwhile replaces the progress line rather than trailing after it.
	fmt.Fprintf(w, "%d/%d tenants, %d ok, %d failed, %.1f tenants/s\033[K\r", pr.Done, pr.Todo, pr.OK, pr.Failed, rate)
}

// end leaves the last progress line in place and moves to the next line.
func (p *progressLine) end(w io.Writer) {
	if p.shown {
		fmt.Fprintln(w)
	}
}

// printRuns is `handler runs`: the newest runs first, one summary line each
// with its status (a queued run's summary is added up from its work
// results), then the poisoned work messages. It reads the registry and the
// queue, so it needs no app credential to work.
func printRuns(ctx context.Context, reg config.Registry, q config.Queue, last int, stdout io.Writer) error {
	store, err := openRegistry(ctx, reg, deps{})
	if err != nil {
		return err
	}
	queue, err := openQueue(ctx, q, deps{})
	if err != nil {
		return err
	}
	lock := sweep.NewRunLock(store, queue)
	lease, err := lock.Read(ctx)
	if err != nil {
		return err
	}
	runs, err := store.RecentRuns(ctx, last)
	if err != nil {
		return fmt.Errorf("read run history: %w", err)
	}
	poisoned, err := queue.Poisoned(ctx, 32)
	if err != nil {
		return fmt.Errorf("read poison queue: %w", err)
	}
	poisonedOf := map[string]int{}
	for _, m := range poisoned {
		if w, err := sweep.ParseWork([]byte(m.Text)); err == nil {
			poisonedOf[w.Run]++
		}
	}
	for _, r := range runs {
		status := "finished"
		var results []sweep.WorkResult
		if r.ID == lease.RunID {
			// The lease's run: its state says, and has read its results.
			st, err := lock.State(ctx, lease)
			if err != nil {
				return err
			}
			status, results = st.Status, st.Results
		}
		if r.Mode == sweep.ModeQueue {
			if results == nil {
				if results, err = store.WorkResults(ctx, r.ID); err != nil {
					return err
				}
			}
			r = sweep.Summarize(r, results)
			if r.ID != lease.RunID && r.MessagesDone < r.Messages {
				status = "incomplete"
			}
		}
		line := r.String()
		if n := poisonedOf[r.ID]; n > 0 {
			line += fmt.Sprintf(", %d messages poisoned", n)
		}
		if p := r.PostureString(); p != "" {
			line += "; " + p
		}
		fmt.Fprintf(stdout, "%s  %-5s  %-10s  %s\n", r.StartedAt.UTC().Format(time.RFC3339), r.Trigger, status, line)
	}
	if len(poisoned) > 0 {
		fmt.Fprintf(stdout, "\n%d poisoned work messages in %s-poison (delivered maxDequeueCount times without finishing; their tenants were not blamed):\n",
			len(poisoned), queue.Name())
	}
	for _, m := range poisoned {
		if w, err := sweep.ParseWork([]byte(m.Text)); err == nil {
			fmt.Fprintf(stdout, "  %s  run %s message %d  tenants %s\n", m.InsertionTime.UTC().Format(time.RFC3339), w.Run, w.Seq, strings.Join(w.Tenants, ","))
		} else {
			fmt.Fprintf(stdout, "  %s  message %s is not a work message: %v\n", m.InsertionTime.UTC().Format(time.RFC3339), m.ID, err)
		}
	}
	return nil
}

// taskLine is one task as `handler tasks` shows it.
type taskLine struct {
	Name    string   `json:"name"`
	Enabled bool     `json:"enabled"`
	Verify  bool     `json:"verify"`
	Graph   []string `json:"graph"`
	Roles   []string `json:"roles"`
}

// printTasks is `handler tasks`: every task of the binary, whether
// SWEEP_TASKS (names) runs it, and what the customer grants for it; then
// the Graph permissions the app registration asks for, the enabled tasks'.
func printTasks(names []string, asJSON bool, stdout io.Writer) error {
	all := tasks.All(tasks.Deps{})
	enabled, err := tasks.Select(all, names)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false) // a command or link copied from the terminal must work
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "TASK\tENABLED\tVERIFY\tGRAPH PERMISSIONS\tAZURE ROLES")
	}
	yes := map[bool]string{true: "yes", false: "no"}
	for _, t := range all {
		a := t.About()
		l := taskLine{Name: a.Name, Enabled: slices.Contains(names, a.Name), Verify: a.Verify, Graph: orEmpty(a.Graph), Roles: orEmpty(a.Roles)}
		if asJSON {
			if err := enc.Encode(l); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Name, yes[l.Enabled], yes[l.Verify], orDash(strings.Join(l.Graph, ", ")), orDash(strings.Join(l.Roles, ", ")))
	}
	if asJSON {
		return nil
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	perms := task.Permissions(enabled)
	fmt.Fprintf(stdout, "\nSWEEP_TASKS=%s: the app registration asks for the Graph application permissions %s\n"+
		"(A|B: either suffices). infra/scripts/register-app.sh --tasks %s adds them; a customer's admin consents to them,\n"+
		"or grants them with infra/scripts/onboard-customer.sh --consent graph --permissions %s\n",
		strings.Join(names, ","), orDash(strings.Join(perms, ", ")), strings.Join(names, ","), orDash(strings.Join(perms, ",")))
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// tenantFilter is what `handler tenants` prints.
type tenantFilter struct {
	failing, needsConsent, json bool
	// outcomes, when set, are the last outcomes listed.
	outcomes []outcome.Code
}

// setOutcomes parses --outcome: codes of outcome.Codes, the stable
// vocabulary, so that a typo is refused rather than matching nothing.
func (f *tenantFilter) setOutcomes(v string) error {
	for c := range strings.SplitSeq(v, ",") {
		code := outcome.Code(strings.TrimSpace(c))
		if !slices.Contains(outcome.Codes, code) {
			names := make([]string, len(outcome.Codes))
			for i, k := range outcome.Codes {
				names[i] = string(k)
			}
			return fmt.Errorf("unknown outcome %q (want one of %s)", code, strings.Join(names, ", "))
		}
		f.outcomes = append(f.outcomes, code)
	}
	return nil
}

// tenantLine is one tenant as `handler tenants` shows it: the last outcome
// (the sweep's, or onboarding's verification before any sweep), since when,
// and what fixes it.
type tenantLine struct {
	TenantID    string       `json:"tenantId"`
	DisplayName string       `json:"displayName"`
	Status      string       `json:"status"`
	Outcome     outcome.Code `json:"outcome,omitempty"`
	Since       *time.Time   `json:"since,omitempty"`
	Step        string       `json:"step,omitempty"`
	Fix         string       `json:"fix,omitempty"`
	// Tasks is each task's outcome, by name.
	Tasks map[string]outcome.Code `json:"tasks,omitempty"`
}

func lineOf(rec tenant.Record) tenantLine {
	l := tenantLine{TenantID: rec.TenantID, DisplayName: rec.DisplayName, Status: string(rec.Status)}
	switch {
	case rec.Damage != nil: // its stored row does not decode: that is the news
		l.Outcome = outcome.Code(rec.Damage.Code)
		l.Fix = "the registry row's " + rec.Damage.Property + " does not decode; register the tenant again to rewrite it"
	case rec.LastSweep != nil:
		s := rec.LastSweep
		since := s.OutcomeSince
		if since.IsZero() {
			since = s.At
		}
		l.Outcome, l.Since, l.Step, l.Fix = s.Outcome, &since, s.Step, s.Remediation
		l.Tasks = taskOutcomes(s.Tasks)
	case rec.Verification != nil:
		v := rec.Verification
		l.Outcome, l.Since, l.Step, l.Fix = v.Outcome, &v.At, v.Step, v.Remediation
		l.Tasks = taskOutcomes(v.Tasks)
	}
	return l
}

func taskOutcomes(tr map[string]tenant.TaskResult) map[string]outcome.Code {
	if len(tr) == 0 {
		return nil
	}
	m := make(map[string]outcome.Code, len(tr))
	for name, r := range tr {
		m[name] = r.Outcome
	}
	return m
}

// tasksCell is a tenant's task outcomes for the table: "access=ok groups=…".
func tasksCell(m map[string]outcome.Code) string {
	names := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + string(m[n])
	}
	return orDash(strings.Join(parts, " "))
}

// printTenants is `handler tenants`: every onboarded tenant, page by page,
// as a table or JSON lines. --needs-consent lists the tenants that lack
// Microsoft Graph consent with the link their admin opens, which it builds
// from APP_CLIENT_ID and AZURE_CLOUD.
func printTenants(ctx context.Context, reg config.Registry, f tenantFilter, advisor tenant.Advisor, stdout io.Writer) error {
	if f.needsConsent && advisor.AppID == "" {
		return usageError{"tenants: --needs-consent builds consent links from APP_CLIENT_ID, which is not set"}
	}
	store, err := openRegistry(ctx, reg, deps{})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false) // a command or link copied from the terminal must work
	switch {
	case f.json:
	case f.needsConsent:
		fmt.Fprintln(tw, "TENANT\tNAME\tCONSENT LINK")
	default:
		fmt.Fprintln(tw, "TENANT\tNAME\tSTATUS\tLAST OUTCOME\tSINCE\tSTEP\tTASKS\tFIX")
	}
	for next := ""; ; {
		page, err := store.List(ctx, 1000, next)
		if err != nil {
			return fmt.Errorf("list tenants: %w", err)
		}
		for _, rec := range page.Records {
			l := lineOf(rec)
			failing := l.Outcome != "" && l.Outcome != outcome.OK
			if f.failing && !failing || f.needsConsent && !l.any(lacksConsent) ||
				len(f.outcomes) > 0 && !l.any(func(c outcome.Code) bool { return slices.Contains(f.outcomes, c) }) {
				continue
			}
			switch {
			case f.json && f.needsConsent:
				_ = enc.Encode(struct {
					tenantLine
					ConsentURL string `json:"consentUrl"`
				}{l, advisor.AdminConsentURL(l.TenantID)})
			case f.json:
				_ = enc.Encode(l)
			case f.needsConsent:
				fmt.Fprintf(tw, "%s\t%s\t%s\n", l.TenantID, orDash(l.DisplayName), advisor.AdminConsentURL(l.TenantID))
			default:
				since := "-"
				if l.Since != nil {
					since = l.Since.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.TenantID, orDash(l.DisplayName), l.Status,
					orDash(string(l.Outcome)), since, orDash(l.Step), tasksCell(l.Tasks), orDash(l.Fix))
			}
		}
		if page.Next == "" {
			break
		}
		next = page.Next
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// any reports whether the tenant's outcome, or one of its tasks', is one
// that match accepts: a task that needs consent while another task's
// failure is the tenant's outcome still counts.
func (l tenantLine) any(match func(outcome.Code) bool) bool {
	if match(l.Outcome) {
		return true
	}
	for _, c := range l.Tasks {
		if match(c) {
			return true
		}
	}
	return false
}

// lacksConsent says whether a tenant's admin must grant (or grant again) the
// app's Graph permissions.
func lacksConsent(c outcome.Code) bool {
	return c == outcome.GraphConsentMissing || c == outcome.GraphPermissionMissing
}
