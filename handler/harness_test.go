package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/logtest"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
	"github.com/tenantsweep/tenantsweep/internal/tablestore/tablestoretest"
	"github.com/tenantsweep/tenantsweep/internal/workqueue"
	"github.com/tenantsweep/tenantsweep/internal/workqueue/workqueuetest"
)

const (
	testAppID     = "5e1c7a1d-8c2b-4f3e-9a60-1b2c3d4e5f60"
	testAppSecret = "app-secret-" + "Zq8x7Wv6Ut5Sr4"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds bin/handler the way `make build` does (static, CGO off),
// once per test process, so tests run the very file that deploys.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tenantsweep-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "handler")
		args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", binPath}
		if os.Getenv("BENCH_PROFILE") != "" {
			args = append(args, "-tags", "pprof") // handler/pprof.go
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// fixture is one test's world: fakes of Entra ID, Graph and Key Vault, and
// fresh registry tables on Azurite.
type fixture struct {
	cloud  *cloudtest.Cloud
	reg    config.Registry
	store  *tablestore.Store
	queue  config.Queue
	work   *workqueue.Queue
	caFile string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: testAppID, Secret: testAppSecret})
	reg := tablestoretest.Registry(t)
	store, err := tablestore.Open(context.Background(), reg, tablestore.Options{})
	if err != nil {
		t.Fatalf("open registry: %v", err)
	}
	qcfg := workqueuetest.Config(t)
	return &fixture{cloud: c, reg: reg, store: store, queue: qcfg, work: workqueuetest.OpenWithOptions(t, qcfg, workqueue.Options{}), caFile: c.WriteCACert(t)}
}

// healthyTenant adds a tenant that passes every step: app present, consent
// given, a vault with one readable secret.
func (fx *fixture) healthyTenant(id, vault string) {
	fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "Org " + id[:8], Users: 3})
	fx.cloud.AddVault(vault, id, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"db-password": {Value: "customer-secret-value-" + id[:8], Enabled: true, ExpiresOn: time.Now().Add(400 * 24 * time.Hour)},
	}})
}

// env is the environment the Functions host would give the handler, with
// the standard proxy and CA variables pointing the SDKs at the fakes.
func (fx *fixture) env(extra ...string) []string {
	root, _ := filepath.Abs("..")
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"FUNCTIONS_APP_ROOT_PATH=" + root,
		"TENANT_REGISTRY_CONNECTION=" + fx.reg.Connection,
		"TENANT_REGISTRY_TABLE=" + fx.reg.Table,
		"SWEEP_RUNS_TABLE=" + fx.reg.RunsTable,
		"AzureWebJobsStorage=" + fx.queue.Connection,
		"SWEEP_QUEUE=" + fx.queue.Name,
		"APP_CLIENT_ID=" + testAppID,
		"APP_CLIENT_SECRET=" + testAppSecret,
		"HTTPS_PROXY=" + fx.cloud.ProxyURL(),
		"SSL_CERT_FILE=" + fx.caFile,
		"LOG_LEVEL=debug",
	}
	return append(env, extra...)
}

// proc is a running handler process.
type proc struct {
	cmd     *exec.Cmd
	base    string
	stdout  *logtest.Buffer
	stderr  *logtest.Buffer
	started time.Duration // from exec to the first answer to GET /
	done    chan struct{}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startHost starts the binary as the Functions host does: a random port in
// FUNCTIONS_CUSTOMHANDLER_PORT, then GET / every 25 ms until any answer.
func startHost(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	port := freePort(t)
	p := &proc{base: "http://127.0.0.1:" + strconv.Itoa(port), stdout: &logtest.Buffer{}, stderr: &logtest.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Env = append(env, "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	begin := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("handler stdout:\n%s\nhandler stderr:\n%s", p.stdout, p.stderr)
		}
	})
	probe := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("handler exited during start-up: %v\nstderr:\n%s", p.cmd.ProcessState, p.stderr)
		default:
		}
		resp, err := probe.Get(p.base + "/")
		if err == nil {
			resp.Body.Close()
			p.started = time.Since(begin)
			return p
		}
	}
	t.Fatalf("handler did not answer GET / within 30 s\nstderr:\n%s", p.stderr)
	return nil
}

// send sends a request with a JSON (or raw string/bytes) body.
func send(method, url string, body any, header map[string]string) (int, http.Header, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Minute}).Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw, err
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func do(t testing.TB, method, url string, body any, header map[string]string, out any) (int, http.Header, []byte) {
	t.Helper()
	code, hdr, raw, err := send(method, url, body, header)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v\n%s", method, url, err, raw)
		}
	}
	return code, hdr, raw
}

// hostHeaders are what the host adds to a forwarded request.
func hostHeaders(invocationID string) map[string]string {
	return map[string]string{
		"Content-Type":                   "application/json",
		"X-Azure-Functions-InvocationId": invocationID,
		"X-Azure-Functions-HostVersion":  "4.1037.0.0",
		"x-functions-key":                "function-key-not-a-secret-of-ours",
	}
}

// timerEnvelope loads a host-shaped timer payload from the protocol
// package's fixtures and renames its binding to ours.
func timerEnvelope(t testing.TB, fixture string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "internal", "funchost", "testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Data     map[string]json.RawMessage
		Metadata map[string]json.RawMessage
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s: %v", fixture, err)
	}
	data := map[string]json.RawMessage{}
	for _, v := range env.Data {
		data[timerBinding] = v
	}
	out, _ := json.Marshal(map[string]any{"Data": data, "Metadata": env.Metadata})
	return out
}
