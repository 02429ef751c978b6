package graph

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/governor"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// Under Graph's app-wide limit (the fake's token bucket across tenants,
// each $batch step counted), tenants that each retry on their own run out
// of retries and are recorded throttled; through one gate the app's 429s
// (in the batch's steps and on single requests) pause every tenant's
// requests instead of spending each tenant's retries, so every tenant ends
// ok and none is held past its deadline.
func TestAppWideThrottleIsWaitedOutAtTheGate(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	const n = 40
	var ids []string
	creds := make([]azcore.TokenCredential, n)
	for i := range n {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1)
		ids = append(ids, id)
		c.AddTenant(id, cloudtest.Tenant{OrgName: "Org", Users: 3})
		// Signed in beforehand: the test is about Graph.
		creds[i] = c.SecretCredential(t, id)
		if _, err := creds[i].GetToken(context.Background(), policy.TokenRequestOptions{
			Scopes: []string{cloud.AzurePublic.GraphScope()}, EnableCAE: true}); err != nil {
			t.Fatal(err)
		}
	}
	run := func(gate *governor.Gate) (codes map[outcome.Code]int, meters []*governor.Meter, st cloudtest.GraphThrottleStats, took time.Duration) {
		// 80 steps at once against 10 a second with a burst of 10: 7 s of
		// work at the limit.
		c.SetGraphAppLimit(cloudtest.GraphAppLimit{Rate: 10, Burst: 10})
		r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport, Gate: gate})
		var wg sync.WaitGroup
		meters = make([]*governor.Meter, n)
		errs := make([]error, n)
		start := time.Now()
		for i, id := range ids {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				ctx, meters[i] = governor.WithMeter(governor.WithTenant(governor.WithPriority(ctx, governor.Low), id))
				_, errs[i] = r.Organization(ctx, creds[i])
			})
		}
		wg.Wait()
		codes = map[outcome.Code]int{}
		for _, err := range errs {
			codes[outcome.Of(err)]++
		}
		return codes, meters, c.GraphThrottleStats(), time.Since(start)
	}

	codes, _, st, took := run(nil)
	t.Logf("each tenant on its own: %v in %v; %d Graph requests (steps counted), %d answered 429", codes, took.Round(time.Millisecond), st.Requests, st.Throttled)
	if codes[outcome.Throttled] == 0 {
		t.Fatalf("without a gate no tenant was throttled (%v): the test no longer storms", codes)
	}

	gate := governor.NewGate(governor.Options{Service: "Microsoft Graph"})
	codes, meters, st, took := run(gate)
	appThrottles := 0
	for i, m := range meters {
		appThrottles += m.Counts().AppThrottles
		if m.Held() {
			t.Errorf("tenant %d held", i)
		}
	}
	t.Logf("through the gate: %v in %v; %d Graph requests (steps counted), %d answered 429; %d app throttles seen, %d pauses",
		codes, took.Round(time.Millisecond), st.Requests, st.Throttled, appThrottles, gate.Pauses())
	if codes[outcome.OK] != n {
		t.Errorf("outcomes %v, want all %d ok", codes, n)
	}
	if gate.Pauses() == 0 || appThrottles == 0 {
		t.Errorf("the gate never closed: the test no longer throttles")
	}
	if st.Requests-st.Throttled != 2*n {
		t.Errorf("%d requests got through, want %d (two steps a tenant)", st.Requests-st.Throttled, 2*n)
	}
	for _, req := range graphRequests(c) {
		if req.Tenant == "" {
			t.Errorf("a Graph request without a tenant's token: %+v", req)
		}
	}
}
