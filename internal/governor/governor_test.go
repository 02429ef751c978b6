package governor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
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

// Every waiter is held until the pause ends, and then let through at the
// rate that got through before the throttle; one that cannot wait within
// its deadline is told so at once, its Meter held, with an outcome that
// says the app is throttled.
func TestGateHoldsEveryRequestForTheRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type pause struct {
			until time.Time
			rate  float64
		}
		var pauses []pause
		g := NewGate(Options{Service: "Microsoft Graph", OnPause: func(until time.Time, rate float64, _ string) {
			pauses = append(pauses, pause{until, rate})
		}})
		time.Sleep(time.Second)
		for range 20 { // 20 answers in the last second: 20 a second got through
			g.Answered()
		}
		start := time.Now()
		g.Throttled("t1", "Application/ReadWrite/a/t1", 5*time.Second)
		var mu sync.Mutex
		var released []time.Duration
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				ctx, m := WithMeter(t.Context())
				waited, err := g.Wait(ctx)
				if err != nil || waited != time.Since(start) || m.Counts().Paused != waited {
					t.Errorf("waited %v (%v since the throttle, meter %v): %v", waited, time.Since(start), m.Counts().Paused, err)
				}
				mu.Lock()
				released = append(released, waited)
				mu.Unlock()
			})
		}
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
		slices.Sort(released)
		if released[0] != 5*time.Second || released[9] < 5*time.Second+8*50*time.Millisecond || released[9] > 5*time.Second+9*50*time.Millisecond {
			t.Errorf("released at %v, want from 5s on, about one every 50ms", released)
		}
		if len(pauses) != 1 || !pauses[0].until.Equal(start.Add(5*time.Second)) || pauses[0].rate != 20 {
			t.Errorf("OnPause told %v", pauses)
		}
		// The pace grows by a tenth a second from the end of the pause, and
		// is lifted after a minute.
		time.Sleep(10*time.Second - 450*time.Millisecond)
		if r := g.Rate(); r < 20*1.628 || r > 20*1.629 {
			t.Errorf("rate 10 s after the pause = %v, want 20·1.05^10", r)
		}
		time.Sleep(time.Minute)
		if r := g.Rate(); r != 0 {
			t.Errorf("rate after a minute without a throttle = %v", r)
		}
		if d, err := g.Wait(t.Context()); err != nil || d != 0 {
			t.Errorf("after the pause: %v %v", d, err)
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

// bucket is a service that allows rate requests a second across all its
// callers (burst of one second's worth) and answers the rest 429 with
// Retry-After, each request taking 100 ms.
type bucket struct {
	mu              sync.Mutex
	rate, tokens    float64
	last            time.Time
	sent, throttled int
}

func (b *bucket) RoundTrip(req *http.Request) (*http.Response, error) {
	time.Sleep(100 * time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.last.IsZero() {
		b.tokens, b.last = b.rate, now
	}
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.sent++
	if b.tokens >= 1 {
		b.tokens--
		return status(200)(req), nil
	}
	b.throttled++
	wait := int((1-b.tokens)/b.rate) + 1
	return status(429, "Retry-After", strconv.Itoa(wait), ThrottleScopeHeader, "Application/ReadWrite/app/t")(req), nil
}

// Three processes each with 100 tenants in flight against a service that
// allows the app 50 requests a second: each tenant retrying on its own
// makes most requests 429s; with a gate per process, a few percent. Here
// each process has its own tenants to finish (a queue would give an
// instance that paced itself low fewer messages), so the time depends on
// which process learned the lowest share: 1.1 to 1.75 times what the limit
// allows over many runs; the bound is twice.
func TestGatesKeepAFleetWithinTheLimit(t *testing.T) {
	run := func(withGate bool) (sent, throttled int, took time.Duration) {
		synctest.Test(t, func(t *testing.T) {
			svc := &bucket{rate: 50}
			start := time.Now()
			var wg sync.WaitGroup
			for p := range 3 {
				var gate *Gate
				if withGate {
					gate = NewGate(Options{})
				}
				tr := &Transport{Gate: gate, Next: svc}
				for i := range 100 {
					wg.Go(func() {
						// The tenants start over the first two seconds: three
						// times what the service allows.
						time.Sleep(time.Duration(i) * 20 * time.Millisecond)
						ctx := WithTenant(t.Context(), fmt.Sprintf("p%d-t%d", p, i))
						for range 3 { // three requests a tenant, one after the other
							for {
								req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://graph.microsoft.com/v1.0/organization", nil)
								resp, err := tr.RoundTrip(req)
								if err != nil {
									t.Error(err)
									return
								}
								if resp.StatusCode == 200 {
									break
								}
								time.Sleep(RetryAfter(resp.Header, time.Now())) // the tenant's own retry
							}
						}
					})
				}
			}
			wg.Wait()
			sent, throttled, took = svc.sent, svc.throttled, time.Since(start)
		})
		return sent, throttled, took
	}
	sent, throttled, took := run(false)
	t.Logf("each tenant on its own: %d requests, %d 429s (%.0f%%), %v", sent, throttled, 100*float64(throttled)/float64(sent), took)
	if float64(throttled) < 0.3*float64(sent) {
		t.Errorf("without a gate only %d of %d were throttled: the test no longer storms", throttled, sent)
	}
	sent, throttled, took = run(true)
	t.Logf("with a gate per process: %d requests, %d 429s (%.1f%%), %v", sent, throttled, 100*float64(throttled)/float64(sent), took)
	floor := 900 * time.Second / 50
	if float64(throttled) > 0.1*float64(sent) || took > 2*floor {
		t.Errorf("with gates: %d of %d requests throttled in %v (floor %v)", throttled, sent, took, floor)
	}
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

// Work about to start waits for the pause, not for a turn of the pacing:
// only requests take turns.
func TestWaitPauseTakesNoTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(Options{})
		g.Throttled("", "Application/x", 2*time.Second) // paced at the least rate, 1 a second
		if d, err := g.WaitPause(t.Context()); err != nil || d != 2*time.Second {
			t.Fatalf("WaitPause: %v %v", d, err)
		}
		for range 5 {
			if d, _ := g.WaitPause(t.Context()); d != 0 {
				t.Fatalf("WaitPause after the pause waited %v", d)
			}
		}
		if d, _ := g.Wait(t.Context()); d != 0 {
			t.Errorf("the first request after the pause waited %v", d)
		}
		if d, _ := g.Wait(t.Context()); d != time.Second {
			t.Errorf("the second request waited %v, want its turn a second later", d)
		}
	})
}

