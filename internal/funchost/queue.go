package funchost

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// QueueMessage is one queue-trigger message. Body is the message text as
// enqueued (after the queue's base64, which the host undoes).
//
// Only Body can be trusted. The host copies each top-level property of a
// JSON-object message into Metadata, overwriting a same-named key
// case-insensitively, so a message carrying "Id", "DequeueCount" or
// "PopReceipt" replaces what the queue said. The other fields are for logs
// and for telling a redelivery (DequeueCount > 1); they are zero when what
// arrived does not read as one, and never fail the invocation. The host, not
// the handler, deletes or releases the message, so the handler needs none of
// them to do its work.
type QueueMessage struct {
	ID, PopReceipt                                 string
	DequeueCount                                   int64
	InsertionTime, ExpirationTime, NextVisibleTime time.Time
	Body                                           []byte
}

// QueueFunc runs one queue invocation. Like a TimerFunc it gets no deadline
// from the host and must bound its own work.
type QueueFunc func(ctx context.Context, msg QueueMessage) (Result, error)

// Queue serves POST /<function> for a queueTrigger whose function.json
// binding is named binding. An error or panic from fn becomes a 500, which
// fails the invocation: the host makes the message visible again after
// host.json's visibilityTimeout and moves it to <queue>-poison after
// maxDequeueCount deliveries. Success is a 200 InvokeResponse, after which
// the host deletes the message.
//
// Data.<binding> is read leniently, since its shape depends on the binding
// and has changed across hosts:
//   - a JSON string holding a JSON string literal is the host's double
//     encoding of the text (no dataType): decoded twice;
//   - a JSON string holding base64 is dataType "binary": decoded once and
//     un-base64ed;
//   - any other JSON string is the text itself (the docs' sample shape);
//   - a JSON object or array is taken as the text verbatim.
//
// The first rule means a single-encoded message that is itself a JSON string
// literal would lose its quotes, and the second that a single-encoded plain
// text that happens to be base64 would be decoded: neither shape comes from
// the host, and JSON-object messages are never ambiguous.
func Queue(function, binding string, log zerolog.Logger, fn QueueFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, l := begin(r, function, log)
		sw := &statusWriter{ResponseWriter: w}
		defer recoverInvocation(sw, l)

		env, ok := readEnvelope(sw, r, l)
		if !ok {
			return
		}
		body, err := queueBody(env.Data, binding)
		if err != nil {
			reject(sw, l, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		msg := queueMetadata(env.Metadata)
		msg.Body = body
		ml := l.With().Str("messageId", msg.ID).Int64("dequeueCount", msg.DequeueCount).Logger()
		ctx = ml.WithContext(ctx)

		res, err := fn(ctx, msg)
		if err != nil {
			ml.Error().Err(err).Msg("invocation failed; the host will redeliver the message")
			WriteError(sw, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		writeJSON(sw, &ml, InvokeResponse{Outputs: map[string]any{}, Logs: res.Logs, ReturnValue: res.ReturnValue})
	})
}

func queueBody(data map[string]json.RawMessage, binding string) ([]byte, error) {
	raw, ok := data[binding]
	if !ok {
		return nil, fmt.Errorf("missing Data.%s", binding)
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, fmt.Errorf("binding %s: no message", binding)
	case raw[0] == '{' || raw[0] == '[':
		return raw, nil
	case raw[0] != '"':
		return nil, fmt.Errorf("binding %s: not a JSON string", binding)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("binding %s: %w", binding, err)
	}
	if inner, ok := unquote(s); ok {
		return []byte(inner), nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return []byte(s), nil
}

// unquote decodes s when it is exactly one JSON string literal.
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	var inner string
	if err := json.Unmarshal([]byte(s), &inner); err != nil {
		return "", false
	}
	return inner, true
}

// queueMetadata reads the queue's binding data, which the host sends
// double-encoded ("Id":"\"…\"", "DequeueCount":"1") and the docs show plain.
func queueMetadata(meta map[string]json.RawMessage) QueueMessage {
	get := func(key string) json.RawMessage {
		if v, ok := meta[key]; ok {
			return v
		}
		for k, v := range meta {
			if strings.EqualFold(k, key) {
				return v
			}
		}
		return nil
	}
	m := QueueMessage{
		ID:         metaString(get("Id")),
		PopReceipt: metaString(get("PopReceipt")),
	}
	if n, err := strconv.ParseInt(metaString(get("DequeueCount")), 10, 64); err == nil && n >= 0 {
		m.DequeueCount = n
	}
	m.InsertionTime = metaTime(get("InsertionTime"))
	m.ExpirationTime = metaTime(get("ExpirationTime"))
	m.NextVisibleTime = metaTime(get("NextVisibleTime"))
	return m
}

// metaString is a metadata value as text: a string decoded once or twice, a
// number as written; "" for anything else (an object a message property put
// there, null).
func metaString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	if raw[0] != '"' {
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String()
		}
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	if inner, ok := unquote(s); ok {
		return inner
	}
	return s
}

// metaTime parses the host's DateTimeOffset rendering
// ("2024-11-30T14:45:00+00:00"), and without an offset as UTC; zero when it
// does not parse.
func metaTime(raw json.RawMessage) time.Time {
	s := metaString(raw)
	if s == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05.9999999", s, time.UTC); err == nil {
		return t
	}
	return time.Time{}
}

// ParseTimeSpan parses a .NET TimeSpan as host.json writes it
// ("00:00:30", "1.00:00:00"); "-1" is 0. Local mode reads the
// extensions.queues durations with it.
func ParseTimeSpan(s string) (time.Duration, error) { return parseTimeSpan(s) }
