package funchost

import (
	"net/http"
	"strings"
)

// CanonicalRoutes returns next behind the Functions host's route matching:
// the host matches an HTTP function's route in any case, so a request for
// /API/Tenants/{id} reaches OnboardTenant, while net/http's ServeMux
// matches paths exactly. A path that is one of routes in another case, or
// starts with one of them and a '/', gets that route's case; the rest of
// the path keeps its case (a tenant id), and any other request passes as
// it is. Wrap each request once: the handler's outer mux for forwarded
// requests, and the rebuilt request of an HTTPEnvelope.
func CanonicalRoutes(next http.Handler, routes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, canonicalPath(r, routes))
	})
}

func canonicalPath(r *http.Request, routes []string) *http.Request {
	p := r.URL.Path
	for _, route := range routes {
		if len(p) < len(route) || p[:len(route)] == route || !strings.EqualFold(p[:len(route)], route) ||
			(len(p) > len(route) && p[len(route)] != '/') {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = route + p[len(route):]
		r2.URL.RawPath = ""
		return r2
	}
	return r
}
