package funchost

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestForwardedInvocationID(t *testing.T) {
	const hostID = "3f1c9e2a-6b7d-4c1e-9a55-0d2f6c7b8e91"
	tests := []struct {
		name    string
		headers map[string][]string
		want    string // "" means a generated UUID v4
	}{
		{name: "host header", headers: map[string][]string{"X-Azure-Functions-InvocationId": {hostID}}, want: hostID},
		{name: "proxy header", headers: map[string][]string{"x-ms-invocation-id": {hostID}}, want: hostID},
		{name: "host header preferred", headers: map[string][]string{"X-Azure-Functions-InvocationId": {hostID}, "x-ms-invocation-id": {"other"}}, want: hostID},
		{name: "caller value folded before host's", headers: map[string][]string{"X-Azure-Functions-InvocationId": {"spoofed, " + hostID}}, want: hostID},
		{name: "caller value repeated before host's", headers: map[string][]string{"X-Azure-Functions-InvocationId": {"spoofed", hostID}}, want: hostID},
		{name: "none", headers: nil},
		{name: "empty", headers: map[string][]string{"X-Azure-Functions-InvocationId": {""}}},
		{name: "oversized", headers: map[string][]string{"X-Azure-Functions-InvocationId": {strings.Repeat("a", 200)}}},
		{name: "characters a run id cannot hold", headers: map[string][]string{"X-Azure-Functions-InvocationId": {"run/1'x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := newLogger()
			var seenID, seenPath, seenQuery string
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seenID, seenPath, seenQuery = InvocationID(r.Context()), r.URL.Path, r.URL.RawQuery
				zerolog.Ctx(r.Context()).Info().Msg("onboarding")
				w.WriteHeader(http.StatusAccepted)
			})
			req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:41235/api/tenants/t-1/onboard?code=k&mode=full", strings.NewReader(`{"plan":"gold"}`))
			for k, vs := range tt.headers {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			rec := httptest.NewRecorder()
			Forwarded("OnboardTenant", log, next).ServeHTTP(rec, req)

			if rec.Code != http.StatusAccepted {
				t.Errorf("status = %d", rec.Code)
			}
			if seenPath != "/api/tenants/t-1/onboard" || seenQuery != "code=k&mode=full" {
				t.Errorf("next saw %q?%q", seenPath, seenQuery)
			}
			if tt.want != "" && seenID != tt.want {
				t.Errorf("InvocationID = %q, want %q", seenID, tt.want)
			}
			if tt.want == "" && !uuidV4.MatchString(seenID) {
				t.Errorf("generated InvocationID %q is not UUID v4 shaped", seenID)
			}
			lines := logs.Lines(t)
			if len(lines) != 1 || lines[0]["invocationId"] != seenID || lines[0]["function"] != "OnboardTenant" || lines[0]["message"] != "onboarding" {
				t.Errorf("log lines = %v, want one with invocationId %q", lines, seenID)
			}
		})
	}
}

func TestForwardedPanic(t *testing.T) {
	tests := []struct {
		name       string
		next       http.HandlerFunc
		wantStatus int
		wantBody   string
	}{
		{
			name:       "before writing",
			next:       func(http.ResponseWriter, *http.Request) { panic("tenant record corrupt") },
			wantStatus: http.StatusInternalServerError,
			wantBody:   `{"error":{"code":"internal","message":"internal error"}}`,
		},
		{
			name: "after writing",
			next: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusCreated)
				w.Write([]byte(`{"partial":`))
				panic("mid-response")
			},
			wantStatus: http.StatusCreated,
			wantBody:   `{"partial":`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := newLogger()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/api/tenants", nil)
			req.Header.Set("X-Azure-Functions-InvocationId", "inv-p")
			Forwarded("ListTenants", log, tt.next).ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %s, want %d %s", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
			lines := logs.Lines(t)
			if len(lines) != 1 || lines[0]["level"] != "error" || lines[0]["invocationId"] != "inv-p" || lines[0]["panic"] == nil || lines[0]["stack"] == nil {
				t.Errorf("log lines = %v", lines)
			}
		})
	}
}

func TestForwardedAbortHandler(t *testing.T) {
	log, logs := newLogger()
	h := Forwarded("ListTenants", log, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler re-raised", v)
		}
		if lines := logs.Lines(t); len(lines) != 0 {
			t.Errorf("abort was logged: %v", lines)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/tenants", nil))
}

// TestForwardedResponseController checks that wrapping the writer does not
// hide Flush from handlers that stream.
func TestForwardedResponseController(t *testing.T) {
	log, _ := newLogger()
	rec := httptest.NewRecorder()
	Forwarded("Stream", log, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
	})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/stream", nil))
	if !rec.Flushed {
		t.Error("recorder was not flushed")
	}
}
