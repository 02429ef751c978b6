package azauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/azauth"
	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

const (
	appID   = "0a0a0a0a-1111-4111-8111-111111111111"
	tenantA = "aaaaaaaa-0000-4000-8000-00000000000a"
	tenantB = "bbbbbbbb-0000-4000-8000-00000000000b"
	secret  = "app-secret-value-1"
)

var (
	graphTRO = policy.TokenRequestOptions{Scopes: []string{cloud.AzurePublic.GraphScope()}, EnableCAE: true}
	ctx      = context.Background()
)

func options(c *cloudtest.Cloud) azauth.Options {
	return azauth.Options{
		Transport: c.HTTPClient(),
		Retry:     &policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: 20 * time.Millisecond},
	}
}

func newTenants(t *testing.T, c *cloudtest.Cloud, app config.App, opts azauth.Options) *azauth.Tenants {
	t.Helper()
	ts, err := azauth.New(ctx, app, cloud.AzurePublic, opts)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func token(t *testing.T, ts *azauth.Tenants, tenant string) (azcore.AccessToken, error) {
	t.Helper()
	cred, err := ts.Credential(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return cred.GetToken(ctx, graphTRO)
}

// mustSignIn gets a Graph token in tenant and checks it was minted there.
func mustSignIn(t *testing.T, c *cloudtest.Cloud, ts *azauth.Tenants, tenant string) {
	t.Helper()
	tk, err := token(t, ts, tenant)
	if err != nil {
		t.Fatalf("sign-in to %s: %v", tenant, err)
	}
	cl, ok := c.TokenClaims(tk.Token)
	if !ok || cl.Tenant != tenant || cl.AppID != appID || cl.Audience != cloudtest.GraphResource {
		t.Fatalf("token claims %+v (known %v)", cl, ok)
	}
}

// twoTenants is the fakes with tenants A and B, and the secret method's
// credentials for them.
func twoTenants(t *testing.T) (*cloudtest.Cloud, *azauth.Tenants) {
	t.Helper()
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	c.AddTenant(tenantB, cloudtest.Tenant{})
	return c, newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, options(c))
}

func TestSecretMethod(t *testing.T) {
	c, ts := twoTenants(t)
	if ts.LocalCredentials() != nil {
		t.Error("a client secret's expiry is not known locally")
	}

	cred, err := ts.Credential(tenantA)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		tk, err := cred.GetToken(ctx, graphTRO)
		if err != nil {
			t.Fatal(err)
		}
		if cl, ok := c.TokenClaims(tk.Token); !ok || cl.Tenant != tenantA || cl.AppID != appID || cl.Audience != cloudtest.GraphResource {
			t.Fatalf("token claims %+v (known %v)", cl, ok)
		}
	}
	if n := c.TokenRequests(tenantA); n != 1 {
		t.Errorf("tenant A: %d token requests for 2 GetTokens of one credential, want 1", n)
	}
	mustSignIn(t, c, ts, tenantB)
	if n := c.TokenRequests(tenantB); n != 1 {
		t.Errorf("tenant B: %d token requests, want 1", n)
	}
	for _, r := range c.Requests() {
		if r.Method == http.MethodPost && r.Tenant != tenantA && r.Tenant != tenantB {
			t.Errorf("token request in tenant %q", r.Tenant)
		}
		// The tenant's OpenID metadata is answered in the process.
		if strings.Contains(r.Path, "openid-configuration") {
			t.Errorf("a tenant discovery request reached Entra ID: %s", r.Path)
		}
	}

	// A credential is one piece of work's: the next one keeps nothing of
	// it and signs in again (the fleet's tokens come from the registry).
	mustSignIn(t, c, ts, tenantA)
	if n := c.TokenRequests(tenantA); n != 2 {
		t.Errorf("tenant A: %d token requests after a second credential, want 2", n)
	}
}

// The authority is the real login.microsoftonline.com, which MSAL trusts:
// without DisableInstanceDiscovery it still asks for instance metadata once
// per MSAL client (for its cache aliases), so once per credential, and the
// fake answers it; production turns it off.
func TestInstanceDiscovery(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprint("disable=", disable), func(t *testing.T) {
			c := cloudtest.Start(t)
			c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
			c.AddTenant(tenantA, cloudtest.Tenant{})
			opts := options(c)
			opts.DisableInstanceDiscovery = disable
			ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, opts)
			mustSignIn(t, c, ts, tenantA)
			mustSignIn(t, c, ts, tenantA)
			n := 0
			for _, r := range c.Requests() {
				if r.Path == "/common/discovery/instance" {
					n++
				}
			}
			want := 2
			if disable {
				want = 0
			}
			if n != want {
				t.Errorf("%d instance discovery requests, want %d", n, want)
			}
		})
	}
}

