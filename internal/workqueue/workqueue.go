// Package workqueue is TenantSweep's work queue on Azure Storage queues
// (azqueue): the planner enqueues, operators count and inspect the poison
// queue, and local mode's stand-in for the host's queue listener receives,
// renews, deletes, releases and poisons. Message text is stored base64, as
// the queueTrigger binding reads it by default (host.json messageEncoding
// "base64").
package workqueue

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/storageconn"
)

// ErrUnavailable marks a failure worth retrying: no answer within the
// call's deadline, a network error, or a 5xx, 408 or 429 after the SDK's own
// retries. An error caused by the caller's own context is returned as is.
var ErrUnavailable = errors.New("work queue unavailable")

// DefaultTimeout bounds each queue call when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// MaxTextBytes is the most text Enqueue accepts: Storage's 64 KiB message
// limit applies to the base64 form, which is 4/3 of the text.
const MaxTextBytes = 64 * 1024 / 4 * 3

// maxPerCall is Storage's limit on messages per receive or peek.
const maxPerCall = 32

// Options are what Open needs besides the settings.
type Options struct {
	// Credential authenticates to config.Queue.ServiceURL (the app's
	// managed identity); unused with a connection string.
	Credential azcore.TokenCredential
	// ClientOptions tune the azqueue pipeline (tests add policies, set
	// retries or a transport). Nil takes the SDK defaults.
	ClientOptions *azqueue.ClientOptions
	// Timeout bounds each call; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Queue is the work queue and its poison queue. It is safe for concurrent
// use.
type Queue struct {
	name    string
	work    *azqueue.QueueClient
	poison  *azqueue.QueueClient
	timeout time.Duration
}

// Message is a received (or peeked) message. PopReceipt and NextVisibleTime
// are empty for a peeked one.
type Message struct {
	ID, PopReceipt                                 string
	DequeueCount                                   int64
	InsertionTime, ExpirationTime, NextVisibleTime time.Time
	// Text is the message as enqueued: the base64 the queue holds,
	// decoded. A message someone stored without base64 keeps its stored
	// text here (Raw tells which).
	Text string
	// raw is the stored text, what renewing and poisoning must send back
	// unchanged.
	raw string
}

// Raw is the text as stored in the queue (base64 for what Enqueue wrote).
func (m Message) Raw() string { return m.raw }

// stored is what to write back for m: its stored text, or for a Message
// built by hand rather than received, the base64 of its Text.
func (m Message) stored() string {
	if m.raw == "" && m.Text != "" {
		return base64.StdEncoding.EncodeToString([]byte(m.Text))
	}
	return m.raw
}

// Open connects to the work queue and creates it and its poison queue
// (cfg.Name + "-poison") when missing. Its errors are not prefixed: the
// caller says what was being opened.
func Open(ctx context.Context, cfg config.Queue, opts Options) (*Queue, error) {
	if cfg.Name == "" {
		return nil, errors.New("a queue name is required")
	}
	svc, err := serviceClient(cfg, opts)
	if err != nil {
		return nil, err
	}
	q := &Queue{
		name:    cfg.Name,
		work:    svc.NewQueueClient(cfg.Name),
		poison:  svc.NewQueueClient(cfg.Name + "-poison"),
		timeout: cmp.Or(opts.Timeout, DefaultTimeout),
	}
	for _, c := range []struct {
		name string
		qc   *azqueue.QueueClient
	}{{cfg.Name, q.work}, {cfg.Name + "-poison", q.poison}} {
		err := q.call(ctx, func(ctx context.Context) error {
			// Look before creating: in Azure the app's identity may read
			// the poison queue but not create queues (infra grants the
			// least it needs), and Create would fail there even for a
			// queue that exists.
			_, err := c.qc.GetProperties(ctx, nil)
			if !queueerror.HasCode(err, queueerror.QueueNotFound) {
				return err
			}
			_, err = c.qc.Create(ctx, nil)
			// Create answers 204 for an existing queue without metadata
			// and 409 QueueAlreadyExists for one with other metadata.
			if queueerror.HasCode(err, queueerror.QueueAlreadyExists) {
				return nil
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("create queue %s: %w", c.name, err)
		}
	}
	return q, nil
}

// CheckConnectionString reports whether cs is a connection string the queue
// can use, without connecting, so that a malformed one stops the start. Its
// errors never echo a value.
func CheckConnectionString(cs string) error {
	c, err := storageconn.Parse(cs)
	if err != nil {
		return err
	}
	if c.QueueEndpoint == "" {
		return errors.New("connection string has neither QueueEndpoint nor AccountName")
	}
	return nil
}

func serviceClient(cfg config.Queue, opts Options) (*azqueue.ServiceClient, error) {
	switch {
	case cfg.ServiceURL != "" && cfg.Connection != "":
		return nil, errors.New("set either a connection string or a queue service URL, not both")
	case cfg.ServiceURL != "":
		if opts.Credential == nil {
			return nil, errors.New("a credential is required with a queue service URL")
		}
		return azqueue.NewServiceClient(strings.TrimRight(cfg.ServiceURL, "/"), opts.Credential, opts.ClientOptions)
	case cfg.Connection != "":
		if err := CheckConnectionString(cfg.Connection); err != nil {
			return nil, err
		}
		c, _ := storageconn.Parse(cfg.Connection)
		if c.SAS != "" {
			return azqueue.NewServiceClientWithNoCredential(c.QueueEndpoint+"/?"+c.SAS, opts.ClientOptions)
		}
		cred, err := azqueue.NewSharedKeyCredential(c.Account, c.Key)
		if err != nil {
			// The SDK's message is about base64, never the key itself.
			return nil, fmt.Errorf("connection string: AccountKey: %w", err)
		}
		return azqueue.NewServiceClientWithSharedKeyCredential(c.QueueEndpoint+"/", cred, opts.ClientOptions)
	default:
		return nil, errors.New("neither a connection string nor a queue service URL is set")
	}
}

// Name is the work queue's name.
func (q *Queue) Name() string { return q.name }

// Enqueue adds text to the work queue, base64-encoded as the queue trigger
// expects. Messages live for Storage's default of 7 days.
func (q *Queue) Enqueue(ctx context.Context, text string) error {
	return q.EnqueueAfter(ctx, text, 0)
}

// MaxDelay is the longest a message can be kept invisible when enqueued:
// Storage's visibility timeout of Put Message is at most 7 days, and must
// be less than the message's time to live (7 days by default).
const MaxDelay = 7*24*time.Hour - time.Hour

// EnqueueAfter is Enqueue with the message invisible for delay (to the
// nearest whole second, Storage's unit; at most MaxDelay): no listener
// receives it before then.
func (q *Queue) EnqueueAfter(ctx context.Context, text string, delay time.Duration) error {
	if len(text) > MaxTextBytes {
		return fmt.Errorf("enqueue to %s: message of %d bytes exceeds %d", q.name, len(text), MaxTextBytes)
	}
	var opts *azqueue.EnqueueMessageOptions
	if secs := int32((min(delay, MaxDelay) + time.Second/2) / time.Second); secs > 0 {
		opts = &azqueue.EnqueueMessageOptions{VisibilityTimeout: to.Ptr(secs)}
	}
	err := q.call(ctx, func(ctx context.Context) error {
		_, err := q.work.EnqueueMessage(ctx, base64.StdEncoding.EncodeToString([]byte(text)), opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("enqueue to %s: %w", q.name, err)
	}
	return nil
}

// Pending is Storage's approximate count of messages in the work queue,
// including those invisible while a listener holds them.
func (q *Queue) Pending(ctx context.Context) (int, error) {
	var n int64
	err := q.call(ctx, func(ctx context.Context) error {
		resp, err := q.work.GetProperties(ctx, nil)
		if err == nil && resp.ApproximateMessagesCount != nil {
			n = *resp.ApproximateMessagesCount
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("count messages in %s: %w", q.name, err)
	}
	return int(n), nil
}

// Poisoned peeks at up to max (at most 32, Storage's limit) messages of the
// poison queue, oldest first, without changing them.
func (q *Queue) Poisoned(ctx context.Context, max int) ([]Message, error) {
	if max <= 0 {
		return nil, nil
	}
	var msgs []Message
	err := q.call(ctx, func(ctx context.Context) error {
		resp, err := q.poison.PeekMessages(ctx, &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(min(max, maxPerCall)))})
		if err != nil {
			return err
		}
		msgs = msgs[:0]
		for _, m := range resp.Messages {
			if m == nil {
				continue
			}
			msgs = append(msgs, message(m.MessageID, nil, m.DequeueCount, m.InsertionTime, m.ExpirationTime, nil, m.MessageText))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("peek %s-poison: %w", q.name, err)
	}
	return msgs, nil
}

// Receive takes up to n (at most 32) visible messages and hides them for
// visibility, the listener's lease on them.
func (q *Queue) Receive(ctx context.Context, n int, visibility time.Duration) ([]Message, error) {
	var msgs []Message
	err := q.call(ctx, func(ctx context.Context) error {
		resp, err := q.work.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{
			NumberOfMessages:  to.Ptr(int32(min(max(n, 1), maxPerCall))),
			VisibilityTimeout: to.Ptr(seconds(visibility, 1)),
		})
		if err != nil {
			return err
		}
		msgs = msgs[:0]
		for _, m := range resp.Messages {
			if m == nil {
				continue
			}
			msgs = append(msgs, message(m.MessageID, m.PopReceipt, m.DequeueCount, m.InsertionTime, m.ExpirationTime, m.TimeNextVisible, m.MessageText))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q.name, err)
	}
	return msgs, nil
}

// Delete removes a received message, which must still be leased under m's
// pop receipt.
func (q *Queue) Delete(ctx context.Context, m Message) error {
	err := q.call(ctx, func(ctx context.Context) error {
		_, err := q.work.DeleteMessage(ctx, m.ID, m.PopReceipt, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete message %s from %s: %w", m.ID, q.name, err)
	}
	return nil
}

// Release sets a received message visible again after visibility (0: at
// once), leaving its text unchanged; with a visibility longer than what is
// left, it renews the lease. The returned message carries the new pop
// receipt, the only one that works from now on.
func (q *Queue) Release(ctx context.Context, m Message, visibility time.Duration) (Message, error) {
	err := q.call(ctx, func(ctx context.Context) error {
		resp, err := q.work.UpdateMessage(ctx, m.ID, m.PopReceipt, m.stored(), &azqueue.UpdateMessageOptions{VisibilityTimeout: to.Ptr(seconds(visibility, 0))})
		if err != nil {
			return err
		}
		if resp.PopReceipt != nil {
			m.PopReceipt = *resp.PopReceipt
		}
		if resp.TimeNextVisible != nil {
			m.NextVisibleTime = *resp.TimeNextVisible
		}
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("update message %s in %s: %w", m.ID, q.name, err)
	}
	return m, nil
}

// MoveToPoison copies a received message's stored text to the poison queue
// and then deletes it from the work queue, as the host does past
// maxDequeueCount. A crash between the two leaves a copy in both: the poison
// queue may hold a message that was also processed.
func (q *Queue) MoveToPoison(ctx context.Context, m Message) error {
	err := q.call(ctx, func(ctx context.Context) error {
		_, err := q.poison.EnqueueMessage(ctx, m.stored(), nil)
		if queueerror.HasCode(err, queueerror.QueueNotFound) {
			// Dropped while we ran: the host creates it on demand too.
			if _, cerr := q.poison.Create(ctx, nil); cerr != nil && !queueerror.HasCode(cerr, queueerror.QueueAlreadyExists) {
				return cerr
			}
			_, err = q.poison.EnqueueMessage(ctx, m.stored(), nil)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("copy message %s to %s-poison: %w", m.ID, q.name, err)
	}
	return q.Delete(ctx, m)
}

// call runs one queue request under its own deadline, so that storage that
// accepts connections and never answers cannot hold a caller forever.
func (q *Queue) call(ctx context.Context, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	err := fn(cctx)
	if err == nil || ctx.Err() != nil {
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode < 500 && re.StatusCode != http.StatusRequestTimeout && re.StatusCode != http.StatusTooManyRequests {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %s: %w", q.timeout, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// seconds rounds d up to whole seconds, Storage's unit, and raises it to
// least.
func seconds(d time.Duration, least int32) int32 {
	s := int32((d + time.Second - 1) / time.Second)
	return max(s, least)
}

func message(id, pop *string, dequeues *int64, inserted, expires, visible *time.Time, text *string) Message {
	m := Message{
		ID:              deref(id),
		PopReceipt:      deref(pop),
		DequeueCount:    deref(dequeues),
		InsertionTime:   deref(inserted),
		ExpirationTime:  deref(expires),
		NextVisibleTime: deref(visible),
		raw:             deref(text),
	}
	m.Text = m.raw
	if b, err := base64.StdEncoding.DecodeString(m.raw); err == nil {
		m.Text = string(b)
	}
	return m
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
