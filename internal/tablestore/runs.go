package tablestore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/runid"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
)

const runPartition = "run"

// runEntity is one sweep run: a few columns to read at a glance in Storage
// Explorer, and the whole run as JSON, which is what is read back.
type runEntity struct {
	PartitionKey string `json:"PartitionKey"`
	RowKey       string `json:"RowKey"`
	RunID        string `json:"RunId"`
	Trigger      string `json:"Trigger"`
	StartedAt    string `json:"StartedAt"`
	Total        int32  `json:"Total"`
	OK           int32  `json:"OK"`
	Run          string `json:"Run"`
}

// runRowKey sorts newer runs first: the largest int64 minus StartedAt in
// nanoseconds, zero-padded to 19 digits, then the run ID to keep runs that
// started in the same nanosecond apart.
func runRowKey(r sweep.Run) (string, error) {
	if r.StartedAt.Year() < 1970 || r.StartedAt.Year() > 2261 {
		return "", fmt.Errorf("run %q: startedAt %s is out of range", truncate(r.ID, 64), r.StartedAt)
	}
	if err := runid.Check(r.ID); err != nil {
		return "", fmt.Errorf("run %q: %w", truncate(r.ID, runid.MaxLen), err)
	}
	return fmt.Sprintf("%019d-%s", math.MaxInt64-r.StartedAt.UnixNano(), r.ID), nil
}

// AddRun stores one run in the history; storing the same run again
// replaces it.
func (s *Store) AddRun(ctx context.Context, run sweep.Run) error {
	rk, err := runRowKey(run)
	if err != nil {
		return fmt.Errorf("add run: %w", err)
	}
	body, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("add run %s: %w", run.ID, err)
	}
	if n := 2 * utf16Len(string(body)); n > maxStringBytes {
		return fmt.Errorf("add run %s: the run is %d bytes in UTF-16, over the %d-byte limit of a string property", run.ID, n, maxStringBytes)
	}
	ent, err := json.Marshal(runEntity{
		PartitionKey: runPartition,
		RowKey:       rk,
		RunID:        run.ID,
		Trigger:      run.Trigger,
		StartedAt:    formatTime(run.StartedAt),
		Total:        int32(min(run.Total, math.MaxInt32)),
		OK:           int32(min(run.OK, math.MaxInt32)),
		Run:          string(body),
	})
	if err != nil {
		return fmt.Errorf("add run %s: %w", run.ID, err)
	}
	if err := s.write(ctx, s.runs, func(ctx context.Context) error {
		_, err := s.runs.UpsertEntity(ctx, ent, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
		return err
	}); err != nil {
		return fmt.Errorf("add run %s: %w", run.ID, err)
	}
	return nil
}

// RecentRuns returns up to n runs, newest first.
func (s *Store) RecentRuns(ctx context.Context, n int) ([]sweep.Run, error) {
	if n <= 0 {
		return nil, nil
	}
	pager := s.runs.NewListEntitiesPager(&aztables.ListEntitiesOptions{
		Filter: to.Ptr("PartitionKey eq '" + runPartition + "'"),
		Select: to.Ptr("Run"),
		Top:    to.Ptr(int32(min(n, 1000))),
	})
	var runs []sweep.Run
	for len(runs) < n && pager.More() {
		var resp aztables.ListEntitiesResponse
		err := s.call(ctx, func(ctx context.Context) (err error) {
			resp, err = pager.NextPage(ctx)
			return err
		})
		if hasCode(err, aztables.TableNotFound) {
			return runs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("recent runs: %w", err)
		}
		for _, body := range resp.Entities {
			var e runEntity
			if err := json.Unmarshal(body, &e); err != nil {
				return nil, fmt.Errorf("recent runs: %w", err)
			}
			var r sweep.Run
			if err := json.Unmarshal([]byte(e.Run), &r); err != nil {
				return nil, fmt.Errorf("recent runs: %w", err)
			}
			runs = append(runs, r)
			if len(runs) == n {
				break
			}
		}
	}
	return runs, nil
}
