package config

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

var minimal = []string{
	"APP_CLIENT_ID", "11111111-2222-4333-8444-555555555555",
	"APP_CLIENT_SECRET", "s3cret",
	"AzureWebJobsStorage", "UseDevelopmentStorage=true",
}

func with(extra ...string) func(string) string {
	return env(append(append([]string{}, minimal...), extra...)...)
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(with(), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c.App.Method != MethodSecret || c.Registry.Connection != "UseDevelopmentStorage=true" ||
		c.Registry.Table != "tenants" || c.Registry.RunsTable != "sweepruns" || c.Cloud.Name != "AzurePublic" ||
		c.Sweep.Concurrency != 64 || c.Sweep.TenantTimeout != time.Minute || c.SecretExpiryWarning != 720*time.Hour ||
		c.Sweep.Schedule != "0 */15 * * * *" || c.Onboard.RedirectURI != "" || c.LocalPort != 7071 {
		t.Fatalf("defaults = %+v", c)
	}
	if c.Sweep.GraphRate != 5000 || c.Sweep.TokenRate != 2000 || c.Tokens.Key != nil || c.Tokens.Previous != nil || c.Tokens.Freshness != 30*time.Minute {
		t.Fatalf("governor and token defaults = %+v %+v", c.Sweep, c.Tokens)
	}
	// The Consumption default of 5 minutes, less 30 s margin.
	if c.Sweep.Budget != 4*time.Minute+30*time.Second {
		t.Fatalf("budget = %s", c.Sweep.Budget)
	}
}

func TestLoadRejects(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	tests := []struct {
		name    string
		getenv  func(string) string
		setting string
	}{
		{"no app id", env("APP_CLIENT_SECRET", "x", "AzureWebJobsStorage", "UseDevelopmentStorage=true"), "APP_CLIENT_ID"},
		{"app id not a guid", env("APP_CLIENT_ID", "contoso", "APP_CLIENT_SECRET", "x", "AzureWebJobsStorage", "x"), "APP_CLIENT_ID"},
		{"home tenant not a guid", with("APP_TENANT_ID", "contoso.onmicrosoft.com"), "APP_TENANT_ID"},
		{"home tenant the consumers tenant", with("APP_TENANT_ID", "9188040d-6c67-4c5b-b112-36a304b66dad"), "APP_TENANT_ID"},
		{"no credential", env("APP_CLIENT_ID", "11111111-2222-4333-8444-555555555555", "AzureWebJobsStorage", "x"), "APP_CLIENT_SECRET"},
		{"two credentials", with("APP_CLIENT_CERTIFICATE_PATH", "/c.pem"), "APP_CLIENT_CERTIFICATE_PATH"},
		{"secret uri on another host", env("APP_CLIENT_ID", "11111111-2222-4333-8444-555555555555", "APP_CLIENT_SECRET_URI", "https://evil.example/secrets/x", "AzureWebJobsStorage", "x"), "APP_CLIENT_SECRET_URI"},
		{"federated id not a guid", env("APP_CLIENT_ID", "11111111-2222-4333-8444-555555555555", "APP_FEDERATED_IDENTITY_CLIENT_ID", "mi", "AzureWebJobsStorage", "x"), "APP_FEDERATED_IDENTITY_CLIENT_ID"},
		{"cert password alone", with("APP_CLIENT_CERTIFICATE_PASSWORD", "p"), "APP_CLIENT_CERTIFICATE_PASSWORD"},
		{"no registry", env("APP_CLIENT_ID", "11111111-2222-4333-8444-555555555555", "APP_CLIENT_SECRET", "x"), "TENANT_REGISTRY_CONNECTION"},
		{"both registries", with("TENANT_REGISTRY_CONNECTION", "x", "TENANT_REGISTRY_ENDPOINT", "https://a.table.core.windows.net"), "TENANT_REGISTRY_ENDPOINT"},
		{"bad table", with("TENANT_REGISTRY_TABLE", "bad-name"), "TENANT_REGISTRY_TABLE"},
		{"same tables", with("SWEEP_RUNS_TABLE", "TENANTS"), "SWEEP_RUNS_TABLE"},
		{"unknown cloud", with("AZURE_CLOUD", "Mars"), "AZURE_CLOUD"},
		{"concurrency zero", with("SWEEP_CONCURRENCY", "0"), "SWEEP_CONCURRENCY"},
		{"concurrency text", with("SWEEP_CONCURRENCY", "lots"), "SWEEP_CONCURRENCY"},
		{"timeout text", with("SWEEP_TENANT_TIMEOUT", "soon"), "SWEEP_TENANT_TIMEOUT"},
		{"expiry negative", with("SECRET_EXPIRY_WARNING", "-1h"), "SECRET_EXPIRY_WARNING"},
		{"redirect without key", with("ONBOARD_REDIRECT_URI", "https://app.example/api/tenants"), "ONBOARD_STATE_KEY"},
		{"key without redirect", with("ONBOARD_STATE_KEY", key), "ONBOARD_REDIRECT_URI"},
		{"short key", with("ONBOARD_REDIRECT_URI", "https://app.example/api/tenants", "ONBOARD_STATE_KEY", "c2hvcnQ="), "ONBOARD_STATE_KEY"},
		{"http redirect", with("ONBOARD_REDIRECT_URI", "http://app.example/api/tenants", "ONBOARD_STATE_KEY", key), "ONBOARD_REDIRECT_URI"},
		{"log level", with("LOG_LEVEL", "loud"), "LOG_LEVEL"},
		{"budget", with("SWEEP_BUDGET", "0s"), "SWEEP_BUDGET"},
		{"budget past functionTimeout", with("SWEEP_BUDGET", "6m"), "SWEEP_BUDGET"},
		{"reserved table name", with("TENANT_REGISTRY_TABLE", "Tables"), "TENANT_REGISTRY_TABLE"},
		{"days that overflow", with("SECRET_EXPIRY_WARNING", "213504d"), "SECRET_EXPIRY_WARNING"},
		{"redirect with a fragment", with("ONBOARD_REDIRECT_URI", "https://app.example/api/tenants#x", "ONBOARD_STATE_KEY", key), "ONBOARD_REDIRECT_URI"},
		{"log level disabled", with("LOG_LEVEL", "disabled"), "LOG_LEVEL"},
		{"log level panic", with("LOG_LEVEL", "panic"), "LOG_LEVEL"},
		{"registry timeout", with("TENANT_REGISTRY_TIMEOUT", "0s"), "TENANT_REGISTRY_TIMEOUT"},
		{"missing certificate", env("APP_CLIENT_ID", "11111111-2222-4333-8444-555555555555", "APP_CLIENT_CERTIFICATE_PATH", "/nonexistent/c.pfx", "AzureWebJobsStorage", "x"), "APP_CLIENT_CERTIFICATE_PATH"},
		{"not a certificate", env("APP_CLIENT_ID", "11111111-2222-4333-8444-555555555555", "APP_CLIENT_CERTIFICATE_PATH", "config_test.go", "AzureWebJobsStorage", "x"), "APP_CLIENT_CERTIFICATE_PATH"},
		{"sharing key too short", with("TOKEN_SHARING_KEY", "c2hvcnQ="), "TOKEN_SHARING_KEY"},
		{"sharing key not base64", with("TOKEN_SHARING_KEY", "not base64!"), "TOKEN_SHARING_KEY"},
		{"previous key alone", with("TOKEN_SHARING_KEY_PREVIOUS", key), "TOKEN_SHARING_KEY_PREVIOUS"},
		{"previous key malformed", with("TOKEN_SHARING_KEY", key, "TOKEN_SHARING_KEY_PREVIOUS", "c2hvcnQ="), "TOKEN_SHARING_KEY_PREVIOUS"},
		{"freshness past a token's life", with("TOKEN_FRESHNESS", "2h"), "TOKEN_FRESHNESS"},
		{"graph rate zero", with("SWEEP_GRAPH_RATE", "0"), "SWEEP_GRAPH_RATE"},
		{"token rate text", with("SWEEP_TOKEN_RATE", "fast"), "SWEEP_TOKEN_RATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.getenv, 5*time.Minute)
			var se *SettingError
			if !errors.As(err, &se) || se.Name != tt.setting {
				t.Fatalf("err = %v, want a SettingError naming %s", err, tt.setting)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error is not one safe line: %q", err)
			}
		})
	}
}

