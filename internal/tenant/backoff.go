package tenant

import (
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

const (
	// backoffAfter is how many consecutive failures a tenant gets before it
	// is skipped: one or two blips are retried on the next sweep as usual.
	backoffAfter = 3
	backoffBase  = 15 * time.Minute
)

// Backoff is how long a tenant with the given number of consecutive failures
// is skipped: nothing for the first few, then doubling from 15 minutes up to
// limit.
func Backoff(failures int, limit time.Duration) time.Duration {
	if failures < backoffAfter {
		return 0
	}
	d := backoffBase
	for i := backoffAfter; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// StatusChanged reports whether res changes the tenant's outcome from the
// one last recorded (none counts as a change), which operators alert on.
func (r Record) StatusChanged(res SweepResult) bool {
	return r.LastSweep == nil || r.LastSweep.Outcome != res.Outcome
}

// RecordSweep stores a sweep result on the record. Success clears the failure
// count and any backoff; an app-wide failure is recorded but not held against
// the tenant; any other failure counts and may start a backoff.
//
// Work is delivered at least once and runs can overlap, so a result is
// dropped, leaving rec as it was, when it is stale (see Supersedes). It
// reports whether rec changed.
func RecordSweep(rec *Record, res SweepResult, backoffMax time.Duration) bool {
	if rec.Supersedes(res) {
		return false
	}
	res.OutcomeSince = res.At
	if prev := rec.LastSweep; prev != nil && prev.Outcome == res.Outcome && !prev.OutcomeSince.IsZero() {
		res.OutcomeSince = prev.OutcomeSince
	}
	rec.LastSweep = &res
	switch {
	case res.Outcome == outcome.OK:
		rec.ConsecutiveFailures = 0
		rec.BackoffUntil = nil
	case res.Outcome.AppWide():
	default:
		rec.ConsecutiveFailures++
		if d := Backoff(rec.ConsecutiveFailures, backoffMax); d > 0 {
			until := res.At.Add(d)
			rec.BackoffUntil = &until
		}
	}
	return true
}

// Supersedes reports whether what rec holds is newer than res, so that res
// must not be recorded: its run already recorded this tenant (a redelivered
// message), a result of a sweep that started later is stored (an older,
// slower run), or the tenant was registered again after res's sweep started
// (re-onboarding is the customer's "try again", which a result of the old
// registration must not undo).
func (r Record) Supersedes(res SweepResult) bool {
	if prev := r.LastSweep; prev != nil {
		if res.RunID != "" && prev.RunID == res.RunID {
			return true
		}
		if prev.At.After(res.At) {
			return true
		}
	}
	return r.UpdatedAt.After(res.At)
}

// BackedOff reports whether the tenant is skipped at now.
func (r Record) BackedOff(now time.Time) bool {
	return r.BackoffUntil != nil && now.Before(*r.BackoffUntil)
}
