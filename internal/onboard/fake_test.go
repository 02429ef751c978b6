package onboard

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// fakeStore is an in-memory onboard Store that honours the Mutate contract:
// fn sees a private copy, an error from fn aborts the write, and a write that
// lost to a concurrent one re-reads and re-applies fn.
type fakeStore struct {
	mu      sync.Mutex
	recs    map[string]tenant.Record
	version map[string]int
	writes  int
	// err, when set, fails every call.
	err error
	// mutateErr, when set, fails Mutate after fn ran (as a write would).
	mutateErr error
	// beforeWrite runs once per Mutate attempt between the read and the write,
	// outside the lock, to simulate a concurrent writer.
	beforeWrite func(id string)
	listSizes   []int
}

var _ Store = (*fakeStore)(nil)

func newFakeStore(recs ...tenant.Record) *fakeStore {
	s := &fakeStore{recs: map[string]tenant.Record{}, version: map[string]int{}}
	for _, r := range recs {
		s.recs[r.TenantID] = clone(r)
		s.version[r.TenantID] = 1
	}
	return s
}

func clone(r tenant.Record) tenant.Record {
	if r.KeyVaults != nil {
		kvs := make([]tenant.KeyVault, len(r.KeyVaults))
		for i, kv := range r.KeyVaults {
			kvs[i] = tenant.KeyVault{VaultURL: kv.VaultURL, Secrets: slices.Clone(kv.Secrets)}
		}
		r.KeyVaults = kvs
	}
	if r.Verification != nil {
		v := *r.Verification
		r.Verification = &v
	}
	if r.LastSweep != nil {
		s := *r.LastSweep
		r.LastSweep = &s
	}
	if r.BackoffUntil != nil {
		b := *r.BackoffUntil
		r.BackoffUntil = &b
	}
	return r
}

func (s *fakeStore) Get(_ context.Context, id string) (tenant.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return tenant.Record{}, s.err
	}
	r, ok := s.recs[id]
	if !ok {
		return tenant.Record{}, tenant.ErrNotFound
	}
	return clone(r), nil
}

func (s *fakeStore) Mutate(_ context.Context, id string, fn func(*tenant.Record, bool) error) (tenant.Record, bool, error) {
	for range 5 {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			return tenant.Record{}, false, s.err
		}
		cur, exists := s.recs[id]
		ver := s.version[id]
		rec := clone(cur)
		hook := s.beforeWrite
		s.mu.Unlock()

		if err := fn(&rec, exists); err != nil {
			return tenant.Record{}, false, err
		}
		if hook != nil {
			hook(id)
		}

		s.mu.Lock()
		if s.mutateErr != nil {
			s.mu.Unlock()
			return tenant.Record{}, false, s.mutateErr
		}
		if s.version[id] != ver {
			s.mu.Unlock()
			continue
		}
		s.version[id]++
		rec.ETag = strings.Repeat("v", s.version[id])
		s.recs[id] = clone(rec)
		s.writes++
		s.mu.Unlock()
		return rec, !exists, nil
	}
	return tenant.Record{}, false, tenant.ErrConflict
}

// List pages in key order; the continuation is "k:" and the last key served.
func (s *fakeStore) List(_ context.Context, pageSize int, continuation string) (tenant.Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listSizes = append(s.listSizes, pageSize)
	if s.err != nil {
		return tenant.Page{}, s.err
	}
	after, ok := strings.CutPrefix(continuation, "k:")
	if continuation != "" && !ok {
		return tenant.Page{}, fmt.Errorf("fake: %w", tenant.ErrBadContinuation)
	}
	var keys []string
	for k := range s.recs {
		if k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var p tenant.Page
	for i, k := range keys {
		if i == pageSize {
			p.Next = "k:" + keys[i-1]
			break
		}
		p.Records = append(p.Records, clone(s.recs[k]))
	}
	return p, nil
}

func (s *fakeStore) writeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func (s *fakeStore) stored(id string) (tenant.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	return clone(r), ok
}

// fakeVerifier returns a canned verification and records its calls.
type fakeVerifier struct {
	mu     sync.Mutex
	result tenant.Verification
	calls  []tenant.Record
	// deadline is the time left on the context of the last call.
	deadline time.Duration
	// during runs inside Verify, for example to change the store meanwhile.
	during func(ctx context.Context, rec tenant.Record)
}

func (f *fakeVerifier) Verify(ctx context.Context, rec tenant.Record) tenant.Verification {
	f.mu.Lock()
	f.calls = append(f.calls, rec)
	if d, ok := ctx.Deadline(); ok {
		f.deadline = time.Until(d)
	}
	during, v := f.during, f.result
	f.mu.Unlock()
	if during != nil {
		during(ctx, rec)
	}
	return v
}

func (f *fakeVerifier) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type fakeForgetter struct {
	mu  sync.Mutex
	ids []string
}

func (f *fakeForgetter) Forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, id)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
