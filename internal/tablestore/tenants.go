package tablestore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Conditional-write retries: a writer that loses a race re-reads and tries
// again after a jittered pause, up to maxAttempts times in all.
const (
	maxAttempts  = 8
	retryBase    = 5 * time.Millisecond
	retryMaxWait = 250 * time.Millisecond
)

// Batch transaction limits: 100 operations and a 4 MiB payload. The payload
// is counted from the entities' JSON with room for the multipart framing.
const (
	maxBatchOps     = 100
	maxBatchPayload = 4*1024*1024 - 256*1024
	batchOpOverhead = 1024
)

// Get returns one tenant, or tenant.ErrNotFound.
func (s *Store) Get(ctx context.Context, tenantID string) (tenant.Record, error) {
	key, err := tenantKey(tenantID)
	if err != nil {
		// No such row can exist.
		return tenant.Record{}, fmt.Errorf("get tenant: %w (%w)", tenant.ErrNotFound, err)
	}
	return s.get(ctx, key)
}

func (s *Store) get(ctx context.Context, key string) (tenant.Record, error) {
	var resp aztables.GetEntityResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.tenants.GetEntity(ctx, partitionKey(key), key, nil)
		return err
	})
	if err != nil {
		if isNotFound(err) {
			return tenant.Record{}, fmt.Errorf("get tenant %s: %w", key, tenant.ErrNotFound)
		}
		return tenant.Record{}, fmt.Errorf("get tenant %s: %w", key, err)
	}
	rec, err := decodeTenant(resp.Value)
	if err != nil {
		return tenant.Record{}, fmt.Errorf("get tenant %s: %w", key, err)
	}
	rec.ETag = string(resp.ETag)
	return rec, nil
}

// Mutate reads the tenant, applies fn and writes the result on condition
// that the row is unchanged (or still absent), retrying on a concurrent
// change; see onboard.Store. The id is stored in lower case. It returns the
// record as stored, with its new ETag.
func (s *Store) Mutate(ctx context.Context, tenantID string, fn func(rec *tenant.Record, exists bool) error) (tenant.Record, bool, error) {
	key, err := tenantKey(tenantID)
	if err != nil {
		return tenant.Record{}, false, fmt.Errorf("mutate tenant: %w", err)
	}
	return s.mutate(ctx, key, nil, fn)
}

// mutate is the read, apply, conditional-write loop. first, when not nil,
// stands in for the first read (MutateMany passes the Base it already has;
// an empty ETag means "absent").
func (s *Store) mutate(ctx context.Context, key string, first *tenant.Record, fn func(rec *tenant.Record, exists bool) error) (tenant.Record, bool, error) {
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return tenant.Record{}, false, fmt.Errorf("mutate tenant %s: %w", key, err)
			}
		}
		var cur tenant.Record
		exists := false
		if attempt == 0 && first != nil {
			c, err := cloneRecord(*first)
			if err != nil {
				return tenant.Record{}, false, fmt.Errorf("mutate tenant %s: %w", key, err)
			}
			cur, exists = c, c.ETag != ""
		} else {
			r, err := s.get(ctx, key)
			switch {
			case err == nil:
				cur, exists = r, true
			case errors.Is(err, tenant.ErrNotFound):
			default:
				return tenant.Record{}, false, fmt.Errorf("mutate: %w", err)
			}
		}
		if !exists {
			cur = tenant.Record{}
		}
		etag := azcore.ETag(cur.ETag)
		if err := fn(&cur, exists); err != nil {
			return tenant.Record{}, false, err
		}
		ent, err := encodeTenant(key, cur)
		if err != nil {
			return tenant.Record{}, false, fmt.Errorf("mutate tenant %s: %w", key, err)
		}
		var newTag azcore.ETag
		if exists {
			var resp aztables.UpdateEntityResponse
			err := s.call(ctx, func(ctx context.Context) (err error) {
				resp, err = s.tenants.UpdateEntity(ctx, ent, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
				return err
			})
			// 412: changed since read; 404: deleted since read. Both mean
			// read again.
			if hasStatus(err, http.StatusPreconditionFailed) || isNotFound(err) {
				continue
			}
			if err != nil {
				return tenant.Record{}, false, fmt.Errorf("mutate tenant %s: update: %w", key, err)
			}
			newTag = resp.ETag
		} else {
			var resp aztables.AddEntityResponse
			err := s.write(ctx, s.tenants, func(ctx context.Context) (err error) {
				resp, err = s.tenants.AddEntity(ctx, ent, nil)
				return err
			})
			if hasCode(err, aztables.EntityAlreadyExists) || hasStatus(err, http.StatusConflict) {
				continue // created since read
			}
			if err != nil {
				return tenant.Record{}, false, fmt.Errorf("mutate tenant %s: add: %w", key, err)
			}
			newTag = resp.ETag
		}
		stored, err := decodeTenant(ent)
		if err != nil {
			return tenant.Record{}, false, fmt.Errorf("mutate tenant %s: %w", key, err)
		}
		stored.ETag = string(newTag)
		return stored, !exists, nil
	}
	return tenant.Record{}, false, fmt.Errorf("mutate tenant %s: %d attempts: %w", key, maxAttempts, tenant.ErrConflict)
}

