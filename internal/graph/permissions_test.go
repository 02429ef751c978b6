package graph

import (
	"context"
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// The default of config's GRAPH_PERMISSIONS.
var appNeeds = [][]string{
	{"Organization.Read.All", "Directory.Read.All"},
	{"User.Read.All", "Directory.Read.All"},
}

func TestPermissionCheck(t *testing.T) {
	tests := []struct {
		name    string
		tenant  cloudtest.Tenant
		missing []string // nil: the read goes on
	}{
		{name: "granted", tenant: cloudtest.Tenant{GraphRoles: []string{"Organization.Read.All", "User.Read.All"}}},
		{name: "user read lacking", tenant: cloudtest.Tenant{GraphRoles: []string{"Organization.Read.All"}},
			missing: []string{"User.Read.All (or Directory.Read.All)"}},
		{name: "none granted", tenant: cloudtest.Tenant{GraphRoles: []string{}},
			missing: []string{"Organization.Read.All (or Directory.Read.All)", "User.Read.All (or Directory.Read.All)"}},
		{name: "directory read alone", tenant: cloudtest.Tenant{GraphRoles: []string{"Directory.Read.All"}}},
		{name: "readwrite counts for read", tenant: cloudtest.Tenant{GraphRoles: []string{"organization.readwrite.all", "User.ReadWrite.All"}}},
		{name: "no roles claim", tenant: cloudtest.Tenant{GraphToken: cloudtest.TokenNoRoles}},
		{name: "not a JWT", tenant: cloudtest.Tenant{GraphToken: cloudtest.TokenOpaque}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cloudtest.StartWithApp(t)
			tn := tt.tenant
			tn.OrgName, tn.Users = "Contoso", 7
			c.AddTenant(tenantA, tn)
			r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport, Permissions: appNeeds})
			info, err := r.Organization(context.Background(), c.SecretCredential(t, tenantA))
			if tt.missing == nil {
				if err != nil || info.Organization != "Contoso" || info.UserCount != 7 {
					t.Fatalf("Organization = %+v, %v; want the read to go on", info, err)
				}
				return
			}
			if got := outcome.Of(err); got != outcome.GraphPermissionMissing {
				t.Fatalf("outcome %s (%v), want %s", got, err, outcome.GraphPermissionMissing)
			}
			d := outcome.Detail(err)
			for _, m := range tt.missing {
				if !strings.Contains(d, m) {
					t.Errorf("detail %q does not name %q", d, m)
				}
			}
			if strings.Contains(d, cloudtest.TokenMarker) || strings.Contains(err.Error(), cloudtest.TokenMarker) {
				t.Error("the error carries the token")
			}
			if reqs := graphRequests(c); len(reqs) != 0 {
				t.Errorf("%d Graph requests (first %s %s), want none before the permissions are granted", len(reqs), reqs[0].Method, reqs[0].Path)
			}
		})
	}
}

// Without Permissions the token is not inspected at all: the reads are sent
// even for a tenant that granted nothing, and it is Graph that refuses them
// (graph_consent_missing, not the check's graph_permission_missing).
func TestNoPermissionsNoCheck(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 1, GraphRoles: []string{}})
	r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
	_, err := r.Organization(context.Background(), c.SecretCredential(t, tenantA))
	if got := outcome.Of(err); got != outcome.GraphConsentMissing {
		t.Fatalf("outcome %s (%v), want %s from Graph's own 403", got, err, outcome.GraphConsentMissing)
	}
	if len(graphRequests(c)) == 0 {
		t.Error("no Graph request: the token was checked before the reads were sent")
	}
}
