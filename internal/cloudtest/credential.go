package cloudtest

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// The app and tenants most tests need: one multi-tenant app with a client
// secret, and two customer tenants. Tests that need more make their own.
const (
	TenantA = "aaaaaaaa-0000-4000-8000-000000000001"
	TenantB = "bbbbbbbb-0000-4000-8000-000000000002"
)

// DefaultApp is the app StartWithApp registers.
var DefaultApp = App{ClientID: "5a5a5a5a-0000-4000-8000-00000000a001", Secret: "cloudtest-app-secret"}

// StartWithApp starts the fakes with DefaultApp registered.
func StartWithApp(t testing.TB) *Cloud {
	t.Helper()
	c := Start(t)
	c.SetApp(DefaultApp)
	return c
}

// SecretCredential is a real azidentity credential of the app set with
// SetApp, in tenantID, that reaches the fakes and does not retry.
func (c *Cloud) SecretCredential(t testing.TB, tenantID string) azcore.TokenCredential {
	t.Helper()
	c.mu.Lock()
	app := c.app
	c.mu.Unlock()
	cred, err := azidentity.NewClientSecretCredential(tenantID, app.ClientID, app.Secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: c.HTTPClient(),
			Cloud:     azcloud.Configuration{ActiveDirectoryAuthorityHost: AuthorityHost},
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatalf("cloudtest: credential: %v", err)
	}
	return cred
}
