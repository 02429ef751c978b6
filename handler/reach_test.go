package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/azauth"
	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/graph"
	"github.com/tenantsweep/tenantsweep/internal/keyvault"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tokenshare"
)

// These tests run the per-tenant reach as newApp wires it (azauth's
// sign-in, the Graph and Key Vault readers, the unmodified SDKs) against the
// TLS fakes, without the registry.

const (
	reachTenantA = cloudtest.TenantA
	reachTenantB = cloudtest.TenantB
	reachSecret  = "hunter2-do-not-leak"
)

// graphOnly is a sign-in's scopes for the Graph token alone.
var graphOnly = []string{cloud.AzurePublic.GraphScope()}

type reach struct {
	c      *cloudtest.Cloud
	creds  *azauth.Tenants
	graph  *graph.Reader
	vaults *keyvault.Reader
}

func newReach(t *testing.T) reach {
	t.Helper()
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: testAppID, Secret: testAppSecret})
	sealer, err := tokenshare.New(tokenshare.Options{}) // newApp's without TOKEN_SHARING_KEY
	if err != nil {
		t.Fatal(err)
	}
	creds, err := azauth.New(context.Background(), config.App{ClientID: testAppID, Method: config.MethodSecret, Secret: testAppSecret},
		cloud.AzurePublic, azauth.Options{Transport: c.HTTPClient(), DisableInstanceDiscovery: true, Retry: &policy.RetryOptions{MaxRetries: -1}, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	return reach{
		c:     c,
		creds: creds,
		graph: graph.New(cloud.AzurePublic, graph.Options{Transport: c.HTTPClient().Transport}),
		vaults: keyvault.New(cloud.AzurePublic, keyvault.Options{Transport: c.HTTPClient(),
			Retry: &policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Second}}),
	}
}

// noLeak fails when a secret value or a token shows in s.
func noLeak(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, reachSecret) || strings.Contains(s, cloudtest.TokenMarker) {
		t.Errorf("leak in %q", s)
	}
}

func TestReachOneTenant(t *testing.T) {
	r := newReach(t)
	exp := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	r.c.AddTenant(reachTenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 250})
	r.c.AddVault("contoso-kv", reachTenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"db-password": {Value: reachSecret, Version: "v7", Enabled: true, ExpiresOn: exp},
	}})
	ctx := context.Background()

	cred, err := r.creds.SignIn(ctx, reachTenantA, graphOnly, tenant.Shared{})
	if err != nil {
		t.Fatal(err)
	}
	if n := r.c.TokenRequests(reachTenantA); n != 1 {
		t.Fatalf("token requests after SignIn = %d, want 1", n)
	}
	info, err := r.graph.Organization(ctx, cred)
	if err != nil {
		t.Fatal(err)
	}
	if info.Organization != "Contoso" || info.UserCount != 250 {
		t.Errorf("info = %+v", info)
	}
	// SignIn's token is the one Graph used: same scope, same (CAE) cache.
	if n := r.c.TokenRequests(reachTenantA); n != 1 {
		t.Errorf("token requests after Organization = %d, want still 1", n)
	}
	if _, err := r.graph.Organization(ctx, cred); err != nil {
		t.Fatal(err)
	}
	if n := r.c.TokenRequests(reachTenantA); n != 1 {
		t.Errorf("token requests after a second Organization = %d, want still 1", n)
	}

	meta, err := r.vaults.Secret(ctx, reachTenantA, cloudtest.VaultURL("contoso-kv"), "db-password", cred)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Version != "v7" || meta.Enabled == nil || !*meta.Enabled || meta.ExpiresOn == nil || !meta.ExpiresOn.Equal(exp) {
		t.Errorf("meta = %+v", meta)
	}
	if n := r.c.TokenRequests(reachTenantA); n != 2 {
		t.Errorf("token requests after Secret = %d, want 2 (Graph and Key Vault)", n)
	}
	for _, req := range r.c.Requests() {
		if req.Host == cloudtest.LoginHost {
			if req.Tenant != reachTenantA {
				t.Errorf("sign-in at tenant %q: %s", req.Tenant, req.Path)
			}
			continue
		}
		// Every Graph and Key Vault request but Key Vault's challenge
		// carries a token of the tenant.
		if req.Tenant != reachTenantA && !(req.Tenant == "" && strings.HasSuffix(req.Host, cloudtest.VaultSuffix)) {
			t.Errorf("%s %s%s with a token of %q", req.Method, req.Host, req.Path, req.Tenant)
		}
	}
}

