package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Through an HTTPS proxy (HTTPS_PROXY, as the handler runs behind a
// corporate or egress proxy), a host the proxy refuses to tunnel to (its
// CONNECT answered 502) is answered at once, as a host that does not
// resolve or refuses the connection is without a proxy. Before: the proxy's
// refusal reached the retry policy as an untyped error, which it retried
// with backoff until the verification's 10 s budget: upstream_error after
// 9.7 s for a refused sign-in host.
func TestRefusedByProxyAnswersAtOnce(t *testing.T) {
	fx := newFixture(t)
	p := startHost(t, fx.env())
	for i, tc := range []struct {
		name   string
		setup  func(id string) map[string]any
		refuse string
		detail string
	}{
		{"sign-in host", func(id string) map[string]any {
			fx.healthyTenant(id, "proxied0")
			return registration(id, "proxied0")
		}, cloudtest.LoginHost, "the sign-in service could not be reached"},
		{"vault host", func(id string) map[string]any {
			fx.healthyTenant(id, "proxied1")
			return registration(id, "proxied1")
		}, "proxied1." + cloudtest.VaultSuffix, "could not reach the vault"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tenantID(7700 + i)
			body := tc.setup(id)
			fx.cloud.RefuseHost(tc.refuse, http.StatusBadGateway)
			defer fx.cloud.RefuseHost(tc.refuse, 0)
			code, raw, took := quick(t, 30*time.Second, "POST", p.base+"/api/tenants", body)
			if code != http.StatusCreated {
				t.Fatalf("POST: %d %s", code, raw)
			}
			var rec tenant.Record
			if err := json.Unmarshal([]byte(raw), &rec); err != nil || rec.Verification == nil {
				t.Fatalf("answer %s: %v", raw, err)
			}
			v := rec.Verification
			if v.Outcome != outcome.UpstreamError || !strings.Contains(v.Message, tc.detail) || !strings.Contains(v.Message, "502") {
				t.Errorf("verification = %+v, want upstream_error saying %q and naming the proxy's 502", v, tc.detail)
			}
			if took > 3*time.Second {
				t.Errorf("the onboarding answer took %s: a refusal by the proxy was retried", took)
			}
			t.Logf("%s refused by the proxy: %s in %s", tc.refuse, v.Outcome, took.Round(time.Millisecond))
		})
	}
}
