package cloudtest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
)

const (
	appID   = "11111111-1111-4111-8111-111111111111"
	tenantA = "aaaaaaaa-0000-4000-8000-00000000000a"
	tenantB = "bbbbbbbb-0000-4000-8000-00000000000b"
)

func clientOptions(c *cloudtest.Cloud) azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: cloudtest.AuthorityHost},
		Transport: c.HTTPClient(),
		Retry:     policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
	}
}

func secretCred(t *testing.T, c *cloudtest.Cloud, tenant, secret string) *azidentity.ClientSecretCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(tenant, appID, secret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: clientOptions(c)})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

var graphScope = policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}, EnableCAE: true}

func getJSON(t *testing.T, c *cloudtest.Cloud, rawURL, token string, hdr map[string]string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("GET %s: %d %s: %v", rawURL, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func TestSecretSignInAndGraph(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 250})
	ctx := context.Background()

	cred := secretCred(t, c, tenantA, "s3cret")
	tok, err := cred.GetToken(ctx, graphScope)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cred.GetToken(ctx, graphScope); err != nil {
		t.Fatal(err)
	}
	if n := c.TokenRequests(tenantA); n != 1 {
		t.Errorf("token requests = %d, want 1 (cached)", n)
	}
	if !strings.Contains(tok.Token, cloudtest.TokenMarker) {
		t.Errorf("token %q lacks the marker", tok.Token)
	}
	cl, ok := c.TokenClaims(tok.Token)
	if !ok || cl.Tenant != tenantA || cl.Audience != cloudtest.GraphResource || cl.AppID != appID {
		t.Errorf("claims = %+v, %v", cl, ok)
	}
	// MSAL asks for instance metadata (cache aliases) once per client even
	// for login.microsoftonline.com; the fake answers it.
	discovery := 0
	for _, r := range c.Requests() {
		if r.Path == "/common/discovery/instance" {
			discovery++
			continue
		}
		if r.Host == cloudtest.LoginHost && r.Tenant != tenantA {
			t.Errorf("request for tenant %q: %+v", r.Tenant, r)
		}
	}
	if discovery > 1 {
		t.Errorf("%d instance discovery requests", discovery)
	}

	var org struct {
		Value []struct{ ID, DisplayName string }
	}
	if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/organization", tok.Token, nil, &org); st != 200 || len(org.Value) != 1 || org.Value[0].ID != tenantA || org.Value[0].DisplayName != "Contoso" {
		t.Errorf("organization: %d %+v", st, org)
	}

	// Paging through absolute nextLinks.
	next, pages, users := "https://graph.microsoft.com/v1.0/users?$select=id", 0, 0
	for next != "" {
		var page struct {
			Value []struct{ ID string }
			Next  string `json:"@odata.nextLink"`
		}
		if st := getJSON(t, c, next, tok.Token, nil, &page); st != 200 {
			t.Fatalf("users page: %d", st)
		}
		pages++
		users += len(page.Value)
		next = page.Next
		if next != "" && !strings.HasPrefix(next, "https://graph.microsoft.com/v1.0/users?") {
			t.Fatalf("nextLink %q", next)
		}
	}
	if pages != 3 || users != 250 {
		t.Errorf("pages=%d users=%d, want 3 and 250", pages, users)
	}

	// $count.
	req, _ := http.NewRequest(http.MethodGet, "https://graph.microsoft.com/v1.0/users/$count", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("ConsistencyLevel", "eventual")
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "250" {
		t.Errorf("$count = %q", b)
	}
	var counted struct {
		Count int `json:"@odata.count"`
	}
	getJSON(t, c, "https://graph.microsoft.com/v1.0/users?$count=true&$top=1", tok.Token, map[string]string{"ConsistencyLevel": "eventual"}, &counted)
	if counted.Count != 250 {
		t.Errorf("@odata.count = %d", counted.Count)
	}

	// No token, or a Key Vault token, is refused.
	if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/organization", "", nil, nil); st != 401 {
		t.Errorf("no token: %d", st)
	}
	kvTok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/organization", kvTok.Token, nil, nil); st != 401 {
		t.Errorf("vault token at Graph: %d", st)
	}
}

