package access

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/azauth"
	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/graph"
	"github.com/tenantsweep/tenantsweep/internal/keyvault"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

const (
	appID       = "5a5a5a5a-0000-4000-8000-00000000a001"
	appSecret   = "cloudtest-app-secret"
	tenantA     = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB     = "bbbbbbbb-0000-4000-8000-000000000002"
	secretValue = "hunter2-do-not-leak"
)

type fixture struct {
	c      *cloudtest.Cloud
	creds  *azauth.Tenants
	access *Access
}

func setup(t *testing.T) fixture {
	t.Helper()
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: appSecret})
	creds, err := azauth.New(context.Background(), config.App{ClientID: appID, Method: config.MethodSecret, Secret: appSecret},
		cloud.AzurePublic, azauth.Options{Transport: c.HTTPClient(), DisableInstanceDiscovery: true, Retry: &policy.RetryOptions{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	g := graph.New(cloud.AzurePublic, graph.Options{Transport: c.HTTPClient().Transport})
	kv := keyvault.New(cloud.AzurePublic, keyvault.Options{Transport: c.HTTPClient(),
		Retry: &policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Second}})
	return fixture{c: c, creds: creds, access: New(creds, g, kv, cloud.AzurePublic)}
}

// noLeak fails when a secret value or a token shows in s.
func noLeak(t *testing.T, c *cloudtest.Cloud, s string) {
	t.Helper()
	if strings.Contains(s, secretValue) || strings.Contains(s, cloudtest.TokenMarker) {
		t.Errorf("leak in %q", s)
	}
}

func TestSweepOneTenant(t *testing.T) {
	f := setup(t)
	exp := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	f.c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 250})
	f.c.AddVault("contoso-kv", tenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"db-password": {Value: secretValue, Version: "v7", Enabled: true, ExpiresOn: exp},
	}})
	ctx := context.Background()

	if err := f.access.SignIn(ctx, tenantA); err != nil {
		t.Fatal(err)
	}
	if n := f.c.TokenRequests(tenantA); n != 1 {
		t.Fatalf("token requests after SignIn = %d, want 1", n)
	}
	info, err := f.access.Organization(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if info.Organization != "Contoso" || info.UserCount != 250 {
		t.Errorf("info = %+v", info)
	}
	// SignIn's token is the one Graph used: same scope, same (CAE) cache.
	if n := f.c.TokenRequests(tenantA); n != 1 {
		t.Errorf("token requests after Organization = %d, want still 1", n)
	}
	if _, err := f.access.Organization(ctx, tenantA); err != nil {
		t.Fatal(err)
	}
	if n := f.c.TokenRequests(tenantA); n != 1 {
		t.Errorf("token requests after a second Organization = %d, want still 1", n)
	}

	meta, err := f.access.Secret(ctx, tenantA, cloudtest.VaultURL("contoso-kv"), "db-password")
	if err != nil {
		t.Fatal(err)
	}
	if meta.Version != "v7" || meta.Enabled == nil || !*meta.Enabled || meta.ExpiresOn == nil || !meta.ExpiresOn.Equal(exp) {
		t.Errorf("meta = %+v", meta)
	}
	if n := f.c.TokenRequests(tenantA); n != 2 {
		t.Errorf("token requests after Secret = %d, want 2 (Graph and Key Vault)", n)
	}
	for _, r := range f.c.Requests() {
		if r.Host == cloudtest.LoginHost {
			if r.Tenant != tenantA {
				t.Errorf("sign-in at tenant %q: %s", r.Tenant, r.Path)
			}
			continue
		}
		// Every Graph and Key Vault request but Key Vault's challenge
		// carries a token of the tenant.
		if r.Tenant != tenantA && !(r.Tenant == "" && strings.HasSuffix(r.Host, cloudtest.VaultSuffix)) {
			t.Errorf("%s %s%s with a token of %q", r.Method, r.Host, r.Path, r.Tenant)
		}
	}
}

