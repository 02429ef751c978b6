package local

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/workqueue"
)

// The Storage Queues extension's fixed values (azure-sdk-for-net,
// Microsoft.Azure.WebJobs.Extensions.Storage.Queues: QueueListener,
// QueuePollingIntervals, QueuesOptions).
const (
	// hostLease is how long the host hides a message it received; it
	// renews at half of it while the invocation runs.
	hostLease = 10 * time.Minute
	// minPollingInterval is the shortest wait between two receives, after a
	// batch, and where the backoff starts.
	minPollingInterval = 100 * time.Millisecond
	// What QueuesOptions defaults to when host.json says nothing.
	defaultBatchSize          = 16
	maxBatchSize              = 32
	defaultMaxDequeueCount    = 5
	defaultMaxPollingInterval = time.Minute
)

// hostVersion is what the stand-in sends as the host's version headers.
const hostVersion = "4.0.0.0-local"

// ListenerOptions are host.json's extensions.queues settings, plus the lease
// the host takes on each message.
type ListenerOptions struct {
	// BatchSize is how many messages one receive takes (1 to 32).
	BatchSize int
	// NewBatchThreshold: the next receive waits until at most this many
	// invocations are in flight, so up to BatchSize+NewBatchThreshold run
	// at once. 0 means a batch is received only when the last is done.
	NewBatchThreshold int
	// MaxDequeueCount is how many deliveries a message gets before it is
	// moved to the poison queue.
	MaxDequeueCount int64
	// VisibilityTimeout is how long a failed message stays hidden before
	// its next delivery.
	VisibilityTimeout time.Duration
	// Lease is how long a received message stays hidden; it is renewed at
	// half of it while the invocation runs (the host: 10 minutes).
	Lease time.Duration
	// MaxPollingInterval caps the backoff between receives that find the
	// queue empty.
	MaxPollingInterval time.Duration
	// MessageEncoding is "base64" (the default) or "none": how the queue
	// holds the message text.
	MessageEncoding string
}

// QueueOptions reads extensions.queues from appRoot/host.json as the host
// does, with the host's defaults for what it does not set (a missing
// host.json sets nothing): batchSize 16, newBatchThreshold batchSize/2 per
// processor, maxDequeueCount 5, visibilityTimeout 0, maxPollingInterval 1
// minute, messageEncoding base64; Lease is the host's 10 minutes.
func QueueOptions(appRoot string) (ListenerOptions, error) {
	b, err := os.ReadFile(filepath.Join(appRoot, "host.json"))
	if errors.Is(err, os.ErrNotExist) {
		b = []byte(`{}`)
	} else if err != nil {
		return ListenerOptions{}, fmt.Errorf("read host.json: %w", err)
	}
	o, err := queueOptions(b)
	if err != nil {
		return ListenerOptions{}, fmt.Errorf("host.json extensions.queues: %w", err)
	}
	return o, nil
}

