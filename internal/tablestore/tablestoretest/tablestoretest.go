// Package tablestoretest gives tests of other packages a registry on Azurite
// with tables of their own. Start Azurite with `scripts/azurite.sh start
// --in-memory` and export AZURITE_TABLE_ENDPOINT to the endpoint it prints
// (`make test` does both).
package tablestoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/storageconn"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
)

// EndpointEnv names the variable holding Azurite's table endpoint, such as
// http://127.0.0.1:10002/devstoreaccount1.
const EndpointEnv = "AZURITE_TABLE_ENDPOINT"

// Registry returns settings for a registry on Azurite with unique table
// names (the tables are not created). Without AZURITE_TABLE_ENDPOINT the test
// is skipped, or fails when CI is set, so that CI cannot pass by skipping.
func Registry(t testing.TB) config.Registry {
	t.Helper()
	endpoint := os.Getenv(EndpointEnv)
	if endpoint == "" {
		if os.Getenv("CI") != "" {
			t.Fatal(EndpointEnv + " not set: CI must run the Azurite tests (scripts/azurite.sh start)")
		}
		t.Skip(EndpointEnv + " not set: run `make test`")
	}
	suffix := randomHex(t, 8)
	return config.Registry{
		Connection: storageconn.DevConnectionString(endpoint, ""),
		Table:      "tenants" + suffix,
		RunsTable:  "runs" + suffix,
	}
}

// Open opens a registry on Azurite with fresh tables, deleted when the test
// ends.
func Open(t testing.TB) *tablestore.Store {
	t.Helper()
	return OpenWithOptions(t, tablestore.Options{})
}

// OpenWithOptions is Open with client options (for example a policy that
// counts requests).
func OpenWithOptions(t testing.TB, opts tablestore.Options) *tablestore.Store {
	t.Helper()
	reg := Registry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := tablestore.Open(ctx, reg, opts)
	if err != nil {
		t.Fatalf("open registry on Azurite: %v", err)
	}
	t.Cleanup(func() { DeleteTables(t, reg) })
	return s
}

// DeleteTables drops the registry's tables; missing ones are ignored.
func DeleteTables(t testing.TB, reg config.Registry) {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(reg.Connection, nil)
	if err != nil {
		t.Errorf("delete tables: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range []string{reg.Table, reg.RunsTable} {
		_, err := svc.DeleteTable(ctx, name, nil)
		var re *azcore.ResponseError
		if err != nil && !(errors.As(err, &re) && re.StatusCode == http.StatusNotFound) {
			t.Errorf("delete table %s: %v", name, err)
		}
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
