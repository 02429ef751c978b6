package funchost

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/logtest"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func newLogger() (zerolog.Logger, *logtest.Buffer) {
	b := &logtest.Buffer{}
	return zerolog.New(b), b
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostRequest builds a request the way the Functions host sends one.
func hostRequest(method, path, body, invocationID string) *http.Request {
	var r io.Reader = strings.NewReader(body)
	req := httptest.NewRequest(method, "http://127.0.0.1:41235"+path, r)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.1037.0.0")
	req.Header.Set("X-Azure-Functions-HostVersion", "4.1037.0.0")
	if invocationID != "" {
		req.Header.Set("X-Azure-Functions-InvocationId", invocationID)
	}
	return req
}

// errorBody decodes {"error":{"code","message"}} and checks the content type.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) (code, message string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	return e.Error.Code, e.Error.Message
}
