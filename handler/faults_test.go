package main

// Issue 10: storage faults, hostile input and bad settings, each against the
// built binary and real Azurite (through tablestoretest.Proxy where storage
// must be slow or silent).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/logtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/storageconn"
	"github.com/tenantsweep/tenantsweep/internal/tablestore/tablestoretest"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// quick sends a request and gives up after limit, so that a hang fails the
// test instead of holding it.
func quick(t *testing.T, limit time.Duration, method, url string, body any) (int, string, time.Duration) {
	t.Helper()
	var rd *strings.Reader
	switch b := body.(type) {
	case nil:
		rd = strings.NewReader("")
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = strings.NewReader(string(j))
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := (&http.Client{Timeout: limit}).Do(req)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s %s: no answer within %s: %v", method, url, limit, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, b.String(), took
}

func errorCode(body string) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

type sweepAnswer struct {
	Logs        []string
	ReturnValue struct {
		Total       int `json:"total"`
		OK          int `json:"ok"`
		WriteErrors int `json:"writeErrors"`
		Unreadable  []struct {
			TenantID string `json:"tenantId"`
			Property string `json:"property"`
		} `json:"unreadable"`
	}
}

// runTimer runs a sweep through the pipeline (sweepThrough) and answers
// with its summary as the history and work results add it up; WriteErrors
// counts the tenants whose result was never recorded.
func runTimer(t *testing.T, fx *fixture, p *proc, invocation string) sweepAnswer {
	t.Helper()
	run, _ := sweepThrough(t, fx, p, invocation)
	var out sweepAnswer
	out.Logs = []string{run.String()}
	rv := &out.ReturnValue
	rv.Total, rv.OK, rv.WriteErrors = run.Total, run.OK, run.NotReached
	for _, u := range run.Unreadable {
		rv.Unreadable = append(rv.Unreadable, struct {
			TenantID string `json:"tenantId"`
			Property string `json:"property"`
		}{u.TenantID, u.Property})
	}
	return out
}

// Storage 1. Before: the sweep answered 500 "list active tenants: tenant …:
// KeyVaults: unexpected end of JSON input" with 0 of 20 swept, and GET
// /api/tenants answered 500.
func TestCorruptRowIsReportedAndEveryOtherTenantSwept(t *testing.T) {
	fx := newFixture(t)
	regs := fx.healthyTenants(7000, 20, "corrupt", true)
	fx.onboard(t, regs...)
	bad := "ab000000-0000-4000-8000-0000000000bb"
	svc, err := aztables.NewServiceClientFromConnectionString(fx.reg.Connection, nil)
	if err != nil {
		t.Fatal(err)
	}
	row, _ := json.Marshal(map[string]any{"PartitionKey": bad[:2], "RowKey": bad, "Status": "active", "DisplayName": "Cut short",
		"KeyVaults": `[{"vaultUrl":"https://corrupt0.vault.azure.net/","secr`})
	if _, err := svc.NewClient(fx.reg.Table).AddEntity(context.Background(), row, nil); err != nil {
		t.Fatal(err)
	}

	p := startHost(t, fx.env())
	out := runTimer(t, fx, p, "inv-corrupt")
	rv := out.ReturnValue
	if rv.OK != 20 || rv.Total != 21 || len(rv.Unreadable) != 1 || rv.Unreadable[0].TenantID != bad || rv.Unreadable[0].Property != "KeyVaults" {
		t.Fatalf("summary = %+v, want 20 ok of 21 and %s KeyVaults unreadable", rv, bad)
	}
	if len(out.Logs) != 1 || !strings.Contains(out.Logs[0], bad+" KeyVaults") {
		t.Fatalf("run summary does not name the row: %q", out.Logs)
	}
	if !strings.Contains(p.stdout.String()+p.stderr.String(), `"tenantId":"`+bad+`","property":"KeyVaults"`) {
		t.Fatalf("no log line names the tenant and the property")
	}
	for _, r := range regs {
		if rec, err := fx.store.Get(context.Background(), r.TenantID); err != nil || rec.LastSweep == nil || rec.LastSweep.Outcome != outcome.OK {
			t.Fatalf("%s not swept: %+v, %v", r.TenantID, rec.LastSweep, err)
		}
	}

	code, body, _ := quick(t, 10*time.Second, "GET", p.base+"/api/tenants", nil)
	var list struct {
		Tenants []struct {
			TenantID string `json:"tenantId"`
			Error    *struct{ Code, Property string }
		}
	}
	_ = json.Unmarshal([]byte(body), &list)
	marked := 0
	for _, tn := range list.Tenants {
		if tn.Error != nil {
			marked++
			if tn.TenantID != bad || tn.Error.Code != "unreadable_record" || tn.Error.Property != "KeyVaults" {
				t.Fatalf("marker on %s: %+v", tn.TenantID, tn.Error)
			}
		}
	}
	if code != http.StatusOK || len(list.Tenants) != 21 || marked != 1 {
		t.Fatalf("GET /api/tenants: %d, %d tenants, %d marked: %.300s", code, len(list.Tenants), marked, body)
	}
	if code, body, _ := quick(t, 10*time.Second, "GET", p.base+"/api/tenants/"+bad, nil); code != http.StatusOK || !strings.Contains(body, `"unreadable_record"`) {
		t.Fatalf("GET the corrupt tenant: %d %s", code, body)
	}
}

// Storage 2. Before: with storage silent, GET and POST hung past 100 s, and a
// hang during start-up was never recovered from (503 forever).
func TestSilentStorageAnswers503AndStartRecovers(t *testing.T) {
	fx := newFixture(t)
	proxy := tablestoretest.StartProxy(t)
	via := proxy.Registry(fx.reg)
	env := fx.env("TENANT_REGISTRY_CONNECTION="+via.Connection, "TENANT_REGISTRY_TIMEOUT=1s")

	proxy.Silence(true)
	p := startHost(t, env)
	code, body, took := quick(t, 10*time.Second, "GET", p.base+"/api/tenants", nil)
	if code != http.StatusServiceUnavailable || errorCode(body) != "registry_unavailable" || took > 3*time.Second {
		t.Fatalf("while starting on silent storage: %d %s after %s; want 503 registry_unavailable within the 1s deadline", code, body, took)
	}

	proxy.Silence(false)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, _ = quick(t, 10*time.Second, "GET", p.base+"/api/tenants", nil)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage is back but the API still answers %d %s", code, body)
		}
		time.Sleep(250 * time.Millisecond)
	}

	id := tenantID(7100)
	fx.healthyTenant(id, "silent0")
	if code, body, _ := quick(t, 30*time.Second, "POST", p.base+"/api/tenants", registration(id, "silent0")); code != http.StatusCreated {
		t.Fatalf("POST once storage answers: %d %s", code, body)
	}
	proxy.Silence(true)
	for _, c := range []struct{ method, path string }{{"GET", "/api/tenants/" + id}, {"GET", "/api/tenants"}, {"POST", "/api/tenants"}, {"DELETE", "/api/tenants/" + id}} {
		var body any
		if c.method == "POST" {
			body = registration(id, "silent0")
		}
		code, raw, took := quick(t, 10*time.Second, c.method, p.base+c.path, body)
		if code != http.StatusServiceUnavailable || errorCode(raw) != "registry_unavailable" || took > 3*time.Second {
			t.Errorf("%s %s on silent storage: %d %s after %s", c.method, c.path, code, raw, took)
		}
	}
	proxy.Silence(false)
	if code, body, _ := quick(t, 10*time.Second, "GET", p.base+"/api/tenants/"+id, nil); code != http.StatusOK {
		t.Fatalf("after storage is back: %d %s", code, body)
	}
}

