package tablestore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tablestore/tablestoretest"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

func TestRunLeaseIsConditional(t *testing.T) {
	s := tablestoretest.Open(t)
	ctx := t.Context()
	none, err := s.ReadLease(ctx)
	if err != nil || none.RunID != "" || none.ETag != "" {
		t.Fatalf("ReadLease on a fresh registry = %+v, %v; want the zero lease", none, err)
	}
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	first, err := s.WriteLease(ctx, sweep.Lease{RunID: "a", Trigger: "timer", State: sweep.LeasePlanning, StartedAt: start, ExpiresAt: start.Add(time.Minute)})
	if err != nil || first.ETag == "" {
		t.Fatalf("take the absent lease: %+v, %v", first, err)
	}
	// A second writer that also read "absent" loses.
	if _, err := s.WriteLease(ctx, sweep.Lease{RunID: "b"}); !errors.Is(err, sweep.ErrLeaseTaken) {
		t.Fatalf("second taker: err = %v, want ErrLeaseTaken", err)
	}
	planned := first
	planned.State, planned.Messages = sweep.LeasePlanned, 7
	second, err := s.WriteLease(ctx, planned)
	if err != nil {
		t.Fatal(err)
	}
	// A writer holding the old version loses too.
	if _, err := s.WriteLease(ctx, first); !errors.Is(err, sweep.ErrLeaseTaken) {
		t.Fatalf("stale writer: err = %v, want ErrLeaseTaken", err)
	}
	got, err := s.ReadLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.RunID != "a" || got.State != sweep.LeasePlanned || got.Messages != 7 || !got.StartedAt.Equal(start) || got.ETag != second.ETag {
		t.Errorf("ReadLease = %+v, want run a planned with 7 messages and the last ETag", got)
	}
}

func TestWorkResultsPerRun(t *testing.T) {
	s := tablestoretest.Open(t)
	ctx := t.Context()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, r := range []sweep.WorkResult{
		{Run: "r1", Seq: 0, Tenants: 2, OK: 1, Failed: map[outcome.Code]int{outcome.Timeout: 1}, DurationsMs: []int64{5, 6}, Delivery: 1, FinishedAt: at},
		{Run: "r1", Seq: 1, Tenants: 1, OK: 1, DurationsMs: []int64{7}, Delivery: 1, FinishedAt: at},
		{Run: "r1", Seq: 1, Tenants: 1, OK: 1, DurationsMs: []int64{7}, Delivery: 2, FinishedAt: at}, // redelivered: replaces
		{Run: "r2", Seq: 0, Tenants: 1, OK: 1, Delivery: 1, FinishedAt: at},
	} {
		if err := s.AddWorkResult(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.WorkResults(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 0 || got[1].Seq != 1 || got[1].Delivery != 2 || got[0].Failed[outcome.Timeout] != 1 {
		t.Errorf("WorkResults(r1) = %+v, want messages 0 and 1, the latter redelivered", got)
	}
	if err := s.AddWorkResult(ctx, sweep.WorkResult{Run: "x'y"}); err == nil {
		t.Error("a run id with a quote was stored")
	}
	if runs, err := s.RecentRuns(ctx, 10); err != nil || len(runs) != 0 {
		t.Errorf("RecentRuns = %d runs, %v; work rows must not show as runs", len(runs), err)
	}
}

func TestGetManyReadsAPartitionAtOnce(t *testing.T) {
	s := tablestoretest.Open(t)
	ctx := t.Context()
	ids := []string{"ab000000-0000-4000-8000-000000000001", "ab000000-0000-4000-8000-000000000002", "cd000000-0000-4000-8000-000000000003"}
	for _, id := range ids {
		if _, _, err := s.Mutate(ctx, id, func(rec *tenant.Record, _ bool) error {
			rec.DisplayName, rec.Status = "T", tenant.StatusActive
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	missing := "ab000000-0000-4000-8000-0000000000ff"
	got, err := s.GetMany(ctx, []string{strings.ToUpper(ids[0]), ids[1], ids[2], missing, "not-a-guid"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[ids[0]].ETag == "" || got[ids[2]].DisplayName != "T" {
		t.Fatalf("GetMany = %+v, want the three stored tenants with their ETags", got)
	}
	if _, ok := got[missing]; ok {
		t.Error("a missing tenant was returned")
	}
	if s.PartitionOf(ids[0]) != s.PartitionOf(ids[1]) || s.PartitionOf(ids[0]) == s.PartitionOf(ids[2]) || s.PartitionOf("x") != "" {
		t.Error("PartitionOf does not follow the registry's partitions")
	}
}
