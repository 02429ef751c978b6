// Package tenanttest is an in-memory tenant registry for tests. Its Store
// keeps the registry's contract, ETags included: Mutate re-reads and
// re-applies after losing to a concurrent writer, MutateMany writes on
// condition of each Base's ETag and re-applies a change that lost, List pages
// with continuation tokens. Hooks let a test fail calls, act as a concurrent
// writer and count what was written.
//
// It satisfies onboard.Store and sweep.Registry; the guards live in those
// packages' tests, since importing them here would make a cycle.
package tenanttest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// maxAttempts is how many times a write that loses a race is tried, as in
// tablestore.
const maxAttempts = 8

// Store is an in-memory registry, safe for concurrent use. The zero value is
// not usable; call New.
type Store struct {
	mu   sync.Mutex
	recs map[string]tenant.Record // by lower-case tenant id
	seq  int                      // the last ETag issued

	err         error
	writeErr    error
	beforeWrite func(tenantID string)

	writes    int
	batches   int
	listSizes []int
}

// New returns a Store holding recs, each given an ETag.
func New(recs ...tenant.Record) *Store {
	s := &Store{recs: map[string]tenant.Record{}}
	for _, r := range recs {
		s.put(r)
	}
	return s
}

// FailWith makes every call fail with err; nil clears it.
func (s *Store) FailWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// FailWritesWith makes every write fail with err after the change was
// applied, as a refused request would; nil clears it.
func (s *Store) FailWritesWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeErr = err
}

// BeforeWrite sets a hook that runs on every write attempt between the read
// and the conditional write, without the Store's lock held: a test can act
// as a concurrent writer from it with Put or Remove. nil clears it.
func (s *Store) BeforeWrite(hook func(tenantID string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeWrite = hook
}

// Put stores rec unconditionally with a new ETag, as another writer would.
// Hooks and counts are not involved.
func (s *Store) Put(rec tenant.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(rec)
}

func (s *Store) put(rec tenant.Record) tenant.Record {
	rec.TenantID = strings.ToLower(rec.TenantID)
	s.seq++
	rec.ETag = fmt.Sprintf(`W/"%d"`, s.seq)
	s.recs[rec.TenantID] = clone(rec)
	return rec
}

// Remove deletes a tenant, as an operator would; a later read misses it and
// a write conditional on its old ETag loses.
func (s *Store) Remove(tenantID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, strings.ToLower(tenantID))
}

// Stored returns the tenant as stored, bypassing hooks and failures.
func (s *Store) Stored(tenantID string) (tenant.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[strings.ToLower(tenantID)]
	return clone(r), ok
}

// Writes is how many records Mutate and MutateMany have written.
func (s *Store) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Batches is how many times MutateMany was called.
func (s *Store) Batches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches
}

// TakeListSizes returns the page sizes List was asked for since the last
// call, and forgets them.
func (s *Store) TakeListSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sizes := s.listSizes
	s.listSizes = nil
	return sizes
}

// Get returns one tenant, or tenant.ErrNotFound.
func (s *Store) Get(_ context.Context, tenantID string) (tenant.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return tenant.Record{}, s.err
	}
	r, ok := s.recs[strings.ToLower(tenantID)]
	if !ok {
		return tenant.Record{}, fmt.Errorf("tenanttest: get tenant %s: %w", tenantID, tenant.ErrNotFound)
	}
	return clone(r), nil
}

// GetMany returns the tenants found among tenantIDs, by lower-case id.
func (s *Store) GetMany(_ context.Context, tenantIDs []string) (map[string]tenant.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	out := map[string]tenant.Record{}
	for _, id := range tenantIDs {
		if r, ok := s.recs[strings.ToLower(id)]; ok {
			out[r.TenantID] = clone(r)
		}
	}
	return out, nil
}

// PartitionOf groups tenants by the first two characters of their id, as
// the Table Storage registry does.
func (s *Store) PartitionOf(tenantID string) string {
	if len(tenantID) < 2 {
		return ""
	}
	return strings.ToLower(tenantID[:2])
}

// Mutate reads the tenant, applies fn to a private copy and writes the
// result on condition that the tenant is unchanged (or still absent),
// re-reading and re-applying fn after a concurrent change. An error from fn
// aborts the write and is returned as is.
func (s *Store) Mutate(_ context.Context, tenantID string, fn func(rec *tenant.Record, exists bool) error) (tenant.Record, bool, error) {
	key := strings.ToLower(tenantID)
	for range maxAttempts {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			return tenant.Record{}, false, s.err
		}
		cur, exists := s.recs[key]
		rec := clone(cur)
		s.mu.Unlock()

		if err := fn(&rec, exists); err != nil {
			return tenant.Record{}, false, err
		}
		stored, ok, err := s.commit(key, cur.ETag, exists, rec)
		if err != nil {
			return tenant.Record{}, false, err
		}
		if ok {
			return stored, !exists, nil
		}
	}
	return tenant.Record{}, false, fmt.Errorf("tenanttest: mutate tenant %s: %d attempts: %w", key, maxAttempts, tenant.ErrConflict)
}

// commit writes rec if the tenant is still as read (etag, or absent when
// !existed). ok is false when it lost to a concurrent change.
func (s *Store) commit(key, etag string, existed bool, rec tenant.Record) (stored tenant.Record, ok bool, err error) {
	s.mu.Lock()
	hook := s.beforeWrite
	s.mu.Unlock()
	if hook != nil {
		hook(key)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		return tenant.Record{}, false, s.writeErr
	}
	if rec.TenantID != "" && !strings.EqualFold(rec.TenantID, key) {
		return tenant.Record{}, false, fmt.Errorf("tenanttest: record of tenant %s has tenantId %q", key, rec.TenantID)
	}
	cur, exists := s.recs[key]
	if exists != existed || exists && cur.ETag != etag {
		return tenant.Record{}, false, nil
	}
	rec.TenantID = key
	s.writes++
	return s.put(rec), true, nil
}

