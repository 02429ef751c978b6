package keyvault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

func startCloud(t *testing.T) *cloudtest.Cloud {
	t.Helper()
	c := cloudtest.StartWithApp(t)
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso"})
	c.AddTenant(tenantB, cloudtest.Tenant{OrgName: "Fabrikam"})
	return c
}

func newReader(c *cloudtest.Cloud) *Reader {
	return New(cloud.AzurePublic, Options{Transport: c.HTTPClient(), Retry: fastRetry()})
}

func vaultRequests(c *cloudtest.Cloud) []cloudtest.Request {
	var out []cloudtest.Request
	for _, r := range c.Requests() {
		if strings.HasSuffix(r.Host, "."+cloudtest.VaultSuffix) {
			out = append(out, r)
		}
	}
	return out
}

// noLeak fails when a secret value or any token the fakes issued shows in s.
func noLeak(t *testing.T, c *cloudtest.Cloud, s string) {
	t.Helper()
	if strings.Contains(s, secretValue) || strings.Contains(s, cloudtest.TokenMarker) {
		t.Errorf("leak in %q", s)
	}
	for _, tok := range c.IssuedTokens() {
		if strings.Contains(s, tok) {
			t.Errorf("token leaked in %q", s)
		}
	}
}

func TestCloudSecretMetadata(t *testing.T) {
	c := startCloud(t)
	exp := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second).UTC()
	c.AddVault("contoso-kv", tenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"db-password": {Value: secretValue, Version: "0123456789abcdef0123456789abcdef", Enabled: true, ExpiresOn: exp},
		"no-expiry":   {Value: secretValue, Enabled: true},
	}})
	r := newReader(c)
	// The tenant's credential remembers what the vault's challenge said,
	// as a sweep's does.
	cred := &knowing{TokenCredential: c.SecretCredential(t, tenantA)}
	for range 2 {
		meta, err := r.Secret(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "db-password", cred)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Version != "0123456789abcdef0123456789abcdef" || meta.Enabled == nil || !*meta.Enabled ||
			meta.ExpiresOn == nil || !meta.ExpiresOn.Equal(exp) {
			t.Errorf("meta = %+v", meta)
		}
		noLeak(t, c, fmt.Sprintf("%+v", meta))
	}
	meta, err := r.Secret(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "no-expiry", cred)
	if err != nil || meta.ExpiresOn != nil || meta.Version == "" {
		t.Errorf("no-expiry: meta %+v, err %v", meta, err)
	}
	// One challenge for the tenant's credential, then three authorized
	// reads, each with a token of the customer's tenant.
	reqs := vaultRequests(c)
	if len(reqs) != 4 || reqs[0].Tenant != "" {
		t.Fatalf("vault requests %+v, want 1 challenge + 3 reads", reqs)
	}
	for _, req := range reqs[1:] {
		if req.Tenant != tenantA {
			t.Errorf("%s %s carried a token of %q", req.Method, req.Path, req.Tenant)
		}
	}
	if n := c.TokenRequests(tenantA); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
}

func TestCloudSecretFaults(t *testing.T) {
	tests := []struct {
		name  string
		vault cloudtest.Vault
		want  outcome.Code
	}{
		{"vault forbidden", cloudtest.Vault{Status: 403, Secrets: map[string]cloudtest.Secret{"s": {Value: secretValue, Enabled: true}}}, outcome.KeyVaultAccessDenied},
		{"secret forbidden", cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"s": {Value: secretValue, Enabled: true, Status: 403}}}, outcome.KeyVaultAccessDenied},
		{"missing", cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"other": {Value: secretValue, Enabled: true}}}, outcome.SecretNotFound},
		{"always throttled", cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"s": {Value: secretValue, Enabled: true, Status: 429}}}, outcome.Throttled},
		{"vault fault", cloudtest.Vault{Status: 500}, outcome.UpstreamError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCloud(t)
			c.AddVault("contoso-kv", tenantA, tt.vault)
			_, err := newReader(c).Secret(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "s", c.SecretCredential(t, tenantA))
			var oe *outcome.Error
			if !errors.As(err, &oe) || oe.Code != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
			noLeak(t, c, err.Error())
			noLeak(t, c, oe.Err.Error())
			if strings.Contains(err.Error(), "appid=") || strings.Contains(err.Error(), "https://") {
				t.Errorf("error text carries the vault's message: %v", err)
			}
		})
	}
}

