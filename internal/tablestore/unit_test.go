package tablestore

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tenant/tenanttest"
)

const someKey = "c2VjcmV0LWtleS1ub3QtdG8tbGVhaw==" // base64 of secret-key-not-to-leak

func TestServiceClientErrorsDoNotLeak(t *testing.T) {
	tests := []struct {
		name string
		reg  config.Registry
	}{
		{"bad key", config.Registry{Connection: "AccountName=a;AccountKey=not*base64*" + someKey}},
		{"endpoint without credential", config.Registry{Endpoint: "https://a.table.core.windows.net"}},
		{"both", config.Registry{Endpoint: "https://a.table.core.windows.net", Connection: "AccountName=a;AccountKey=" + someKey}},
		{"neither", config.Registry{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := serviceClient(tt.reg, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), someKey) {
				t.Fatalf("error leaks the key: %v", err)
			}
		})
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	id := "0a1b2c3d-0000-4000-8000-00000000abcd"
	tests := []struct {
		name string
		rec  tenant.Record
	}{
		{"full", tenanttest.FullRecord(id)},
		{"minimal", tenant.Record{TenantID: id, Status: tenant.StatusDisabled}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ent, err := encodeTenant(id, tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeTenant(ent)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.rec
			if want.KeyVaults == nil {
				want.KeyVaults = []tenant.KeyVault{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestEntityCoversRecord fails when tenant.Record gains a field that the
// entity mapping does not store, so that it is not silently dropped.
func TestEntityCoversRecord(t *testing.T) {
	mapped := []string{"TenantID", "DisplayName", "DefaultDomain", "Status", "Graph", "KeyVaults", "OnboardedAt", "UpdatedAt",
		"Verification", "LastSweep", "ConsecutiveFailures", "BackoffUntil", "Shared", "ETag",
		"Damage"} // Damage is derived when a row is read, never stored
	rt := reflect.TypeFor[tenant.Record]()
	for i := range rt.NumField() {
		if !slices.Contains(mapped, rt.Field(i).Name) {
			t.Errorf("tenant.Record.%s is not mapped to a table property (entity.go)", rt.Field(i).Name)
		}
	}
}

func TestSizeLimits(t *testing.T) {
	id := "ff1b2c3d-0000-4000-8000-00000000abcd"
	rec := func(name string) tenant.Record {
		return tenant.Record{TenantID: id, DisplayName: name, Status: tenant.StatusActive}
	}
	secrets := func(n, each int) tenant.Record {
		r := rec("x")
		for i := range n {
			r.KeyVaults = append(r.KeyVaults, tenant.KeyVault{VaultURL: strings.Repeat("v", each), Secrets: []string{string(rune('a' + i%26))}})
		}
		return r
	}
	tests := []struct {
		name     string
		rec      tenant.Record
		tooLarge bool
		property string
	}{
		{"32768 ASCII characters fit", rec(strings.Repeat("a", 32768)), false, ""},
		{"32769 ASCII characters do not", rec(strings.Repeat("a", 32769)), true, "DisplayName"},
		// é is 2 bytes of UTF-8 but one UTF-16 unit.
		{"32768 two-byte UTF-8 characters fit", rec(strings.Repeat("é", 32768)), false, ""},
		// 😀 is a surrogate pair: two UTF-16 units each.
		{"16384 astral characters fit", rec(strings.Repeat("😀", 16384)), false, ""},
		{"16385 astral characters do not", rec(strings.Repeat("😀", 16385)), true, "DisplayName"},
		{"a large JSON property", secrets(1, 70000), true, "KeyVaults"},
		{"several large properties fit together (8 strings of 64 KiB stay under 1 MiB)", func() tenant.Record {
			r := secrets(1, 30000)
			r.DisplayName = strings.Repeat("d", 32000)
			r.Verification = &tenant.Verification{Message: strings.Repeat("m", 32000)}
			r.LastSweep = &tenant.SweepResult{Message: strings.Repeat("s", 32000)}
			return r
		}(), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := encodeTenant(id, tt.rec)
			if got := errors.Is(err, tenant.ErrTooLarge); got != tt.tooLarge {
				t.Fatalf("ErrTooLarge = %v, want %v (err %v)", got, tt.tooLarge, err)
			}
			if tt.tooLarge && !strings.Contains(err.Error(), tt.property) {
				t.Fatalf("error %q does not name %s", err, tt.property)
			}
			if !tt.tooLarge && err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An entity over 1 MiB needs more properties than a record has at 64 KiB
// each, so the entity limit is checked directly.
func TestEntityLimit(t *testing.T) {
	e := tenantEntity{PartitionKey: "ab", RowKey: "ab", DisplayName: strings.Repeat("a", 32000)}
	if err := checkTenantSize(e); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("a", 32768)
	e = tenantEntity{PartitionKey: "ab", RowKey: strings.Repeat("r", 500_000), DisplayName: big, KeyVaults: big, Verification: big, LastSweep: big}
	if err := checkTenantSize(e); !errors.Is(err, tenant.ErrTooLarge) || !strings.Contains(err.Error(), "entity") {
		t.Fatalf("err = %v, want ErrTooLarge for the entity", err)
	}
}

func TestTenantKey(t *testing.T) {
	tests := []struct {
		in, key, pk string
		ok          bool
	}{
		{"3C1E8B2A-5F4D-4E6B-9A7C-2D8F0E1B4A6C", "3c1e8b2a-5f4d-4e6b-9a7c-2d8f0e1b4a6c", "3c", true},
		{"00ab0000-0000-4000-8000-000000000000", "00ab0000-0000-4000-8000-000000000000", "00", true},
		// tenant.ParseTenantID is the rule: no directory has the nil GUID,
		// nor the consumers tenant's.
		{"00000000-0000-0000-0000-000000000000", "", "", false},
		{"9188040d-6c67-4c5b-b112-36a304b66dad", "", "", false},
		{"", "", "", false},
		{"3c1e8b2a5f4d4e6b9a7c2d8f0e1b4a6c", "", "", false},
		{"3c1e8b2a-5f4d-4e6b-9a7c-2d8f0e1b4a6c/..", "", "", false},
		{"contoso.onmicrosoft.com", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			key, err := tenantKey(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (key != tt.key || partitionKey(key) != tt.pk) {
				t.Fatalf("key %q pk %q, want %q %q", key, partitionKey(key), tt.key, tt.pk)
			}
		})
	}
}

func TestContinuation(t *testing.T) {
	pk, rk := "MSEwMDAwMDAwMi0x", "MSE0NCFZVHBtT1RJd01qTXpOUzB3TURBd0xUUXdNREF0T0RBd01DMHdNREF3TURBd01EQXdNREEtIQ--"
	tok := encodeContinuation(&pk, &rk)
	gotPK, gotRK, err := decodeContinuation(tok)
	if err != nil || gotPK != pk || gotRK != rk {
		t.Fatalf("round trip: %q %q %v", gotPK, gotRK, err)
	}
	if encodeContinuation(nil, nil) != "" || encodeContinuation(to.Ptr(""), to.Ptr("")) != "" {
		t.Fatal("no next keys must give no token")
	}
	bad := []string{
		"!!!",
		base64.RawURLEncoding.EncodeToString([]byte("2\na\nb")),
		base64.RawURLEncoding.EncodeToString([]byte("1\n\nb")),
		base64.RawURLEncoding.EncodeToString([]byte("1\na")),
		base64.RawURLEncoding.EncodeToString([]byte("1\na b\nc")),
		base64.StdEncoding.EncodeToString([]byte("1\na\nb")) + "==",
		strings.Repeat("A", 5000),
	}
	for _, b := range bad {
		if _, _, err := decodeContinuation(b); !errors.Is(err, tenant.ErrBadContinuation) {
			t.Errorf("decodeContinuation(%.20q) = %v, want ErrBadContinuation", b, err)
		}
	}
}

func TestRunRowKeyOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var keys []string
	for _, d := range []time.Duration{0, time.Nanosecond, time.Second, 365 * 24 * time.Hour} {
		k, err := runRowKey(sweep.Run{ID: "r", StartedAt: t0.Add(d)})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if !slices.IsSortedFunc(keys, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Fatalf("later runs must sort first: %q", keys)
	}
	for _, r := range []sweep.Run{{ID: "a/b", StartedAt: t0}, {ID: "x"}, {ID: "a\x01", StartedAt: t0}} {
		if _, err := runRowKey(r); err == nil {
			t.Errorf("runRowKey(%+v) accepted", r)
		}
	}
}

// Every partition key falls in exactly one of EachActive's ranges, and so
// does a key outside the hex alphabet (a row written by another tool).
func TestShardFiltersCoverEveryPartition(t *testing.T) {
	inRange := func(f, pk string) bool {
		for cond := range strings.SplitSeq(strings.TrimSuffix(f, " and "), " and ") {
			var op, bound string
			if _, err := fmt.Sscanf(cond, "PartitionKey %s '%2s'", &op, &bound); err != nil {
				t.Fatalf("filter %q: %v", f, err)
			}
			if (op == "ge" && pk < bound) || (op == "lt" && pk >= bound) {
				return false
			}
		}
		return true
	}
	keys := []string{"", "!", "zz", "FF"}
	for i := range 256 {
		keys = append(keys, fmt.Sprintf("%02x", i))
	}
	for _, pk := range keys {
		n := 0
		for i := range listShards {
			if inRange(shardFilter(i), pk) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("partition %q is in %d ranges, want 1", pk, n)
		}
	}
}

// A result with many tasks, each with a full body and long texts, still
// fits a string property: the bodies go first, then the tasks' texts; the
// outcomes stay.
func TestManyTasksFit(t *testing.T) {
	body := json.RawMessage(`"` + strings.Repeat("b", tenant.MaxTaskBody-2) + `"`)
	for _, n := range []int{5, 20, 200} {
		res := tenant.SweepResult{At: time.Now(), Outcome: outcome.ResourceNotFound, Tasks: map[string]tenant.TaskResult{}}
		for i := range n {
			res.Tasks[fmt.Sprintf("task-%d", i)] = tenant.TaskResult{Outcome: outcome.ResourceNotFound, Step: "5",
				Message: strings.Repeat("m", 300), Remediation: strings.Repeat("r", 300), Body: body}
		}
		out, err := fitSweep(res)
		if err != nil || 2*utf16Len(out) > maxStringBytes {
			t.Fatalf("%d tasks: %d bytes, %v", n, 2*utf16Len(out), err)
		}
		var back tenant.SweepResult
		if err := json.Unmarshal([]byte(out), &back); err != nil || len(back.Tasks) != n {
			t.Fatalf("%d tasks: %d kept, %v", n, len(back.Tasks), err)
		}
		for name, tr := range back.Tasks {
			if tr.Outcome != outcome.ResourceNotFound || tr.Step != "5" {
				t.Fatalf("%d tasks: %s lost its outcome: %+v", n, name, tr)
			}
		}
		if n == 5 && back.Tasks["task-0"].Body == nil {
			t.Error("5 tasks fit whole, but the bodies were dropped")
		}
	}
}
