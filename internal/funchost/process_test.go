package funchost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestFunctionTimeout(t *testing.T) {
	for _, tt := range []struct {
		host string
		want time.Duration
	}{
		{`{"functionTimeout":"00:10:00"}`, 10 * time.Minute},
		{`{"functionTimeout":"00:05:00"}`, 5 * time.Minute},
		{`{"functionTimeout":"01:00:00"}`, time.Hour},
		{`{"functionTimeout":"1.02:03:04"}`, 26*time.Hour + 3*time.Minute + 4*time.Second},
		{`{"functionTimeout":"00:00:00.5"}`, 500 * time.Millisecond},
		{`{"functionTimeout":"00:00:01.2500001"}`, 1250*time.Millisecond + 100},
		{`{"functionTimeout":"-1"}`, 0}, // unbounded
		{`{"version":"2.0"}`, 5 * time.Minute},
	} {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(tt.host), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := FunctionTimeout(root)
		if err != nil || got != tt.want {
			t.Errorf("%s: timeout %s, err %v; want %s", tt.host, got, err, tt.want)
		}
	}
	for _, bad := range []string{`{"functionTimeout":"ten minutes"}`, `{"functionTimeout":"00:60:00"}`, `{"functionTimeout":"00:00:01.12345678"}`, `{"functionTimeout":"00:00:01."}`, `{"functionTimeout":`} {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := FunctionTimeout(root); err == nil || !strings.HasPrefix(err.Error(), "host.json functionTimeout: ") {
			t.Errorf("%s: err = %v, want one naming host.json functionTimeout", bad, err)
		}
	}
	// No host.json: the Consumption default.
	if got, err := FunctionTimeout(t.TempDir()); err != nil || got != 5*time.Minute {
		t.Errorf("no host.json: timeout %s, err %v", got, err)
	}
	// The repo's own host.json must parse.
	if _, err := FunctionTimeout(filepath.Join("..", "..")); err != nil {
		t.Errorf("host.json: %v", err)
	}
}

func TestAppRoot(t *testing.T) {
	if got := AppRoot(func(string) string { return "" }); got != "." {
		t.Errorf("AppRoot without FUNCTIONS_APP_ROOT_PATH = %q", got)
	}
	if got := AppRoot(func(k string) string { return map[string]string{"FUNCTIONS_APP_ROOT_PATH": "/home/site/wwwroot"}[k] }); got != "/home/site/wwwroot" {
		t.Errorf("AppRoot = %q", got)
	}
}

func TestAddr(t *testing.T) {
	for _, tt := range []struct {
		port, want string
	}{
		{"41235", "127.0.0.1:41235"},
		{"", ""},
		{"0", ""},
		{"65536", ""},
		{"http", ""},
	} {
		got, err := Addr(func(k string) string { return map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": tt.port}[k] })
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("port %q: %q, %v; want %q", tt.port, got, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "FUNCTIONS_CUSTOMHANDLER_PORT") {
			t.Errorf("port %q: error %q does not name the setting", tt.port, err)
		}
	}
}

func TestNewLoggerSplitsByLevel(t *testing.T) {
	var out, errOut strings.Builder
	log := NewLogger(zerolog.InfoLevel, &out, &errOut)
	log.Debug().Msg("hidden")
	log.Info().Msg("info line")
	log.Warn().Msg("warn line")
	log.Error().Msg("error line")
	if s := out.String(); !strings.Contains(s, "info line") || !strings.Contains(s, "warn line") || strings.Contains(s, "error line") || strings.Contains(s, "hidden") {
		t.Errorf("stdout = %q", s)
	}
	if s := errOut.String(); !strings.Contains(s, "error line") || strings.Contains(s, "warn line") || !strings.Contains(s, `"time":`) {
		t.Errorf("stderr = %q", s)
	}
}
