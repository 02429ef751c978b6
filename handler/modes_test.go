package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/logtest"
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
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/"); err == nil {
			resp.Body.Close()
			code = resp.StatusCode
			break
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
		cmd := exec.Command(binary(t), append([]string{"sweep"}, args...)...)
		cmd.Env = env
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code := 0
		if ee != nil {
			code = ee.ExitCode()
		}
		return code, out.String(), errb.String()
	}

	code, out, errOut := run(fx.env())
	if code != 0 || !strings.Contains(out, "2 tenants, 2 ok") {
		t.Fatalf("sweep: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	runs := exec.Command(binary(t), "runs", "--last", "5")
	runs.Env = fx.env()
	history, err := runs.Output()
	if err != nil || !strings.Contains(string(history), "cli    sweep ") || !strings.Contains(string(history), "2 tenants, 2 ok") {
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
