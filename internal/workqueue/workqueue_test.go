package workqueue_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/sas"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/storageconn"
	"github.com/tenantsweep/tenantsweep/internal/workqueue"
	"github.com/tenantsweep/tenantsweep/internal/workqueue/workqueuetest"
)

const someKey = "c2VjcmV0LWtleS1ub3QtdG8tbGVhaw==" // base64 of secret-key-not-to-leak

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestOpenCreatesBothQueuesAndIsIdempotent(t *testing.T) {
	cfg := workqueuetest.Config(t)
	q := workqueuetest.OpenWithOptions(t, cfg, workqueue.Options{})
	if q.Name() != cfg.Name {
		t.Fatalf("Name() = %q", q.Name())
	}
	// A second instance opening the same queues must not fail.
	if _, err := workqueue.Open(ctx(t), cfg, workqueue.Options{}); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if n, err := q.Pending(ctx(t)); err != nil || n != 0 {
		t.Fatalf("Pending = %d, %v", n, err)
	}
	if p, err := q.Poisoned(ctx(t), 32); err != nil || len(p) != 0 {
		t.Fatalf("Poisoned = %v, %v", p, err)
	}
}

func TestEnqueueReceiveDelete(t *testing.T) {
	q := workqueuetest.Open(t)
	text := `{"v":1,"run":"r1","seq":1,"tenants":["a","b"]}`
	if err := q.Enqueue(ctx(t), text); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Pending(ctx(t)); err != nil || n != 1 {
		t.Fatalf("Pending = %d, %v", n, err)
	}
	before := time.Now().Add(-time.Minute)
	msgs, err := q.Receive(ctx(t), 16, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %v, %v", msgs, err)
	}
	m := msgs[0]
	if m.Text != text || !decoded(m) {
		t.Errorf("Text = %q (decoded %v), want %q", m.Text, decoded(m), text)
	}
	if m.Raw() != base64.StdEncoding.EncodeToString([]byte(text)) {
		t.Errorf("stored text %q is not the base64 of the message", m.Raw())
	}
	if m.ID == "" || m.PopReceipt == "" || m.DequeueCount != 1 {
		t.Errorf("message %+v", m)
	}
	if m.InsertionTime.Before(before) || !m.ExpirationTime.After(m.InsertionTime) || !m.NextVisibleTime.After(time.Now().Add(30*time.Second)) {
		t.Errorf("times: inserted %v, expires %v, visible %v", m.InsertionTime, m.ExpirationTime, m.NextVisibleTime)
	}
	// Leased: nobody else gets it, but it still counts as pending.
	if again, err := q.Receive(ctx(t), 16, time.Minute); err != nil || len(again) != 0 {
		t.Fatalf("second Receive = %v, %v", again, err)
	}
	if n, _ := q.Pending(ctx(t)); n != 1 {
		t.Errorf("Pending while leased = %d, want 1", n)
	}
	if err := q.Delete(ctx(t), m); err != nil {
		t.Fatal(err)
	}
	if n, _ := q.Pending(ctx(t)); n != 0 {
		t.Errorf("Pending after delete = %d", n)
	}
}