func aadCode(t *testing.T, err error) (int, int) {
	t.Helper()
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || afe.RawResponse == nil {
		t.Fatalf("not an AuthenticationFailedError with a response: %v", err)
	}
	body, _ := runtime.Payload(afe.RawResponse)
	var e struct {
		Codes []int `json:"error_codes"`
	}
	_ = json.Unmarshal(body, &e)
	if len(e.Codes) == 0 {
		return afe.RawResponse.StatusCode, 0
	}
	return afe.RawResponse.StatusCode, e.Codes[0]
}

func TestSignInFaults(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		fault  cloudtest.SignInFault
		status int
		code   int
	}{
		{"not consented", cloudtest.FaultAppNotInTenant, 400, 700016},
		{"tenant gone", cloudtest.FaultTenantNotFound, 400, 90002},
		{"bad secret", cloudtest.FaultInvalidSecret, 401, 7000215},
		{"expired secret", cloudtest.FaultSecretExpired, 401, 7000222},
		{"bad assertion", cloudtest.FaultInvalidAssertion, 401, 700027},
		{"other", "50034", 400, 50034},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tid := fmt.Sprintf("cccccccc-0000-4000-8000-%012d", tc.code)
			c.AddTenant(tid, cloudtest.Tenant{SignIn: tc.fault})
			_, err := secretCred(t, c, tid, "s3cret").GetToken(ctx, graphScope)
			if st, code := aadCode(t, err); st != tc.status || code != tc.code {
				t.Errorf("got %d AADSTS%d, want %d AADSTS%d", st, code, tc.status, tc.code)
			}
		})
	}

	t.Run("unknown tenant", func(t *testing.T) {
		_, err := secretCred(t, c, "dddddddd-0000-4000-8000-000000000000", "s3cret").GetToken(ctx, graphScope)
		if st, code := aadCode(t, err); st != 400 || code != 90002 {
			t.Errorf("got %d %d", st, code)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		c.AddTenant(tenantA, cloudtest.Tenant{})
		_, err := secretCred(t, c, tenantA, "nope").GetToken(ctx, graphScope)
		if st, code := aadCode(t, err); st != 401 || code != 7000215 {
			t.Errorf("got %d %d", st, code)
		}
	})
	t.Run("expired app secret", func(t *testing.T) {
		c.AddTenant(tenantB, cloudtest.Tenant{})
		c.UpdateApp(func(a *cloudtest.App) { a.Expired = true })
		defer c.UpdateApp(func(a *cloudtest.App) { a.Expired = false })
		_, err := secretCred(t, c, tenantB, "s3cret").GetToken(ctx, graphScope)
		if _, code := aadCode(t, err); code != 7000222 {
			t.Errorf("got %d", code)
		}
	})
	t.Run("throttled then ok", func(t *testing.T) {
		tid := "eeeeeeee-0000-4000-8000-000000000001"
		c.AddTenant(tid, cloudtest.Tenant{SignInThrottle: 2})
		if _, err := secretCred(t, c, tid, "s3cret").GetToken(ctx, graphScope); err != nil {
			t.Fatal(err)
		}
		if n := c.TokenRequests(tid); n != 3 {
			t.Errorf("token requests = %d, want 3", n)
		}
	})
	t.Run("503", func(t *testing.T) {
		tid := "eeeeeeee-0000-4000-8000-000000000002"
		c.AddTenant(tid, cloudtest.Tenant{SignInStatus: 503})
		_, err := secretCred(t, c, tid, "s3cret").GetToken(ctx, graphScope)
		if st, _ := aadCode(t, err); st != 503 {
			t.Errorf("status %d", st)
		}
	})
}

