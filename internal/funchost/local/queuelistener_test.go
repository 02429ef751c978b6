package local

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/logtest"
	"github.com/tenantsweep/tenantsweep/internal/workqueue"
	"github.com/tenantsweep/tenantsweep/internal/workqueue/workqueuetest"
)

func TestQueueOptions(t *testing.T) {
	defaults := ListenerOptions{BatchSize: 16, NewBatchThreshold: 8 * runtime.NumCPU(), MaxDequeueCount: 5, Lease: 10 * time.Minute, MaxPollingInterval: time.Minute, MessageEncoding: "base64"}
	tests := []struct {
		name     string
		hostJSON string // "" = no host.json
		want     ListenerOptions
		wantErr  string
	}{
		{name: "no host.json", want: defaults},
		{name: "no extensions", hostJSON: `{"version":"2.0"}`, want: defaults},
		{
			name:     "the app's settings",
			hostJSON: `{"version":"2.0","extensions":{"queues":{"batchSize":8,"newBatchThreshold":4,"maxDequeueCount":5,"visibilityTimeout":"00:00:30","maxPollingInterval":"00:00:02","messageEncoding":"base64"}}}`,
			want:     ListenerOptions{BatchSize: 8, NewBatchThreshold: 4, MaxDequeueCount: 5, VisibilityTimeout: 30 * time.Second, Lease: 10 * time.Minute, MaxPollingInterval: 2 * time.Second, MessageEncoding: "base64"},
		},
		{
			name:     "a TimeSpan with a fraction of a second",
			hostJSON: `{"extensions":{"queues":{"maxPollingInterval":"00:00:00.250","visibilityTimeout":"00:00:01.5"}}}`,
			want:     ListenerOptions{BatchSize: 16, NewBatchThreshold: 8 * runtime.NumCPU(), MaxDequeueCount: 5, VisibilityTimeout: 1500 * time.Millisecond, Lease: 10 * time.Minute, MaxPollingInterval: 250 * time.Millisecond, MessageEncoding: "base64"},
		},
		{
			name:     "keys in any case, numbers as strings, default threshold from batchSize",
			hostJSON: `{"Extensions":{"Queues":{"BatchSize":"4","MaxDequeueCount":2,"MessageEncoding":"None"}}}`,
			want:     ListenerOptions{BatchSize: 4, NewBatchThreshold: 2 * runtime.NumCPU(), MaxDequeueCount: 2, Lease: 10 * time.Minute, MaxPollingInterval: time.Minute, MessageEncoding: "none"},
		},
		{name: "batch too large", hostJSON: `{"extensions":{"queues":{"batchSize":33}}}`, wantErr: "batchSize"},
		{name: "batch zero", hostJSON: `{"extensions":{"queues":{"batchSize":0}}}`, wantErr: "batchSize"},
		{name: "dequeue zero", hostJSON: `{"extensions":{"queues":{"maxDequeueCount":0}}}`, wantErr: "maxDequeueCount"},
		{name: "polling below 100ms", hostJSON: `{"extensions":{"queues":{"maxPollingInterval":"00:00:00"}}}`, wantErr: "maxPollingInterval"},
		{name: "visibility not a TimeSpan", hostJSON: `{"extensions":{"queues":{"visibilityTimeout":30}}}`, wantErr: "visibilityTimeout"},
		{name: "unknown encoding", hostJSON: `{"extensions":{"queues":{"messageEncoding":"utf8"}}}`, wantErr: "messageEncoding"},
		{name: "not JSON", hostJSON: `{`, wantErr: "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.hostJSON != "" {
				writeFile(t, dir, "host.json", tt.hostJSON)
			}
			got, err := QueueOptions(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestEnvelopeMatchesHostFixture: what the listener sends for a message is
// what funchost's host-shaped fixture holds (but for sys's clock and
// random GUID).
func TestEnvelopeMatchesHostFixture(t *testing.T) {
	text := `{"v":1,"run":"r-20241130T144500Z-1f3a","seq":12,"tenants":["0a1b2c3d-0000-4000-8000-00000000abcd","0a1b2c3d-0000-4000-8000-00000000abce"]}`
	m := workqueue.Message{
		ID: "800ae4b3-bdd2-4c08-badd-f08e5a34b865", PopReceipt: "AgAAAAMAAAAAAAAAAgtnj8x+1QE=", DequeueCount: 1,
		InsertionTime:   time.Date(2024, 11, 30, 14, 45, 0, 0, time.UTC),
		ExpirationTime:  time.Date(2024, 12, 7, 14, 45, 0, 0, time.UTC),
		NextVisibleTime: time.Date(2024, 11, 30, 14, 55, 1, 600_000_000, time.UTC),
		Text:            text,
	}
	got, err := envelope("SweepWorker", "work", m, text, time.Date(2024, 11, 30, 14, 45, 1, 220539900, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	fixture, err := os.ReadFile(filepath.Join("..", "testdata", "queue_host.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g, w map[string]map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(fixture, &w); err != nil {
		t.Fatal(err)
	}
	sys := g["Metadata"]["sys"].(map[string]any)
	if sys["MethodName"] != "SweepWorker" || sys["UtcNow"] != "2024-11-30T14:45:01.2205399Z" || !uuidRE(sys["RandGuid"]) {
		t.Errorf("sys = %v", sys)
	}
	delete(g["Metadata"], "sys")
	delete(w["Metadata"], "sys")
	if !reflect.DeepEqual(g, w) {
		t.Errorf("envelope\n%s\nwant (but sys)\n%s", got, fixture)
	}
}

func uuidRE(v any) bool {
	s, _ := v.(string)
	return len(s) == 36 && strings.Count(s, "-") == 4
}

func TestPromote(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"Id": `"queue-id"`, "DequeueCount": "1", "sys": map[string]string{"MethodName": "F"}}
	}
	tests := []struct {
		name, text string
		want       map[string]any
	}{
		{"plain text", "hello", base()},
		{"array", `[{"Id":"x"}]`, base()},
		{"not JSON", `{"a":}`, base()},
		{
			"kinds", ` {"s":"a<b","n":12,"f":1.5,"t":true,"no":false,"o":{"k":[1]},"a":[1,2],"z":null} `,
			merge(base(), map[string]any{"s": `"a<b"`, "n": `"12"`, "f": `"1.5"`, "t": `"True"`, "no": `"False"`, "o": json.RawMessage(`{"k":[1]}`)}),
		},
		{
			// A property named like a metadata key replaces it, whatever its
			// case, under the key's own spelling.
			"shadowing", `{"id":"spoof","DEQUEUECOUNT":7,"Sys":"x"}`,
			map[string]any{"Id": `"spoof"`, "DequeueCount": `"7"`, "sys": `"x"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := base()
			promote(meta, tt.text)
			gb, _ := json.Marshal(meta)
			wb, _ := json.Marshal(tt.want)
			if string(gb) != string(wb) {
				t.Errorf("got  %s\nwant %s", gb, wb)
			}
		})
	}
}

func merge(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func TestBackoff(t *testing.T) {
	var b backoff
	b.reset(2 * time.Second)
	prev := time.Duration(0)
	for i := range 12 {
		d := b.next(false)
		if d < minPollingInterval || d > 2*time.Second {
			t.Fatalf("step %d: %s out of bounds", i, d)
		}
		if d < prev {
			t.Fatalf("step %d: %s shorter than %s", i, d, prev)
		}
		prev = d
	}
	if prev != 2*time.Second {
		t.Errorf("backoff ends at %s, want the maximum", prev)
	}
	if d := b.next(true); d != minPollingInterval {
		t.Errorf("after a batch: %s", d)
	}
	if d := b.next(false); d < 180*time.Millisecond || d > 220*time.Millisecond {
		t.Errorf("first backoff %s, want about 200ms", d)
	}
}

// --- against Azurite ---

// fastOptions keep the tests short: a 2 s lease renewed every second.
func fastOptions() ListenerOptions {
	return ListenerOptions{BatchSize: 4, NewBatchThreshold: 2, MaxDequeueCount: 3, Lease: 2 * time.Second, MaxPollingInterval: 200 * time.Millisecond, MessageEncoding: "base64"}
}

type target struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []call
}

type call struct {
	header http.Header
	body   []byte
}

// newTarget serves the function with h, recording every request.
func newTarget(t *testing.T, h http.Handler) *target {
	tg := &target{}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := readAll(r)
		tg.mu.Lock()
		tg.calls = append(tg.calls, call{r.Header.Clone(), body})
		tg.mu.Unlock()
		r.Body = readCloser(body)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) n() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.calls)
}

func listener(t *testing.T, q *workqueue.Queue, tg *target, o ListenerOptions) (*QueueListener, *logtest.Buffer) {
	logs := &logtest.Buffer{}
	return &QueueListener{Queue: q, Function: "SweepWorker", Binding: "work", Target: tg.srv.URL, Options: o, Log: zerolog.New(logs)}, logs
}

// start runs l until the test ends (draining) and returns a stop function
// that drains and waits.
func start(t *testing.T, l *QueueListener) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pending(t *testing.T, q *workqueue.Queue) int {
	t.Helper()
	n, err := q.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func poisoned(t *testing.T, q *workqueue.Queue) []workqueue.Message {
	t.Helper()
	p, err := q.Poisoned(context.Background(), 32)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func enqueue(t *testing.T, q *workqueue.Queue, text string) {
	t.Helper()
	if err := q.Enqueue(context.Background(), text); err != nil {
		t.Fatal(err)
	}
}

// TestListenerDeliversToFunchost: the listener's envelope, through the
// handler side's decoder, gives back the message; success deletes it.
func TestListenerDeliversToFunchost(t *testing.T) {
	q := workqueuetest.Open(t)
	text := `{"v":1,"run":"r1","seq":3,"tenants":["a","b"],"note":"<&>"}`
	var got atomic.Pointer[funchost.QueueMessage]
	var gotInvocation atomic.Value
	h := funchost.Queue("SweepWorker", "work", zerolog.Nop(), func(ctx context.Context, m funchost.QueueMessage) (funchost.Result, error) {
		got.Store(&m)
		gotInvocation.Store(funchost.InvocationID(ctx))
		return funchost.Result{Logs: []string{"ok"}}, nil
	})
	tg := newTarget(t, h)
	l, _ := listener(t, q, tg, fastOptions())
	enqueue(t, q, text)
	start(t, l)
	eventually(t, "the delivery and delete", func() bool { return got.Load() != nil && pending(t, q) == 0 })

	m := got.Load()
	if string(m.Body) != text || m.DequeueCount != 1 || m.ID == "" || m.PopReceipt == "" || m.InsertionTime.IsZero() || !m.NextVisibleTime.After(m.InsertionTime) {
		t.Errorf("handler saw %+v (body %s)", m, m.Body)
	}
	c := tg.calls[0]
	if ct := c.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if id := c.header.Get("X-Azure-Functions-InvocationId"); !uuidRE(id) || id != gotInvocation.Load() {
		t.Errorf("invocation id %q, handler saw %v", id, gotInvocation.Load())
	}
	var env struct {
		Data     map[string]string
		Metadata map[string]any
	}
	if err := json.Unmarshal(c.body, &env); err != nil {
		t.Fatal(err)
	}
	if env.Data["work"] != jsonText(text) {
		t.Errorf("Data.work = %s, want the text JSON-encoded twice", env.Data["work"])
	}
	for k, want := range map[string]any{"DequeueCount": "1", "Id": jsonText(m.ID), "PopReceipt": jsonText(m.PopReceipt), "run": `"r1"`, "seq": `"3"`, "v": `"1"`, "note": `"<&>"`} {
		if env.Metadata[k] != want {
			t.Errorf("Metadata.%s = %v, want %v", k, env.Metadata[k], want)
		}
	}
	if _, ok := env.Metadata["tenants"]; ok {
		t.Error("an array property was promoted")
	}
	if s, _ := env.Metadata["InsertionTime"].(string); !strings.HasSuffix(s, "+00:00") {
		t.Errorf("InsertionTime = %v", env.Metadata["InsertionTime"])
	}
	if len(poisoned(t, q)) != 0 {
		t.Error("poison queue not empty")
	}
}

// TestListenerRetriesThenPoisons: a failing function gets the message
// MaxDequeueCount times, visible again at once (visibilityTimeout 0), and
// then it is in the poison queue with its text unchanged.
func TestListenerRetriesThenPoisons(t *testing.T) {
	q := workqueuetest.Open(t)
	var counts []string
	var mu sync.Mutex
	tg := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct{ Metadata map[string]any }
		json.NewDecoder(r.Body).Decode(&env)
		mu.Lock()
		counts = append(counts, env.Metadata["DequeueCount"].(string))
		mu.Unlock()
		funchost.WriteError(w, http.StatusInternalServerError, "internal", "internal error")
	}))
	l, _ := listener(t, q, tg, fastOptions())
	enqueue(t, q, `{"v":1,"run":"r2","seq":1,"tenants":["x"]}`)
	stop := start(t, l)
	eventually(t, "the poison queue", func() bool { return len(poisoned(t, q)) == 1 })
	stop()
	if p := poisoned(t, q); p[0].Text != `{"v":1,"run":"r2","seq":1,"tenants":["x"]}` {
		t.Errorf("poisoned text %q", p[0].Text)
	}
	if n := pending(t, q); n != 0 {
		t.Errorf("%d messages left in the work queue", n)
	}
	if strings.Join(counts, ",") != "1,2,3" {
		t.Errorf("deliveries with DequeueCount %v, want 1,2,3", counts)
	}
}

// TestListenerReplyRules: a 2xx that the host would not accept is a
// failure too.
func TestListenerReplyRules(t *testing.T) {
	tests := []struct {
		name string
		h    http.HandlerFunc
		ok   bool
	}{
		{"json object", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"Outputs":{},"Logs":[],"ReturnValue":null}`))
		}, true},
		{"text/json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/json; charset=utf-8")
			w.Write([]byte(`{}`))
		}, true},
		{"no content type", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{}`)) }, false},
		{"empty body", func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Content-Type", "application/json") }, false},
		{"null", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`null`))
		}, false},
		{"array", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`[]`))
		}, false},
		{"202 json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{}`))
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := workqueuetest.Open(t)
			tg := newTarget(t, tt.h)
			o := fastOptions()
			o.MaxDequeueCount = 1
			l, _ := listener(t, q, tg, o)
			enqueue(t, q, "m")
			stop := start(t, l)
			eventually(t, "the message settled", func() bool { return pending(t, q) == 0 })
			stop()
			if got := len(poisoned(t, q)) == 0; got != tt.ok {
				t.Errorf("success = %v, want %v", got, tt.ok)
			}
		})
	}
}

