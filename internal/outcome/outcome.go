// Package outcome is the one vocabulary for what happened in a customer tenant,
// shared by onboarding verification and the sweep. Adapters wrap the faults they
// recognise in an *Error carrying a Code; everything else is classified by Of.
package outcome

import (
	"context"
	"errors"
	"fmt"
)

// Code names an outcome. The values are stored in the registry and returned by
// the API, so they never change once released.
type Code string

const (
	OK             Code = "ok"
	AppNotInTenant Code = "app_not_in_tenant" // AADSTS700016, 7000229: seed step 3 missing
	// AppDisabled: AADSTS7000112, the app's enterprise application (service
	// principal) is disabled in the tenant: step 3 undone.
	AppDisabled Code = "app_disabled"
	// BlockedByPolicy: a policy refused the sign-in: the tenant's Conditional
	// Access for workload identities (AADSTS53003, 530032) or a tenant
	// restrictions policy of the network the app signs in from (5000211,
	// 500021, 500022).
	BlockedByPolicy Code = "blocked_by_policy"
	// TenantNotFound: AADSTS90002, 900023, 5000224, 5000225: no such tenant,
	// an invalid id, or a tenant deleted or blocked.
	TenantNotFound Code = "tenant_not_found"
	// WrongCloud: the tenant lives in another Microsoft cloud than the
	// deployment's (AADSTS900382, 900432, 90038; or its OpenID metadata).
	WrongCloud           Code = "wrong_cloud"
	AppCredentialInvalid Code = "app_credential_invalid" // AADSTS7000215/7000222/700027: our side
	GraphConsentMissing  Code = "graph_consent_missing"  // Graph 403: seed step 4 missing
	// GraphPermissionMissing: the token's roles lack a permission the app
	// needs (it gained one since the tenant consented): seed step 4 again.
	GraphPermissionMissing Code = "graph_permission_missing"
	// ResourceNotInTenant: AADSTS500011, the resource the app asks a token
	// for (Azure Key Vault, Microsoft Graph) has no service principal in
	// the tenant: a tenant without an Azure subscription has none for Key
	// Vault.
	ResourceNotInTenant  Code = "resource_not_in_tenant"
	KeyVaultAccessDenied Code = "keyvault_access_denied" // Key Vault 403: seed step 5 missing
	SecretNotFound       Code = "secret_not_found"       // Key Vault 404
	Throttled            Code = "throttled"              // 429 past the retry budget
	Timeout              Code = "timeout"
	UpstreamError        Code = "upstream_error" // 5xx or network after retries
	InternalError        Code = "internal_error" // a bug of ours (a recovered panic)
	// AccessDenied: an Azure resource other than Graph and Key Vault
	// answered a task 403: the role of seed step 5 is missing.
	AccessDenied Code = "access_denied"
	// ResourceNotFound: a resource a task reads answered 404.
	ResourceNotFound Code = "resource_not_found"
	// KeyNotFound: a registered Key Vault key does not exist (404), or is
	// deleted.
	KeyNotFound Code = "key_not_found"
	// KeyDisabled: a registered key is disabled: its attributes say so, or
	// Key Vault refused to unwrap with it (403 KeyDisabled).
	KeyDisabled Code = "key_disabled"
	// KeyExpired: a registered key's expiry date has passed. Key Vault still
	// unwraps with it but refuses to wrap, so services that wrap new data
	// keys with it fail.
	KeyExpired Code = "key_expired"
	// KeyUnusable: a registered key cannot wrap and unwrap with RSA-OAEP-256:
	// not an RSA key, key_ops without wrapKey or unwrapKey, or the vault
	// unwrapped to a value other than the one wrapped.
	KeyUnusable Code = "key_unusable"
)

// Codes lists every code, in the order they are documented.
var Codes = []Code{OK, AppNotInTenant, AppDisabled, BlockedByPolicy, TenantNotFound, WrongCloud, AppCredentialInvalid,
	GraphConsentMissing, GraphPermissionMissing, ResourceNotInTenant, KeyVaultAccessDenied, SecretNotFound, KeyNotFound,
	KeyDisabled, KeyExpired, KeyUnusable, AccessDenied, ResourceNotFound, Throttled, Timeout, UpstreamError, InternalError}

// Error is a classified failure. Detail is safe to show to the customer and to
// store: it never holds a token or a secret value.
type Error struct {
	Code   Code
	Detail string
	Err    error
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: %s", e.Code, e.Detail)
	}
	return string(e.Code)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error with the given code and customer-safe detail.
func New(code Code, detail string, err error) *Error {
	return &Error{Code: code, Detail: detail, Err: err}
}

// Of classifies err: the code of the first *Error in its chain, Timeout for a
// deadline, OK for nil, and UpstreamError for anything unrecognised.
func Of(err error) Code {
	if err == nil {
		return OK
	}
	var oe *Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Timeout
	}
	return UpstreamError
}

// Settled is the part of classifying an adapter's error that needs no
// knowledge of the service: an error that already holds an *Error keeps its
// code (the credential classified a sign-in failure, say); a cancellation is
// returned as is, since stopping is no fault of the tenant; and a deadline is
// a Timeout with timeoutDetail. responded says whether the service answered:
// a context that expired after an answer came does not turn that answer into
// a timeout. ok is false when err is none of these, for the adapter to
// classify by the service's answer.
func Settled(ctx context.Context, err error, responded bool, timeoutDetail string) (settled error, ok bool) {
	var oe *Error
	switch {
	case err == nil:
		return nil, true
	case errors.As(err, &oe):
		return err, true
	case errors.Is(err, context.DeadlineExceeded) || !responded && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return New(Timeout, timeoutDetail, err), true
	case errors.Is(err, context.Canceled) || !responded && errors.Is(ctx.Err(), context.Canceled):
		return err, true
	}
	return nil, false
}

// Detail returns the customer-safe detail of err's *Error, or a generic text.
// Unclassified errors can carry SDK text with request URLs and bodies, so their
// text is never passed on.
func Detail(err error) string {
	var oe *Error
	if errors.As(err, &oe) && oe.Detail != "" {
		return oe.Detail
	}
	switch Of(err) {
	case OK:
		return ""
	case Timeout:
		return "the tenant's time budget ran out"
	default:
		return "an upstream service failed"
	}
}

// AppWide reports whether the outcome is a fault of the whole app rather than
// of one tenant; such results are not counted against the tenant, and enough
// of them stop a sweep. Every other failure counts toward the tenant's
// backoff, the transient ones too (a tenant that fails three sweeps in a
// row is skipped for a while, whatever the reason).
func (c Code) AppWide() bool { return c == AppCredentialInvalid }

// Transient reports whether the outcome says nothing is missing: it is
// expected to go away by itself, and the tenant is simply tried again.
func (c Code) Transient() bool {
	return c == Throttled || c == Timeout || c == UpstreamError
}

// SafeCode returns an error code from a service's response body when it looks
// like an identifier (letters, digits, '_', '.', '-'; at most 64), and ""
// otherwise, so that a broken or hostile body cannot put prose, or a secret,
// into a Detail.
func SafeCode(s string) string {
	if len(s) > 64 {
		return ""
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return ""
		}
	}
	return s
}
