package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

func tenantID(i int) string {
	return fmt.Sprintf("%08x-1111-4222-8333-%012x", i*2654435761%0xffffffff, i)
}

func registration(id, vault string) map[string]any {
	return map[string]any{
		"tenantId": id, "displayName": "Tenant " + id[:8], "graph": true,
		"keyVaults": []map[string]any{{"vaultUrl": cloudtest.VaultURL(vault) + "/", "secrets": []string{"db-password"}}},
	}
}

func TestHostDrivesTimerVariants(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	t.Logf("GET / answered %s after exec", p.started)

	ids := []string{tenantID(1), tenantID(2)}
	for i, id := range ids {
		fx.healthyTenant(id, fmt.Sprintf("vault%d", i))
		if code, _, body := do(t, "POST", p.base+"/api/tenants", registration(id, fmt.Sprintf("vault%d", i)), hostHeaders("inv-onboard"), nil); code != http.StatusCreated {
			t.Fatalf("onboard %s: %d %s", id, code, body)
		}
	}
	fixtures := []string{"timer_capture.json", "timer_steady.json", "timer_null_status.json",
		"timer_past_due.json", "timer_fractions.json", "timer_retry.json", "timer_double_encoded_metadata.json"}
	in := listen(t, fx, p)
	for _, f := range fixtures {
		t.Run(f, func(t *testing.T) {
			before := time.Now()
			var out struct {
				Outputs     map[string]any
				Logs        []string
				ReturnValue struct {
					Total   int  `json:"total"`
					Queued  int  `json:"queued"`
					PastDue bool `json:"pastDue"`
				}
			}
			invocation := "inv-" + strings.TrimSuffix(f, ".json")
			code, hdr, raw := do(t, "POST", p.base+"/"+sweepFunction, timerEnvelope(t, f), map[string]string{
				"Content-Type": "application/json; charset=utf-8", "X-Azure-Functions-InvocationId": invocation,
			}, &out)
			if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Fatalf("status %d, content type %q: %s", code, hdr.Get("Content-Type"), raw)
			}
			if out.Outputs == nil || len(out.Logs) != 1 || !strings.Contains(out.Logs[0], "2 tenants, 2 queued") {
				t.Fatalf("answer = %s", raw)
			}
			if out.ReturnValue.Total != 2 || out.ReturnValue.Queued != 2 || out.ReturnValue.PastDue != (f == "timer_past_due.json") {
				t.Fatalf("plan = %+v", out.ReturnValue)
			}
			// The work the timer queued is delivered to SweepWorker.
			if run, st := waitRun(t, fx, invocation, time.Minute); st.Status != "finished" || run.OK != 2 || run.PastDue != (f == "timer_past_due.json") {
				t.Fatalf("run %s: %s", st.Status, run)
			}
			for _, id := range ids {
				rec, err := fx.store.Get(context.Background(), id)
				if err != nil || rec.LastSweep == nil || rec.LastSweep.At.Before(before.Add(-time.Second)) || rec.LastSweep.Outcome != outcome.OK || rec.LastSweep.RunID != invocation {
					t.Fatalf("registry has no fresh ok lastSweep of run %s for %s: %+v, %v", invocation, id, rec.LastSweep, err)
				}
				if rec.LastSweep.Graph == nil || rec.LastSweep.Graph.UserCount != 3 || len(rec.LastSweep.KeyVault) != 1 || rec.LastSweep.KeyVault[0].Version == "" {
					t.Fatalf("lastSweep lacks Graph or Key Vault data: %+v", rec.LastSweep)
				}
			}
			if !strings.Contains(p.stdout.String(), `"invocationId":"`+invocation+`"`) {
				t.Fatalf("no log line carries invocation %s", invocation)
			}
		})
	}
	in.stop()
	<-in.done
	assertNoLeaks(t, fx, p.stdout.String()+p.stderr.String())
}

