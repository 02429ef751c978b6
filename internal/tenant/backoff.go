package tenant

import (
	"maps"
	"slices"
	"strings"
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

// StatusChange is one change of an outcome, which operators alert on.
type StatusChange struct {
	// Task is the task whose outcome changed; empty for a result that ran
	// no task (its tenant's work was abandoned or panicked).
	Task string
	// Key and VaultURL name the key whose outcome changed, for a change of
	// the keys task that is one key's.
	Key, VaultURL string
	// From is the outcome before, or "none" for the first one.
	From              string
	To                outcome.Code
	Step, Remediation string
}

// KeysTask is the name of the task whose per-key results are
// SweepResult.Keys.
const KeysTask = "keys"

// StatusChanges lists what res changes from the result the record holds:
// each task whose outcome differs, in name order. A task the last result
// did not run starts from "none"; a result from before tasks existed
// stands for each of them with its own outcome, so that upgrading changes
// nothing.
//
// The keys task's changes are its keys': each key whose outcome differs is
// a change of its own (keyChanges), so that the loss of one key is told
// even while another keeps the task failing. The task's own change is
// listed only when no key's tells it: the task did not reach its keys (a
// failed sign-in, a timeout), or a key left the registration.
func (r Record) StatusChanges(res SweepResult) []StatusChange {
	prev := r.LastSweep
	from := func(name string) string {
		switch {
		case prev == nil:
			return "none"
		case name == "" || prev.Tasks == nil:
			return string(prev.Outcome)
		}
		if p, ok := prev.Tasks[name]; ok {
			return string(p.Outcome)
		}
		return "none"
	}
	var out []StatusChange
	if len(res.Tasks) == 0 {
		if f := from(""); f != string(res.Outcome) {
			out = append(out, StatusChange{From: f, To: res.Outcome, Step: res.Step, Remediation: res.Remediation})
		}
		return out
	}
	for _, name := range slices.Sorted(maps.Keys(res.Tasks)) {
		tr := res.Tasks[name]
		if name == KeysTask {
			if keys := r.keyChanges(res); len(keys) > 0 {
				out = append(out, keys...)
				continue
			}
		}
		if f := from(name); f != string(tr.Outcome) {
			out = append(out, StatusChange{Task: name, From: f, To: tr.Outcome, Step: tr.Step, Remediation: tr.Remediation})
		}
	}
	return out
}

// keyChanges lists the keys of res whose outcome differs from the one the
// record holds, in registration order. A key the last result does not list
// starts from "none" (newly registered, or the first sweep since keys
// existed), except when the last result's keys task stopped before reaching
// its keys (it starts from that outcome) or left keys out to fit the
// registry (it starts from "ok": the failing keys are the ones kept).
func (r Record) keyChanges(res SweepResult) []StatusChange {
	prev := r.LastSweep
	type id struct{ vault, key string }
	idOf := func(k KeyStatus) id { return id{strings.ToLower(k.VaultURL), strings.ToLower(k.Key)} }
	before := map[id]outcome.Code{}
	fallback := "none"
	if prev != nil {
		for _, k := range prev.Keys {
			before[idOf(k)] = k.Outcome
		}
		switch tr, ran := prev.Tasks[KeysTask]; {
		case prev.KeysOmitted > 0:
			fallback = string(outcome.OK)
		case ran && len(prev.Keys) == 0:
			fallback = string(tr.Outcome)
		}
	}
	var out []StatusChange
	for _, k := range res.Keys {
		from := fallback
		if o, ok := before[idOf(k)]; ok {
			from = string(o)
		}
		if from != string(k.Outcome) {
			out = append(out, StatusChange{Task: KeysTask, Key: k.Key, VaultURL: k.VaultURL, From: from, To: k.Outcome,
				Step: k.Step, Remediation: k.Remediation})
		}
	}
	return out
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