// Storage 3. Before: with ~150 ms per storage round trip a sweep of 121
// tenants lost 3, then 26 results to one 20 s timeout over a whole batch.
func TestSlowStorageLosesNoResults(t *testing.T) {
	fx := newFixture(t)
	regs := fx.healthyTenants(7200, 121, "slow", true)
	fx.onboard(t, regs...)
	proxy := tablestoretest.StartProxy(t)
	via := proxy.Registry(fx.reg)
	p := startHost(t, fx.env("TENANT_REGISTRY_CONNECTION="+via.Connection, "LOG_LEVEL=info"))
	proxy.SetDelay(150 * time.Millisecond)

	start := time.Now()
	out := runTimer(t, fx, p, "inv-slow")
	t.Logf("sweep at 150 ms a round trip: %s in %s", out.Logs, time.Since(start))
	if out.ReturnValue.OK != 121 || out.ReturnValue.WriteErrors != 0 {
		t.Fatalf("summary = %+v, want 121 ok and 0 results lost", out.ReturnValue)
	}
	for _, r := range regs {
		if rec, err := fx.store.Get(context.Background(), r.TenantID); err != nil || rec.LastSweep == nil {
			t.Fatalf("%s has no lastSweep: %v", r.TenantID, err)
		}
	}
}

// Storage 4. Before: after the table was dropped, POSTs answered 500
// TableNotFound until a restart.
func TestDroppedTableIsRecreatedByTheNextPOST(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	first, second := tenantID(7300), tenantID(7301)
	fx.healthyTenant(first, "dropped0")
	fx.healthyTenant(second, "dropped1")
	if code, body, _ := quick(t, 30*time.Second, "POST", p.base+"/api/tenants", registration(first, "dropped0")); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	tablestoretest.DeleteTables(t, fx.reg)
	if code, body, _ := quick(t, 30*time.Second, "POST", p.base+"/api/tenants", registration(second, "dropped1")); code != http.StatusCreated {
		t.Fatalf("POST after the table was dropped: %d %s", code, body)
	}
	if code, body, _ := quick(t, 10*time.Second, "GET", p.base+"/api/tenants/"+second, nil); code != http.StatusOK {
		t.Fatalf("GET: %d %s", code, body)
	}
}

