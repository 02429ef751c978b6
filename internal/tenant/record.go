// Package tenant is the domain of onboarded customer tenants: the registry
// record, its validation, and the per-tenant work (sign in, Graph, Key Vault)
// expressed over small interfaces that the Table Storage and Azure adapters
// satisfy. It imports no transport code.
package tenant

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// Status is whether a tenant is swept.
type Status string

const (
	StatusActive   Status = "active"
	StatusDisabled Status = "disabled"
)

// KeyVault is one customer vault and the secrets and keys the app checks
// in it; an entry names at least one of them.
type KeyVault struct {
	VaultURL string   `json:"vaultUrl"`
	Secrets  []string `json:"secrets,omitempty"`
	// Keys are RSA keys the app must be able to wrap and unwrap with, as a
	// service encrypting the customer's data with a customer-managed key
	// does (the keys task).
	Keys []string `json:"keys,omitempty"`
}

// Verification is the result of checking that the customer did the seed's
// steps (sign-in works, Graph consent, Key Vault role).
type Verification struct {
	Outcome     outcome.Code `json:"outcome"`
	Step        string       `json:"step,omitempty"`
	Message     string       `json:"message,omitempty"`
	Remediation string       `json:"remediation,omitempty"`
	At          time.Time    `json:"at"`
	// Tasks is the result of each task that onboarding verification runs.
	Tasks map[string]TaskResult `json:"tasks,omitempty"`
}

// GraphInfo is what the sweep reads from Microsoft Graph.
type GraphInfo struct {
	Organization string `json:"organization"`
	UserCount    int    `json:"userCount"`
}

// SecretMeta is a Key Vault secret's metadata; the value is never part of it.
type SecretMeta struct {
	Version   string
	Enabled   *bool
	ExpiresOn *time.Time
}

// SecretStatus is what the sweep reads about one Key Vault secret. The
// secret's value is never read into it.
type SecretStatus struct {
	VaultURL      string       `json:"vaultUrl"`
	Secret        string       `json:"secret"`
	Version       string       `json:"version,omitempty"`
	Enabled       *bool        `json:"enabled,omitempty"`
	ExpiresOn     *time.Time   `json:"expiresOn,omitempty"`
	ExpiresSoon   bool         `json:"expiresSoon,omitempty"`
	Outcome       outcome.Code `json:"outcome"`
	OutcomeDetail string       `json:"message,omitempty"`
}

// KeyCheck is what proving a Key Vault key found: the current version's
// attributes as the vault read them, and whether the vault unwrapped a
// value wrapped with that version. The values wrapped and unwrapped are
// never part of it.
type KeyCheck struct {
	Version string
	// Kty is the JWK key type (RSA, RSA-HSM, EC, ...); KeyOps its key_ops.
	Kty    string
	KeyOps []string
	// Enabled, ExpiresOn and NotBefore are the version's attributes.
	Enabled   *bool
	ExpiresOn *time.Time
	NotBefore *time.Time
	// RecoveryLevel is the vault's deletion recovery level as the key
	// shows it ("Recoverable", "Recoverable+Purgeable", ...).
	RecoveryLevel string
	// Unwrapped: the vault unwrapped a fresh value wrapped with the current
	// version with RSA-OAEP-256, and answered exactly that value.
	Unwrapped bool
	// Mismatch: the vault answered an unwrap with another value.
	Mismatch bool
	// WrapErr is the vault's refusal to wrap (asked when the process has
	// not proved the key in the last 30 minutes), UnwrapErr its refusal to
	// unwrap: each an
	// *outcome.Error. Neither is set when the attributes already explain
	// why the key cannot be used.
	WrapErr, UnwrapErr error
}

// KeyStatus is what the sweep found about one Key Vault key.
type KeyStatus struct {
	VaultURL    string     `json:"vaultUrl"`
	Key         string     `json:"key"`
	Version     string     `json:"version,omitempty"`
	Enabled     *bool      `json:"enabled,omitempty"`
	ExpiresOn   *time.Time `json:"expiresOn,omitempty"`
	ExpiresSoon bool       `json:"expiresSoon,omitempty"`
	// PurgeProtection is false when the vault lets the key be purged before
	// its retention ends (a recovery level with "Purgeable"), which Azure
	// SQL and Storage refuse for a customer-managed key; absent when the key
	// could not be read.
	PurgeProtection *bool        `json:"purgeProtection,omitempty"`
	Outcome         outcome.Code `json:"outcome"`
	OutcomeDetail   string       `json:"message,omitempty"`
	// Step and Remediation are the advice of a failing key, for the line
	// that tells its change (StatusChanges); they are not stored, as the
	// tenant's own remediation is that of its first failing key.
	Step        string `json:"-"`
	Remediation string `json:"-"`
}