func TestLoadCredentialMethods(t *testing.T) {
	base := []string{"APP_CLIENT_ID", "11111111-2222-4333-8444-555555555555", "AzureWebJobsStorage", "x"}
	for _, tt := range []struct {
		kv   []string
		want CredentialMethod
	}{
		{[]string{"APP_CLIENT_SECRET", "s"}, MethodSecret},
		{[]string{"APP_CLIENT_CERTIFICATE_PATH", pfxFile(t), "APP_CLIENT_CERTIFICATE_PASSWORD", "p"}, MethodCertificate},
		{[]string{"APP_CLIENT_SECRET_URI", "https://devvault.vault.azure.net/secrets/app-secret"}, MethodKeyVault},
		{[]string{"APP_FEDERATED_IDENTITY_CLIENT_ID", "99999999-2222-4333-8444-555555555555"}, MethodFederated},
	} {
		c, err := Load(env(append(append([]string{}, base...), tt.kv...)...), 5*time.Minute)
		if err != nil || c.App.Method != tt.want {
			t.Errorf("%v: method %q, err %v; want %q", tt.kv, c.App.Method, err, tt.want)
		}
	}
}

func TestSweepBudgetFromFunctionTimeout(t *testing.T) {
	for _, tt := range []struct {
		timeout time.Duration
		want    time.Duration
	}{
		{10 * time.Minute, 9 * time.Minute},
		{5 * time.Minute, 4*time.Minute + 30*time.Second},
		{time.Hour, 54 * time.Minute},
		{0, 30 * time.Minute}, // unbounded ("-1")
	} {
		c, err := Load(with(), tt.timeout)
		if err != nil || c.Sweep.Budget != tt.want {
			t.Errorf("%s: budget %s, err %v; want %s", tt.timeout, c.Sweep.Budget, err, tt.want)
		}
	}
	var se *SettingError
	if _, err := Load(with(), 20*time.Second); !errors.As(err, &se) || se.Name != "host.json functionTimeout" {
		t.Errorf("a functionTimeout shorter than the margin: err = %v", err)
	}
	if c, _ := Load(with("SWEEP_BUDGET", "2m"), 10*time.Minute); c.Sweep.Budget != 2*time.Minute {
		t.Errorf("SWEEP_BUDGET did not override: %s", c.Sweep.Budget)
	}
}