func TestHostRejectsBadEnvelopes(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	for _, body := range []string{"", "{", `{"Data":{}}`, `{"Data":{"timer":"not an object"}}`, "null"} {
		code, hdr, raw := do(t, "POST", p.base+"/"+sweepFunction, body, map[string]string{"Content-Type": "application/json"}, nil)
		var e struct {
			Error struct{ Code, Message string }
		}
		if code != http.StatusBadRequest || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
			t.Errorf("envelope %q: %d %s", body, code, raw)
		}
	}
}

func TestOnboardingAPIOverForwardedHTTP(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	id := tenantID(7)
	fx.healthyTenant(id, "contoso")

	var rec tenant.Record
	code, _, raw := do(t, "POST", p.base+"/api/tenants?code=k", registration(id, "contoso"), hostHeaders("inv-1"), &rec)
	if code != http.StatusCreated || rec.TenantID != id || rec.Verification == nil || rec.Verification.Outcome != outcome.OK {
		t.Fatalf("first POST: %d %s", code, raw)
	}
	stored, err := fx.store.Get(context.Background(), id)
	if err != nil || stored.Status != tenant.StatusActive || stored.Verification == nil || stored.Verification.Outcome != outcome.OK {
		t.Fatalf("not in Azurite as active and verified: %+v, %v", stored, err)
	}
	tokensBefore := fx.cloud.TokenRequests(id)
	if code, _, raw := do(t, "POST", p.base+"/api/tenants", registration(id, "contoso"), hostHeaders("inv-2"), &rec); code != http.StatusOK {
		t.Fatalf("second POST: %d %s", code, raw)
	}
	// Verification signs in afresh (the customer has just acted: no stored
	// token stands for their consent): Graph's token and Key Vault's.
	if got := fx.cloud.TokenRequests(id); got != tokensBefore+2 {
		t.Fatalf("re-verification made %d new token requests, want 2 (a fresh sign-in)", got-tokensBefore)
	}
	if code, _, raw := do(t, "GET", p.base+"/api/tenants/"+strings.ToUpper(id), nil, hostHeaders("inv-3"), &rec); code != http.StatusOK || rec.TenantID != id {
		t.Fatalf("GET: %d %s", code, raw)
	}
	var list struct {
		Tenants []tenant.Record
		Next    string
	}
	if code, _, raw := do(t, "GET", p.base+"/api/tenants?pageSize=10", nil, hostHeaders("inv-4"), &list); code != http.StatusOK || len(list.Tenants) != 1 {
		t.Fatalf("list: %d %s", code, raw)
	}
	if code, _, raw := do(t, "DELETE", p.base+"/api/tenants/"+id, nil, hostHeaders("inv-5"), nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, raw)
	}
	if stored, _ := fx.store.Get(context.Background(), id); stored.Status != tenant.StatusDisabled {
		t.Fatalf("DELETE did not disable: %+v", stored)
	}
	var notFound struct{ Error struct{ Code string } }
	if code, _, _ := do(t, "GET", p.base+"/api/tenants/"+tenantID(8), nil, hostHeaders("inv-6"), &notFound); code != http.StatusNotFound || notFound.Error.Code != "not_found" {
		t.Fatalf("GET missing: %d %+v", code, notFound)
	}
	if !strings.Contains(p.stdout.String(), `"invocationId":"inv-1"`) {
		t.Error("no log line carries the forwarded invocation id inv-1")
	}
	assertNoLeaks(t, fx, p.stdout.String()+p.stderr.String())
}

