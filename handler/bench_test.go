package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// benchLatency is L, the latency of ONE call: the fakes add it to every
// token request, Graph request and authenticated Key Vault request.
const benchLatency = 100 * time.Millisecond

// BenchmarkSweep runs the real sweep, in the built binary serving the host
// protocol, against the fakes (benchLatency on every call a tenant makes) and
// a real Azurite registry, and reports each sweep's wall time against the
// physical limit measured in the same run: N·2L/C cold (both tokens at once,
// then every resource at once) and N·L/C warm (every resource at once), and
// beside a naive serial loop in the same run: plain net/http, the same calls
// one after another, C tenants at a time. Run it with `make bench`.
func BenchmarkSweep(b *testing.B) {
	for _, size := range []struct{ n, c int }{{2000, 32}, {10000, 64}} {
		b.Run(fmt.Sprintf("tenants=%d", size.n), func(b *testing.B) {
			for range b.N {
				benchSweep(b, size.n, size.c, true)
			}
		})
	}
	// The keys task: one key per tenant (benchSweepKeys, in
	// benchkeys_test.go).
	b.Run("keys/tenants=2000", func(b *testing.B) {
		for range b.N {
			benchSweepKeys(b, 2000, 32)
		}
	})
}

// BenchmarkPipeline spreads a run over K handler processes, each behind
// its own host queue listener, as Flex Consumption scales SweepWorker out,
// and reports the wall time against the physical limit N·2L/(K·C) cold and
// N·L/(K·C) warm, with each instance's peak RSS, for K = 1 and 3 at the
// same N. L is pipelineLatency, not benchLatency: at 100 ms the three
// processes would share this machine's 2 cores at their limit and measure
// the CPU, not the pipeline. The planner alone is BenchmarkPlanner.
func BenchmarkPipeline(b *testing.B) {
	const n, c = 3000, 64
	for _, k := range []int{1, 3} {
		b.Run(fmt.Sprintf("tenants=%d/instances=%d", n, k), func(b *testing.B) {
			for range b.N {
				benchPipeline(b, n, k, c)
			}
		})
	}
}

// pipelineLatency is L of the pipeline benchmark: a slow tenant, so that
// the run is bound by round trips and instances, not by the CPU.
const pipelineLatency = time.Second

func benchPipeline(b *testing.B, n, k, concurrency int) {
	fx := newFixture(b)
	fx.onboard(b, fx.healthyTenants(100000, n, "bv", true)...)
	fx.cloud.SetLatency(pipelineLatency)
	// Issue 19: the instances share one token sharing key, as Bicep
	// deploys them.
	env := fx.env("LOG_LEVEL=info", "SWEEP_CONCURRENCY="+strconv.Itoa(concurrency), "SWEEP_BUDGET=9m", benchSharingKey(b))
	var ins []*instance
	for range k {
		ins = append(ins, listenWith(b, fx, startHost(b, env), hostListenerOptions(b)))
	}
	for _, phase := range []struct {
		name       string
		roundTrips int
	}{{"cold", 2}, {"warm", 1}} {
		id := "pipeline-" + phase.name
		fx.cloud.ResetCounters()
		if code, raw := timer(b, ins[0].p, id); code != http.StatusOK {
			b.Fatalf("%s: %d %s", phase.name, code, raw)
		}
		run, st := waitRun(b, fx, id, 20*time.Minute)
		if st.Status != "finished" || run.OK != n {
			b.Fatalf("%s run %s: %s", phase.name, st.Status, run)
		}
		wall := time.Duration(run.WallMs) * time.Millisecond
		ideal := time.Duration(n*phase.roundTrips) * pipelineLatency / time.Duration(k*concurrency)
		tokens := float64(fx.cloud.TotalTokenRequests()) / float64(n)
		b.Logf("pipeline %s run of %d tenants on %d instances (C %d each, L %s): wall %.2fs, ideal N·%dL/(K·C) %.2fs, ratio %.2f, %d messages, %d redeliveries, p50 %dms, p95 %dms, %.2f token requests a tenant, %d vault challenges",
			phase.name, n, k, concurrency, pipelineLatency, wall.Seconds(), phase.roundTrips, ideal.Seconds(), wall.Seconds()/ideal.Seconds(),
			run.Messages, run.Redeliveries, run.P50Ms, run.P95Ms, tokens, vaultChallenges(fx.cloud))
		b.ReportMetric(wall.Seconds(), "pipeline-"+phase.name+"-wall-s")
		b.ReportMetric(wall.Seconds()/ideal.Seconds(), "pipeline-"+phase.name+"-ratio")
		b.ReportMetric(tokens, "pipeline-"+phase.name+"-tokens/tenant")
	}
	for i, in := range ins {
		mb := float64(peakRSS(b, in.p.cmd.Process.Pid)) / (1 << 20)
		b.Logf("instance %d: peak RSS %.1f MB", i, mb)
		b.ReportMetric(mb, fmt.Sprintf("instance%d-peak-RSS-MB", i))
	}
}

