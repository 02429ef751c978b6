package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/onboard"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// The admin-consent round trip as it happens in Azure: the operator asks
// OnboardTenant (function key) for a tenant's consent link, the admin's
// browser comes back from Entra ID to ConsentCallback with no key, and the
// host forwards that request as it is. A state that is not valid is refused
// before anything is written.
func TestConsentCallbackThroughTheHost(t *testing.T) {
	fx := newFixture(t)
	redirect := "https://func-tenantsweep.azurewebsites.net" + onboard.ConsentCallbackPath
	p := startHost(t, fx.env("ONBOARD_REDIRECT_URI="+redirect,
		"ONBOARD_STATE_KEY="+base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))))
	id := tenantID(41)
	fx.healthyTenant(id, "consent1")

	var link struct {
		ConsentURL string `json:"consentUrl"`
	}
	code, _, raw := do(t, "POST", p.base+"/api/tenants", map[string]any{"tenantId": id, "consent": true}, hostHeaders("inv-link"), &link)
	if code != http.StatusOK {
		t.Fatalf("consent link: %d %s", code, raw)
	}
	u, err := url.Parse(link.ConsentURL)
	if err != nil || u.Query().Get("redirect_uri") != redirect {
		t.Fatalf("consent URL %q does not redirect to %s", link.ConsentURL, redirect)
	}
	state := u.Query().Get("state")

	// The browser's request, forwarded by the host: no function key, only
	// the host's own headers.
	noKey := map[string]string{"X-Azure-Functions-InvocationId": "inv-callback", "X-Azure-Functions-HostVersion": "4.1037.0.0"}
	callback := func(q url.Values) (int, string) {
		code, _, body := do(t, "GET", p.base+onboard.ConsentCallbackPath+"?"+q.Encode(), nil, noKey, nil)
		return code, string(body)
	}

	for name, q := range map[string]url.Values{
		"forged state":            {"admin_consent": {"True"}, "tenant": {id}, "state": {state[:len(state)-2] + "xx"}},
		"state of another tenant": {"admin_consent": {"True"}, "tenant": {tenantID(42)}, "state": {state}},
		"no state":                {"admin_consent": {"True"}, "tenant": {id}},
		"markup in the error":     {"error": {"access_denied"}, "error_description": {"<script>alert(1)</script>"}},
	} {
		code, body := callback(q)
		if code != http.StatusBadRequest || strings.Contains(body, "<script>") {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	if _, err := fx.store.Get(context.Background(), id); err == nil {
		t.Fatal("a refused callback recorded the tenant")
	}

	code, body := callback(url.Values{"admin_consent": {"True"}, "tenant": {id}, "state": {state}})
	if code != http.StatusOK || !strings.Contains(body, "Onboarding succeeded") || !strings.Contains(body, "Recorded: tenant "+id) {
		t.Fatalf("callback: %d %s", code, body)
	}
	rec, err := fx.store.Get(context.Background(), id)
	if err != nil || !rec.Active() || rec.Verification == nil || rec.Verification.Outcome != outcome.OK {
		t.Fatalf("recorded %+v, %v", rec, err)
	}
	if !strings.Contains(p.stdout.String(), `"function":"ConsentCallback"`) {
		t.Errorf("the callback's log lines do not name its function: %s", p.stdout)
	}
}
