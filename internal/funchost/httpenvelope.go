package funchost

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/rs/zerolog"
)

// httpRequestData is Data.req in envelope mode. Query is not read: Url
// already carries the query string.
type httpRequestData struct {
	URL     string `json:"Url"`
	Method  string
	Headers map[string][]string
	Params  map[string]any
	Body    *string // absent when the original request had no Content-Length
}

// httpResponseData is Outputs.res. The host wants string header values and
// writes a string body verbatim.
type httpResponseData struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

// HTTPEnvelope serves an HTTP function the host does not forward (any binding
// beyond one http in and one http out disables forwarding): it rebuilds the
// original request from Data[reqBinding], runs next on it and returns the
// recorded response as Outputs[resBinding], or as ReturnValue for "$return".
// A panic in next fails the invocation; the host then answers the caller 500.
//
// Response bodies travel as JSON strings, so they must be UTF-8 text; binary
// bodies are not supported in this mode.
func HTTPEnvelope(function, reqBinding, resBinding string, log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, l := begin(r, function, log)
		sw := &statusWriter{ResponseWriter: w}
		defer recoverInvocation(sw, l)

		var in httpRequestData
		if !readBinding(sw, r, l, reqBinding, &in) {
			return
		}
		req, err := in.request(ctx)
		if err != nil {
			reject(sw, l, http.StatusBadRequest, "bad_request", fmt.Sprintf("binding %s: %v", reqBinding, err))
			return
		}
		rec := &recorder{header: http.Header{}}
		next.ServeHTTP(rec, req)

		out := InvokeResponse{Outputs: map[string]any{}}
		if resBinding == "$return" {
			out.ReturnValue = rec.response()
		} else {
			out.Outputs[resBinding] = rec.response()
		}
		writeJSON(sw, l, out)
	})
}

func (d httpRequestData) request(ctx context.Context) (*http.Request, error) {
	h := make(http.Header, len(d.Headers))
	for k, vs := range d.Headers {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Del("Host") // net/http keeps it in Request.Host, taken from Url below
	body, err := d.body(h.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, d.Method, d.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = h
	req.RequestURI = req.URL.RequestURI()
	for k, v := range d.Params {
		req.SetPathValue(k, fmt.Sprint(v))
	}
	return req, nil
}

// body undoes the host's encoding: binary and multipart bodies arrive base64,
// everything else as the raw text.
func (d httpRequestData) body(contentType string) ([]byte, error) {
	if d.Body == nil {
		return nil, nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/") {
		b, err := base64.StdEncoding.DecodeString(*d.Body)
		if err != nil {
			return nil, fmt.Errorf("base64 body: %w", err)
		}
		return b, nil
	}
	return []byte(*d.Body), nil
}

// recorder is the few lines of httptest.ResponseRecorder we need, without
// linking the test server into the binary.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// response sniffs a missing Content-Type as net/http would, because the host
// would otherwise label the body text/plain and the two modes would disagree.
func (r *recorder) response() httpResponseData {
	res := httpResponseData{StatusCode: r.status, Body: r.body.String(), Headers: make(map[string]string, len(r.header)+1)}
	if res.StatusCode == 0 {
		res.StatusCode = http.StatusOK
	}
	for k, vs := range r.header {
		res.Headers[k] = strings.Join(vs, ", ")
	}
	if r.header.Get("Content-Type") == "" && r.body.Len() > 0 {
		res.Headers["Content-Type"] = http.DetectContentType(r.body.Bytes())
	}
	return res
}