// benchPlanner fills the registry with n tenants (batch transactions, as
// fast as Azurite takes them) and times one planning: TenantSweep's timer
// with no worker behind it. Issue 19: it prints the run's pacing plan, for a
// registry whose tenants share no token yet (every one signs in: the token
// budget binds; internal/sweep's BenchmarkPlanPacing shows the plan when
// they share fresh ones).
func benchPlanner(b *testing.B, n int) {
	fx := newFixture(b)
	start := time.Now()
	changes := make([]tenant.Change, n)
	for i := range changes {
		id := tenantID(200000 + i)
		changes[i] = tenant.Change{Base: tenant.Record{TenantID: id, DisplayName: "T " + id[:8], Status: tenant.StatusActive, Graph: true,
			OnboardedAt: start, UpdatedAt: start}, Apply: func(*tenant.Record) {}}
	}
	// Eight writers, each with its own partitions, so that every batch
	// transaction is full.
	groups := make([][]tenant.Change, 8)
	for _, ch := range changes {
		g := int(ch.Base.TenantID[1]) % len(groups)
		groups[g] = append(groups[g], ch)
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() {
			for _, err := range fx.store.MutateMany(b.Context(), g) {
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("registry of %d tenants written in %s", n, time.Since(start).Round(time.Second))
	p := startHost(b, fx.env("LOG_LEVEL=info", "SWEEP_BUDGET=9m"))
	base := peakRSS(b, p.cmd.Process.Pid)
	var out struct {
		ReturnValue struct {
			Queued    int          `json:"queued"`
			Messages  int          `json:"messages"`
			WallMs    int64        `json:"wallMs"`
			StartedAt time.Time    `json:"startedAt"`
			Pacing    sweep.Pacing `json:"pacing"`
		}
	}
	code, _, raw := do(b, http.MethodPost, p.base+"/"+sweepFunction, timerEnvelope(b, "timer_steady.json"),
		map[string]string{"X-Azure-Functions-InvocationId": "plan-bench"}, &out)
	if code != http.StatusOK || out.ReturnValue.Queued != n {
		b.Fatalf("plan: %d %.300s", code, raw)
	}
	rv := out.ReturnValue
	secs := float64(rv.WallMs) / 1000
	mb := float64(peakRSS(b, p.cmd.Process.Pid)) / (1 << 20)
	b.Logf("planner: %d tenants in %d messages in %.2fs: %.0f messages/s, %.0f tenants/s; peak RSS %.1f MB (%.1f MB before planning)",
		rv.Queued, rv.Messages, secs, float64(rv.Messages)/secs, float64(rv.Queued)/secs, mb, float64(base)/(1<<20))
	b.ReportMetric(float64(rv.Messages)/secs, "enqueue-messages/s")
	b.ReportMetric(mb, "planner-peak-RSS-MB")
	pc := rv.Pacing
	span := pc.Until.Sub(rv.StartedAt)
	b.Logf("pacing plan: %d Graph requests (%.2f a tenant) at %.0f/s and %d token requests at %.0f/s; the last message deliverable %.1fs after the run's start (Graph alone %.1fs, tokens alone %.1fs)",
		pc.GraphRequests, pc.GraphPerTenant, pc.GraphRate, pc.TokenRequests, pc.TokenRate, span.Seconds(),
		float64(pc.GraphRequests)/pc.GraphRate, float64(pc.TokenRequests)/pc.TokenRate)
	b.ReportMetric(span.Seconds(), "paced-span-s")
}

// BenchmarkSweepConcurrency is how SWEEP_CONCURRENCY's default was chosen:
// the same 1,000-tenant sweep at several concurrencies.
func BenchmarkSweepConcurrency(b *testing.B) {
	for _, c := range []int{16, 32, 64, 128, 256} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			for range b.N {
				benchSweep(b, 1000, c, false)
			}
		})
	}
}

