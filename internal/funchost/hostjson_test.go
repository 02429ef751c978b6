package funchost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	for _, bad := range []string{`{"functionTimeout":"ten minutes"}`, `{"functionTimeout":"00:60:00"}`, `{"functionTimeout":`} {
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
