package funchost

import (
	"context"
	"net/http"

	"github.com/rs/zerolog"
)

// TimerInfo is the timer trigger's binding value, of which we read one
// field. The host also sends Schedule and ScheduleStatus (the schedule
// monitor's Last/Next/LastUpdated); they are informational, and left
// undecoded so that the malformed timestamps the host has been seen sending
// (azure-functions-host#7391) cannot fail a run.
type TimerInfo struct {
	// IsPastDue marks the single catch-up run after the host was down
	// across one or more occurrences.
	IsPastDue bool
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

		var timer TimerInfo
		if !readBinding(sw, r, l, binding, &timer) {
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
