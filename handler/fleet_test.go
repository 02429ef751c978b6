package main

// Issue 19: tokens shared by the fleet. Handler processes run as separate
// instances against the same registry and fakes, each behind the host's
// queue listener.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

func sharingKeySetting(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return "TOKEN_SHARING_KEY=" + base64.StdEncoding.EncodeToString(k)
}

// rawRows reads the tenants table as Table Storage holds it.
func rawRows(t *testing.T, fx *fixture) map[string]map[string]any {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(fx.reg.Connection, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]map[string]any{}
	pager := svc.NewClient(fx.reg.Table).NewListEntitiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entities {
			var props map[string]any
			if err := json.Unmarshal(e, &props); err != nil {
				t.Fatal(err)
			}
			rows[props["RowKey"].(string)] = props
		}
	}
	return rows
}

// setRow merges properties into a tenant's row, as someone with write
// access to the table could.
func setRow(t *testing.T, fx *fixture, tenantID string, props map[string]any) {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(fx.reg.Connection, nil)
	if err != nil {
		t.Fatal(err)
	}
	props["PartitionKey"], props["RowKey"] = tenantID[:2], tenantID
	b, _ := json.Marshal(props)
	if _, err := svc.NewClient(fx.reg.Table).UpdateEntity(t.Context(), b, &aztables.UpdateEntityOptions{UpdateMode: aztables.UpdateModeMerge}); err != nil {
		t.Fatal(err)
	}
}

// vaultChallenges counts the unauthenticated requests to vaults: Key
// Vault's challenge.
func vaultChallenges(c *cloudtest.Cloud) int {
	n := 0
	for _, r := range c.Requests() {
		if strings.HasSuffix(r.Host, "."+cloudtest.VaultSuffix) && r.Tenant == "" {
			n++
		}
	}
	return n
}

// A token one process got is used by another with the same key: the
// second run, on another instance, makes no token request and asks no
// vault's challenge. A row's tokens copied to another tenant, or altered,
// are not used (that tenant signs in, and ends ok); past the freshness
// limit a token is requested again. Nothing of a token is in the table in
// the clear, nor in any output.
func TestTokensSharedAcrossProcesses(t *testing.T) {
	fx := newFixture(t)
	regs := fx.healthyTenants(7000, 4, "fleet", true)
	fx.onboard(t, regs...)
	ids := make([]string, len(regs))
	for i, r := range regs {
		ids[i] = r.TenantID
	}
	key := sharingKeySetting(t)
	env := fx.env(key, "LOG_LEVEL=info")
	p1, p2 := startHost(t, env), startHost(t, env)

	run, _ := sweepThrough(t, fx, p1, "share-1")
	if run.OK != 4 || fx.cloud.TotalTokenRequests() != 8 || vaultChallenges(fx.cloud) != 4 {
		t.Fatalf("first run on instance 1: %s; %d token requests, %d challenges (want 8 and 4)", run, fx.cloud.TotalTokenRequests(), vaultChallenges(fx.cloud))
	}
	if run.TokenRequests != 8 || run.GraphRequests != 8 {
		t.Errorf("the run counted %d token and %d Graph requests, want 8 and 8", run.TokenRequests, run.GraphRequests)
	}

	fx.cloud.ResetCounters()
	run, _ = sweepThrough(t, fx, p2, "share-2")
	if run.OK != 4 || fx.cloud.TotalTokenRequests() != 0 || vaultChallenges(fx.cloud) != 0 {
		t.Fatalf("second run on instance 2: %s; %d token requests, %d challenges (want none)", run, fx.cloud.TotalTokenRequests(), vaultChallenges(fx.cloud))
	}

	// Tenant 0's tokens copied into tenant 1's row; tenant 2's altered.
	rows := rawRows(t, fx)
	setRow(t, fx, ids[1], map[string]any{"Tokens": rows[ids[0]]["Tokens"], "TokenSeals": rows[ids[0]]["TokenSeals"]})
	var seals []string
	if err := json.Unmarshal([]byte(rows[ids[2]]["TokenSeals"].(string)), &seals); err != nil || len(seals) != 2 {
		t.Fatalf("tenant 2's seals %v: %v", rows[ids[2]]["TokenSeals"], err)
	}
	b, _ := base64.RawStdEncoding.DecodeString(seals[0])
	b[len(b)/2] ^= 0x01
	seals[0] = base64.RawStdEncoding.EncodeToString(b)
	altered, _ := json.Marshal(seals)
	setRow(t, fx, ids[2], map[string]any{"TokenSeals": string(altered)})

	fx.cloud.ResetCounters()
	run, _ = sweepThrough(t, fx, p1, "share-3")
	if run.OK != 4 {
		t.Fatalf("run after copying and altering: %s", run)
	}
	if n0, n1, n2, n3 := fx.cloud.TokenRequests(ids[0]), fx.cloud.TokenRequests(ids[1]), fx.cloud.TokenRequests(ids[2]), fx.cloud.TokenRequests(ids[3]); n0 != 0 || n1 != 2 || n2 != 1 || n3 != 0 {
		t.Errorf("token requests: tenant 0 %d, 1 (another's row) %d, 2 (one altered) %d, 3 %d; want 0, 2, 1, 0", n0, n1, n2, n3)
	}
	for _, r := range fx.cloud.Requests() {
		if r.Host != cloudtest.LoginHost && r.Tenant != "" && !contains(ids, r.Tenant) {
			t.Errorf("a request with a token of %s", r.Tenant)
		}
	}
	// Tenant 1 read its own directory with its own token, not tenant 0's.
	if len(graphRequestsOf(fx.cloud, ids[1])) == 0 {
		t.Error("no Graph request with a token of tenant 1")
	}
	if rec, err := fx.store.Get(t.Context(), ids[1]); err != nil || rec.LastSweep.Graph == nil || rec.LastSweep.Graph.Organization != "Org "+ids[1][:8] {
		t.Errorf("tenant 1's result %+v, %v: want its own organization", rec.LastSweep, err)
	}

	// Past the freshness limit the tokens are requested again.
	p3 := startHost(t, fx.env(key, "LOG_LEVEL=info", "TOKEN_FRESHNESS=1s"))
	time.Sleep(1100 * time.Millisecond)
	fx.cloud.ResetCounters()
	run, _ = sweepThrough(t, fx, p3, "share-4")
	if run.OK != 4 || fx.cloud.TotalTokenRequests() != 8 {
		t.Errorf("past the freshness limit: %s; %d token requests, want 8", run, fx.cloud.TotalTokenRequests())
	}

	// Nothing of a token in the clear: not in any property of any row, nor
	// in the processes' output.
	raw, _ := json.Marshal(rawRows(t, fx))
	for _, tok := range fx.cloud.IssuedTokens() {
		if strings.Contains(string(raw), tok) || strings.Contains(string(raw), strings.Split(tok, ".")[0]+"."+strings.Split(tok, ".")[1]) {
			t.Fatal("the tenants table holds a token in the clear")
		}
	}
	if strings.Contains(string(raw), cloudtest.TokenMarker) {
		t.Error("the tenants table holds a token's signature")
	}
	assertNoLeaks(t, fx, p1.stdout.String()+p1.stderr.String()+p2.stdout.String()+p2.stderr.String()+p3.stdout.String()+p3.stderr.String())
	for _, id := range ids {
		rec, err := fx.store.Get(t.Context(), id)
		if err != nil || rec.LastSweep == nil || rec.LastSweep.Outcome != outcome.OK || len(rec.Shared.Tokens) != 2 || len(rec.Shared.Vaults) != 1 {
			t.Errorf("tenant %s: %+v shared %d tokens %v vaults, %v", id, rec.LastSweep, len(rec.Shared.Tokens), rec.Shared.Vaults, err)
		}
	}
}

