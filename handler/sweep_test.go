package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// inProcess wires the real app (registry on Azurite, azidentity, Graph and
// Key Vault SDKs) against the fakes, with the given settings on top of the
// fixture's.
func (fx *fixture) inProcess(t testing.TB, d deps, settings ...string) *app {
	t.Helper()
	vals := map[string]string{
		"TENANT_REGISTRY_CONNECTION": fx.reg.Connection,
		"TENANT_REGISTRY_TABLE":      fx.reg.Table,
		"SWEEP_RUNS_TABLE":           fx.reg.RunsTable,
		"AzureWebJobsStorage":        fx.queue.Connection,
		"SWEEP_QUEUE":                fx.queue.Name,
		"APP_CLIENT_ID":              testAppID,
		"APP_CLIENT_SECRET":          testAppSecret,
		"SWEEP_BUDGET":               "5m",
		"LOG_LEVEL":                  "warn",
	}
	for i := 0; i+1 < len(settings); i += 2 {
		vals[settings[i]] = settings[i+1]
	}
	cfg, err := config.Load(func(k string) string { return vals[k] }, 10*time.Minute) // host.json's functionTimeout
	if err != nil {
		t.Fatal(err)
	}
	d.transport = fx.cloud.HTTPClient()
	a, err := newApp(context.Background(), cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sweepIn runs one sweep in process as `handler sweep` does: planned into a
// queue of the process's own whose every message runs through the worker
// SweepWorker uses. An empty id gets a new one.
func sweepIn(a *app, id string) (sweep.Run, error) {
	ctx, _ := funchost.Begin(context.Background(), zerolog.Nop(), sweepFunction, id)
	return a.sweepNow(ctx, "", false, io.Discard)
}

// onboard records tenants straight in the registry, as the API would.
func (fx *fixture) onboard(t testing.TB, regs ...tenant.Registration) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(regs))
	for _, r := range regs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, _, err := fx.store.Mutate(context.Background(), r.TenantID, func(rec *tenant.Record, exists bool) error {
				r.Apply(rec, exists, time.Now())
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// healthyTenants adds n healthy tenants to the fakes, with ids from first on
// and vaults named prefix0, prefix1, ..., and returns their registrations:
// with the vault's db-password secret when withVault, Graph only otherwise.
func (fx *fixture) healthyTenants(first, n int, prefix string, withVault bool) []tenant.Registration {
	regs := make([]tenant.Registration, n)
	for i := range n {
		id, vault := tenantID(first+i), fmt.Sprintf("%s%d", prefix, i)
		fx.healthyTenant(id, vault)
		if withVault {
			regs[i] = reg(id, true, vault, "db-password")
		} else {
			regs[i] = reg(id, true, "")
		}
	}
	return regs
}

func reg(id string, graph bool, vault string, secrets ...string) tenant.Registration {
	r := tenant.Registration{TenantID: id, DisplayName: "T " + id[:8], Graph: &graph}
	if vault != "" {
		r.KeyVaults = []tenant.KeyVault{{VaultURL: cloudtest.VaultURL(vault) + "/", Secrets: secrets}}
	}
	return r
}

// faultProber injects panics and hangs that ignore the context into the
// real per-tenant work of chosen tenants.
type faultProber struct {
	sweep.Prober
	panics, hangs map[string]bool
}

func (f faultProber) Probe(ctx context.Context, rec tenant.Record) tenant.SweepResult {
	if f.panics[rec.TenantID] {
		panic("injected fault for " + rec.TenantID)
	}
	if f.hangs[rec.TenantID] {
		time.Sleep(8 * time.Second) // past the 5 s budget and the 2 s grace: abandoned
	}
	return f.Prober.Probe(ctx, rec)
}

// TestMixedFaultSweep sweeps hundreds of tenants with a fixed mix of every
// outcome, hangs and panics, and checks each tenant's record.
func TestMixedFaultSweep(t *testing.T) {
	fx := newFixture(t)
	const healthy = 240
	want := map[string]outcome.Code{}
	var regs []tenant.Registration
	add := func(id string, code outcome.Code, r tenant.Registration) {
		want[id] = code
		regs = append(regs, r)
	}
	n := 0
	next := func() string { n++; return tenantID(1000 + n) }
	for range healthy {
		id := next()
		fx.healthyTenant(id, "h"+id[:8])
		add(id, outcome.OK, reg(id, true, "h"+id[:8], "db-password"))
	}
	faults := []struct {
		code  outcome.Code
		setup func(id string) tenant.Registration
	}{
		{outcome.AppNotInTenant, func(id string) tenant.Registration {
			fx.cloud.AddTenant(id, cloudtest.Tenant{SignIn: cloudtest.FaultAppNotInTenant})
			return reg(id, true, "")
		}},
		{outcome.TenantNotFound, func(id string) tenant.Registration { return reg(id, true, "") }},
		{outcome.GraphConsentMissing, func(id string) tenant.Registration {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", GraphStatus: 403})
			return reg(id, true, "")
		}},
		{outcome.GraphPermissionMissing, func(id string) tenant.Registration {
			fx.healthyTenant(id, "r"+id[:8])
			fx.cloud.UpdateTenant(id, func(tn *cloudtest.Tenant) { tn.GraphRoles = []string{"Organization.Read.All"} })
			return reg(id, true, "r"+id[:8], "db-password")
		}},
		{outcome.KeyVaultAccessDenied, func(id string) tenant.Registration {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x"})
			fx.cloud.AddVault("d"+id[:8], id, cloudtest.Vault{Status: 403})
			return reg(id, false, "d"+id[:8], "db-password")
		}},
		{outcome.SecretNotFound, func(id string) tenant.Registration {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x"})
			fx.cloud.AddVault("n"+id[:8], id, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{}})
			return reg(id, false, "n"+id[:8], "missing")
		}},
		{outcome.Throttled, func(id string) tenant.Registration {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", GraphStatus: 429})
			return reg(id, true, "")
		}},
		{outcome.UpstreamError, func(id string) tenant.Registration {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", GraphStatus: 503})
			return reg(id, true, "")
		}},
		{outcome.Timeout, func(id string) tenant.Registration {
			fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", GraphHang: true})
			return reg(id, true, "")
		}},
	}
	for _, f := range faults {
		for range 5 {
			id := next()
			add(id, f.code, f.setup(id))
		}
	}
	panics, hangs := map[string]bool{}, map[string]bool{}
	for range 3 {
		id := next()
		fx.healthyTenant(id, "p"+id[:8])
		add(id, outcome.InternalError, reg(id, true, "p"+id[:8], "db-password"))
		panics[id] = true
		id = next()
		fx.healthyTenant(id, "g"+id[:8])
		add(id, outcome.Timeout, reg(id, true, "g"+id[:8], "db-password"))
		hangs[id] = true
	}
	// Throttling that recovers within the budget is still ok.
	for range 5 {
		id := next()
		fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", Users: 2, GraphThrottle: 2, SignInThrottle: 1})
		add(id, outcome.OK, reg(id, true, ""))
	}
	fx.onboard(t, regs...)

	a := fx.inProcess(t, deps{wrapProber: func(p sweep.Prober) sweep.Prober {
		return faultProber{Prober: p, panics: panics, hangs: hangs}
	}}, "SWEEP_TENANT_TIMEOUT", "5s", "SWEEP_CONCURRENCY", "32") // 5 s: -race on 2 shared cores makes a cold tenant cost up to ~2 s of CPU wait
	start := time.Now()
	run, err := sweepIn(a, "mixed")
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	t.Logf("%s", run)
	if run.Total != len(want) || run.NotReached != 0 || run.WriteErrors != 0 {
		t.Fatalf("summary = %+v, want %d tenants all reached and written", run, len(want))
	}
	counts := map[outcome.Code]int{}
	for id, code := range want {
		counts[code]++
		rec, err := fx.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		ls := rec.LastSweep
		if ls == nil || ls.At.Before(start.Add(-time.Second)) {
			t.Errorf("%s: no fresh lastSweep", id)
			continue
		}
		if ls.Outcome != code {
			t.Errorf("%s: outcome %s (%s), want %s", id, ls.Outcome, ls.Message, code)
		}
		if code == outcome.GraphPermissionMissing {
			checkPermissionMissing(t, fx, id, ls.Message, ls.Remediation)
			if ls.Step != "4" || len(ls.KeyVault) != 1 || ls.KeyVault[0].Outcome != outcome.OK {
				t.Errorf("%s: step %q, keyVault %+v; want step 4 and the secret read", id, ls.Step, ls.KeyVault)
			}
		}
		if wantFails := map[bool]int{true: 0, false: 1}[code == outcome.OK]; rec.ConsecutiveFailures != wantFails {
			t.Errorf("%s: consecutiveFailures %d, want %d", id, rec.ConsecutiveFailures, wantFails)
		}
	}
	if run.OK != counts[outcome.OK] {
		t.Errorf("summary ok = %d, want %d", run.OK, counts[outcome.OK])
	}
	for code, n := range counts {
		if code != outcome.OK && run.Failed[code] != n {
			t.Errorf("summary failed[%s] = %d, want %d", code, run.Failed[code], n)
		}
	}
	// Every token the vaults saw belonged to the vault's own tenant.
	for _, r := range fx.cloud.Requests() {
		if strings.HasSuffix(r.Host, ".vault.azure.net") && r.Tenant != "" {
			if !strings.HasPrefix(r.Host, r.Tenant[:8]) && !strings.Contains(r.Host, r.Tenant[:8]) {
				t.Errorf("vault %s received a token of tenant %s", r.Host, r.Tenant)
			}
		}
	}
	// The history holds the run as planned; its work results complete it,
	// as `handler runs` shows it.
	runs, err := fx.store.RecentRuns(context.Background(), 5)
	if err != nil || len(runs) != 1 || runs[0].ID != "mixed" {
		t.Fatalf("run history = %+v, %v", runs, err)
	}
	results, err := fx.store.WorkResults(context.Background(), "mixed")
	if err != nil {
		t.Fatal(err)
	}
	if h := sweep.Summarize(runs[0], results); h.OK != run.OK || h.Total != run.Total || h.MessagesDone != h.Messages {
		t.Fatalf("run history adds up to %s, want %s", h, run)
	}
}

func TestSecondSweepReusesTokens(t *testing.T) {
	fx := newFixture(t)
	regs := fx.healthyTenants(2000, 20, "tv", true)
	fx.onboard(t, regs...)
	a := fx.inProcess(t, deps{})
	if _, err := sweepIn(a, "cold"); err != nil {
		t.Fatal(err)
	}
	cold := fx.cloud.TotalTokenRequests()
	if cold == 0 {
		t.Fatal("first sweep made no token request")
	}
	run, err := sweepIn(a, "warm")
	if err != nil || run.OK != 20 {
		t.Fatalf("second sweep: %+v, %v", run, err)
	}
	if warm := fx.cloud.TotalTokenRequests() - cold; warm != 0 {
		t.Fatalf("second sweep made %d token requests, want 0", warm)
	}
	for i := range 20 {
		if fx.cloud.TokenRequests(tenantID(2000+i)) == 0 {
			t.Fatalf("tenant %d never had a token requested in its own tenant", i)
		}
	}
}

func TestAppWideFailureStopsTheSweep(t *testing.T) {
	fx := newFixture(t)
	regs := fx.healthyTenants(3000, 100, "aw", false)
	fx.onboard(t, regs...)
	fx.cloud.UpdateApp(func(app *cloudtest.App) { app.Secret = "rotated-away" })
	a := fx.inProcess(t, deps{}, "SWEEP_CONCURRENCY", "4")
	run, err := sweepIn(a, "aw")
	// The stop comes with the third failure; the messages already in
	// flight (24 at most, sweep.LocalOptions.InFlight) may finish first.
	if !errors.Is(err, sweep.ErrAppWide) || run.AppWideFailure == "" || run.NotReached < 100-24-3 {
		t.Fatalf("run = %+v, err = %v; want an early app-wide stop", run, err)
	}
	page, err := fx.store.List(context.Background(), 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range page.Records {
		if rec.ConsecutiveFailures != 0 || rec.LastSweep != nil {
			t.Fatalf("tenant %s was blamed for the app's credential: %+v", rec.TenantID, rec.LastSweep)
		}
	}
}

func TestBackoffAndReonboarding(t *testing.T) {
	fx := newFixture(t)
	id := tenantID(4000)
	fx.cloud.AddTenant(id, cloudtest.Tenant{OrgName: "x", GraphStatus: 403})
	fx.onboard(t, reg(id, true, ""))
	a := fx.inProcess(t, deps{})
	for range 3 {
		if _, err := sweepIn(a, ""); err != nil {
			t.Fatal(err)
		}
	}
	rec, _ := fx.store.Get(context.Background(), id)
	if rec.ConsecutiveFailures != 3 || !rec.BackedOff(time.Now()) {
		t.Fatalf("after 3 failures: %+v", rec)
	}
	run, _ := sweepIn(a, "")
	if run.SkippedBackoff != 1 || run.OK+len(run.Failed) != 0 {
		t.Fatalf("backed-off tenant was swept: %+v", run)
	}
	// The customer grants consent and onboards again: backoff is lifted.
	fx.cloud.UpdateTenant(id, func(tn *cloudtest.Tenant) { tn.GraphStatus = 0 })
	fx.onboard(t, reg(id, true, ""))
	run, _ = sweepIn(a, "")
	if run.OK != 1 {
		t.Fatalf("re-onboarded tenant did not resume: %+v", run)
	}
	if rec, _ := fx.store.Get(context.Background(), id); rec.ConsecutiveFailures != 0 || rec.BackoffUntil != nil {
		t.Fatalf("success did not clear backoff: %+v", rec)
	}
}

func TestDeadlineLeavesTheRestForNextTime(t *testing.T) {
	fx := newFixture(t)
	regs := fx.healthyTenants(5000, 30, "dl", false)
	fx.onboard(t, regs...)
	fx.cloud.SetLatency(150 * time.Millisecond)
	a := fx.inProcess(t, deps{}, "SWEEP_CONCURRENCY", "2", "SWEEP_BUDGET", "2s")
	run, err := sweepIn(a, "short")
	if err != nil || run.OK == 0 || run.NotReached == 0 || run.OK+run.NotReached != 30 {
		t.Fatalf("run = %+v, %v: want some ok and the rest not reached", run, err)
	}
	page, _ := fx.store.List(context.Background(), 1000, "")
	swept := 0
	for _, rec := range page.Records {
		if rec.LastSweep != nil {
			swept++
		}
	}
	if swept != run.OK {
		t.Fatalf("%d records swept, summary says %d ok", swept, run.OK)
	}
}

// A POST during a sweep must not be lost to the sweep's write-back, nor the
// sweep's result to the POST.
func TestConcurrentOnboardingDuringSweepLosesNothing(t *testing.T) {
	fx := newFixture(t)
	regs := fx.healthyTenants(6000, 60, "co", true)
	fx.onboard(t, regs...)
	fx.cloud.SetLatency(20 * time.Millisecond)
	a := fx.inProcess(t, deps{}, "SWEEP_CONCURRENCY", "8")
	done := make(chan sweep.Run)
	go func() {
		run, _ := sweepIn(a, "busy")
		done <- run
	}()
	for i := range 60 {
		r := regs[i]
		r.DisplayName = "Renamed during sweep"
		if _, _, err := fx.store.Mutate(context.Background(), r.TenantID, func(rec *tenant.Record, exists bool) error {
			r.Apply(rec, exists, time.Now())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	run := <-done
	if run.OK != 60 || run.WriteErrors != 0 {
		t.Fatalf("run = %+v", run)
	}
	// The rename is never lost. The sweep's result is kept when its sweep
	// started after the re-registration, and dropped otherwise: a result of
	// the old registration must not undo the new one (re-onboarding wins).
	kept := 0
	for i := range 60 {
		rec, _ := fx.store.Get(context.Background(), tenantID(6000+i))
		if rec.DisplayName != "Renamed during sweep" {
			t.Fatalf("tenant %d lost its rename: %q", i, rec.DisplayName)
		}
		switch {
		case rec.LastSweep == nil:
			if !rec.UpdatedAt.After(run.StartedAt) {
				t.Fatalf("tenant %d lost its sweep result though it was renamed before the sweep", i)
			}
		case rec.LastSweep.Outcome != outcome.OK:
			// (A result may predate the re-registration when it was written
			// first: re-registering keeps the history.)
			t.Fatalf("tenant %d: lastSweep %+v", i, rec.LastSweep)
		default:
			kept++
		}
	}
	t.Logf("%d of 60 results kept, the others' tenants were re-registered while they were probed", kept)
}
