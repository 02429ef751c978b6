package tablestore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/storageconn"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
	"github.com/tenantsweep/tenantsweep/internal/tablestore/tablestoretest"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tenant/tenanttest"
)

// newID returns a random lower-case GUID starting with prefix (hex).
func newID(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	return prefix + s[len(prefix):]
}

// seed inserts one record per id through MutateMany (empty ETags insert).
func seed(t testing.TB, s *tablestore.Store, ids []string, status func(i int) tenant.Status) {
	t.Helper()
	changes := make([]tenant.Change, len(ids))
	for i, id := range ids {
		changes[i] = tenant.Change{
			Base:  tenant.Record{TenantID: id, DisplayName: "tenant " + id[:8], Status: status(i)},
			Apply: func(*tenant.Record) {},
		}
	}
	for i, err := range s.MutateMany(t.Context(), changes) {
		if err != nil {
			t.Fatalf("seed %s: %v", ids[i], err)
		}
	}
}

func active(int) tenant.Status { return tenant.StatusActive }

func get(t testing.TB, s *tablestore.Store, id string) tenant.Record {
	t.Helper()
	rec, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return rec
}

// counter is a per-call policy that counts requests by method.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) Do(req *policy.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[req.Raw().Method]++
	c.mu.Unlock()
	return req.Next()
}

