package cloudtest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
)

// Each fault is answered as Entra ID answers it, through the unmodified
// azidentity credential: its status, its AADSTS code in error_codes and its
// text in error_description.
func TestMoreSignInFaults(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tenant cloudtest.Tenant
		scope  policy.TokenRequestOptions
		status int
		code   int
		text   string
	}{
		{"no service principal", cloudtest.Tenant{SignIn: cloudtest.FaultNoServicePrincipal}, graphScope, 401, 7000229, "is missing service principal in the tenant"},
		{"app disabled", cloudtest.Tenant{SignIn: cloudtest.FaultAppDisabled}, graphScope, 400, 7000112, "is disabled"},
		{"conditional access", cloudtest.Tenant{SignIn: cloudtest.FaultConditionalAccess}, graphScope, 400, 53003, "blocked by Conditional Access policies"},
		{"security policy", cloudtest.Tenant{SignIn: cloudtest.FaultSecurityPolicy}, graphScope, 400, 530032, "security policy that blocks this request"},
		{"tenant restrictions", cloudtest.Tenant{SignIn: cloudtest.FaultTenantRestrictions}, graphScope, 400, 5000211, "tenant restrictions policy"},
		{"tenant restrictions v1", cloudtest.Tenant{SignIn: cloudtest.FaultTenantRestrictionsV1}, graphScope, 400, 500021, "tenant is denied"},
		{"tenant unavailable", cloudtest.Tenant{SignIn: cloudtest.FaultTenantUnavailable}, graphScope, 400, 5000224, "this resource is not available"},
		{"tenant inactive", cloudtest.Tenant{SignIn: cloudtest.FaultTenantInactive}, graphScope, 400, 5000225, "blocked due to inactivity"},
		{"invalid tenant id", cloudtest.Tenant{SignIn: cloudtest.FaultInvalidTenantID}, graphScope, 400, 900023, "neither a valid DNS name"},
		{"US Government tenant", cloudtest.Tenant{Cloud: cloudtest.InstanceUSGov, RegionSubScope: "DODCON"}, graphScope, 400, 900382, "Cross Cloud"},
		{"China tenant", cloudtest.Tenant{Cloud: cloudtest.InstanceChina}, graphScope, 400, 90002, "not found"},
		{"no Key Vault principal", cloudtest.Tenant{MissingResources: []string{cloudtest.VaultResource}},
			policy.TokenRequestOptions{Scopes: []string{cloudtest.VaultResource + "/.default"}}, 400, 500011, "resource principal named " + cloudtest.VaultResource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tid := fmt.Sprintf("cccccccc-1111-4000-8000-%012d", tc.code)
			c.AddTenant(tid, tc.tenant)
			_, err := secretCred(t, c, tid, "s3cret").GetToken(ctx, tc.scope)
			if st, code := aadCode(t, err); st != tc.status || code != tc.code {
				t.Errorf("got %d AADSTS%d, want %d AADSTS%d", st, code, tc.status, tc.code)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("the error does not carry Entra ID's text %q: %v", tc.text, err)
			}
		})
	}
	t.Run("other resources still work", func(t *testing.T) {
		tid := "cccccccc-1111-4000-8000-000000000001"
		c.AddTenant(tid, cloudtest.Tenant{MissingResources: []string{cloudtest.VaultResource}})
		if _, err := secretCred(t, c, tid, "s3cret").GetToken(ctx, graphScope); err != nil {
			t.Error(err)
		}
	})
}

type openIDConfig struct {
	Issuer         string  `json:"issuer"`
	TokenEndpoint  string  `json:"token_endpoint"`
	Instance       string  `json:"cloud_instance_name"`
	RegionScope    string  `json:"tenant_region_scope"`
	RegionSubScope *string `json:"tenant_region_sub_scope"`
	GraphHost      string  `json:"msgraph_host"`
	Error          string  `json:"error"`
	Codes          []int   `json:"error_codes"`
}

func metadataURL(tenant string) string {
	return "https://" + cloudtest.LoginHost + "/" + tenant + "/v2.0/.well-known/openid-configuration"
}

