package funchost

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"
)

func TestDecodeString(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    string
		wantErr bool
	}{
		{name: "single encoded", raw: `"abc"`, want: "abc"},
		{name: "double encoded", raw: `"\"abc\""`, want: "abc"},
		{name: "double encoded empty", raw: `"\"\""`, want: ""},
		{name: "empty", raw: `""`, want: ""},
		{name: "number as string", raw: `"1"`, want: "1"},
		{name: "double encoded with escaped quote", raw: `"\"a\\\"b\""`, want: `a"b`},
		{name: "double encoded JSON message", raw: `"\"{\\\"orderId\\\":\\\"A1\\\",\\\"qty\\\":2}\""`, want: `{"orderId":"A1","qty":2}`},
		{name: "quoted content decoded exactly twice", raw: `"\"\\\"hi\\\"\""`, want: `"hi"`},
		{name: "quote-framed but not a literal", raw: `"\"a\"b\""`, want: `"a"b"`},
		{name: "lone quote", raw: `"\""`, want: `"`},
		{name: "unicode", raw: `"\"h\u00e9\""`, want: "hé"},
		{name: "null", raw: `null`, want: ""},
		{name: "number", raw: `4`, wantErr: true},
		{name: "object", raw: `{}`, wantErr: true},
		{name: "not JSON", raw: `abc`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeString(json.RawMessage(tt.raw))
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodeString(%s) error = %v, wantErr %v", tt.raw, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("DecodeString(%s) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestInvokeResponseMarshal(t *testing.T) {
	tests := []struct {
		name string
		in   InvokeResponse
		want string
	}{
		{name: "zero", in: InvokeResponse{}, want: `{"Outputs":{},"Logs":[],"ReturnValue":null}`},
		{
			name: "filled",
			in:   InvokeResponse{Outputs: map[string]any{"q": []string{"m"}}, Logs: []string{"a"}, ReturnValue: "r"},
			want: `{"Outputs":{"q":["m"]},"Logs":["a"],"ReturnValue":"r"}`,
		},
		{name: "empty logs", in: InvokeResponse{Logs: []string{}}, want: `{"Outputs":{},"Logs":[],"ReturnValue":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			got, err = json.Marshal(&tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("via pointer got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, http.StatusConflict, "already_onboarded", `tenant "t-1" exists`)
	if rec.Code != http.StatusConflict {
		t.Errorf("status = %d", rec.Code)
	}
	code, msg := errorBody(t, rec)
	if code != "already_onboarded" || msg != `tenant "t-1" exists` {
		t.Errorf("got code %q message %q", code, msg)
	}
}

func TestReady(t *testing.T) {
	tests := []struct {
		method, path string
		wantStatus   int
	}{
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodHead, "/", http.StatusOK},
		{http.MethodPost, "/", http.StatusOK},
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodPost, "/CleanupTimer/", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Ready().ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.wantStatus == http.StatusOK {
				var body struct{ Status string }
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Status != "ok" {
					t.Errorf("body %q: %v", rec.Body, err)
				}
			} else if code, _ := errorBody(t, rec); code != "not_found" {
				t.Errorf("code = %q", code)
			}
		})
	}
}

func TestInvocationContext(t *testing.T) {
	if got := InvocationID(context.Background()); got != "" {
		t.Errorf("InvocationID(background) = %q", got)
	}
	log, logs := newLogger()
	ctx, l := Begin(context.Background(), log, "CleanupTimer", "abc")
	if got := InvocationID(ctx); got != "abc" {
		t.Errorf("InvocationID = %q", got)
	}
	l.Info().Msg("from the logger")
	zerolog.Ctx(ctx).Info().Msg("from the context")
	lines := logs.lines(t)
	if len(lines) != 2 {
		t.Fatalf("log lines = %v", lines)
	}
	for _, line := range lines {
		if line["invocationId"] != "abc" || line["function"] != "CleanupTimer" {
			t.Errorf("log line = %v, want invocationId abc and function CleanupTimer", line)
		}
	}
}

// An invocation started outside the host gets a new id.
func TestBeginWithoutID(t *testing.T) {
	log, logs := newLogger()
	ctx, _ := Begin(context.Background(), log, "TenantSweep", "")
	id := InvocationID(ctx)
	if !uuidV4.MatchString(id) {
		t.Fatalf("generated InvocationID %q is not UUID v4 shaped", id)
	}
	zerolog.Ctx(ctx).Info().Msg("tick")
	if lines := logs.lines(t); len(lines) != 1 || lines[0]["invocationId"] != id || lines[0]["function"] != "TenantSweep" {
		t.Errorf("log lines = %v, want one with invocationId %q", lines, id)
	}
}

func TestNewInvocationID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newInvocationID()
		if !uuidV4.MatchString(id) {
			t.Fatalf("%q is not UUID v4 shaped", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}
