// Package funchost is the only code that knows it runs as an Azure Functions
// custom handler. It turns the host's JSON envelope and headers into plain Go
// values, a context carrying the invocation id and a zerolog logger, so the
// rest of the application speaks net/http and runs unchanged outside Azure.
// It also reads what the host gives the process at start: the port to listen
// on, the app root and host.json's functionTimeout. Its subpackage local
// stands in for the host in development mode.
//
// The host is unforgiving about replies: a non-2xx status fails the invocation
// and drops its Logs, a reply without Content-Type application/json fails it,
// and an empty or null body leaves it hanging until functionTimeout, when the
// host kills the whole process. Every handler here therefore answers with a
// JSON object, whatever goes wrong.
package funchost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/rs/zerolog"
)

// maxBody bounds what one invocation may make us buffer. Envelopes are a few
// kilobytes; anything near the limit is a bug or abuse, not a payload.
const maxBody = 1 << 20

// InvokeRequest is the body of a non-forwarded invocation. Values stay raw
// because their encoding depends on the binding: objects for timers and HTTP
// requests, doubly encoded strings ("\"abc\"") for most other things.
type InvokeRequest struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// InvokeResponse is the reply to a non-forwarded invocation. Output keys must
// match function.json binding names exactly; the host compares them
// case-sensitively.
type InvokeResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// MarshalJSON renders nil Outputs and Logs as {} and [], so that a zero
// response is still the well-formed object the host expects rather than a
// shape that depends on its null handling.
func (r InvokeResponse) MarshalJSON() ([]byte, error) {
	type plain InvokeResponse
	p := plain(r)
	if p.Outputs == nil {
		p.Outputs = map[string]any{}
	}
	if p.Logs == nil {
		p.Logs = []string{}
	}
	return json.Marshal(p)
}

// WriteJSON answers status with v as JSON. It is the one writer of our
// JSON answers, the onboarding API's included: v is marshalled before
// anything is written, so an unmarshallable value (a channel, NaN) becomes
// a clean 500 instead of a 200 with a truncated body. The JSON is plain:
// json.Marshal writes & < > as \u0026 \u003c \u003e for HTML pages, which
// none of our answers is, and a consentUrl copied from a terminal was then
// a broken link.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, internalError
	}
	writeBody(w, status, body)
}

var internalError = []byte(`{"error":{"code":"internal","message":"internal error"}}`)

func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// ErrorBody is the JSON error body every handler of ours answers with,
// so that the host, operators and API clients all see one shape:
// {"error":{"code":"…","message":"…"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is an ErrorBody's error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError answers status with an ErrorBody.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, ErrorBody{ErrorDetail{Code: code, Message: message}})
}

// marshal is json.Marshal without HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// writeJSON answers the host 200 with v, or a clean 500 when v does not
// marshal, which is logged.
func writeJSON(w http.ResponseWriter, log *zerolog.Logger, v any) {
	body, err := marshal(v)
	if err != nil {
		log.Error().Err(err).Msg("encode response")
		writeBody(w, http.StatusInternalServerError, internalError)
		return
	}
	writeBody(w, http.StatusOK, body)
}

// reject answers a request we will not run. It logs at error level because
// in envelope mode the host keeps only our stderr for a failed invocation.
func reject(w http.ResponseWriter, log *zerolog.Logger, status int, code, message string) {
	log.Error().Int("status", status).Str("code", code).Msg(message)
	WriteError(w, status, code, message)
}

// readEnvelope accepts the host's POST loosely: the host sends
// "application/json; charset=utf-8" and chunked bodies, so neither the content
// type nor the length is checked, only the size and the JSON.
func readEnvelope(w http.ResponseWriter, r *http.Request, log *zerolog.Logger) (InvokeRequest, bool) {
	var env InvokeRequest
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reject(w, log, http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" not allowed, use POST")
		return env, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			reject(w, log, http.StatusRequestEntityTooLarge, "too_large", "envelope exceeds 1 MiB")
			return env, false
		}
		reject(w, log, http.StatusBadRequest, "bad_request", "read envelope: "+err.Error())
		return env, false
	}
	if err := json.Unmarshal(body, &env); err != nil {
		reject(w, log, http.StatusBadRequest, "bad_request", "decode envelope: "+err.Error())
		return env, false
	}
	return env, true
}

// readBinding reads the envelope and decodes its trigger binding into v,
// answering the host itself (and reporting false) when either is malformed.
func readBinding(w http.ResponseWriter, r *http.Request, log *zerolog.Logger, binding string, v any) bool {
	env, ok := readEnvelope(w, r, log)
	if !ok {
		return false
	}
	if err := decodeBinding(env.Data, binding, v); err != nil {
		reject(w, log, http.StatusBadRequest, "bad_request", err.Error())
		return false
	}
	return true
}

// decodeBinding insists on a JSON object because json.Unmarshal would happily
// turn null into a zero value, and a zero TimerInfo looks like a valid tick.
func decodeBinding(data map[string]json.RawMessage, name string, v any) error {
	raw, ok := data[name]
	if !ok {
		return fmt.Errorf("missing Data.%s", name)
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("binding %s: not a JSON object", name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("binding %s: %w", name, err)
	}
	return nil
}
