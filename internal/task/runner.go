package task

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	msgraph "github.com/microsoftgraph/msgraph-sdk-go"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/governor"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Signer signs in to one tenant (never a shared endpoint) for one run of
// its tasks: shared are the tokens the fleet stored for the tenant, of
// which it uses those that are valid and fresh; it requests the token of
// every other scope at once and returns the tenant's credential, which then
// hands those tokens out. It fails only when no token could be had; a scope
// that failed alone is asked for again by the request that needs it, which
// then reports its own outcome. Its errors are *outcome.Error, or a
// cancellation. *azauth.Tenants is one.
type Signer interface {
	SignIn(ctx context.Context, tenantID string, scopes []string, shared tenant.Shared) (azcore.TokenCredential, error)
}

// sharer is a credential that leaves its tokens for the fleet (the tokens
// it requested, sealed), but not those of the refused scopes, whose grants
// a resource refused. *azauth.Session is one.
type sharer interface {
	Share(refused ...string) tenant.SharedUpdate
}

// GraphClients makes a Microsoft Graph client bound to a tenant's
// credential. *graph.Reader is one.
type GraphClients interface {
	For(cred azcore.TokenCredential) *msgraph.GraphServiceClient
}

// Recorder is a task whose body the sweep result keeps in fields of its
// own rather than under tasks.<name>.body: the access task's
// lastSweep.graph and lastSweep.keyVault, which predate tasks.
type Recorder interface {
	Record(res *tenant.SweepResult, body any)
}

// Config wires a Runner.
type Config struct {
	// Tasks run in every tenant they apply to; their order is the order of
	// the outcome (the tenant's outcome is the first failure).
	Tasks   []Task
	SignIn  Signer
	Graph   GraphClients
	Advisor tenant.Advisor
	Cloud   cloud.Cloud
	// ClientOptions are handed to the tasks for the SDK clients they build;
	// the transport is the app's (nil: the SDK's default).
	ClientOptions azcore.ClientOptions
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Runner runs a tenant's tasks. It is safe for concurrent use.
type Runner struct {
	cfg   Config
	tasks []known // cfg.Tasks, in order
}

// known is a task with what New read of it once.
type known struct {
	t     Task
	about About
	graph []need // the Graph permissions it declares
}

// New checks the tasks (valid, distinct names; well-formed permissions)
// and returns their Runner.
func New(cfg Config) (*Runner, error) {
	r := &Runner{cfg: cfg}
	if r.cfg.Now == nil {
		r.cfg.Now = time.Now
	}
	if r.cfg.ClientOptions.Retry.ShouldRetry == nil {
		// A task's own SDK clients stop retrying at the tenant's deadline,
		// as the built-in reads do: each call counts its tries.
		co := &r.cfg.ClientOptions
		co.Retry.ShouldRetry = outcome.RetryWithin(co.Retry.RetryDelay, co.Retry.MaxRetryDelay)
		co.PerCallPolicies = append(slices.Clone(co.PerCallPolicies), outcome.AttemptsPolicy{})
		co.PerRetryPolicies = append(slices.Clone(co.PerRetryPolicies), outcome.SentPolicy{})
	}
	for _, t := range cfg.Tasks {
		a := t.About()
		if err := CheckName(a.Name); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(r.tasks, func(k known) bool { return k.about.Name == a.Name }) {
			return nil, fmt.Errorf("task %s is listed twice", a.Name)
		}
		needs, err := parseNeeds(a.Graph)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", a.Name, err)
		}
		r.tasks = append(r.tasks, known{t: t, about: a, graph: needs})
	}
	return r, nil
}

// Probe runs every task that applies to the tenant and reports what
// happened: each task's result, and as the tenant's the first failure in
// task order. It never fails: every fault is an outcome. It signs in with
// what the fleet shares for the tenant (rec.Shared), and the result's
// Shared is what it leaves for the fleet. Its Graph requests are low
// priority (x-ms-throttle-priority: low): the sweep is background work.
func (r *Runner) Probe(ctx context.Context, rec tenant.Record) tenant.SweepResult {
	ctx = governor.WithTenant(governor.WithPriority(ctx, governor.Low), rec.TenantID)
	return r.run(ctx, rec, rec.Shared, func(About) bool { return true })
}

// Verify runs the tasks that onboarding verification runs (About.Verify)
// and turns their result into the verification onboarding reports: the
// outcome, the seed step still owed, and the fix. It signs in afresh (the
// customer has just acted: no stored token stands for their consent) and
// its Graph requests are high priority: someone is waiting for them.
func (r *Runner) Verify(ctx context.Context, rec tenant.Record) tenant.Verification {
	ctx = governor.WithTenant(governor.WithPriority(ctx, governor.High), rec.TenantID)
	res := r.run(ctx, rec, tenant.Shared{}, func(a About) bool { return a.Verify })
	v := tenant.Verification{Outcome: res.Outcome, Step: res.Step, Message: res.Message, Remediation: res.Remediation,
		At: res.At, Tasks: res.Tasks}
	if v.Message == "" {
		v.Message = r.cfg.Advisor.Advise(v.Outcome, tenant.Subject{TenantID: rec.TenantID}).Message
	}
	return r.cfg.Advisor.MarkPending(v, rec.OnboardedAt, res.At)
}

