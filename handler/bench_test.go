package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
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
// the CPU, not the pipeline. Then the planner alone: its enqueue rate and
// peak RSS planning a registry of 100,000 tenants.
func BenchmarkPipeline(b *testing.B) {
	const n, c = 3000, 64
	for _, k := range []int{1, 3} {
		b.Run(fmt.Sprintf("tenants=%d/instances=%d", n, k), func(b *testing.B) {
			for range b.N {
				benchPipeline(b, n, k, c)
			}
		})
	}
	b.Run("plan=100000", func(b *testing.B) {
		for range b.N {
			benchPlanner(b, 100000)
		}
	})
}

// pipelineLatency is L of the pipeline benchmark: a slow tenant, so that
// the run is bound by round trips and instances, not by the CPU.
const pipelineLatency = time.Second

func benchPipeline(b *testing.B, n, k, concurrency int) {
	fx := newFixture(b)
	fx.onboard(b, fx.healthyTenants(100000, n, "bv", true)...)
	fx.cloud.SetLatency(pipelineLatency)
	env := fx.env("LOG_LEVEL=info", "SWEEP_CONCURRENCY="+strconv.Itoa(concurrency), "SWEEP_BUDGET=9m")
	var ins []*instance
	for range k {
		ins = append(ins, listenWith(b, fx, startHost(b, env), hostListenerOptions(b)))
	}
	for _, phase := range []struct {
		name       string
		roundTrips int
	}{{"cold", 2}, {"warm", 1}} {
		id := "pipeline-" + phase.name
		if code, raw := timer(b, ins[0].p, id); code != http.StatusOK {
			b.Fatalf("%s: %d %s", phase.name, code, raw)
		}
		run, st := waitRun(b, fx, id, 20*time.Minute)
		if st.Status != "finished" || run.OK != n {
			b.Fatalf("%s run %s: %s", phase.name, st.Status, run)
		}
		wall := time.Duration(run.WallMs) * time.Millisecond
		ideal := time.Duration(n*phase.roundTrips) * pipelineLatency / time.Duration(k*concurrency)
		b.Logf("pipeline %s run of %d tenants on %d instances (C %d each, L %s): wall %.2fs, ideal N·%dL/(K·C) %.2fs, ratio %.2f, %d messages, %d redeliveries, p50 %dms, p95 %dms",
			phase.name, n, k, concurrency, pipelineLatency, wall.Seconds(), phase.roundTrips, ideal.Seconds(), wall.Seconds()/ideal.Seconds(),
			run.Messages, run.Redeliveries, run.P50Ms, run.P95Ms)
		b.ReportMetric(wall.Seconds(), "pipeline-"+phase.name+"-wall-s")
		b.ReportMetric(wall.Seconds()/ideal.Seconds(), "pipeline-"+phase.name+"-ratio")
	}
	for i, in := range ins {
		mb := float64(peakRSS(b, in.p.cmd.Process.Pid)) / (1 << 20)
		b.Logf("instance %d: peak RSS %.1f MB", i, mb)
		b.ReportMetric(mb, fmt.Sprintf("instance%d-peak-RSS-MB", i))
	}
}

// benchPlanner fills the registry with n tenants (batch transactions, as
// fast as Azurite takes them) and times one planning: TenantSweep's timer
// with no worker behind it.
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
			Queued   int   `json:"queued"`
			Messages int   `json:"messages"`
			WallMs   int64 `json:"wallMs"`
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
	env := fx.env("LOG_LEVEL=info", "SWEEP_CONCURRENCY="+strconv.Itoa(concurrency), "SWEEP_BUDGET=9m")
	if limit := os.Getenv("GOMEMLIMIT"); limit != "" {
		// The runtime's soft memory limit, to measure its trade of GC CPU
		// for a lower peak: GOMEMLIMIT=200MiB make bench.
		env = append(env, "GOMEMLIMIT="+limit)
		b.Logf("handler runs with GOMEMLIMIT=%s", limit)
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

	var naiveCold, naiveWarm time.Duration
	if naive {
		naiveCold, naiveWarm = naiveSweeps(b, fx.cloud, n, concurrency)
	}
	for _, s := range []struct {
		name  string
		st    sweepStats
		naive time.Duration
	}{{"cold", cold, naiveCold}, {"warm", warm, naiveWarm}} {
		ratio := s.st.wall.Seconds() / s.st.ideal.Seconds()
		line := fmt.Sprintf("%s sweep of %5d tenants (C %d, L %s): wall %6.2fs, ideal %6.2fs, ratio %.2f",
			s.name, n, concurrency, benchLatency, s.st.wall.Seconds(), s.st.ideal.Seconds(), ratio)
		if naive {
			line += fmt.Sprintf(", naive serial net/http %6.2fs (%.2f× ours)", s.naive.Seconds(), s.naive.Seconds()/s.st.wall.Seconds())
			b.ReportMetric(s.naive.Seconds(), s.name+"-naive-s")
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
	b.Logf("handler CPU %.2f ms per tenant-sweep (cold and warm averaged); peak RSS %.1f MB, %.1f MB per 1,000 tenants, ~%.0f MB estimated at 100,000",
		cpuAvg, mb, mb*1000/float64(n), mb*100000/float64(n))
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

// naiveSweeps is the baseline: for each tenant, plain net/http requests one
// after another (the Graph token, the Key Vault token, the organization,
// the user count, the secret; warm: the last three with the cold sweep's
// tokens), C tenants at a time, against the same fakes with the same
// latency, in the benchmark process. It returns the two sweeps' wall times.
func naiveSweeps(b *testing.B, c *cloudtest.Cloud, n, concurrency int) (cold, warm time.Duration) {
	hc := c.HTTPClient()
	call := func(req *http.Request, into any) {
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("naive %s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
		}
		if into != nil {
			if err := json.Unmarshal(body, into); err != nil {
				b.Fatal(err)
			}
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
		call(req, nil)
	}
	graphTok, vaultTok := make([]string, n), make([]string, n)
	sweep := func(withTokens bool) time.Duration {
		start := time.Now()
		work := make(chan int)
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				for i := range work {
					tid := tenantID(100000 + i)
					if withTokens {
						graphTok[i] = token(tid, cloudtest.GraphResource+"/.default")
						vaultTok[i] = token(tid, cloudtest.VaultResource+"/.default")
					}
					get("https://"+cloudtest.GraphHost+"/v1.0/organization?$select=id,displayName", graphTok[i])
					get("https://"+cloudtest.GraphHost+"/v1.0/users/$count", graphTok[i], "ConsistencyLevel", "eventual")
					get(cloudtest.VaultURL(fmt.Sprintf("bv%d", i))+"/secrets/db-password?api-version=7.5", vaultTok[i])
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		return time.Since(start)
	}
	return sweep(true), sweep(false)
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