// While the gate paces the process, new work starts only when the requests
// already waiting for their turn would go within MaxBacklog: work started
// later does not spend its deadline in that queue.
func TestWaitPauseKeepsTheBacklogShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(Options{MaxBacklog: 5 * time.Second})
		g.Throttled("", "Application/x", time.Second) // paced at the least rate, 1 a second
		var wg sync.WaitGroup
		for range 10 { // ten requests waiting: their turns from the pause's end, one a second
			wg.Go(func() { _, _ = g.Wait(t.Context()) })
		}
		time.Sleep(time.Second) // the pause ends: the turns are taken, the last 10 s from now
		synctest.Wait()
		if d, err := g.WaitPause(t.Context()); err != nil || d != 5*time.Second {
			t.Errorf("new work waited %v (%v), want 5s: until the backlog is 5s", d, err)
		}
		wg.Wait()
	})
}

// A tenant's requests wait at the gate in parallel: the meter counts the
// time the tenant waited, not the sum of its requests' waits, so that ten
// requests held for a second are a second of the tenant's budget.
func TestMeterCountsOverlappingWaitsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(Options{})
		ctx, m := WithMeter(t.Context())
		g.Throttled("t1", "Application/ReadWrite/a/t1", time.Second)
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				if _, err := g.WaitPause(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := m.Counts().Paused; got != time.Second {
			t.Errorf("paused %v after ten overlapping 1 s waits, want 1s", got)
		}
		// A later, separate wait adds its own time.
		time.Sleep(time.Minute)
		g.Throttled("t1", "Application/ReadWrite/a/t1", 2*time.Second)
		if _, err := g.WaitPause(ctx); err != nil {
			t.Fatal(err)
		}
		if got := m.Counts().Paused; got != 3*time.Second {
			t.Errorf("paused %v after a further 2 s wait, want 3s", got)
		}
	})
}
