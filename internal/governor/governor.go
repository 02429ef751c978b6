// Package governor keeps the app's Microsoft Graph traffic within what
// Graph allows the app as a whole, without a coordinator on the hot path.
// Two parts share the work:
//
//   - the planner paces a run (internal/sweep): each work message becomes
//     visible on the queue when the run's budget allows its requests, so
//     however many instances take messages, the fleet's rate stays within
//     the budget;
//   - each process has a Gate per service: a 429 that Graph answered for
//     the app as a whole (x-ms-throttle-scope Application/..., or 429s of
//     several tenants at once) closes the gate for its Retry-After, and
//     every request of the process waits there instead of each tenant
//     retrying on its own schedule. Such a 429 is never a tenant's retry:
//     a tenant is throttled only when its own budget ran out.
//
// It also carries, in a request's context, the priority Graph's identity
// service throttles by (x-ms-throttle-priority: low for the sweep, high
// for onboarding's verification), the tenant the request is for, and a
// Meter that counts a tenant's requests for the run's pacing and progress.
package governor

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// Priority is the x-ms-throttle-priority of a request: Graph throttles low
// priority requests first and high priority ones last, within the same
// limits.
type Priority string

const (
	Low  Priority = "low"
	High Priority = "high"
)

// PriorityHeader is the request header Graph's identity service reads
// (Microsoft Graph service-specific throttling limits, "Additional
// headers"). It is Graph's: Entra ID's token endpoint and Key Vault
// document nothing of the kind.
const PriorityHeader = "x-ms-throttle-priority"

type priorityKey struct{}

// WithPriority marks the requests made under ctx.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf is ctx's priority; "" means Graph's default (normal).
func PriorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

type tenantKey struct{}

// WithTenant names the tenant the requests made under ctx are for, so that
// 429s of several tenants can be told from one tenant's.
func WithTenant(ctx context.Context, tenantID string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenantID)
}

// TenantOf is the tenant named by WithTenant, or "".
func TenantOf(ctx context.Context) string {
	s, _ := ctx.Value(tenantKey{}).(string)
	return s
}

// Meter counts one tenant's requests and what the gates did to them. Its
// methods are safe for concurrent use and on a nil *Meter.
type Meter struct {
	graph, tokens, appThrottles atomic.Int64
	held                        atomic.Bool

	// The time some of the tenant's requests waited at a gate: its
	// requests wait in parallel, so their waits overlap and are not summed.
	mu      sync.Mutex
	waiting int
	since   time.Time
	paused  time.Duration
}

type meterKey struct{}

// WithMeter returns ctx with a new Meter, and the Meter.
func WithMeter(ctx context.Context) (context.Context, *Meter) {
	m := &Meter{}
	return context.WithValue(ctx, meterKey{}, m), m
}

// MeterOf is ctx's Meter, or nil.
func MeterOf(ctx context.Context) *Meter {
	m, _ := ctx.Value(meterKey{}).(*Meter)
	return m
}

// Graph counts n Graph requests (a $batch counts its steps).
func (m *Meter) Graph(n int) {
	if m != nil {
		m.graph.Add(int64(n))
	}
}

// Token counts one token request.
func (m *Meter) Token() {
	if m != nil {
		m.tokens.Add(1)
	}
}

// Counts is what a Meter counted.
type Counts struct {
	GraphRequests, TokenRequests int
	// AppThrottles are the 429s the app as a whole got (not the tenant's);
	// Paused is how long the tenant waited at a closed gate: the time in
	// which any of its requests waited there, not the sum of their waits.
	AppThrottles int
	Paused       time.Duration
}

// Counts returns what m counted.
func (m *Meter) Counts() Counts {
	if m == nil {
		return Counts{}
	}
	m.mu.Lock()
	paused := m.paused
	m.mu.Unlock()
	return Counts{GraphRequests: int(m.graph.Load()), TokenRequests: int(m.tokens.Load()),
		AppThrottles: int(m.appThrottles.Load()), Paused: paused}
}

// Held reports whether a gate stayed closed past the tenant's deadline: the
// tenant's work was cut short by the app's throttling, not by anything of
// its own, and must not be recorded against it.
func (m *Meter) Held() bool { return m != nil && m.held.Load() }

func (m *Meter) hold() {
	if m != nil {
		m.held.Store(true)
	}
}

// waitStarted and waitEnded bracket one request's wait at a gate, at the
// gate's times.
func (m *Meter) waitStarted(now time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.waiting == 0 {
		m.since = now
	}
	m.waiting++
}

func (m *Meter) waitEnded(now time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.waiting--
	if m.waiting == 0 && now.After(m.since) {
		m.paused += now.Sub(m.since)
	}
}

func (m *Meter) appThrottled() {
	if m != nil {
		m.appThrottles.Add(1)
	}
}

// ErrAppThrottled is wrapped by the error of a request that could not wait
// for a closed gate within its deadline.
var ErrAppThrottled = errors.New("the app as a whole is throttled")

