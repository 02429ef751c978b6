package tasks

import (
	"context"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Directory reads the tenant's display name and number of users from
// Microsoft Graph. *graph.Reader is one.
type Directory interface {
	Organization(ctx context.Context, cred azcore.TokenCredential) (tenant.GraphInfo, error)
}

// Vaults reads a secret's metadata from a vault of the tenant, sending the
// tenant's tokens to that vault's host only. *keyvault.Reader is one.
type Vaults interface {
	Secret(ctx context.Context, tenantID, vaultURL, name string, cred azcore.TokenCredential) (tenant.SecretMeta, error)
}

// Access is the access check, the first task: the tenant's Graph
// organization and user count (seed steps 3 and 4) and the metadata of each
// registered secret (step 5). Its results stay where the registry kept them
// before tasks existed, lastSweep.graph and lastSweep.keyVault.
type Access struct {
	Directory Directory
	Vaults    Vaults
	// ExpiryWarning flags secrets that expire within it.
	ExpiryWarning time.Duration
	Now           func() time.Time
}

// AccessName is the access task's name.
const AccessName = "access"

// About declares what the customer grants for the check: the Graph
// permissions of GET /organization and GET /users/$count, and a role that
// lets the app read secrets on each vault.
func (Access) About() task.About {
	return task.About{
		Name:   AccessName,
		Graph:  []string{"Organization.Read.All|Directory.Read.All", "User.Read.All|Directory.Read.All"},
		Roles:  []string{"Key Vault Secrets User"},
		Verify: true,
	}
}

// Needs: Graph when the tenant registered it, Key Vault when it registered
// secrets. Registration requires one of the two.
func (Access) Needs(rec tenant.Record) (task.Needs, bool) {
	vault := false
	for _, kv := range rec.KeyVaults {
		vault = vault || len(kv.Secrets) > 0
	}
	return task.Needs{Graph: rec.Graph, KeyVault: vault}, rec.Graph || vault
}

// AccessBody is what the check found.
type AccessBody struct {
	Graph    *tenant.GraphInfo
	KeyVault []tenant.SecretStatus
}

// Record keeps the body in lastSweep.graph and lastSweep.keyVault, as the
// registry and the API had them before tasks existed.
func (Access) Record(res *tenant.SweepResult, body any) {
	if b, ok := body.(AccessBody); ok {
		res.Graph, res.KeyVault = b.Graph, b.KeyVault
	}
}

// maxParallelReads bounds one tenant's concurrent reads (a registration may
// hold a thousand secrets), so that the sweep's concurrency stays the bound
// of the whole process's work.
const maxParallelReads = 16

// Run reads Graph and every secret at once (at most maxParallelReads at a
// time), so that a warm tenant costs one round trip whatever it
// registered; the secrets keep the registration's order. Every read is
// tried, so that one report shows everything the customer still owes; the
// error is the first failure in the seed's step order (Graph, then each
// secret), marked with the vault and secret it is about.
func (a Access) Run(ctx context.Context, t *task.Tenant) (any, error) {
	rec := t.Record
	start := a.now()
	type read struct{ vaultURL, name string }
	var reads []read
	for _, kv := range rec.KeyVaults {
		for _, name := range kv.Secrets {
			reads = append(reads, read{kv.VaultURL, name})
		}
	}
	var (
		info     tenant.GraphInfo
		graphErr error
		secrets  = make([]tenant.SecretStatus, len(reads))
		errs     = make([]error, len(reads))
		g        group
	)
	if rec.Graph {
		g.Go(func() { info, graphErr = a.Directory.Organization(ctx, t.Credential) })
	}
	for i, rd := range reads {
		g.Go(func() { secrets[i], errs[i] = a.secret(ctx, t, rd.vaultURL, rd.name, start) })
	}
	g.Wait()

	var body AccessBody
	var first error
	if rec.Graph {
		if graphErr != nil {
			first = graphErr
		} else {
			body.Graph = &info
		}
	}
	for i, err := range errs {
		if err != nil && first == nil {
			first = tenant.About(err, tenant.Subject{VaultURL: reads[i].vaultURL, Secret: reads[i].name})
		}
	}
	body.KeyVault = secrets
	if len(secrets) == 0 {
		body.KeyVault = nil
	}
	return body, first
}

func (a Access) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a Access) secret(ctx context.Context, t *task.Tenant, vaultURL, name string, now time.Time) (tenant.SecretStatus, error) {
	st := tenant.SecretStatus{VaultURL: vaultURL, Secret: name, Outcome: outcome.OK}
	meta, err := a.Vaults.Secret(ctx, t.Record.TenantID, vaultURL, name, t.Credential)
	if err != nil {
		st.Outcome = outcome.Of(err)
		st.OutcomeDetail = outcome.Detail(err)
		return st, err
	}
	st.Version, st.Enabled, st.ExpiresOn = meta.Version, meta.Enabled, meta.ExpiresOn
	st.ExpiresSoon = meta.ExpiresOn != nil && meta.ExpiresOn.Before(now.Add(a.ExpiryWarning))
	return st, nil
}

// group runs a tenant's reads at once, at most maxParallelReads at a time.
// A panic in a read is raised again in Wait's goroutine, where the
// Runner's recovery (internal_error for the task) sees it.
type group struct {
	wg    sync.WaitGroup
	sem   chan struct{}
	mu    sync.Mutex
	panic any
}

func (g *group) Go(f func()) {
	if g.sem == nil {
		g.sem = make(chan struct{}, maxParallelReads)
	}
	g.sem <- struct{}{}
	g.wg.Go(func() {
		defer func() {
			<-g.sem
			if v := recover(); v != nil {
				g.mu.Lock()
				if g.panic == nil {
					g.panic = v
				}
				g.mu.Unlock()
			}
		}()
		f()
	})
}

func (g *group) Wait() {
	g.wg.Wait()
	if g.panic != nil {
		panic(g.panic)
	}
}