// The OpenID metadata endpoint needs no credential and says whether the
// tenant exists and which cloud it lives in, as Entra ID's public endpoint
// says it: a US Government tenant shows its own cloud, a tenant operated by
// 21Vianet is not found, and a tenant Entra ID cannot serve answers its
// AADSTS error.
func TestOpenIDMetadata(t *testing.T) {
	c := cloudtest.Start(t)
	const (
		commercial = "dddddddd-0000-4000-8000-000000000001"
		gcc        = "dddddddd-0000-4000-8000-000000000002"
		gccHigh    = "dddddddd-0000-4000-8000-000000000003"
		dod        = "dddddddd-0000-4000-8000-000000000004"
		china      = "dddddddd-0000-4000-8000-000000000005"
		deleted    = "dddddddd-0000-4000-8000-000000000006"
		missing    = "dddddddd-0000-4000-8000-000000000007"
	)
	c.AddTenant(commercial, cloudtest.Tenant{})
	c.AddTenant(gcc, cloudtest.Tenant{RegionScope: "NA", RegionSubScope: "GCC"})
	c.AddTenant(gccHigh, cloudtest.Tenant{Cloud: cloudtest.InstanceUSGov, RegionSubScope: "DODCON"})
	c.AddTenant(dod, cloudtest.Tenant{Cloud: cloudtest.InstanceUSGov, RegionSubScope: "DOD"})
	c.AddTenant(china, cloudtest.Tenant{Cloud: cloudtest.InstanceChina})
	c.AddTenant(deleted, cloudtest.Tenant{SignIn: cloudtest.FaultTenantUnavailable})
	for _, tc := range []struct {
		tenant, instance, scope, sub string
		status, code                 int
	}{
		{commercial, cloudtest.InstancePublic, "EU", "", 200, 0},
		{gcc, cloudtest.InstancePublic, "NA", "GCC", 200, 0},
		{gccHigh, cloudtest.InstanceUSGov, "USGov", "DODCON", 200, 0},
		{dod, cloudtest.InstanceUSGov, "USGov", "DOD", 200, 0},
		{china, "", "", "", 400, 90002},
		{deleted, "", "", "", 400, 5000224},
		{missing, "", "", "", 400, 90002},
	} {
		var got openIDConfig
		status := getJSON(t, c, metadataURL(tc.tenant), "", nil, &got)
		sub := ""
		if got.RegionSubScope != nil {
			sub = *got.RegionSubScope
		}
		code := 0
		if len(got.Codes) > 0 {
			code = got.Codes[0]
		}
		if status != tc.status || got.Instance != tc.instance || got.RegionScope != tc.scope || sub != tc.sub || code != tc.code {
			t.Errorf("%s: %d %+v, want %d %s %s %q AADSTS%d", tc.tenant, status, got, tc.status, tc.instance, tc.scope, tc.sub, tc.code)
		}
		if status == 200 && (got.Issuer != "https://"+cloudtest.LoginHost+"/"+tc.tenant+"/v2.0" || !strings.HasSuffix(got.TokenEndpoint, "/"+tc.tenant+"/oauth2/v2.0/token")) {
			t.Errorf("%s: issuer %s, token endpoint %s", tc.tenant, got.Issuer, got.TokenEndpoint)
		}
		if status != 200 && got.Error != "invalid_tenant" {
			t.Errorf("%s: error %q", tc.tenant, got.Error)
		}
	}

	t.Run("down", func(t *testing.T) {
		c.SetMetadataStatus(http.StatusServiceUnavailable)
		defer c.SetMetadataStatus(0)
		var got openIDConfig
		if status := getJSON(t, c, metadataURL(commercial), "", nil, &got); status != http.StatusServiceUnavailable || got.Error != "temporarily_unavailable" {
			t.Errorf("%d %+v", status, got)
		}
	})
	t.Run("hangs", func(t *testing.T) {
		c.SetMetadataHang(true)
		defer c.SetMetadataHang(false)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, metadataURL(commercial), nil)
		if resp, err := c.HTTPClient().Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("answered %d", resp.StatusCode)
		}
	})
}