func TestCloudSecretThrottledThenRead(t *testing.T) {
	c := startCloud(t)
	c.AddVault("contoso-kv", tenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"s": {Value: secretValue, Version: "v1", Enabled: true, Throttle: 2},
	}})
	meta, err := newReader(c).Secret(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "s", c.SecretCredential(t, tenantA))
	if err != nil || meta.Version != "v1" {
		t.Fatalf("meta %+v, err %v", meta, err)
	}
}

func TestCloudSecretDisabled(t *testing.T) {
	c := startCloud(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	c.AddVault("contoso-kv", tenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"s": {Value: secretValue, Version: "v1", Enabled: false, ExpiresOn: exp},
	}})
	meta, err := newReader(c).Secret(context.Background(), tenantA, cloudtest.VaultURL("contoso-kv"), "s", c.SecretCredential(t, tenantA))
	if err != nil {
		t.Fatal(err)
	}
	if meta.Enabled == nil || *meta.Enabled || meta.Version != "v1" || meta.ExpiresOn == nil || !meta.ExpiresOn.Equal(exp) {
		t.Errorf("meta = %+v, want disabled v1 expiring %v", meta, exp)
	}
}

func TestCloudVaultOfAnotherTenant(t *testing.T) {
	c := startCloud(t)
	c.AddVault("fabrikam-kv", tenantB, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"s": {Value: secretValue, Enabled: true}}})
	_, err := newReader(c).Secret(context.Background(), tenantA, cloudtest.VaultURL("fabrikam-kv"), "s", c.SecretCredential(t, tenantA))
	if got := outcome.Of(err); got != outcome.KeyVaultAccessDenied {
		t.Fatalf("outcome = %s (%v)", got, err)
	}
	if !strings.Contains(outcome.Detail(err), "another Entra ID tenant") {
		t.Errorf("detail = %q", outcome.Detail(err))
	}
	if c.TotalTokenRequests() != 0 {
		t.Errorf("%d token requests, want none", c.TotalTokenRequests())
	}
	for _, req := range vaultRequests(c) {
		if req.Tenant != "" {
			t.Errorf("an authorized request reached the vault: %+v", req)
		}
	}
}

func TestCloudUnknownVaultIsUpstream(t *testing.T) {
	c := startCloud(t)
	_, err := newReader(c).Secret(context.Background(), tenantA, cloudtest.VaultURL("nowhere-kv"), "s", c.SecretCredential(t, tenantA))
	if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != "could not reach the vault" {
		t.Errorf("err = %v", err)
	}
}

func TestCloudForeignVaultHostRefused(t *testing.T) {
	c := startCloud(t)
	r := newReader(c)
	cred := c.SecretCredential(t, tenantA)
	for _, u := range []string{"https://contoso-kv.vault.azure.net.evil.example.com", "https://login.microsoftonline.com", "https://graph.microsoft.com", "http://contoso-kv.vault.azure.net"} {
		if _, err := r.Secret(context.Background(), tenantA, u, "s", cred); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if n := len(c.Requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

// knowing is a credential that remembers which vaults are the tenant's.
type knowing struct {
	azcore.TokenCredential
	mu    sync.Mutex
	known map[string]bool
}

func (k *knowing) VaultKnown(host string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.known[host]
}

func (k *knowing) VaultIs(host string, own bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.known == nil {
		k.known = map[string]bool{}
	}
	k.known[host] = own
}
