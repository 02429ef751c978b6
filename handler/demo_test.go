package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/logtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
	"github.com/tenantsweep/tenantsweep/internal/tablestore/tablestoretest"
	"github.com/tenantsweep/tenantsweep/internal/workqueue/workqueuetest"
)

var (
	demoOnce sync.Once
	demoPath string
	demoErr  error
)

// demoBinary builds what `make demo` builds: the binary with the fakes in
// it (-tags demo).
func demoBinary(t testing.TB) string {
	t.Helper()
	demoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tenantsweep-demo")
		if err != nil {
			demoErr = err
			return
		}
		demoPath = filepath.Join(dir, "handler-demo")
		cmd := exec.Command("go", "build", "-trimpath", "-tags", "demo", "-o", demoPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			demoErr = fmt.Errorf("go build -tags demo: %v\n%s", err, out)
		}
	})
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	return demoPath
}

// The demo serves the app against its built-in fakes: the sample tenants
// are onboarded and verified through the API, swept through the queue, and
// `tenants --demo` and `runs --demo` show them, each with the outcome of its
// story. The deployed binary has no demo.
func TestDemo(t *testing.T) {
	fx := newFixture(t)
	// The demo's own tables and queue, in this test's Azurite.
	demoReg := fx.reg
	demoReg.Table, demoReg.RunsTable = demoTable, demoRunsTable
	demoQ := fx.queue
	demoQ.Name = demoQueue
	tablestoretest.DeleteTables(t, demoReg)
	workqueuetest.DeleteQueues(t, demoQ)
	t.Cleanup(func() { tablestoretest.DeleteTables(t, demoReg); workqueuetest.DeleteQueues(t, demoQ) })

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"TENANT_REGISTRY_CONNECTION=" + fx.reg.Connection, "AzureWebJobsStorage=" + fx.queue.Connection}
	if code, _, errOut := runCommand(t, env, "local", "--demo"); code != 2 || !strings.Contains(errOut, "make demo") {
		t.Errorf("local --demo on the deployed binary: exit %d, %q", code, errOut)
	}

	port := freePort(t)
	cmd := exec.Command(demoBinary(t), "local", "--demo")
	abs, _ := filepath.Abs("..")
	cmd.Env = append(env, "LOCAL_PORT="+strconv.Itoa(port), "FUNCTIONS_APP_ROOT_PATH="+abs)
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

	store, err := tablestore.Open(context.Background(), demoReg, tablestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		name    string
		outcome outcome.Code
		tasks   map[string]outcome.Code
	}{
		"c0a7c0a7-0000-4000-8000-00000000c001": {"Contoso", outcome.OK, map[string]outcome.Code{"access": outcome.OK, "groups": outcome.OK}},
		"fab00000-0000-4000-8000-00000000fab1": {"Fabrikam", outcome.GraphConsentMissing, map[string]outcome.Code{"access": outcome.GraphConsentMissing, "groups": outcome.GraphConsentMissing}},
		"7a115010-0000-4000-8000-0000000007a1": {"Tailspin", outcome.KeyVaultAccessDenied, map[string]outcome.Code{"access": outcome.KeyVaultAccessDenied, "groups": outcome.OK}},
		"40e70000-0000-4000-8000-000000000407": {"Northwind", outcome.AppNotInTenant, map[string]outcome.Code{"access": outcome.AppNotInTenant, "groups": outcome.AppNotInTenant}},
		"b00dbe0d-0000-4000-8000-00000000b00d": {"Woodgrove", outcome.SecretNotFound, map[string]outcome.Code{"access": outcome.SecretNotFound, "groups": outcome.OK}},
		"11710000-0000-4000-8000-000000001171": {"Litware", outcome.GraphPermissionMissing, map[string]outcome.Code{"access": outcome.OK, "groups": outcome.GraphPermissionMissing}},
	}
	// Swept through the queue within a minute (the demo plans at once).
	deadline := time.Now().Add(90 * time.Second)
	for {
		page, err := store.List(context.Background(), 100, "")
		swept := 0
		if err == nil {
			for _, r := range page.Records {
				if r.LastSweep != nil {
					swept++
				}
			}
		}
		if swept == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sample tenants swept after 90 s (%v)", swept, len(want), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/api/tenants"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the demo's API: %v %v", resp, err)
	}

	code, out, errOut := runCommand(t, env, "tenants", "--demo", "--json")
	if code != 0 {
		t.Fatalf("tenants --demo: exit %d, %s", code, errOut)
	}
	// Plain JSON: a command copied from the terminal works.
	if strings.Contains(out, `\u0026`) || !strings.Contains(out, "&& az ad sp create") {
		t.Errorf("tenants --json escapes HTML characters: %s", out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l tenantLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("tenants --demo --json: %q: %v", line, err)
		}
		w, ok := want[l.TenantID]
		if !ok {
			t.Errorf("unexpected tenant %s", l.TenantID)
			continue
		}
		seen++
		if l.DisplayName != w.name || l.Outcome != w.outcome || fmt.Sprint(l.Tasks) != fmt.Sprint(w.tasks) {
			t.Errorf("%s: %s %s %v, want %s %v", w.name, l.DisplayName, l.Outcome, l.Tasks, w.outcome, w.tasks)
		}
	}
	if seen != len(want) {
		t.Errorf("tenants --demo listed %d sample tenants, want %d", seen, len(want))
	}
	code, out, errOut = runCommand(t, env, "runs", "--demo")
	if code != 0 || !strings.Contains(out, "demo   finished") || !strings.Contains(out, "6 tenants, 1 ok, 5 failed") ||
		!strings.Contains(out, "tasks: access 2 ok, 4 failed") {
		t.Errorf("runs --demo: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
