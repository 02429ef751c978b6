package tasks_test

import (
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/task/tasktest"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// The worked example's test, as README's guide has a developer write one:
// a tenant of the fakes that granted what the task declares, the task run
// as the sweep runs it, its result checked.
func TestGroups(t *testing.T) {
	env := tasktest.New(t)
	id := env.Tenant(cloudtest.Tenant{Groups: 12}, tasks.Groups{})
	res := env.Run(t, env.Record(id), tasks.Groups{})
	if got := res.Tasks["groups"]; got.Outcome != outcome.OK || string(got.Body) != `{"groups":12}` {
		t.Fatalf("groups = %+v (%s)", got, got.Body)
	}
}

func TestGroupsFailures(t *testing.T) {
	for _, tt := range []struct {
		name   string
		tenant cloudtest.Tenant
		code   outcome.Code
		step   string
	}{
		{"permission not granted", cloudtest.Tenant{Groups: 3, GraphRoles: []string{"User.Read.All"}}, outcome.GraphPermissionMissing, "4"},
		{"a role Graph accepts for groups", cloudtest.Tenant{Groups: 3, GraphRoles: []string{"Directory.Read.All"}}, outcome.OK, ""},
		{"no consent at all", cloudtest.Tenant{Groups: 3, GraphRoles: []string{}, GraphToken: cloudtest.TokenNoRoles}, outcome.GraphConsentMissing, "4"},
		{"throttled past the budget", cloudtest.Tenant{Groups: 3, GraphStatus: 429}, outcome.Throttled, ""},
		{"unavailable", cloudtest.Tenant{Groups: 3, GraphStatus: 503}, outcome.UpstreamError, ""},
		{"throttled once", cloudtest.Tenant{Groups: 3, GraphThrottle: 1}, outcome.OK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := tasktest.New(t)
			id := env.Tenant(tt.tenant, tasks.Groups{})
			got := env.Run(t, env.Record(id), tasks.Groups{}).Tasks["groups"]
			if got.Outcome != tt.code || got.Step != tt.step {
				t.Errorf("groups = %+v, want %s step %q", got, tt.code, tt.step)
			}
			if tt.code == outcome.GraphPermissionMissing && !strings.Contains(got.Message, "Group.Read.All") {
				t.Errorf("message %q does not name the permission", got.Message)
			}
		})
	}
}

// Each task declares every Graph permission its requests need: run against
// a tenant that granted exactly the declared ones, a Graph that refuses
// what a token lacks (as the fake does) lets every built-in task through.
// The tenant registers a vault with a secret and a key, so that every
// built-in task applies.
func TestBuiltinTasksDeclareTheirPermissions(t *testing.T) {
	env := tasktest.New(t)
	all := tasks.All(tasks.Deps{Directory: env.Graph, Vaults: env.Vaults, Keys: env.Vaults})
	for _, tk := range all {
		name := tk.About().Name
		t.Run(name, func(t *testing.T) {
			id := env.Tenant(cloudtest.Tenant{OrgName: "Contoso", Users: 2, Groups: 2}, tk)
			url := env.Vault(id, "declared-"+name, cloudtest.Vault{
				Secrets: map[string]cloudtest.Secret{"s": {Value: "x", Enabled: true}},
				Keys:    map[string]cloudtest.Key{"k": {Enabled: true}},
			})
			res := env.Run(t, env.Record(id, func(r *tenant.Record) {
				r.KeyVaults = []tenant.KeyVault{{VaultURL: url, Secrets: []string{"s"}, Keys: []string{"k"}}}
			}), tk)
			if _, ran := res.Tasks[name]; !ran {
				t.Fatalf("%s did not run", name)
			}
			if got := res.Tasks[name]; got.Outcome != outcome.OK {
				t.Errorf("%s with exactly its declared permissions: %+v", name, got)
			}
		})
	}
}