func TestCertificateMethod(t *testing.T) {
	c := cloudtest.Start(t)
	pemData, cert := cloudtest.NewCertificate(t)
	c.SetApp(cloudtest.App{ClientID: appID, Certificate: cert})
	c.AddTenant(tenantA, cloudtest.Tenant{})

	pemPath := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(pemPath, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("pem", func(t *testing.T) {
		ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodCertificate, CertificatePath: pemPath}, options(c))
		mustSignIn(t, c, ts, tenantA)
		// Its expiry is read from the file, for the app's posture.
		src := ts.LocalCredentials()
		if src == nil {
			t.Fatal("no posture source for the certificate method")
		}
		creds, err := src.Credentials(ctx)
		if err != nil || len(creds) != 1 || !creds[0].ExpiresOn.Equal(cert.NotAfter) || creds[0].Kind != "certificate" ||
			creds[0].Where != "local" || len(creds[0].ID) != 40 || creds[0].Name != cert.Subject.String() {
			t.Errorf("credentials = %+v, %v", creds, err)
		}
	})
	t.Run("pkcs12", func(t *testing.T) {
		p12 := cloudtest.WritePKCS12(t, pemData, "pfx-password")
		ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodCertificate,
			CertificatePath: p12, CertificatePassword: "pfx-password"}, options(c))
		mustSignIn(t, c, ts, tenantA)
	})
	t.Run("another certificate", func(t *testing.T) {
		other, _ := cloudtest.NewCertificate(t)
		p := filepath.Join(t.TempDir(), "other.pem")
		_ = os.WriteFile(p, other, 0o600)
		ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodCertificate, CertificatePath: p}, options(c))
		_, err := token(t, ts, tenantA)
		if outcome.Of(err) != outcome.AppCredentialInvalid || !strings.Contains(outcome.Detail(err), "AADSTS700027") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		_, err := azauth.New(ctx, config.App{ClientID: appID, Method: config.MethodCertificate, CertificatePath: pemPath + ".missing"}, cloud.AzurePublic, options(c))
		if err == nil {
			t.Error("want an error")
		}
	})
}

func TestFederatedMethod(t *testing.T) {
	c := cloudtest.Start(t)
	c.UseManagedIdentity(t)
	miID := cloudtest.NewClientID()
	c.SetApp(cloudtest.App{ClientID: appID, AcceptMIAssertions: true, FederatedMIClientID: miID})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	c.AddTenant(tenantB, cloudtest.Tenant{})
	ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodFederated, FederatedClientID: miID}, options(c))

	mustSignIn(t, c, ts, tenantA)
	mustSignIn(t, c, ts, tenantB)
	mustSignIn(t, c, ts, tenantA)
	if n := c.ManagedIdentityRequests(); n != 1 {
		t.Errorf("%d managed identity requests, want 1 (cached)", n)
	}
	if n := c.TotalTokenRequests(); n != 3 {
		t.Errorf("%d token requests, want 3 (each credential signs in; the identity's token is the one cached)", n)
	}
	var sawAudience bool
	for _, r := range c.Requests() {
		if strings.HasPrefix(r.Path, "/msi/") && strings.Contains(r.Query, "resource=api%3A%2F%2FAzureADTokenExchange") && strings.Contains(r.Query, miID) {
			sawAudience = true
		}
	}
	if !sawAudience {
		t.Errorf("no MSI request for api://AzureADTokenExchange with client id %s: %+v", miID, c.Requests())
	}
}

func TestFederatedMethodMSIDown(t *testing.T) {
	c := cloudtest.Start(t)
	c.UseManagedIdentity(t)
	miID := cloudtest.NewClientID()
	c.SetApp(cloudtest.App{ClientID: appID, AcceptMIAssertions: true})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	c.SetManagedIdentityStatus(http.StatusInternalServerError)
	ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodFederated, FederatedClientID: miID}, options(c))
	_, err := token(t, ts, tenantA)
	if outcome.Of(err) != outcome.UpstreamError {
		t.Fatalf("got %v", err)
	}
	if n := c.TotalTokenRequests(); n != 0 {
		t.Errorf("%d token requests without an assertion", n)
	}
}

func mustSecretURI(raw string) tenant.SecretURI {
	u, err := tenant.ParseSecretURI(raw, cloud.AzurePublic)
	if err != nil {
		panic(err)
	}
	return u
}

