package funchost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/runid"
)

// timerCall records what fn saw.
type timerCall struct {
	mu    sync.Mutex
	calls int
	timer TimerInfo
	ctx   context.Context
}

func (c *timerCall) fn(res Result, err error) TimerFunc {
	return func(ctx context.Context, timer TimerInfo) (Result, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.calls++
		c.timer, c.ctx = timer, ctx
		return res, err
	}
}

func TestTimerPayloads(t *testing.T) {
	tests := []struct {
		file    string
		pastDue bool
	}{
		{file: "timer_capture.json"},
		{file: "timer_steady.json"},
		{file: "timer_null_status.json"},
		{file: "timer_past_due.json", pastDue: true},
		{file: "timer_fractions.json"},
		{file: "timer_retry.json"},
		// host issue #7391: malformed timestamps do not fail the run
		{file: "timer_bad_timestamp.json", pastDue: true},
		{file: "timer_double_encoded_metadata.json"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			log, logs := newLogger()
			var c timerCall
			h := Timer("CleanupTimer", "myTimer", log, c.fn(Result{}, nil))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, hostRequest(http.MethodPost, "/CleanupTimer", readTestdata(t, tt.file), "3f1c9e2a-6b7d-4c1e-9a55-0d2f6c7b8e91"))

			assertEnvelopeOK(t, rec, nil, nil)
			if c.calls != 1 {
				t.Fatalf("fn called %d times", c.calls)
			}
			if got := c.timer; got.IsPastDue != tt.pastDue {
				t.Errorf("IsPastDue = %v, want %v", got.IsPastDue, tt.pastDue)
			}
			if id := InvocationID(c.ctx); id != "3f1c9e2a-6b7d-4c1e-9a55-0d2f6c7b8e91" {
				t.Errorf("InvocationID(ctx) = %q", id)
			}
			if lines := logs.Lines(t); len(lines) != 0 {
				t.Errorf("unexpected log lines on success: %v", lines)
			}
		})
	}
}

// TestTimerScheduleStatusIsIgnored: whatever the host puts in Schedule and
// ScheduleStatus, the run goes ahead.
func TestTimerScheduleStatusIsIgnored(t *testing.T) {
	for _, status := range []string{
		`{"Last":"11/30/2024 2:40:00 PM","Next":"yesterday","LastUpdated":1732978000}`,
		`"not an object"`,
		`[]`,
		`42`,
	} {
		t.Run(status, func(t *testing.T) {
			body := `{"Data":{"myTimer":{"Schedule":"odd","ScheduleStatus":` + status + `,"IsPastDue":true}},"Metadata":{}}`
			log, _ := newLogger()
			var c timerCall
			rec := httptest.NewRecorder()
			Timer("CleanupTimer", "myTimer", log, c.fn(Result{}, nil)).ServeHTTP(rec, hostRequest(http.MethodPost, "/CleanupTimer", body, ""))
			assertEnvelopeOK(t, rec, nil, nil)
			if c.calls != 1 || !c.timer.IsPastDue {
				t.Errorf("calls = %d, timer = %+v", c.calls, c.timer)
			}
		})
	}
}

// assertEnvelopeOK checks the reply the host needs: 200, application/json and
// a JSON object with non-null Outputs and Logs.
func assertEnvelopeOK(t *testing.T, rec *httptest.ResponseRecorder, wantLogs []string, wantReturn any) map[string]json.RawMessage {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body == nil {
		t.Fatalf("body %q is not a JSON object: %v", rec.Body, err)
	}
	var out struct {
		Outputs     map[string]any
		Logs        []string
		ReturnValue any
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if string(body["Outputs"]) == "null" || out.Outputs == nil {
		t.Errorf("Outputs = %s, want an object", body["Outputs"])
	}
	if string(body["Logs"]) == "null" || out.Logs == nil {
		t.Errorf("Logs = %s, want an array", body["Logs"])
	}
	if len(out.Logs) != len(wantLogs) || strings.Join(out.Logs, "\n") != strings.Join(wantLogs, "\n") {
		t.Errorf("Logs = %q, want %q", out.Logs, wantLogs)
	}
	if fmt.Sprint(out.ReturnValue) != fmt.Sprint(wantReturn) {
		t.Errorf("ReturnValue = %v, want %v", out.ReturnValue, wantReturn)
	}
	if _, ok := body["ReturnValue"]; !ok {
		t.Error("ReturnValue key missing")
	}
	return body
}

func TestTimerResult(t *testing.T) {
	log, _ := newLogger()
	var c timerCall
	h := Timer("CleanupTimer", "myTimer", log, c.fn(Result{Logs: []string{"swept 3 tenants", "{braces} ok"}, ReturnValue: map[string]int{"swept": 3}}, nil))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, hostRequest(http.MethodPost, "/CleanupTimer", readTestdata(t, "timer_steady.json"), ""))
	body := assertEnvelopeOK(t, rec, []string{"swept 3 tenants", "{braces} ok"}, map[string]any{"swept": 3})
	if string(body["Outputs"]) != "{}" {
		t.Errorf("Outputs = %s, want {}", body["Outputs"])
	}
}

