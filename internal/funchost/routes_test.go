package funchost

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCanonicalRoutes(t *testing.T) {
	routes := []string{"/api/tenants", "/api/consent/callback"}
	var got string
	h := CanonicalRoutes(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r.URL.Path }), routes...)
	for _, tc := range []struct{ in, want string }{
		{"/api/tenants", "/api/tenants"},
		{"/API/Tenants", "/api/tenants"},
		{"/Api/TENANTS/ABCDEF01-0000-4000-8000-00000000000A", "/api/tenants/ABCDEF01-0000-4000-8000-00000000000A"},
		{"/API/Consent/Callback", "/api/consent/callback"},
		{"/api/tenantsX", "/api/tenantsX"},
		{"/API/TenantsX/1", "/API/TenantsX/1"},
		{"/api/tenant", "/api/tenant"},
		{"/OnboardTenant", "/OnboardTenant"},
		{"/", "/"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tc.in, nil))
		if got != tc.want {
			t.Errorf("%s: routed as %s, want %s", tc.in, got, tc.want)
		}
	}
}
