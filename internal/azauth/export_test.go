package azauth

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/url"
)

// Classify is classify outside any request, for table tests.
func Classify(err error) error { return classify(context.Background(), err, "") }

// SignInHTTPVia is the production sign-in transport (signInHTTP) with its
// proxy and roots set, as HTTPS_PROXY and SSL_CERT_FILE would set them.
func SignInHTTPVia(proxy *url.URL, roots *x509.CertPool) *http.Client {
	tr := signInHTTP.Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(proxy)
	tr.TLSClientConfig.RootCAs = roots
	return &http.Client{Transport: tr}
}
