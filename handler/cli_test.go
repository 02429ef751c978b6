package main

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/sweep"
)

func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	var p progressLine
	p.show(&b, sweep.Progress{Done: 1, Todo: 3, OK: 1, Elapsed: time.Second})
	p.show(&b, sweep.Progress{Done: 2, Todo: 3, OK: 1, Failed: 1, Elapsed: time.Second}) // within progressEvery: skipped
	p.show(&b, sweep.Progress{Done: 3, Todo: 3, OK: 2, Failed: 1, Elapsed: 2 * time.Second})
	p.end(&b)
	want := "1/3 tenants, 1 ok, 0 failed, 1.0 tenants/s\033[K\r3/3 tenants, 2 ok, 1 failed, 1.5 tenants/s\033[K\r\n"
	if b.String() != want {
		t.Errorf("progress = %q, want %q", b.String(), want)
	}
	var none bytes.Buffer
	(&progressLine{}).end(&none)
	if none.Len() != 0 {
		t.Errorf("end without progress wrote %q", none.String())
	}
}

// Only a terminal gets the progress line: a pipe or a file (the host's, a
// log) does not.
func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"buffer": &bytes.Buffer{}, "file": f, "pipe": w} {
		if isTerminal(out) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
}
