package funchost

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/logtest"
)

// resOutput is Outputs.res as the host reads it.
type resOutput struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

func serveEnvelope(t *testing.T, resBinding string, next http.Handler, body string) (*httptest.ResponseRecorder, *logtest.Buffer) {
	t.Helper()
	log, logs := newLogger()
	rec := httptest.NewRecorder()
	HTTPEnvelope("OnboardTenant", "req", resBinding, log, next).ServeHTTP(rec, hostRequest(http.MethodPost, "/OnboardTenant", body, "inv-http"))
	return rec, logs
}

func decodeRes(t *testing.T, raw json.RawMessage) resOutput {
	t.Helper()
	var res resOutput
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("res %s: %v", raw, err)
	}
	return res
}

func TestHTTPEnvelopeRoundTrip(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/tenants/{tenantId}/onboard", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		zerolog.Ctx(r.Context()).Info().Msg("onboarding")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Multi-Out", "a")
		w.Header().Add("X-Multi-Out", "b")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{
			"tenantId":     r.PathValue("tenantId"),
			"mode":         r.URL.Query().Get("mode"),
			"host":         r.Host,
			"requestURI":   r.RequestURI,
			"multi":        r.Header.Values("X-Multi"),
			"ua":           r.UserAgent(),
			"hasHost":      r.Header.Get("Host") != "",
			"body":         string(b),
			"len":          r.ContentLength,
			"invocationId": InvocationID(r.Context()),
		})
	})
	rec, logs := serveEnvelope(t, "res", mux, readTestdata(t, "http_onboard.json"))
	body := assertEnvelopeOK(t, rec, nil, nil)

	var outputs map[string]json.RawMessage
	json.Unmarshal(body["Outputs"], &outputs)
	res := decodeRes(t, outputs["res"])
	if res.StatusCode != http.StatusCreated {
		t.Errorf("statusCode = %d", res.StatusCode)
	}
	if res.Headers["Content-Type"] != "application/json" || res.Headers["X-Multi-Out"] != "a, b" {
		t.Errorf("headers = %v", res.Headers)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
		t.Fatalf("body %q: %v", res.Body, err)
	}
	want := map[string]any{
		"tenantId": "t-1", "mode": "full", "host": "localhost:7071", "requestURI": "/api/tenants/t-1/onboard?mode=full",
		"multi": []any{"one", "two"}, "ua": "curl/8.5.0", "hasHost": false, "body": `{"plan":"gold"}`, "len": float64(15),
		"invocationId": "inv-http",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("handler saw\n %v\nwant\n %v", got, want)
	}
	if lines := logs.Lines(t); len(lines) != 1 || lines[0]["invocationId"] != "inv-http" || lines[0]["function"] != "OnboardTenant" {
		t.Errorf("log lines = %v", lines)
	}
}

