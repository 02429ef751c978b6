package tablestore

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Table Storage limits.
const (
	maxStringBytes = 64 * 1024   // one string property, counted in UTF-16
	maxEntityBytes = 1024 * 1024 // one entity, by the service's size formula
)

// timeLayout keeps nine fractional digits so that stored times sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// tenantKey returns the canonical (lower-case) tenant id, which is the RowKey;
// tenant.ParseTenantID is the rule, so nothing is stored that cannot be swept.
func tenantKey(tenantID string) (string, error) {
	key, err := tenant.ParseTenantID(tenantID)
	if err != nil {
		return "", fmt.Errorf("%w, got %q", err, truncate(tenantID, 64))
	}
	return key, nil
}

// partitionKey spreads tenants over 256 partitions by the GUID's first byte.
func partitionKey(key string) string { return key[:2] }

// tenantEntity is a tenant.Record as Table Storage properties. Every property
// is named here; TestEntityCoversRecord fails when tenant.Record gains a field
// that is not mapped.
type tenantEntity struct {
	PartitionKey        string `json:"PartitionKey"`
	RowKey              string `json:"RowKey"`
	DisplayName         string `json:"DisplayName"`
	Status              string `json:"Status"`
	Graph               bool   `json:"Graph"`
	KeyVaults           string `json:"KeyVaults"`
	OnboardedAt         string `json:"OnboardedAt,omitempty"`
	UpdatedAt           string `json:"UpdatedAt,omitempty"`
	Verification        string `json:"Verification,omitempty"`
	LastSweep           string `json:"LastSweep,omitempty"`
	ConsecutiveFailures int32  `json:"ConsecutiveFailures"`
	BackoffUntil        string `json:"BackoffUntil,omitempty"`
	// ETag is only read: list responses carry it in the body.
	ETag string `json:"odata.etag,omitempty"`
}