// pause waits before retry number attempt: full jitter over an exponential
// window, so that writers that collided spread out.
func pause(ctx context.Context, attempt int) error {
	window := min(retryMaxWait, retryBase<<attempt)
	t := time.NewTimer(rand.N(window) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// List returns one page of tenants in key order, without their tokens'
// ciphertexts. pageSize is clamped to 1..1000. A page can be short, or even empty, and still have a Next.
func (s *Store) List(ctx context.Context, pageSize int, continuation string) (tenant.Page, error) {
	pageSize = min(max(pageSize, 1), 1000)
	opts := &aztables.ListEntitiesOptions{Top: to.Ptr(int32(pageSize)), Select: to.Ptr(listSelect)}
	if continuation != "" {
		pk, rk, err := decodeContinuation(continuation)
		if err != nil {
			return tenant.Page{}, fmt.Errorf("list tenants: %w", err)
		}
		opts.NextPartitionKey, opts.NextRowKey = &pk, &rk
	}
	pager := s.tenants.NewListEntitiesPager(opts)
	var resp aztables.ListEntitiesResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = pager.NextPage(ctx)
		return err
	})
	if hasCode(err, aztables.TableNotFound) { // dropped: the next write recreates it
		return tenant.Page{}, nil
	}
	if err != nil {
		return tenant.Page{}, fmt.Errorf("list tenants: %w", err)
	}
	var page tenant.Page
	if page.Records, err = decodeAll(resp.Entities); err != nil {
		return tenant.Page{}, fmt.Errorf("list tenants: %w", err)
	}
	page.Next = encodeContinuation(resp.NextPartitionKey, resp.NextRowKey)
	return page, nil
}

