package tenant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
)

// Limits of a registration.
const (
	MaxDisplayName     = 256
	MaxVaults          = 20
	MaxSecretsPerVault = 50
	MaxSecretName      = 127
)

// Registration is what an onboarding request asks for: the tenant and what the
// app checks in it. It is validated and normalised by ParseRegistration.
type Registration struct {
	TenantID    string
	DisplayName string
	// Graph is whether Microsoft Graph is checked; nil means true.
	Graph     *bool
	KeyVaults []KeyVault
}

// ValidationError is a rejected registration. Field is a JSON path such as
// "keyVaults[1].secrets[0]" (empty for a fault of the whole body); Message is
// safe to return to the caller.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// registrationJSON is the wire form. Consent belongs to the onboarding API
// (it asks for an admin-consent link instead of a registration); it is known
// here only so that the strict decoder accepts it.
type registrationJSON struct {
	TenantID    *string        `json:"tenantId"`
	DisplayName *string        `json:"displayName"`
	Graph       *bool          `json:"graph"`
	KeyVaults   []keyVaultJSON `json:"keyVaults"`
	Consent     *bool          `json:"consent"`
}

type keyVaultJSON struct {
	VaultURL *string  `json:"vaultUrl"`
	Secrets  []string `json:"secrets"`
}

var unknownField = regexp.MustCompile(`^json: unknown field "(.*)"$`)

// ParseRegistration decodes and validates an onboarding request body: exactly
// one JSON object with no unknown fields. Vault URLs are normalised to
// https://<vault>.<suffix>/ in lower case, and only vaults of cl are accepted,
// because the app sends that cloud's Key Vault tokens to them. Every error is
// a *ValidationError.
func ParseRegistration(body []byte, cl cloud.Cloud) (Registration, error) {
	var in registrationJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Registration{}, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Registration{}, invalid("", "the body must hold exactly one JSON object, found data after it")
	}

	var r Registration
	var err error
	if in.TenantID == nil {
		return r, invalid("tenantId", "is required")
	}
	if r.TenantID, err = ParseTenantID(*in.TenantID); err != nil {
		return r, err
	}
	if in.DisplayName != nil {
		if err := checkDisplayName(*in.DisplayName); err != nil {
			return r, err
		}
		r.DisplayName = *in.DisplayName
	}
	graph := in.Graph == nil || *in.Graph
	r.Graph = &graph

	if len(in.KeyVaults) > MaxVaults {
		return r, invalid("keyVaults", "at most %d vaults per tenant, got %d", MaxVaults, len(in.KeyVaults))
	}
	seen := make(map[string]int, len(in.KeyVaults))
	for i, kv := range in.KeyVaults {
		field := fmt.Sprintf("keyVaults[%d]", i)
		if kv.VaultURL == nil {
			return r, invalid(field+".vaultUrl", "is required")
		}
		u, err := normaliseVaultURL(*kv.VaultURL, cl)
		if err != nil {
			return r, invalid(field+".vaultUrl", "%s", err)
		}
		if j, dup := seen[u]; dup {
			return r, invalid(field+".vaultUrl", "%s is listed twice (also keyVaults[%d])", u, j)
		}
		seen[u] = i
		secrets, err := checkSecrets(field+".secrets", kv.Secrets)
		if err != nil {
			return r, err
		}
		r.KeyVaults = append(r.KeyVaults, KeyVault{VaultURL: u, Secrets: secrets})
	}
	if !graph && len(r.KeyVaults) == 0 {
		return r, invalid("keyVaults", "nothing to check: graph is false and no keyVaults are given")
	}
	return r, nil
}

// decodeError turns encoding/json's errors, which name Go types, into
// messages that name the JSON fields.
func decodeError(err error) *ValidationError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalid("", "the body is empty; want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "the body is truncated JSON")
	case errors.As(err, &syn):
		return invalid("", "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalid("", "the body must be a JSON object, not %s", withArticle(typ.Value))
		}
		return invalid(typ.Field, "must be %s, not %s", jsonKind(typ.Type.Kind().String()), withArticle(typ.Value))
	}
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		return invalid(m[1], "unknown field")
	}
	return invalid("", "malformed JSON")
}

// withArticle names a JSON value kind as encoding/json reports it ("array",
// "number", "bool"...).
func withArticle(kind string) string {
	switch {
	case kind == "bool":
		return "a boolean"
	case strings.HasPrefix(kind, "number"):
		return "a number"
	case kind == "array" || kind == "object":
		return "an " + kind
	}
	return "a " + kind
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "struct":
		return "an object"
	}
	return "another type"
}

func checkDisplayName(s string) error {
	if n := utf8.RuneCountInString(s); n > MaxDisplayName {
		return invalid("displayName", "at most %d characters, got %d", MaxDisplayName, n)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return invalid("displayName", "must not contain control characters")
	}
	return nil
}

func normaliseVaultURL(raw string, cl cloud.Cloud) (string, error) {
	host, err := ParseVaultURL(raw, cl)
	if err != nil {
		return "", err
	}
	return "https://" + host + "/", nil
}

func checkSecrets(field string, secrets []string) ([]string, error) {
	if len(secrets) == 0 {
		return nil, invalid(field, "at least one secret name is required")
	}
	if len(secrets) > MaxSecretsPerVault {
		return nil, invalid(field, "at most %d secrets per vault, got %d", MaxSecretsPerVault, len(secrets))
	}
	seen := make(map[string]int, len(secrets))
	for i, s := range secrets {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !ValidSecretName(s) {
			return nil, invalid(f, "secret names are 1-%d letters, digits and hyphens", MaxSecretName)
		}
		// Key Vault names are case-insensitive.
		k := strings.ToLower(s)
		if j, dup := seen[k]; dup {
			return nil, invalid(f, "%q is listed twice (also %s[%d]; names are case-insensitive)", s, field, j)
		}
		seen[k] = i
	}
	return slices.Clone(secrets), nil
}

// Apply writes the registration into the tenant's record: a new record starts
// now; an existing one keeps its history (onboarding time, last sweep,
// verification). Either way the tenant becomes active and any backoff is
// lifted, since re-onboarding is how a customer says "try again".
func (r Registration) Apply(rec *Record, exists bool, now time.Time) {
	if !exists {
		*rec = Record{OnboardedAt: now}
	}
	rec.TenantID = r.TenantID
	rec.DisplayName = r.DisplayName
	rec.Graph = r.Graph == nil || *r.Graph
	rec.KeyVaults = make([]KeyVault, len(r.KeyVaults))
	for i, kv := range r.KeyVaults {
		rec.KeyVaults[i] = KeyVault{VaultURL: kv.VaultURL, Secrets: slices.Clone(kv.Secrets)}
	}
	rec.Status = StatusActive
	rec.UpdatedAt = now
	rec.ConsecutiveFailures = 0
	rec.BackoffUntil = nil
}