func TestTimerBadRequests(t *testing.T) {
	big := `{"Data":{"myTimer":{}},"Metadata":{"pad":"` + strings.Repeat("x", maxBody) + `"}}`
	tests := []struct {
		name       string
		method     string
		body       string
		wantStatus int
		wantCode   string
	}{
		{name: "GET", method: http.MethodGet, body: "", wantStatus: http.StatusMethodNotAllowed, wantCode: "method_not_allowed"},
		{name: "PUT", method: http.MethodPut, body: readTestdata(t, "timer_steady.json"), wantStatus: http.StatusMethodNotAllowed, wantCode: "method_not_allowed"},
		{name: "empty body", method: http.MethodPost, body: "", wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "not JSON", method: http.MethodPost, body: "Data=1", wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "truncated JSON", method: http.MethodPost, body: `{"Data":{"myTimer":{`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "top-level array", method: http.MethodPost, body: `[]`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "top-level null", method: http.MethodPost, body: `null`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "no Data", method: http.MethodPost, body: `{"Metadata":{}}`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "missing binding", method: http.MethodPost, body: `{"Data":{"otherTimer":{"IsPastDue":false}}}`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "binding case differs", method: http.MethodPost, body: `{"Data":{"MyTimer":{"IsPastDue":false}}}`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "binding null", method: http.MethodPost, body: `{"Data":{"myTimer":null}}`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "binding string", method: http.MethodPost, body: `{"Data":{"myTimer":"\"tick\""}}`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "binding array", method: http.MethodPost, body: `{"Data":{"myTimer":[]}}`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "binding wrong field type", method: http.MethodPost, body: `{"Data":{"myTimer":{"IsPastDue":"yes"}}}`, wantStatus: http.StatusBadRequest, wantCode: "bad_request"},
		{name: "over 1 MiB", method: http.MethodPost, body: big, wantStatus: http.StatusRequestEntityTooLarge, wantCode: "too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := newLogger()
			var c timerCall
			rec := httptest.NewRecorder()
			Timer("CleanupTimer", "myTimer", log, c.fn(Result{}, nil)).ServeHTTP(rec, hostRequest(tt.method, "/CleanupTimer", tt.body, "inv-bad"))
			if c.calls != 0 {
				t.Errorf("fn called %d times", c.calls)
			}
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			code, msg := errorBody(t, rec)
			if code != tt.wantCode || msg == "" {
				t.Errorf("error = %q/%q, want code %q", code, msg, tt.wantCode)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q", rec.Header().Get("Allow"))
			}
			lines := logs.Lines(t)
			if len(lines) != 1 || lines[0]["level"] != "error" || lines[0]["invocationId"] != "inv-bad" || lines[0]["function"] != "CleanupTimer" {
				t.Errorf("want one error line for inv-bad, got %v", lines)
			}
		})
	}
}

func TestTimerFnError(t *testing.T) {
	log, logs := newLogger()
	var c timerCall
	fn := c.fn(Result{Logs: []string{"partial"}}, fmt.Errorf("list tenants: %w", errors.New("table unavailable")))
	rec := httptest.NewRecorder()
	Timer("CleanupTimer", "myTimer", log, fn).ServeHTTP(rec, hostRequest(http.MethodPost, "/CleanupTimer", readTestdata(t, "timer_steady.json"), "inv-err"))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d", rec.Code)
	}
	code, msg := errorBody(t, rec)
	if code != "internal" || strings.Contains(msg, "table") {
		t.Errorf("error = %q/%q: want code internal and no internal detail", code, msg)
	}
	lines := logs.Lines(t)
	if len(lines) != 1 {
		t.Fatalf("want 1 log line, got %v", lines)
	}
	l := lines[0]
	if l["level"] != "error" || l["error"] != "list tenants: table unavailable" || l["invocationId"] != "inv-err" {
		t.Errorf("log line = %v", l)
	}
}

