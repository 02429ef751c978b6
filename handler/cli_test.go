package main

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
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

func TestLineOf(t *testing.T) {
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	since := at.Add(-time.Hour)
	tests := []struct {
		name               string
		rec                tenant.Record
		outcome, step, fix string
		since              *time.Time
	}{
		{"never checked", tenant.Record{}, "", "", "", nil},
		{"verified only", tenant.Record{Verification: &tenant.Verification{Outcome: outcome.AppNotInTenant, Step: "3", Remediation: "az ad sp create", At: at}},
			"app_not_in_tenant", "3", "az ad sp create", &at},
		{"swept", tenant.Record{
			Verification: &tenant.Verification{Outcome: outcome.AppNotInTenant, At: at},
			LastSweep:    &tenant.SweepResult{At: at, Outcome: outcome.SecretNotFound, Step: "5", Remediation: "create it", OutcomeSince: since}},
			"secret_not_found", "5", "create it", &since},
		{"swept before outcomeSince was kept", tenant.Record{LastSweep: &tenant.SweepResult{At: at, Outcome: outcome.OK}}, "ok", "", "", &at},
		{"unreadable row", tenant.Record{Damage: &tenant.Damage{Code: tenant.DamageCode, Property: "KeyVaults"},
			LastSweep: &tenant.SweepResult{At: at, Outcome: outcome.OK}}, tenant.DamageCode, "", "the registry row's KeyVaults does not decode; register the tenant again to rewrite it", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := lineOf(tt.rec)
			if string(l.Outcome) != tt.outcome || l.Step != tt.step || l.Fix != tt.fix ||
				(l.Since == nil) != (tt.since == nil) || l.Since != nil && !l.Since.Equal(*tt.since) {
				t.Errorf("lineOf = %+v (since %v), want outcome %q step %q fix %q since %v", l, l.Since, tt.outcome, tt.step, tt.fix, tt.since)
			}
		})
	}
}
