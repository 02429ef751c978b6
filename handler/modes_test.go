package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/logtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/storageconn"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Local mode serves /api/... on LOCAL_PORT and fires TenantSweep on the
// schedule in TenantSweep/function.json, resolved from its setting.
func TestLocalModeServesAndSchedules(t *testing.T) {
	fx := newFixture(t)
	id := tenantID(11)
	fx.healthyTenant(id, "local1")
	port := freePort(t)
	settings := filepath.Join(t.TempDir(), "local.settings.json")
	// The settings file fills in what the environment lacks, as func start does.
	if err := os.WriteFile(settings, []byte(`{"IsEncrypted":false,"Values":{"TenantSweepSchedule":"*/1 * * * * *","LOCAL_PORT":"`+strconv.Itoa(port)+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), "local", "--settings", settings)
	cmd.Env = fx.env()
	stdout, stderr := &logtest.Buffer{}, &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	})
	base := "http://localhost:" + strconv.Itoa(port)
	var code int
	// GET / answers 503 until the app has started (local mode says so).
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/"); err == nil {
			resp.Body.Close()
			if code = resp.StatusCode; code != http.StatusServiceUnavailable {
				break
			}
		}
	}
	if code != http.StatusOK {
		t.Fatal("local mode never answered")
	}
	first, _ := bufio.NewReader(strings.NewReader(stdout.String() + stderr.String())).ReadString('\n')
	if !strings.Contains(first, "DEVELOPMENT MODE") {
		t.Errorf("first log line does not say it is a development mode: %q", first)
	}
	if code, _, raw := do(t, "POST", base+"/api/tenants", registration(id, "local1"), map[string]string{"Content-Type": "application/json"}, nil); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, raw)
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if rec, err := fx.store.Get(context.Background(), id); err == nil && rec.LastSweep != nil {
			if !strings.Contains(stdout.String(), `"function":"TenantSweep"`) {
				t.Error("scheduled sweep logged without the function field")
			}
			return
		}
	}
	t.Fatal("the schedule never swept the tenant")
}