func TestReachFaults(t *testing.T) {
	r := newReach(t)
	r.c.AddTenant(reachTenantA, cloudtest.Tenant{SignIn: cloudtest.FaultAppNotInTenant})
	r.c.AddTenant(reachTenantB, cloudtest.Tenant{OrgName: "Fabrikam", GraphStatus: 403})
	r.c.AddVault("fabrikam-kv", reachTenantB, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"s": {Value: reachSecret, Enabled: true},
	}})
	r.c.AddVault("locked-kv", reachTenantB, cloudtest.Vault{Status: 403})
	r.c.AddVault("contoso-kv", reachTenantA, cloudtest.Vault{})
	ctx := context.Background()

	check := func(name string, err error, want outcome.Code) {
		t.Helper()
		if got := outcome.Of(err); got != want {
			t.Errorf("%s: outcome = %s (%v), want %s", name, got, err, want)
		}
		if err != nil {
			noLeak(t, err.Error())
		}
	}
	_, err := r.creds.SignIn(ctx, reachTenantA, graphOnly, tenant.Shared{})
	check("sign-in, app not in tenant", err, outcome.AppNotInTenant)
	credA, err := r.creds.Credential(reachTenantA)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.graph.Organization(ctx, credA)
	check("organization, app not in tenant", err, outcome.AppNotInTenant)
	_, err = r.vaults.Secret(ctx, reachTenantA, cloudtest.VaultURL("contoso-kv"), "s", credA)
	check("secret, app not in tenant", err, outcome.AppNotInTenant)

	credB, err := r.creds.SignIn(ctx, reachTenantB, graphOnly, tenant.Shared{})
	check("sign-in", err, outcome.OK)
	_, err = r.graph.Organization(ctx, credB)
	check("organization, no consent", err, outcome.GraphConsentMissing)
	_, err = r.vaults.Secret(ctx, reachTenantB, cloudtest.VaultURL("locked-kv"), "s", credB)
	check("secret, no role", err, outcome.KeyVaultAccessDenied)
	_, err = r.vaults.Secret(ctx, reachTenantB, cloudtest.VaultURL("fabrikam-kv"), "missing", credB)
	check("secret, missing", err, outcome.SecretNotFound)
	// tenant A's vault read with tenant B's sign-in: another tenant's vault.
	_, err = r.vaults.Secret(ctx, reachTenantB, cloudtest.VaultURL("contoso-kv"), "s", credB)
	check("secret, vault of another tenant", err, outcome.KeyVaultAccessDenied)
	if n := r.c.TokenRequests(reachTenantA); n != 3 {
		// Only the three failed sign-ins of tenant A: no token of A was
		// asked for on B's behalf.
		t.Errorf("token requests of tenant A = %d, want 3", n)
	}
}

func TestReachSecretOnForeignHostSendsNothing(t *testing.T) {
	r := newReach(t)
	r.c.AddTenant(reachTenantA, cloudtest.Tenant{OrgName: "Contoso"})
	cred, err := r.creds.Credential(reachTenantA)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.vaults.Secret(context.Background(), reachTenantA, "https://contoso-kv.vault.azure.net.evil.example.com", "s", cred)
	var oe *outcome.Error
	if err == nil || errors.As(err, &oe) {
		t.Errorf("err = %v, want a plain refusal", err)
	}
	if n := len(r.c.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// A tenant's credential is one probe's: the next probe keeps nothing of it
// and signs in and asks the vault's challenge again, unless it is given
// what the first left for the fleet (its tokens, sealed, and the vault it
// found to be the tenant's): then it makes no token request and sends no
// challenge.
func TestReachSharesThroughTheRow(t *testing.T) {
	r := newReach(t)
	r.c.AddTenant(reachTenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 1})
	r.c.AddVault("contoso-kv", reachTenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"s": {Value: reachSecret, Enabled: true}}})
	rec := tenant.Record{TenantID: reachTenantA, Status: tenant.StatusActive, Graph: true,
		KeyVaults: []tenant.KeyVault{{VaultURL: cloudtest.VaultURL("contoso-kv") + "/", Secrets: []string{"s"}}}}
	ctx := context.Background()
	both := []string{cloud.AzurePublic.GraphScope(), cloud.AzurePublic.KeyVaultScope}
	probe := func(shared tenant.Shared) tenant.SharedUpdate {
		t.Helper()
		cred, err := r.creds.SignIn(ctx, reachTenantA, both, shared)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.graph.Organization(ctx, cred); err != nil {
			t.Fatal(err)
		}
		if _, err := r.vaults.Secret(ctx, reachTenantA, cloudtest.VaultURL("contoso-kv"), "s", cred); err != nil {
			t.Fatal(err)
		}
		return cred.(*azauth.Session).Share()
	}
	challenges := func() int {
		n := 0
		for _, req := range r.c.Requests() {
			if strings.HasSuffix(req.Host, cloudtest.VaultSuffix) && req.Tenant == "" {
				n++
			}
		}
		return n
	}
	u := probe(tenant.Shared{})
	probe(tenant.Shared{})
	if n, ch := r.c.TokenRequests(reachTenantA), challenges(); n != 4 || ch != 2 {
		t.Fatalf("two probes: %d token requests, %d challenges; want 4 and 2 (nothing kept between probes)", n, ch)
	}
	if len(u.Put) != 2 || len(u.Vaults) != 1 {
		t.Fatalf("left for the fleet: %+v", u)
	}
	tenant.MergeShared(&rec, u, time.Now())
	probe(rec.Shared)
	if n, ch := r.c.TokenRequests(reachTenantA), challenges(); n != 4 || ch != 2 {
		t.Errorf("a probe given the fleet's share: %d token requests, %d challenges; want still 4 and 2", n, ch)
	}
}