type sweepStats struct {
	wall, ideal, cpu       time.Duration
	tokens, conns, resumed int
	// machine is the CPU time the whole machine spent (handler, fakes,
	// listener, Azurite, anything else running) from the timer to the
	// run's end, over its cores × that time.
	machine float64
	elapsed time.Duration
	cores   int
}

func benchSweep(b *testing.B, n, concurrency int, naive bool) {
	fx := newFixture(b)
	fx.onboard(b, fx.healthyTenants(100000, n, "bv", true)...)
	fx.cloud.SetLatency(benchLatency)
	env := fx.env("LOG_LEVEL=info", "SWEEP_CONCURRENCY="+strconv.Itoa(concurrency), "SWEEP_BUDGET=9m", benchSharingKey(b))
	for _, name := range []string{"GOMEMLIMIT", "GOGC"} {
		if v := os.Getenv(name); v != "" {
			// The runtime's soft memory limit and collector target, to
			// measure their trade of GC CPU for peak memory:
			// GOMEMLIMIT=200MiB make bench, GOGC=200 make bench.
			env = append(env, name+"="+v)
			b.Logf("handler runs with %s=%s", name, v)
		}
	}
	if os.Getenv("BENCH_PROFILE") != "" {
		// The binary is built with -tags pprof (handler/pprof.go): a CPU
		// profile of the handler over both sweeps (they end within a
		// minute at 2,000 tenants and two at 10,000; the naive loop runs
		// after them).
		prof := filepath.Join(os.TempDir(), fmt.Sprintf("tenantsweep-cpu-%d.pprof", n))
		env = append(env, "TENANTSWEEP_CPUPROFILE="+prof, "TENANTSWEEP_CPUPROFILE_SECONDS="+strconv.Itoa(60*max(1, (n+4999)/5000)))
		b.Logf("handler CPU profile: %s (go tool pprof -top %s)", prof, prof)
	}
	p := startHost(b, env)

	// The host's listener as host.json configures it.
	in := listenWith(b, fx, p, hostListenerOptions(b))
	sweepOnce := func(name string, roundTrips int) sweepStats {
		fx.cloud.ResetCounters()
		cpu0 := procCPU(b, p.cmd.Process.Pid)
		busy0, _ := machineCPU(b)
		t0 := time.Now()
		// The whole run as in Azure with one instance: the timer plans onto
		// the queue, the host's listener delivers the work to SweepWorker.
		if code, raw := timer(b, p, "bench-"+name); code != http.StatusOK {
			b.Fatalf("%s sweep: %d %s", name, code, raw)
		}
		run, st := waitRun(b, fx, "bench-"+name, 20*time.Minute)
		busy1, cores := machineCPU(b)
		elapsed := time.Since(t0)
		cpu1 := procCPU(b, p.cmd.Process.Pid)
		if st.Status != "finished" || run.OK != n {
			b.Fatalf("%s sweep %s: %s", name, st.Status, run)
		}
		b.Logf("%s: %s", name, run)
		b.Logf("%s: %s", name, timeline(b, p, run, st.Results, concurrency))
		return sweepStats{
			wall:    time.Duration(run.WallMs) * time.Millisecond,
			ideal:   time.Duration(n*roundTrips) * benchLatency / time.Duration(concurrency),
			cpu:     cpu1 - cpu0,
			tokens:  fx.cloud.TotalTokenRequests(),
			conns:   fx.cloud.Connections(),
			resumed: fx.cloud.ResumedConnections(),
			machine: (busy1 - busy0).Seconds() / (elapsed.Seconds() * float64(cores)),
			elapsed: elapsed,
			cores:   cores,
		}
	}
	cold := sweepOnce("cold", 2)
	warm := sweepOnce("warm", 1)
	rss := peakRSS(b, p.cmd.Process.Pid)
	in.stop()
	<-in.done

	var naiveCold, naiveWarm naiveStats
	if naive {
		naiveCold, naiveWarm = naiveSweeps(b, fx, 100000, n, concurrency, "bv")
	}
	for _, s := range []struct {
		name  string
		st    sweepStats
		naive naiveStats
	}{{"cold", cold, naiveCold}, {"warm", warm, naiveWarm}} {
		ratio := s.st.wall.Seconds() / s.st.ideal.Seconds()
		line := fmt.Sprintf("%s sweep of %5d tenants (C %d, L %s): wall %6.2fs, ideal %6.2fs, ratio %.2f",
			s.name, n, concurrency, benchLatency, s.st.wall.Seconds(), s.st.ideal.Seconds(), ratio)
		if naive {
			line += fmt.Sprintf(", naive serial net/http %6.2fs (%.2f× ours) at %.2f ms/tenant of CPU", s.naive.Wall.Seconds(),
				s.naive.Wall.Seconds()/s.st.wall.Seconds(), s.naive.CPU.Seconds()*1000/float64(n))
			b.ReportMetric(s.naive.Wall.Seconds(), s.name+"-naive-s")
			b.ReportMetric(s.naive.CPU.Seconds()*1000/float64(n), s.name+"-naive-cpu-ms/tenant")
		}
		line += fmt.Sprintf(", CPU %.2f ms/tenant, %d TLS connections (%d resumed), %d token requests, the machine's %d cores %.0f%% busy (the handler %.0f%%)",
			s.st.cpu.Seconds()*1000/float64(n), s.st.conns, s.st.resumed, s.st.tokens,
			s.st.cores, 100*s.st.machine, 100*s.st.cpu.Seconds()/(s.st.elapsed.Seconds()*float64(s.st.cores)))
		b.Log(line)
		b.ReportMetric(ratio, s.name+"-ratio")
		b.ReportMetric(s.st.wall.Seconds(), s.name+"-wall-s")
		b.ReportMetric(s.st.cpu.Seconds()*1000/float64(n), s.name+"-cpu-ms/tenant")
		b.ReportMetric(float64(s.st.tokens), s.name+"-token-requests")
		b.ReportMetric(float64(s.st.conns), s.name+"-connections")
	}
	cpuAvg := (cold.cpu + warm.cpu).Seconds() * 1000 / float64(2*n)
	mb := float64(rss) / (1 << 20)
	line := fmt.Sprintf("handler CPU %.2f ms per tenant-sweep (cold and warm averaged)", cpuAvg)
	if naive {
		naiveAvg := (naiveCold.CPU + naiveWarm.CPU).Seconds() * 1000 / float64(2*n)
		line += fmt.Sprintf(", the naive loop's %.2f ms (ours %.2f×)", naiveAvg, cpuAvg/naiveAvg)
		b.ReportMetric(naiveAvg, "naive-cpu-ms/tenant-sweep")
	}
	b.Logf("%s; peak RSS %.1f MB, %.1f MB per 1,000 tenants", line, mb, mb*1000/float64(n))
	b.ReportMetric(cpuAvg, "cpu-ms/tenant-sweep")
	b.ReportMetric(mb, "peak-RSS-MB")
}