func TestCertificateSignIn(t *testing.T) {
	c := cloudtest.Start(t)
	pemData, cert := cloudtest.NewCertificate(t)
	c.SetApp(cloudtest.App{ClientID: appID, Certificate: cert})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	ctx := context.Background()

	for name, load := range map[string]func() ([]byte, []byte){
		"pem": func() ([]byte, []byte) { return pemData, nil },
		"pkcs12": func() ([]byte, []byte) {
			b, _ := os.ReadFile(cloudtest.WritePKCS12(t, pemData, "pw"))
			return b, []byte("pw")
		},
	} {
		t.Run(name, func(t *testing.T) {
			data, pw := load()
			certs, key, err := azidentity.ParseCertificates(data, pw)
			if err != nil {
				t.Fatal(err)
			}
			cred, err := azidentity.NewClientCertificateCredential(tenantA, appID, certs, key,
				&azidentity.ClientCertificateCredentialOptions{ClientOptions: clientOptions(c)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cred.GetToken(ctx, graphScope); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("other certificate", func(t *testing.T) {
		other, _ := cloudtest.NewCertificate(t)
		certs, key, _ := azidentity.ParseCertificates(other, nil)
		cred, _ := azidentity.NewClientCertificateCredential(tenantA, appID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: clientOptions(c)})
		_, err := cred.GetToken(ctx, graphScope)
		if _, code := aadCode(t, err); code != 700027 {
			t.Errorf("code %d", code)
		}
	})
}

func TestManagedIdentityAndFederated(t *testing.T) {
	c := cloudtest.Start(t)
	c.UseManagedIdentity(t)
	miID := cloudtest.NewClientID() // unique: MSAL's MI cache is process-wide
	c.SetApp(cloudtest.App{ClientID: appID, AcceptMIAssertions: true, FederatedMIClientID: miID})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	c.AddTenant(tenantB, cloudtest.Tenant{})
	ctx := context.Background()

	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: clientOptions(c), ID: azidentity.ClientID(miID)})
	if err != nil {
		t.Fatal(err)
	}
	assert := func(ctx context.Context) (string, error) {
		tk, err := mi.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://AzureADTokenExchange/.default"}})
		return tk.Token, err
	}
	for _, tid := range []string{tenantA, tenantB} {
		cred, err := azidentity.NewClientAssertionCredential(tid, appID, assert,
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: clientOptions(c)})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := cred.GetToken(ctx, graphScope)
		if err != nil {
			t.Fatal(err)
		}
		if cl, _ := c.TokenClaims(tok.Token); cl.Tenant != tid {
			t.Errorf("token tenant %q, want %q", cl.Tenant, tid)
		}
	}
	if n := c.ManagedIdentityRequests(); n != 1 {
		t.Errorf("MSI requests = %d, want 1 (cached)", n)
	}

	// An assertion of another managed identity is refused.
	other, _ := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: clientOptions(c), ID: azidentity.ClientID(cloudtest.NewClientID())})
	cred, _ := azidentity.NewClientAssertionCredential(tenantA, appID, func(ctx context.Context) (string, error) {
		tk, err := other.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://AzureADTokenExchange/.default"}})
		return tk.Token, err
	}, &azidentity.ClientAssertionCredentialOptions{ClientOptions: clientOptions(c)})
	_, err = cred.GetToken(ctx, graphScope)
	if _, code := aadCode(t, err); code != 700213 {
		t.Errorf("code %d, want 700213", code)
	}

	// Unsupported resource.
	if _, err := mi.GetToken(ctx, graphScope); err == nil {
		t.Error("MI token for Graph: want an error")
	}
}

