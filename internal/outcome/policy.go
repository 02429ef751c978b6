package outcome

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// AttemptsPolicy gives each call of an azcore pipeline its own Attempts
// (WithAttempts), so that RetryWithin knows which try it decides on and a
// failure can say how often the service answered. Install it among the
// client's PerCallPolicies, with SentPolicy among its PerRetryPolicies.
type AttemptsPolicy struct{}

func (AttemptsPolicy) Do(req *policy.Request) (*http.Response, error) {
	return req.WithContext(WithAttempts(req.Raw().Context())).Next()
}

// SentPolicy counts each try of a call (Sent), below azcore's retry
// policy.
type SentPolicy struct{}

func (SentPolicy) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	raw := req.Raw()
	Sent(raw.Context(), raw.Method+" "+raw.URL.Path, status)
	return resp, err
}
