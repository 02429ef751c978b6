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
func RecordSweep(rec *Record, res SweepResult, backoffMax time.Duration) {
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
}

// BackedOff reports whether the tenant is skipped at now.
func (r Record) BackedOff(now time.Time) bool {
	return r.BackoffUntil != nil && now.Before(*r.BackoffUntil)
}
