package cloudtest

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GraphAppLimit throttles an app's Graph requests across all tenants, as
// Graph's identity and access service limits an application (150,000
// resource units per 20 seconds in its documentation): a token bucket of
// Rate requests a second that holds at most Burst. Every request counts
// one, and every step of a JSON $batch counts one and is throttled on its
// own (the $batch envelope itself counts nothing): a throttled step is
// answered 429 inside the batch's 200. A throttled request gets 429
// TooManyRequests with Retry-After (whole seconds until the bucket holds a
// request again, at least 1) and, as Graph's identity service sends them,
// x-ms-throttle-scope Application/ReadWrite/<appId>/<tenantId> and
// x-ms-throttle-information ResourceUnitLimitExceeded. A throttled request
// takes nothing from the bucket.
type GraphAppLimit struct {
	// Rate is the requests a second the bucket refills with; 0 turns the
	// limit off.
	Rate float64
	// Burst is the most the bucket holds (and its level when the limit is
	// set); at least 1. 0 means Rate (one second's worth).
	Burst float64
}

// GraphThrottleStats is what the app limit saw since it was set (or since
// ResetCounters).
type GraphThrottleStats struct {
	// Requests counts every request and $batch step the limit looked at;
	// Throttled those answered 429.
	Requests, Throttled int
	// Windows are consecutive 10-second windows from Since, each with its
	// requests and 429s.
	Since   time.Time
	Windows []ThrottleWindow
}

// ThrottleWindow is one 10-second window of GraphThrottleStats.
type ThrottleWindow struct {
	Requests, Throttled int
}

// ThrottleWindowLength is the length of a GraphThrottleStats window.
const ThrottleWindowLength = 10 * time.Second

// appBucket is the token bucket of one app; c.mu guards it.
type appBucket struct {
	tokens float64
	last   time.Time
}

// graphThrottle is the app limit's state; c.mu guards it.
type graphThrottle struct {
	limit   GraphAppLimit
	buckets map[string]*appBucket // by app id
	since   time.Time
	windows []ThrottleWindow
}

// SetGraphAppLimit sets (or, with a zero Rate, removes) the app limit; the
// counters start again.
func (c *Cloud) SetGraphAppLimit(l GraphAppLimit) {
	if l.Burst <= 0 {
		l.Burst = math.Max(l.Rate, 1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.throttle = graphThrottle{limit: l, buckets: map[string]*appBucket{}, since: time.Now()}
}

// GraphThrottleStats returns what the app limit counted.
func (c *Cloud) GraphThrottleStats() GraphThrottleStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := GraphThrottleStats{Since: c.throttle.since, Windows: append([]ThrottleWindow(nil), c.throttle.windows...)}
	for _, w := range st.Windows {
		st.Requests += w.Requests
		st.Throttled += w.Throttled
	}
	return st
}

// takeAppLocked counts one request of appID at now against the app limit
// and reports how long until the bucket allows one when it is throttled
// (0: allowed); c.mu is held.
func (c *Cloud) takeAppLocked(appID string, now time.Time) time.Duration {
	th := &c.throttle
	if th.limit.Rate <= 0 {
		return 0
	}
	b := th.buckets[appID]
	if b == nil {
		b = &appBucket{tokens: th.limit.Burst, last: now}
		th.buckets[appID] = b
	}
	b.tokens = math.Min(th.limit.Burst, b.tokens+now.Sub(b.last).Seconds()*th.limit.Rate)
	b.last = now
	i := max(int(now.Sub(th.since)/ThrottleWindowLength), 0)
	for len(th.windows) <= i {
		th.windows = append(th.windows, ThrottleWindow{})
	}
	th.windows[i].Requests++
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	th.windows[i].Throttled++
	return time.Duration((1 - b.tokens) / th.limit.Rate * float64(time.Second))
}

// appThrottled answers r with the app limit's 429 when the app of its token
// is over the limit, and reports whether it did.
func (c *Cloud) appThrottled(w http.ResponseWriter, r *http.Request, tenant string) bool {
	c.mu.Lock()
	ti, _ := c.lookupLocked(bearer(r))
	wait := c.takeAppLocked(ti.claims.AppID, time.Now())
	c.mu.Unlock()
	if wait <= 0 {
		return false
	}
	secs := max(int(math.Ceil(wait.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("x-ms-throttle-scope", "Application/ReadWrite/"+ti.claims.AppID+"/"+tenant)
	w.Header().Set("x-ms-throttle-information", "ResourceUnitLimitExceeded")
	writeODataError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests.")
	return true
}

// tenantThrottleScope is the x-ms-throttle-scope of a tenant's own 429
// (GraphThrottle, GraphStatus 429): its app-and-tenant pair's limit.
func (c *Cloud) tenantThrottleScope(w http.ResponseWriter, r *http.Request, tenant string) {
	c.mu.Lock()
	ti, _ := c.lookupLocked(bearer(r))
	c.mu.Unlock()
	w.Header().Set("x-ms-throttle-scope", "Tenant_Application/ReadWrite/"+strings.ToLower(ti.claims.AppID)+"/"+tenant)
}