func keyVaultApp(miID string) config.App {
	return config.App{ClientID: appID, Method: config.MethodKeyVault,
		SecretURI: mustSecretURI(cloudtest.VaultURL("appvault") + "/secrets/app-secret"), ManagedIdentityClientID: miID}
}

func TestKeyVaultMethod(t *testing.T) {
	c := cloudtest.Start(t)
	c.UseManagedIdentity(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	c.AddVault("appvault", cloudtest.ManagedIdentityTenant, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"app-secret": {Value: secret, Enabled: true}}})
	ts := newTenants(t, c, keyVaultApp(cloudtest.NewClientID()), options(c))
	mustSignIn(t, c, ts, tenantA)
	if c.ManagedIdentityRequests() != 1 {
		t.Errorf("%d managed identity requests", c.ManagedIdentityRequests())
	}

	t.Run("vault denies", func(t *testing.T) {
		c.AddVault("appvault", cloudtest.ManagedIdentityTenant, cloudtest.Vault{Status: http.StatusForbidden})
		if _, err := azauth.New(ctx, keyVaultApp(cloudtest.NewClientID()), cloud.AzurePublic, options(c)); err == nil {
			t.Error("want an error")
		}
	})
}

func vaultReads(c *cloudtest.Cloud) int {
	n := 0
	for _, r := range c.Requests() {
		if r.Host == "appvault.vault.azure.net" && r.Tenant != "" { // authorised GETs, not the challenge
			n++
		}
	}
	return n
}

func TestKeyVaultRotation(t *testing.T) {
	c := cloudtest.Start(t)
	c.UseManagedIdentity(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	tenants := make([]string, 8)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("cccccccc-0000-4000-8000-%012d", i)
		c.AddTenant(tenants[i], cloudtest.Tenant{})
	}
	c.AddVault("appvault", cloudtest.ManagedIdentityTenant, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"app-secret": {Value: secret, Enabled: true}}})
	ts := newTenants(t, c, keyVaultApp(cloudtest.NewClientID()), options(c))
	if n := vaultReads(c); n != 1 {
		t.Fatalf("%d vault reads at start, want 1", n)
	}
	mustSignIn(t, c, ts, tenants[0])

	// The secret is rotated: Key Vault has the new one, Entra ID rejects the
	// old one. Sign-ins racing into new tenants re-read it once.
	c.SetSecret("appvault", "app-secret", cloudtest.Secret{Value: "app-secret-value-2", Enabled: true})
	c.UpdateApp(func(a *cloudtest.App) { a.Secret = "app-secret-value-2" })
	var wg sync.WaitGroup
	for _, tid := range tenants[1:] {
		wg.Go(func() {
			cred, err := ts.Credential(tid)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := cred.GetToken(ctx, graphTRO); err != nil {
				t.Errorf("sign-in to %s after rotation: %v", tid, err)
			}
		})
	}
	wg.Wait()
	if n := vaultReads(c); n != 2 {
		t.Errorf("%d vault reads, want 2 (start + one re-read)", n)
	}
	// The tenant signed in before the rotation signs in with the new
	// secret as well.
	c.ResetCounters()
	mustSignIn(t, c, ts, tenants[0])
	if n := c.TokenRequests(tenants[0]); n != 1 {
		t.Errorf("%d token requests for the tenant signed in before the rotation", n)
	}

	// Another rotation within the minute is not re-read: the sign-in fails
	// as the app's fault.
	c.SetSecret("appvault", "app-secret", cloudtest.Secret{Value: "app-secret-value-3", Enabled: true})
	c.UpdateApp(func(a *cloudtest.App) { a.Secret = "app-secret-value-3" })
	c.ResetCounters()
	_, err := token(t, ts, tenants[1])
	if outcome.Of(err) != outcome.AppCredentialInvalid || !strings.Contains(outcome.Detail(err), "AADSTS7000215") {
		t.Errorf("got %v", err)
	}
	if n := vaultReads(c); n != 0 {
		t.Errorf("%d vault reads within the minute, want 0", n)
	}
}

func TestKeyVaultSecretUnchanged(t *testing.T) {
	c := cloudtest.Start(t)
	c.UseManagedIdentity(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "the-right-one"})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	c.AddVault("appvault", cloudtest.ManagedIdentityTenant, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"app-secret": {Value: "a-stale-one", Enabled: true}}})
	ts := newTenants(t, c, keyVaultApp(cloudtest.NewClientID()), options(c))
	_, err := token(t, ts, tenantA)
	if outcome.Of(err) != outcome.AppCredentialInvalid {
		t.Errorf("got %v", err)
	}
	if n := c.TokenRequests(tenantA); n != 1 {
		t.Errorf("%d token requests, want 1 (no retry when the secret did not change)", n)
	}
	if n := vaultReads(c); n != 2 {
		t.Errorf("%d vault reads, want 2", n)
	}
}