func TestTimerUnencodableReturnValue(t *testing.T) {
	log, logs := newLogger()
	var c timerCall
	rec := httptest.NewRecorder()
	Timer("CleanupTimer", "myTimer", log, c.fn(Result{ReturnValue: make(chan int)}, nil)).
		ServeHTTP(rec, hostRequest(http.MethodPost, "/CleanupTimer", readTestdata(t, "timer_steady.json"), ""))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d", rec.Code)
	}
	if code, _ := errorBody(t, rec); code != "internal" {
		t.Errorf("code = %q", code)
	}
	if lines := logs.Lines(t); len(lines) != 1 || lines[0]["level"] != "error" {
		t.Errorf("log lines = %v", lines)
	}
}

// TestTimerPanic runs a real server: an unrecovered panic would be caught by
// net/http and answered with a dropped connection, not a JSON 500.
func TestTimerPanic(t *testing.T) {
	log, logs := newLogger()
	var n atomic.Int32
	fn := func(ctx context.Context, _ TimerInfo) (Result, error) {
		if n.Add(1) == 1 {
			panic(errors.New("nil tenant record"))
		}
		return Result{Logs: []string{"ok"}}, nil
	}
	srv := httptest.NewServer(Timer("CleanupTimer", "myTimer", log, fn))
	defer srv.Close()

	send := func(id string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/CleanupTimer", strings.NewReader(readTestdata(t, "timer_capture.json")))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("X-Azure-Functions-InvocationId", id)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("request %s: %v", id, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, body := send("inv-panic")
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("panic: status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(string(body), `"code":"internal"`) {
		t.Errorf("panic body = %s", body)
	}
	lines := logs.Lines(t)
	if len(lines) != 1 {
		t.Fatalf("want 1 log line, got %v", lines)
	}
	l := lines[0]
	if l["level"] != "error" || l["invocationId"] != "inv-panic" || !strings.Contains(fmt.Sprint(l["panic"]), "nil tenant record") ||
		!strings.Contains(fmt.Sprint(l["stack"]), "timer_test.go") {
		t.Errorf("panic log line = %v", l)
	}

	resp, body = send("inv-next")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"Logs":["ok"]`) {
		t.Errorf("after panic: status %d body %s", resp.StatusCode, body)
	}
}

// TestTimerConcurrentInvocations holds 50 invocations inside fn at once and
// checks that no log line or context leaks into another invocation.
func TestTimerConcurrentInvocations(t *testing.T) {
	const n = 50
	log, logs := newLogger()
	var arrived atomic.Int32
	all := make(chan struct{})
	fn := func(ctx context.Context, _ TimerInfo) (Result, error) {
		zerolog.Ctx(ctx).Info().Str("ctxId", InvocationID(ctx)).Msg("start")
		if arrived.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			return Result{}, errors.New("invocations did not run in parallel")
		}
		zerolog.Ctx(ctx).Info().Str("ctxId", InvocationID(ctx)).Msg("done")
		return Result{ReturnValue: InvocationID(ctx)}, nil
	}
	h := Timer("CleanupTimer", "myTimer", log, fn)
	payload := readTestdata(t, "timer_steady.json")

	ids := make([]string, n)
	recs := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		ids[i], recs[i] = runid.New(), httptest.NewRecorder()
		wg.Go(func() {
			h.ServeHTTP(recs[i], hostRequest(http.MethodPost, "/CleanupTimer", payload, ids[i]))
		})
	}
	wg.Wait()

	want := map[string]bool{}
	for i := range n {
		want[ids[i]] = true
		assertEnvelopeOK(t, recs[i], nil, ids[i])
	}
	perID := map[string]int{}
	for _, l := range logs.Lines(t) {
		id, _ := l["invocationId"].(string)
		if l["ctxId"] != id || l["function"] != "CleanupTimer" || !want[id] {
			t.Errorf("log line mixes invocations: %v", l)
		}
		perID[id]++
	}
	for id := range want {
		if perID[id] != 2 {
			t.Errorf("invocation %s has %d log lines, want 2", id, perID[id])
		}
	}
}
