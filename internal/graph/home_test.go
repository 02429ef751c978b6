package graph

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

const homeTenant = "0e0e0e0e-0000-4000-8000-000000000001"

func homeFixture(t *testing.T, roles ...string) (*cloudtest.Cloud, *HomeTenant) {
	t.Helper()
	c := cloudtest.Start(t)
	app := cloudtest.DefaultApp
	app.HomeTenant = homeTenant
	app.Secrets = []cloudtest.AppCredential{
		{KeyID: "11111111-0000-4000-8000-000000000001", DisplayName: "sweep\u0007 2026", EndDateTime: time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)},
	}
	app.Certificates = []cloudtest.AppCredential{
		{KeyID: "22222222-0000-4000-8000-000000000002", DisplayName: "CN=tenantsweep", EndDateTime: time.Date(2028, 5, 1, 0, 0, 0, 0, time.UTC)},
	}
	c.SetApp(app)
	c.AddTenant(homeTenant, cloudtest.Tenant{OrgName: "Developer", GraphRoles: roles})
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", DefaultDomain: "contoso.onmicrosoft.com"})
	r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
	cred := c.SecretCredential(t, homeTenant)
	return c, r.InHomeTenant(app.ClientID, func() (azcore.TokenCredential, error) { return cred, nil })
}

func TestHomeTenantFindsTenants(t *testing.T) {
	c, h := homeFixture(t, "CrossTenantInformation.ReadBasic.All")
	info, err := h.FindTenant(context.Background(), tenantA)
	if err != nil || info != (tenant.TenantInfo{DisplayName: "Contoso", DefaultDomain: "contoso.onmicrosoft.com"}) {
		t.Fatalf("FindTenant = %+v, %v", info, err)
	}
	checkTenantOfTokens(t, c, homeTenant)
	if _, err := h.FindTenant(context.Background(), "dddddddd-0000-4000-8000-00000000dead"); outcome.Of(err) != outcome.UpstreamError {
		t.Errorf("unknown tenant: %v", err)
	}

	// Without the permission: graph_consent_missing, and the
	// GRAPH_PERMISSIONS check of customer tokens is not applied.
	_, h = homeFixture(t, "Organization.Read.All")
	if _, err := h.FindTenant(context.Background(), tenantA); outcome.Of(err) != outcome.GraphConsentMissing {
		t.Errorf("without CrossTenantInformation.ReadBasic.All: %v", err)
	}
}

func TestHomeTenantCredentials(t *testing.T) {
	_, h := homeFixture(t, "Application.Read.All")
	creds, err := h.Credentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 2 || creds[0].Kind != "client secret" || creds[0].Name != "sweep 2026" || creds[0].ID != "11111111-0000-4000-8000-000000000001" ||
		!creds[0].ExpiresOn.Equal(time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)) || creds[1].Kind != "certificate" || creds[1].Where != "registration" {
		t.Errorf("credentials = %+v", creds)
	}

	_, h = homeFixture(t, "Organization.Read.All")
	_, err = h.Credentials(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Application.Read.All") {
		t.Errorf("without Application.Read.All: %v", err)
	}
}
