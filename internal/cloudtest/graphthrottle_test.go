package cloudtest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
)

// The app limit is one bucket for the app across its tenants: requests of
// two tenants draw from it, each $batch step counts and is throttled on its
// own, and a throttled answer names the application scope and when to
// come back.
func TestGraphAppLimit(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "A", Users: 3})
	c.AddTenant(tenantB, cloudtest.Tenant{OrgName: "B", Users: 3, GraphThrottle: 1})
	tokA, err := secretCred(t, c, tenantA, "s3cret").GetToken(context.Background(), graphScope)
	if err != nil {
		t.Fatal(err)
	}
	tokB, err := secretCred(t, c, tenantB, "s3cret").GetToken(context.Background(), graphScope)
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://graph.microsoft.com/v1.0/organization", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	// Tenant B's own 429 names its app-and-tenant pair.
	if resp := get(tokB.Token); resp.StatusCode != 429 || !strings.HasPrefix(resp.Header.Get("x-ms-throttle-scope"), "Tenant_Application/") {
		t.Fatalf("tenant throttle: %d %q", resp.StatusCode, resp.Header.Get("x-ms-throttle-scope"))
	}

	c.SetGraphAppLimit(cloudtest.GraphAppLimit{Rate: 2, Burst: 3})
	for i, tok := range []string{tokA.Token, tokB.Token, tokA.Token} {
		if resp := get(tok); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
		}
	}
	resp := get(tokB.Token)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" ||
		resp.Header.Get("x-ms-throttle-scope") != "Application/ReadWrite/"+appID+"/"+tenantB {
		t.Fatalf("over the limit: %d, Retry-After %q, scope %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("x-ms-throttle-scope"))
	}
	time.Sleep(600 * time.Millisecond) // one request's worth at 2 a second
	if resp := get(tokA.Token); resp.StatusCode != 200 {
		t.Fatalf("after the refill: %d", resp.StatusCode)
	}

	// Three steps with about one request in the bucket: the first passes,
	// the others are throttled inside the batch's 200.
	time.Sleep(500 * time.Millisecond)
	req, _ := http.NewRequest(http.MethodPost, "https://graph.microsoft.com/v1.0/$batch", strings.NewReader(`{"requests":[
		{"id":"1","method":"GET","url":"/organization"},
		{"id":"2","method":"GET","url":"/organization"},
		{"id":"3","method":"GET","url":"/organization"}]}`))
	req.Header.Set("Authorization", "Bearer "+tokA.Token)
	req.Header.Set("Content-Type", "application/json")
	bresp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer bresp.Body.Close()
	var out struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
		} `json:"responses"`
	}
	if err := json.NewDecoder(bresp.Body).Decode(&out); err != nil || bresp.StatusCode != 200 || len(out.Responses) != 3 {
		t.Fatalf("batch: %d %+v %v", bresp.StatusCode, out, err)
	}
	statuses := map[int]int{}
	for _, r := range out.Responses {
		statuses[r.Status]++
		if r.Status == 429 && (r.Headers["Retry-After"] == "" || !strings.HasPrefix(r.Headers["X-Ms-Throttle-Scope"], "Application/")) {
			t.Errorf("throttled step %s headers %v", r.ID, r.Headers)
		}
	}
	if statuses[200] != 1 || statuses[429] != 2 {
		t.Errorf("batch step statuses %v, want one 200 and two 429", statuses)
	}

	st := c.GraphThrottleStats()
	if st.Requests != 8 || st.Throttled != 3 || len(st.Windows) != 1 || st.Windows[0] != (cloudtest.ThrottleWindow{Requests: 8, Throttled: 3}) {
		t.Errorf("stats %+v, want 8 requests (steps counted) of which 3 throttled, in one window", st)
	}
	c.SetGraphAppLimit(cloudtest.GraphAppLimit{})
	for range 5 {
		if resp := get(tokA.Token); resp.StatusCode != 200 {
			t.Fatalf("limit off: %d", resp.StatusCode)
		}
	}
}