func TestSignInFaults(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, options(c))
	for i, tc := range []struct {
		name   string
		tenant cloudtest.Tenant
		add    bool
		code   outcome.Code
		detail string
	}{
		{"app not in tenant", cloudtest.Tenant{SignIn: cloudtest.FaultAppNotInTenant}, true, outcome.AppNotInTenant, "AADSTS700016: the application is not present in the tenant"},
		{"tenant not found", cloudtest.Tenant{SignIn: cloudtest.FaultTenantNotFound}, true, outcome.TenantNotFound, "AADSTS90002"},
		{"unknown tenant", cloudtest.Tenant{}, false, outcome.TenantNotFound, "AADSTS90002"},
		{"invalid secret", cloudtest.Tenant{SignIn: cloudtest.FaultInvalidSecret}, true, outcome.AppCredentialInvalid, "AADSTS7000215"},
		{"expired secret", cloudtest.Tenant{SignIn: cloudtest.FaultSecretExpired}, true, outcome.AppCredentialInvalid, "AADSTS7000222"},
		{"invalid assertion", cloudtest.Tenant{SignIn: cloudtest.FaultInvalidAssertion}, true, outcome.AppCredentialInvalid, "AADSTS700027"},
		{"no service principal", cloudtest.Tenant{SignIn: cloudtest.FaultNoServicePrincipal}, true, outcome.AppNotInTenant, "AADSTS7000229: the app has no service principal in the tenant"},
		{"app disabled", cloudtest.Tenant{SignIn: cloudtest.FaultAppDisabled}, true, outcome.AppDisabled, "AADSTS7000112: the app's enterprise application is disabled"},
		{"conditional access", cloudtest.Tenant{SignIn: cloudtest.FaultConditionalAccess}, true, outcome.BlockedByPolicy, "AADSTS53003: a Conditional Access policy for workload identities"},
		{"security policy", cloudtest.Tenant{SignIn: cloudtest.FaultSecurityPolicy}, true, outcome.BlockedByPolicy, "AADSTS530032: a security policy"},
		{"tenant restrictions", cloudtest.Tenant{SignIn: cloudtest.FaultTenantRestrictions}, true, outcome.BlockedByPolicy, "AADSTS5000211: a tenant restrictions policy of the network the app signs in from"},
		{"tenant restrictions v1", cloudtest.Tenant{SignIn: cloudtest.FaultTenantRestrictionsV1}, true, outcome.BlockedByPolicy, "AADSTS500021: tenant restrictions"},
		{"tenant unavailable", cloudtest.Tenant{SignIn: cloudtest.FaultTenantUnavailable}, true, outcome.TenantNotFound, "AADSTS5000224: the tenant is no longer available"},
		{"tenant inactive", cloudtest.Tenant{SignIn: cloudtest.FaultTenantInactive}, true, outcome.TenantNotFound, "AADSTS5000225"},
		{"invalid tenant id", cloudtest.Tenant{SignIn: cloudtest.FaultInvalidTenantID}, true, outcome.TenantNotFound, "AADSTS900023"},
		{"US Government tenant", cloudtest.Tenant{Cloud: cloudtest.InstanceUSGov, RegionSubScope: "DODCON"}, true, outcome.WrongCloud, "AADSTS900382: the tenant is in another Microsoft cloud"},
		{"China tenant", cloudtest.Tenant{Cloud: cloudtest.InstanceChina}, true, outcome.TenantNotFound, "AADSTS90002"},
		{"other code", cloudtest.Tenant{SignIn: "50034"}, true, outcome.UpstreamError, "AADSTS50034"},
		{"throttled", cloudtest.Tenant{SignInThrottle: 1000}, true, outcome.Throttled, "throttled"},
		{"unavailable", cloudtest.Tenant{SignInStatus: 503}, true, outcome.UpstreamError, "HTTP 503"},
		{"server error", cloudtest.Tenant{SignInStatus: 500}, true, outcome.UpstreamError, "HTTP 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tid := fmt.Sprintf("eeeeeeee-0000-4000-8000-%012d", i)
			if tc.add {
				c.AddTenant(tid, tc.tenant)
			}
			_, err := token(t, ts, tid)
			var oe *outcome.Error
			if !errors.As(err, &oe) {
				t.Fatalf("not an *outcome.Error: %v", err)
			}
			if oe.Code != tc.code || !strings.Contains(oe.Detail, tc.detail) {
				t.Errorf("got %s %q, want %s containing %q", oe.Code, oe.Detail, tc.code, tc.detail)
			}
			var ce msalerrors.CallErr
			if !errors.As(err, &ce) || ce.Resp == nil {
				t.Error("MSAL's error with Entra ID's answer is not kept")
			}
			for _, leak := range []string{secret, "Trace ID", "{", cloudtest.TokenMarker} {
				if strings.Contains(oe.Detail, leak) {
					t.Errorf("detail %q contains %q", oe.Detail, leak)
				}
			}
		})
	}
}

