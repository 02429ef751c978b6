package outcome

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
)

// Attempts counts the tries of one logical request, so that a failure can
// name its cause ("Key Vault answered HTTP 500 three times") rather than the
// time budget it would otherwise have slept through, and so that a retry
// policy knows which try it is deciding on. Adapters put one in the context
// of each request with WithAttempts and call Sent at the bottom of their
// pipeline, once per try.
type Attempts struct {
	mu     sync.Mutex
	key    string // method and URL of the request being tried
	tries  int
	status int
	same   int // consecutive tries that ended with status
}

type attemptsKey struct{}

// WithAttempts returns ctx with a fresh counter.
func WithAttempts(ctx context.Context) context.Context {
	return context.WithValue(ctx, attemptsKey{}, &Attempts{})
}

// Sent records a try of the request key (its method and URL) that ended
// with status (0: no response). A different request restarts the counts, so
// a metadata read that succeeded before a failing token request does not
// count.
func Sent(ctx context.Context, key string, status int) {
	a, ok := ctx.Value(attemptsKey{}).(*Attempts)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if key != a.key {
		a.key, a.tries, a.status, a.same = key, 0, 0, 0
	}
	a.tries++
	if status != a.status {
		a.status, a.same = status, 0
	}
	a.same++
}

// Tries is how many consecutive tries of the last request in ctx ended with
// status: 1 when nothing was counted.
func Tries(ctx context.Context, status int) int {
	a, ok := ctx.Value(attemptsKey{}).(*Attempts)
	if !ok {
		return 1
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.status != status || a.same < 1 {
		return 1
	}
	return a.same
}

// try is the number of tries of the last request in ctx so far (at least 1).
func try(ctx context.Context) int {
	a, ok := ctx.Value(attemptsKey{}).(*Attempts)
	if !ok {
		return 1
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return max(a.tries, 1)
}

// Answered is the customer-safe sentence for a service that answered an
// error status on every try: "Key Vault answered HTTP 500 three times".
func Answered(ctx context.Context, service string, status int) string {
	return fmt.Sprintf("%s answered HTTP %d %s", service, status, times(Tries(ctx, status)))
}

func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	case 3:
		return "three times"
	case 4:
		return "four times"
	}
	return fmt.Sprintf("%d times", n)
}

// Unreachable reports whether err is a host name that does not resolve, a
// connection refused, or an HTTPS proxy's refusal to open a tunnel to the
// host (ProxyRefusedError.Final): retrying within a tenant's time budget
// will not change it, so adapters stop at once and report an upstream error.
func Unreachable(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) && (dns.IsNotFound || !dns.IsTimeout && !dns.IsTemporary) {
		return true
	}
	if pe, ok := errors.AsType[*ProxyRefusedError](err); ok {
		return pe.Final()
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// ProxyRefusedError is an HTTPS proxy's answer other than 200 to the
// CONNECT that opens a tunnel to Host. net/http reports it as an untyped
// error holding only the status text ("Bad Gateway"), which cannot be told
// from a network blip; CheckProxyConnect makes it this.
type ProxyRefusedError struct {
	Host   string
	Status int
}

func (e *ProxyRefusedError) Error() string {
	return fmt.Sprintf("the HTTPS proxy refused a tunnel to %s: %d %s", e.Host, e.Status, http.StatusText(e.Status))
}

// Final reports whether the refusal will stand for the rest of a tenant's
// time budget. A proxy answers 502 or 503 when it cannot resolve or reach
// the host, and 403 or 407 when its policy or its authentication refuses
// the tunnel: the same as a host that does not resolve or refuses the
// connection without a proxy. 408, 429 and 504 are about time (the proxy's
// own connection timed out, or it is busy), as a dial that times out is,
// and are retried like one.
func (e *ProxyRefusedError) Final() bool {
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusGatewayTimeout:
		return false
	}
	return true
}

// Detail is the customer-safe sentence for the refusal: the proxy's status,
// never its body.
func (e *ProxyRefusedError) Detail() string {
	return fmt.Sprintf("the HTTPS proxy answered %d %s", e.Status, http.StatusText(e.Status))
}

// CheckProxyConnect is an http.Transport's OnProxyConnectResponse: it turns
// a proxy's refusal to tunnel into a *ProxyRefusedError (see Unreachable).
// Every transport of ours that honours HTTPS_PROXY sets it.
func CheckProxyConnect(_ context.Context, _ *url.URL, connectReq *http.Request, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	host := connectReq.URL.Opaque
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return &ProxyRefusedError{Host: host, Status: resp.StatusCode}
}
