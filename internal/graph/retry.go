package graph

import (
	"net/http"
	"strconv"
	"time"

	khttp "github.com/microsoft/kiota-http-go"
)

// boundedRetry returns kiota's retry options (base, or the defaults) with a
// ShouldRetry that also declines a retry whose wait would outlast the
// request's context. Declining hands the last 429/503/504 back to the caller
// at once, which then reports it as throttled rather than sleeping into a
// timeout.
func boundedRetry(base *khttp.RetryHandlerOptions) khttp.RetryHandlerOptions {
	var o khttp.RetryHandlerOptions
	if base != nil {
		o = *base
	}
	inner := o.ShouldRetry
	delaySeconds := o.GetDelaySeconds()
	o.ShouldRetry = func(cumulative time.Duration, executions int, req *http.Request, resp *http.Response) bool {
		if inner != nil && !inner(cumulative, executions, req, resp) {
			return false
		}
		deadline, ok := req.Context().Deadline()
		if !ok {
			return true
		}
		return time.Until(deadline) > retryDelay(resp, delaySeconds, executions+1, time.Now())
	}
	return o
}

// retryDelay is the longest wait kiota's RetryHandler (v1.5) may choose
// before retry number attempt (1 for the first retry): Retry-After in whole
// seconds or as an HTTP date, else DelaySeconds·2^(attempt-1) plus up to one
// second of jitter.
func retryDelay(resp *http.Response, delaySeconds, attempt int, now time.Time) time.Duration {
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.ParseFloat(ra, 64); err == nil {
			return time.Duration(s) * time.Second
		}
		if t, err := time.Parse(time.RFC1123, ra); err == nil {
			return t.Sub(now)
		}
	}
	if attempt > 30 {
		attempt = 30
	}
	return time.Duration(delaySeconds)*time.Second<<(attempt-1) + time.Second
}