// Storage 5. Before: 20 vaults of 50 secrets were accepted, but the sweep's
// result (362,278 bytes) never fit the 64 KiB property: every sweep said
// "1 results not written" and lastSweep stayed empty.
func TestLargestRegistrationsResultIsRecorded(t *testing.T) {
	fx := newFixture(t)
	id := tenantID(7400)
	fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "Big", Users: 3})
	var vaults []map[string]any
	for v := range tenant.MaxVaults {
		name := fmt.Sprintf("big%02d", v)
		secrets := map[string]cloudtest.Secret{}
		var names []string
		for s := range tenant.MaxSecretsPerVault {
			// 24 characters: as long as names can be while 1,000 of them
			// still fit the registry's KeyVaults property.
			n := fmt.Sprintf("secret-%02d-%02d-%s", v, s, strings.Repeat("x", 12))
			names = append(names, n)
			if v == 3 && s%2 == 1 {
				continue // missing: secret_not_found
			}
			secrets[n] = cloudtest.Secret{Value: "v", Enabled: true, ExpiresOn: time.Now().Add(400 * 24 * time.Hour)}
		}
		fx.cloud.AddVault(name, id, cloudtest.Vault{Secrets: secrets})
		vaults = append(vaults, map[string]any{"vaultUrl": cloudtest.VaultURL(name) + "/", "secrets": names})
	}
	p := startHost(t, fx.env("ONBOARD_VERIFY_TIMEOUT=1s"))
	body := map[string]any{"tenantId": id, "displayName": "Big", "graph": true, "keyVaults": vaults}
	if code, raw, _ := quick(t, 60*time.Second, "POST", p.base+"/api/tenants", body); code != http.StatusCreated {
		t.Fatalf("the largest registration was refused: %d %.300s", code, raw)
	}
	out := runTimer(t, fx, p, "inv-big")
	if out.ReturnValue.WriteErrors != 0 {
		t.Fatalf("summary = %s", out.Logs)
	}
	rec, err := fx.store.Get(context.Background(), id)
	if err != nil || rec.LastSweep == nil {
		t.Fatalf("lastSweep not recorded: %v", err)
	}
	ls := rec.LastSweep
	total := 0
	for _, n := range ls.SecretCounts {
		total += n
	}
	if total != 1000 || ls.SecretCounts[outcome.SecretNotFound] != 25 || ls.Omitted == 0 || len(ls.KeyVault)+ls.Omitted != 1000 {
		t.Fatalf("counts %v, %d listed, %d omitted; want 1000 counted with 25 not found", ls.SecretCounts, len(ls.KeyVault), ls.Omitted)
	}
	for i := range 25 {
		if ls.KeyVault[i].Outcome != outcome.SecretNotFound {
			t.Fatalf("entry %d is %s: failing secrets must come first", i, ls.KeyVault[i].Outcome)
		}
	}
	t.Logf("lastSweep keeps %d of 1000 secrets, outcome %s", len(ls.KeyVault), ls.Outcome)
}

