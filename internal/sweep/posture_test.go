package sweep

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/posture"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

type fixedPosture posture.Report

func (f fixedPosture) Check(context.Context) posture.Report { return posture.Report(f) }

// A planned run carries the app's posture in its summary and its history,
// and logs it as one line, at warn when a credential expires soon.
func TestPlanReportsThePosture(t *testing.T) {
	expiring := posture.Report{At: time.Now(), Checked: []string{"the app's certificate file"},
		Expiring: []posture.Credential{{Kind: "certificate", Name: "CN=app", ExpiresOn: time.Now().Add(5 * 24 * time.Hour), Where: "local"}}}
	for _, tc := range []struct {
		name  string
		r     posture.Report
		level string
	}{
		{"expiring", expiring, "warn"},
		{"ok", posture.Report{At: time.Now(), Checked: []string{"the app registration"}}, "info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline([]tenant.Record{{TenantID: "aaaaaaaa-0000-4000-8000-000000000001", Status: tenant.StatusActive}}, 16)
			p.planner.opt.Posture = fixedPosture(tc.r)
			var logs bytes.Buffer
			ctx := zerolog.New(&logs).WithContext(context.Background())
			run, err := p.planner.Plan(ctx, Request{ID: "run-" + tc.name, Trigger: "timer"})
			if err != nil {
				t.Fatal(err)
			}
			if run.Posture == nil || run.PostureString() != tc.r.String() {
				t.Fatalf("run posture = %+v", run.Posture)
			}
			if len(p.hist.runs) != 1 || p.hist.runs[0].Posture == nil {
				t.Errorf("history = %+v", p.hist.runs)
			}
			line := ""
			for l := range strings.SplitSeq(logs.String(), "\n") {
				if strings.Contains(l, `"message":"app posture"`) {
					line = l
				}
			}
			if !strings.Contains(line, `"level":"`+tc.level+`"`) || !strings.Contains(line, `"runId":"run-`+tc.name+`"`) {
				t.Errorf("posture line %q, want level %s", line, tc.level)
			}
		})
	}
}
