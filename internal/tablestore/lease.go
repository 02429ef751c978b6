package tablestore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/runid"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
)

// The run lease and the work results live in the runs table, beside the
// run history, each in partitions of their own: the lease is one row that
// only planners write; each work message has its own row, so no row is
// written by every worker.
const (
	leasePartition = "lease"
	leaseRow       = "sweep"
	workPrefix     = "work-"
)

var (
	_ sweep.Leases = (*Store)(nil)
	_ sweep.Ledger = (*Store)(nil)
)

type leaseEntity struct {
	PartitionKey string `json:"PartitionKey"`
	RowKey       string `json:"RowKey"`
	RunID        string `json:"RunId"`
	State        string `json:"State"`
	Lease        string `json:"Lease"`
	ETag         string `json:"odata.etag,omitempty"`
}

// ReadLease returns the run lease, or a zero one when none was taken.
func (s *Store) ReadLease(ctx context.Context) (sweep.Lease, error) {
	var resp aztables.GetEntityResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.runs.GetEntity(ctx, leasePartition, leaseRow, nil)
		return err
	})
	if isNotFound(err) {
		return sweep.Lease{}, nil
	}
	if err != nil {
		return sweep.Lease{}, fmt.Errorf("read run lease: %w", err)
	}
	var e leaseEntity
	var l sweep.Lease
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return sweep.Lease{}, fmt.Errorf("read run lease: %w", err)
	}
	if err := json.Unmarshal([]byte(e.Lease), &l); err != nil {
		return sweep.Lease{}, fmt.Errorf("read run lease: %w", err)
	}
	l.ETag = string(resp.ETag)
	return l, nil
}

// WriteLease stores l on condition that the lease is still the version
// l.ETag names (absent when empty).
func (s *Store) WriteLease(ctx context.Context, l sweep.Lease) (sweep.Lease, error) {
	body, err := json.Marshal(l)
	if err != nil {
		return l, fmt.Errorf("write run lease: %w", err)
	}
	ent, err := json.Marshal(leaseEntity{PartitionKey: leasePartition, RowKey: leaseRow, RunID: l.RunID, State: string(l.State), Lease: string(body)})
	if err != nil {
		return l, fmt.Errorf("write run lease: %w", err)
	}
	var tag azcore.ETag
	if l.ETag == "" {
		err = s.write(ctx, s.runs, func(ctx context.Context) error {
			resp, err := s.runs.AddEntity(ctx, ent, nil)
			tag = resp.ETag
			return err
		})
		if hasCode(err, aztables.EntityAlreadyExists) || hasStatus(err, http.StatusConflict) {
			return l, fmt.Errorf("write run lease: %w", sweep.ErrLeaseTaken)
		}
	} else {
		err = s.call(ctx, func(ctx context.Context) error {
			resp, err := s.runs.UpdateEntity(ctx, ent, &aztables.UpdateEntityOptions{IfMatch: to.Ptr(azcore.ETag(l.ETag)), UpdateMode: aztables.UpdateModeReplace})
			tag = resp.ETag
			return err
		})
		if hasStatus(err, http.StatusPreconditionFailed) || isNotFound(err) {
			return l, fmt.Errorf("write run lease: %w", sweep.ErrLeaseTaken)
		}
	}
	if err != nil {
		return l, fmt.Errorf("write run lease: %w", err)
	}
	l.ETag = string(tag)
	return l, nil
}

type workEntity struct {
	PartitionKey string `json:"PartitionKey"`
	RowKey       string `json:"RowKey"`
	OK           int32  `json:"OK"`
	Tenants      int32  `json:"Tenants"`
	Result       string `json:"Result"`
}

func workPartition(runID string) (string, error) {
	if err := runid.Check(runID); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return workPrefix + runID, nil
}

// AddWorkResult stores a work message's result; storing it again (a
// redelivered message) replaces it.
func (s *Store) AddWorkResult(ctx context.Context, r sweep.WorkResult) error {
	pk, err := workPartition(r.Run)
	if err != nil {
		return fmt.Errorf("add work result: %w", err)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("add work result: %w", err)
	}
	if n := 2 * utf16Len(string(body)); n > maxStringBytes {
		return fmt.Errorf("add work result of run %s message %d: %d bytes in UTF-16, over the %d-byte limit of a string property", r.Run, r.Seq, n, maxStringBytes)
	}
	ent, err := json.Marshal(workEntity{PartitionKey: pk, RowKey: fmt.Sprintf("%07d", r.Seq), OK: int32(r.OK), Tenants: int32(r.Tenants), Result: string(body)})
	if err != nil {
		return fmt.Errorf("add work result: %w", err)
	}
	if err := s.write(ctx, s.runs, func(ctx context.Context) error {
		_, err := s.runs.UpsertEntity(ctx, ent, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
		return err
	}); err != nil {
		return fmt.Errorf("add work result of run %s message %d: %w", r.Run, r.Seq, err)
	}
	return nil
}

// WorkResults returns every work result recorded for a run, in message
// order.
func (s *Store) WorkResults(ctx context.Context, runID string) ([]sweep.WorkResult, error) {
	pk, err := workPartition(runID)
	if err != nil {
		return nil, fmt.Errorf("work results: %w", err)
	}
	var out []sweep.WorkResult
	err = s.eachPage(ctx, s.runs, &aztables.ListEntitiesOptions{
		Filter: to.Ptr("PartitionKey eq '" + pk + "'"),
		Select: to.Ptr("Result"),
		Top:    to.Ptr(int32(1000)),
	}, func(entities [][]byte) error {
		for _, body := range entities {
			var e workEntity
			var r sweep.WorkResult
			if err := json.Unmarshal(body, &e); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(e.Result), &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("work results of run %s: %w", runID, err)
	}
	return out, nil
}
