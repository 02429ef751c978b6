package outcome

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestOfAndDetail(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		code       Code
		detail     string
		noDetailOf string
	}{
		{"nil", nil, OK, "", ""},
		{"classified", New(GraphConsentMissing, "no consent", nil), GraphConsentMissing, "no consent", ""},
		{"wrapped classified", fmt.Errorf("probe: %w", New(SecretNotFound, "gone", errors.New("404"))), SecretNotFound, "gone", ""},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), Timeout, "the tenant's time budget ran out", ""},
		{"unclassified text is never passed on", errors.New("GET https://v.vault.azure.net/?sig=SECRET"), UpstreamError, "an upstream service failed", "SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.err); got != tt.code {
				t.Errorf("Of = %s, want %s", got, tt.code)
			}
			if got := Detail(tt.err); got != tt.detail {
				t.Errorf("Detail = %q, want %q", got, tt.detail)
			}
		})
	}
}

func TestAppWide(t *testing.T) {
	for _, c := range Codes {
		if got, want := c.AppWide(), c == AppCredentialInvalid; got != want {
			t.Errorf("%s.AppWide() = %v, want %v", c, got, want)
		}
	}
	// The sign-in codes of a tenant's own making are held against it (its
	// backoff) and say something is missing; none is transient.
	for _, c := range []Code{AppDisabled, BlockedByPolicy, TenantNotFound, WrongCloud, ResourceNotInTenant, AppNotInTenant} {
		if c.AppWide() || c.Transient() {
			t.Errorf("%s: app-wide %v, transient %v", c, c.AppWide(), c.Transient())
		}
	}
	seen := map[Code]bool{}
	for _, c := range Codes {
		if seen[c] {
			t.Errorf("%s listed twice", c)
		}
		seen[c] = true
	}
}

func TestSafeCode(t *testing.T) {
	for in, want := range map[string]string{
		"Authorization_RequestDenied": "Authorization_RequestDenied",
		"Request_UnsupportedQuery":    "Request_UnsupportedQuery",
		"two words":                   "",
		"<html>":                      "",
		strings.Repeat("a", 65):       "",
	} {
		if got := SafeCode(in); got != want {
			t.Errorf("SafeCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSettled(t *testing.T) {
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelExpired()
	stopped, stop := context.WithCancel(context.Background())
	stop()
	classified := New(AppNotInTenant, "not there", nil)
	network := errors.New("read: connection reset")
	tests := []struct {
		name      string
		ctx       context.Context
		err       error
		responded bool
		ok        bool
		code      Code // of the settled error, when ok
		same      bool // the settled error is err itself
		canceled  bool // the settled error is a plain cancellation
	}{
		{"nil", context.Background(), nil, false, true, OK, true, false},
		{"already an outcome", context.Background(), fmt.Errorf("x: %w", classified), true, true, AppNotInTenant, true, false},
		{"deadline in the chain", context.Background(), fmt.Errorf("x: %w", context.DeadlineExceeded), false, true, Timeout, false, false},
		{"context expired, no answer", expired, network, false, true, Timeout, false, false},
		{"context expired after an answer", expired, network, true, false, "", false, false},
		{"cancelled in the chain", context.Background(), fmt.Errorf("x: %w", context.Canceled), false, true, "", true, true},
		{"context cancelled, no answer", stopped, network, false, true, "", true, false},
		{"for the adapter", context.Background(), network, false, false, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Settled(tt.ctx, tt.err, tt.responded, "too slow")
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%v)", ok, tt.ok, got)
			}
			if !ok {
				return
			}
			if tt.same && got != tt.err {
				t.Errorf("settled = %v, want err itself", got)
			}
			if tt.canceled && !errors.Is(got, context.Canceled) {
				t.Errorf("settled = %v, want a cancellation", got)
			}
			var oe *Error
			if tt.code == Timeout && (!errors.As(got, &oe) || oe.Code != Timeout || oe.Detail != "too slow") {
				t.Errorf("settled = %v, want Timeout with the detail", got)
			}
			if tt.code == "" && errors.As(got, &oe) {
				t.Errorf("settled = %v, want no outcome", got)
			}
		})
	}
}

// A proxy's refusal to tunnel is told apart from a network blip, as a host
// that does not resolve or refuses the connection is without a proxy.
func TestProxyRefusal(t *testing.T) {
	connect := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: "login.microsoftonline.com:443"}}
	for _, tc := range []struct {
		status int
		final  bool
	}{
		{http.StatusOK, false},
		{http.StatusBadGateway, true},
		{http.StatusServiceUnavailable, true},
		{http.StatusForbidden, true},
		{http.StatusProxyAuthRequired, true},
		{http.StatusGatewayTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusRequestTimeout, false},
	} {
		err := CheckProxyConnect(context.Background(), nil, connect, &http.Response{StatusCode: tc.status})
		if tc.status == http.StatusOK {
			if err != nil {
				t.Errorf("200: %v", err)
			}
			continue
		}
		// As net/http and the SDKs above it return it.
		wrapped := &url.Error{Op: "Post", URL: "https://login.microsoftonline.com/t/oauth2/v2.0/token", Err: fmt.Errorf("server response error:\n %w", err)}
		if got := Unreachable(wrapped); got != tc.final {
			t.Errorf("%d: Unreachable = %v, want %v", tc.status, got, tc.final)
		}
		pe, ok := errors.AsType[*ProxyRefusedError](wrapped)
		if !ok || pe.Host != "login.microsoftonline.com" || !strings.Contains(pe.Detail(), fmt.Sprint(tc.status)) {
			t.Errorf("%d: %+v %v", tc.status, pe, ok)
		}
		retry := RetryWithin(time.Millisecond, time.Millisecond)
		if got := retry(nil, wrapped); got == tc.final {
			t.Errorf("%d: RetryWithin retries = %v", tc.status, got)
		}
	}
}
