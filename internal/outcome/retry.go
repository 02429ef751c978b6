package outcome

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// RetryStatuses are the statuses azcore retries by default.
var RetryStatuses = []int{http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// RetryWithin returns a ShouldRetry for azcore's retry policy (the Azure
// SDK's, Key Vault's and Entra ID's) that keeps each retry inside the
// request context's deadline. It declines:
//   - a host that does not resolve or refuses the connection (Unreachable):
//     the answer will not change within a tenant's budget;
//   - a retry whose wait (Retry-After, or the policy's exponential backoff
//     at its largest jitter for this try, delay·(2^try−1)·1.3 capped at
//     maxDelay) would end past the deadline: the last answer is then the
//     outcome, upstream_error naming its status or throttled, instead of a
//     timeout after sleeping through the budget.
//
// delay and maxDelay are the policy's RetryDelay and MaxRetryDelay (zero
// for azcore's defaults, 800 ms and 60 s). It counts tries with Attempts,
// so the pipeline must call Sent once per try (SentPolicy-like code at the
// bottom of the pipeline) under a context from WithAttempts; without one it
// assumes the first try.
func RetryWithin(delay, maxDelay time.Duration) func(*http.Response, error) bool {
	if delay == 0 {
		delay = 800 * time.Millisecond
	}
	if maxDelay == 0 {
		maxDelay = 60 * time.Second
	}
	return func(resp *http.Response, err error) bool {
		if err != nil {
			return !Unreachable(err)
		}
		if resp == nil || !slices.Contains(RetryStatuses, resp.StatusCode) {
			return false
		}
		if resp.Request == nil {
			return true
		}
		ctx := resp.Request.Context()
		deadline, ok := ctx.Deadline()
		if !ok {
			return true
		}
		wait := retryAfter(resp, time.Now())
		if wait <= 0 {
			wait = backoff(delay, maxDelay, try(ctx))
		}
		return time.Until(deadline) > wait
	}
}

// backoff is the longest wait azcore's retry policy chooses after try n.
func backoff(delay, maxDelay time.Duration, n int) time.Duration {
	n = min(n, 30)
	d := time.Duration(float64(delay) * float64(int64(1)<<n-1) * 1.3)
	if d > maxDelay || d < 0 {
		d = maxDelay
	}
	return d
}

// retryAfter reads the headers azcore honours, in its order: retry-after-ms,
// x-ms-retry-after-ms, then Retry-After in seconds or as an HTTP date.
func retryAfter(resp *http.Response, now time.Time) time.Duration {
	for _, h := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v := resp.Header.Get(h); v != "" {
			if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
				return time.Duration(ms) * time.Millisecond
			}
		}
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}
