package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const benchLatency = 30 * time.Millisecond

// BenchmarkSweep runs the real sweep, in the built binary serving the host
// protocol, against the fakes with benchLatency on every Entra ID, Graph and
// Key Vault call and a real Azurite registry. It reports wall time next to
// the ideal N·L/C, where L is the per-tenant chain of calls times the
// latency, counted from the fakes in the same run. Run it with `make bench`.
func BenchmarkSweep(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			for range b.N {
				benchSweep(b, n, 64)
			}
		})
	}
}

// BenchmarkSweepConcurrency is how SWEEP_CONCURRENCY's default was chosen:
// the same 1,000-tenant sweep at several concurrencies.
func BenchmarkSweepConcurrency(b *testing.B) {
	for _, c := range []int{16, 32, 64, 128, 256} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			for range b.N {
				benchSweep(b, 1000, c)
			}
		})
	}
}

func benchSweep(b *testing.B, n, concurrency int) {
	fx := newFixture(b)
	fx.onboard(b, fx.healthyTenants(100000, n, "b", true)...)
	fx.cloud.SetLatency(benchLatency)
	env := fx.env("LOG_LEVEL=info", "SWEEP_CONCURRENCY="+strconv.Itoa(concurrency), "SWEEP_BUDGET=20m")
	if limit := os.Getenv("GOMEMLIMIT"); limit != "" {
		// The runtime's soft memory limit, to measure its trade of GC CPU
		// for a lower peak: GOMEMLIMIT=200MiB make bench.
		env = append(env, "GOMEMLIMIT="+limit)
		b.Logf("handler runs with GOMEMLIMIT=%s", limit)
	}
	p := startHost(b, env)

	type sweepStats struct {
		wall, ideal     time.Duration
		calls, tokens   int
		cpu             time.Duration
		chainLatency    time.Duration
		ok, total, errs int
	}
	sweepOnce := func(name string) sweepStats {
		fx.cloud.ResetCounters()
		cpu0 := procCPU(b, p.cmd.Process.Pid)
		var out struct {
			ReturnValue struct {
				WallMs      int64 `json:"wallMs"`
				OK          int   `json:"ok"`
				Total       int   `json:"total"`
				WriteErrors int   `json:"writeErrors"`
			}
		}
		code, _, raw := do(b, http.MethodPost, p.base+"/"+sweepFunction, timerEnvelope(b, "timer_steady.json"),
			map[string]string{"X-Azure-Functions-InvocationId": "bench-" + name}, &out)
		if code != http.StatusOK {
			b.Fatalf("%s sweep: %d %s", name, code, raw)
		}
		s := sweepStats{
			wall:  time.Duration(out.ReturnValue.WallMs) * time.Millisecond,
			calls: len(fx.cloud.Requests()), tokens: fx.cloud.TotalTokenRequests(),
			cpu: procCPU(b, p.cmd.Process.Pid) - cpu0,
			ok:  out.ReturnValue.OK, total: out.ReturnValue.Total, errs: out.ReturnValue.WriteErrors,
		}
		// Each tenant's calls are sequential, so its chain is its call count
		// times the latency; the ideal runs C chains at once, back to back.
		s.chainLatency = time.Duration(float64(s.calls) / float64(n) * float64(benchLatency))
		s.ideal = time.Duration(float64(n) * float64(s.chainLatency) / float64(concurrency))
		if s.ok != n || s.errs != 0 {
			b.Fatalf("%s sweep: %d of %d ok, %d write errors", name, s.ok, s.total, s.errs)
		}
		return s
	}
	first := sweepOnce("first")
	second := sweepOnce("second")
	rss := peakRSS(b, p.cmd.Process.Pid)

	for _, s := range []struct {
		name string
		st   sweepStats
	}{{"first", first}, {"second", second}} {
		ratio := s.st.wall.Seconds() / s.st.ideal.Seconds()
		b.Logf("%-6s sweep of %5d tenants: wall %6.2fs, ideal N·L/C %6.2fs (L %3.0fms = %.1f calls × %s, C %d), ratio %.3f, CPU %.2fs per 1,000 tenants, %d token requests",
			s.name, n, s.st.wall.Seconds(), s.st.ideal.Seconds(), float64(s.st.chainLatency)/float64(time.Millisecond),
			float64(s.st.calls)/float64(n), benchLatency, concurrency, ratio, s.st.cpu.Seconds()*1000/float64(n), s.st.tokens)
		b.ReportMetric(ratio, s.name+"-ratio")
		b.ReportMetric(s.st.wall.Seconds(), s.name+"-wall-s")
		b.ReportMetric(s.st.cpu.Seconds()*1000/float64(n), s.name+"-cpu-s/1k")
		b.ReportMetric(float64(s.st.tokens), s.name+"-token-requests")
	}
	b.Logf("peak RSS of the handler process: %.1f MB", float64(rss)/(1<<20))
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
}

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
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
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