// encodeTenant maps rec to the entity stored under key, or fails with
// tenant.ErrTooLarge when Table Storage would refuse it.
func encodeTenant(key string, rec tenant.Record) ([]byte, error) {
	if rec.TenantID != "" && !strings.EqualFold(rec.TenantID, key) {
		return nil, fmt.Errorf("record of tenant %s has tenantId %q", key, truncate(rec.TenantID, 64))
	}
	if rec.ConsecutiveFailures < 0 || rec.ConsecutiveFailures > math.MaxInt32 {
		return nil, fmt.Errorf("consecutiveFailures %d is out of range", rec.ConsecutiveFailures)
	}
	e := tenantEntity{
		PartitionKey:        partitionKey(key),
		RowKey:              key,
		DisplayName:         rec.DisplayName,
		Status:              string(rec.Status),
		Graph:               rec.Graph,
		OnboardedAt:         formatTime(rec.OnboardedAt),
		UpdatedAt:           formatTime(rec.UpdatedAt),
		ConsecutiveFailures: int32(rec.ConsecutiveFailures),
	}
	if rec.BackoffUntil != nil {
		e.BackoffUntil = formatTime(*rec.BackoffUntil)
	}
	var err error
	// A nil list is stored as [] so that every row has the property.
	kv := rec.KeyVaults
	if kv == nil {
		kv = []tenant.KeyVault{}
	}
	if e.KeyVaults, err = jsonString(kv); err != nil {
		return nil, fmt.Errorf("encode keyVaults: %w", err)
	}
	if rec.Verification != nil {
		if e.Verification, err = jsonString(rec.Verification); err != nil {
			return nil, fmt.Errorf("encode verification: %w", err)
		}
	}
	if rec.LastSweep != nil {
		if e.LastSweep, err = jsonString(rec.LastSweep); err != nil {
			return nil, fmt.Errorf("encode lastSweep: %w", err)
		}
	}
	if err := checkTenantSize(e); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// decodeTenant maps an entity read from the table back to a record.
func decodeTenant(body []byte) (tenant.Record, error) {
	var e tenantEntity
	if err := json.Unmarshal(body, &e); err != nil {
		return tenant.Record{}, fmt.Errorf("decode entity: %w", err)
	}
	rec := tenant.Record{
		TenantID:            e.RowKey,
		DisplayName:         e.DisplayName,
		Status:              tenant.Status(e.Status),
		Graph:               e.Graph,
		ConsecutiveFailures: int(e.ConsecutiveFailures),
		ETag:                e.ETag,
	}
	var err error
	if rec.OnboardedAt, err = parseTime(e.OnboardedAt); err != nil {
		return rec, fmt.Errorf("tenant %s: OnboardedAt: %w", e.RowKey, err)
	}
	if rec.UpdatedAt, err = parseTime(e.UpdatedAt); err != nil {
		return rec, fmt.Errorf("tenant %s: UpdatedAt: %w", e.RowKey, err)
	}
	if e.BackoffUntil != "" {
		t, err := parseTime(e.BackoffUntil)
		if err != nil {
			return rec, fmt.Errorf("tenant %s: BackoffUntil: %w", e.RowKey, err)
		}
		rec.BackoffUntil = &t
	}
	if e.KeyVaults != "" {
		if err := json.Unmarshal([]byte(e.KeyVaults), &rec.KeyVaults); err != nil {
			return rec, fmt.Errorf("tenant %s: KeyVaults: %w", e.RowKey, err)
		}
	}
	if e.Verification != "" {
		rec.Verification = new(tenant.Verification)
		if err := json.Unmarshal([]byte(e.Verification), rec.Verification); err != nil {
			return rec, fmt.Errorf("tenant %s: Verification: %w", e.RowKey, err)
		}
	}
	if e.LastSweep != "" {
		rec.LastSweep = new(tenant.SweepResult)
		if err := json.Unmarshal([]byte(e.LastSweep), rec.LastSweep); err != nil {
			return rec, fmt.Errorf("tenant %s: LastSweep: %w", e.RowKey, err)
		}
	}
	return rec, nil
}

// checkTenantSize applies the service's limits with its own size formula:
// 4 bytes + 2 per key character, and per property 8 bytes + 2 per name
// character + the value (a string 4 + 2 per UTF-16 code unit, a bool 1, an
// Int32 4). Timestamp is counted too since the service adds it.
func checkTenantSize(e tenantEntity) error {
	size := 4 + 2*(utf16Len(e.PartitionKey)+utf16Len(e.RowKey))
	size += propSize("Timestamp", 8)
	for _, p := range []struct{ name, val string }{
		{"DisplayName", e.DisplayName},
		{"Status", e.Status},
		{"KeyVaults", e.KeyVaults},
		{"OnboardedAt", e.OnboardedAt},
		{"UpdatedAt", e.UpdatedAt},
		{"Verification", e.Verification},
		{"LastSweep", e.LastSweep},
		{"BackoffUntil", e.BackoffUntil},
	} {
		n := 2 * utf16Len(p.val)
		if n > maxStringBytes {
			return fmt.Errorf("%w: property %s is %d bytes in UTF-16, over the %d-byte limit of a string property", tenant.ErrTooLarge, p.name, n, maxStringBytes)
		}
		if p.val != "" {
			size += propSize(p.name, 4+n)
		}
	}
	size += propSize("Graph", 1) + propSize("ConsecutiveFailures", 4)
	if size > maxEntityBytes {
		return fmt.Errorf("%w: entity is %d bytes, over the %d-byte limit of an entity", tenant.ErrTooLarge, size, maxEntityBytes)
	}
	return nil
}

func propSize(name string, value int) int { return 8 + 2*len(name) + value }

// utf16Len counts UTF-16 code units: characters outside the Basic
// Multilingual Plane take two.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// cloneRecord deep-copies rec, so that a Change's Apply cannot reach the
// caller's Base through shared pointers or slices. JSON covers every field
// the registry stores; ETag is not serialised and is copied by hand.
func cloneRecord(rec tenant.Record) (tenant.Record, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return tenant.Record{}, err
	}
	var c tenant.Record
	if err := json.Unmarshal(b, &c); err != nil {
		return tenant.Record{}, err
	}
	c.ETag = rec.ETag
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