func queueOptions(hostJSON []byte) (ListenerOptions, error) {
	o := ListenerOptions{
		BatchSize:          defaultBatchSize,
		NewBatchThreshold:  -1,
		MaxDequeueCount:    defaultMaxDequeueCount,
		Lease:              hostLease,
		MaxPollingInterval: defaultMaxPollingInterval,
		MessageEncoding:    "base64",
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(hostJSON, &h); err != nil {
		return o, fmt.Errorf("not valid JSON: %w", err)
	}
	// .NET configuration binds keys case-insensitively.
	var queues map[string]json.RawMessage
	if ext := field(h, "extensions"); ext != nil {
		var e map[string]json.RawMessage
		if err := json.Unmarshal(ext, &e); err != nil {
			return o, fmt.Errorf("extensions: %w", err)
		}
		if q := field(e, "queues"); q != nil {
			if err := json.Unmarshal(q, &queues); err != nil {
				return o, fmt.Errorf("not an object: %w", err)
			}
		}
	}
	ints := []struct {
		key    string
		dst    *int
		lo, hi int
	}{
		{"batchSize", &o.BatchSize, 1, maxBatchSize},
		{"newBatchThreshold", &o.NewBatchThreshold, -1, 1 << 20},
	}
	for _, f := range ints {
		if raw := field(queues, f.key); raw != nil {
			n, err := jsonInt(raw)
			if err != nil || n < int64(f.lo) || n > int64(f.hi) {
				return o, fmt.Errorf("%s: want a whole number from %d to %d, got %s", f.key, f.lo, f.hi, raw)
			}
			*f.dst = int(n)
		}
	}
	if raw := field(queues, "maxDequeueCount"); raw != nil {
		n, err := jsonInt(raw)
		if err != nil || n < 1 {
			return o, fmt.Errorf("maxDequeueCount: want a whole number of at least 1, got %s", raw)
		}
		o.MaxDequeueCount = n
	}
	spans := []struct {
		key string
		dst *time.Duration
		lo  time.Duration
	}{
		{"visibilityTimeout", &o.VisibilityTimeout, 0},
		{"maxPollingInterval", &o.MaxPollingInterval, minPollingInterval},
	}
	for _, f := range spans {
		raw := field(queues, f.key)
		if raw == nil {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return o, fmt.Errorf("%s: want a TimeSpan string such as \"00:00:30\", got %s", f.key, raw)
		}
		d, err := funchost.ParseTimeSpan(s)
		if err != nil || strings.TrimSpace(s) == "-1" || d < f.lo {
			return o, fmt.Errorf("%s: want a TimeSpan string of at least %s such as \"00:00:30\", got %q", f.key, f.lo, s)
		}
		*f.dst = d
	}
	if raw := field(queues, "messageEncoding"); raw != nil {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || (!strings.EqualFold(s, "base64") && !strings.EqualFold(s, "none")) {
			return o, fmt.Errorf(`messageEncoding: want "base64" or "none", got %s`, raw)
		}
		o.MessageEncoding = strings.ToLower(s)
	}
	if o.NewBatchThreshold == -1 {
		// QueuesOptions: batchSize/2 times the processor count.
		o.NewBatchThreshold = o.BatchSize / 2 * runtime.NumCPU()
	}
	return o, nil
}

func field(m map[string]json.RawMessage, key string) json.RawMessage {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func jsonInt(raw json.RawMessage) (int64, error) {
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var s string // .NET binds "8" as well as 8
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
}

// QueueListener stands in for the Functions host's queue listener
// (QueueListener and QueueProcessor of the Storage Queues extension): it
// polls Queue in batches, leases each message and renews the lease while
// the invocation runs, delivers the host's envelope to POST
// <Target>/<Function>, and then deletes the message on a 2xx JSON answer,
// makes it visible again after VisibilityTimeout on a failure, or moves it
// to the poison queue once it has been delivered MaxDequeueCount times.
//
// Set the fields before Run; a QueueListener runs once.
type QueueListener struct {
	Queue *workqueue.Queue
	// Function is the function folder's name, Binding the queueTrigger
	// binding's name, and Target the handler's base URL
	// (http://127.0.0.1:<port>).
	Function, Binding, Target string
	// Options are the host.json settings (QueueOptions). Zero fields that
	// cannot be zero get the host's defaults.
	Options ListenerOptions
	Log     zerolog.Logger
	// Client posts the invocations; nil means a client without a timeout
	// (the host's is functionTimeout plus a minute).
	Client *http.Client

	once   sync.Once
	dead   context.Context // done on Kill
	kill   context.CancelFunc
	killed chan struct{}
}

func (l *QueueListener) init() {
	l.once.Do(func() {
		l.dead, l.kill = context.WithCancel(context.Background())
		l.killed = make(chan struct{})
	})
}

// Kill stops the listener at once, as a host that dies: in-flight
// invocations are cut off and their messages neither deleted nor released,
// so they come back when their lease runs out. Run then returns without
// waiting for them.
func (l *QueueListener) Kill() {
	l.init()
	select {
	case <-l.killed:
	default:
		close(l.killed)
	}
	l.kill()
}

// Run polls until ctx is done and then drains: it receives no more and
// waits for in-flight deliveries to finish and be settled. It returns nil
// then, and after Kill; an error only for a listener that cannot run.
func (l *QueueListener) Run(ctx context.Context) error {
	l.init()
	if l.Queue == nil || l.Function == "" || l.Binding == "" || l.Target == "" {
		return errors.New("queue listener: Queue, Function, Binding and Target are required")
	}
	o := l.options()
	log := l.Log.With().Str("function", l.Function).Str("queue", l.Queue.Name()).Logger()

	var wg sync.WaitGroup
	// Every delivery reports here when done; there are never more than
	// BatchSize+NewBatchThreshold of them, so sends never block.
	done := make(chan struct{}, o.BatchSize+o.NewBatchThreshold+1)
	inFlight := 0
	var poll backoff
	poll.reset(o.MaxPollingInterval)

	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				return true
			case <-done:
				inFlight--
			case <-ctx.Done():
				return false
			case <-l.killed:
				return false
			}
		}
	}