func TestOnboardingBadInputWritesNothing(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	id := tenantID(9)
	good := `{"tenantId":"` + id + `","graph":true}`
	huge := `{"tenantId":"` + id + `","displayName":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name, body, contentType string
		want                    int
	}{
		{"malformed JSON", `{"tenantId":`, "application/json", 400},
		{"unknown field", `{"tenantId":"` + id + `","graph":true,"plan":"gold"}`, "application/json", 400},
		{"tenant not a GUID", `{"tenantId":"contoso.onmicrosoft.com","graph":true}`, "application/json", 400},
		{"common is not a tenant", `{"tenantId":"common","graph":true}`, "application/json", 400},
		{"http vault", `{"tenantId":"` + id + `","keyVaults":[{"vaultUrl":"http://contoso.vault.azure.net/","secrets":["a"]}]}`, "application/json", 400},
		{"vault on a host the caller chose", `{"tenantId":"` + id + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net.evil.example/","secrets":["a"]}]}`, "application/json", 400},
		{"bad secret name", `{"tenantId":"` + id + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":["db_password"]}]}`, "application/json", 400},
		{"duplicate secrets", `{"tenantId":"` + id + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":["a","A"]}]}`, "application/json", 400},
		{"body over 64 KiB", huge, "application/json", 413},
		{"not JSON", good, "text/plain", 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hostHeaders("inv-bad")
			h["Content-Type"] = tt.contentType
			var e struct {
				Error struct{ Code, Message string }
			}
			code, _, raw := do(t, "POST", p.base+"/api/tenants", tt.body, h, &e)
			if code != tt.want || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("status %d, body %s; want %d with an error code and message", code, raw, tt.want)
			}
		})
	}
	if code, _, _ := do(t, "PUT", p.base+"/api/tenants/"+id, good, hostHeaders("inv-put"), nil); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", code)
	}
	page, err := fx.store.List(context.Background(), 10, "")
	if err != nil || len(page.Records) != 0 {
		t.Fatalf("bad input wrote %d records (%v)", len(page.Records), err)
	}
}

func TestConcurrentInvocations(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	const n = 24
	for i := range n {
		fx.healthyTenant(tenantID(100+i), fmt.Sprintf("cv%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n+1)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			code, _, raw := doQuiet("POST", p.base+"/api/tenants", registration(tenantID(100+i), fmt.Sprintf("cv%d", i)), hostHeaders(fmt.Sprintf("inv-c%d", i)))
			if code != http.StatusCreated {
				errs <- fmt.Errorf("tenant %d: %d %s", i, code, raw)
			}
		}()
		go func() {
			defer wg.Done()
			if code, _, _ := doQuiet("GET", p.base+"/", nil, nil); code != http.StatusOK {
				errs <- fmt.Errorf("GET / answered %d during load", code)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if code, _, raw := doQuiet("POST", p.base+"/"+sweepFunction, timerEnvelope(t, "timer_steady.json"), map[string]string{"X-Azure-Functions-InvocationId": "inv-timer"}); code != http.StatusOK {
			errs <- fmt.Errorf("timer: %d %s", code, raw)
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	page, err := fx.store.List(context.Background(), 100, "")
	if err != nil || len(page.Records) != n {
		t.Fatalf("registry has %d tenants, want %d (%v)", len(page.Records), n, err)
	}
}

// doQuiet is do for goroutines, which must not call t.Fatal: a failed
// request comes back as status 0 with the error as the body.
func doQuiet(method, url string, body any, header map[string]string) (int, http.Header, []byte) {
	code, hdr, raw, err := send(method, url, body, header)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	return code, hdr, raw
}

func TestStartupErrorsNameTheSetting(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name    string
		drop    string
		extra   []string
		setting string
	}{
		{"no app id", "APP_CLIENT_ID=", nil, "APP_CLIENT_ID"},
		{"no port", "", []string{"FUNCTIONS_CUSTOMHANDLER_PORT="}, "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{"bad concurrency", "", []string{"SWEEP_CONCURRENCY=many", "FUNCTIONS_CUSTOMHANDLER_PORT=1"}, "SWEEP_CONCURRENCY"},
		{"two credentials", "", []string{"APP_CLIENT_CERTIFICATE_PATH=/nope.pem", "FUNCTIONS_CUSTOMHANDLER_PORT=1"}, "APP_CLIENT_CERTIFICATE_PATH"},
		{"a task the binary lacks", "", []string{"SWEEP_TASKS=access,inventory", "FUNCTIONS_CUSTOMHANDLER_PORT=1"}, "SWEEP_TASKS"},
		{"a task twice", "", []string{"SWEEP_TASKS=access,access", "FUNCTIONS_CUSTOMHANDLER_PORT=1"}, "SWEEP_TASKS"},
		{"no task", "", []string{"SWEEP_TASKS=,", "FUNCTIONS_CUSTOMHANDLER_PORT=1"}, "SWEEP_TASKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env []string
			for _, kv := range fx.env(tt.extra...) {
				if tt.drop == "" || !strings.HasPrefix(kv, tt.drop) {
					env = append(env, kv)
				}
			}
			cmd := exec.Command(binary(t))
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit = %v, want code 2; output %q", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.setting) || strings.Contains(string(out), testAppSecret) {
				t.Fatalf("output = %q, want one line naming %s", out, tt.setting)
			}
		})
	}
}

// assertNoLeaks fails when a secret value or a token shows up in output.
func assertNoLeaks(t *testing.T, fx *fixture, output string) {
	t.Helper()
	if output == "" {
		t.Fatal("no output to scan")
	}
	secrets := append([]string{testAppSecret, "customer-secret-value-", cloudtest.TokenMarker}, fx.cloud.IssuedTokens()...)
	for _, s := range secrets {
		if s != "" && strings.Contains(output, s) {
			t.Errorf("output leaks %q", s[:min(len(s), 24)])
		}
	}
	page, _ := fx.store.List(context.Background(), 1000, "")
	stored, _ := json.Marshal(page.Records)
	for _, s := range secrets {
		if s != "" && strings.Contains(string(stored), s) {
			t.Errorf("registry leaks %q", s[:min(len(s), 24)])
		}
	}
}

// Without forwarding, the host posts the HTTP request as an envelope to
// /OnboardTenant and expects the response in Outputs.res.
func TestOnboardingThroughTheEnvelope(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	id := tenantID(31)
	fx.healthyTenant(id, "envelope1")
	body, _ := json.Marshal(registration(id, "envelope1"))
	envelope := map[string]any{
		"Data": map[string]any{"req": map[string]any{
			"Url":    "http://localhost:7071/api/tenants",
			"Method": "POST",
			"Query":  map[string]string{},
			"Headers": map[string][]string{
				"Content-Type":   {"application/json"},
				"Content-Length": {fmt.Sprint(len(body))},
			},
			"Params":     map[string]string{},
			"Identities": []any{},
			"Body":       string(body),
		}},
		"Metadata": map[string]any{"sys": map[string]string{"MethodName": onboardFunction}},
	}
	var out struct {
		Outputs struct {
			Res struct {
				StatusCode int               `json:"statusCode"`
				Body       string            `json:"body"`
				Headers    map[string]string `json:"headers"`
			} `json:"res"`
		}
	}
	code, _, raw := do(t, "POST", p.base+"/"+onboardFunction, envelope, map[string]string{
		"Content-Type": "application/json; charset=utf-8", "X-Azure-Functions-InvocationId": "inv-envelope"}, &out)
	if code != http.StatusOK || out.Outputs.Res.StatusCode != http.StatusCreated {
		t.Fatalf("envelope answer %d: %s", code, raw)
	}
	var rec tenant.Record
	if err := json.Unmarshal([]byte(out.Outputs.Res.Body), &rec); err != nil || rec.TenantID != id || rec.Verification == nil {
		t.Fatalf("Outputs.res.body = %q (%v)", out.Outputs.Res.Body, err)
	}
	if stored, err := fx.store.Get(context.Background(), id); err != nil || stored.Status != tenant.StatusActive {
		t.Fatalf("not stored: %+v, %v", stored, err)
	}
}
