package governor

import (
	"context"
	"io"
	"net/http"
	"time"
)

// ThrottleScopeHeader names the limit a Graph 429 is about:
// <Scope>/<Limit>/<ApplicationId>/<TenantId>, Scope being Application,
// Tenant_Application or Tenant.
const ThrottleScopeHeader = "x-ms-throttle-scope"

// Transport sends Microsoft Graph requests through the process's Graph
// Gate. It sets the request's priority header (PriorityOf its context,
// when set) and counts each request it sends in the context's Meter. A 429 that the
// Gate takes for the app's (Gate.Throttled) closes the gate and the
// request waits there and is sent again, as every other request of the
// process waits: such a 429 never reaches the caller's retry policy, so it
// costs the tenant none of its retries. A tenant's own 429 is returned as
// it came.
type Transport struct {
	Gate *Gate
	Next http.RoundTripper
}

func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if p := PriorityOf(ctx); p != "" && req.Header.Get(PriorityHeader) == "" {
		req = req.Clone(ctx) // a RoundTripper leaves its caller's request alone
		req.Header.Set(PriorityHeader, string(p))
	}
	for {
		if _, err := t.Gate.Wait(ctx); err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, err
		}
		MeterOf(ctx).Graph(1)
		resp, err := t.Next.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Gate.Answered()
			return resp, nil
		}
		wait := RetryAfter(resp.Header, time.Now())
		if !t.Gate.Throttled(TenantOf(ctx), resp.Header.Get(ThrottleScopeHeader), wait) {
			t.Gate.Answered()
			return resp, nil // the tenant's own limit: its retries decide
		}
		MeterOf(ctx).appThrottled()
		hasBody := req.Body != nil && req.Body != http.NoBody
		if hasBody && req.GetBody == nil {
			return resp, nil // cannot be sent again from here
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if hasBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(ctx)
			req.Body = body
		}
	}
}

// StepThrottled tells the gate of a 429 answered to one step of a Graph
// $batch (the batch itself answered 200), with the step's headers, and
// reports whether it was the app's: the gate is then closed, and the step
// sent again waits there like any request.
func (g *Gate) StepThrottled(ctx context.Context, h http.Header) bool {
	if !g.Throttled(TenantOf(ctx), h.Get(ThrottleScopeHeader), RetryAfter(h, time.Now())) {
		return false
	}
	MeterOf(ctx).appThrottled()
	return true
}