func TestTimeoutAndNetwork(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	app := config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}

	t.Run("deadline", func(t *testing.T) {
		c.SetLatency(5 * time.Second)
		defer c.SetLatency(0)
		ts := newTenants(t, c, app, options(c))
		cred, _ := ts.Credential(tenantA)
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := cred.GetToken(tctx, graphTRO)
		if outcome.Of(err) != outcome.Timeout {
			t.Errorf("got %v", err)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("took %s", time.Since(start))
		}
	})
	t.Run("network", func(t *testing.T) {
		opts := options(c)
		opts.Transport = &http.Client{Transport: &http.Transport{
			DialContext: func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("connection refused") },
		}}
		ts := newTenants(t, c, app, opts)
		_, err := token(t, ts, tenantA)
		if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != "the sign-in service could not be reached" {
			t.Errorf("got %v", err)
		}
	})
}

func TestTenantIDValidation(t *testing.T) {
	c := cloudtest.Start(t)
	ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, options(c))
	for _, id := range []string{"common", "organizations", "consumers", "", "contoso.onmicrosoft.com",
		"9188040d-6c67-4c5b-b112-36a304b66dad", tenantA + "/../common", "not-a-guid"} {
		_, err := ts.Credential(id)
		if !errors.Is(err, azauth.ErrInvalidTenantID) || outcome.Of(err) != outcome.TenantNotFound {
			t.Errorf("Credential(%q) = %v", id, err)
		}
	}
	if c.TotalTokenRequests() != 0 {
		t.Error("token requests for rejected tenants")
	}
}

func TestOnlyOwnTenant(t *testing.T) {
	c, ts := twoTenants(t)
	cred, _ := ts.Credential(tenantA)
	tro := graphTRO
	tro.TenantID = tenantB
	_, err := cred.GetToken(ctx, tro)
	if !errors.Is(err, azauth.ErrWrongTenant) {
		t.Errorf("got %v", err)
	}
	tro.TenantID = strings.ToUpper(tenantA)
	if _, err := cred.GetToken(ctx, tro); err != nil {
		t.Errorf("own tenant named explicitly: %v", err)
	}
	if c.TokenRequests(tenantB) != 0 {
		t.Error("a token was requested in tenant B")
	}
}

func TestClassify(t *testing.T) {
	if azauth.Classify(nil) != nil {
		t.Error("Classify(nil)")
	}
	oe := outcome.New(outcome.Throttled, "x", nil)
	if azauth.Classify(oe) != error(oe) {
		t.Error("an *outcome.Error is not kept")
	}
	if got := outcome.Of(azauth.Classify(fmt.Errorf("wrapped: %w", context.DeadlineExceeded))); got != outcome.Timeout {
		t.Errorf("deadline: %s", got)
	}
	if got := outcome.Of(azauth.Classify(errors.New("boom"))); got != outcome.UpstreamError {
		t.Errorf("other: %s", got)
	}
}

func TestNewRejectsBadApps(t *testing.T) {
	for _, app := range []config.App{
		{ClientID: "nope", Method: config.MethodSecret, Secret: "x"},
		{ClientID: appID, Method: config.MethodSecret},
		{ClientID: appID, Method: "password"},
		{ClientID: appID, Method: config.MethodFederated, FederatedClientID: "nope"},
	} {
		if _, err := azauth.New(ctx, app, cloud.AzurePublic, azauth.Options{}); err == nil {
			t.Errorf("New(%+v): want an error", app)
		}
	}
}

