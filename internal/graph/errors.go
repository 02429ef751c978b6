package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// apiError stands in for a kiota error in an outcome's chain. Its text holds
// only the operation, the status and Graph's error code: the SDK's own text is
// Graph's message (server-chosen prose), and ODataError.Error panics when the
// body had no message. The original stays reachable through Unwrap.
type apiError struct {
	op     string
	status int
	code   string
	err    error
}

func (e *apiError) Error() string {
	if e.code != "" {
		return fmt.Sprintf("graph: %s: HTTP %d %s", e.op, e.status, e.code)
	}
	return fmt.Sprintf("graph: %s: HTTP %d", e.op, e.status)
}

func (e *apiError) Unwrap() error { return e.err }

// classify turns an error from a Graph call into an *outcome.Error, after
// outcome.Settled has taken what needs no knowledge of Graph (a sign-in
// failure the credential classified, a deadline, a cancellation).
func classify(ctx context.Context, op string, err error) error {
	status := statusOf(err)
	if settled, ok := outcome.Settled(ctx, err, status != 0, "Microsoft Graph did not answer within the tenant's time budget"); ok {
		return settled
	}
	if errors.Is(err, errForeignHost) {
		return outcome.New(outcome.UpstreamError, "Microsoft Graph pointed the app at a host outside the configured cloud", err)
	}
	if errors.Is(err, errNoOrganization) {
		return outcome.New(outcome.UpstreamError, "Microsoft Graph returned no organization for the tenant", err)
	}
	if status == 0 {
		return outcome.New(outcome.UpstreamError, "could not reach Microsoft Graph", err)
	}
	code := ErrorCode(err)
	wrapped := &apiError{op: op, status: status, code: code, err: err}
	switch {
	case status == http.StatusForbidden,
		status == http.StatusUnauthorized && (code == "Authorization_RequestDenied" || code == "Authorization_IdentityNotFound"):
		return outcome.New(outcome.GraphConsentMissing, "admin consent for Microsoft Graph application permissions is missing", wrapped)
	case status == http.StatusTooManyRequests:
		return outcome.New(outcome.Throttled, "Microsoft Graph throttled the app past its retry budget", wrapped)
	case status == http.StatusUnauthorized:
		return outcome.New(outcome.UpstreamError, withCode("Microsoft Graph rejected the app's token", code), wrapped)
	case status >= 500:
		return outcome.New(outcome.UpstreamError, outcome.Answered(ctx, "Microsoft Graph", status), wrapped)
	default:
		return outcome.New(outcome.UpstreamError, withCode(fmt.Sprintf("Microsoft Graph answered HTTP %d", status), code), wrapped)
	}
}

func withCode(s, code string) string {
	if code == "" {
		return s
	}
	return s + " (" + code + ")"
}

// statusOf is the HTTP status of a kiota error (an *odataerrors.ODataError,
// or an *abs.ApiError when no error body was mapped), or 0.
func statusOf(err error) int {
	var ae abs.ApiErrorable
	if errors.As(err, &ae) {
		return ae.GetStatusCode()
	}
	return 0
}

// ErrorCode is Graph's error code (for example Authorization_RequestDenied),
// or "". Graph's codes are fixed identifiers, safe to show; its messages are
// not passed on.
func ErrorCode(err error) string {
	var oe *odataerrors.ODataError
	if !errors.As(err, &oe) {
		return ""
	}
	main := oe.GetErrorEscaped()
	if main == nil || main.GetCode() == nil {
		return ""
	}
	return outcome.SafeCode(*main.GetCode())
}