// TestListenerRenewsLease: an invocation longer than the lease keeps its
// message hidden, and the delete after it works with the renewed receipt.
func TestListenerRenewsLease(t *testing.T) {
	q := workqueuetest.Open(t)
	release := make(chan struct{})
	tg := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	l, logs := listener(t, q, tg, fastOptions())
	enqueue(t, q, "slow")
	start(t, l)
	eventually(t, "the delivery", func() bool { return tg.n() == 1 })
	time.Sleep(3500 * time.Millisecond) // well past the 2 s lease
	if msgs, err := q.Receive(context.Background(), 1, time.Second); err != nil || len(msgs) != 0 {
		t.Fatalf("another receiver got %v (%v): the lease was not renewed", msgs, err)
	}
	close(release)
	eventually(t, "the delete", func() bool { return pending(t, q) == 0 })
	if tg.n() != 1 {
		t.Errorf("%d deliveries", tg.n())
	}
	for _, line := range logs.Lines(t) {
		if line["level"] == "error" || line["level"] == "warn" {
			t.Errorf("log: %v", line)
		}
	}
}

// TestListenerDrains: after ctx is done nothing new is received, and Run
// returns only when the invocation in flight has finished and been settled.
func TestListenerDrains(t *testing.T) {
	q := workqueuetest.Open(t)
	release := make(chan struct{})
	tg := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	l, _ := listener(t, q, tg, fastOptions())
	enqueue(t, q, "in flight")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	eventually(t, "the delivery", func() bool { return tg.n() == 1 })
	cancel()
	enqueue(t, q, "after the drain began")
	select {
	case <-done:
		t.Fatal("Run returned with an invocation in flight")
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	if tg.n() != 1 {
		t.Errorf("%d deliveries, want 1", tg.n())
	}
	if n := pending(t, q); n != 1 {
		t.Errorf("%d pending, want only the message enqueued after the drain began", n)
	}
}

// TestListenerKill: a killed listener leaves its message leased: not
// deleted, not released, back with DequeueCount 2 once the lease ends.
func TestListenerKill(t *testing.T) {
	q := workqueuetest.Open(t)
	tg := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // hangs until the listener goes away
	}))
	l, _ := listener(t, q, tg, fastOptions())
	enqueue(t, q, "doomed")
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background()) }()
	eventually(t, "the delivery", func() bool { return tg.n() == 1 })
	l.Kill()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Kill")
	}
	if msgs, err := q.Receive(context.Background(), 1, time.Minute); err != nil || len(msgs) != 0 {
		t.Fatalf("message visible right after Kill: %v, %v (it was released)", msgs, err)
	}
	var msgs []workqueue.Message
	eventually(t, "the lease to run out", func() bool {
		var err error
		msgs, err = q.Receive(context.Background(), 1, time.Minute)
		return err == nil && len(msgs) == 1
	})
	if msgs[0].DequeueCount != 2 || msgs[0].Text != "doomed" {
		t.Errorf("after the lease: %+v", msgs[0])
	}
	if len(poisoned(t, q)) != 0 {
		t.Error("poisoned")
	}
}

