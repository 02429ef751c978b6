package funchost

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/runid"
)

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

// Our answers are plain JSON: a URL in them is copied from a terminal as it
// is, with & < > and not \u0026 \u003c \u003e (json.Marshal's HTML-safe
// form).
func TestWriteJSONIsPlain(t *testing.T) {
	rec := httptest.NewRecorder()
	link := "https://login.microsoftonline.com/t/v2.0/adminconsent?client_id=a&scope=b&state=<c>"
	WriteJSON(rec, http.StatusOK, map[string]string{"consentUrl": link})
	if want := `{"consentUrl":"` + link + `"}`; rec.Body.String() != want {
		t.Errorf("body = %s, want %s", rec.Body, want)
	}
	h := rec.Header()
	if h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers = %v", h)
	}

	rec = httptest.NewRecorder()
	WriteJSON(rec, http.StatusOK, map[string]any{"c": make(chan int)})
	if code, _ := errorBody(t, rec); rec.Code != http.StatusInternalServerError || code != "internal" {
		t.Errorf("unmarshallable: %d %s", rec.Code, rec.Body)
	}
}

func TestReady(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Ready().ServeHTTP(rec, httptest.NewRequest(method, "/", nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want %d", rec.Code, http.StatusOK)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var body struct{ Status string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Status != "ok" {
				t.Errorf("body %q: %v", rec.Body, err)
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
	lines := logs.Lines(t)
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
	if lines := logs.Lines(t); len(lines) != 1 || lines[0]["invocationId"] != id || lines[0]["function"] != "TenantSweep" {
		t.Errorf("log lines = %v, want one with invocationId %q", lines, id)
	}
}

func TestNewInvocationID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := runid.New()
		if !uuidV4.MatchString(id) {
			t.Fatalf("%q is not UUID v4 shaped", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}