// List returns one page of tenants in key order. pageSize is clamped to
// 1..1000 as in tablestore. The continuation is "k:" and the last key
// served; any other token is tenant.ErrBadContinuation.
func (s *Store) List(_ context.Context, pageSize int, continuation string) (tenant.Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listSizes = append(s.listSizes, pageSize)
	if s.err != nil {
		return tenant.Page{}, s.err
	}
	pageSize = min(max(pageSize, 1), 1000)
	after, ok := strings.CutPrefix(continuation, "k:")
	if continuation != "" && !ok {
		return tenant.Page{}, fmt.Errorf("tenanttest: list tenants: %w", tenant.ErrBadContinuation)
	}
	var p tenant.Page
	keys := s.keys()
	for _, k := range keys {
		if k <= after {
			continue
		}
		if len(p.Records) == pageSize {
			p.Next = "k:" + p.Records[len(p.Records)-1].TenantID
			break
		}
		p.Records = append(p.Records, clone(s.recs[k]))
	}
	return p, nil
}

// EachActive calls fn with the active tenants in pages of up to 1,000, in
// key order, as the registry pages them.
func (s *Store) EachActive(_ context.Context, fn func([]tenant.Record) error) error {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return s.err
	}
	var all []tenant.Record
	for _, k := range s.keys() {
		if r := s.recs[k]; r.Active() {
			all = append(all, clone(r))
		}
	}
	s.mu.Unlock()
	for len(all) > 0 {
		n := min(len(all), 1000)
		if err := fn(all[:n]); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

func (s *Store) keys() []string {
	keys := make([]string, 0, len(s.recs))
	for k := range s.recs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// MutateMany applies every change on condition of its Base.ETag, as
// tablestore does: a change that lost to a concurrent writer is re-read and
// re-applied, a tenant deleted since Base was read is skipped (nil error),
// and a Base with an empty ETag is inserted. errs[i] belongs to changes[i].
// Each call counts as one batch.
func (s *Store) MutateMany(_ context.Context, changes []tenant.Change) []error {
	errs := make([]error, len(changes))
	s.mu.Lock()
	s.batches++
	failed := s.err
	s.mu.Unlock()
	for i, ch := range changes {
		if failed != nil {
			errs[i] = failed
			continue
		}
		errs[i] = s.mutateOne(ch)
	}
	return errs
}

func (s *Store) mutateOne(ch tenant.Change) error {
	key := strings.ToLower(ch.Base.TenantID)
	isNew := ch.Base.ETag == ""
	// The first attempt starts from Base without a read.
	rec := clone(ch.Base)
	ch.Apply(&rec)
	etag, existed := ch.Base.ETag, !isNew
	for range maxAttempts {
		_, ok, err := s.commit(key, etag, existed, rec)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		s.mu.Lock()
		cur, exists := s.recs[key]
		s.mu.Unlock()
		if !exists && !isNew {
			return nil // deleted meanwhile: not brought back
		}
		if exists {
			rec = clone(cur)
		} else {
			rec = clone(ch.Base)
		}
		ch.Apply(&rec)
		etag, existed = cur.ETag, exists
	}
	return fmt.Errorf("tenanttest: update tenant %s: %d attempts: %w", key, maxAttempts, tenant.ErrConflict)
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// clone copies a record deeply, so that no caller shares its slices or
// pointers with the Store.
func clone(r tenant.Record) tenant.Record {
	if r.KeyVaults != nil {
		kvs := make([]tenant.KeyVault, len(r.KeyVaults))
		for i, kv := range r.KeyVaults {
			kvs[i] = tenant.KeyVault{VaultURL: kv.VaultURL, Secrets: slices.Clone(kv.Secrets), Keys: slices.Clone(kv.Keys)}
		}
		r.KeyVaults = kvs
	}
	if r.Verification != nil {
		v := *r.Verification
		r.Verification = &v
	}
	if r.LastSweep != nil {
		s := *r.LastSweep
		if s.Graph != nil {
			g := *s.Graph
			s.Graph = &g
		}
		s.KeyVault = slices.Clone(s.KeyVault)
		for i, ss := range s.KeyVault {
			if ss.Enabled != nil {
				e := *ss.Enabled
				s.KeyVault[i].Enabled = &e
			}
			if ss.ExpiresOn != nil {
				t := *ss.ExpiresOn
				s.KeyVault[i].ExpiresOn = &t
			}
		}
		s.Keys = slices.Clone(s.Keys)
		for i, k := range s.Keys {
			s.Keys[i].Enabled, s.Keys[i].ExpiresOn, s.Keys[i].PurgeProtection = clonePtr(k.Enabled), clonePtr(k.ExpiresOn), clonePtr(k.PurgeProtection)
		}
		s.KeyCounts = maps.Clone(s.KeyCounts)
		r.LastSweep = &s
	}
	if r.BackoffUntil != nil {
		b := *r.BackoffUntil
		r.BackoffUntil = &b
	}
	r.Shared = tenant.Shared{Tokens: slices.Clone(r.Shared.Tokens), Vaults: slices.Clone(r.Shared.Vaults)}
	return r
}
