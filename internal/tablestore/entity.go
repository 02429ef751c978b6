package tablestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
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
	DefaultDomain       string `json:"DefaultDomain,omitempty"`
	Status              string `json:"Status"`
	Graph               bool   `json:"Graph"`
	KeyVaults           string `json:"KeyVaults"`
	OnboardedAt         string `json:"OnboardedAt,omitempty"`
	UpdatedAt           string `json:"UpdatedAt,omitempty"`
	Verification        string `json:"Verification,omitempty"`
	LastSweep           string `json:"LastSweep,omitempty"`
	ConsecutiveFailures int32  `json:"ConsecutiveFailures"`
	BackoffUntil        string `json:"BackoffUntil,omitempty"`
	// Tokens are the tenant's shared tokens without their ciphertexts
	// (resource, times, key id), TokenSeals the ciphertexts in the same
	// order: listings for planning read the first and leave out the second,
	// which is most of a row's size.
	Tokens     string `json:"Tokens,omitempty"`
	TokenSeals string `json:"TokenSeals,omitempty"`
	// KnownVaults are the hosts of the tenant's vaults known to be its own
	// (tenant.Shared.Vaults), as a JSON array.
	KnownVaults string `json:"KnownVaults,omitempty"`
	// ETag is only read: list responses carry it in the body.
	ETag string `json:"odata.etag,omitempty"`
}

// unlistedProperties are left out of listings (List, EachActive): only the
// sweep's GetMany of a message's tenants needs them.
var unlistedProperties = []string{"TokenSeals", "KnownVaults"}

// listSelect is the $select of a listing: every property of tenantEntity
// but unlistedProperties.
var listSelect = func() string {
	var names []string
	rt := reflect.TypeFor[tenantEntity]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "" && !strings.HasPrefix(name, "odata.") && !slices.Contains(unlistedProperties, name) {
			names = append(names, name)
		}
	}
	return strings.Join(names, ",")
}()

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
		DefaultDomain:       rec.DefaultDomain,
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
		if e.LastSweep, err = fitSweep(*rec.LastSweep); err != nil {
			return nil, fmt.Errorf("encode lastSweep: %w", err)
		}
	}
	if e.Tokens, e.TokenSeals, err = fitTokens(rec.Shared.Tokens); err != nil {
		return nil, fmt.Errorf("encode tokens: %w", err)
	}
	if len(rec.Shared.Vaults) > 0 {
		if e.KnownVaults, err = jsonString(rec.Shared.Vaults); err != nil {
			return nil, fmt.Errorf("encode known vaults: %w", err)
		}
	}
	if err := checkTenantSize(e); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// decodeTenant maps an entity read from the table back to a record. A row
// that cannot be read in full (a property cut short or of the wrong type,
// written by hand or by another tool) is not an error: the record carries
// what could be read and a Damage naming the first property that could not,
// so that one bad row neither hides nor stops the others. Only a body that
// is not an entity at all, or has no tenant id, is an error.
func decodeTenant(body []byte) (tenant.Record, error) {
	var props map[string]json.RawMessage
	if err := json.Unmarshal(body, &props); err != nil {
		return tenant.Record{}, fmt.Errorf("decode entity: %w", err)
	}
	var rec tenant.Record
	if err := json.Unmarshal(props["RowKey"], &rec.TenantID); err != nil || rec.TenantID == "" {
		return tenant.Record{}, errors.New("decode entity: no RowKey")
	}
	d := decoder{props: props, rec: &rec}
	d.prop("DisplayName", &rec.DisplayName)
	d.prop("DefaultDomain", &rec.DefaultDomain)
	var status string
	d.prop("Status", &status)
	rec.Status = tenant.Status(status)
	d.prop("Graph", &rec.Graph)
	var failures int32
	d.prop("ConsecutiveFailures", &failures)
	rec.ConsecutiveFailures = int(failures)
	d.prop("odata.etag", &rec.ETag)
	rec.OnboardedAt = d.time("OnboardedAt")
	rec.UpdatedAt = d.time("UpdatedAt")
	if t := d.time("BackoffUntil"); !t.IsZero() {
		rec.BackoffUntil = &t
	}
	d.jsonProp("KeyVaults", &rec.KeyVaults)
	var v tenant.Verification
	if d.jsonProp("Verification", &v) {
		rec.Verification = &v
	}
	var last tenant.SweepResult
	if d.jsonProp("LastSweep", &last) {
		rec.LastSweep = &last
	}
	rec.Shared.Tokens = d.tokens()
	var vaults string
	d.prop("KnownVaults", &vaults)
	if vaults != "" && json.Unmarshal([]byte(vaults), &rec.Shared.Vaults) != nil {
		rec.Shared.Vaults = nil // only checked again
	}
	return rec, nil
}

