package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/governor"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/runid"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Work is one work message: a batch of one run's tenants. Its JSON names
// avoid the queue trigger's metadata keys (Id, DequeueCount, PopReceipt,
// ...), since the host promotes a JSON message's top-level properties into
// the invocation's metadata, where a same-named one would replace the
// host's.
type Work struct {
	V       int      `json:"v"`
	Run     string   `json:"run"`
	Seq     int      `json:"seq"`
	Tenants []string `json:"tenants"`
}

const (
	workVersion = 1
	// MaxWorkTenants bounds a message's tenants: 256 ids are ~10 KB of JSON,
	// ~13 KB in base64, well under a queue message's 64 KiB.
	MaxWorkTenants = 256
)

// ErrBadWork means a work message is not one this app wrote.
var ErrBadWork = errors.New("malformed work message")

// ParseWork decodes and checks a work message.
func ParseWork(body []byte) (Work, error) {
	var w Work
	if err := json.Unmarshal(body, &w); err != nil {
		return w, fmt.Errorf("%w: %w", ErrBadWork, err)
	}
	switch {
	case w.V != workVersion:
		return w, fmt.Errorf("%w: version %d, want %d", ErrBadWork, w.V, workVersion)
	case runid.Check(w.Run) != nil:
		return w, fmt.Errorf("%w: run id %q: %w", ErrBadWork, truncate(w.Run, runid.MaxLen), runid.Check(w.Run))
	case w.Seq < 0:
		return w, fmt.Errorf("%w: seq %d", ErrBadWork, w.Seq)
	case len(w.Tenants) == 0 || len(w.Tenants) > MaxWorkTenants:
		return w, fmt.Errorf("%w: %d tenants, want 1 to %d", ErrBadWork, len(w.Tenants), MaxWorkTenants)
	}
	seen := make(map[string]bool, len(w.Tenants))
	for i, id := range w.Tenants {
		key, err := tenant.ParseTenantID(id)
		if err != nil {
			return w, fmt.Errorf("%w: tenants[%d]: %w", ErrBadWork, i, err)
		}
		if seen[key] {
			return w, fmt.Errorf("%w: tenants[%d] %s is listed twice", ErrBadWork, i, key)
		}
		seen[key] = true
		w.Tenants[i] = key
	}
	return w, nil
}

// Text is the message as it is enqueued.
func (w Work) Text() string {
	w.V = workVersion
	b, _ := json.Marshal(w) // strings and ints: cannot fail
	return string(b)
}

// WorkResult is what the delivery that completed a work message recorded:
// one row per message, so that a run's summary is the sum of its rows and no
// entity is written by every worker.
type WorkResult struct {
	Run     string               `json:"run"`
	Seq     int                  `json:"seq"`
	Tenants int                  `json:"tenants"`
	OK      int                  `json:"ok"`
	Failed  map[outcome.Code]int `json:"failed,omitempty"`
	// Gone are tenants offboarded or disabled since the run was planned.
	Gone int `json:"gone,omitempty"`
	// Unreadable are tenants whose row no longer decodes.
	Unreadable  int     `json:"unreadable,omitempty"`
	DurationsMs []int64 `json:"durationsMs,omitempty"`
	// Delivery is the message's dequeue count at the delivery that
	// completed it: 1 unless it was redelivered.
	Delivery   int64     `json:"delivery"`
	FinishedAt time.Time `json:"finishedAt"`
	// Tasks counts each task's outcomes in the message's tenants.
	Tasks map[string]TaskCounts `json:"tasks,omitempty"`
	// AppWideFailure is the message of a result that was the app's own
	// failure (its credential refused), not its tenant's.
	AppWideFailure string `json:"appWideFailure,omitempty"`
	// GraphRequests and TokenRequests are the requests the message's
	// tenants made (a $batch counts its steps), which the next run's pacing
	// starts from.
	GraphRequests int `json:"graphRequests,omitempty"`
	TokenRequests int `json:"tokenRequests,omitempty"`
	// AppThrottles are the 429s Graph answered for the app as a whole, and
	// PausedMs how long the tenants waited for them in all.
	AppThrottles int   `json:"appThrottles,omitempty"`
	PausedMs     int64 `json:"pausedMs,omitempty"`
}

func (wr *WorkResult) addCounts(c governor.Counts) {
	wr.GraphRequests += c.GraphRequests
	wr.TokenRequests += c.TokenRequests
	wr.AppThrottles += c.AppThrottles
	wr.PausedMs += c.Paused.Milliseconds()
}

// TaskCounts is how one task fared over a message's or a run's tenants.
type TaskCounts struct {
	OK     int                  `json:"ok"`
	Failed map[outcome.Code]int `json:"failed,omitempty"`
}

// count adds one tenant's result.
func (wr *WorkResult) count(res tenant.SweepResult) {
	wr.DurationsMs = append(wr.DurationsMs, res.DurationMs)
	if res.Outcome == outcome.OK {
		wr.OK++
	} else {
		wr.Failed[res.Outcome]++
	}
	for name, tr := range res.Tasks {
		if wr.Tasks == nil {
			wr.Tasks = map[string]TaskCounts{}
		}
		tc := wr.Tasks[name]
		tc.add(tr.Outcome, 1)
		wr.Tasks[name] = tc
	}
}

func (tc *TaskCounts) add(code outcome.Code, n int) {
	if code == outcome.OK {
		tc.OK += n
		return
	}
	if tc.Failed == nil {
		tc.Failed = map[outcome.Code]int{}
	}
	tc.Failed[code] += n
}

// Ledger keeps the work results of runs.
type Ledger interface {
	AddWorkResult(ctx context.Context, r WorkResult) error
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