// planned is one task that applies to the tenant, and what it needs of it.
type planned struct {
	known
	needs Needs
}

// taskGrace is how long a task may overrun the tenant's deadline before the
// Runner records it as timed out and stops waiting for it; less than the
// sweep's own grace, so that the other tasks' results are kept.
const taskGrace = time.Second

func (r *Runner) run(ctx context.Context, rec tenant.Record, shared tenant.Shared, include func(About) bool) tenant.SweepResult {
	start := r.cfg.Now()
	res := tenant.SweepResult{At: start, Outcome: outcome.OK}
	var todo []planned
	for _, k := range r.tasks {
		if !include(k.about) {
			continue
		}
		if n, ok := k.t.Needs(rec); ok {
			todo = append(todo, planned{known: k, needs: n})
		}
	}
	if len(todo) == 0 {
		return res
	}

	results := make([]taskResult, len(todo))
	cred, err := r.cfg.SignIn.SignIn(ctx, rec.TenantID, r.scopes(todo), shared)
	if err != nil {
		for i := range todo {
			results[i] = taskResult{err: err}
		}
	} else {
		r.runAll(ctx, rec, cred, todo, results)
	}

	res.Tasks = make(map[string]tenant.TaskResult, len(todo))
	var first *tenant.TaskResult
	for i, p := range todo {
		if rc, ok := p.t.(Recorder); ok && results[i].ran {
			rc.Record(&res, results[i].body)
			results[i].body = nil
		}
		tr := r.result(ctx, rec, p, results[i])
		res.Tasks[p.about.Name] = tr
		if first == nil && tr.Outcome != outcome.OK {
			first = &tr
		}
	}
	if first != nil {
		res.Outcome, res.Message, res.Step, res.Remediation = first.Outcome, first.Message, first.Step, first.Remediation
	}
	if sh, ok := cred.(sharer); ok && err == nil {
		res.Shared = sh.Share(r.refused(res.Tasks)...)
	}
	res.DurationMs = r.cfg.Now().Sub(start).Milliseconds()
	return res
}

// refused are the scopes whose token a task's outcome says the resource
// refused for its grants: Graph's, when consent or a permission is
// missing. Such a token must not stand for the tenant's consent in another
// run: it is not shared, and a shared one is dropped.
func (r *Runner) refused(results map[string]tenant.TaskResult) []string {
	for _, tr := range results {
		if tr.Outcome == outcome.GraphConsentMissing || tr.Outcome == outcome.GraphPermissionMissing {
			return []string{r.cfg.Cloud.GraphScope()}
		}
	}
	return nil
}

// scopes are the tokens the tasks need, Graph's first: a tenant-wide
// refusal then comes from the request most tenants make.
func (r *Runner) scopes(todo []planned) []string {
	var graph, vault bool
	var scopes, other []string
	seen := map[string]bool{}
	for _, p := range todo {
		graph = graph || p.needs.Graph
		vault = vault || p.needs.KeyVault
		for _, s := range p.needs.Scopes {
			if !seen[s] {
				seen[s] = true
				other = append(other, s)
			}
		}
	}
	if graph {
		scopes = append(scopes, r.cfg.Cloud.GraphScope())
	}
	if vault {
		scopes = append(scopes, r.cfg.Cloud.KeyVaultScope)
	}
	return append(scopes, other...)
}

type taskResult struct {
	ran      bool // Run was called and returned
	body     any
	err      error
	duration time.Duration
	// graphGranted: the task's Graph token held every permission it
	// declares (gatedCredential.granted).
	graphGranted bool
}