// The example settings file and the README must know every setting, so none
// is undocumented or unset in development. (funchost checks the repo's
// host.json.)
func TestSettingsAreDocumented(t *testing.T) {
	var example struct{ Values map[string]string }
	b, err := os.ReadFile("../../local.settings.json.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &example); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"FUNCTIONS_WORKER_RUNTIME": true}
	for _, s := range Settings {
		known[s.Name] = true
		if _, ok := example.Values[s.Name]; !ok && !s.Host {
			t.Errorf("local.settings.json.example lacks %s", s.Name)
		}
		if !strings.Contains(string(readme), "| `"+s.Name+"` |") {
			t.Errorf("README.md settings table lacks %s", s.Name)
		}
	}
	for name := range example.Values {
		if !known[name] {
			t.Errorf("local.settings.json.example sets %s, which the app does not read", name)
		}
	}
	if _, err := Load(func(k string) string { return example.Values[k] }, 5*time.Minute); err != nil {
		t.Errorf("local.settings.json.example does not load: %v", err)
	}
}

// pfxFile writes a PKCS#12 file with password p: start-up now reads the
// file that APP_CLIENT_CERTIFICATE_PATH names.
func pfxFile(t *testing.T) string {
	t.Helper()
	pemData, _ := cloudtest.NewCertificate(t)
	return cloudtest.WritePKCS12(t, pemData, "p")
}

func TestSweepTasks(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  []string
	}{
		{"", []string{"access", "keys"}},
		{"access", []string{"access"}},
		{" access , groups ", []string{"access", "groups"}},
	} {
		c, err := Load(with("SWEEP_TASKS", tt.value), 5*time.Minute)
		if err != nil || !reflect.DeepEqual(c.Sweep.Tasks, tt.want) {
			t.Errorf("SWEEP_TASKS=%q: %q, %v; want %q", tt.value, c.Sweep.Tasks, err, tt.want)
		}
	}
	for _, bad := range []string{"access,", ",access", "access,,groups"} {
		_, err := Load(with("SWEEP_TASKS", bad), 5*time.Minute)
		var se *SettingError
		if !errors.As(err, &se) || se.Name != "SWEEP_TASKS" {
			t.Errorf("SWEEP_TASKS=%q: err = %v, want a SWEEP_TASKS error", bad, err)
		}
	}
}

func TestRetiredSettings(t *testing.T) {
	set := RetiredSet(with("GRAPH_PERMISSIONS", "User.Read.All"))
	if _, ok := set["GRAPH_PERMISSIONS"]; !ok || len(set) != 1 {
		t.Errorf("RetiredSet = %v, want GRAPH_PERMISSIONS", set)
	}
	if set := RetiredSet(with()); len(set) != 0 {
		t.Errorf("RetiredSet with none set = %v", set)
	}
	for name := range Retired {
		for _, s := range Settings {
			if s.Name == name {
				t.Errorf("%s is both a setting and retired", name)
			}
		}
	}
}

func TestAppTenantID(t *testing.T) {
	c, err := Load(with("APP_TENANT_ID", "0E0E0E0E-0000-4000-8000-000000000001"), 0)
	if err != nil || c.App.TenantID != "0e0e0e0e-0000-4000-8000-000000000001" {
		t.Errorf("TenantID = %q, %v", c.App.TenantID, err)
	}
	if c, _ := Load(with(), 0); c.App.TenantID != "" {
		t.Errorf("unset: %q", c.App.TenantID)
	}
}

func TestTokenSharingKeys(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  // 32 bytes
	prev := "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=" // 32 bytes
	c, err := Load(with("TOKEN_SHARING_KEY", key, "TOKEN_SHARING_KEY_PREVIOUS", prev, "TOKEN_FRESHNESS", "10m"), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Tokens.Key) != "0123456789abcdef0123456789abcdef" || string(c.Tokens.Previous) != "fedcba9876543210fedcba9876543210" || c.Tokens.Freshness != 10*time.Minute {
		t.Errorf("tokens = %+v", c.Tokens)
	}
	_, err = Load(with("TOKEN_SHARING_KEY", "AAAA"+key[4:20]), 5*time.Minute)
	if err == nil || strings.Contains(err.Error(), key[4:20]) {
		t.Errorf("a malformed key: %v (the value must not be echoed)", err)
	}
}