// SignIn asks for every token the way the SDKs ask (each scope, with CAE),
// all at once, so that the clients' first calls reuse them instead of
// signing in again.
func TestSignInAsksLikeTheSDKs(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, options(c))
	vaultTRO := policy.TokenRequestOptions{Scopes: []string{cloud.AzurePublic.KeyVaultScope}, EnableCAE: true}
	const latency = 150 * time.Millisecond
	c.SetLatency(latency)
	defer c.SetLatency(0)
	start := time.Now()
	cred, err := ts.SignIn(ctx, tenantA, []string{graphTRO.Scopes[0], vaultTRO.Scopes[0]}, tenant.Shared{})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*latency {
		t.Errorf("SignIn took %s for two token requests of %s each: they did not run at once", took, latency)
	}
	if n := c.TokenRequests(tenantA); n != 2 {
		t.Fatalf("token requests after SignIn = %d, want 2", n)
	}
	for _, tro := range []policy.TokenRequestOptions{graphTRO, vaultTRO, graphTRO} {
		if _, err := cred.GetToken(ctx, tro); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.TokenRequests(tenantA); n != 2 {
		t.Errorf("token requests after the SDKs' own requests = %d, want still 2", n)
	}
	if _, err := ts.SignIn(ctx, "common", []string{graphTRO.Scopes[0]}, tenant.Shared{}); !errors.Is(err, azauth.ErrInvalidTenantID) {
		t.Errorf("SignIn(common) = %v", err)
	}
	before := c.TokenRequests(tenantA)
	if cred, err := ts.SignIn(ctx, tenantA, nil, tenant.Shared{}); err != nil || cred == nil {
		t.Errorf("SignIn without scopes = %v, %v; want the credential", cred, err)
	}
	if n := c.TokenRequests(tenantA); n != before {
		t.Errorf("SignIn without scopes made %d token requests", n-before)
	}
}

// SignIn fails only when no token could be had; a scope that failed alone
// is left to the request that needs it.
func TestSignInFailsWhenEveryScopeFails(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	c.AddTenant(tenantA, cloudtest.Tenant{SignIn: cloudtest.FaultAppNotInTenant})
	c.AddTenant(tenantB, cloudtest.Tenant{})
	ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, options(c))
	scopes := []string{graphTRO.Scopes[0], cloud.AzurePublic.KeyVaultScope}
	if _, err := ts.SignIn(ctx, tenantA, scopes, tenant.Shared{}); outcome.Of(err) != outcome.AppNotInTenant {
		t.Errorf("SignIn where every request fails = %v, want %s", err, outcome.AppNotInTenant)
	}
	// An unknown resource fails alone (AADSTS500011 in Entra ID; invalid
	// scope in the fake): the Graph token still makes the sign-in.
	if _, err := ts.SignIn(ctx, tenantB, []string{graphTRO.Scopes[0], "not-a-scope"}, tenant.Shared{}); err != nil {
		t.Errorf("SignIn with one failing scope = %v, want the credential", err)
	}
}

// answerTokens answers token requests itself and passes the rest (OpenID
// metadata) to the fakes.
type answerTokens struct {
	next   policy.Transporter
	status int
	header http.Header
}

func (a answerTokens) Do(r *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		return a.next.Do(r)
	}
	h := a.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	body := `{"error":"temporarily_unavailable","error_description":"AADSTS50196: busy","error_codes":[50196]}`
	return &http.Response{StatusCode: a.status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

// Entra ID's faults are reported by their cause when the tenant's budget
// cannot hold another retry, and an unreachable sign-in host at once.
func TestSignInRetryBudgetNamesTheCause(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	app := config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}
	getToken := func(t *testing.T, opts azauth.Options, budget time.Duration) error {
		t.Helper()
		opts.DisableInstanceDiscovery = true
		ts := newTenants(t, c, app, opts)
		cred, err := ts.Credential(tenantA)
		if err != nil {
			t.Fatal(err)
		}
		tctx, cancel := context.WithTimeout(ctx, budget)
		defer cancel()
		_, err = cred.GetToken(tctx, graphTRO)
		return err
	}

	t.Run("500 until the budget is spent", func(t *testing.T) {
		// 100 ms backoff: at most 130, 390, 910 ms after tries 1, 2, 3;
		// in a 1 s budget the third try is the last.
		err := getToken(t, azauth.Options{Transport: answerTokens{next: c.HTTPClient(), status: 500},
			Retry: &policy.RetryOptions{MaxRetries: 10, RetryDelay: 100 * time.Millisecond}}, time.Second)
		if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != "Entra ID answered HTTP 500 three times" {
			t.Errorf("err = %v (%s), want upstream_error: Entra ID answered HTTP 500 three times", err, outcome.Of(err))
		}
	})
	t.Run("Retry-After past the budget", func(t *testing.T) {
		err := getToken(t, azauth.Options{Transport: answerTokens{next: c.HTTPClient(), status: 429, header: http.Header{"Retry-After": {"30"}}}},
			2*time.Second)
		if outcome.Of(err) != outcome.Throttled {
			t.Errorf("err = %v (%s), want throttled", err, outcome.Of(err))
		}
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name string
		dial func(ctx context.Context, network, addr string) (net.Conn, error)
	}{
		{"connection refused", func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, refused)
		}},
		{"no such host", func(_ context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			lctx := zerolog.New(&logs).Level(zerolog.DebugLevel).WithContext(ctx)
			// Production's retry options: 0.8, 1.6 and 3.2 s of backoff.
			ts := newTenants(t, c, app, azauth.Options{Transport: &http.Client{Transport: &http.Transport{DialContext: tc.dial}}})
			cred, err := ts.Credential(tenantA)
			if err != nil {
				t.Fatal(err)
			}
			tctx, cancel := context.WithTimeout(lctx, 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err = cred.GetToken(tctx, graphTRO)
			if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != "the sign-in service could not be reached" {
				t.Errorf("err = %v, want upstream_error: the sign-in service could not be reached", err)
			}
			if d := time.Since(start); d > 700*time.Millisecond {
				t.Errorf("took %v: the unreachable host was retried", d)
			}
			if want := map[string]string{"connection refused": "connection refused", "no such host": "no such host"}[tc.name]; !strings.Contains(logs.String(), want) {
				t.Errorf("debug log %q does not carry the cause %q", logs.String(), want)
			}
			if strings.Contains(logs.String(), secret) {
				t.Error("the app secret is in the log")
			}
		})
	}
}