// runAll runs the tasks at once, each isolated: a panic is that task's
// internal_error, and a task that overruns the tenant's deadline is
// recorded as timed out while the others' results are kept.
func (r *Runner) runAll(ctx context.Context, rec tenant.Record, cred azcore.TokenCredential, todo []planned, results []taskResult) {
	base := zerolog.Ctx(ctx).With().Str("tenantId", rec.TenantID).Logger()
	deadline, _ := ctx.Deadline()
	var mu sync.Mutex
	done := make([]bool, len(todo))
	var wg sync.WaitGroup
	for i, p := range todo {
		log := base.With().Str("task", p.about.Name).Logger()
		gated := &gatedCredential{TokenCredential: cred, graphEndpoint: r.cfg.Cloud.GraphEndpoint, needs: p.graph}
		t := &Tenant{
			Record:        rec,
			Credential:    gated,
			ClientOptions: r.cfg.ClientOptions,
			Cloud:         r.cfg.Cloud,
			Log:           log,
			Deadline:      deadline,
		}
		t.graph = sync.OnceValue(func() *msgraph.GraphServiceClient { return r.cfg.Graph.For(t.Credential) })
		wg.Go(func() {
			start := r.cfg.Now()
			var tr taskResult
			func() {
				defer func() {
					if v := recover(); v != nil {
						log.Error().Str("panic", fmt.Sprint(v)).Bytes("stack", debug.Stack()).Msg("task panicked")
						tr = taskResult{err: outcome.New(outcome.InternalError, "the task panicked (a bug, logged with the tenant id)", nil)}
					}
				}()
				body, err := p.t.Run(log.WithContext(ctx), t)
				tr = taskResult{ran: true, body: body, err: err, graphGranted: gated.granted.Load()}
			}()
			tr.duration = r.cfg.Now().Sub(start)
			mu.Lock()
			defer mu.Unlock()
			if !done[i] { // not abandoned meanwhile
				results[i], done[i] = tr, true
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return
	case <-ctx.Done():
	}
	select {
	case <-finished:
		return
	case <-time.After(taskGrace):
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range todo {
		if !done[i] {
			base.Warn().Str("task", todo[i].about.Name).Msg("task ignored the tenant's deadline; abandoned")
			results[i] = taskResult{err: outcome.New(outcome.Timeout, "the task did not finish within the tenant's time budget", ctx.Err())}
			done[i] = true // a late finish must not overwrite it
		}
	}
}

// result turns what a task returned into its recorded result.
func (r *Runner) result(ctx context.Context, rec tenant.Record, p planned, tr taskResult) tenant.TaskResult {
	out := tenant.TaskResult{Outcome: outcome.OK, DurationMs: tr.duration.Milliseconds()}
	if tr.body != nil {
		out.Body = r.encodeBody(ctx, rec, p.about.Name, tr.body)
	}
	if tr.err == nil {
		return out
	}
	err := classify(ctx, r.cfg.Cloud, tr.err, tr.graphGranted)
	code := outcome.Of(err)
	if !slices.Contains(outcome.Codes, code) {
		// The vocabulary is stable API (the OpenAPI enum, alerts, filters):
		// a code of the task's own making is the task's bug.
		zerolog.Ctx(ctx).Warn().Str("tenantId", rec.TenantID).Str("task", p.about.Name).Str("code", truncate(string(code), 64)).
			Msg("task returned an outcome code the vocabulary lacks; recorded as internal_error")
		err = outcome.New(outcome.InternalError, "the task reported an outcome the app does not know (logged with the tenant id)", err)
		code = outcome.InternalError
	} else if code == outcome.InternalError && tr.ran {
		zerolog.Ctx(ctx).Warn().Str("tenantId", rec.TenantID).Str("task", p.about.Name).Str("error", truncate(errorText(tr.err), 1024)).
			Msg("task failed with an error of its own")
	}
	s := tenant.SubjectOf(err, rec.TenantID)
	s.Roles = p.about.Roles
	adv := r.cfg.Advisor.Advise(code, s)
	msg := adv.Message
	if d := truncate(outcome.Detail(err), maxDetail); d != "" && d != msg {
		msg += " (" + d + ")"
	}
	out.Outcome, out.Message, out.Step, out.Remediation = code, msg, adv.Step, adv.Remediation
	return out
}

// errorText is err's text for the log. A kiota ODataError whose body had
// no message panics in Error().
func errorText(err error) (text string) {
	defer func() {
		if recover() != nil {
			text = fmt.Sprintf("%T (without a text)", err)
		}
	}()
	return err.Error()
}

// maxDetail bounds the detail a task's error adds to its message: the
// record holds it twice (the task's and the tenant's) and must fit a Table
// Storage entity.
const maxDetail = 256

// truncate keeps the first n bytes of s, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// encodeBody is the body as JSON, or nothing when it does not encode or is
// larger than tenant.MaxTaskBody (logged, so the task's author learns of it).
func (r *Runner) encodeBody(ctx context.Context, rec tenant.Record, name string, body any) json.RawMessage {
	b, err := json.Marshal(body)
	switch {
	case err != nil:
		zerolog.Ctx(ctx).Warn().Str("tenantId", rec.TenantID).Str("task", name).Err(err).Msg("task body does not encode as JSON; not recorded")
		return nil
	case len(b) > tenant.MaxTaskBody:
		zerolog.Ctx(ctx).Warn().Str("tenantId", rec.TenantID).Str("task", name).Int("bytes", len(b)).Int("limit", tenant.MaxTaskBody).
			Msg("task body is too large; not recorded")
		return nil
	case string(b) == "null":
		return nil
	}
	return b
}

// Names lists the tasks' names, in order.
func Names(tasks []Task) []string {
	names := make([]string, len(tasks))
	for i, t := range tasks {
		names[i] = t.About().Name
	}
	return names
}

// Find returns the task named name.
func Find(tasks []Task, name string) (Task, bool) {
	for _, t := range tasks {
		if t.About().Name == name {
			return t, true
		}
	}
	return nil, false
}