func (c *counter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// openWithRegistry is tablestoretest.Open that also returns the settings, for
// tests that change the tables behind the Store's back.
func openWithRegistry(t testing.TB) (*tablestore.Store, config.Registry) {
	t.Helper()
	reg := tablestoretest.Registry(t)
	s, err := tablestore.Open(t.Context(), reg, tablestore.Options{})
	if err != nil {
		t.Fatalf("open registry on Azurite: %v", err)
	}
	t.Cleanup(func() { tablestoretest.DeleteTables(t, reg) })
	return s, reg
}

// deleteRow removes a tenant's row with the aztables client, as an operator
// would in Storage Explorer: the Store itself never deletes.
func deleteRow(t testing.TB, reg config.Registry, tenantID string) {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(reg.Connection, nil)
	if err != nil {
		t.Fatal(err)
	}
	// PartitionKey is the GUID's first two hex characters (see the package doc).
	if _, err := svc.NewClient(reg.Table).DeleteEntity(t.Context(), tenantID[:2], tenantID, nil); err != nil {
		t.Fatalf("delete tenant %s: %v", tenantID, err)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestOpenCreatesTablesAndReopens(t *testing.T) {
	t.Parallel()
	reg := tablestoretest.Registry(t)
	t.Cleanup(func() { tablestoretest.DeleteTables(t, reg) })

	s1, err := tablestore.Open(t.Context(), reg, tablestore.Options{})
	if err != nil {
		t.Fatalf("first open: %v", err)
	}
	id := newID(t, "")
	if _, _, err := s1.Mutate(t.Context(), id, func(rec *tenant.Record, _ bool) error {
		rec.Status = tenant.StatusActive
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s1.AddRun(t.Context(), sweep.Run{ID: "r1", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// The tables exist now: a second Open must accept that and see the data.
	s2, err := tablestore.Open(t.Context(), reg, tablestore.Options{})
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	if got := get(t, s2, id); got.Status != tenant.StatusActive {
		t.Fatalf("status %q", got.Status)
	}
	if runs, err := s2.RecentRuns(t.Context(), 5); err != nil || len(runs) != 1 {
		t.Fatalf("runs %v, %v", runs, err)
	}
}

func TestOpenWrongKeyDoesNotLeak(t *testing.T) {
	t.Parallel()
	reg := tablestoretest.Registry(t)
	key := "d3Jvbmcta2V5LWZvci10ZXN0aW5nLW9ubHktMTIzNDU2Nzg5MA=="
	reg.Connection = strings.Replace(reg.Connection, storageconn.DevAccountKey, key, 1)
	_, err := tablestore.Open(t.Context(), reg, tablestore.Options{})
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("err = %v, want a 403", err)
	}
	if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "AccountKey") {
		t.Fatalf("error leaks the connection string: %v", err)
	}
}

func TestRoundTripFullRecord(t *testing.T) {
	t.Parallel()
	s := tablestoretest.Open(t)
	id := newID(t, "")
	want := tenanttest.FullRecord(id)
	// A quote in the name and a disabled secret, on top of the fixture.
	want.DisplayName += " 'quoted'"
	enabled := false
	want.LastSweep.KeyVault[0].Enabled = &enabled

	stored, created, err := s.Mutate(t.Context(), strings.ToUpper(id), func(rec *tenant.Record, exists bool) error {
		if exists {
			t.Error("new tenant reported as existing")
		}
		*rec = want
		return nil
	})
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	if stored.ETag == "" {
		t.Fatal("no ETag after create")
	}
	got := get(t, s, id)
	if got.ETag != stored.ETag {
		t.Errorf("ETag %q after read, %q after write", got.ETag, stored.ETag)
	}
	want.ETag = got.ETag
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back:\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(stored, want) {
		t.Fatalf("Mutate returned:\n got %+v\nwant %+v", stored, want)
	}
	// Clearing optional fields removes them.
	stored, _, err = s.Mutate(t.Context(), id, func(rec *tenant.Record, _ bool) error {
		rec.Verification, rec.LastSweep, rec.BackoffUntil, rec.KeyVaults = nil, nil, nil, nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got = get(t, s, id)
	if got.Verification != nil || got.LastSweep != nil || got.BackoffUntil != nil || len(got.KeyVaults) != 0 {
		t.Fatalf("optional fields not cleared: %+v", got)
	}
	if got.ETag != stored.ETag {
		t.Errorf("ETag %q after read, %q after write", got.ETag, stored.ETag)
	}
}

func TestGetMissing(t *testing.T) {
	t.Parallel()
	s := tablestoretest.Open(t)
	for _, id := range []string{newID(t, ""), "not-a-guid", ""} {
		if _, err := s.Get(t.Context(), id); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestMutateCreateThenUpdate(t *testing.T) {
	t.Parallel()
	s, reg := openWithRegistry(t)
	id := newID(t, "")
	tests := []struct {
		name        string
		wantExists  bool
		wantCreated bool
		wantName    string
	}{
		{"create", false, true, "v1"},
		{"update", true, false, "v2"},
		{"update again", true, false, "v3"},
	}
	var lastETag string
	for _, tt := range tests {
		rec, created, err := s.Mutate(t.Context(), id, func(rec *tenant.Record, exists bool) error {
			if exists != tt.wantExists {
				t.Errorf("%s: exists = %v", tt.name, exists)
			}
			if exists && rec.ETag == "" {
				t.Errorf("%s: existing record without ETag", tt.name)
			}
			rec.DisplayName = tt.wantName
			rec.Status = tenant.StatusActive
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if created != tt.wantCreated || rec.DisplayName != tt.wantName || rec.TenantID != id {
			t.Fatalf("%s: created=%v rec=%+v", tt.name, created, rec)
		}
		if rec.ETag == "" || rec.ETag == lastETag {
			t.Fatalf("%s: ETag %q did not change from %q", tt.name, rec.ETag, lastETag)
		}
		lastETag = rec.ETag
	}

	t.Run("fn error aborts the write", func(t *testing.T) {
		boom := errors.New("boom")
		_, _, err := s.Mutate(t.Context(), id, func(rec *tenant.Record, _ bool) error {
			rec.DisplayName = "not written"
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if got := get(t, s, id); got.DisplayName != "v3" {
			t.Fatalf("display name %q", got.DisplayName)
		}
	})
	t.Run("fn may not change the tenant id", func(t *testing.T) {
		_, _, err := s.Mutate(t.Context(), id, func(rec *tenant.Record, _ bool) error {
			rec.TenantID = newID(t, "")
			return nil
		})
		if err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("bad id", func(t *testing.T) {
		if _, _, err := s.Mutate(t.Context(), "x/y", func(*tenant.Record, bool) error { return nil }); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("delete", func(t *testing.T) {
		deleteRow(t, reg, id)
		if _, err := s.Get(t.Context(), id); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
}

func TestConcurrentMutateLosesNoUpdate(t *testing.T) {
	t.Parallel()
	s := tablestoretest.Open(t)
	id := newID(t, "")
	const writers = 20
	var created atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			_, c, err := s.Mutate(t.Context(), id, func(rec *tenant.Record, exists bool) error {
				if !exists {
					rec.Status = tenant.StatusActive
				}
				rec.ConsecutiveFailures++
				return nil
			})
			errs[i] = err
			if c {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	// A writer that lost every one of its attempts is told so (ErrConflict,
	// which happens on a loaded machine); every write that succeeded is
	// counted, none is lost.
	succeeded := 0
	for i, err := range errs {
		switch {
		case err == nil:
			succeeded++
		case !errors.Is(err, tenant.ErrConflict):
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if succeeded < writers/2 {
		t.Errorf("%d of %d writers succeeded", succeeded, writers)
	}
	if got := get(t, s, id).ConsecutiveFailures; got != succeeded {
		t.Fatalf("counter = %d, want %d, one per write that succeeded", got, succeeded)
	}
	if created.Load() != 1 {
		t.Fatalf("%d writers created the record, want 1", created.Load())
	}
}

func TestListAndEachActiveAcrossPages(t *testing.T) {
	t.Parallel()
	s := tablestoretest.Open(t)
	const n = 1230
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID(t, "")
	}
	disabled := func(i int) bool { return i%10 == 0 }
	seed(t, s, ids, func(i int) tenant.Status {
		if disabled(i) {
			return tenant.StatusDisabled
		}
		return tenant.StatusActive
	})
	var wantAll, wantActive []string
	for i, id := range ids {
		wantAll = append(wantAll, id)
		if !disabled(i) {
			wantActive = append(wantActive, id)
		}
	}
	// Key order: the partition key is the id's prefix, so it is id order.
	slices.Sort(wantAll)
	slices.Sort(wantActive)

	t.Run("List", func(t *testing.T) {
		var got []string
		var sizes []int
		next := ""
		for {
			page, err := s.List(t.Context(), 500, next)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(page.Records))
			for _, r := range page.Records {
				if r.ETag == "" {
					t.Fatalf("%s listed without ETag", r.TenantID)
				}
				got = append(got, r.TenantID)
			}
			if page.Next == "" {
				break
			}
			next = page.Next
		}
		if !slices.Equal(got, wantAll) {
			t.Fatalf("listed %d tenants (pages %v), want %d in key order", len(got), sizes, len(wantAll))
		}
		if len(sizes) < 3 {
			t.Fatalf("pages %v, want at least 3 pages of ≤500", sizes)
		}
		t.Logf("page sizes %v", sizes)
	})

	t.Run("page size is clamped", func(t *testing.T) {
		tests := []struct{ ask, want int }{{0, 1}, {-5, 1}, {7, 7}, {5000, 1000}}
		for _, tt := range tests {
			page, err := s.List(t.Context(), tt.ask, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Records) != tt.want || page.Next == "" {
				t.Errorf("List(%d): %d records, next %q; want %d and a next page", tt.ask, len(page.Records), page.Next, tt.want)
			}
		}
	})

	t.Run("EachActive", func(t *testing.T) {
		recs, err := activeOf(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			if !r.Active() || r.ETag == "" {
				t.Fatalf("listed %+v", r)
			}
			got = append(got, r.TenantID)
		}
		if !slices.Equal(got, wantActive) {
			t.Fatalf("EachActive gave %d tenants, want %d in key order", len(got), len(wantActive))
		}
	})

	t.Run("EachActive", func(t *testing.T) {
		seen := map[string]int{}
		err := s.EachActive(t.Context(), func(recs []tenant.Record) error {
			if len(recs) > 1000 {
				t.Errorf("a page of %d", len(recs))
			}
			for _, r := range recs {
				seen[r.TenantID]++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range wantActive {
			if seen[id] != 1 {
				t.Errorf("%s listed %d times, want once", id, seen[id])
			}
		}
		if len(seen) != len(wantActive) {
			t.Errorf("listed %d tenants, want %d", len(seen), len(wantActive))
		}

		stop := errors.New("stop")
		calls := 0
		err = s.EachActive(t.Context(), func([]tenant.Record) error {
			calls++
			return stop
		})
		if err != stop || calls != 1 {
			t.Errorf("an error from fn: EachActive = %v after %d calls, want it as is after 1", err, calls)
		}
	})
}

func TestListBadContinuation(t *testing.T) {
	t.Parallel()
	s := tablestoretest.Open(t)
	for _, tok := range []string{"garbage!", "AAAA", "eyJwayI6ImEifQ"} {
		if _, err := s.List(t.Context(), 10, tok); !errors.Is(err, tenant.ErrBadContinuation) {
			t.Errorf("List(%q) = %v, want ErrBadContinuation", tok, err)
		}
	}
}

func TestMutateManyStaleETag(t *testing.T) {
	t.Parallel()
	s := tablestoretest.Open(t)
	a, b := newID(t, "5"), newID(t, "5")
	seed(t, s, []string{a, b}, active)
	baseA, baseB := get(t, s, a), get(t, s, b)

	// A concurrent writer changes a between the read and MutateMany.
	if _, _, err := s.Mutate(t.Context(), a, func(rec *tenant.Record, _ bool) error {
		rec.DisplayName = "renamed concurrently"
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	bump := func(rec *tenant.Record) { rec.ConsecutiveFailures++ }
	errs := s.MutateMany(t.Context(), []tenant.Change{{Base: baseA, Apply: bump}, {Base: baseB, Apply: bump}})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("errs[%d] = %v", i, err)
		}
	}
	gotA, gotB := get(t, s, a), get(t, s, b)
	if gotA.DisplayName != "renamed concurrently" || gotA.ConsecutiveFailures != 1 {
		t.Fatalf("a = %+v: want the concurrent rename kept and the change applied", gotA)
	}
	if gotB.ConsecutiveFailures != 1 {
		t.Fatalf("b = %+v", gotB)
	}
	if baseA.ConsecutiveFailures != 0 {
		t.Fatal("MutateMany changed the caller's Base")
	}
}

func TestMutateManyDeletedTenant(t *testing.T) {
	t.Parallel()
	s, reg := openWithRegistry(t)
	gone, kept := newID(t, "7"), newID(t, "7")
	other := newID(t, "8")
	seed(t, s, []string{gone, kept, other}, active)
	bases := []tenant.Record{get(t, s, gone), get(t, s, kept), get(t, s, other)}
	deleteRow(t, reg, gone)
	var changes []tenant.Change
	for _, b := range bases {
		changes = append(changes, tenant.Change{Base: b, Apply: func(rec *tenant.Record) { rec.DisplayName = "swept" }})
	}
	for i, err := range s.MutateMany(t.Context(), changes) {
		if err != nil {
			t.Errorf("errs[%d] = %v, want nil (a deleted tenant is skipped)", i, err)
		}
	}
	if _, err := s.Get(t.Context(), gone); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("deleted tenant came back: %v", err)
	}
	for _, id := range []string{kept, other} {
		if got := get(t, s, id); got.DisplayName != "swept" {
			t.Errorf("%s not updated: %+v", id, got)
		}
	}
}

func TestMutateManyBatchesOnePartition(t *testing.T) {
	t.Parallel()
	c := &counter{n: map[string]int{}}
	s := tablestoretest.OpenWithOptions(t, tablestore.Options{ClientOptions: &aztables.ClientOptions{
		ClientOptions: azcore.ClientOptions{PerCallPolicies: []policy.Policy{c}},
	}})
	const n = 250
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID(t, "ab")
	}
	seed(t, s, ids, active)

	changesFor := func(count int) []tenant.Change {
		recs, err := activeOf(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		var changes []tenant.Change
		for _, r := range recs[:count] {
			changes = append(changes, tenant.Change{Base: r, Apply: func(rec *tenant.Record) { rec.ConsecutiveFailures++ }})
		}
		return changes
	}
	tests := []struct {
		name     string
		changes  int
		requests int
	}{
		{"100 changes, one batch", 100, 1},
		{"250 changes, three batches", 250, 3},
	}
	for _, tt := range tests {
		changes := changesFor(tt.changes)
		c.reset()
		for i, err := range s.MutateMany(t.Context(), changes) {
			if err != nil {
				t.Fatalf("%s: errs[%d] = %v", tt.name, i, err)
			}
		}
		got := c.reset()
		t.Logf("%s: requests %v", tt.name, got)
		if total(got) != tt.requests {
			t.Errorf("%s: %d requests (%v), want %d", tt.name, total(got), got, tt.requests)
		}
	}
	recs, err := activeOf(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		want := 1
		if i < 100 {
			want = 2
		}
		if r.ConsecutiveFailures != want {
			t.Fatalf("%s: counter %d, want %d", r.TenantID, r.ConsecutiveFailures, want)
		}
	}

	// For contrast: the same 100 changes one by one through Mutate.
	changes := changesFor(100)
	c.reset()
	for _, ch := range changes {
		if _, _, err := s.Mutate(t.Context(), ch.Base.TenantID, func(rec *tenant.Record, _ bool) error {
			ch.Apply(rec)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("100 changes through Mutate: requests %v", c.reset())
}

func TestTooLargeWritesNothing(t *testing.T) {
	t.Parallel()
	s := tablestoretest.Open(t)
	// é is 2 bytes of UTF-8 and one UTF-16 unit: 65,538 bytes to the service.
	huge := strings.Repeat("é", 32769)

	t.Run("new tenant", func(t *testing.T) {
		id := newID(t, "")
		_, _, err := s.Mutate(t.Context(), id, func(rec *tenant.Record, _ bool) error {
			rec.DisplayName = huge
			return nil
		})
		if !errors.Is(err, tenant.ErrTooLarge) || !strings.Contains(err.Error(), "DisplayName") {
			t.Fatalf("err = %v, want ErrTooLarge naming DisplayName", err)
		}
		if _, err := s.Get(t.Context(), id); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("something was written: %v", err)
		}
	})

	t.Run("existing tenant", func(t *testing.T) {
		id := newID(t, "")
		seed(t, s, []string{id}, active)
		before := get(t, s, id)
		_, _, err := s.Mutate(t.Context(), id, func(rec *tenant.Record, _ bool) error {
			rec.ConsecutiveFailures = 9
			rec.LastSweep = &tenant.SweepResult{Message: huge}
			return nil
		})
		if !errors.Is(err, tenant.ErrTooLarge) || !strings.Contains(err.Error(), "LastSweep") {
			t.Fatalf("err = %v, want ErrTooLarge naming LastSweep", err)
		}
		if after := get(t, s, id); !reflect.DeepEqual(after, before) {
			t.Fatalf("record changed:\n%+v\n%+v", after, before)
		}
	})

	t.Run("MutateMany", func(t *testing.T) {
		big, small := newID(t, "c"), newID(t, "c")
		seed(t, s, []string{big, small}, active)
		bigBefore := get(t, s, big)
		errs := s.MutateMany(t.Context(), []tenant.Change{
			{Base: bigBefore, Apply: func(rec *tenant.Record) {
				rec.ConsecutiveFailures = 5
				rec.KeyVaults = []tenant.KeyVault{{VaultURL: huge}}
			}},
			{Base: get(t, s, small), Apply: func(rec *tenant.Record) { rec.ConsecutiveFailures = 5 }},
		})
		if !errors.Is(errs[0], tenant.ErrTooLarge) || errs[1] != nil {
			t.Fatalf("errs = %v, want [ErrTooLarge, nil]", errs)
		}
		if after := get(t, s, big); !reflect.DeepEqual(after, bigBefore) {
			t.Fatal("the too-large record was written")
		}
		if get(t, s, small).ConsecutiveFailures != 5 {
			t.Fatal("the valid change in the same partition was not written")
		}
	})
}

func TestRunHistory(t *testing.T) {
	t.Parallel()
	s := tablestoretest.Open(t)
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	offsets := []time.Duration{3 * time.Hour, 0, 15 * time.Minute, 2 * time.Hour, time.Nanosecond}
	for i, off := range offsets {
		run := sweep.Run{
			ID: fmt.Sprintf("run-%d", i), Trigger: "timer", StartedAt: t0.Add(off), FinishedAt: t0.Add(off + time.Minute),
			Total: 100 + i, OK: 90, Failed: map[outcome.Code]int{outcome.GraphConsentMissing: 7, outcome.Timeout: 3},
			P50Ms: 120, P95Ms: 900, WallMs: 60000,
		}
		if err := s.AddRun(t.Context(), run); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // storing the same run again replaces it
			if err := s.AddRun(t.Context(), run); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		n    int
		want []string
	}{
		{0, nil},
		{1, []string{"run-0"}},
		{3, []string{"run-0", "run-3", "run-2"}},
		{10, []string{"run-0", "run-3", "run-2", "run-4", "run-1"}},
	}
	for _, tt := range tests {
		runs, err := s.RecentRuns(t.Context(), tt.n)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range runs {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("RecentRuns(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
	runs, err := s.RecentRuns(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := sweep.Run{
		ID: "run-0", Trigger: "timer", StartedAt: t0.Add(3 * time.Hour), FinishedAt: t0.Add(3*time.Hour + time.Minute),
		Total: 100, OK: 90, Failed: map[outcome.Code]int{outcome.GraphConsentMissing: 7, outcome.Timeout: 3},
		P50Ms: 120, P95Ms: 900, WallMs: 60000,
	}
	if !reflect.DeepEqual(runs[0], want) {
		t.Fatalf("run read back:\n got %+v\nwant %+v", runs[0], want)
	}
	if err := s.AddRun(t.Context(), sweep.Run{ID: "bad/id", StartedAt: t0}); err == nil {
		t.Fatal("a run id with '/' was accepted")
	}
}

// activeOf is every active tenant, in key order, as the planner reads them
// (EachActive) put together.
func activeOf(ctx context.Context, s *tablestore.Store) ([]tenant.Record, error) {
	var out []tenant.Record
	err := s.EachActive(ctx, func(recs []tenant.Record) error {
		out = append(out, recs...)
		return nil
	})
	slices.SortFunc(out, func(a, b tenant.Record) int { return strings.Compare(a.TenantID, b.TenantID) })
	return out, err
}