func decodeAll(entities [][]byte) ([]tenant.Record, error) {
	recs := make([]tenant.Record, 0, len(entities))
	for _, body := range entities {
		rec, err := decodeTenant(body)
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// The continuation token wraps the service's NextPartitionKey and NextRowKey
// (themselves opaque) with a version, in base64url.
const continuationVersion = "1"

func encodeContinuation(pk, rk *string) string {
	if pk == nil || *pk == "" {
		return ""
	}
	r := ""
	if rk != nil {
		r = *rk
	}
	return base64.RawURLEncoding.EncodeToString([]byte(continuationVersion + "\n" + *pk + "\n" + r))
}

func decodeContinuation(tok string) (pk, rk string, err error) {
	if len(tok) > 4096 {
		return "", "", fmt.Errorf("%w: too long", tenant.ErrBadContinuation)
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", "", fmt.Errorf("%w: not base64url", tenant.ErrBadContinuation)
	}
	parts := strings.Split(string(b), "\n")
	if len(parts) != 3 || parts[0] != continuationVersion || parts[1] == "" {
		return "", "", fmt.Errorf("%w: unknown format", tenant.ErrBadContinuation)
	}
	for _, p := range parts[1:] {
		for _, c := range []byte(p) {
			if c < 0x21 || c > 0x7e {
				return "", "", fmt.Errorf("%w: unexpected character", tenant.ErrBadContinuation)
			}
		}
	}
	return parts[1], parts[2], nil
}

// errSkip tells mutate's caller that Apply was not called because the
// tenant no longer exists.
var errSkip = errors.New("tenant no longer exists")

// MutateMany applies every change conditionally on its Base.ETag: changes
// are grouped by partition (keeping their order within one) and sent as
// batch transactions of up to 100 replaces. A failed batch is redone change
// by change through the Mutate loop, which re-reads and re-applies after a
// concurrent change and skips a tenant that was deleted. A Base with an
// empty ETag is a new tenant: it is inserted, and if it exists by then Apply
// is applied to the stored record. errs[i] belongs to changes[i].
func (s *Store) MutateMany(ctx context.Context, changes []tenant.Change) []error {
	errs := make([]error, len(changes))
	type op struct {
		i      int
		key    string
		action aztables.TransactionAction
	}
	var order []string // partitions in order of first appearance
	byPK := map[string][]op{}
	for i, ch := range changes {
		key, err := tenantKey(ch.Base.TenantID)
		if err != nil {
			errs[i] = fmt.Errorf("update tenant: %w", err)
			continue
		}
		rec, err := cloneRecord(ch.Base)
		if err != nil {
			errs[i] = fmt.Errorf("update tenant %s: %w", key, err)
			continue
		}
		ch.Apply(&rec)
		ent, err := encodeTenant(key, rec)
		if err != nil {
			errs[i] = fmt.Errorf("update tenant %s: %w", key, err)
			continue
		}
		a := aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: ent}
		if ch.Base.ETag != "" {
			a.ActionType = aztables.TransactionTypeUpdateReplace
			a.IfMatch = to.Ptr(azcore.ETag(ch.Base.ETag))
		}
		pk := partitionKey(key)
		if _, ok := byPK[pk]; !ok {
			order = append(order, pk)
		}
		byPK[pk] = append(byPK[pk], op{i: i, key: key, action: a})
	}

	for _, pk := range order {
		ops := byPK[pk]
		for len(ops) > 0 {
			// Cut a batch: ≤100 operations, ≤ the payload limit, one per row.
			n, payload := 0, 0
			seen := map[string]bool{}
			for n < len(ops) && n < maxBatchOps && !seen[ops[n].key] {
				size := len(ops[n].action.Entity) + batchOpOverhead
				if n > 0 && payload+size > maxBatchPayload {
					break
				}
				seen[ops[n].key] = true
				payload += size
				n++
			}
			batch := ops[:n]
			ops = ops[n:]

			actions := make([]aztables.TransactionAction, len(batch))
			for j, o := range batch {
				actions[j] = o.action
			}
			// Each batch has its own deadline: one bound over a whole call
			// of up to 100 partitions cut results off on slow storage.
			if err := s.call(ctx, func(ctx context.Context) error {
				_, err := s.tenants.SubmitTransaction(ctx, actions, nil)
				return err
			}); err == nil {
				continue
			} else if ctx.Err() != nil || errors.Is(err, tenant.ErrUnavailable) {
				// Storage is not answering: redoing each change would wait
				// out one deadline per change. The caller retries later.
				for _, o := range batch {
					errs[o.i] = fmt.Errorf("update tenant %s: %w", o.key, err)
				}
				continue
			}
			// A batch fails as a whole (the SDK reports status 202 with no
			// code; the cause is in the body), usually because one row
			// changed. Redo each change on its own.
			for _, o := range batch {
				errs[o.i] = s.redo(ctx, o.key, changes[o.i])
			}
		}
	}
	return errs
}

// redo applies one change through the Mutate loop, starting from its Base.
func (s *Store) redo(ctx context.Context, key string, ch tenant.Change) error {
	isNew := ch.Base.ETag == ""
	_, _, err := s.mutate(ctx, key, &ch.Base, func(rec *tenant.Record, exists bool) error {
		if !exists {
			if !isNew {
				return errSkip
			}
			base, err := cloneRecord(ch.Base)
			if err != nil {
				return err
			}
			*rec = base
		}
		ch.Apply(rec)
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	return err
}

// listShards is how many ranges of the 256 partitions EachActive reads at
// once. The service answers a query on a PartitionKey range by itself, so a
// plan of 100,000 tenants need not wait for 100 pages one after another.
const listShards = 8

// EachActive calls fn with each page of active tenants, filtering on the
// server, without their tokens' ciphertexts; it reads listShards ranges of
// partitions at once, so pages come
// in no particular order, and fn is called by one of them at a time. At
// most listShards pages are held at a time. An error from fn stops the
// listing and is returned as is.
func (s *Store) EachActive(ctx context.Context, fn func([]tenant.Record) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu    sync.Mutex // serialises fn
		fnErr error
		wg    sync.WaitGroup
	)
	for i := range listShards {
		wg.Go(func() {
			err := s.eachPage(ctx, s.tenants, &aztables.ListEntitiesOptions{
				Filter: to.Ptr(shardFilter(i) + fmt.Sprintf("Status eq '%s'", tenant.StatusActive)),
				Top:    to.Ptr(int32(1000)),
				Select: to.Ptr(listSelect),
			}, func(entities [][]byte) error {
				recs, err := decodeAll(entities)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				if fnErr == nil {
					fnErr = fn(recs)
				}
				return fnErr
			})
			if err != nil {
				cancel(err) // the first cause is kept
			}
		})
	}
	wg.Wait()
	err := context.Cause(ctx)
	switch {
	case err == nil:
		return nil
	case fnErr != nil && errors.Is(err, fnErr):
		return fnErr
	}
	return fmt.Errorf("list active tenants: %w", err)
}

// shardFilter is the PartitionKey range of shard i of listShards, as the
// start of a filter: partition keys are two lower-case hex digits, and the
// first and last ranges are open so that no row is ever left out.
func shardFilter(i int) string {
	width := 256 / listShards
	var f string
	if i > 0 {
		f += fmt.Sprintf("PartitionKey ge '%02x' and ", i*width)
	}
	if i < listShards-1 {
		f += fmt.Sprintf("PartitionKey lt '%02x' and ", (i+1)*width)
	}
	return f
}

// PartitionOf is the registry partition of a tenant ("" for an id that is
// not one), so that a planner can put tenants that are read and written
// together in one message.
func (s *Store) PartitionOf(tenantID string) string {
	key, err := tenantKey(tenantID)
	if err != nil {
		return ""
	}
	return partitionKey(key)
}

// GetMany reads tenants, one query per partition among them (a message's
// tenants share one), and returns those found by lower-case id, with their
// shared tokens: the sweep's one read of a message brings them.
func (s *Store) GetMany(ctx context.Context, tenantIDs []string) (map[string]tenant.Record, error) {
	byPK := map[string][]string{}
	var order []string
	for _, id := range tenantIDs {
		key, err := tenantKey(id)
		if err != nil {
			continue // no such row can exist
		}
		pk := partitionKey(key)
		if _, ok := byPK[pk]; !ok {
			order = append(order, pk)
		}
		byPK[pk] = append(byPK[pk], key)
	}
	out := make(map[string]tenant.Record, len(tenantIDs))
	for _, pk := range order {
		// Keys are canonical GUIDs: nothing in them needs OData escaping.
		var rows []string
		for _, key := range byPK[pk] {
			rows = append(rows, "RowKey eq '"+key+"'")
		}
		err := s.eachPage(ctx, s.tenants, &aztables.ListEntitiesOptions{
			Filter: to.Ptr("PartitionKey eq '" + pk + "' and (" + strings.Join(rows, " or ") + ")"),
		}, func(entities [][]byte) error {
			recs, err := decodeAll(entities)
			for _, r := range recs {
				out[r.TenantID] = r
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("get tenants: %w", err)
		}
	}
	return out, nil
}