func TestKeyVault(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	c.AddTenant(tenantB, cloudtest.Tenant{})
	exp := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	c.AddVault("kv-a", tenantA, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"db":       {Value: "hunter2", Enabled: true, ExpiresOn: exp},
		"off":      {Value: "x"},
		"slow":     {Value: "y", Enabled: true, Throttle: 2},
		"gone":     {Value: "z", Enabled: true, Status: 404},
		"versions": {Value: "v", Enabled: true, Version: "0123456789abcdef0123456789abcdef"},
	}})
	c.AddVault("kv-denied", tenantA, cloudtest.Vault{Status: 403})
	ctx := context.Background()
	opts := &azsecrets.ClientOptions{ClientOptions: clientOptions(c)}

	client, err := azsecrets.NewClient(cloudtest.VaultURL("kv-a"), secretCred(t, c, tenantA, "s3cret"), opts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.GetSecret(ctx, "db", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *resp.Value != "hunter2" || resp.ID.Name() != "db" || resp.ID.Version() == "" || !resp.Attributes.Expires.Equal(exp) || !*resp.Attributes.Enabled {
		t.Errorf("secret = %+v %+v", resp.ID, resp.Attributes)
	}
	var sawChallenge bool
	for _, r := range c.Requests() {
		if r.Host == "kv-a.vault.azure.net" && r.Tenant == "" {
			sawChallenge = true
		}
	}
	if !sawChallenge {
		t.Error("no unauthenticated challenge request")
	}

	// A new version, the old one still readable by version.
	oldVersion := resp.ID.Version()
	c.SetSecret("kv-a", "db", cloudtest.Secret{Value: "hunter3", Enabled: true})
	if r, err := client.GetSecret(ctx, "db", "", nil); err != nil || *r.Value != "hunter3" || r.ID.Version() == oldVersion {
		t.Errorf("rotated: %v %v", err, r.ID)
	}
	if r, err := client.GetSecret(ctx, "db", oldVersion, nil); err != nil || *r.Value != "hunter2" {
		t.Errorf("old version: %v", err)
	}
	if r, err := client.GetSecret(ctx, "versions", "", nil); err != nil || r.ID.Version() != "0123456789abcdef0123456789abcdef" {
		t.Errorf("explicit version: %v", err)
	}

	respErr := func(err error) (int, string) {
		var re *azcore.ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("not a ResponseError: %v", err)
		}
		return re.StatusCode, re.ErrorCode
	}
	if _, err := client.GetSecret(ctx, "missing", "", nil); err == nil {
		t.Error("missing: no error")
	} else if st, code := respErr(err); st != 404 || code != "SecretNotFound" {
		t.Errorf("missing: %d %s", st, code)
	}
	if _, err := client.GetSecret(ctx, "gone", "", nil); err == nil {
		t.Error("gone: no error")
	} else if st, code := respErr(err); st != 404 || code != "SecretNotFound" {
		t.Errorf("gone: %d %s", st, code)
	}
	if _, err := client.GetSecret(ctx, "off", "", nil); err == nil {
		t.Error("disabled: no error")
	} else if st, code := respErr(err); st != 403 || code != "Forbidden" {
		t.Errorf("disabled: %d %s", st, code)
	}
	if r, err := client.GetSecret(ctx, "slow", "", nil); err != nil || *r.Value != "y" {
		t.Errorf("throttled: %v", err)
	}
	pager := client.NewListSecretPropertiesVersionsPager("off", nil)
	page, err := pager.NextPage(ctx)
	if err != nil || len(page.Value) != 1 || *page.Value[0].Attributes.Enabled {
		t.Errorf("versions of a disabled secret: %v %+v", err, page)
	}

	denied, _ := azsecrets.NewClient(cloudtest.VaultURL("kv-denied"), secretCred(t, c, tenantA, "s3cret"), opts)
	if _, err := denied.GetSecret(ctx, "db", "", nil); err == nil {
		t.Error("denied: no error")
	} else if st, code := respErr(err); st != 403 || code != "Forbidden" || !strings.Contains(err.Error(), "does not have secrets get permission") {
		t.Errorf("denied: %d %s", st, code)
	}

	// A credential of another tenant cannot follow the challenge.
	foreign, _ := azsecrets.NewClient(cloudtest.VaultURL("kv-a"), secretCred(t, c, tenantB, "s3cret"), opts)
	if _, err := foreign.GetSecret(ctx, "db", "", nil); err == nil {
		t.Error("foreign tenant: no error")
	}

	// An unknown vault does not resolve.
	nowhere, _ := azsecrets.NewClient(cloudtest.VaultURL("nowhere"), secretCred(t, c, tenantA, "s3cret"), opts)
	if _, err := nowhere.GetSecret(ctx, "db", "", nil); err == nil || !strings.Contains(err.Error(), "no such host") {
		t.Errorf("unknown vault: %v", err)
	}
}

func TestManagedIdentityReadsHomeVault(t *testing.T) {
	c := cloudtest.Start(t)
	c.UseManagedIdentity(t)
	c.AddVault("home", cloudtest.ManagedIdentityTenant, cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"app": {Value: "v1", Enabled: true}}})
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: clientOptions(c), ID: azidentity.ClientID(cloudtest.NewClientID())})
	if err != nil {
		t.Fatal(err)
	}
	client, _ := azsecrets.NewClient(cloudtest.VaultURL("home"), mi, &azsecrets.ClientOptions{ClientOptions: clientOptions(c)})
	r, err := client.GetSecret(context.Background(), "app", "", nil)
	if err != nil || *r.Value != "v1" {
		t.Fatalf("%v", err)
	}
}

