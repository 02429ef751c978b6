package tablestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
	"github.com/tenantsweep/tenantsweep/internal/tablestore/tablestoretest"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

func register(t *testing.T, s *tablestore.Store, id string) {
	t.Helper()
	_, _, err := s.Mutate(t.Context(), id, func(rec *tenant.Record, exists bool) error {
		rec.TenantID, rec.Status, rec.DisplayName = id, tenant.StatusActive, "T "+id[:8]
		rec.KeyVaults = []tenant.KeyVault{{VaultURL: "https://v.vault.azure.net/", Secrets: []string{"s"}}}
		return nil
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// writeRow writes an entity with aztables directly, as another tool or a
// hand edit in Storage Explorer would.
func writeRow(t *testing.T, reg config.Registry, props map[string]any) {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(reg.Connection, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(props)
	if _, err := svc.NewClient(reg.Table).UpsertEntity(t.Context(), b, nil); err != nil {
		t.Fatalf("write row: %v", err)
	}
}

// Issue 10, storage 1: one row whose KeyVaults JSON is cut short made
// EachActive and List fail for every tenant.
func TestUnreadableRowIsReportedAndTheRestServed(t *testing.T) {
	t.Parallel()
	s, reg := openWithRegistry(t)
	healthy := []string{"10000000-0000-4000-8000-000000000001", "20000000-0000-4000-8000-000000000002", "30000000-0000-4000-8000-000000000003"}
	for _, id := range healthy {
		register(t, s, id)
	}
	bad := "25000000-0000-4000-8000-0000000000bb"
	writeRow(t, reg, map[string]any{"PartitionKey": bad[:2], "RowKey": bad, "Status": "active", "DisplayName": "Cut",
		"KeyVaults": `[{"vaultUrl":"https://v.vault.azure.net/","secr`})
	wrongType := "35000000-0000-4000-8000-0000000000cc"
	writeRow(t, reg, map[string]any{"PartitionKey": wrongType[:2], "RowKey": wrongType, "Status": "active",
		"ConsecutiveFailures": "many", "KeyVaults": "[]"})

	check := func(what string, recs []tenant.Record) {
		t.Helper()
		damaged := map[string]string{}
		for _, r := range recs {
			if r.Damage != nil {
				damaged[r.TenantID] = r.Damage.Property
				if r.Damage.Code != tenant.DamageCode || r.Damage.Message == "" {
					t.Errorf("%s: damage of %s = %+v", what, r.TenantID, r.Damage)
				}
			}
		}
		if len(recs) != 5 || damaged[bad] != "KeyVaults" || damaged[wrongType] != "ConsecutiveFailures" || len(damaged) != 2 {
			t.Fatalf("%s: %d records, damaged %v; want 5 with %s:KeyVaults and %s:ConsecutiveFailures", what, len(recs), damaged, bad, wrongType)
		}
	}
	active, err := activeOf(t.Context(), s)
	if err != nil {
		t.Fatalf("EachActive: %v", err)
	}
	check("EachActive", active)
	page, err := s.List(t.Context(), 100, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	check("List", page.Records)
	rec, err := s.Get(t.Context(), bad)
	if err != nil || rec.Damage == nil || rec.DisplayName != "Cut" {
		t.Fatalf("Get = %+v, %v; want the readable part and the damage", rec, err)
	}

	// Registering the tenant again rewrites the row in full.
	register(t, s, bad)
	if rec, err := s.Get(t.Context(), bad); err != nil || rec.Damage != nil || len(rec.KeyVaults) != 1 {
		t.Fatalf("after re-registering: %+v, %v", rec, err)
	}
}

// Issue 10, storage 2: storage that accepts connections and never answers
// held every call for as long as the caller's context (forever at start).
func TestEveryCallHasADeadline(t *testing.T) {
	t.Parallel()
	p := tablestoretest.StartProxy(t)
	direct := tablestoretest.Registry(t)
	t.Cleanup(func() { tablestoretest.DeleteTables(t, direct) })
	reg := p.Registry(direct)
	reg.Timeout = time.Second

	p.Silence(true)
	start := time.Now()
	_, err := tablestore.Open(context.Background(), reg, tablestore.Options{})
	if !errors.Is(err, tenant.ErrUnavailable) || time.Since(start) > 3*time.Second {
		t.Fatalf("Open on silent storage: %v after %s; want ErrUnavailable within the 1s deadline", err, time.Since(start))
	}
	p.Silence(false)
	s, err := tablestore.Open(context.Background(), reg, tablestore.Options{})
	if err != nil {
		t.Fatalf("Open once storage answers again: %v", err)
	}
	id := "40000000-0000-4000-8000-000000000004"
	register(t, s, id)
	rec, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}

	p.Silence(true)
	calls := map[string]func(ctx context.Context) error{
		"Get":  func(ctx context.Context) error { _, err := s.Get(ctx, id); return err },
		"List": func(ctx context.Context) error { _, err := s.List(ctx, 10, ""); return err },
		"EachActive": func(ctx context.Context) error {
			_, err := activeOf(ctx, s)
			return err
		},
		"Mutate": func(ctx context.Context) error {
			_, _, err := s.Mutate(ctx, id, func(*tenant.Record, bool) error { return nil })
			return err
		},
		"MutateMany": func(ctx context.Context) error {
			return s.MutateMany(ctx, []tenant.Change{{Base: rec, Apply: func(r *tenant.Record) { r.DisplayName = "x" }}})[0]
		},
		"AddRun": func(ctx context.Context) error {
			return s.AddRun(ctx, sweep.Run{ID: "r1", StartedAt: time.Now()})
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := call(context.Background())
			took := time.Since(start)
			// MutateMany redoes a failed batch change by change: two calls.
			if !errors.Is(err, tenant.ErrUnavailable) || took > 3*time.Second {
				t.Fatalf("%s on silent storage: %v after %s; want ErrUnavailable within the deadline", name, err, took)
			}
		})
	}
}

// Issue 10, storage 4: a table dropped while the app runs made every write
// fail with TableNotFound until a restart.
func TestDroppedTableIsRecreatedOnWrite(t *testing.T) {
	t.Parallel()
	s, reg := openWithRegistry(t)
	tablestoretest.DeleteTables(t, reg)

	if page, err := s.List(t.Context(), 10, ""); err != nil || len(page.Records) != 0 {
		t.Fatalf("List of a dropped table = %+v, %v; want an empty page", page, err)
	}
	if recs, err := activeOf(t.Context(), s); err != nil || len(recs) != 0 {
		t.Fatalf("EachActive of a dropped table = %v, %v", recs, err)
	}
	id := "50000000-0000-4000-8000-000000000005"
	register(t, s, id)
	if rec, err := s.Get(t.Context(), id); err != nil || rec.TenantID != id {
		t.Fatalf("Get after the write: %+v, %v", rec, err)
	}
	if err := s.AddRun(t.Context(), sweep.Run{ID: "after-drop", StartedAt: time.Now()}); err != nil {
		t.Fatalf("AddRun after the runs table was dropped: %v", err)
	}
	if runs, err := s.RecentRuns(t.Context(), 5); err != nil || len(runs) != 1 {
		t.Fatalf("RecentRuns = %v, %v", runs, err)
	}
}