// SweepResult is one tenant's outcome in one sweep.
type SweepResult struct {
	// RunID is the sweep run that produced the result: a run records a
	// tenant once, however often its work is delivered.
	RunID      string       `json:"runId,omitempty"`
	At         time.Time    `json:"at"`
	Outcome    outcome.Code `json:"outcome"`
	DurationMs int64        `json:"durationMs"`
	Message    string       `json:"message,omitempty"`
	// Step and Remediation are the seed step still owed and its fix, as in
	// a Verification.
	Step        string `json:"step,omitempty"`
	Remediation string `json:"remediation,omitempty"`
	// OutcomeSince is when the tenant's outcome became this one: the first
	// sweep of a run of equal outcomes (RecordSweep keeps it).
	OutcomeSince time.Time      `json:"outcomeSince,omitzero"`
	Graph        *GraphInfo     `json:"graph,omitempty"`
	KeyVault     []SecretStatus `json:"keyVault,omitempty"`
	// When KeyVault is too long to store in full (up to 1,000 secrets a
	// tenant), the registry keeps the failing secrets first, as many as fit,
	// and these: the count of secrets per outcome, and how many entries
	// were left out.
	SecretCounts map[outcome.Code]int `json:"secretCounts,omitempty"`
	Omitted      int                  `json:"keyVaultOmitted,omitempty"`
	// Keys is each registered key's status (the keys task), bounded like
	// KeyVault: failing keys first, counted per outcome in KeyCounts, the
	// entries left out in KeysOmitted.
	Keys        []KeyStatus          `json:"keys,omitempty"`
	KeyCounts   map[outcome.Code]int `json:"keyCounts,omitempty"`
	KeysOmitted int                  `json:"keysOmitted,omitempty"`
	// Tasks is each task's result, by task name. The tenant's Outcome is
	// the first failure in the order the tasks are configured.
	Tasks map[string]TaskResult `json:"tasks,omitempty"`
	// Shared is what the run leaves for the fleet (its tokens, the vaults
	// it found to be the tenant's); it is merged into the record's Shared,
	// never stored with the result.
	Shared SharedUpdate `json:"-"`
}

// TaskResult is one task's result in one tenant.
type TaskResult struct {
	Outcome     outcome.Code `json:"outcome"`
	Message     string       `json:"message,omitempty"`
	Step        string       `json:"step,omitempty"`
	Remediation string       `json:"remediation,omitempty"`
	DurationMs  int64        `json:"durationMs"`
	// Body is what the task reported, as JSON; at most MaxTaskBody bytes.
	Body json.RawMessage `json:"body,omitempty"`
}

// MaxTaskBody bounds a task's body, so that a tenant's record always fits a
// Table Storage entity whatever its tasks report.
const MaxTaskBody = 1024

// Record is one onboarded tenant in the registry.
type Record struct {
	TenantID    string `json:"tenantId"`
	DisplayName string `json:"displayName"`
	// DefaultDomain is the tenant's default domain, as the app's home
	// tenant told it when the tenant was onboarded (findTenantInformation).
	DefaultDomain       string        `json:"defaultDomain,omitempty"`
	Status              Status        `json:"status"`
	Graph               bool          `json:"graph"`
	KeyVaults           []KeyVault    `json:"keyVaults"`
	OnboardedAt         time.Time     `json:"onboardedAt"`
	UpdatedAt           time.Time     `json:"updatedAt"`
	Verification        *Verification `json:"verification,omitempty"`
	LastSweep           *SweepResult  `json:"lastSweep,omitempty"`
	ConsecutiveFailures int           `json:"consecutiveFailures"`
	// BackoffUntil is when a repeatedly failing tenant is next swept.
	BackoffUntil *time.Time `json:"backoffUntil,omitempty"`
	// Shared is what the fleet shares about signing in to the tenant (its
	// tokens, sealed); never part of the API's JSON.
	Shared Shared `json:"-"`
	// Damage is set, when the record is read, if its stored row did not
	// decode in full; it is never stored. The sweep skips such a record and
	// the API lists it with this error marker.
	Damage *Damage `json:"error,omitempty"`

	// ETag is the registry's concurrency token of the version read; empty for
	// a record not read from the registry.
	ETag string `json:"-"`
}

// DamageCode is the error code of a record whose row does not decode.
const DamageCode = "unreadable_record"

// Damage names the property of a stored row that could not be read.
type Damage struct {
	Code     string `json:"code"`
	Property string `json:"property"`
	Message  string `json:"message"`
}

// Active reports whether the tenant is swept.
func (r Record) Active() bool { return r.Status == StatusActive }

// Errors of the registry.
var (
	ErrNotFound = errors.New("tenant not found")
	// ErrBadContinuation means List was given a continuation token that the
	// store did not issue; it is the caller's fault, not the store's.
	ErrBadContinuation = errors.New("malformed continuation token")
	// ErrConflict means a conditional write lost to a concurrent writer more
	// times than the store retries.
	ErrConflict = errors.New("tenant record changed concurrently")
	// ErrTooLarge means the record would exceed Table Storage's limits.
	ErrTooLarge = errors.New("tenant record too large for the registry")
	// ErrUnavailable means the registry did not answer within its deadline,
	// could not be reached, or failed on its side (5xx): worth retrying.
	ErrUnavailable = errors.New("tenant registry unavailable")
)

// Page is one page of a listing.
type Page struct {
	Records []Record
	// Next is an opaque continuation token; empty on the last page.
	Next string
}

// Change is a mutation of a tenant that was read with EachActive, GetMany or Get.
type Change struct {
	// Base is the record as read, with its ETag.
	Base Record
	// Apply mutates a record in place. It is applied to Base first, and to a
	// fresh read after a concurrent change, so it must derive everything from
	// the record it is given. Its result is not written for a tenant that no
	// longer exists.
	Apply func(rec *Record)
}
