package tenant

import (
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
)

// The tenants no sweep can ever reach are refused wherever an id enters.
func TestParseTenantIDRefusesSharedTenants(t *testing.T) {
	for _, id := range []string{
		"9188040d-6c67-4c5b-b112-36a304b66dad", // consumers
		"9188040D-6C67-4C5B-B112-36A304B66DAD",
		"00000000-0000-0000-0000-000000000000",
		"common", "organizations", "consumers",
	} {
		if got, err := ParseTenantID(id); err == nil {
			t.Errorf("ParseTenantID(%q) = %q, want an error", id, got)
		} else if ve, ok := err.(*ValidationError); !ok || ve.Field != "tenantId" {
			t.Errorf("ParseTenantID(%q) error %v is not a tenantId *ValidationError", id, err)
		}
	}
}

func TestParseGUID(t *testing.T) {
	for in, want := range map[string]string{
		"5A5A5A5A-0000-4000-8000-00000000A001":   "5a5a5a5a-0000-4000-8000-00000000a001",
		"00000000-0000-0000-0000-000000000000":   "",
		"{5a5a5a5a-0000-4000-8000-00000000a001}": "",
		"nope":                                   "",
	} {
		got, ok := ParseGUID(in)
		if got != want && ok || ok != (want != "") {
			t.Errorf("ParseGUID(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestParseVaultURL(t *testing.T) {
	for _, tt := range []struct {
		in, host string
		cl       cloud.Cloud
	}{
		{"https://contoso-kv.vault.azure.net", "contoso-kv.vault.azure.net", cloud.AzurePublic},
		{"https://Contoso-KV.Vault.Azure.Net/", "contoso-kv.vault.azure.net", cloud.AzurePublic},
		{"https://contoso-kv.vault.usgovcloudapi.net/", "contoso-kv.vault.usgovcloudapi.net", cloud.AzureUSGovernment},
		{"https://contoso-kv.vault.usgovcloudapi.net/", "", cloud.AzurePublic},
		{"http://contoso-kv.vault.azure.net", "", cloud.AzurePublic},
		{"https://contoso-kv.vault.azure.net:443", "", cloud.AzurePublic},
		{"https://contoso-kv.vault.azure.net/secrets/x", "", cloud.AzurePublic},
		{"https://contoso-kv.vault.azure.net/?x=1", "", cloud.AzurePublic},
		{"https://user:pw@contoso-kv.vault.azure.net", "", cloud.AzurePublic},
		{"https://a.b.vault.azure.net", "", cloud.AzurePublic},
		{"https://ab.vault.azure.net", "", cloud.AzurePublic}, // 2 characters
		{"https://a--b.vault.azure.net", "", cloud.AzurePublic},
	} {
		got, err := ParseVaultURL(tt.in, tt.cl)
		if got != tt.host || (err == nil) != (tt.host != "") {
			t.Errorf("ParseVaultURL(%q, %s) = %q, %v; want %q", tt.in, tt.cl.Name, got, err, tt.host)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("the error repeats the URL's credentials: %v", err)
		}
	}
}

func TestParseSecretURI(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want SecretURI
		ok   bool
	}{
		{"https://devvault.vault.azure.net/secrets/app-secret", SecretURI{VaultHost: "devvault.vault.azure.net", Name: "app-secret"}, true},
		{"https://DevVault.vault.azure.net/secrets/app-secret/0123abcd/", SecretURI{VaultHost: "devvault.vault.azure.net", Name: "app-secret", Version: "0123abcd"}, true},
		{"https://evil.example/secrets/x", SecretURI{}, false},
		{"https://devvault.vault.azure.net:8443/secrets/x", SecretURI{}, false},
		{"http://devvault.vault.azure.net/secrets/x", SecretURI{}, false},
		{"https://devvault.vault.azure.net/keys/x", SecretURI{}, false},
		{"https://devvault.vault.azure.net/secrets/", SecretURI{}, false},
		{"https://devvault.vault.azure.net/secrets/a b", SecretURI{}, false},
		{"https://devvault.vault.azure.net/secrets/x/v/extra", SecretURI{}, false},
		{"https://devvault.vault.azure.net/secrets/x?api-version=1", SecretURI{}, false},
	} {
		got, err := ParseSecretURI(tt.in, cloud.AzurePublic)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseSecretURI(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if got := (SecretURI{VaultHost: "devvault.vault.azure.net"}).VaultURL(); got != "https://devvault.vault.azure.net" {
		t.Errorf("VaultURL = %q", got)
	}
}
