package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseNCRONTAB(t *testing.T) {
	from := time.Date(2026, 11, 26, 10, 7, 30, 0, time.UTC)
	tests := []struct {
		expr string
		next time.Time
		ok   bool
	}{
		{"0 */15 * * * *", time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC), true},
		{"*/10 * * * * *", time.Date(2026, 11, 26, 10, 7, 40, 0, time.UTC), true},
		{"0 30 9 * * 1-5", time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC), true},
		{"0 0 0 1 Jan *", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"*/15 * * * *", time.Time{}, false}, // five fields: not NCRONTAB
		{"0 61 * * * *", time.Time{}, false},
		{"every day", time.Time{}, false},
	}
	for _, tt := range tests {
		s, err := ParseNCRONTAB(tt.expr)
		if (err == nil) != tt.ok {
			t.Errorf("%q: err = %v, want ok %v", tt.expr, err, tt.ok)
			continue
		}
		if tt.ok && !s.Next(from).Equal(tt.next) {
			t.Errorf("%q: next = %s, want %s", tt.expr, s.Next(from), tt.next)
		}
	}
}

// writeFile writes content to dir/name, creating folders.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTimerSchedule(t *testing.T) {
	settings := map[string]string{"TenantSweepSchedule": "0 0 * * * *"}
	setting := func(k string) string { return settings[k] }
	tests := []struct {
		name, functionJSON string
		want, wantErr      string
	}{
		{name: "literal", functionJSON: `{"bindings":[{"type":"timerTrigger","schedule":"0 */5 * * * *"}]}`, want: "0 */5 * * * *"},
		{name: "setting", functionJSON: `{"bindings":[{"type":"timerTrigger","schedule":"%TenantSweepSchedule%"}]}`, want: "0 0 * * * *"},
		{name: "after another binding", functionJSON: `{"bindings":[{"type":"queue"},{"type":"timerTrigger","schedule":"%TenantSweepSchedule%"}]}`, want: "0 0 * * * *"},
		{name: "unset setting", functionJSON: `{"bindings":[{"type":"timerTrigger","schedule":"%Other%"}]}`, wantErr: "schedule refers to setting Other, which is not set"},
		{name: "no timer", functionJSON: `{"bindings":[{"type":"httpTrigger"}]}`, wantErr: "no timerTrigger binding"},
		{name: "not JSON", functionJSON: `{`, wantErr: "function.json: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, root, "TenantSweep/function.json", tt.functionJSON)
			got, err := TimerSchedule(root, "TenantSweep", setting)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("schedule = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := TimerSchedule(t.TempDir(), "TenantSweep", setting); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing function.json: err = %v", err)
	}
}

func TestReadSettings(t *testing.T) {
	path := writeFile(t, t.TempDir(), "local.settings.json",
		`{"IsEncrypted":false,"Values":{"FROM_FILE":"file","BOTH":"file","EMPTY_IN_ENV":"file","PORT":7071,"FLAG":true}}`)
	env := map[string]string{"BOTH": "env", "EMPTY_IN_ENV": "", "ONLY_ENV": "env"}
	getenv, err := ReadSettings(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"FROM_FILE": "file", "BOTH": "env", "EMPTY_IN_ENV": "file", "ONLY_ENV": "env",
		"PORT": "7071", "FLAG": "true", "NOWHERE": "",
	} {
		if got := getenv(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	if _, err := ReadSettings(filepath.Join(t.TempDir(), "absent.json"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
	bad := writeFile(t, t.TempDir(), "local.settings.json", `{"Values":`)
	if _, err := ReadSettings(bad, nil); err == nil || !strings.Contains(err.Error(), "settings file "+bad) {
		t.Errorf("malformed file: err = %v", err)
	}
}
