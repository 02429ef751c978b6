package funchost

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/runid"
)

type invocationKey struct{}

// Begin starts an invocation: it puts the invocation id on ctx and returns a
// logger carrying invocationId and function, also attached to the context, so
// that zerolog.Ctx(ctx) anywhere below logs with both. An empty id gets a new
// UUID v4, for work that starts outside the host (local mode's timer, the
// operator CLI); InvocationID(ctx) then tells what was chosen.
func Begin(ctx context.Context, log zerolog.Logger, function, id string) (context.Context, zerolog.Logger) {
	if id == "" {
		id = runid.New()
	}
	l := log.With().Str("invocationId", id).Str("function", function).Logger()
	return l.WithContext(context.WithValue(ctx, invocationKey{}, id)), l
}

// InvocationID returns the host's id for the current invocation, the one its
// own logs show as "Executed 'Functions.X' (…, Id=…)", or "" outside one.
func InvocationID(ctx context.Context) string {
	id, _ := ctx.Value(invocationKey{}).(string)
	return id
}

// invocationID prefers the host's header. In forwarding mode the host copies
// the caller's headers and then adds its own, and .NET folds repeated values
// into one comma-separated line, so the last token is the host's. Proxying
// mode sends x-ms-invocation-id as well; local runs send neither, and get ""
// (a new id from Begin).
func invocationID(h http.Header) string {
	for _, name := range []string{"X-Azure-Functions-InvocationId", "X-Ms-Invocation-Id"} {
		vs := h.Values(name)
		if len(vs) == 0 {
			continue
		}
		last := vs[len(vs)-1]
		id := strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:])
		// A caller's value that runid refuses (too long, odd characters)
		// would be stamped on every log line and become a run's id.
		if runid.Check(id) == nil {
			return id
		}
	}
	return ""
}

// begin is Begin for a request from the host.
func begin(r *http.Request, function string, base zerolog.Logger) (context.Context, *zerolog.Logger) {
	ctx, l := Begin(r.Context(), base, function, invocationID(r.Header))
	return ctx, &l
}

// statusWriter remembers whether a response has started, so that a recovered
// panic does not write a second status line into a half-sent response.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverInvocation must be deferred directly. net/http recovers handler
// panics too, but it drops the connection without an answer and prints the
// stack outside zerolog, so the failure would reach the host as a bare
// connection error, uncorrelated with the invocation. Panics in goroutines a
// handler starts are beyond its reach and still end the process.
func recoverInvocation(w *statusWriter, log *zerolog.Logger) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v) // a deliberate abort: let net/http drop the connection
	}
	log.Error().Str("panic", fmt.Sprint(v)).Str("stack", string(debug.Stack())).Msg("invocation panicked")
	if !w.wrote {
		WriteError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// Forwarded wraps a handler for HTTP requests the host passes through as-is
// (forwarding or proxying mode: the original /api/... path, query, headers and
// body). The host relays whatever next answers, so only the invocation context
// and panic recovery are added.
func Forwarded(function string, log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, l := begin(r, function, log)
		sw := &statusWriter{ResponseWriter: w}
		defer recoverInvocation(sw, l)
		next.ServeHTTP(sw, r.WithContext(ctx))
	})
}

var readyBody = []byte(`{"status":"ok"}` + "\n")

// Ready answers the host's readiness probe and periodic health ping on "/"
// (mount it at "/{$}", so it is not the mux's catch-all). The host polls
// every 25 ms at startup and times the ping, so it touches nothing.
func Ready() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(readyBody)
	})
}
