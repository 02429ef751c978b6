//go:build pprof

package main

// Built only with -tags pprof (BENCH_PROFILE=1 make bench does): a CPU
// profile of the whole handler process, and a heap profile at its end, for
// finding where a sweep's CPU and memory go. The deployed binary has none of
// this.

import (
	"encoding/json"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
)

func init() {
	path := os.Getenv("TENANTSWEEP_CPUPROFILE")
	if path == "" {
		return
	}
	// A finer heap sample than the default 512 KB, to see per-tenant state.
	runtime.MemProfileRate = 16 << 10
	f, err := os.Create(path)
	if err != nil {
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return
	}
	secs, _ := strconv.Atoi(os.Getenv("TENANTSWEEP_CPUPROFILE_SECONDS"))
	go func() {
		time.Sleep(time.Duration(max(secs, 1)) * time.Second)
		pprof.StopCPUProfile()
		f.Close()
		// And what the heap holds then: the warm process's live memory (a
		// heap profile is as of the last collection, which may have been
		// mid-sweep).
		runtime.GC()
		if h, err := os.Create(path + ".heap"); err == nil {
			_ = pprof.Lookup("heap").WriteTo(h, 0)
			h.Close()
		}
		// And where the resident memory is: heap, stacks, runtime.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if b, err := json.MarshalIndent(map[string]uint64{
			"HeapAlloc": ms.HeapAlloc, "HeapInuse": ms.HeapInuse, "HeapIdle": ms.HeapIdle,
			"HeapReleased": ms.HeapReleased, "StackInuse": ms.StackInuse, "Sys": ms.Sys, "NumGC": uint64(ms.NumGC),
		}, "", "  "); err == nil {
			_ = os.WriteFile(path+".memstats", b, 0o600)
		}
	}()
}