func TestFaults(t *testing.T) {
	f := setup(t)
	f.c.AddTenant(tenantA, cloudtest.Tenant{SignIn: cloudtest.FaultAppNotInTenant})
	f.c.AddTenant(tenantB, cloudtest.Tenant{OrgName: "Fabrikam", GraphStatus: 403})
	f.c.AddVault("fabrikam-kv", tenantB, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"s": {Value: secretValue, Enabled: true},
	}})
	f.c.AddVault("locked-kv", tenantB, cloudtest.Vault{Status: 403})
	f.c.AddVault("contoso-kv", tenantA, cloudtest.Vault{})
	ctx := context.Background()

	check := func(name string, err error, want outcome.Code) {
		t.Helper()
		if got := outcome.Of(err); got != want {
			t.Errorf("%s: outcome = %s (%v), want %s", name, got, err, want)
		}
		if err != nil {
			noLeak(t, f.c, err.Error())
		}
	}
	check("sign-in, app not in tenant", f.access.SignIn(ctx, tenantA), outcome.AppNotInTenant)
	_, err := f.access.Organization(ctx, tenantA)
	check("organization, app not in tenant", err, outcome.AppNotInTenant)
	_, err = f.access.Secret(ctx, tenantA, cloudtest.VaultURL("contoso-kv"), "s")
	check("secret, app not in tenant", err, outcome.AppNotInTenant)

	check("sign-in", f.access.SignIn(ctx, tenantB), outcome.OK)
	_, err = f.access.Organization(ctx, tenantB)
	check("organization, no consent", err, outcome.GraphConsentMissing)
	_, err = f.access.Secret(ctx, tenantB, cloudtest.VaultURL("locked-kv"), "s")
	check("secret, no role", err, outcome.KeyVaultAccessDenied)
	_, err = f.access.Secret(ctx, tenantB, cloudtest.VaultURL("fabrikam-kv"), "missing")
	check("secret, missing", err, outcome.SecretNotFound)
	// tenant A's vault read with tenant B's sign-in: another tenant's vault.
	_, err = f.access.Secret(ctx, tenantB, cloudtest.VaultURL("contoso-kv"), "s")
	check("secret, vault of another tenant", err, outcome.KeyVaultAccessDenied)
	if n := f.c.TokenRequests(tenantA); n != 3 {
		// Only the three failed sign-ins of tenant A: no token of A was
		// asked for on B's behalf.
		t.Errorf("token requests of tenant A = %d, want 3", n)
	}
}

func TestSecretOnForeignHostSendsNothing(t *testing.T) {
	f := setup(t)
	f.c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso"})
	_, err := f.access.Secret(context.Background(), tenantA, "https://contoso-kv.vault.azure.net.evil.example.com", "s")
	var oe *outcome.Error
	if err == nil || errors.As(err, &oe) {
		t.Errorf("err = %v, want a plain refusal", err)
	}
	if n := len(f.c.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestForget(t *testing.T) {
	f := setup(t)
	f.c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 1})
	ctx := context.Background()
	if _, err := f.access.Organization(ctx, tenantA); err != nil {
		t.Fatal(err)
	}
	if f.creds.Len() != 1 {
		t.Fatalf("credentials = %d", f.creds.Len())
	}
	f.access.Forget(tenantA)
	if f.creds.Len() != 0 {
		t.Errorf("credentials after Forget = %d, want 0", f.creds.Len())
	}
	// A fresh credential signs in again.
	if _, err := f.access.Organization(ctx, tenantA); err != nil {
		t.Fatal(err)
	}
	if n := f.c.TokenRequests(tenantA); n != 2 {
		t.Errorf("token requests = %d, want 2 (one before, one after Forget)", n)
	}
}

// stubCreds checks the wiring without the SDKs.
type stubCreds struct {
	mu        sync.Mutex
	err       error
	forgotten []string
	tro       []policy.TokenRequestOptions
}

func (s *stubCreds) Credential(string) (azcore.TokenCredential, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s, nil
}

func (s *stubCreds) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgotten = append(s.forgotten, id)
}

func (s *stubCreds) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tro = append(s.tro, o)
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestSignInAsksLikeTheSDKs(t *testing.T) {
	s := &stubCreds{}
	a := New(s, graph.New(cloud.AzureUSGovernment, graph.Options{}), keyvault.New(cloud.AzureUSGovernment, keyvault.Options{}), cloud.AzureUSGovernment)
	if err := a.SignIn(context.Background(), tenantA); err != nil {
		t.Fatal(err)
	}
	if len(s.tro) != 1 || len(s.tro[0].Scopes) != 1 || s.tro[0].Scopes[0] != "https://graph.microsoft.us/.default" || !s.tro[0].EnableCAE || s.tro[0].TenantID != "" {
		t.Errorf("token request %+v", s.tro)
	}
	a.Forget(tenantA)
	if len(s.forgotten) != 1 || s.forgotten[0] != tenantA {
		t.Errorf("forgotten = %v", s.forgotten)
	}
}

func TestCredentialErrorIsReturned(t *testing.T) {
	want := errors.New("invalid tenant id")
	a := New(&stubCreds{err: want}, graph.New(cloud.AzurePublic, graph.Options{}), keyvault.New(cloud.AzurePublic, keyvault.Options{}), cloud.AzurePublic)
	ctx := context.Background()
	if err := a.SignIn(ctx, "x"); !errors.Is(err, want) {
		t.Errorf("SignIn: %v", err)
	}
	if _, err := a.Organization(ctx, "x"); !errors.Is(err, want) {
		t.Errorf("Organization: %v", err)
	}
	if _, err := a.Secret(ctx, "x", "https://kv.vault.azure.net", "s"); !errors.Is(err, want) {
		t.Errorf("Secret: %v", err)
	}
}
