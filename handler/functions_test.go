package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

type binding struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	Direction  string   `json:"direction"`
	Schedule   string   `json:"schedule"`
	UseMonitor *bool    `json:"useMonitor"`
	AuthLevel  string   `json:"authLevel"`
	Methods    []string `json:"methods"`
	Route      string   `json:"route"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The function folders, host.json and the routes the binary serves must
// agree, or the host calls paths nobody answers.
func TestFunctionFilesMatchTheBinary(t *testing.T) {
	var sweepFn, onboardFn struct{ Bindings []binding }
	readJSON(t, filepath.Join("..", sweepFunction, "function.json"), &sweepFn)
	readJSON(t, filepath.Join("..", onboardFunction, "function.json"), &onboardFn)

	if len(sweepFn.Bindings) != 1 {
		t.Fatalf("TenantSweep bindings = %+v", sweepFn.Bindings)
	}
	tb := sweepFn.Bindings[0]
	if tb.Type != "timerTrigger" || tb.Name != timerBinding || tb.Schedule != "%TenantSweepSchedule%" || tb.UseMonitor == nil || !*tb.UseMonitor {
		t.Errorf("TenantSweep timer binding = %+v", tb)
	}

	// Forwarding applies only to exactly one httpTrigger in and one http out.
	var in, out []binding
	for _, b := range onboardFn.Bindings {
		if b.Direction == "in" {
			in = append(in, b)
		} else {
			out = append(out, b)
		}
	}
	if len(in) != 1 || in[0].Type != "httpTrigger" || len(out) != 1 || out[0].Type != "http" {
		t.Fatalf("OnboardTenant must have one httpTrigger in and one http out: %+v", onboardFn.Bindings)
	}
	h := in[0]
	if h.AuthLevel != "function" || h.Route != "tenants/{tenantId?}" || !slices.Equal(h.Methods, []string{"get", "post", "delete"}) {
		t.Errorf("OnboardTenant trigger = %+v", h)
	}

	var host struct {
		Version         string
		FunctionTimeout string
		ExtensionBundle struct{ ID, Version string }
		CustomHandler   struct {
			Description struct {
				DefaultExecutablePath string
			}
			EnableForwardingHttpRequest bool
		}
	}
	readJSON(t, filepath.Join("..", "host.json"), &host)
	if host.Version != "2.0" || host.ExtensionBundle.Version != "[4.*, 5.0.0)" || !host.CustomHandler.EnableForwardingHttpRequest {
		t.Errorf("host.json = %+v", host)
	}
	if host.CustomHandler.Description.DefaultExecutablePath != "bin/handler" {
		t.Errorf("host.json runs %q, make build produces bin/handler", host.CustomHandler.Description.DefaultExecutablePath)
	}
	mk, _ := os.ReadFile(filepath.Join("..", "Makefile"))
	if !strings.Contains(string(mk), "BIN       := bin/handler") {
		t.Error("Makefile does not build bin/handler")
	}
	ignore, _ := os.ReadFile(filepath.Join("..", ".funcignore"))
	for _, line := range strings.Split(string(ignore), "\n") {
		line = strings.TrimSpace(line)
		if line == "/bin/" || line == "bin" || line == "handler" || line == "/host.json" || line == "/"+sweepFunction+"/" {
			t.Errorf(".funcignore drops %q, which the deployment needs", line)
		}
	}
	if !strings.Contains(string(ignore), "/local.settings.json\n") {
		t.Error(".funcignore must keep local.settings.json out of the package")
	}
}

// Only "/" is the readiness probe; any other path the host does not call
// answers a JSON 404.
func TestRoutesReadyAndNotFound(t *testing.T) {
	h := routes(nil, zerolog.Nop())
	for _, tt := range []struct {
		method, path string
		wantStatus   int
	}{
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodHead, "/", http.StatusOK},
		// Issue 10: GET / answers GET and HEAD only.
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodPost, "/" + sweepFunction + "/", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		var body struct {
			Status string
			Error  struct{ Code string }
		}
		if rec.Code != tt.wantStatus || rec.Header().Get("Content-Type") != "application/json" || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			t.Errorf("%s %s: %d %q %s, want %d JSON", tt.method, tt.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body, tt.wantStatus)
			continue
		}
		if tt.wantStatus == http.StatusOK && body.Status != "ok" || tt.wantStatus == http.StatusNotFound && body.Error.Code != "not_found" {
			t.Errorf("%s %s: body %s", tt.method, tt.path, rec.Body)
		}
	}
}
