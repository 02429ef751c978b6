// Package sweep runs TenantSweep: it loads every active tenant and processes
// them with bounded concurrency, each under its own deadline, recording every
// outcome back in the registry as it finishes.
package sweep

import (
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/posture"
)

// Run is the summary of one sweep, returned to the host and kept in the run
// history.
type Run struct {
	ID      string `json:"runId"`
	Trigger string `json:"trigger"` // timer, cli or local
	// Mode is ModeQueue for a run planned onto the work queue and executed
	// by SweepWorker invocations; empty for a run swept in one process.
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
	// AppWideFailure is set when the sweep stopped because the app itself
	// cannot sign in (for example an expired secret).
	AppWideFailure string `json:"appWideFailure,omitempty"`
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
	Gone         int   `json:"gone,omitempty"`
	Redeliveries int   `json:"redeliveries,omitempty"`
	P50Ms        int64 `json:"p50Ms"`
	P95Ms        int64 `json:"p95Ms"`
	WallMs       int64 `json:"wallMs"`
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

// ModeQueue marks a run executed through the work queue.
const ModeQueue = "queue"

// Unreadable is a tenant row that did not decode, and the first property
// that did not.
type Unreadable struct {
	TenantID string `json:"tenantId"`
	Property string `json:"property"`
}
