// Package workqueuetest gives tests of other packages a work queue on
// Azurite with a name of its own. Start Azurite with `scripts/azurite.sh
// start --in-memory` and export AZURITE_QUEUE_ENDPOINT to the queue endpoint
// it prints (`make test` does both).
package workqueuetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/storageconn"
	"github.com/tenantsweep/tenantsweep/internal/workqueue"
)

// EndpointEnv names the variable holding Azurite's queue endpoint, such as
// http://127.0.0.1:10001/devstoreaccount1.
const EndpointEnv = "AZURITE_QUEUE_ENDPOINT"

// Config returns settings for a work queue on Azurite with a unique name
// (the queues are not created). Without AZURITE_QUEUE_ENDPOINT the test is
// skipped, or fails when CI is set, so that CI cannot pass by skipping.
func Config(t testing.TB) config.Queue {
	t.Helper()
	endpoint := os.Getenv(EndpointEnv)
	if endpoint == "" {
		if os.Getenv("CI") != "" {
			t.Fatal(EndpointEnv + " not set: CI must run the Azurite tests (scripts/with-azurite.sh)")
		}
		t.Skip(EndpointEnv + " not set: run `make test`")
	}
	b := make([]byte, 6)
	rand.Read(b)
	return config.Queue{
		Name:              "work-" + hex.EncodeToString(b),
		Connection:        storageconn.DevConnectionString("", endpoint),
		ConnectionSetting: "AzureWebJobsStorage",
		TenantsPerMessage: 8,
	}
}

// Open opens a fresh work queue on Azurite, deleted with its poison queue
// when the test ends.
func Open(t testing.TB) *workqueue.Queue {
	t.Helper()
	return OpenWithOptions(t, Config(t), workqueue.Options{})
}

// OpenWithOptions is Open for given settings and options (for example a
// policy that counts requests).
func OpenWithOptions(t testing.TB, cfg config.Queue, opts workqueue.Options) *workqueue.Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := workqueue.Open(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("open work queue on Azurite: %v", err)
	}
	t.Cleanup(func() { DeleteQueues(t, cfg) })
	return q
}

// DeleteQueues drops the work queue and its poison queue; missing ones are
// ignored.
func DeleteQueues(t testing.TB, cfg config.Queue) {
	t.Helper()
	c, err := storageconn.Parse(cfg.Connection)
	if err != nil {
		t.Errorf("delete queues: %v", err)
		return
	}
	cred, err := azqueue.NewSharedKeyCredential(c.Account, c.Key)
	if err != nil {
		t.Errorf("delete queues: %v", err)
		return
	}
	svc, err := azqueue.NewServiceClientWithSharedKeyCredential(c.QueueEndpoint+"/", cred, nil)
	if err != nil {
		t.Errorf("delete queues: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range []string{cfg.Name, cfg.Name + "-poison"} {
		if _, err := svc.DeleteQueue(ctx, name, nil); err != nil && !queueerror.HasCode(err, queueerror.QueueNotFound) {
			t.Errorf("delete queue %s: %v", name, err)
		}
	}
}