// tokens reads the shared tokens, with their ciphertexts when the row was
// read with them. Tokens that do not decode are left out, not a damage: the
// tenant only signs in again.
func (d decoder) tokens() []tenant.SharedToken {
	var meta, seals string
	d.prop("Tokens", &meta)
	d.prop("TokenSeals", &seals)
	var toks []tenant.SharedToken
	if meta == "" || json.Unmarshal([]byte(meta), &toks) != nil {
		return nil
	}
	var ss []string
	if seals != "" && json.Unmarshal([]byte(seals), &ss) == nil && len(ss) == len(toks) {
		for i := range toks {
			toks[i].Sealed = ss[i]
		}
	}
	return toks
}

// fitTokens encodes the shared tokens that have their ciphertexts (a record
// listed without them writes none), the newest first when not all fit a
// string property.
func fitTokens(toks []tenant.SharedToken) (meta, seals string, err error) {
	var keep []tenant.SharedToken
	for _, st := range toks {
		if st.Sealed != "" {
			keep = append(keep, st)
		}
	}
	slices.SortStableFunc(keep, func(a, b tenant.SharedToken) int { return b.IssuedAt.Compare(a.IssuedAt) })
	for n := len(keep); n > 0; n-- {
		ss := make([]string, n)
		for i, st := range keep[:n] {
			ss[i] = st.Sealed
		}
		if meta, err = jsonString(keep[:n]); err != nil {
			return "", "", err
		}
		if seals, err = jsonString(ss); err != nil {
			return "", "", err
		}
		if 2*utf16Len(seals) <= maxStringBytes && 2*utf16Len(meta) <= maxStringBytes {
			return meta, seals, nil
		}
	}
	return "", "", nil
}

// decoder reads one entity property by property, recording the first one
// that does not decode.
type decoder struct {
	props map[string]json.RawMessage
	rec   *tenant.Record
}

func (d decoder) damage(name string, err error) {
	if d.rec.Damage == nil {
		d.rec.Damage = &tenant.Damage{Code: tenant.DamageCode, Property: name,
			Message: fmt.Sprintf("the stored property %s does not decode (%s); it is left out, and registering the tenant again (POST) rewrites the row", name, err)}
	}
}

// prop decodes a typed property; absent and null leave v as it is.
func (d decoder) prop(name string, v any) {
	raw, ok := d.props[name]
	if !ok || string(raw) == "null" {
		return
	}
	if err := json.Unmarshal(raw, v); err != nil {
		d.damage(name, errors.New("not of the expected type"))
	}
}

func (d decoder) time(name string) time.Time {
	var s string
	d.prop(name, &s)
	t, err := parseTime(s)
	if err != nil {
		d.damage(name, errors.New("not an RFC 3339 time"))
		return time.Time{}
	}
	return t
}

