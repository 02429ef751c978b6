package funchost

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// Time is a timestamp from the host. The host renders .NET DateTime values
// according to their Kind, so one field may arrive with an offset
// ("2024-11-30T14:45:51+00:00"), with Z, with zero to seven fractional digits,
// or with no offset at all ("0001-01-01T00:00:00" for a timer that never ran).
// Offsetless values are taken as UTC, the host's zone unless WEBSITE_TIME_ZONE
// says otherwise.
type Time struct{ time.Time }

// offsetless is the host's rendering of a DateTime without Kind. Go's parser
// accepts a fractional second after the seconds field even though the layout
// has none, which covers the zero to seven digits .NET emits.
const offsetless = "2006-01-02T15:04:05"

// UnmarshalJSON treats null and "" as the zero time: the host has no other
// way to say "never".
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode time: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	if v, err := time.Parse(time.RFC3339Nano, s); err == nil {
		t.Time = v
		return nil
	}
	v, err := time.ParseInLocation(offsetless, s, time.UTC)
	if err != nil {
		return fmt.Errorf("decode time %q: neither RFC 3339 nor %s", s, offsetless)
	}
	t.Time = v
	return nil
}

// Schedule is all the host tells us about the schedule; the cron expression
// itself is not sent.
type Schedule struct {
	AdjustForDST bool
}

// ScheduleStatus is the schedule monitor's record as it stood before this
// run: Last is the previous run (zero if none), Next the occurrence now
// executing.
type ScheduleStatus struct {
	Last, Next, LastUpdated Time
}

// TimerInfo is the timer trigger's binding value. Field names match the
// host's PascalCase keys, so no tags are needed.
type TimerInfo struct {
	Schedule Schedule
	// ScheduleStatus is nil when the host's schedule monitor is off
	// (useMonitor false, or schedules firing more than once a minute).
	ScheduleStatus *ScheduleStatus
	// IsPastDue marks the single catch-up run after the host was down
	// across one or more occurrences.
	IsPastDue bool
}

// UnmarshalJSON keeps a timer run from failing over its schedule status:
// the host has been seen sending malformed Last/LastUpdated timestamps
// (azure-functions-host#7391), and the status is informational, so an
// unreadable one is dropped (nil) rather than rejecting the run.
func (t *TimerInfo) UnmarshalJSON(b []byte) error {
	var raw struct {
		Schedule       Schedule
		ScheduleStatus json.RawMessage
		IsPastDue      bool
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	t.Schedule, t.IsPastDue, t.ScheduleStatus = raw.Schedule, raw.IsPastDue, nil
	if len(raw.ScheduleStatus) > 0 && string(raw.ScheduleStatus) != "null" {
		var st ScheduleStatus
		if json.Unmarshal(raw.ScheduleStatus, &st) == nil {
			t.ScheduleStatus = &st
		}
	}
	return nil
}

// Result is what a function hands back to the host. Logs become
// Information traces correlated with the invocation, but only on success;
// failures must be logged through zerolog.
type Result struct {
	Logs        []string
	ReturnValue any
}

// TimerFunc runs one timer invocation. The context carries the invocation id
// and logger but no deadline: the host never cancels, it kills the process at
// functionTimeout, so a TimerFunc must bound its own work.
type TimerFunc func(ctx context.Context, timer TimerInfo) (Result, error)

// Timer serves POST /<function> for a timer trigger whose function.json
// binding is named binding. An error or panic from fn becomes a 500, which the
// host records as a failed run; the next occurrence fires as scheduled.
func Timer(function, binding string, log zerolog.Logger, fn TimerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, l := begin(r, function, log)
		sw := &statusWriter{ResponseWriter: w}
		defer recoverInvocation(sw, l)

		env, ok := readEnvelope(sw, r, l)
		if !ok {
			return
		}
		var timer TimerInfo
		if err := decodeBinding(env.Data, binding, &timer); err != nil {
			reject(sw, l, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		res, err := fn(ctx, timer)
		if err != nil {
			l.Error().Err(err).Msg("invocation failed")
			WriteError(sw, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		writeJSON(sw, l, InvokeResponse{Outputs: map[string]any{}, Logs: res.Logs, ReturnValue: res.ReturnValue})
	})
}
