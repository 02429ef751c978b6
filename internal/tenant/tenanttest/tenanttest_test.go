package tenanttest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

func id(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-000000000000", i) }

func TestMutateReappliesAfterConcurrentWrite(t *testing.T) {
	s := New(tenant.Record{TenantID: id(1), Status: tenant.StatusActive})
	raced := false
	s.BeforeWrite(func(tenantID string) {
		if !raced {
			raced = true
			r, _ := s.Stored(tenantID)
			r.DisplayName = "renamed concurrently"
			s.Put(r)
		}
	})
	calls := 0
	rec, created, err := s.Mutate(t.Context(), id(1), func(rec *tenant.Record, exists bool) error {
		calls++
		rec.ConsecutiveFailures++
		return nil
	})
	if err != nil || created || calls != 2 {
		t.Fatalf("Mutate: created %v, calls %d, err %v; want one re-apply", created, calls, err)
	}
	if rec.DisplayName != "renamed concurrently" || rec.ConsecutiveFailures != 1 || rec.ETag == "" {
		t.Fatalf("rec = %+v: want the concurrent write kept and the change applied", rec)
	}
	if s.Writes() != 1 {
		t.Errorf("writes = %d, want 1 (Put does not count)", s.Writes())
	}
}

func TestMutateDoesNotResurrect(t *testing.T) {
	s := New(tenant.Record{TenantID: id(1)})
	s.BeforeWrite(func(tenantID string) { s.Remove(tenantID) })
	_, _, err := s.Mutate(t.Context(), id(1), func(rec *tenant.Record, exists bool) error {
		if !exists {
			return tenant.ErrNotFound
		}
		rec.DisplayName = "x"
		return nil
	})
	if !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound from fn after the removal", err)
	}
	if _, ok := s.Stored(id(1)); ok {
		t.Fatal("a removed tenant came back")
	}
}

func TestFailures(t *testing.T) {
	boom := errors.New("boom")
	s := New(tenant.Record{TenantID: id(1), Status: tenant.StatusActive})
	s.FailWritesWith(boom)
	if _, _, err := s.Mutate(t.Context(), id(1), func(*tenant.Record, bool) error { return nil }); !errors.Is(err, boom) {
		t.Errorf("Mutate with a failing write = %v", err)
	}
	s.FailWritesWith(nil)
	s.FailWith(boom)
	if _, err := s.Get(t.Context(), id(1)); !errors.Is(err, boom) {
		t.Errorf("Get = %v", err)
	}
	if _, err := s.List(t.Context(), 10, ""); !errors.Is(err, boom) {
		t.Errorf("List = %v", err)
	}
	if _, err := activeOf(t.Context(), s); !errors.Is(err, boom) {
		t.Errorf("EachActive = %v", err)
	}
	if errs := s.MutateMany(t.Context(), []tenant.Change{{Base: tenant.Record{TenantID: id(1)}, Apply: func(*tenant.Record) {}}}); !errors.Is(errs[0], boom) {
		t.Errorf("MutateMany = %v", errs)
	}
	if s.Writes() != 0 {
		t.Errorf("writes = %d", s.Writes())
	}
}

func TestListPages(t *testing.T) {
	var recs []tenant.Record
	for i := 5; i > 0; i-- {
		recs = append(recs, tenant.Record{TenantID: id(i)})
	}
	s := New(recs...)
	var got []string
	next := ""
	for {
		p, err := s.List(t.Context(), 2, next)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			got = append(got, r.TenantID)
		}
		if p.Next == "" {
			break
		}
		next = p.Next
	}
	if want := []string{id(1), id(2), id(3), id(4), id(5)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	if sizes := s.TakeListSizes(); len(sizes) != 3 || s.TakeListSizes() != nil {
		t.Errorf("page sizes %v", sizes)
	}
	if _, err := s.List(t.Context(), 2, "bogus"); !errors.Is(err, tenant.ErrBadContinuation) {
		t.Errorf("bad token: %v", err)
	}
}

func TestMutateMany(t *testing.T) {
	s := New(
		tenant.Record{TenantID: id(1), Status: tenant.StatusActive},
		tenant.Record{TenantID: id(2), Status: tenant.StatusActive},
		tenant.Record{TenantID: id(3), Status: tenant.StatusDisabled},
	)
	bases, err := activeOf(t.Context(), s)
	if err != nil || len(bases) != 2 {
		t.Fatalf("EachActive = %v, %v", bases, err)
	}
	// Concurrently: 1 is renamed, 2 is removed.
	r1, _ := s.Stored(id(1))
	r1.DisplayName = "renamed"
	s.Put(r1)
	s.Remove(id(2))

	bump := func(rec *tenant.Record) { rec.ConsecutiveFailures++ }
	changes := []tenant.Change{
		{Base: bases[0], Apply: bump},
		{Base: bases[1], Apply: bump},
		{Base: tenant.Record{TenantID: id(4), Status: tenant.StatusActive}, Apply: bump},
	}
	for i, err := range s.MutateMany(t.Context(), changes) {
		if err != nil {
			t.Errorf("errs[%d] = %v", i, err)
		}
	}
	if got, _ := s.Stored(id(1)); got.DisplayName != "renamed" || got.ConsecutiveFailures != 1 {
		t.Errorf("1 = %+v: want the rename kept and the change re-applied", got)
	}
	if _, ok := s.Stored(id(2)); ok {
		t.Error("a removed tenant came back")
	}
	if got, ok := s.Stored(id(4)); !ok || got.ConsecutiveFailures != 1 {
		t.Errorf("new tenant = %+v, %v", got, ok)
	}
	if bases[0].ConsecutiveFailures != 0 {
		t.Error("MutateMany changed the caller's Base")
	}
	if s.Writes() != 2 || s.Batches() != 1 {
		t.Errorf("writes %d in %d batches, want 2 in 1", s.Writes(), s.Batches())
	}
}

// activeOf is every active tenant, from EachActive's pages.
func activeOf(ctx context.Context, s *Store) ([]tenant.Record, error) {
	var out []tenant.Record
	err := s.EachActive(ctx, func(recs []tenant.Record) error {
		out = append(out, recs...)
		return nil
	})
	return out, err
}