// TestListenerPoisonsOverDequeued: a message already dequeued more than
// MaxDequeueCount times (instances died holding it) is poisoned without a
// delivery.
func TestListenerPoisonsOverDequeued(t *testing.T) {
	q := workqueuetest.Open(t)
	enqueue(t, q, "orphan")
	for range 3 { // MaxDequeueCount
		msgs, err := q.Receive(context.Background(), 1, time.Minute)
		if err != nil || len(msgs) != 1 {
			t.Fatal(msgs, err)
		}
		if _, err := q.Release(context.Background(), msgs[0], 0); err != nil {
			t.Fatal(err)
		}
	}
	tg := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	l, _ := listener(t, q, tg, fastOptions())
	start(t, l)
	eventually(t, "the poison queue", func() bool { return len(poisoned(t, q)) == 1 })
	if tg.n() != 0 {
		t.Errorf("%d deliveries, want none", tg.n())
	}
}

// TestListenerBatches: at most BatchSize+NewBatchThreshold invocations run
// at once, and each message is delivered once.
func TestListenerBatches(t *testing.T) {
	q := workqueuetest.Open(t)
	var cur, peak atomic.Int32
	tg := newTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(150 * time.Millisecond)
		cur.Add(-1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	o := fastOptions() // batch 4, threshold 2
	l, _ := listener(t, q, tg, o)
	for range 20 {
		enqueue(t, q, "m")
	}
	start(t, l)
	eventually(t, "all deliveries", func() bool { return pending(t, q) == 0 })
	if tg.n() != 20 {
		t.Errorf("%d deliveries, want 20", tg.n())
	}
	if p := peak.Load(); p > int32(o.BatchSize+o.NewBatchThreshold) || p < 2 {
		t.Errorf("peak concurrency %d, want 2..%d", p, o.BatchSize+o.NewBatchThreshold)
	}
}

func TestListenerNeedsFields(t *testing.T) {
	l := &QueueListener{}
	if err := l.Run(context.Background()); err == nil {
		t.Fatal("Run without a queue succeeded")
	}
}

func readAll(r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	var b strings.Builder
	_, err := io.Copy(&b, r.Body)
	return []byte(b.String()), err
}

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