loop:
	for ctx.Err() == nil && l.dead.Err() == nil {
		msgs, err := l.Queue.Receive(ctx, o.BatchSize, o.Lease)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Warn().Err(err).Msg("queue listener: receive failed; backing off")
			if !wait(poll.next(false)) {
				break
			}
			continue
		}
		if len(msgs) == 0 {
			if !wait(poll.next(false)) {
				break
			}
			continue
		}
		for _, m := range msgs {
			inFlight++
			wg.Add(1)
			go func() {
				defer func() { done <- struct{}{}; wg.Done() }()
				l.process(m, o, log)
			}()
		}
		for inFlight > o.NewBatchThreshold {
			select {
			case <-done:
				inFlight--
			case <-ctx.Done():
				break loop
			case <-l.killed:
				break loop
			}
		}
		if !wait(poll.next(true)) {
			break
		}
	}
	if l.dead.Err() != nil {
		return nil // killed: abandon what is in flight
	}
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-l.killed:
	}
	return nil
}

func (l *QueueListener) options() ListenerOptions {
	o := l.Options
	if o.BatchSize <= 0 {
		o.BatchSize = defaultBatchSize
	}
	o.BatchSize = min(o.BatchSize, maxBatchSize)
	if o.NewBatchThreshold < 0 {
		o.NewBatchThreshold = o.BatchSize / 2 * runtime.NumCPU()
	}
	if o.MaxDequeueCount <= 0 {
		o.MaxDequeueCount = defaultMaxDequeueCount
	}
	if o.Lease <= 0 {
		o.Lease = hostLease
	}
	o.Lease = max(o.Lease, 2*time.Second) // Storage counts whole seconds
	if o.MaxPollingInterval <= 0 {
		o.MaxPollingInterval = defaultMaxPollingInterval
	}
	o.MaxPollingInterval = max(o.MaxPollingInterval, minPollingInterval)
	o.VisibilityTimeout = max(o.VisibilityTimeout, 0)
	if o.MessageEncoding == "" {
		o.MessageEncoding = "base64"
	}
	return o
}