// Behind an HTTPS proxy, the proxy's refusal to tunnel to the sign-in host
// ends the sign-in at once, as a refused connection does without one; the
// proxy's timeout (504) is retried, as a dial timeout is.
func TestSignInThroughProxy(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	proxy, err := url.Parse(c.ProxyURL())
	if err != nil {
		t.Fatal(err)
	}
	app := config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}
	signIn := func(t *testing.T, retry *policy.RetryOptions) (time.Duration, error) {
		t.Helper()
		ts := newTenants(t, c, app, azauth.Options{Transport: azauth.SignInHTTPVia(proxy, c.CertPool()), Retry: retry, DisableInstanceDiscovery: true})
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := ts.SignIn(tctx, tenantA, []string{graphTRO.Scopes[0], cloud.AzurePublic.KeyVaultScope}, tenant.Shared{})
		return time.Since(start), err
	}
	if _, err := signIn(t, nil); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	for _, tc := range []struct {
		status int
		detail string
		max    time.Duration
		tries  int
	}{
		// Production's retry options: 0.8, 1.6 and 3.2 s of backoff.
		{http.StatusBadGateway, "the sign-in service could not be reached: the HTTPS proxy answered 502 Bad Gateway", 700 * time.Millisecond, 1},
		{http.StatusForbidden, "the sign-in service could not be reached: the HTTPS proxy answered 403 Forbidden", 700 * time.Millisecond, 1},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			c.RefuseHost(cloudtest.LoginHost, tc.status)
			defer c.RefuseHost(cloudtest.LoginHost, 0)
			took, err := signIn(t, nil)
			if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != tc.detail {
				t.Errorf("err = %v (%q), want upstream_error %q", err, outcome.Detail(err), tc.detail)
			}
			if took > tc.max {
				t.Errorf("took %s: the proxy's refusal was retried", took)
			}
		})
	}
	t.Run("504 is retried", func(t *testing.T) {
		c.RefuseHost(cloudtest.LoginHost, http.StatusGatewayTimeout)
		defer c.RefuseHost(cloudtest.LoginHost, 0)
		// Two retries after at least 80 and 240 ms of backoff.
		took, err := signIn(t, &policy.RetryOptions{MaxRetries: 2, RetryDelay: 100 * time.Millisecond})
		if outcome.Of(err) != outcome.UpstreamError || !strings.Contains(outcome.Detail(err), "504") {
			t.Errorf("err = %v (%q)", err, outcome.Detail(err))
		}
		if took < 300*time.Millisecond {
			t.Errorf("took %s: the proxy's timeout was not retried", took)
		}
	})
}

