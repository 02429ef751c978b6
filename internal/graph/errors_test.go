package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

func odataErr(status int, code, message string) *odataerrors.ODataError {
	e := odataerrors.NewODataError()
	e.ResponseStatusCode = status
	if code != "" || message != "" {
		m := odataerrors.NewMainError()
		if code != "" {
			m.SetCode(&code)
		}
		if message != "" {
			m.SetMessage(&message)
		}
		e.SetErrorEscaped(m)
	}
	return e
}

func TestClassify(t *testing.T) {
	signIn := outcome.New(outcome.AppNotInTenant, "the app is not in the tenant", nil)
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want outcome.Code
	}{
		{"403 request denied", nil, odataErr(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."), outcome.GraphConsentMissing},
		{"403 without body", nil, &abs.ApiError{ResponseStatusCode: 403}, outcome.GraphConsentMissing},
		{"401 request denied", nil, odataErr(401, "Authorization_RequestDenied", "x"), outcome.GraphConsentMissing},
		{"401 identity not found", nil, odataErr(401, "Authorization_IdentityNotFound", "x"), outcome.GraphConsentMissing},
		{"401 invalid token", nil, odataErr(401, "InvalidAuthenticationToken", "Access token validation failure."), outcome.UpstreamError},
		{"429", nil, odataErr(429, "TooManyRequests", "slow down"), outcome.Throttled},
		{"503", nil, odataErr(503, "serviceNotAvailable", ""), outcome.UpstreamError},
		{"500 no error factory", nil, &abs.ApiError{ResponseStatusCode: 500, Message: "x"}, outcome.UpstreamError},
		{"400", nil, odataErr(400, "Request_BadRequest", "bad"), outcome.UpstreamError},
		{"sign-in outcome kept", nil, fmt.Errorf("wrapped: %w", signIn), outcome.AppNotInTenant},
		{"deadline", nil, &url.Error{Op: "Get", URL: "https://graph.microsoft.com/v1.0/users", Err: context.DeadlineExceeded}, outcome.Timeout},
		{"ctx expired, network error", expired, &url.Error{Op: "Get", URL: "https://graph.microsoft.com/v1.0/users", Err: errors.New("read: connection reset")}, outcome.Timeout},
		{"ctx expired, but 429 answered", expired, odataErr(429, "TooManyRequests", ""), outcome.Throttled},
		{"network", nil, &url.Error{Op: "Get", URL: "https://graph.microsoft.com/v1.0/users", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, outcome.UpstreamError},
		{"foreign host", nil, &url.Error{Op: "Get", URL: "https://evil.example/", Err: errForeignHost}, outcome.UpstreamError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := classify(ctx, "read organization", tt.err)
			var oe *outcome.Error
			if !errors.As(err, &oe) {
				t.Fatalf("classify = %v (%T), want an *outcome.Error", err, err)
			}
			if oe.Code != tt.want {
				t.Errorf("code = %s, want %s (detail %q)", oe.Code, tt.want, oe.Detail)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("the original error is not in the chain")
			}
			// Nothing the server or the SDK wrote may reach the customer.
			for _, leak := range []string{"Insufficient privileges", "validation failure", "slow down", "http", "connection"} {
				if strings.Contains(oe.Detail, leak) || strings.Contains(oe.Error(), leak) {
					t.Errorf("detail %q leaks %q", oe.Error(), leak)
				}
			}
		})
	}
}

func TestClassifyConsentDetail(t *testing.T) {
	err := classify(context.Background(), "count users", odataErr(403, "Authorization_RequestDenied", "m"))
	if got := outcome.Detail(err); got != "admin consent for Microsoft Graph application permissions is missing" {
		t.Errorf("detail = %q", got)
	}
}

// ODataError.Error dereferences the message; an error body without one must
// not make the wrapped error's text panic.
func TestClassifyNoMessageDoesNotPanic(t *testing.T) {
	err := classify(context.Background(), "read organization", odataErr(403, "", ""))
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("no apiError in %v", err)
	}
	if got := ae.Error(); got != "graph: read organization: HTTP 403" {
		t.Errorf("apiError text = %q", got)
	}
}

func TestClassifyCanceledIsNotAnOutcome(t *testing.T) {
	err := classify(context.Background(), "read organization", &url.Error{Op: "Get", URL: "u", Err: context.Canceled})
	var oe *outcome.Error
	if errors.As(err, &oe) || !errors.Is(err, context.Canceled) {
		t.Errorf("classify(canceled) = %v", err)
	}
}

func TestRetryDelay(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	resp := func(ra string) *http.Response {
		h := http.Header{}
		if ra != "" {
			h.Set("Retry-After", ra)
		}
		return &http.Response{StatusCode: 429, Header: h}
	}
	tests := []struct {
		name    string
		ra      string
		attempt int
		want    time.Duration
	}{
		{"zero", "0", 1, 0},
		{"fraction truncates", "0.5", 1, 0},
		{"seconds", "7", 3, 7 * time.Second},
		{"date", now.Add(90 * time.Second).Format(time.RFC1123), 1, 90 * time.Second},
		{"none, first", "", 1, 4 * time.Second},
		{"none, third", "", 3, 13 * time.Second},
		{"garbage", "soon", 1, 4 * time.Second},
	}
	for _, tt := range tests {
		if got := retryDelay(resp(tt.ra), 3, tt.attempt, now); got != tt.want {
			t.Errorf("%s: retryDelay = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBoundedRetry(t *testing.T) {
	req := func(d time.Duration) *http.Request {
		ctx := context.Background()
		if d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			t.Cleanup(cancel)
		}
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://graph.microsoft.com/v1.0/users", nil)
		return r
	}
	resp := func(ra string) *http.Response {
		return &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {ra}}}
	}
	o := boundedRetry(nil)
	if !o.ShouldRetry(0, 0, req(0), resp("120")) {
		t.Error("no deadline: retry declined")
	}
	if !o.ShouldRetry(0, 0, req(10*time.Second), resp("0")) {
		t.Error("Retry-After 0 within budget: retry declined")
	}
	if o.ShouldRetry(0, 0, req(10*time.Second), resp("30")) {
		t.Error("Retry-After 30 with 10s left: retry allowed")
	}
	calls := 0
	o = boundedRetry(&khttpOpts{ShouldRetry: func(time.Duration, int, *http.Request, *http.Response) bool { calls++; return false }})
	if o.ShouldRetry(0, 0, req(0), resp("0")) || calls != 1 {
		t.Errorf("the caller's ShouldRetry was not honoured (calls %d)", calls)
	}
}

func TestHostGuard(t *testing.T) {
	var sent []string
	g := hostGuard{host: "graph.microsoft.com", next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r.URL.String())
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})}
	for _, u := range []string{
		"https://graph.microsoft.com/v1.0/users",
		"https://GRAPH.microsoft.com:443/v1.0/users",
		"http://graph.microsoft.com/v1.0/users",
		"https://graph.microsoft.com:8443/v1.0/users",
		"https://graph.microsoft.com.evil.example/v1.0/users",
		"https://127.0.0.1/v1.0/users",
	} {
		r, _ := http.NewRequest(http.MethodGet, u, nil)
		resp, err := g.RoundTrip(r)
		if err == nil {
			_ = resp.Body.Close()
		}
	}
	if len(sent) != 2 {
		t.Errorf("sent %v, want only the two graph.microsoft.com https requests", sent)
	}
}