func TestSweepCommand(t *testing.T) {
	fx := newFixture(t)
	ids := []string{tenantID(21), tenantID(22)}
	for i, id := range ids {
		fx.healthyTenant(id, fmt.Sprintf("cli%d", i))
	}
	fx.onboard(t, reg(ids[0], true, "cli0", "db-password"), reg(ids[1], true, "cli1", "db-password"))

	run := func(env []string, args ...string) (int, string, string) {
		return runCommand(t, env, append([]string{"sweep"}, args...)...)
	}

	code, out, errOut := run(fx.env())
	if code != 0 || !strings.Contains(out, "2 tenants, 2 ok") {
		t.Fatalf("sweep: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	runs := exec.Command(binary(t), "runs", "--last", "5")
	runs.Env = fx.env()
	history, err := runs.Output()
	if err != nil || !strings.Contains(string(history), "cli    finished    sweep ") || !strings.Contains(string(history), "2 tenants, 2 ok") {
		t.Fatalf("runs: %v, %q", err, history)
	}
	code, out, _ = run(fx.env(), "--tenant", strings.ToUpper(ids[1]))
	if code != 0 || !strings.Contains(out, "1 tenants, 1 ok") {
		t.Fatalf("sweep --tenant: exit %d, stdout %q", code, out)
	}
	code, _, errOut = run(fx.env(), "--tenant", tenantID(99))
	if code == 0 || !strings.Contains(errOut, "not an active onboarded tenant") {
		t.Fatalf("sweep of an unknown tenant: exit %d, stderr %q", code, errOut)
	}
	// While another run is active (a planner holds the lease), the command
	// refuses with its own exit code, names the run, and --force overrides.
	lock := sweep.NewRunLock(fx.store, fx.work)
	cur, err := lock.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Update(t.Context(), sweep.Lease{RunID: "timer-run", Trigger: "timer", State: sweep.LeasePlanning,
		StartedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute), ETag: cur.ETag}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(fx.env())
	if code != 4 || out != "" || !strings.Contains(errOut, "another sweep run is active: run timer-run (timer") || !strings.Contains(errOut, "--force") {
		t.Fatalf("sweep while a run is active: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut = run(fx.env(), "--force"); code != 0 || !strings.Contains(out, "2 tenants, 2 ok") {
		t.Fatalf("sweep --force: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if l, err := lock.Read(t.Context()); err != nil || !l.HeldUntil.IsZero() {
		t.Fatalf("after sweep --force the lease is %+v, %v; want released", l, err)
	} else if st, err := lock.State(t.Context(), l); err != nil || st.Active || st.Status != "finished" {
		t.Fatalf("after sweep --force the run is %+v, %v; want finished", st, err)
	}

	fx.cloud.UpdateApp(func(a *cloudtest.App) { a.Secret = "rotated-away" })
	code, out, errOut = run(fx.env())
	if code != 3 || !strings.Contains(out, "STOPPED") {
		t.Fatalf("app-wide failure: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if code, _, errOut := run(fx.env(), "--bogus"); code != 2 || !strings.Contains(errOut, "usage") {
		t.Fatalf("bad flag: exit %d, stderr %q", code, errOut)
	}
	assertNoLeaks(t, fx, out+errOut)
}

// runCommand runs the built binary with args and returns its exit code and
// outputs.
func runCommand(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = env
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if ee != nil {
		return ee.ExitCode(), out.String(), errb.String()
	}
	return 0, out.String(), errb.String()
}

// withoutApp drops the app's credential settings: the read-only commands
// must not need them.
func withoutApp(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "APP_CLIENT_SECRET=") && !strings.HasPrefix(kv, "APP_CLIENT_ID=") {
			out = append(out, kv)
		}
	}
	return out
}

func TestTenantsCommand(t *testing.T) {
	fx := newFixture(t)
	ok, noConsent, fresh := tenantID(51), tenantID(52), tenantID(53)
	// After the onboarding: a result older than the registration is stale.
	at := time.Now().UTC().Truncate(time.Second).Add(time.Minute)
	fx.onboard(t, reg(ok, true, "tc0", "db-password"), reg(noConsent, true, "tc1", "db-password"), reg(fresh, true, "tc2", "db-password"))
	record := func(id string, res ...tenant.SweepResult) {
		t.Helper()
		if _, _, err := fx.store.Mutate(context.Background(), id, func(rec *tenant.Record, _ bool) error {
			for _, r := range res {
				tenant.RecordSweep(rec, r, time.Hour)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	record(ok, tenant.SweepResult{At: at, Outcome: outcome.OK})
	record(noConsent,
		tenant.SweepResult{At: at, Outcome: outcome.GraphConsentMissing, Step: "4", Remediation: "grant admin consent"},
		tenant.SweepResult{At: at.Add(time.Hour), Outcome: outcome.GraphConsentMissing, Step: "4", Remediation: "grant admin consent"})

	code, out, errOut := runCommand(t, withoutApp(fx.env()), "tenants")
	if code != 0 {
		t.Fatalf("tenants: exit %d, stderr %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TENANT") {
		t.Fatalf("tenants table:\n%s", out)
	}
	for _, want := range []string{
		noConsent + "  T " + noConsent[:8],
		"graph_consent_missing  " + at.Format(time.RFC3339) + "  4     -      grant admin consent", // since the first of the two sweeps
		ok + "  T " + ok[:8],
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runCommand(t, withoutApp(fx.env()), "tenants", "--failing", "--json")
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON lines: %q", out)
		}
		got = append(got, m)
	}
	if code != 0 || len(got) != 1 || got[0]["tenantId"] != noConsent || got[0]["outcome"] != "graph_consent_missing" || got[0]["step"] != "4" {
		t.Errorf("--failing --json: exit %d, %v", code, got)
	}

	// --outcome lists the tenants whose last outcome is one of the codes,
	// and refuses a code that is not one (the list is stable API).
	record(fresh, tenant.SweepResult{At: at, Outcome: outcome.AppDisabled, Step: "3", Remediation: "az ad sp update"})
	code, out, errOut = runCommand(t, withoutApp(fx.env()), "tenants", "--outcome", "app_disabled,blocked_by_policy")
	if code != 0 || !strings.Contains(out, fresh) || strings.Contains(out, noConsent) || strings.Contains(out, ok) {
		t.Errorf("--outcome: exit %d, %s %s", code, out, errOut)
	}
	if code, _, errOut := runCommand(t, withoutApp(fx.env()), "tenants", "--outcome", "app_disabeld"); code != 2 || !strings.Contains(errOut, "app_disabled") {
		t.Errorf("--outcome with a typo: exit %d, %s", code, errOut)
	}

	if code, _, errOut := runCommand(t, withoutApp(fx.env()), "tenants", "--needs-consent"); code != 2 || !strings.Contains(errOut, "APP_CLIENT_ID") {
		t.Errorf("--needs-consent without the app id: exit %d, %s", code, errOut)
	}
	code, out, errOut = runCommand(t, fx.env(), "tenants", "--needs-consent")
	if code != 0 || !strings.Contains(out, noConsent) || strings.Contains(out, ok) ||
		!strings.Contains(out, "https://login.microsoftonline.com/"+noConsent+"/adminconsent?client_id="+testAppID) {
		t.Errorf("--needs-consent: exit %d, %s %s", code, out, errOut)
	}

	if code, _, errOut := runCommand(t, withoutApp(fx.env()), "runs"); code != 0 {
		t.Errorf("runs without the app's credential: exit %d, %s", code, errOut)
	}
}

// `handler tasks` lists the binary's tasks, which SWEEP_TASKS runs, and
// what the customer grants for them.
func TestTasksCommand(t *testing.T) {
	env := []string{"PATH=" + os.Getenv("PATH")}
	code, out, errOut := runCommand(t, env, "tasks")
	if code != 0 || !regexp.MustCompile(`(?m)^access +yes +yes +Organization\.Read\.All\|Directory\.Read\.All, User\.Read\.All\|Directory\.Read\.All +Key Vault Secrets User$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^groups +no +yes +Group\.Read\.All`).MatchString(out) ||
		!strings.Contains(out, "asks for the Graph application permissions Organization.Read.All, User.Read.All\n") {
		t.Errorf("tasks: exit %d, stdout:\n%s\nstderr %s", code, out, errOut)
	}
	code, out, _ = runCommand(t, append(env, "SWEEP_TASKS=groups,access"), "tasks", "--json")
	var lines []taskLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var tl taskLine
		if err := json.Unmarshal([]byte(l), &tl); err != nil {
			t.Fatalf("tasks --json: %q is not JSON: %v", l, err)
		}
		lines = append(lines, tl)
	}
	byName := map[string]taskLine{}
	for _, l := range lines {
		byName[l.Name] = l
	}
	if code != 0 || !byName["access"].Enabled || !byName["groups"].Enabled || byName["keys"].Enabled || len(byName["groups"].Graph) != 1 {
		t.Errorf("tasks --json with access and groups enabled: exit %d, %+v", code, lines)
	}
	if code, _, errOut := runCommand(t, append(env, "SWEEP_TASKS=access,nope"), "tasks"); code != 2 || !strings.Contains(errOut, "SWEEP_TASKS") || !strings.Contains(errOut, `"nope"`) {
		t.Errorf("tasks with an unknown task: exit %d, stderr %q", code, errOut)
	}
}

func TestCommandLine(t *testing.T) {
	for cmd, flag := range map[string]string{"local": "-demo", "sweep": "-tenant", "runs": "-last", "tenants": "-needs-consent", "tasks": "-json"} {
		code, out, errOut := runCommand(t, nil, cmd, "--help")
		// Its own usage and flags, not the list of every command.
		if code != 0 || !strings.HasPrefix(out, "usage: handler "+cmd) || !strings.Contains(out, flag) || strings.Contains(out, "handler runs") && cmd != "runs" {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", cmd, code, out, errOut)
		}
		code, _, errOut = runCommand(t, nil, cmd, "--nope")
		if code != 2 || !strings.Contains(errOut, "-nope") {
			t.Errorf("%s --nope: exit %d, stderr %q; want 2 naming the flag", cmd, code, errOut)
		}
	}
	// A registry that is a local Azurite nobody started: the error says how
	// to start it.
	stopped := "http://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/devstoreaccount1"
	env := []string{"PATH=" + os.Getenv("PATH"), "TENANT_REGISTRY_CONNECTION=" + storageconn.DevConnectionString(stopped, ""),
		"AzureWebJobsStorage=" + storageconn.DevConnectionString("", stopped)}
	code, _, errOut := runCommand(t, env, "runs")
	if code == 0 || !strings.Contains(errOut, "start it with `make run`") {
		t.Errorf("runs against a stopped Azurite: exit %d, stderr %q", code, errOut)
	}
}

// Local mode with an Azurite nobody started: the API answers 503 within 2 s,
// saying how to start it, and GET / says the app is not ready.
func TestLocalModeWithoutAzurite(t *testing.T) {
	port := freePort(t)
	env := []string{"PATH=" + os.Getenv("PATH"), "LOCAL_PORT=" + strconv.Itoa(port),
		"APP_CLIENT_ID=" + testAppID, "APP_CLIENT_SECRET=" + testAppSecret,
		"FUNCTIONS_APP_ROOT_PATH=..",
		"TENANT_REGISTRY_CONNECTION=" + storageconn.DevConnectionString("http://127.0.0.1:"+strconv.Itoa(freePort(t))+"/devstoreaccount1", ""),
		"AzureWebJobsStorage=" + storageconn.DevConnectionString("", "http://127.0.0.1:"+strconv.Itoa(freePort(t))+"/devstoreaccount1")}
	cmd := exec.Command(binary(t), "local")
	cmd.Env = env
	var stderr logtest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	var code int
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, _, b, err := send("GET", base+"/", nil, nil); err == nil {
			code, body = c, b
			break
		}
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "make run") {
		t.Fatalf("GET /: %d %s; want 503 saying how to start Azurite (stderr %s)", code, body, stderr.String())
	}
	start := time.Now()
	code, _, body, err := send("GET", base+"/api/tenants", nil, nil)
	if took := time.Since(start); err != nil || code != http.StatusServiceUnavailable || took > 3*time.Second ||
		!strings.Contains(string(body), "registry_unavailable") || !strings.Contains(string(body), "make run") {
		t.Fatalf("GET /api/tenants: %d %s after %s (%v); want 503 registry_unavailable with the hint within 2 s", code, body, took, err)
	}
}

// --needs-consent and --outcome look at each task's outcome too: a task
// that needs consent while another task's failure is the tenant's outcome
// is listed.
func TestTenantsFiltersSeeTasks(t *testing.T) {
	fx := newFixture(t)
	mixed, plain := tenantID(61), tenantID(62)
	fx.onboard(t, reg(mixed, true, "tf0", "db-password"), reg(plain, true, "tf1", "db-password"))
	at := time.Now().UTC().Add(time.Minute)
	for id, res := range map[string]tenant.SweepResult{
		mixed: {At: at, Outcome: outcome.SecretNotFound, Tasks: map[string]tenant.TaskResult{
			"access": {Outcome: outcome.SecretNotFound}, "groups": {Outcome: outcome.GraphPermissionMissing}}},
		plain: {At: at, Outcome: outcome.SecretNotFound, Tasks: map[string]tenant.TaskResult{
			"access": {Outcome: outcome.SecretNotFound}, "groups": {Outcome: outcome.OK}}},
	} {
		if _, _, err := fx.store.Mutate(context.Background(), id, func(rec *tenant.Record, _ bool) error {
			tenant.RecordSweep(rec, res, time.Hour)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"--needs-consent"}, {"--outcome", "graph_permission_missing"}} {
		code, out, errOut := runCommand(t, fx.env(), append([]string{"tenants"}, args...)...)
		if code != 0 || !strings.Contains(out, mixed) || strings.Contains(out, plain) {
			t.Errorf("tenants %v: exit %d, %s %s; want %s alone", args, code, out, errOut, mixed)
		}
	}
}