// process is the host's QueueProcessor for one message.
func (l *QueueListener) process(m workqueue.Message, o ListenerOptions, base zerolog.Logger) {
	id := uuid.NewString()
	_, log := funchost.Begin(context.Background(), base, l.Function, id)
	log = log.With().Str("messageId", m.ID).Int64("dequeueCount", m.DequeueCount).Logger()
	ctx := l.dead

	if m.DequeueCount > o.MaxDequeueCount {
		// Seen more often than allowed (an instance died holding it):
		// poisoned without another delivery.
		l.poison(ctx, m, log, "dequeued more than maxDequeueCount times")
		return
	}
	text := m.Raw()
	if o.MessageEncoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			// The extension cannot decode it, ever.
			l.poison(ctx, m, log, "not base64 (host.json messageEncoding is base64)")
			return
		}
		text = string(b)
	}

	// Renew the lease at half its length while the invocation runs; the
	// pop receipt changes with every renewal.
	var mu sync.Mutex
	cur := m
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(o.Lease / 2)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				mu.Lock()
				nm, err := l.Queue.Release(ctx, cur, o.Lease)
				if err == nil {
					cur = nm
				} else if ctx.Err() == nil {
					log.Warn().Err(err).Msg("queue listener: renewing the lease failed")
				}
				mu.Unlock()
			}
		}
	}()
	ok := l.deliver(ctx, id, m, text, log)
	close(stop)
	<-renewed
	if ctx.Err() != nil {
		return // killed: the lease runs out by itself
	}
	mu.Lock()
	m = cur
	mu.Unlock()

	switch {
	case ok:
		if err := l.Queue.Delete(ctx, m); err != nil && ctx.Err() == nil {
			log.Error().Err(err).Msg("queue listener: delete after success failed; the message will be delivered again")
		}
	case m.DequeueCount >= o.MaxDequeueCount:
		l.poison(ctx, m, log, "failed maxDequeueCount times")
	default:
		if _, err := l.Queue.Release(ctx, m, o.VisibilityTimeout); err != nil && ctx.Err() == nil {
			log.Error().Err(err).Msg("queue listener: release after failure failed; the message comes back when its lease ends")
		}
	}
}

func (l *QueueListener) poison(ctx context.Context, m workqueue.Message, log zerolog.Logger, why string) {
	if err := l.Queue.MoveToPoison(ctx, m); err != nil {
		if ctx.Err() == nil {
			log.Error().Err(err).Msg("queue listener: moving to the poison queue failed")
		}
		return
	}
	log.Warn().Str("reason", why).Msg("queue listener: moved the message to the poison queue")
}

// deliver posts one invocation and reports whether the host would count it
// a success: a 2xx with a JSON content type and a JSON object body.
func (l *QueueListener) deliver(ctx context.Context, invocationID string, m workqueue.Message, text string, log zerolog.Logger) bool {
	body, err := envelope(l.Function, l.Binding, m, text, time.Now())
	if err != nil {
		log.Error().Err(err).Msg("queue listener: build envelope")
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(l.Target, "/")+"/"+l.Function, bytes.NewReader(body))
	if err != nil {
		log.Error().Err(err).Msg("queue listener: build request")
		return false
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", invocationID)
	req.Header.Set("X-Azure-Functions-HostVersion", hostVersion)
	req.Header.Set("User-Agent", "Azure-Functions-Host/"+hostVersion)
	client := l.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn().Err(err).Msg("queue listener: invocation failed")
		}
		return false
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		log.Warn().Err(err).Msg("queue listener: read reply")
		return false
	}
	if why := replyFailure(resp, reply); why != "" {
		log.Warn().Int("status", resp.StatusCode).Str("reply", truncate(string(reply), 512)).Msg("queue listener: invocation failed: " + why)
		return false
	}
	return true
}