// timeline says where a queued run's wall time went: planning (the
// planner's own log line), the first message's completion, and how busy
// the process's C slots were (the tenants' durations over C × wall).
func timeline(tb testing.TB, p *proc, run sweep.Run, results []sweep.WorkResult, concurrency int) string {
	var planned float64
	// The handler is still running: a last line may be half written.
	for line := range strings.Lines(p.stdout.String()) {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["message"] == "sweep planned" && l["runId"] == run.ID {
			planned, _ = l["wallMs"].(float64)
		}
	}
	var busy int64
	first := time.Time{}
	for _, r := range results {
		for _, d := range r.DurationsMs {
			busy += d
		}
		if first.IsZero() || r.FinishedAt.Before(first) {
			first = r.FinishedAt
		}
	}
	wall := float64(run.WallMs)
	if len(results) == 0 || wall <= 0 {
		return "no work results"
	}
	return fmt.Sprintf("planned in %.2fs, first message done at +%.2fs, slots busy %.0f%% of the wall",
		planned/1000, first.Sub(run.StartedAt).Seconds(), 100*float64(busy)/(wall*float64(concurrency)))
}

// naiveStats is one sweep of the naive baseline: its wall time and the CPU
// its process spent on it.
type naiveStats struct {
	Wall time.Duration `json:"wall"`
	CPU  time.Duration `json:"cpu"`
}

