// Package tasktest runs tasks in a test the way the sweep runs them: against
// the project's TLS fakes of Entra ID, Microsoft Graph and Key Vault
// (internal/cloudtest), with the app's credential, one credential per
// tenant, the Graph client and the task Runner wired as production wires
// them. The fakes speak the real wire protocols and enforce what the real
// services enforce (Graph refuses an endpoint whose permission the token
// lacks), so a task that forgets to declare a permission fails its test.
//
// A task's test is a few lines:
//
//	env := tasktest.New(t)
//	id := env.Tenant(cloudtest.Tenant{Groups: 12}, tasks.Groups{})
//	res := env.Run(t, env.Record(id), tasks.Groups{})
//	// res.Tasks["groups"].Outcome == outcome.OK, .Body == {"groups":12}
//
// It is imported only by tests.
package tasktest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	khttp "github.com/microsoft/kiota-http-go"

	"github.com/tenantsweep/tenantsweep/internal/azauth"
	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/graph"
	"github.com/tenantsweep/tenantsweep/internal/keyvault"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tokenshare"
)

// Env is one test's world: the fakes with the app registered, and the
// runtime's pieces against them. The readers are those the built-in tasks
// use (tasks.Deps).
type Env struct {
	Cloud  *cloudtest.Cloud
	Creds  *azauth.Tenants
	Graph  *graph.Reader
	Vaults *keyvault.Reader
	// Timeout is each tenant's time budget in Run; default 30s.
	Timeout time.Duration

	mu     sync.Mutex
	shared map[string]tenant.Shared // what each tenant's probes left for the fleet
}

// New starts the fakes (stopped when the test ends) and wires the runtime
// to them. Retries are fast: the fakes send Retry-After: 0.
func New(t testing.TB) *Env {
	t.Helper()
	c := cloudtest.StartWithApp(t)
	sealer, err := tokenshare.New(tokenshare.Options{}) // newApp's without TOKEN_SHARING_KEY
	if err != nil {
		t.Fatalf("tasktest: %v", err)
	}
	creds, err := azauth.New(context.Background(),
		config.App{ClientID: cloudtest.DefaultApp.ClientID, Method: config.MethodSecret, Secret: cloudtest.DefaultApp.Secret},
		cloud.AzurePublic, azauth.Options{Transport: c.HTTPClient(), DisableInstanceDiscovery: true,
			Retry: &policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Second}, Sealer: sealer})
	if err != nil {
		t.Fatalf("tasktest: %v", err)
	}
	return &Env{
		Cloud: c,
		Creds: creds,
		Graph: graph.New(cloud.AzurePublic, graph.Options{Transport: c.HTTPClient().Transport,
			Retry: &khttp.RetryHandlerOptions{MaxRetries: 2}}),
		Vaults: keyvault.New(cloud.AzurePublic, keyvault.Options{Transport: c.HTTPClient(),
			Retry: &policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Second}}),
		Timeout: 30 * time.Second,
	}
}

// Tenant adds a customer tenant to the fakes and returns its id. The app is
// added to it, and, unless tn.GraphRoles says otherwise, its Graph tokens
// carry exactly the permissions the tasks declare (the first alternative of
// each need): what the tenant's admin grants by consenting to an app
// registration that asks for them.
func (e *Env) Tenant(tn cloudtest.Tenant, tasks ...task.Task) string {
	id := cloudtest.NewClientID() // a random GUID
	if tn.GraphRoles == nil {
		tn.GraphRoles = task.Permissions(tasks)
		if tn.GraphRoles == nil {
			tn.GraphRoles = []string{}
		}
	}
	e.Cloud.AddTenant(id, tn)
	return id
}

// Vault adds a vault owned by the tenant, at https://<name>.vault.azure.net,
// and returns its URL as a registration holds it.
func (e *Env) Vault(tenantID, name string, v cloudtest.Vault) string {
	e.Cloud.AddVault(name, tenantID, v)
	return cloudtest.VaultURL(name) + "/"
}

// Record is an active registration of the tenant with Graph on; change it
// with fns.
func (e *Env) Record(tenantID string, fns ...func(*tenant.Record)) tenant.Record {
	rec := tenant.Record{TenantID: strings.ToLower(tenantID), Status: tenant.StatusActive, Graph: true,
		OnboardedAt: time.Now().Add(-24 * time.Hour)}
	for _, fn := range fns {
		fn(&rec)
	}
	return rec
}

// Runner is the task Runner of the tasks, as newApp wires it.
func (e *Env) Runner(t testing.TB, tasks ...task.Task) *task.Runner {
	t.Helper()
	r, err := task.New(task.Config{
		Tasks:         tasks,
		SignIn:        e.Creds,
		Graph:         e.Graph,
		Advisor:       tenant.Advisor{AppID: cloudtest.DefaultApp.ClientID, Cloud: cloud.AzurePublic},
		Cloud:         cloud.AzurePublic,
		ClientOptions: azcore.ClientOptions{Transport: e.Cloud.HTTPClient()},
	})
	if err != nil {
		t.Fatalf("tasktest: %v", err)
	}
	return r
}

// Run runs the tasks in the tenant of rec as a sweep does, under the
// tenant's time budget, and returns the tenant's result: each task's under
// Tasks[name], the tenant's outcome its first failure. As the registry
// does, it keeps what the probe leaves for the fleet (its tokens, its
// vaults) and hands it to the tenant's next Run, unless rec brings its own:
// a second Run is warm.
func (e *Env) Run(t testing.TB, rec tenant.Record, tasks ...task.Task) tenant.SweepResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.Timeout)
	defer cancel()
	e.mu.Lock()
	if len(rec.Shared.Tokens) == 0 && len(rec.Shared.Vaults) == 0 {
		rec.Shared = e.shared[rec.TenantID]
	}
	e.mu.Unlock()
	res := e.Runner(t, tasks...).Probe(ctx, rec)
	tenant.MergeShared(&rec, res.Shared, time.Now())
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shared == nil {
		e.shared = map[string]tenant.Shared{}
	}
	e.shared[rec.TenantID] = rec.Shared
	return res
}

// Verify runs the tasks as onboarding verification does.
func (e *Env) Verify(t testing.TB, rec tenant.Record, tasks ...task.Task) tenant.Verification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.Timeout)
	defer cancel()
	return e.Runner(t, tasks...).Verify(ctx, rec)
}