// Options tune a Gate.
type Options struct {
	// Service names what the gate guards in its errors ("Microsoft Graph").
	Service string
	// Tenants is how many tenants answered 429 without a throttle scope
	// within Window make the throttle the app's; default 3.
	Tenants int
	Window  time.Duration // default 10s
	// MinPause is the shortest pause a throttle of the app's closes the
	// gate for (Retry-After is in whole seconds); default 1s.
	MinPause time.Duration
	// MinRate is the least rate the gate paces the process at after an
	// app-wide throttle, requests a second; default 1.
	MinRate float64
	// MaxBacklog is how long the requests waiting for their turn may take
	// to go before WaitPause lets more work start; default 5s.
	MaxBacklog time.Duration
	// OnPause, when set, is told each time the gate closes or its pause is
	// extended, with the end of the pause, the rate it paces the process at
	// from then on, and the throttle's scope; it must be quick.
	OnPause func(until time.Time, rate float64, scope string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Gate holds back one service's requests of the process while the app as a
// whole is throttled there, and then lets them through at the rate that got
// through before the throttle, so that the requests held during a pause do
// not storm the service again when it ends: the answers that got through in
// the seconds the process was sending (idle seconds do not count, so a
// process that had little to send does not take that as its share). That
// rate grows by 5% each second from the end of the pause, a throttle sets it
// again to what got through, and a minute without one lifts it.
// Every instance of the app does the same with what it sees, without
// talking to the others: when each keeps to what got through for it, the
// fleet keeps to what the service allows the app. It is safe for
// concurrent use.
type Gate struct {
	opt Options

	mu      sync.Mutex
	until   time.Time     // end of the current pause
	changed chan struct{} // closed and replaced when the pause or the rate changes
	recent  map[string]time.Time
	pauses  int
	// The pacing after a throttle: base requests a second at lastThrottle,
	// growing from there; next is the earliest time of the next request.
	base         float64
	lastThrottle time.Time
	next         time.Time
	// ok counts the answers that were not a throttle of the app's, and
	// throttled those that were, by second (a ring of okSeconds), to tell
	// what got through while the process was sending.
	ok, throttled [okSeconds]int
	binSec        [okSeconds]int64
}

const (
	okSeconds  = 10
	rateGrowth = 1.05 // a second
	rateLift   = time.Minute
)

// NewGate returns an open gate that paces nothing.
func NewGate(opt Options) *Gate {
	if opt.Service == "" {
		opt.Service = "the service"
	}
	if opt.Tenants <= 0 {
		opt.Tenants = 3
	}
	if opt.Window <= 0 {
		opt.Window = 10 * time.Second
	}
	if opt.MinPause <= 0 {
		opt.MinPause = time.Second
	}
	if opt.MinRate <= 0 {
		opt.MinRate = 1
	}
	if opt.MaxBacklog <= 0 {
		opt.MaxBacklog = 5 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Gate{opt: opt, changed: make(chan struct{}), recent: map[string]time.Time{}}
}

// rateLocked is the pacing rate at now, 0 for none; g.mu is held.
func (g *Gate) rateLocked(now time.Time) float64 {
	if g.base == 0 {
		return 0
	}
	// It grows from the end of the pause: what got through before the
	// throttle is what may go through after it.
	since := now.Sub(g.lastThrottle)
	if g.until.After(g.lastThrottle) {
		since = now.Sub(g.until)
	}
	if since >= rateLift {
		g.base = 0
		return 0
	}
	return g.base * math.Pow(rateGrowth, max(since.Seconds(), 0))
}

// Wait returns once the request may be sent: the gate is open and, after a
// throttle, the pacing has come to it. It returns how long it waited. It
// does not wait past ctx's deadline: it then fails at once with an
// outcome.Throttled error wrapping ErrAppThrottled, and marks ctx's Meter
// held.
func (g *Gate) Wait(ctx context.Context) (time.Duration, error) {
	return g.wait(ctx, true)
}

// WaitPause is Wait for work that is about to start rather than a request:
// it waits for the pause to end, and, while the gate paces the process,
// until the requests already waiting for their turn would all be sent
// within MaxBacklog, so that work started now does not spend its own
// deadline waiting behind them. It takes no turn of the pacing.
func (g *Gate) WaitPause(ctx context.Context) (time.Duration, error) {
	return g.wait(ctx, false)
}

func (g *Gate) wait(ctx context.Context, paced bool) (time.Duration, error) {
	if g == nil {
		return 0, nil
	}
	start := g.opt.Now()
	meter := MeterOf(ctx)
	meter.waitStarted(start)
	defer func() { meter.waitEnded(g.opt.Now()) }()
	for {
		g.mu.Lock()
		now := g.opt.Now()
		at := g.until
		rate := g.rateLocked(now)
		switch {
		case paced && rate > 0 && g.next.After(at):
			at = g.next
		case !paced && rate > 0 && g.next.Add(-g.opt.MaxBacklog).After(at):
			at = g.next.Add(-g.opt.MaxBacklog)
		}
		if !paced {
			rate = 0 // takes no turn
		}
		if !now.Before(at) {
			if rate > 0 {
				g.next = now.Add(time.Duration(float64(time.Second) / rate))
			}
			g.mu.Unlock()
			return now.Sub(start), nil
		}
		if d, ok := ctx.Deadline(); ok && d.Before(at) {
			g.mu.Unlock()
			meter.hold()
			return now.Sub(start), outcome.New(outcome.Throttled,
				g.opt.Service+" is throttling the app as a whole (every tenant), past this tenant's time budget", ErrAppThrottled)
		}
		// Past the pause, at is a turn of the pacing: it is taken now.
		reserved := rate > 0 && !at.Equal(g.until)
		if reserved {
			g.next = at.Add(time.Duration(float64(time.Second) / rate))
		}
		changed := g.changed
		g.mu.Unlock()
		t := time.NewTimer(at.Sub(now))
		select {
		case <-t.C:
			if reserved {
				return g.opt.Now().Sub(start), nil
			}
		case <-changed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// Its deadline came while the app's throttling held it.
				meter.hold()
			}
			return g.opt.Now().Sub(start), ctx.Err()
		}
	}
}

// Answered tells the gate that a request got an answer that was not a
// throttle of the app's: it counts towards the rate that gets through.
func (g *Gate) Answered() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ok[g.binLocked(g.opt.Now())]++
}

// binLocked is the ring's index of now's second, its counts emptied when
// the ring has come round to it; g.mu is held.
func (g *Gate) binLocked(now time.Time) int {
	sec := now.Unix()
	i := int(sec % okSeconds)
	if g.binSec[i] != sec {
		g.binSec[i], g.ok[i], g.throttled[i] = sec, 0, 0
	}
	return i
}

// throughLocked is the rate of answers that got through in the last
// okSeconds' seconds in which the process was answered at all (at least a
// second's worth); g.mu is held.
func (g *Gate) throughLocked(now time.Time) float64 {
	sec := now.Unix()
	n, seconds := 0, 0
	for i := range okSeconds {
		if sec-g.binSec[i] < okSeconds && g.ok[i]+g.throttled[i] > 0 {
			n += g.ok[i]
			seconds++
		}
	}
	return float64(n) / float64(max(seconds, 1))
}

// Throttled tells the gate of a 429 that tenant's request got, with its
// x-ms-throttle-scope (maybe empty) and Retry-After. It reports whether the
// throttle is the app's: its scope is the application's, or tenants
// answered 429 without a scope within Window. The gate then stays closed
// for retryAfter (at least MinPause) from now, and paces the process from
// then on at the rate that got through (at least MinRate).
func (g *Gate) Throttled(tenant, scope string, retryAfter time.Duration) bool {
	if g == nil {
		return false
	}
	now := g.opt.Now()
	scopeName, _, _ := strings.Cut(scope, "/")
	g.mu.Lock()
	defer g.mu.Unlock()
	appWide := false
	switch {
	case strings.EqualFold(scopeName, "Application"):
		appWide = true
	case scopeName != "":
		// Tenant_Application or Tenant: this tenant's own limit.
	default:
		for id, at := range g.recent {
			if now.Sub(at) > g.opt.Window {
				delete(g.recent, id)
			}
		}
		if tenant != "" {
			g.recent[tenant] = now
		}
		appWide = len(g.recent) >= g.opt.Tenants
	}
	if !appWide {
		return false
	}
	g.throttled[g.binLocked(now)]++
	// Within a burst of throttles the last estimate has seen the most of
	// the answers that came with them.
	rate := max(g.throughLocked(now), g.opt.MinRate)
	g.base, g.lastThrottle = rate, now
	until := now.Add(max(retryAfter, g.opt.MinPause))
	if until.After(g.until) {
		g.until = until
		g.pauses++
		if g.opt.OnPause != nil {
			g.opt.OnPause(until, rate, scope)
		}
	}
	if g.next.Before(g.until) {
		g.next = g.until
	}
	close(g.changed)
	g.changed = make(chan struct{})
	return true
}

// PausedUntil is when the current pause ends (zero or past: open).
func (g *Gate) PausedUntil() time.Time {
	if g == nil {
		return time.Time{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.until
}

// Rate is the rate the gate paces the process at now, requests a second; 0
// when it paces nothing.
func (g *Gate) Rate() float64 {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rateLocked(g.opt.Now())
}

// Pauses is how often the gate was closed or its pause extended.
func (g *Gate) Pauses() int {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pauses
}

// RetryAfter reads a 429's wait as Graph and Key Vault send it:
// retry-after-ms, x-ms-retry-after-ms, then Retry-After in seconds or as an
// HTTP date; 0 when there is none.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v := h.Get(name); v != "" {
			if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}
