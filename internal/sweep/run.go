// Package sweep runs TenantSweep and SweepWorker. The planner (TenantSweep)
// takes the run lease and enqueues the active tenants, a registry
// partition's worth a message; the worker (SweepWorker) executes each
// message: every tenant under its own deadline, isolated from the others,
// its outcome recorded before the message is done. `handler sweep` plans
// into an in-process queue (Local) that runs each message through the same
// worker, so the command line runs the code the host runs.
package sweep

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/posture"
)

// Run is the summary of one sweep, returned to the host and kept in the run
// history.
type Run struct {
	ID      string `json:"runId"`
	Trigger string `json:"trigger"` // timer, cli or local
	// Mode is ModeQueue: the run was planned onto a work queue and executed
	// message by message (the host's queue, or `handler sweep`'s own).
	Mode       string    `json:"mode,omitempty"`
	PastDue    bool      `json:"pastDue"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// Total is the number of active tenants loaded.
	Total          int                  `json:"total"`
	OK             int                  `json:"ok"`
	Failed         map[outcome.Code]int `json:"failed"`
	SkippedBackoff int                  `json:"skippedBackoff"`
	NotReached     int                  `json:"notReached"`
	// AppWideFailure is set when no tenant was ok because the app itself
	// could not sign in (for example an expired secret).
	AppWideFailure string `json:"appWideFailure,omitempty"`
	// Stopped says the run stopped dispatching work on that failure
	// (`handler sweep` does; queued work runs on).
	Stopped bool `json:"stopped,omitempty"`
	// WriteErrors counts the results still not written after the retries.
	WriteErrors int `json:"writeErrors"`
	// Unreadable are the active tenants whose row did not decode; they were
	// not swept (Total counts them).
	Unreadable []Unreadable `json:"unreadable,omitempty"`
	// Queued runs: the messages and tenants enqueued, the messages done,
	// and what their work results add up to (Summarize).
	Messages     int `json:"messages,omitempty"`
	Queued       int `json:"queued,omitempty"`
	MessagesDone int `json:"messagesDone,omitempty"`
	// Gone are tenants offboarded, disabled or damaged after planning.
	Gone         int `json:"gone,omitempty"`
	Redeliveries int `json:"redeliveries,omitempty"`
	// Tasks counts each task's outcomes.
	Tasks map[string]TaskCounts `json:"tasks,omitempty"`
	// The requests the run's tenants made (a Graph $batch counts its
	// steps), and the 429s Graph answered for the app as a whole, with the
	// time tenants waited for them in all (see governor).
	GraphRequests int   `json:"graphRequests,omitempty"`
	TokenRequests int   `json:"tokenRequests,omitempty"`
	AppThrottles  int   `json:"appThrottles,omitempty"`
	PausedMs      int64 `json:"pausedMs,omitempty"`
	// Pacing is how the planner spread the run's messages over time to
	// keep within the app's budgets (see Plan); zero for a run that was
	// not paced.
	Pacing Pacing `json:"pacing,omitzero"`
	P50Ms  int64  `json:"p50Ms"`
	P95Ms  int64  `json:"p95Ms"`
	WallMs int64  `json:"wallMs"`
	// Posture is the app's own credentials when the run was planned: a
	// problem of the app, never of a tenant.
	Posture *posture.Report `json:"posture,omitempty"`
}

// PostureString is the run's posture line ("app posture: ok ..." or what
// expires soon), or "" when it was not read.
func (r Run) PostureString() string {
	if r.Posture == nil {
		return ""
	}
	return r.Posture.String()
}

// ModeQueue marks a run executed through a work queue.
const ModeQueue = "queue"

// Unreadable is a tenant row that did not decode, and the first property
// that did not.
type Unreadable struct {
	TenantID string `json:"tenantId"`
	Property string `json:"property"`
}

// Summarize completes a queued run's summary from its work results.
func Summarize(run Run, results []WorkResult) Run {
	if run.Mode != ModeQueue {
		return run
	}
	run.Failed = map[outcome.Code]int{}
	run.Tasks = nil
	run.OK, run.Gone, run.Redeliveries = 0, 0, 0
	run.GraphRequests, run.TokenRequests, run.AppThrottles, run.PausedMs = 0, 0, 0, 0
	seen := map[int]bool{}
	var durations []int64
	var last time.Time
	done := 0
	appWide := ""
	for _, r := range results {
		if seen[r.Seq] { // a result recorded twice (a redelivery after its write)
			continue
		}
		seen[r.Seq] = true
		done += r.Tenants
		run.OK += r.OK
		for c, n := range r.Failed {
			run.Failed[c] += n
		}
		for name, tc := range r.Tasks {
			if run.Tasks == nil {
				run.Tasks = map[string]TaskCounts{}
			}
			sum := run.Tasks[name]
			sum.add(outcome.OK, tc.OK)
			for c, n := range tc.Failed {
				sum.add(c, n)
			}
			run.Tasks[name] = sum
		}
		if appWide == "" {
			appWide = r.AppWideFailure
		}
		run.Gone += r.Gone + r.Unreadable
		run.GraphRequests += r.GraphRequests
		run.TokenRequests += r.TokenRequests
		run.AppThrottles += r.AppThrottles
		run.PausedMs += r.PausedMs
		run.Redeliveries += int(max(r.Delivery-1, 0))
		durations = append(durations, r.DurationsMs...)
		if r.FinishedAt.After(last) {
			last = r.FinishedAt
		}
	}
	if run.OK == 0 && appWide != "" {
		run.AppWideFailure = appWide
	}
	run.MessagesDone = len(seen)
	run.NotReached = run.Queued - done
	run.P50Ms, run.P95Ms = percentile(durations, 50), percentile(durations, 95)
	if !last.IsZero() {
		run.FinishedAt = last
		run.WallMs = last.Sub(run.StartedAt).Milliseconds()
	}
	return run
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

// String is the one-line summary of a run: its outcomes, each task's, and
// its progress through the queue.
func (r Run) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sweep %s: %d tenants, %d ok, %d failed", r.ID, r.Total, r.OK, sum(r.Failed))
	if len(r.Failed) > 0 {
		fmt.Fprintf(&b, " (%s)", codes(r.Failed))
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
		if span := r.Pacing.Until.Sub(r.StartedAt); span >= time.Second {
			fmt.Fprintf(&b, ", paced over %s to keep within Graph %g/s and tokens %g/s (the last message deliverable at %s)",
				span.Round(time.Second), r.Pacing.GraphRate, r.Pacing.TokenRate, r.Pacing.Until.UTC().Format(time.TimeOnly))
		}
	}
	if r.GraphRequests > 0 || r.TokenRequests > 0 {
		fmt.Fprintf(&b, ", %d Graph and %d token requests", r.GraphRequests, r.TokenRequests)
	}
	if r.AppThrottles > 0 {
		fmt.Fprintf(&b, ", Graph throttled the app as a whole %d times and its tenants waited %s in all (held, not counted against them)",
			r.AppThrottles, (time.Duration(r.PausedMs) * time.Millisecond).Round(100*time.Millisecond))
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
	if len(r.Tasks) > 0 {
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(r.Tasks)) {
			tc := r.Tasks[name]
			p := fmt.Sprintf("%s %d ok, %d failed", name, tc.OK, sum(tc.Failed))
			if len(tc.Failed) > 0 {
				p += " (" + codes(tc.Failed) + ")"
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(&b, "; tasks: %s", strings.Join(parts, "; "))
	}
	if r.AppWideFailure != "" {
		if r.Stopped {
			fmt.Fprintf(&b, "; STOPPED: %s", r.AppWideFailure)
		} else {
			fmt.Fprintf(&b, "; APP-WIDE FAILURE: %s", r.AppWideFailure)
		}
	}
	return b.String()
}

func codes(m map[outcome.Code]int) string {
	out := make([]string, 0, len(m))
	for c, n := range m {
		out = append(out, fmt.Sprintf("%s=%d", c, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