func TestGraphFaults(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	c.AddTenant(tenantA, cloudtest.Tenant{GraphThrottle: 1, GraphStatus: 0})
	tok, err := secretCred(t, c, tenantA, "s3cret").GetToken(context.Background(), graphScope)
	if err != nil {
		t.Fatal(err)
	}
	org := "https://graph.microsoft.com/v1.0/organization"
	var e struct{ Error struct{ Code string } }
	if st := getJSON(t, c, org, tok.Token, nil, &e); st != 429 || e.Error.Code != "TooManyRequests" {
		t.Errorf("throttle: %d %+v", st, e)
	}
	if st := getJSON(t, c, org, tok.Token, nil, nil); st != 200 {
		t.Errorf("after throttle: %d", st)
	}
	c.UpdateTenant(tenantA, func(tn *cloudtest.Tenant) { tn.GraphStatus = 403 })
	if st := getJSON(t, c, org, tok.Token, nil, &e); st != 403 || e.Error.Code != "Authorization_RequestDenied" {
		t.Errorf("403: %d %+v", st, e)
	}
	c.UpdateTenant(tenantA, func(tn *cloudtest.Tenant) { tn.GraphStatus = 0; tn.GraphHang = true })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, org, nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	if _, err := c.HTTPClient().Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang: %v", err)
	}
	c.ExpireTokens()
	c.UpdateTenant(tenantA, func(tn *cloudtest.Tenant) { tn.GraphHang = false })
	if st := getJSON(t, c, org, tok.Token, nil, nil); st != 401 {
		t.Errorf("expired token: %d", st)
	}
}

func TestProxy(t *testing.T) {
	c := cloudtest.Start(t)
	c.AddTenant(tenantA, cloudtest.Tenant{})
	proxyURL, _ := url.Parse(c.ProxyURL())
	client := &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(proxyURL),
		TLSClientConfig: &tls.Config{RootCAs: c.CertPool()},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://login.microsoftonline.com/" + tenantA + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&cfg)
	resp.Body.Close()
	if cfg.TokenEndpoint != "https://login.microsoftonline.com/"+tenantA+"/oauth2/v2.0/token" {
		t.Errorf("token_endpoint %q", cfg.TokenEndpoint)
	}
	// What a child process does with SSL_CERT_FILE and HTTPS_PROXY: the
	// default transport, HTTP/2 through the tunnel.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(proxyURL)
	tr.TLSClientConfig = &tls.Config{RootCAs: c.CertPool()}
	h2 := &http.Client{Transport: tr}
	defer h2.CloseIdleConnections()
	resp, err = h2.Get("https://login.microsoftonline.com/" + tenantA + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("through the proxy with the default transport: %d %s", resp.StatusCode, resp.Proto)
	}
	if _, err := client.Get("https://example.com/"); err == nil {
		t.Error("example.com through the proxy: want an error")
	}
	if b := c.CACertPEM(); !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Error("CACertPEM")
	}
	if p := c.WriteCACert(t); p == "" {
		t.Error("WriteCACert")
	}
}

// TestChildProcess runs this test binary again with only SSL_CERT_FILE and
// HTTPS_PROXY pointing at the fakes, as an end-to-end test runs the daemon.
func TestChildProcess(t *testing.T) {
	if os.Getenv("CLOUDTEST_CHILD") == "1" {
		resp, err := http.Get("https://login.microsoftonline.com/" + tenantA + "/v2.0/.well-known/openid-configuration")
		if err != nil {
			fmt.Println("child error:", err)
			os.Exit(3)
		}
		resp.Body.Close()
		fmt.Println("child status:", resp.StatusCode, resp.Proto)
		return
	}
	c := cloudtest.Start(t)
	c.AddTenant(tenantA, cloudtest.Tenant{})
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CLOUDTEST_CHILD=1", "HTTPS_PROXY="+c.ProxyURL(), "SSL_CERT_FILE="+c.WriteCACert(t), "NO_PROXY=", "no_proxy=")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "child status: 200 HTTP/2.0") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if n := len(c.Requests()); n != 1 {
		t.Errorf("%d requests reached the fake", n)
	}
}