// replyFailure says why the host would fail the invocation, or "".
func replyFailure(resp *http.Response, body []byte) string {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "status " + strconv.Itoa(resp.StatusCode)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" && mt != "text/json" {
		return "Content-Type " + strconv.Quote(resp.Header.Get("Content-Type")) + " is not JSON"
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || string(t) == "null" {
		return "empty or null body (the host would wait until functionTimeout and then restart the handler)"
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return "body is not a JSON object"
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// envelope builds the invocation body as the host does for a queueTrigger
// without dataType: the text and every string metadata value JSON-encoded
// twice, DequeueCount as "N", DateTimeOffsets to the second with "+00:00",
// sys, and the top-level non-array properties of a JSON-object message
// promoted into Metadata, replacing same-named keys case-insensitively.
func envelope(function, binding string, m workqueue.Message, text string, now time.Time) ([]byte, error) {
	meta := map[string]any{
		"DequeueCount":    strconv.FormatInt(m.DequeueCount, 10),
		"ExpirationTime":  offsetTime(m.ExpirationTime),
		"Id":              jsonText(m.ID),
		"InsertionTime":   offsetTime(m.InsertionTime),
		"NextVisibleTime": offsetTime(m.NextVisibleTime),
		"PopReceipt":      jsonText(m.PopReceipt),
		"sys": map[string]string{
			"MethodName": function,
			"UtcNow":     utcNow(now),
			"RandGuid":   uuid.NewString(),
		},
	}
	promote(meta, text)
	env := map[string]any{
		"Data":     map[string]any{binding: jsonText(text)},
		"Metadata": meta,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Newtonsoft leaves <, > and & alone
	if err := enc.Encode(env); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// jsonText is JsonConvert.SerializeObject of a string: its JSON literal,
// which the envelope then encodes once more.
func jsonText(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return strings.TrimRight(buf.String(), "\n")
}

// offsetTime renders a DateTimeOffset as the host's DateTimeOffset.Parse(
// value.ToString()) leaves it: whole seconds, explicit offset.
func offsetTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05-07:00")
}

// utcNow renders a UTC DateTime as Newtonsoft does: up to 7 fractional
// digits, trailing zeros trimmed, Z.
func utcNow(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.9999999Z")
}

// promote is Utility.ApplyBindingData: when text looks like a JSON object,
// each top-level property that is neither an array nor null becomes a
// metadata entry, an object as itself and anything else as its string
// form, JSON-encoded (12 → "\"12\"", true → "\"True\""). An existing key
// that matches case-insensitively keeps its spelling and takes the value.
func promote(meta map[string]any, text string) {
	t := strings.TrimSpace(text)
	if !strings.HasPrefix(t, "{") || !strings.HasSuffix(t, "}") {
		return
	}
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return
	}
	type prop struct {
		name  string
		value any
	}
	var props []prop
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return // not JSON: the host's parse fails and promotes nothing
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return
		}
		var v any
		switch raw[0] {
		case '[', 'n':
			continue
		case '{':
			v = raw
		case '"':
			var s string
			json.Unmarshal(raw, &s)
			v = jsonText(s)
		case 't':
			v = jsonText("True")
		case 'f':
			v = jsonText("False")
		default:
			v = jsonText(string(raw))
		}
		props = append(props, prop{name, v})
	}
	for _, p := range props {
		key := p.name
		for k := range meta {
			if strings.EqualFold(k, p.name) {
				key = k
				break
			}
		}
		meta[key] = p.value
	}
}

// backoff is the host's RandomizedExponentialBackoffStrategy between
// receives: the minimum after a batch, and after an empty or failed
// receive an interval that roughly doubles (±20%) up to the maximum.
type backoff struct {
	max      time.Duration
	current  time.Duration
	exponent int
}

func (b *backoff) reset(max time.Duration) {
	b.max, b.current, b.exponent = max, minPollingInterval, 1
}

func (b *backoff) next(succeeded bool) time.Duration {
	if succeeded {
		b.current, b.exponent = minPollingInterval, 1
		return b.current
	}
	if b.current == b.max {
		return b.current
	}
	f := 0.8 + 0.4*rand.Float64()
	d := minPollingInterval + time.Duration(f*float64(uint64(1)<<(b.exponent-1))*float64(minPollingInterval))
	if d < b.max {
		b.current = d
		b.exponent++
	} else {
		b.current = b.max
	}
	return b.current
}
