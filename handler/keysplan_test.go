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

// A tenant with Graph, a secret and two keys, with the access and keys
// tasks as SWEEP_TASKS has them by default: cold, three round trips (both
// tokens; then Graph's $batch, the secret, each key's read and the vault's
// wrap; then each key's unwrap); warm, one (everything at once: the keys'
// reads and their unwraps beside Graph and the secret: the tokens and the
// vault from the tenant's row, as the cold probe left them, and the keys'
// public parts the process keeps). Shown by when each call reached the
// fakes, as TestProbeIsOneRoundTripWarmAndTwoCold does.
// After a rotation the key's unwrap is done again with the new version:
// two, in that sweep only.
func TestKeysCostOneRoundTripWarm(t *testing.T) {
	r := newReach(t)
	r.c.AddTenant(reachTenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 7})
	r.c.AddVault("plan-keys", reachTenantA, cloudtest.Vault{
		Secrets: map[string]cloudtest.Secret{"s1": {Value: reachSecret, Enabled: true}},
		Keys:    map[string]cloudtest.Key{"cmk1": {Enabled: true}, "cmk2": {Enabled: true}},
	})
	keys := tasks.Keys{Vaults: r.vaults}
	p, err := task.New(task.Config{
		Tasks:  []task.Task{tasks.Access{Directory: r.graph, Vaults: r.vaults}, keys},
		SignIn: r.creds, Graph: r.graph, Advisor: tenant.Advisor{AppID: testAppID, Cloud: cloud.AzurePublic}, Cloud: cloud.AzurePublic,
		ClientOptions: azcore.ClientOptions{Transport: r.c.HTTPClient()},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := tenant.Record{TenantID: reachTenantA, Status: tenant.StatusActive, Graph: true, KeyVaults: []tenant.KeyVault{
		{VaultURL: cloudtest.VaultURL("plan-keys") + "/", Secrets: []string{"s1"}, Keys: []string{"cmk1", "cmk2"}},
	}}
	const latency = 200 * time.Millisecond
	r.c.SetLatency(latency)

	probe := func(name string) [][]cloudtest.Request {
		t.Helper()
		r.c.ResetCounters()
		res := p.Probe(context.Background(), rec)
		if res.Outcome != outcome.OK || len(res.Keys) != 2 || res.Keys[0].Outcome != outcome.OK || res.Keys[1].Outcome != outcome.OK {
			t.Fatalf("%s probe: %+v", name, res)
		}
		tenant.MergeShared(&rec, res.Shared, time.Now()) // as the worker writes it
		return rounds(r.c.Requests(), latency)
	}
	count := func(rs []cloudtest.Request, suffix string) int {
		n := 0
		for _, q := range rs {
			if strings.HasSuffix(strings.TrimSuffix(q.Path, "/"), suffix) {
				n++
			}
		}
		return n
	}

	cold := probe("cold")
	if len(cold) != 3 || len(cold[0]) != 2 || len(cold[1]) != 6 || len(cold[2]) != 2 ||
		count(cold[1], "/wrapkey") != 2 || count(cold[2], "/unwrapkey") != 2 {
		t.Errorf("cold probe: %d round trips, want 3: both tokens; the $batch, the secret, 2 reads and 2 wraps; 2 unwraps%s", len(cold), describe(cold))
	}
	for range 2 {
		warm := probe("warm")
		if len(warm) != 1 || len(warm[0]) != 6 || count(warm[0], "/unwrapkey") != 2 || count(warm[0], "/wrapkey") != 0 {
			t.Errorf("warm probe: %d round trips, want 1: the $batch, the secret, 2 key reads and 2 unwraps at once%s", len(warm), describe(warm))
		}
	}
	if n := r.c.UnwrapCount("plan-keys", "cmk1") + r.c.UnwrapCount("plan-keys", "cmk2"); n != 6 {
		t.Errorf("the vault unwrapped %d times in three probes of two keys, want 6", n)
	}

	if _, ok := r.c.RotateKey("plan-keys", "cmk2"); !ok {
		t.Fatal("rotate")
	}
	rotated := probe("rotated")
	if len(rotated) != 2 || len(rotated[1]) != 1 || count(rotated[1], "/unwrapkey") != 1 {
		t.Errorf("after a rotation: %d round trips, want 2: everything, then the rotated key's unwrap with its new version%s", len(rotated), describe(rotated))
	}
	if warm := probe("warm after the rotation"); len(warm) != 1 {
		t.Errorf("warm after the rotation: %d round trips, want 1%s", len(warm), describe(warm))
	}
}
