package governor

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

func TestGateScopes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tenants []string
		scope   string
		appWide bool
	}{
		{"application scope", []string{"t1"}, "Application/ReadWrite/app/t1", true},
		{"the tenant's own limit", []string{"t1", "t2", "t3"}, "Tenant_Application/ReadWrite/app/t1", false},
		{"the tenant's limit for all apps", []string{"t1", "t2", "t3"}, "Tenant/ReadWrite/app/t1", false},
		{"no scope, one tenant", []string{"t1", "t1", "t1"}, "", false},
		{"no scope, two tenants", []string{"t1", "t2"}, "", false},
		{"no scope, three tenants", []string{"t1", "t2", "t3"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := NewGate(Options{})
				got := false
				for _, id := range tc.tenants {
					got = g.Throttled(id, tc.scope, 2*time.Second)
				}
				if got != tc.appWide {
					t.Fatalf("app-wide = %v, want %v", got, tc.appWide)
				}
				if open := !time.Now().Before(g.PausedUntil()); open == tc.appWide {
					t.Errorf("gate open = %v after an app-wide %v throttle", open, tc.appWide)
				}
			})
		})
	}
}

// Scope-less 429s count as the app's only when they come from several
// tenants within the window.
func TestGateForgetsOldThrottles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(Options{Window: 10 * time.Second})
		g.Throttled("t1", "", 0)
		g.Throttled("t2", "", 0)
		time.Sleep(11 * time.Second)
		if g.Throttled("t3", "", 0) {
			t.Fatal("two 429s of 11 s ago and one now made an app-wide throttle")
		}
		if g.Throttled("t4", "", 0) || !g.Throttled("t5", "", 0) {
			t.Fatal("the third tenant within the window did not make it the app's, or the second did")
		}
	})
}

// Every waiter is held until the pause ends, however many there are, and
// one that cannot wait within its deadline is told so at once, its Meter
// held, with an outcome that says the app is throttled.
func TestGateHoldsEveryRequestForTheRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pauses []time.Time
		g := NewGate(Options{Service: "Microsoft Graph", OnPause: func(until time.Time, _ string) { pauses = append(pauses, until) }})
		start := time.Now()
		g.Throttled("t1", "Application/ReadWrite/a/t1", 5*time.Second)
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				ctx, m := WithMeter(t.Context())
				waited, err := g.Wait(ctx)
				if err != nil || waited != 5*time.Second || time.Since(start) != 5*time.Second || m.Counts().Paused != 5*time.Second {
					t.Errorf("waited %v (%v since the throttle, meter %v): %v", waited, time.Since(start), m.Counts().Paused, err)
				}
			})
		}
		// A longer throttle meanwhile extends the pause for everyone.
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		ctx, m := WithMeter(ctx)
		if _, err := g.Wait(ctx); !errors.Is(err, ErrAppThrottled) || outcome.Of(err) != outcome.Throttled || !m.Held() {
			t.Errorf("a wait past the deadline: %v (%s), held %v", err, outcome.Of(err), m.Held())
		}
		if time.Since(start) != 0 {
			t.Errorf("it waited %v before giving up", time.Since(start))
		}
		wg.Wait()
		if len(pauses) != 1 || !pauses[0].Equal(start.Add(5*time.Second)) {
			t.Errorf("OnPause told %v", pauses)
		}
		if _, err := g.Wait(t.Context()); err != nil {
			t.Errorf("after the pause: %v", err)
		}
	})
}

func TestGateExtends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(Options{})
		g.Throttled("", "Application/x", time.Second)
		done := make(chan time.Duration)
		go func() {
			d, _ := g.Wait(t.Context())
			done <- d
		}()
		time.Sleep(500 * time.Millisecond)
		g.Throttled("", "Application/x", 3*time.Second)
		if d := <-done; d != 3500*time.Millisecond || g.Pauses() != 2 {
			t.Errorf("waited %v after an extension (pauses %d), want 3.5s", d, g.Pauses())
		}
		g.Throttled("", "Application/x", 0) // Retry-After 0: the least pause
		if d, _ := g.Wait(t.Context()); d != time.Second {
			t.Errorf("a throttle without a wait paused %v, want the 1s minimum", d)
		}
	})
}

// roundTrips answers each request with the next of its answers.
type roundTrips struct {
	mu      sync.Mutex
	answers []func(*http.Request) *http.Response
	seen    []*http.Request
	bodies  []string
}

func (r *roundTrips) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	body := ""
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		body = string(b)
	}
	r.seen = append(r.seen, req)
	r.bodies = append(r.bodies, body)
	a := r.answers[0]
	if len(r.answers) > 1 {
		r.answers = r.answers[1:]
	}
	return a(req), nil
}

func status(code int, hdr ...string) func(*http.Request) *http.Response {
	return func(req *http.Request) *http.Response {
		h := http.Header{}
		for i := 0; i+1 < len(hdr); i += 2 {
			h.Set(hdr[i], hdr[i+1])
		}
		return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader("{}")), Request: req}
	}
}

// The app's 429 is waited out at the gate and the request sent again, body
// and all; the tenant's own 429 goes back to the caller's retry policy.
func TestTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		next := &roundTrips{answers: []func(*http.Request) *http.Response{
			status(429, "Retry-After", "2", ThrottleScopeHeader, "Application/ReadWrite/app/t1"),
			status(200),
		}}
		tr := &Transport{Gate: NewGate(Options{}), Next: next}
		ctx, m := WithMeter(WithTenant(WithPriority(t.Context(), Low), "t1"))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://graph.microsoft.com/v1.0/$batch", strings.NewReader(`{"requests":[]}`))
		start := time.Now()
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		if time.Since(start) != 2*time.Second || len(next.seen) != 2 || next.bodies[1] != `{"requests":[]}` {
			t.Errorf("resent after %v, %d sends, bodies %q", time.Since(start), len(next.seen), next.bodies)
		}
		for _, r := range next.seen {
			if r.Header.Get(PriorityHeader) != "low" {
				t.Errorf("priority header %q", r.Header.Get(PriorityHeader))
			}
		}
		if req.Header.Get(PriorityHeader) != "" {
			t.Error("the caller's request was changed")
		}
		if c := m.Counts(); c.GraphRequests != 2 || c.AppThrottles != 1 || c.Paused != 2*time.Second || m.Held() {
			t.Errorf("meter %+v held %v", c, m.Held())
		}

		next = &roundTrips{answers: []func(*http.Request) *http.Response{
			status(429, "Retry-After", "0", ThrottleScopeHeader, "Tenant_Application/ReadWrite/app/t1"),
		}}
		tr.Next = next
		req, _ = http.NewRequestWithContext(WithPriority(t.Context(), High), http.MethodGet, "https://graph.microsoft.com/v1.0/organization", nil)
		resp, err = tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 429 || len(next.seen) != 1 || next.seen[0].Header.Get(PriorityHeader) != "high" {
			t.Errorf("tenant's 429: %v %v, %d sends", resp, err, len(next.seen))
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		hdr  http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		{http.Header{"Retry-After": {"1.5"}}, 1500 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"20"}, "Retry-After": {"3"}}, 20 * time.Millisecond},
		{http.Header{"Retry-After": {now.Add(4 * time.Second).Format(http.TimeFormat)}}, 4 * time.Second},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{}, 0},
	} {
		if got := RetryAfter(tc.hdr, now); got != tc.want {
			t.Errorf("RetryAfter(%v) = %v, want %v", tc.hdr, got, tc.want)
		}
	}
}