// Settings. Before: 19 malformed settings looped on "app start failed"
// while every request got 503, and several others were accepted.
func TestMalformedSettingsExitAtStart(t *testing.T) {
	root, _ := filepath.Abs("..")
	notCert := filepath.Join(t.TempDir(), "not-a-cert.pem")
	if err := os.WriteFile(notCert, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{
		"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME"), "FUNCTIONS_APP_ROOT_PATH": root,
		"APP_CLIENT_ID": testAppID, "APP_CLIENT_SECRET": testAppSecret,
		"TENANT_REGISTRY_CONNECTION": "UseDevelopmentStorage=true", "FUNCTIONS_CUSTOMHANDLER_PORT": strconv.Itoa(freePort(t)),
		"AzureWebJobsStorage": "UseDevelopmentStorage=true",
	}
	tests := []struct {
		name, setting string
		set           map[string]string
	}{
		{"garbage connection", "TENANT_REGISTRY_CONNECTION", map[string]string{"TENANT_REGISTRY_CONNECTION": "garbage"}},
		{"account without key", "TENANT_REGISTRY_CONNECTION", map[string]string{"TENANT_REGISTRY_CONNECTION": "AccountName=x"}},
		{"development storage false", "TENANT_REGISTRY_CONNECTION", map[string]string{"TENANT_REGISTRY_CONNECTION": "UseDevelopmentStorage=false"}},
		{"key not base64", "TENANT_REGISTRY_CONNECTION", map[string]string{"TENANT_REGISTRY_CONNECTION": "AccountName=x;AccountKey=not*base64!"}},
		{"ftp endpoint", "TENANT_REGISTRY_CONNECTION", map[string]string{"TENANT_REGISTRY_CONNECTION": "AccountName=x;AccountKey=" + storageconn.DevAccountKey + ";TableEndpoint=ftp://x"}},
		{"AzureWebJobsStorage garbage", "AzureWebJobsStorage", map[string]string{"TENANT_REGISTRY_CONNECTION": "", "AzureWebJobsStorage": "garbage"}},
		{"queue connection garbage", "AzureWebJobsStorage", map[string]string{"AzureWebJobsStorage": "AccountName=x"}},
		{"queue connection without a queue", "AzureWebJobsStorage", map[string]string{"AzureWebJobsStorage": "TableEndpoint=https://x.table.core.windows.net;SharedAccessSignature=sv=1"}},
		{"no queue connection", "AzureWebJobsStorage", map[string]string{"AzureWebJobsStorage": ""}},
		{"queue service URL not a URL", "AzureWebJobsStorage__queueServiceUri", map[string]string{"AzureWebJobsStorage": "", "AzureWebJobsStorage__queueServiceUri": "queue.example"}},
		{"queue name", "SWEEP_QUEUE", map[string]string{"SWEEP_QUEUE": "Work_Queue"}},
		{"queue name too long for its poison queue", "SWEEP_QUEUE", map[string]string{"SWEEP_QUEUE": strings.Repeat("q", 57)}},
		{"tenants per message", "SWEEP_MESSAGE_TENANTS", map[string]string{"SWEEP_MESSAGE_TENANTS": "257"}},
		{"missing certificate", "APP_CLIENT_CERTIFICATE_PATH", map[string]string{"APP_CLIENT_SECRET": "", "APP_CLIENT_CERTIFICATE_PATH": "/nonexistent/app.pem"}},
		{"not a certificate", "APP_CLIENT_CERTIFICATE_PATH", map[string]string{"APP_CLIENT_SECRET": "", "APP_CLIENT_CERTIFICATE_PATH": notCert}},
		{"reserved table name", "TENANT_REGISTRY_TABLE", map[string]string{"TENANT_REGISTRY_TABLE": "tables"}},
		{"days that overflow", "SECRET_EXPIRY_WARNING", map[string]string{"SECRET_EXPIRY_WARNING": "213504d"}},
		{"days that overflow (backoff)", "SWEEP_BACKOFF_MAX", map[string]string{"SWEEP_BACKOFF_MAX": "213504d"}},
		{"budget past functionTimeout", "SWEEP_BUDGET", map[string]string{"SWEEP_BUDGET": "20m"}},
		{"redirect with fragment", "ONBOARD_REDIRECT_URI", map[string]string{"ONBOARD_REDIRECT_URI": "https://app.example/api/tenants#x", "ONBOARD_STATE_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}},
		{"log level disabled", "LOG_LEVEL", map[string]string{"LOG_LEVEL": "disabled"}},
		{"log level panic", "LOG_LEVEL", map[string]string{"LOG_LEVEL": "panic"}},
		{"log level trace", "LOG_LEVEL", map[string]string{"LOG_LEVEL": "trace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vals := map[string]string{}
			for k, v := range base {
				vals[k] = v
			}
			for k, v := range tt.set {
				vals[k] = v
			}
			var env []string
			for k, v := range vals {
				if v != "" {
					env = append(env, k+"="+v)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary(t))
			cmd.Env = env
			var stderr logtest.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || took > time.Second {
				t.Fatalf("exit: %v after %s; want exit code 2 within a second\nstderr: %s", err, took, stderr.String())
			}
			out := strings.TrimRight(stderr.String(), "\n")
			if strings.Contains(out, "\n") || !strings.Contains(out, tt.setting) || strings.Contains(out, testAppSecret) {
				t.Fatalf("stderr is not one safe line naming %s: %q", tt.setting, out)
			}
		})
	}

	t.Run("well-formed but unreachable is a retry", func(t *testing.T) {
		var env []string
		for k, v := range base {
			if k != "TENANT_REGISTRY_CONNECTION" && k != "FUNCTIONS_CUSTOMHANDLER_PORT" && k != "AzureWebJobsStorage" {
				env = append(env, k+"="+v)
			}
		}
		closed := freePort(t)
		env = append(env, "TENANT_REGISTRY_CONNECTION="+storageconn.DevConnectionString("http://127.0.0.1:"+strconv.Itoa(closed)+"/devstoreaccount1", ""),
			"AzureWebJobsStorage="+storageconn.DevConnectionString("", "http://127.0.0.1:"+strconv.Itoa(closed)+"/devstoreaccount1"),
			"TENANT_REGISTRY_TIMEOUT=1s")
		p := startHost(t, env)
		code, body, _ := quick(t, 10*time.Second, "GET", p.base+"/api/tenants", nil)
		select {
		case <-p.done:
			t.Fatalf("the handler exited: %s", p.stderr)
		default:
		}
		if code != http.StatusServiceUnavailable || errorCode(body) != "registry_unavailable" {
			t.Fatalf("GET while storage is down: %d %s", code, body)
		}
	})
}

// API input. Before: each of these bodies was accepted (201) and written.
func TestHostileBodiesAreRefusedAndNothingWritten(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	valid := func(i int) string {
		b, _ := json.Marshal(registration(tenantID(7500+i), "hostile0"))
		return string(b)
	}
	swap := func(i int, old, new string) string { return strings.Replace(valid(i), old, new, 1) }
	tests := []struct{ name, body string }{
		{"tenantId twice", swap(0, `"tenantId":`, `"tenantId":"`+tenantID(7599)+`","tenantId":`)},
		{"vaultUrl twice, nested", swap(1, `"vaultUrl":`, `"vaultUrl":"https://x.vault.azure.net/","vaultUrl":`)},
		{"TENANTID", swap(2, `"tenantId":`, `"TENANTID":`)},
		{"VaultUrl", swap(3, `"vaultUrl":`, `"VaultUrl":`)},
		{"displayName and DisplayName", swap(4, `"displayName":`, `"DisplayName":"a","displayName":`)},
		{"invalid UTF-8", swap(5, `"displayName":"`, "\"displayName\":\"\xff\xfe")},
		{"U+202E", swap(6, `"displayName":"`, `"displayName":"`+"\u202e")},
		{"U+2066", swap(7, `"displayName":"`, `"displayName":"`+"\u2066")},
		{"U+2028", swap(8, `"displayName":"`, `"displayName":"`+"\u2028")},
		{"U+2029 escaped", swap(9, `"displayName":"`, `"displayName":"\u2029`)},
		{"second object", valid(10) + `{"tenantId":"x"}`},
		{"trailing text", valid(11) + ` trailing`},
		{"trailing bracket", valid(12) + `]`},
	}
	for _, tt := range tests {
		code, body, _ := quick(t, 30*time.Second, "POST", p.base+"/api/tenants", tt.body)
		if code != http.StatusBadRequest || errorCode(body) != "invalid_request" {
			t.Errorf("%s: %d %s; want 400 invalid_request", tt.name, code, body)
		}
	}
	if page, err := fx.store.List(context.Background(), 100, ""); err != nil || len(page.Records) != 0 {
		t.Fatalf("something was written: %d records, %v", len(page.Records), err)
	}
}

// Routes. Before: /API/Tenants/<id> answered 404 and POST / answered 200.
func TestRoutesMatchLikeTheHost(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	id := tenantID(7600)
	fx.healthyTenant(id, "route0")
	if code, body, _ := quick(t, 30*time.Second, "POST", p.base+"/API/Tenants", registration(id, "route0")); code != http.StatusCreated {
		t.Fatalf("POST /API/Tenants: %d %s", code, body)
	}
	if code, body, _ := quick(t, 10*time.Second, "GET", p.base+"/API/Tenants/"+strings.ToUpper(id), nil); code != http.StatusOK {
		t.Fatalf("GET /API/Tenants/<ID>: %d %s", code, body)
	}
	if code, body, _ := quick(t, 10*time.Second, "GET", p.base+"/api/tenantsX", nil); code != http.StatusNotFound {
		t.Fatalf("GET /api/tenantsX: %d %s", code, body)
	}
	for _, m := range []string{"GET", "HEAD"} {
		if code, _, _ := quick(t, 10*time.Second, m, p.base+"/", nil); code != http.StatusOK {
			t.Errorf("%s /: %d", m, code)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		code, body, _ := quick(t, 10*time.Second, m, p.base+"/", nil)
		if code != http.StatusMethodNotAllowed || errorCode(body) != "method_not_allowed" {
			t.Errorf("%s /: %d %s; want 405 JSON", m, code, body)
		}
	}
}

// Trickling requests. Before: 300 slow bodies were all still open after 40 s.
func TestTricklingRequestsAreCut(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	addr := strings.TrimPrefix(p.base, "http://")
	heads := []string{
		"POST /api/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{",
		"GET /api/tenants HTTP/1.1\r\nHost: x\r\nX-Slow: ",
	}
	start := time.Now()
	var wg sync.WaitGroup
	cut := make(chan time.Duration, 40)
	for i := range 40 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(heads[i%2])); err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { // one byte every 200 ms until the server gives up
			defer wg.Done()
			for time.Since(start) < 30*time.Second {
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					cut <- time.Since(start)
					c.Close()
					return
				}
			}
		}()
	}
	time.Sleep(time.Second)
	if code, body, took := quick(t, 5*time.Second, "GET", p.base+"/api/tenants", nil); code != http.StatusOK || took > 2*time.Second {
		t.Fatalf("a normal request while 40 trickle: %d %s after %s", code, body, took)
	}
	wg.Wait()
	close(cut)
	var last time.Duration
	for d := range cut {
		last = max(last, d)
	}
	if last > readTimeout+5*time.Second {
		t.Fatalf("the last trickling connection was cut after %s; want within %s of the read timeout", last, 5*time.Second)
	}
	t.Logf("40 trickling connections cut, the last after %s", last)
}
