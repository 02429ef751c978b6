//go:build pprof

package main

// Built only with -tags pprof (BENCH_PROFILE=1 make bench does): a CPU
// profile of the whole handler process, for finding where a sweep's CPU
// goes. The deployed binary has none of this.

import (
	"os"
	"runtime/pprof"
	"strconv"
	"time"
)

func init() {
	path := os.Getenv("TENANTSWEEP_CPUPROFILE")
	if path == "" {
		return
	}
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
	}()
}