// jsonProp decodes a property holding JSON text, reporting whether it was
// present and read.
func (d decoder) jsonProp(name string, v any) bool {
	var s string
	d.prop(name, &s)
	if s == "" {
		return false
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		d.damage(name, err)
		return false
	}
	return true
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
		{"DefaultDomain", e.DefaultDomain},
		{"Status", e.Status},
		{"KeyVaults", e.KeyVaults},
		{"OnboardedAt", e.OnboardedAt},
		{"UpdatedAt", e.UpdatedAt},
		{"Verification", e.Verification},
		{"LastSweep", e.LastSweep},
		{"BackoffUntil", e.BackoffUntil},
		{"Tokens", e.Tokens},
		{"TokenSeals", e.TokenSeals},
		{"KnownVaults", e.KnownVaults},
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

// fitSweep encodes a sweep result so that it always fits a string property:
// a tenant may register 20 vaults of 50 secrets and 50 keys, and a result
// listing all 1,000 secrets is about 360 KB. When the whole result does not
// fit, the secrets and keys are ranked together, failing first (then
// expiring soon, then the rest; keys before secrets of the same rank, since
// a lost key takes the customer's data with it; each list in its own
// order), as many as fit are kept, and SecretCounts and Omitted (secrets),
// KeyCounts and KeysOmitted (keys) summarise.
func fitSweep(res tenant.SweepResult) (string, error) {
	full, err := jsonString(res)
	if err != nil || 2*utf16Len(full) <= maxStringBytes {
		return full, err
	}
	// The tasks' bodies go first: each is bounded, but a deployment may run
	// many tasks.
	res.Tasks = slimTasks(res.Tasks, false)
	if out, err := jsonString(res); err != nil || 2*utf16Len(out) <= maxStringBytes {
		return out, err
	}
	type entry struct {
		key  bool
		i    int
		rank int
	}
	rank := func(failing, soon bool) int {
		switch {
		case failing:
			return 0
		case soon:
			return 1
		}
		return 2
	}
	var entries []entry
	for i, k := range res.Keys {
		entries = append(entries, entry{key: true, i: i, rank: rank(k.Outcome != outcome.OK, k.ExpiresSoon)})
	}
	for i, s := range res.KeyVault {
		entries = append(entries, entry{i: i, rank: rank(s.Outcome != outcome.OK, s.ExpiresSoon)})
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return a.rank - b.rank })
	if len(res.KeyVault) > 0 {
		res.SecretCounts = map[outcome.Code]int{}
		for _, s := range res.KeyVault {
			res.SecretCounts[s.Outcome]++
		}
	}
	if len(res.Keys) > 0 {
		res.KeyCounts = map[outcome.Code]int{}
		for _, k := range res.Keys {
			res.KeyCounts[k.Outcome]++
		}
	}
	secrets, keys := res.KeyVault, res.Keys
	encode := func(n int) (string, bool, error) {
		r := res
		r.KeyVault, r.Keys = nil, nil
		for _, e := range entries[:n] {
			if e.key {
				r.Keys = append(r.Keys, keys[e.i])
			} else {
				r.KeyVault = append(r.KeyVault, secrets[e.i])
			}
		}
		r.Omitted, r.KeysOmitted = len(secrets)-len(r.KeyVault), len(keys)-len(r.Keys)
		out, err := jsonString(r)
		return out, 2*utf16Len(out) <= maxStringBytes, err
	}
	// The largest n that fits, by bisection. With n=0 only the message,
	// Graph and the tasks are left.
	lo, hi := 0, len(entries)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		_, fits, err := encode(mid)
		if err != nil {
			return "", err
		}
		if fits {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	out, fits, err := encode(lo)
	if err != nil || fits {
		return out, err
	}
	// Even without a secret or a key it does not fit: the tasks keep their
	// outcomes, steps and durations, not their texts.
	res.Tasks = slimTasks(res.Tasks, true)
	out, _, err = encode(0)
	return out, err
}

// slimTasks is tasks without their bodies and, with texts, without their
// messages and remediations, so that a result with many tasks still fits.
func slimTasks(tasks map[string]tenant.TaskResult, texts bool) map[string]tenant.TaskResult {
	if tasks == nil {
		return nil
	}
	out := make(map[string]tenant.TaskResult, len(tasks))
	for name, tr := range tasks {
		tr.Body = nil
		if texts {
			tr.Message, tr.Remediation = "", ""
		}
		out[name] = tr
	}
	return out
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
// the registry stores but ETag and Shared, which the API never shows and
// are copied by hand.
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
	c.Shared = tenant.Shared{Tokens: slices.Clone(rec.Shared.Tokens), Vaults: slices.Clone(rec.Shared.Vaults)}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