func TestReleaseRenewsAndReleases(t *testing.T) {
	q := workqueuetest.Open(t)
	if err := q.Enqueue(ctx(t), "hello"); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(ctx(t), 1, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %v, %v", msgs, err)
	}
	old := msgs[0]

	// Renewing the lease gives a new pop receipt; the old one stops working.
	renewed, err := q.Release(ctx(t), old, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.PopReceipt == old.PopReceipt || !renewed.NextVisibleTime.After(old.NextVisibleTime) {
		t.Errorf("renewed %+v, old %+v", renewed, old)
	}
	if err := q.Delete(ctx(t), old); !queueerror.HasCode(err, queueerror.PopReceiptMismatch, queueerror.MessageNotFound) {
		t.Errorf("Delete with the old pop receipt: %v", err)
	}

	// Releasing at once makes it visible again, text unchanged, counted.
	if _, err := q.Release(ctx(t), renewed, 0); err != nil {
		t.Fatal(err)
	}
	again, err := q.Receive(ctx(t), 1, time.Minute)
	if err != nil || len(again) != 1 {
		t.Fatalf("Receive after release = %v, %v", again, err)
	}
	if again[0].ID != old.ID || again[0].Text != "hello" || again[0].DequeueCount != 2 {
		t.Errorf("after release: %+v", again[0])
	}
}

func TestMoveToPoison(t *testing.T) {
	q := workqueuetest.Open(t)
	text := `{"v":1,"run":"r2","seq":7,"tenants":["t1"]}`
	if err := q.Enqueue(ctx(t), text); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(ctx(t), 1, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %v, %v", msgs, err)
	}
	if err := q.MoveToPoison(ctx(t), msgs[0]); err != nil {
		t.Fatal(err)
	}
	if n, _ := q.Pending(ctx(t)); n != 0 {
		t.Errorf("Pending after poison = %d", n)
	}
	p, err := q.Poisoned(ctx(t), 5)
	if err != nil || len(p) != 1 {
		t.Fatalf("Poisoned = %v, %v", p, err)
	}
	// The stored text is copied as is (still base64), as the host does.
	if p[0].Text != text || p[0].Raw() != msgs[0].Raw() {
		t.Errorf("poisoned %+v", p[0])
	}
	// Peeking leaves it there.
	if p, _ := q.Poisoned(ctx(t), 5); len(p) != 1 {
		t.Errorf("second peek: %d messages", len(p))
	}
}

func TestReceiveBatchAndNotBase64(t *testing.T) {
	cfg := workqueuetest.Config(t)
	q := workqueuetest.OpenWithOptions(t, cfg, workqueue.Options{})
	for i := range 5 {
		if err := q.Enqueue(ctx(t), strings.Repeat("x", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	// Someone else's message without base64 (messageEncoding none).
	raw := rawClient(t, cfg)
	if _, err := raw.NewQueueClient(cfg.Name).EnqueueMessage(ctx(t), "plain {text}", nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(ctx(t), 100, time.Minute) // capped at 32
	if err != nil || len(msgs) != 6 {
		t.Fatalf("Receive = %d messages, %v", len(msgs), err)
	}
	var plain int
	for _, m := range msgs {
		if !decoded(m) {
			plain++
			if m.Text != "plain {text}" || m.Raw() != m.Text {
				t.Errorf("undecodable message %+v", m)
			}
		}
	}
	if plain != 1 {
		t.Errorf("%d undecoded messages, want 1", plain)
	}
}

func TestEnqueueTooLarge(t *testing.T) {
	q := workqueuetest.Open(t)
	if err := q.Enqueue(ctx(t), strings.Repeat("a", workqueue.MaxTextBytes)); err != nil {
		t.Fatalf("largest message: %v", err)
	}
	if err := q.Enqueue(ctx(t), strings.Repeat("a", workqueue.MaxTextBytes+1)); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v", err)
	}
}

// TestSAS: a connection string with a SharedAccessSignature, as the portal
// makes for a queue-only SAS.
func TestSAS(t *testing.T) {
	cfg := workqueuetest.Config(t)
	workqueuetest.OpenWithOptions(t, cfg, workqueue.Options{}) // creates, and deletes at the end
	c, err := storageconn.Parse(cfg.Connection)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azqueue.NewSharedKeyCredential(c.Account, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	// Azurite serves http, which a SAS must allow explicitly.
	qp, err := sas.AccountSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		Permissions:   (&sas.AccountPermissions{Read: true, Write: true, Add: true, Create: true, Update: true, Process: true, Delete: true, List: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, sig := c.QueueEndpoint, qp.Encode()
	sasCfg := cfg
	sasCfg.Connection = "QueueEndpoint=" + endpoint + ";SharedAccessSignature=" + sig
	q, err := workqueue.Open(ctx(t), sasCfg, workqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx(t), "via sas"); err != nil {
		t.Fatal(err)
	}
	if msgs, err := q.Receive(ctx(t), 1, time.Minute); err != nil || len(msgs) != 1 || msgs[0].Text != "via sas" {
		t.Fatalf("Receive = %v, %v", msgs, err)
	}
}

// TestCallDeadline: storage that accepts connections and never answers
// fails each call within its own deadline, marked ErrUnavailable; the
// caller's own cancellation is returned as is.
func TestCallDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	cfg := config.Queue{Name: "work", Connection: storageconn.DevConnectionString("", srv.URL+"/devstoreaccount1")}
	opts := workqueue.Options{Timeout: 200 * time.Millisecond, ClientOptions: &azqueue.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}}
	start := time.Now()
	_, err := workqueue.Open(t.Context(), cfg, opts)
	if !errors.Is(err, workqueue.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %s", d)
	}
	if strings.Contains(err.Error(), storageconn.DevAccountKey) {
		t.Errorf("error leaks the key: %v", err)
	}

	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = workqueue.Open(cctx, cfg, opts)
	if errors.Is(err, workqueue.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled context: %v", err)
	}
}

func TestOpenErrorsDoNotLeak(t *testing.T) {
	tests := []struct {
		name, want string
		cfg        config.Queue
	}{
		{"bad key", "AccountKey", config.Queue{Name: "w", Connection: "AccountName=a;AccountKey=not*base64*" + someKey}},
		{"table only", "neither QueueEndpoint nor AccountName", config.Queue{Name: "w", Connection: "TableEndpoint=https://a.table.core.windows.net;SharedAccessSignature=sig=" + someKey}},
		{"service URL without credential", "credential", config.Queue{Name: "w", ServiceURL: "https://a.queue.core.windows.net"}},
		{"both", "not both", config.Queue{Name: "w", ServiceURL: "https://a.queue.core.windows.net", Connection: "AccountName=a;AccountKey=" + someKey}},
		{"neither", "neither", config.Queue{Name: "w"}},
		{"no name", "name", config.Queue{Connection: "UseDevelopmentStorage=true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := workqueue.Open(t.Context(), tt.cfg, workqueue.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), someKey) || strings.Contains(err.Error(), "sig=") {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
}

func rawClient(t *testing.T, cfg config.Queue) *azqueue.ServiceClient {
	t.Helper()
	c, err := storageconn.Parse(cfg.Connection)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azqueue.NewSharedKeyCredential(c.Account, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := azqueue.NewServiceClientWithSharedKeyCredential(c.QueueEndpoint+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// decoded reports whether the stored text was base64 and Text its decoding.
func decoded(m workqueue.Message) bool {
	return m.Raw() == base64.StdEncoding.EncodeToString([]byte(m.Text))
}

// A paced message is on the queue (counted as pending, so its run is
// active) but no listener receives it before its delay.
func TestEnqueueAfterDelaysDelivery(t *testing.T) {
	q := workqueuetest.Open(t)
	if err := q.EnqueueAfter(ctx(t), "later", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := q.EnqueueAfter(ctx(t), "now", 400*time.Millisecond); err != nil { // to the nearest second: now
		t.Fatal(err)
	}
	start := time.Now()
	if n, err := q.Pending(ctx(t)); err != nil || n != 2 {
		t.Fatalf("Pending = %d, %v", n, err)
	}
	msgs, err := q.Receive(ctx(t), 32, time.Minute)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "now" {
		t.Fatalf("receive at once: %+v, %v", msgs, err)
	}
	for {
		msgs, err = q.Receive(ctx(t), 32, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if waited := time.Since(start); msgs[0].Text != "later" || waited < 1500*time.Millisecond {
		t.Errorf("received %q after %v, want \"later\" after about 2s", msgs[0].Text, waited)
	}
}