func TestConcurrentLoadWithLatency(t *testing.T) {
	c := cloudtest.Start(t)
	c.AddTenant(tenantA, cloudtest.Tenant{})
	c.SetLatency(200 * time.Millisecond)
	const n = 2000
	client := c.HTTPClient()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			resp, err := client.Get("https://login.microsoftonline.com/" + tenantA + "/v2.0/.well-known/openid-configuration")
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("%d requests with 200ms latency took %s", n, d)
	}
	if got := len(c.Requests()); got != n {
		t.Errorf("recorded %d requests", got)
	}
	c.ResetCounters()
	if len(c.Requests()) != 0 {
		t.Error("ResetCounters")
	}
}

// The Graph fake answers JSON batching as Graph documents it: a gzipped
// body is accepted, each step is answered with its id, status, headers and
// body (JSON as JSON, text base64-encoded), faults per step, one latency for
// the whole batch, and more than 20 steps is a 400.
func TestGraphBatch(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 250, GraphThrottle: 1})
	tok, err := secretCred(t, c, tenantA, "s3cret").GetToken(context.Background(), graphScope)
	if err != nil {
		t.Fatal(err)
	}
	post := func(body string, gz bool) (int, []byte) {
		t.Helper()
		var buf bytes.Buffer
		if gz {
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write([]byte(body))
			zw.Close()
		} else {
			buf.WriteString(body)
		}
		req, _ := http.NewRequest(http.MethodPost, "https://graph.microsoft.com/v1.0/$batch", &buf)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/json")
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := c.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	c.ResetCounters()
	c.SetLatency(50 * time.Millisecond)
	start := time.Now()
	status, b := post(`{"requests":[
		{"id":"1","method":"GET","url":"/organization?$select=id,displayName"},
		{"id":"2","method":"GET","url":"/organization"},
		{"id":"3","method":"GET","url":"/users?$count=true&$top=1","headers":{"ConsistencyLevel":"eventual"}},
		{"id":"4","method":"GET","url":"/users/$count","headers":{"ConsistencyLevel":"eventual"}}]}`, true)
	if d := time.Since(start); d > time.Second {
		t.Errorf("batch took %v", d)
	}
	c.SetLatency(0)
	if status != 200 {
		t.Fatalf("batch: %d %s", status, b)
	}
	var out struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Responses) != 4 {
		t.Fatalf("batch body %s: %v", b, err)
	}
	byID := map[string]int{}
	for i, r := range out.Responses {
		byID[r.ID] = i
	}
	if r := out.Responses[byID["1"]]; r.Status != 429 || r.Headers["Retry-After"] != "0" {
		t.Errorf("step 1 = %d %v, want the throttled step", r.Status, r.Headers)
	}
	var org struct {
		Value []struct{ DisplayName string } `json:"value"`
	}
	if r := out.Responses[byID["2"]]; r.Status != 200 || json.Unmarshal(r.Body, &org) != nil || len(org.Value) != 1 || org.Value[0].DisplayName != "Contoso" {
		t.Errorf("step 2 = %d %s", r.Status, r.Body)
	}
	var counted struct {
		Count int `json:"@odata.count"`
	}
	if r := out.Responses[byID["3"]]; r.Status != 200 || json.Unmarshal(r.Body, &counted) != nil || counted.Count != 250 {
		t.Errorf("step 3 = %d %s", r.Status, r.Body)
	}
	var text string
	if r := out.Responses[byID["4"]]; r.Status != 200 || json.Unmarshal(r.Body, &text) != nil {
		t.Errorf("step 4 = %d %s", r.Status, r.Body)
	} else if raw, _ := base64.StdEncoding.DecodeString(text); string(raw) != "250" {
		t.Errorf("step 4 body %q, want base64 of 250", text)
	}
	if n := len(c.Requests()); n != 1 {
		t.Errorf("%d requests recorded, want the one batch", n)
	}

	var many []string
	for i := range 21 {
		many = append(many, fmt.Sprintf(`{"id":"%d","method":"GET","url":"/organization"}`, i))
	}
	if status, _ := post(`{"requests":[`+strings.Join(many, ",")+`]}`, false); status != 400 {
		t.Errorf("21 steps: %d, want 400", status)
	}
	if status, _ := post(`{"requests":[{"id":"1","method":"GET","url":"https://evil.example/organization"}]}`, false); status != 400 {
		t.Errorf("absolute step url: %d, want 400", status)
	}
}