// naiveSweeps is the baseline: for each tenant, plain net/http requests one
// after another (the Graph token, the Key Vault token, the organization,
// the user count, the secret; warm: the last three with the cold sweep's
// tokens), C tenants at a time, against the same fakes with the same
// latency. It runs in a process of its own (this test binary, as
// TestNaiveChild) that reaches the fakes as the handler does, through
// HTTPS_PROXY and SSL_CERT_FILE with Go's default transport (HTTP/2, a
// vault's connection closed after its read), so that its CPU is measured
// apart from the fakes' and compared with the handler's. It returns the two
// sweeps.
func naiveSweeps(b *testing.B, fx *fixture, first, n, concurrency int, prefix string) (cold, warm naiveStats) {
	out := filepath.Join(b.TempDir(), "naive.json")
	cmd := exec.Command(os.Args[0], "-test.run=^TestNaiveChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NAIVE_CHILD="+out, "NAIVE_FIRST="+strconv.Itoa(first), "NAIVE_N="+strconv.Itoa(n),
		"NAIVE_C="+strconv.Itoa(concurrency), "NAIVE_VAULT_PREFIX="+prefix,
		"HTTPS_PROXY="+fx.cloud.ProxyURL(), "SSL_CERT_FILE="+fx.caFile, "NO_PROXY=", "GOMAXPROCS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("naive baseline: %v\n%s", err, msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	var res [2]naiveStats
	if err := json.Unmarshal(raw, &res); err != nil {
		b.Fatal(err)
	}
	return res[0], res[1]
}

// TestNaiveChild is the naive baseline's process (naiveSweeps); it does
// nothing in a normal test run.
func TestNaiveChild(t *testing.T) {
	out := os.Getenv("NAIVE_CHILD")
	if out == "" {
		t.Skip("the naive baseline's process, run by the benchmarks")
	}
	atoi := func(k string) int { v, _ := strconv.Atoi(os.Getenv(k)); return v }
	first, n, concurrency, prefix := atoi("NAIVE_FIRST"), atoi("NAIVE_N"), atoi("NAIVE_C"), os.Getenv("NAIVE_VAULT_PREFIX")
	tr := http.DefaultTransport.(*http.Transport).Clone() // HTTPS_PROXY, SSL_CERT_FILE
	tr.MaxIdleConnsPerHost, tr.MaxIdleConns = concurrency, 2*concurrency
	hc := &http.Client{Transport: tr}
	var failed sync.Once
	var failure error
	call := func(req *http.Request, into any) {
		resp, err := hc.Do(req)
		if err == nil {
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("naive %s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
			} else if into != nil {
				err = json.Unmarshal(body, into)
			}
		}
		if err != nil {
			failed.Do(func() { failure = err })
		}
	}
	token := func(tid, scope string) string {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {testAppID}, "client_secret": {testAppSecret}, "scope": {scope}}
		req, _ := http.NewRequest(http.MethodPost, "https://"+cloudtest.LoginHost+"/"+tid+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		var tk struct {
			AccessToken string `json:"access_token"`
		}
		call(req, &tk)
		return tk.AccessToken
	}
	get := func(rawURL, tok string, hdr ...string) {
		req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if len(hdr) == 2 {
			req.Header.Set(hdr[0], hdr[1])
		}
		// A vault is one tenant's, read once a sweep: its connection is
		// not kept (the bench process's descriptors would not hold one
		// per vault at 10,000 tenants).
		req.Close = strings.HasSuffix(req.URL.Hostname(), "."+cloudtest.VaultSuffix)
		call(req, nil)
	}
	graphTok, vaultTok := make([]string, n), make([]string, n)
	sweep := func(withTokens bool) naiveStats {
		cpu0 := selfCPU(t)
		start := time.Now()
		work := make(chan int)
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				for i := range work {
					tid := tenantID(first + i)
					if withTokens {
						graphTok[i] = token(tid, cloudtest.GraphResource+"/.default")
						vaultTok[i] = token(tid, cloudtest.VaultResource+"/.default")
					}
					get("https://"+cloudtest.GraphHost+"/v1.0/organization?$select=id,displayName", graphTok[i])
					get("https://"+cloudtest.GraphHost+"/v1.0/users/$count", graphTok[i], "ConsistencyLevel", "eventual")
					get(cloudtest.VaultURL(fmt.Sprintf("%s%d", prefix, i))+"/secrets/db-password?api-version=7.5", vaultTok[i])
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		return naiveStats{Wall: time.Since(start), CPU: selfCPU(t) - cpu0}
	}
	res := [2]naiveStats{sweep(true), sweep(false)}
	if failure != nil {
		t.Fatal(failure)
	}
	b, _ := json.Marshal(res)
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// selfCPU is the user and system CPU time this process has used.
func selfCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, the unit of /proc's CPU times on Linux.
const clockTicks = 100

// procCPU is the user+system CPU time the process has used so far.
func procCPU(tb testing.TB, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// machineCPU is the CPU time all cores have spent busy so far (user, nice,
// system, irq and softirq of /proc/stat's cpu line: not idle, iowait or
// steal; guest time is counted in user already), and the number of cores
// /proc/stat counts (its cpuN lines), whatever this process's affinity.
func machineCPU(tb testing.TB) (busy time.Duration, cores int) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	var ticks int64
	for line := range strings.Lines(string(raw)) {
		rest, ok := strings.CutPrefix(line, "cpu")
		switch {
		case !ok:
		case strings.HasPrefix(rest, " "):
			for i, f := range strings.Fields(rest) {
				if v, _ := strconv.ParseInt(f, 10, 64); i != 3 && i != 4 && i < 7 {
					ticks += v
				}
			}
		case rest != "" && rest[0] >= '0' && rest[0] <= '9':
			cores++
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks, max(cores, 1)
}

// peakRSS is the process's high-water resident set size in bytes.
func peakRSS(tb testing.TB, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	tb.Fatal("no VmHWM in /proc status")
	return 0
}

// --- Issue 19: the throttle governor against Graph's app-wide limit ---

// benchSharingKey is a TOKEN_SHARING_KEY setting, as Bicep deploys one.
func benchSharingKey(b *testing.B) string {
	b.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		b.Fatal(err)
	}
	return "TOKEN_SHARING_KEY=" + base64.StdEncoding.EncodeToString(k)
}

// BenchmarkGovernor runs a sweep of N tenants on K instances against a fake
// Graph that throttles the app across all tenants (a token bucket of R
// requests a second with a second's burst, each $batch step counted and
// throttled on its own, 429 with Retry-After beyond it), and reports the
// wall time against the floor the limit sets (every tenant's Graph
// requests at R a second), the share of Graph requests answered 429 and
// the 429s per 10-second window. Planned is SWEEP_GRAPH_RATE: R (the
// budget set from the documented limit) and 3R (set too high: the gates
// must make up for it).
func BenchmarkGovernor(b *testing.B) {
	const n, k, c, rate = 1200, 3, 64, 40
	for _, planned := range []int{rate, 3 * rate} {
		b.Run(fmt.Sprintf("tenants=%d/instances=%d/limit=%d/planned=%d", n, k, rate, planned), func(b *testing.B) {
			for range b.N {
				benchGovernor(b, n, k, c, rate, planned)
			}
		})
	}
}

func benchGovernor(b *testing.B, n, k, concurrency, rate, planned int) {
	fx := newFixture(b)
	fx.onboard(b, fx.healthyTenants(100000, n, "gv", true)...)
	fx.cloud.SetLatency(benchLatency)
	env := fx.env("LOG_LEVEL=info", "SWEEP_CONCURRENCY="+strconv.Itoa(concurrency), "SWEEP_BUDGET=9m", benchSharingKey(b),
		"SWEEP_GRAPH_RATE="+strconv.Itoa(planned))
	var ins []*instance
	for range k {
		ins = append(ins, listenWith(b, fx, startHost(b, env), hostListenerOptions(b)))
	}
	fx.cloud.SetGraphAppLimit(cloudtest.GraphAppLimit{Rate: float64(rate)})
	id := fmt.Sprintf("governor-%d", planned)
	if code, raw := timer(b, ins[0].p, id); code != http.StatusOK {
		b.Fatalf("timer: %d %s", code, raw)
	}
	run, st := waitRun(b, fx, id, 20*time.Minute)
	stats := fx.cloud.GraphThrottleStats()
	if st.Status != "finished" || run.OK != n {
		b.Fatalf("run %s: %s", st.Status, run)
	}
	wall := time.Duration(run.WallMs) * time.Millisecond
	through := stats.Requests - stats.Throttled
	floor := time.Duration(float64(through) / float64(rate) * float64(time.Second))
	share := 100 * float64(stats.Throttled) / float64(max(stats.Requests, 1))
	var windows []string
	for _, w := range stats.Windows {
		windows = append(windows, strconv.Itoa(w.Throttled))
	}
	b.Logf("%d tenants on %d instances against %d Graph requests/s, planned for %d/s: wall %.2fs, floor %.2fs (%d requests at %d/s), ratio %.2f; %d of %d Graph requests answered 429 (%.1f%%), %d tenants throttled; 429s per 10 s window: %s",
		n, k, rate, planned, wall.Seconds(), floor.Seconds(), through, rate, wall.Seconds()/floor.Seconds(), stats.Throttled, stats.Requests, share,
		run.Failed[outcome.Throttled], strings.Join(windows, " "))
	b.Logf("%s", run)
	b.ReportMetric(wall.Seconds()/floor.Seconds(), "floor-ratio")
	b.ReportMetric(share, "429-percent")
	b.ReportMetric(float64(run.Failed[outcome.Throttled]), "throttled-tenants")
}

// BenchmarkPlanner is the planner alone: its enqueue rate, its pacing plan
// and its peak RSS planning a registry of 100,000 tenants. It is the last
// benchmark of `make bench`: an in-memory Azurite takes a while to drop a
// table of 100,000 rows, and a benchmark after it timed out on the registry.
func BenchmarkPlanner(b *testing.B) {
	b.Run("plan=100000", func(b *testing.B) {
		for range b.N {
			benchPlanner(b, 100000)
		}
	})
}
