package tenant

import (
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// Work is delivered at least once and runs overlap: a result that is older
// than what the record holds must leave the record untouched.
func TestRecordSweepDropsStaleResults(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	stored := func(runID string, at time.Time) *SweepResult {
		return &SweepResult{RunID: runID, At: at, Outcome: outcome.UpstreamError, OutcomeSince: at}
	}
	tests := []struct {
		name    string
		rec     Record
		res     SweepResult
		applied bool
	}{
		{"first result", Record{UpdatedAt: t0}, SweepResult{RunID: "r1", At: t0.Add(time.Minute)}, true},
		{"newer run", Record{UpdatedAt: t0, LastSweep: stored("r1", t0.Add(time.Minute))}, SweepResult{RunID: "r2", At: t0.Add(time.Hour)}, true},
		{"same run redelivered", Record{UpdatedAt: t0, LastSweep: stored("r1", t0.Add(time.Minute))}, SweepResult{RunID: "r1", At: t0.Add(2 * time.Minute)}, false},
		{"older, slower run", Record{UpdatedAt: t0, LastSweep: stored("r2", t0.Add(time.Hour))}, SweepResult{RunID: "r1", At: t0.Add(time.Minute)}, false},
		{"re-onboarded after the sweep started", Record{UpdatedAt: t0.Add(time.Hour)}, SweepResult{RunID: "r1", At: t0.Add(time.Minute)}, false},
		{"re-onboarded before the sweep started", Record{UpdatedAt: t0}, SweepResult{RunID: "r1", At: t0.Add(time.Minute)}, true},
		{"no run id, same time (CLI, older records)", Record{UpdatedAt: t0, LastSweep: stored("", t0.Add(time.Minute))}, SweepResult{At: t0.Add(time.Minute)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.rec
			rec.ConsecutiveFailures = 2
			res := tt.res
			res.Outcome = outcome.UpstreamError
			got := RecordSweep(&rec, res, time.Hour)
			if got != tt.applied {
				t.Fatalf("RecordSweep = %v, want %v", got, tt.applied)
			}
			wantFailures := 2
			if tt.applied {
				wantFailures = 3
			}
			if rec.ConsecutiveFailures != wantFailures {
				t.Errorf("consecutiveFailures = %d, want %d", rec.ConsecutiveFailures, wantFailures)
			}
			if !tt.applied && rec.LastSweep != tt.rec.LastSweep {
				t.Errorf("a dropped result replaced lastSweep")
			}
			if tt.applied && rec.LastSweep.RunID != res.RunID {
				t.Errorf("lastSweep.runId = %q, want %q", rec.LastSweep.RunID, res.RunID)
			}
		})
	}
}