// A resource without a service principal in the tenant (Azure Key Vault in
// a tenant that never had an Azure subscription) is named in the outcome;
// the tenant's other tokens are unaffected.
func TestResourceNotInTenant(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	c.AddTenant(tenantA, cloudtest.Tenant{MissingResources: []string{cloudtest.VaultResource}})
	ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, options(c))
	cred, err := ts.SignIn(ctx, tenantA, []string{graphTRO.Scopes[0], cloud.AzurePublic.KeyVaultScope}, tenant.Shared{})
	if err != nil {
		t.Fatalf("the sign-in failed with the Key Vault prefetch: %v", err)
	}
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{cloud.AzurePublic.KeyVaultScope}, EnableCAE: true})
	want := "AADSTS500011: the tenant has no service principal for https://vault.azure.net"
	if outcome.Of(err) != outcome.ResourceNotInTenant || outcome.Detail(err) != want {
		t.Errorf("err = %v (%q), want resource_not_in_tenant %q", err, outcome.Detail(err), want)
	}
}

// Home reads what the tenant's OpenID metadata says, with no credential,
// and fails as a sign-in to that tenant would.
func TestHome(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	const (
		gov     = "dddddddd-0000-4000-8000-000000000003"
		deleted = "dddddddd-0000-4000-8000-000000000006"
		unknown = "dddddddd-0000-4000-8000-000000000007"
	)
	c.AddTenant(tenantA, cloudtest.Tenant{RegionScope: "NA", RegionSubScope: "GCC"})
	c.AddTenant(gov, cloudtest.Tenant{Cloud: cloudtest.InstanceUSGov, RegionSubScope: "DODCON"})
	c.AddTenant(deleted, cloudtest.Tenant{SignIn: cloudtest.FaultTenantUnavailable})
	ts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, options(c))
	for _, tc := range []struct {
		tenant string
		want   tenant.Home
		code   outcome.Code
		detail string
	}{
		{tenantA, tenant.Home{Instance: "microsoftonline.com", RegionScope: "NA", RegionSubScope: "GCC"}, outcome.OK, ""},
		{gov, tenant.Home{Instance: "microsoftonline.us", RegionScope: "USGov", RegionSubScope: "DODCON"}, outcome.OK, ""},
		{deleted, tenant.Home{}, outcome.TenantNotFound, "AADSTS5000224"},
		{unknown, tenant.Home{}, outcome.TenantNotFound, "AADSTS90002"},
		{"common", tenant.Home{}, outcome.TenantNotFound, "GUID of a customer directory"},
	} {
		got, err := ts.Home(ctx, tc.tenant)
		if got != tc.want || outcome.Of(err) != tc.code || !strings.Contains(outcome.Detail(err), tc.detail) {
			t.Errorf("%s: %+v %v (%s), want %+v %s %q", tc.tenant, got, err, outcome.Detail(err), tc.want, tc.code, tc.detail)
		}
	}
	if n := c.TotalTokenRequests(); n != 0 {
		t.Errorf("%d token requests: Home needs no credential", n)
	}
	for _, r := range c.Requests() {
		if r.Tenant == "common" {
			t.Error("a request for the common tenant")
		}
	}

	t.Run("metadata down", func(t *testing.T) {
		c.SetMetadataStatus(http.StatusServiceUnavailable)
		defer c.SetMetadataStatus(0)
		_, err := ts.Home(ctx, tenantA)
		if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != "Entra ID answered HTTP 503 three times" {
			t.Errorf("err = %v (%q)", err, outcome.Detail(err))
		}
	})
	t.Run("metadata hangs", func(t *testing.T) {
		c.SetMetadataHang(true)
		defer c.SetMetadataHang(false)
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, err := ts.Home(tctx, tenantA); outcome.Of(err) != outcome.Timeout {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("through a refusing proxy", func(t *testing.T) {
		proxy, _ := url.Parse(c.ProxyURL())
		pts := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret},
			azauth.Options{Transport: azauth.SignInHTTPVia(proxy, c.CertPool())})
		if got, err := pts.Home(ctx, gov); err != nil || got.Instance != "microsoftonline.us" {
			t.Errorf("through the proxy: %+v %v", got, err)
		}
		c.RefuseHost(cloudtest.LoginHost, http.StatusBadGateway)
		defer c.RefuseHost(cloudtest.LoginHost, 0)
		// A new transport: the open tunnel would be reused.
		pts = newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret},
			azauth.Options{Transport: azauth.SignInHTTPVia(proxy, c.CertPool())})
		start := time.Now()
		_, err := pts.Home(ctx, tenantA)
		if outcome.Of(err) != outcome.UpstreamError || !strings.Contains(outcome.Detail(err), "502") || time.Since(start) > 700*time.Millisecond {
			t.Errorf("err = %v (%q) after %s", err, outcome.Detail(err), time.Since(start))
		}
	})
}