func graphRequestsOf(c *cloudtest.Cloud, tenantID string) []cloudtest.Request {
	var out []cloudtest.Request
	for _, r := range c.Requests() {
		if r.Host == cloudtest.GraphHost && r.Tenant == tenantID {
			out = append(out, r)
		}
	}
	return out
}

// Three instances against a Graph that throttles the app as a whole (the
// fake's token bucket across tenants, each $batch step counted), planned
// for three times the rate Graph allows: Graph's 429s pause each
// instance's Graph requests instead of spending each tenant's retries, so
// every tenant ends ok and none is recorded throttled; the run says what
// the throttling cost. Planned for the rate Graph allows, the pacing keeps
// the fleet within it.
func TestFleetUnderAnAppWideLimit(t *testing.T) {
	fx := newFixture(t)
	regs := fx.healthyTenants(7100, 60, "limit", true)
	fx.onboard(t, regs...)
	fx.cloud.SetLatency(50 * time.Millisecond)
	for _, rate := range []string{"60", "20"} {
		fx.cloud.SetGraphAppLimit(cloudtest.GraphAppLimit{Rate: 20, Burst: 20})
		ins := startInstances(t, fx, 3, fx.env(sharingKeySetting(t), "LOG_LEVEL=info", "SWEEP_MESSAGE_TENANTS=4", "SWEEP_GRAPH_RATE="+rate))
		id := "limit-" + rate
		start := time.Now()
		if code, raw := timer(t, ins[0].p, id); code != 200 || !isPlanned(string(raw)) {
			t.Fatalf("timer: %d %s", code, raw)
		}
		run, st := waitRun(t, fx, id, 3*time.Minute)
		stats := fx.cloud.GraphThrottleStats()
		t.Logf("planned for %s/s against 20/s: %s in %v; Graph saw %d requests, %d answered 429", rate, st.Status, time.Since(start).Round(100*time.Millisecond),
			stats.Requests, stats.Throttled)
		t.Logf("%s", run)
		if st.Status != "finished" || run.OK != 60 || run.Failed[outcome.Throttled] != 0 {
			t.Errorf("planned for %s/s: %s", rate, run)
		}
		if rate == "60" && (run.AppThrottles == 0 || stats.Throttled == 0) {
			t.Errorf("planned for three times the limit, no app-wide 429: the test no longer throttles (%d)", run.AppThrottles)
		}
		for _, in := range ins {
			in.stop()
			<-in.done
		}
	}
}