func TestHTTPEnvelopeVariants(t *testing.T) {
	binary := []byte{0, 1, 2, 0xff}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if len(b) == 0 {
			return // no write at all: an implicit 200 with an empty body
		}
		fmt.Fprintf(w, "%s %s %s", r.Method, r.PathValue("id"), hex.EncodeToString(b))
	})
	tests := []struct {
		name       string
		resBinding string
		req        string
		want       resOutput
	}{
		{
			name:       "octet-stream body is base64",
			resBinding: "res",
			req:        `{"Url":"http://localhost:7071/api/blob","Method":"PUT","Headers":{"Content-Type":["application/octet-stream"]},"Body":"` + base64.StdEncoding.EncodeToString(binary) + `"}`,
			want:       resOutput{StatusCode: 200, Body: "PUT  000102ff", Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		},
		{
			name:       "multipart body is base64",
			resBinding: "res",
			req:        `{"Url":"http://localhost:7071/api/up","Method":"POST","Headers":{"content-type":["multipart/form-data; boundary=x"]},"Body":"` + base64.StdEncoding.EncodeToString([]byte("hi")) + `"}`,
			want:       resOutput{StatusCode: 200, Body: "POST  6869", Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		},
		{
			name:       "no body",
			resBinding: "res",
			req:        `{"Url":"http://localhost:7071/api/tenants","Method":"GET","Query":{},"Headers":{},"Params":{},"Identities":[]}`,
			want:       resOutput{StatusCode: 200, Body: "", Headers: map[string]string{}},
		},
		{
			name:       "route params without a mux",
			resBinding: "res",
			req:        `{"Url":"http://localhost:7071/api/t/7","Method":"DELETE","Headers":{"Content-Type":["text/plain"]},"Params":{"id":"7"},"Body":"x"}`,
			want:       resOutput{StatusCode: 200, Body: "DELETE 7 78", Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		},
		{
			name:       "$return binding",
			resBinding: "$return",
			req:        `{"Url":"http://localhost:7071/api/x","Method":"POST","Headers":{},"Body":"y"}`,
			want:       resOutput{StatusCode: 200, Body: "POST  79", Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _ := serveEnvelope(t, tt.resBinding, echo, `{"Data":{"req":`+tt.req+`},"Metadata":{"sys":{"MethodName":"X"}}}`)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var out struct {
				Outputs     map[string]json.RawMessage
				Logs        []string
				ReturnValue json.RawMessage
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			raw := out.Outputs["res"]
			if tt.resBinding == "$return" {
				raw = out.ReturnValue
				if len(out.Outputs) != 0 {
					t.Errorf("Outputs = %v, want empty", out.Outputs)
				}
			}
			if got := decodeRes(t, raw); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("res = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHTTPEnvelopeBadRequests(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		body       string
		wantStatus int
	}{
		{name: "GET", method: http.MethodGet, wantStatus: http.StatusMethodNotAllowed},
		{name: "not JSON", method: http.MethodPost, body: "{", wantStatus: http.StatusBadRequest},
		{name: "missing req", method: http.MethodPost, body: `{"Data":{"request":{}}}`, wantStatus: http.StatusBadRequest},
		{name: "req is a string", method: http.MethodPost, body: `{"Data":{"req":"\"GET /\""}}`, wantStatus: http.StatusBadRequest},
		{name: "bad Url", method: http.MethodPost, body: `{"Data":{"req":{"Url":"http://[::1","Method":"GET"}}}`, wantStatus: http.StatusBadRequest},
		{name: "bad Method", method: http.MethodPost, body: `{"Data":{"req":{"Url":"http://x/","Method":"GE T"}}}`, wantStatus: http.StatusBadRequest},
		{name: "bad base64", method: http.MethodPost, body: `{"Data":{"req":{"Url":"http://x/","Method":"PUT","Headers":{"Content-Type":["application/octet-stream"]},"Body":"!!"}}}`, wantStatus: http.StatusBadRequest},
		{name: "over 1 MiB", method: http.MethodPost, body: `{"Data":{"req":{"Body":"` + strings.Repeat("x", maxBody) + `"}}}`, wantStatus: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })
			log, logs := newLogger()
			rec := httptest.NewRecorder()
			HTTPEnvelope("OnboardTenant", "req", "res", log, next).ServeHTTP(rec, hostRequest(tt.method, "/OnboardTenant", tt.body, "inv-bad"))
			if called {
				t.Error("next was called")
			}
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (%s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if code, msg := errorBody(t, rec); code == "" || msg == "" {
				t.Errorf("error = %q/%q", code, msg)
			}
			if lines := logs.Lines(t); len(lines) != 1 || lines[0]["level"] != "error" {
				t.Errorf("log lines = %v", lines)
			}
		})
	}
}

func TestHTTPEnvelopePanic(t *testing.T) {
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	rec, logs := serveEnvelope(t, "res", next, readTestdata(t, "http_onboard.json"))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d", rec.Code)
	}
	if code, _ := errorBody(t, rec); code != "internal" {
		t.Errorf("code = %q", code)
	}
	if lines := logs.Lines(t); len(lines) != 1 || lines[0]["panic"] != "boom" {
		t.Errorf("log lines = %v", lines)
	}
}
