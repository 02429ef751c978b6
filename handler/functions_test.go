package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/funchost/local"
	"github.com/tenantsweep/tenantsweep/internal/onboard"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tenant/tenanttest"
)

type binding struct {
	QueueName  string   `json:"queueName"`
	Connection string   `json:"connection"`
	DataType   string   `json:"dataType"`
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
	var sweepFn, onboardFn, consentFn struct{ Bindings []binding }
	readJSON(t, filepath.Join("..", sweepFunction, "function.json"), &sweepFn)
	readJSON(t, filepath.Join("..", onboardFunction, "function.json"), &onboardFn)
	readJSON(t, filepath.Join("..", consentFunction, "function.json"), &consentFn)

	if len(sweepFn.Bindings) != 1 {
		t.Fatalf("TenantSweep bindings = %+v", sweepFn.Bindings)
	}
	tb := sweepFn.Bindings[0]
	if tb.Type != "timerTrigger" || tb.Name != timerBinding || tb.Schedule != "%TenantSweepSchedule%" || tb.UseMonitor == nil || !*tb.UseMonitor {
		t.Errorf("TenantSweep timer binding = %+v", tb)
	}

	h := httpTrigger(t, onboardFunction, onboardFn.Bindings)
	if h.AuthLevel != "function" || h.Route != "tenants/{tenantId?}" || !slices.Equal(h.Methods, []string{"get", "post", "delete"}) {
		t.Errorf("OnboardTenant trigger = %+v", h)
	}
	// Entra ID's redirect carries no function key: the callback is anonymous,
	// guarded by its signed state, on the path the binary serves it at.
	c := httpTrigger(t, consentFunction, consentFn.Bindings)
	if c.AuthLevel != "anonymous" || "/api/"+c.Route != onboard.ConsentCallbackPath || !slices.Equal(c.Methods, []string{"get"}) {
		t.Errorf("ConsentCallback trigger = %+v, want anonymous GET on %s", c, onboard.ConsentCallbackPath)
	}

	// SweepWorker reads the queue TenantSweep fills, through the connection
	// the app enqueues with, as the text (no dataType) funchost.Queue decodes.
	var workerFn struct{ Bindings []binding }
	readJSON(t, filepath.Join("..", workerFunction, "function.json"), &workerFn)
	if len(workerFn.Bindings) != 1 {
		t.Fatalf("SweepWorker bindings = %+v", workerFn.Bindings)
	}
	if w := workerFn.Bindings[0]; w.Type != "queueTrigger" || w.Direction != "in" || w.Name != workBinding ||
		w.QueueName != "%SWEEP_QUEUE%" || w.Connection != "AzureWebJobsStorage" || w.DataType != "" {
		t.Errorf("SweepWorker trigger = %+v", w)
	}

	var host struct {
		Version         string
		FunctionTimeout string
		Extensions      struct {
			Queues struct {
				BatchSize, NewBatchThreshold, MaxDequeueCount int
				VisibilityTimeout, MaxPollingInterval         string
				MessageEncoding                               string
			}
		}
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
	// The planner enqueues base64 (workqueue.Enqueue), and local mode's
	// listener reads these values as the host does.
	if q := host.Extensions.Queues; q.MessageEncoding != "base64" || q.BatchSize < 1 || q.BatchSize > 32 || q.MaxDequeueCount < 1 {
		t.Errorf("host.json extensions.queues = %+v", q)
	}
	if opts, err := local.QueueOptions(".."); err != nil || opts.BatchSize != host.Extensions.Queues.BatchSize || opts.MaxDequeueCount != int64(host.Extensions.Queues.MaxDequeueCount) {
		t.Errorf("local.QueueOptions = %+v, %v; want host.json's", opts, err)
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
		if line == "/bin/" || line == "bin" || line == "handler" || line == "/host.json" ||
			line == "/"+sweepFunction+"/" || line == "/"+onboardFunction+"/" || line == "/"+consentFunction+"/" || line == "/"+workerFunction+"/" {
			t.Errorf(".funcignore drops %q, which the deployment needs", line)
		}
	}
	if !strings.Contains(string(ignore), "/local.settings.json\n") {
		t.Error(".funcignore must keep local.settings.json out of the package")
	}
}

// httpTrigger returns the trigger of an HTTP function, which must have exactly
// one httpTrigger in and one http out, or the host stops forwarding it.
func httpTrigger(t *testing.T, function string, bindings []binding) binding {
	t.Helper()
	var in, out []binding
	for _, b := range bindings {
		if b.Direction == "in" {
			in = append(in, b)
		} else {
			out = append(out, b)
		}
	}
	if len(in) != 1 || in[0].Type != "httpTrigger" || len(out) != 1 || out[0].Type != "http" {
		t.Fatalf("%s must have one httpTrigger in and one http out: %+v", function, bindings)
	}
	return in[0]
}

// Only "/" is the readiness probe; any other path the host does not call
// answers a JSON 404.
func TestRoutesReadyAndNotFound(t *testing.T) {
	h := routes(t.Context(), nil, zerolog.Nop())
	for _, tt := range []struct {
		method, path string
		wantStatus   int
	}{
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodPost, "/", http.StatusMethodNotAllowed}, // the host probes with GET only
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

// The host matches the HTTP functions' routes in any case, forwarded or as
// an envelope: such requests reach the API's routes, and nothing else does.
func TestRoutesMatchInAnyCase(t *testing.T) {
	id := "abcdef01-0000-4000-8000-00000000000a"
	api := onboard.New(onboard.Config{Store: tenanttest.New(tenant.Record{TenantID: id, Status: tenant.StatusActive}), Verifier: noVerifier{}})
	l := &lazyApp{ready: make(chan struct{}), app: &app{api: api}, wait: time.Second, apiWait: time.Second}
	close(l.ready)
	h := routes(t.Context(), l, zerolog.Nop())
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/API/Tenants", http.StatusOK},
		{"/api/TENANTS/" + strings.ToUpper(id), http.StatusOK},
		{"/Api/Consent/Callback?error=access_denied", http.StatusBadRequest}, // the callback's own answer
		{"/api/tenantsX", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if rec.Code != tt.want {
			t.Errorf("GET %s: %d %s, want %d", tt.path, rec.Code, rec.Body, tt.want)
		}
	}
	for _, fn := range []string{onboardFunction, consentFunction} {
		env := `{"Data":{"req":{"Url":"http://localhost:7071/API/Tenants/` + strings.ToUpper(id) + `","Method":"GET","Headers":{}}},"Metadata":{}}`
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/"+fn, strings.NewReader(env)))
		var out struct {
			Outputs struct {
				Res struct{ StatusCode int } `json:"res"`
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Outputs.Res.StatusCode != http.StatusOK {
			t.Errorf("%s envelope for /API/Tenants/<ID>: %d %s", fn, rec.Code, rec.Body)
		}
	}
}

type noVerifier struct{}

func (noVerifier) Verify(context.Context, tenant.Record) tenant.Verification {
	return tenant.Verification{Outcome: outcome.OK}
}

// The docs name every function the app deploys (a folder with a
// function.json), where an operator checks that they started.
func TestDocsNameEveryFunction(t *testing.T) {
	folders, err := filepath.Glob(filepath.Join("..", "*", "function.json"))
	if err != nil || len(folders) == 0 {
		t.Fatalf("function folders: %v, %v", folders, err)
	}
	ops, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(ops), "az functionapp function list")
	if i < 0 {
		t.Fatal("docs/operations.md no longer says how to list the functions")
	}
	check := string(ops[i:min(len(ops), i+400)])
	for _, f := range folders {
		name := filepath.Base(filepath.Dir(f))
		if !strings.Contains(check, "`"+name+"`") {
			t.Errorf("docs/operations.md's function check does not name %s", name)
		}
		for _, fn := range []string{sweepFunction, workerFunction, onboardFunction, consentFunction} {
			if fn == name {
				name = ""
			}
		}
		if name != "" {
			t.Errorf("function folder %s is not one the binary serves", filepath.Dir(f))
		}
	}
}
