package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
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
	maxRunIDLen    = 64
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
	case w.Run == "" || len(w.Run) > maxRunIDLen || strings.ContainsFunc(w.Run, func(r rune) bool { return r <= ' ' || r > '~' || strings.ContainsRune(`/\#?'"`, r) }):
		return w, fmt.Errorf("%w: run id %q", ErrBadWork, truncate(w.Run, maxRunIDLen))
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
}

// Ledger keeps the work results of runs.
type Ledger interface {
	AddWorkResult(ctx context.Context, r WorkResult) error
}

// ErrInterrupted means a work message was not finished: the process is
// shutting down, the invocation's budget ended, or the registry could not be
// read or written. What was finished is recorded; the message must be
// delivered again, and then skips what is recorded.
var ErrInterrupted = errors.New("work interrupted")

// Worker executes work messages with a Sweeper's prober, bounds and
// concurrency slots.
type Worker struct {
	s      *Sweeper
	ledger Ledger
}

// NewWorker returns a Worker sharing s's tenants-in-flight bound.
func NewWorker(s *Sweeper, ledger Ledger) *Worker { return &Worker{s: s, ledger: ledger} }

type workSlot struct {
	rec tenant.Record
	r   result
	// prior is this run's result already recorded by an earlier delivery.
	prior              *tenant.SweepResult
	gone, unreadable   bool
	probed, unfinished bool
}

// Do executes one delivery of a work message: its tenants are read in one
// request, then each is probed under its own deadline and recorded,
// isolated from the others as in a run.
// A tenant this run already recorded (an earlier delivery of the message) is
// counted, not probed again. It returns the message's WorkResult, recorded in
// the ledger, or an error wrapping ErrInterrupted when the message must be
// delivered again (an interruption is never a tenant's failure).
func (w *Worker) Do(ctx context.Context, work Work, delivery int64) (WorkResult, error) {
	s := w.s
	log := zerolog.Ctx(ctx).With().Str("runId", work.Run).Int("seq", work.Seq).Int64("delivery", delivery).Logger()
	budgetEnd := time.Now().Add(s.opt.Budget)
	slots := make([]workSlot, len(work.Tenants))
	// One read for the message: its tenants share a registry partition.
	rctx, cancel := context.WithDeadline(ctx, budgetEnd)
	recs, err := s.reg.GetMany(rctx, work.Tenants)
	cancel()
	if err != nil {
		log.Warn().Err(err).Msg("read the message's tenants failed; the message will be redelivered")
		return WorkResult{}, fmt.Errorf("%w: run %s message %d: read its tenants: %w", ErrInterrupted, work.Run, work.Seq, err)
	}
	var wg sync.WaitGroup
	for i, id := range work.Tenants {
		rec, found := recs[id]
		wg.Go(func() { slots[i] = w.one(ctx, work.Run, rec, found, budgetEnd) })
	}
	wg.Wait()

	var changes []tenant.Change
	var unfinished int
	for i := range slots {
		sl := &slots[i]
		switch {
		case sl.unfinished:
			unfinished++
		case sl.probed:
			s.logResult(&log, sl.r)
			if sl.r.res.Outcome.AppWide() {
				continue // not the tenant's fault: its record stays as it was
			}
			res := sl.r.res
			res.RunID = work.Run
			logStatusChange(&log, sl.rec, res)
			changes = append(changes, tenant.Change{Base: sl.rec, Apply: func(rec *tenant.Record) {
				tenant.RecordSweep(rec, res, s.opt.BackoffMax)
			}})
		}
	}
	writeErrs := w.write(ctx, changes)
	if unfinished > 0 || writeErrs > 0 {
		cause := "interrupted"
		if ctx.Err() == nil && unfinished > 0 {
			cause = "the invocation's budget ended"
		}
		log.Warn().Int("unfinished", unfinished).Int("writeErrors", writeErrs).
			Int("recorded", len(changes)-writeErrs).Msg("work message not finished; it will be redelivered")
		return WorkResult{}, fmt.Errorf("%w: run %s message %d: %d tenants unfinished (%s), %d results not written",
			ErrInterrupted, work.Run, work.Seq, unfinished, cause, writeErrs)
	}

	wr := WorkResult{Run: work.Run, Seq: work.Seq, Tenants: len(work.Tenants), Failed: map[outcome.Code]int{}, Delivery: delivery, FinishedAt: time.Now()}
	for _, sl := range slots {
		var res *tenant.SweepResult
		switch {
		case sl.gone:
			wr.Gone++
			continue
		case sl.unreadable:
			wr.Unreadable++
			continue
		case sl.prior != nil:
			res = sl.prior
		default:
			res = &sl.r.res
		}
		wr.DurationsMs = append(wr.DurationsMs, res.DurationMs)
		if res.Outcome == outcome.OK {
			wr.OK++
		} else {
			wr.Failed[res.Outcome]++
		}
	}
	if w.ledger != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.WriteTimeout)
		err := w.ledger.AddWorkResult(lctx, wr)
		cancel()
		if err != nil {
			return WorkResult{}, fmt.Errorf("%w: run %s message %d: record its result: %w", ErrInterrupted, work.Run, work.Seq, err)
		}
	}
	log.Info().Int("tenants", wr.Tenants).Int("ok", wr.OK).Int("failed", sum(wr.Failed)).Int("gone", wr.Gone).Msg("work message done")
	return wr, nil
}

// one probes one tenant of a work message, as read (found false: not in
// the registry any more).
func (w *Worker) one(ctx context.Context, runID string, rec tenant.Record, found bool, budgetEnd time.Time) workSlot {
	switch {
	case !found:
		return workSlot{gone: true}
	case rec.Damage != nil:
		zerolog.Ctx(ctx).Error().Str("tenantId", rec.TenantID).Str("property", rec.Damage.Property).Str("detail", rec.Damage.Message).
			Msg("tenant row does not decode; not swept")
		return workSlot{unreadable: true}
	case !rec.Active():
		return workSlot{gone: true}
	case rec.LastSweep != nil && rec.LastSweep.RunID == runID:
		return workSlot{prior: rec.LastSweep}
	}
	r := w.s.one(ctx, rec, budgetEnd)
	if r.cut {
		return workSlot{unfinished: true}
	}
	return workSlot{rec: rec, r: r, probed: true}
}

// write records the results, trying again those that failed. An interrupted
// worker gets one attempt: the process is going away, and what is not
// written is redone by the next delivery.
func (w *Worker) write(ctx context.Context, changes []tenant.Change) int {
	if len(changes) == 0 {
		return 0
	}
	s := w.s
	wctx := context.WithoutCancel(ctx)
	pending := changes
	pause := s.opt.RetryPause
	for round := 0; ; round++ {
		errs := s.reg.MutateMany(wctx, pending)
		var failed []tenant.Change
		for i, err := range errs {
			if err != nil {
				zerolog.Ctx(ctx).Debug().Err(err).Str("tenantId", pending[i].Base.TenantID).Msg("write sweep result failed")
				failed = append(failed, pending[i])
			}
		}
		if len(failed) == 0 || round == s.opt.WriteRetries || ctx.Err() != nil {
			for _, ch := range failed {
				zerolog.Ctx(ctx).Error().Str("tenantId", ch.Base.TenantID).Msg("sweep result not written")
			}
			return len(failed)
		}
		pending = failed
		select {
		case <-time.After(pause):
		case <-ctx.Done():
		}
		pause *= 2
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
