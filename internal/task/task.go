// Package task is the seam between the runtime and the per-tenant work: a
// Task is one piece of work a developer does in every onboarded customer
// tenant, and the Runner runs a tenant's tasks. The runtime around them
// (registry, onboarding, the sweep's fan-out and pipeline, interruption
// safety, backoff, run history) stays the same whatever the tasks are; a new
// task is a file and a line in internal/tasks.
//
// The Runner signs in to the tenant once, asking for every token its tasks
// need at the same time, runs the tasks in parallel, each isolated from the
// others, and turns what each returns into the shared outcome vocabulary
// (internal/outcome) with the seed step and remediation of its first
// failure.
package task

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	msgraph "github.com/microsoftgraph/msgraph-sdk-go"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// A Task is one piece of per-tenant work.
type Task interface {
	// About describes the task: its name and the permissions the customer
	// grants for it. It is the same for every tenant.
	About() About
	// Needs says what the task needs of one tenant, from its registration:
	// ok is false when the task has nothing to do there (it is then neither
	// run nor recorded for that tenant).
	Needs(rec tenant.Record) (n Needs, ok bool)
	// Run does the work in one tenant, within ctx's deadline. body is
	// recorded (as JSON, at most tenant.MaxTaskBody bytes) even when err is
	// not nil. err is the task's outcome: an *outcome.Error keeps its code;
	// an Azure SDK or Graph error is classified by the status the service
	// answered (403, 404, 429, 5xx) and a deadline is a timeout.
	Run(ctx context.Context, t *Tenant) (body any, err error)
}

// About is what a task is, the same in every tenant.
type About struct {
	// Name identifies the task in SWEEP_TASKS, the record
	// (lastSweep.tasks.<name>) and the logs: 1 to 32 lower-case letters,
	// digits and hyphens, starting with a letter.
	Name string
	// Graph lists the Microsoft Graph application permissions the task
	// needs, each "A|B" alternatives of which one suffices (a granted
	// X.ReadWrite.All also counts for X.Read.All). They are the app
	// registration's permissions the customer's admin consents to (seed
	// steps 2 and 4); a tenant whose Graph token lacks one fails this task
	// alone with graph_permission_missing, before any Graph request.
	Graph []string
	// Roles are the Azure roles the customer grants the app for the task
	// (seed step 5), for the docs and the customer's script, e.g.
	// "Key Vault Secrets User".
	Roles []string
	// Verify is whether onboarding verification runs the task, so that the
	// customer hears at once of a step the task still needs.
	Verify bool
}

// Needs is what a task needs of one tenant; the Runner requests every token
// a tenant's tasks need at once.
type Needs struct {
	// Graph asks for a Microsoft Graph token.
	Graph bool
	// KeyVault asks for a Key Vault token (the cloud's Key Vault scope),
	// which every vault of the tenant accepts.
	KeyVault bool
	// Scopes are other Azure resources' scopes, e.g.
	// "https://management.azure.com/.default".
	Scopes []string
}

// Tenant is what a task gets of the tenant it runs in, prepared by the
// Runner.
type Tenant struct {
	// Record is the tenant's registration as the registry holds it; a task
	// must not change it.
	Record tenant.Record
	// Credential is the tenant's: every token it gets is for this tenant,
	// from its own authority (never "common"). Any Azure SDK client accepts
	// it; its tokens are cached across tasks and sweeps.
	Credential azcore.TokenCredential
	// ClientOptions are what an Azure SDK client the task builds should use:
	// the app's transport and the retry policy that stops at the tenant's
	// deadline.
	ClientOptions azcore.ClientOptions
	// Cloud names the configured cloud's endpoints (Key Vault suffix and
	// scope, Graph host).
	Cloud cloud.Cloud
	// Log carries tenantId and task; ctx carries it too (zerolog.Ctx).
	Log zerolog.Logger
	// Deadline is when the tenant's time budget ends (ctx's deadline).
	Deadline time.Time

	graph func() *msgraph.GraphServiceClient // built once, on first use
}

// Graph is a Microsoft Graph client bound to the tenant: each request is
// authenticated with the tenant's credential and sent only to the cloud's
// Graph host. Use it with the ctx Run was given; it is safe for concurrent
// use.
func (t *Tenant) Graph() *msgraph.GraphServiceClient { return t.graph() }

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// CheckName reports whether name is a valid task name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "--") || strings.HasSuffix(name, "-") {
		return fmt.Errorf("task name %q: want 1 to 32 lower-case letters, digits and single hyphens, starting with a letter", name)
	}
	return nil
}
