package graph

import (
	"net/http"

	khttp "github.com/microsoft/kiota-http-go"
)

type khttpOpts = khttp.RetryHandlerOptions

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
