package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// responseError stands in for an *azcore.ResponseError in an outcome's chain:
// the SDK's text holds the request URL and the whole response body.
type responseError struct {
	op     string // "get secret", "unwrapKey key"...
	status int
	code   string
	err    error
}

func (e *responseError) Error() string {
	if e.code != "" {
		return fmt.Sprintf("keyvault: %s: HTTP %d %s", e.op, e.status, e.code)
	}
	return fmt.Sprintf("keyvault: %s: HTTP %d", e.op, e.status)
}

func (e *responseError) Unwrap() error { return e.err }

// isDisabled reports whether err is Key Vault's answer to reading a
// disabled secret's value: 403 with inner code SecretDisabled. That is
// metadata (Enabled=false), not a fault.
func isDisabled(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden && innerCode(re) == "SecretDisabled"
}

// classify turns an error from GetSecret into an *outcome.Error, after
// outcome.Settled has taken what needs no knowledge of Key Vault (an outcome
// from the credential or tenantCredential, a deadline, a cancellation).
func classify(ctx context.Context, name string, err error) error {
	var re *azcore.ResponseError
	isResp := errors.As(err, &re)
	if settled, ok := outcome.Settled(ctx, err, isResp, "Key Vault did not answer within the tenant's time budget"); ok {
		return settled
	}
	if !isResp {
		return noAnswer(err)
	}
	code := outcome.SafeCode(re.ErrorCode)
	wrapped := &responseError{op: "get secret", status: re.StatusCode, code: code, err: err}
	switch s := re.StatusCode; {
	case s == http.StatusForbidden:
		if innerCode(re) == "ForbiddenByFirewall" {
			return outcome.New(outcome.KeyVaultAccessDenied,
				"the vault's firewall does not let the app in: allow trusted access or the app's network on the vault", wrapped)
		}
		return outcome.New(outcome.KeyVaultAccessDenied,
			"the app has no role on the vault that allows reading secrets: grant it Key Vault Secrets User", wrapped)
	case s == http.StatusNotFound:
		return outcome.New(outcome.SecretNotFound,
			fmt.Sprintf("the vault has no secret named %q (or it is deleted)", name), wrapped)
	}
	return answered(ctx, re.StatusCode, wrapped)
}

// answered classifies a vault's answer that means the same for secrets and
// keys: throttled past the retry budget, a token the vault rejected, the
// service failing.
func answered(ctx context.Context, status int, wrapped error) error {
	switch {
	case status == http.StatusTooManyRequests:
		return outcome.New(outcome.Throttled, "Key Vault throttled the app past its retry budget", wrapped)
	case status == http.StatusUnauthorized:
		return outcome.New(outcome.UpstreamError, "the vault rejected the app's token", wrapped)
	case status >= 500:
		return outcome.New(outcome.UpstreamError, outcome.Answered(ctx, "Key Vault", status), wrapped)
	}
	return outcome.New(outcome.UpstreamError, fmt.Sprintf("Key Vault answered HTTP %d", status), wrapped)
}

// noAnswer classifies a request the vault did not answer, for secrets and
// keys alike.
func noAnswer(err error) error {
	switch {
	case errors.Is(err, errForeignHost):
		return outcome.New(outcome.UpstreamError, "the vault pointed the app at another host", err)
	case strings.Contains(err.Error(), "challenge"):
		// keyvault/internal's challenge policy: a challenge whose resource is
		// not this vault's domain, or none at all.
		return outcome.New(outcome.UpstreamError, "the vault's authentication challenge is not valid for its host", err)
	}
	if pe, ok := errors.AsType[*outcome.ProxyRefusedError](err); ok {
		return outcome.New(outcome.UpstreamError, "could not reach the vault: "+pe.Detail(), err)
	}
	return outcome.New(outcome.UpstreamError, "could not reach the vault", err)
}

// innerCode is Key Vault's error.innererror.code (SecretDisabled,
// ForbiddenByFirewall, ForbiddenByRbac...), or "".
func innerCode(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return ""
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil {
		return ""
	}
	var e struct {
		Error struct {
			InnerError struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return outcome.SafeCode(e.Error.InnerError.Code)
}
