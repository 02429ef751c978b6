package tenant

import (
	"fmt"
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
	// MaxKeysPerVault bounds the keys of one vault, as MaxSecretsPerVault
	// does its secrets; key names follow the secret-name rule.
	MaxKeysPerVault = 50
)

// Registration is what an onboarding request asks for: the tenant and what the
// app checks in it, validated and normalised by RegistrationRequest.Validate.
type Registration struct {
	TenantID    string
	DisplayName string
	// DefaultDomain comes from Fill, never from the request.
	DefaultDomain string
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

// RegistrationRequest is the wire form of a registration as the onboarding
// API decodes it; a nil pointer is a field the caller left out. Decoding is
// the API's business, validation this package's.
type RegistrationRequest struct {
	TenantID    *string           `json:"tenantId"`
	DisplayName *string           `json:"displayName"`
	Graph       *bool             `json:"graph"`
	KeyVaults   []KeyVaultRequest `json:"keyVaults"`
}

// KeyVaultRequest is one vault of a RegistrationRequest.
type KeyVaultRequest struct {
	VaultURL *string  `json:"vaultUrl"`
	Secrets  []string `json:"secrets"`
	Keys     []string `json:"keys"`
}

// Validate checks and normalises a decoded registration. Vault URLs are
// normalised to https://<vault>.<suffix>/ in lower case, and only vaults of cl
// are accepted, because the app sends that cloud's Key Vault tokens to them.
// Every error is a *ValidationError.
func (in RegistrationRequest) Validate(cl cloud.Cloud) (Registration, error) {
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
		if len(kv.Secrets) == 0 && len(kv.Keys) == 0 {
			return r, invalid(field+".secrets", "at least one secret name (secrets) or key name (keys) is required")
		}
		secrets, err := checkNames(field+".secrets", "secret", kv.Secrets, MaxSecretsPerVault)
		if err != nil {
			return r, err
		}
		keys, err := checkNames(field+".keys", "key", kv.Keys, MaxKeysPerVault)
		if err != nil {
			return r, err
		}
		r.KeyVaults = append(r.KeyVaults, KeyVault{VaultURL: u, Secrets: secrets, Keys: keys})
	}
	if !graph && len(r.KeyVaults) == 0 {
		return r, invalid("keyVaults", "nothing to check: graph is false and no keyVaults are given")
	}
	return r, nil
}

func checkDisplayName(s string) error {
	if n := utf8.RuneCountInString(s); n > MaxDisplayName {
		return invalid("displayName", "at most %d characters, got %d", MaxDisplayName, n)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return invalid("displayName", "must not contain control characters")
	}
	if !utf8.ValidString(s) {
		return invalid("displayName", "must be valid UTF-8")
	}
	if strings.IndexFunc(s, isDeceptive) >= 0 {
		return invalid("displayName", "must not contain bidirectional overrides or isolates (U+202A-U+202E, U+2066-U+2069) or line and paragraph separators (U+2028, U+2029)")
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

// checkNames checks the secret or key names of one vault (what, "secret"
// or "key"): Key Vault's object-name rule, at most limit, no duplicates.
// An empty list is nil.
func checkNames(field, what string, names []string, limit int) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if len(names) > limit {
		return nil, invalid(field, "at most %d %ss per vault, got %d", limit, what, len(names))
	}
	seen := make(map[string]int, len(names))
	for i, s := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !ValidSecretName(s) {
			return nil, invalid(f, "%s names are 1-%d letters, digits and hyphens", what, MaxSecretName)
		}
		// Key Vault names are case-insensitive.
		k := strings.ToLower(s)
		if j, dup := seen[k]; dup {
			return nil, invalid(f, "%q is listed twice (also %s[%d]; names are case-insensitive)", s, field, j)
		}
		seen[k] = i
	}
	return slices.Clone(names), nil
}

// TenantInfo is what the app's home tenant can tell about another tenant
// (Microsoft Graph's findTenantInformationByTenantId), before it is recorded.
type TenantInfo struct {
	DisplayName   string
	DefaultDomain string
}

// Fill completes the registration with what is known of the tenant: an
// empty display name takes the tenant's own, and the default domain is
// kept, each only when a record may hold it (the name is the tenant
// admin's text and goes through the rules of a registered one).
func (r *Registration) Fill(info TenantInfo) {
	if r.DisplayName == "" && checkDisplayName(info.DisplayName) == nil {
		r.DisplayName = info.DisplayName
	}
	if validDomain(info.DefaultDomain) {
		r.DefaultDomain = strings.ToLower(info.DefaultDomain)
	}
}

// validDomain accepts a DNS name: dot-separated labels of 1-63 letters,
// digits and inner hyphens, 253 characters at most.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
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
	if r.DefaultDomain != "" { // a registration that could not look it up keeps the last one
		rec.DefaultDomain = r.DefaultDomain
	}
	rec.Graph = r.Graph == nil || *r.Graph
	rec.KeyVaults = make([]KeyVault, len(r.KeyVaults))
	for i, kv := range r.KeyVaults {
		rec.KeyVaults[i] = KeyVault{VaultURL: kv.VaultURL, Secrets: slices.Clone(kv.Secrets), Keys: slices.Clone(kv.Keys)}
	}
	rec.Status = StatusActive
	rec.UpdatedAt = now
	rec.ConsecutiveFailures = 0
	rec.BackoffUntil = nil
	// What the fleet shared of the tenant predates what the customer just
	// did (a consent granted, a vault moved): the next sweep signs in
	// afresh.
	rec.Shared = Shared{}
}

// isDeceptive reports the characters that make a name display differently
// from what it holds (bidi overrides and isolates) or break a log line or a
// table cell (line and paragraph separators).
func isDeceptive(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x2028 || r == 0x2029
}
