package cloudtest

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

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
