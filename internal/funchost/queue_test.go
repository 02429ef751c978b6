package funchost

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// queueCall records what fn saw.
type queueCall struct {
	mu    sync.Mutex
	calls int
	msg   QueueMessage
	ctx   context.Context
}

func (c *queueCall) fn(res Result, err error) QueueFunc {
	return func(ctx context.Context, msg QueueMessage) (Result, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.calls++
		c.msg, c.ctx = msg, ctx
		return res, err
	}
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

const workText = `{"v":1,"run":"r-20241130T144500Z-1f3a","seq":12,"tenants":["0a1b2c3d-0000-4000-8000-00000000abcd","0a1b2c3d-0000-4000-8000-00000000abce"]}`

func TestQueuePayloads(t *testing.T) {
	host := QueueMessage{
		ID: "800ae4b3-bdd2-4c08-badd-f08e5a34b865", PopReceipt: "AgAAAAMAAAAAAAAAAgtnj8x+1QE=", DequeueCount: 1,
		InsertionTime: ts("2024-11-30T14:45:00Z"), ExpirationTime: ts("2024-12-07T14:45:00Z"), NextVisibleTime: ts("2024-11-30T14:55:01Z"),
	}
	with := func(m QueueMessage, body string, f func(*QueueMessage)) QueueMessage {
		m.Body = []byte(body)
		if f != nil {
			f(&m)
		}
		return m
	}
	tests := []struct {
		file string
		want QueueMessage
	}{
		{"queue_host.json", with(host, workText, nil)},
		{"queue_binary.json", with(host, workText, nil)},
		{"queue_plain_text.json", with(host, "hello world", func(m *QueueMessage) { m.DequeueCount = 3 })},
		{"queue_docs_sample.json", QueueMessage{
			ID: "800ae4b3-bdd2-4c08-badd-f08e5a34b865", PopReceipt: "AgAAAAMAAAAAAAAAAgtnj8x+1QE=", DequeueCount: 1,
			InsertionTime: ts("2019-10-09T17:58:31Z"), ExpirationTime: ts("2019-10-16T17:58:31Z"), NextVisibleTime: ts("2019-10-09T18:08:32Z"),
			Body: []byte(`{ message: "Message sent" }`),
		}},
		// Properties of the message replace the queue's metadata: the
		// invocation still runs, with the body intact and unreadable
		// fields zero.
		{"queue_shadowed.json", with(host, `{"id":"spoofed-id","DequeueCount":{"n":9},"PopReceipt":7,"sys":"not sys","InsertionTime":"soon","NextVisibleTime":true,"tenants":["t1"]}`, func(m *QueueMessage) {
			m.ID, m.PopReceipt, m.DequeueCount = "spoofed-id", "7", 0
			m.InsertionTime, m.NextVisibleTime = time.Time{}, time.Time{}
		})},
		{"queue_string_literal.json", with(host, `"quoted"`, nil)},
		{"queue_lenient_metadata.json", with(host, workText, func(m *QueueMessage) {
			m.DequeueCount = 2
			m.InsertionTime = ts("2024-11-30T14:45:00Z")
			m.ExpirationTime = ts("2024-12-07T14:45:00.1234567Z")
			m.NextVisibleTime = time.Time{}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			log, logs := newLogger()
			var c queueCall
			h := Queue("SweepWorker", "work", log, c.fn(Result{}, nil))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, hostRequest(http.MethodPost, "/SweepWorker", readTestdata(t, tt.file), "3f1c9e2a-6b7d-4c1e-9a55-0d2f6c7b8e91"))

			assertEnvelopeOK(t, rec, nil, nil)
			if c.calls != 1 {
				t.Fatalf("fn called %d times", c.calls)
			}
			got := c.msg
			if string(got.Body) != string(tt.want.Body) {
				t.Errorf("Body = %q\nwant   %q", got.Body, tt.want.Body)
			}
			got.Body, tt.want.Body = nil, nil
			if !equalMessages(got, tt.want) {
				t.Errorf("message = %+v\nwant      %+v", got, tt.want)
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

func equalMessages(a, b QueueMessage) bool {
	return a.ID == b.ID && a.PopReceipt == b.PopReceipt && a.DequeueCount == b.DequeueCount &&
		a.InsertionTime.Equal(b.InsertionTime) && a.ExpirationTime.Equal(b.ExpirationTime) && a.NextVisibleTime.Equal(b.NextVisibleTime)
}

func TestQueueResultAndContextLogger(t *testing.T) {
	log, logs := newLogger()
	h := Queue("SweepWorker", "work", log, func(ctx context.Context, msg QueueMessage) (Result, error) {
		zerolog.Ctx(ctx).Info().Msg("working")
		return Result{Logs: []string{"swept 2 tenants"}}, nil
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, hostRequest(http.MethodPost, "/SweepWorker", readTestdata(t, "queue_host.json"), "3f1c9e2a-6b7d-4c1e-9a55-0d2f6c7b8e91"))
	body := assertEnvelopeOK(t, rec, []string{"swept 2 tenants"}, nil)
	if string(body["Outputs"]) != "{}" {
		t.Errorf("Outputs = %s", body["Outputs"])
	}
	lines := logs.Lines(t)
	if len(lines) != 1 {
		t.Fatalf("log lines %v", lines)
	}
	for k, want := range map[string]any{"invocationId": "3f1c9e2a-6b7d-4c1e-9a55-0d2f6c7b8e91", "function": "SweepWorker", "messageId": "800ae4b3-bdd2-4c08-badd-f08e5a34b865", "dequeueCount": float64(1)} {
		if lines[0][k] != want {
			t.Errorf("log %s = %v, want %v", k, lines[0][k], want)
		}
	}
}

// TestQueueFailures: whatever goes wrong, the host gets a JSON answer; a
// failure is non-2xx so that the host redelivers the message.
func TestQueueFailures(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		file     string // testdata, or else body
		body     string
		fn       QueueFunc
		status   int
		code     string
		fnCalled bool
	}{
		{name: "fn error", file: "queue_host.json", fn: func(context.Context, QueueMessage) (Result, error) {
			return Result{}, errors.New("registry unavailable: secret-detail")
		}, status: 500, code: "internal", fnCalled: true},
		{name: "fn panic", file: "queue_host.json", fn: func(context.Context, QueueMessage) (Result, error) {
			panic("boom")
		}, status: 500, code: "internal", fnCalled: true},
		{name: "missing binding", body: `{"Data":{"other":"\"x\""},"Metadata":{}}`, status: 400, code: "bad_request"},
		{name: "null binding", body: `{"Data":{"work":null},"Metadata":{}}`, status: 400, code: "bad_request"},
		{name: "number binding", body: `{"Data":{"work":42},"Metadata":{}}`, status: 400, code: "bad_request"},
		{name: "not JSON", body: `{"Data":`, status: 400, code: "bad_request"},
		{name: "GET", method: http.MethodGet, status: 405, code: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := newLogger()
			called := false
			fn := func(ctx context.Context, m QueueMessage) (Result, error) {
				called = true
				return tt.fn(ctx, m)
			}
			body := tt.body
			if tt.file != "" {
				body = readTestdata(t, tt.file)
			}
			rec := httptest.NewRecorder()
			Queue("SweepWorker", "work", log, fn).ServeHTTP(rec, hostRequest(cmpOr(tt.method, http.MethodPost), "/SweepWorker", body, ""))
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.status, rec.Body)
			}
			code, msg := errorBody(t, rec)
			if code != tt.code {
				t.Errorf("code = %q, want %q", code, tt.code)
			}
			if strings.Contains(msg, "secret-detail") {
				t.Errorf("internal text reaches the host: %q", msg)
			}
			if called != tt.fnCalled {
				t.Errorf("fn called = %v", called)
			}
			if len(logs.Lines(t)) == 0 {
				t.Error("a failure must be logged (the host drops Logs of a failed invocation)")
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
