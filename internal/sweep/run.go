// Package sweep runs TenantSweep: it loads every active tenant and processes
// them with bounded concurrency, each under its own deadline, recording every
// outcome back in the registry as it finishes.
package sweep

import (
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// Run is the summary of one sweep, returned to the host and kept in the run
// history.
type Run struct {
	ID         string    `json:"runId"`
	Trigger    string    `json:"trigger"` // timer, cli or local
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
	P50Ms      int64        `json:"p50Ms"`
	P95Ms      int64        `json:"p95Ms"`
	WallMs     int64        `json:"wallMs"`
}

// Unreadable is a tenant row that did not decode, and the first property
// that did not.
type Unreadable struct {
	TenantID string `json:"tenantId"`
	Property string `json:"property"`
}
