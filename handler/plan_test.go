package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// latent is a call the fakes delay (SetLatency): a token request, a Graph
// request or an authenticated Key Vault request.
func latent(r cloudtest.Request) bool {
	switch {
	case r.Host == cloudtest.LoginHost:
		return strings.HasSuffix(r.Path, "/oauth2/v2.0/token")
	case r.Host == cloudtest.GraphHost:
		return true
	case strings.HasSuffix(r.Host, "."+cloudtest.VaultSuffix):
		return r.Tenant != ""
	}
	return false
}

// rounds groups the latent calls by start time: a call that starts less than
// half a latency after the round's first call is in that round. A tenant's
// round trips are the number of rounds.
func rounds(reqs []cloudtest.Request, latency time.Duration) [][]cloudtest.Request {
	var out [][]cloudtest.Request
	for _, r := range reqs {
		if !latent(r) {
			continue
		}
		if n := len(out); n > 0 && r.At.Sub(out[n-1][0].At) < latency/2 {
			out[n-1] = append(out[n-1], r)
			continue
		}
		out = append(out, []cloudtest.Request{r})
	}
	return out
}

func describe(rs [][]cloudtest.Request) string {
	var b strings.Builder
	for i, r := range rs {
		b.WriteString("\n  round ")
		b.WriteString(string(rune('1' + i)))
		b.WriteString(":")
		for _, q := range r {
			b.WriteString(" " + q.Method + " " + q.Host + q.Path)
		}
	}
	return b.String()
}

// A tenant with Graph and three secrets in two vaults costs two round trips
// cold (both tokens at once, then Graph's $batch and the three reads at once)
// and one warm (no token, the rest at once), shown by when each call reached
// the fakes, not by wall-clock time. Warm is what the cold probe left for
// the fleet in the tenant's row (its tokens and vaults), as the worker
// writes it: any instance's next probe is warm.
func TestProbeIsOneRoundTripWarmAndTwoCold(t *testing.T) {
	r := newReach(t)
	r.c.AddTenant(reachTenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 7})
	r.c.AddVault("plan-kv1", reachTenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"s1": {Value: reachSecret, Enabled: true}, "s2": {Value: reachSecret, Enabled: true},
	}})
	r.c.AddVault("plan-kv2", reachTenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"s3": {Value: reachSecret, Enabled: true},
	}})
	p, err := task.New(task.Config{
		Tasks:  []task.Task{tasks.Access{Directory: r.graph, Vaults: r.vaults}},
		SignIn: r.creds, Graph: r.graph, Advisor: tenant.Advisor{AppID: testAppID, Cloud: cloud.AzurePublic}, Cloud: cloud.AzurePublic,
		ClientOptions: azcore.ClientOptions{Transport: r.c.HTTPClient()},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := tenant.Record{TenantID: reachTenantA, Status: tenant.StatusActive, Graph: true, KeyVaults: []tenant.KeyVault{
		{VaultURL: cloudtest.VaultURL("plan-kv1") + "/", Secrets: []string{"s2", "s1"}},
		{VaultURL: cloudtest.VaultURL("plan-kv2") + "/", Secrets: []string{"s3"}},
	}}
	const latency = 200 * time.Millisecond
	r.c.SetLatency(latency)

	probe := func(name string) [][]cloudtest.Request {
		t.Helper()
		r.c.ResetCounters()
		res := p.Probe(context.Background(), rec)
		if res.Outcome != outcome.OK || res.Graph == nil || res.Graph.UserCount != 7 {
			t.Fatalf("%s probe: %+v", name, res)
		}
		tenant.MergeShared(&rec, res.Shared, time.Now())
		var order []string
		for _, st := range res.KeyVault {
			order = append(order, st.Secret)
		}
		if strings.Join(order, " ") != "s2 s1 s3" {
			t.Errorf("%s probe: secrets in the order %v, want the registration's", name, order)
		}
		return rounds(r.c.Requests(), latency)
	}

	cold := probe("cold")
	if len(cold) != 2 || len(cold[0]) != 2 || len(cold[1]) != 4 {
		t.Errorf("cold probe: %d round trips, want 2: both tokens, then the $batch and 3 reads%s", len(cold), describe(cold))
	}
	for _, q := range cold[0] {
		if q.Host != cloudtest.LoginHost {
			t.Errorf("cold probe: %s %s in the first round, want only the two token requests", q.Host, q.Path)
		}
	}
	warm := probe("warm")
	if len(warm) != 1 || len(warm[0]) != 4 {
		t.Errorf("warm probe: %d round trips, want 1: the $batch and 3 reads at once%s", len(warm), describe(warm))
	}
	if n := r.c.TotalTokenRequests(); n != 0 {
		t.Errorf("warm probe: %d token requests", n)
	}
	// The challenge was asked once per vault, in the cold probe.
	for _, q := range r.c.Requests() {
		if strings.HasSuffix(q.Host, "."+cloudtest.VaultSuffix) && q.Tenant == "" {
			t.Errorf("warm probe: unauthenticated %s %s (the challenge again)", q.Host, q.Path)
		}
	}
}

// A second task adds no round trip: it shares the tenant's sign-in and runs
// at once with the access task's reads (two rounds cold, one warm).
func TestTasksAddNoRoundTrip(t *testing.T) {
	r := newReach(t)
	r.c.AddTenant(reachTenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 7, Groups: 4,
		GraphRoles: []string{"Organization.Read.All", "User.Read.All", "Group.Read.All"}})
	r.c.AddVault("plan-kv3", reachTenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"s1": {Value: reachSecret, Enabled: true}}})
	p, err := task.New(task.Config{
		Tasks:  []task.Task{tasks.Access{Directory: r.graph, Vaults: r.vaults}, tasks.Groups{}},
		SignIn: r.creds, Graph: r.graph, Advisor: tenant.Advisor{AppID: testAppID, Cloud: cloud.AzurePublic}, Cloud: cloud.AzurePublic,
		ClientOptions: azcore.ClientOptions{Transport: r.c.HTTPClient()},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := tenant.Record{TenantID: reachTenantA, Status: tenant.StatusActive, Graph: true,
		KeyVaults: []tenant.KeyVault{{VaultURL: cloudtest.VaultURL("plan-kv3") + "/", Secrets: []string{"s1"}}}}
	const latency = 200 * time.Millisecond
	r.c.SetLatency(latency)
	for _, run := range []struct {
		name          string
		rounds, calls int // calls in the last round: the $batch, the secret, the groups count
	}{{"cold", 2, 3}, {"warm", 1, 3}} {
		r.c.ResetCounters()
		res := p.Probe(context.Background(), rec)
		if res.Outcome != outcome.OK || string(res.Tasks["groups"].Body) != `{"groups":4}` {
			t.Fatalf("%s probe: %+v", run.name, res)
		}
		tenant.MergeShared(&rec, res.Shared, time.Now()) // as the worker writes it
		got := rounds(r.c.Requests(), latency)
		if len(got) != run.rounds || len(got[len(got)-1]) != run.calls {
			t.Errorf("%s probe: %d round trips, want %d, the last with the $batch, the secret and the groups count%s",
				run.name, len(got), run.rounds, describe(got))
		}
	}
}
