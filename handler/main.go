// Command handler is the tenantsweep Azure Functions custom handler. With no
// arguments it serves the Functions host; `handler local` serves the same
// routes without the host for development; `handler sweep` runs one sweep now.
//
// This file wires the application: the registry (internal/tablestore), the
// app's credential and one per customer tenant (internal/azauth), the Graph
// and Key Vault readers (internal/graph, internal/keyvault), the tasks that
// SWEEP_TASKS chooses (internal/tasks) and their runner (internal/task),
// the work queue (internal/workqueue), and the functions: TenantSweep, which
// plans a run onto the queue, and SweepWorker, which executes it
// (internal/sweep), and OnboardTenant and its ConsentCallback
// (internal/onboard).
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/azauth"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/governor"
	"github.com/tenantsweep/tenantsweep/internal/graph"
	"github.com/tenantsweep/tenantsweep/internal/keyvault"
	"github.com/tenantsweep/tenantsweep/internal/onboard"
	"github.com/tenantsweep/tenantsweep/internal/posture"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tokenshare"
	"github.com/tenantsweep/tenantsweep/internal/workqueue"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "handler: "+err.Error())
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// The adapters satisfy the interfaces their consumers declare; the guards
// live here, in the wiring, so that no adapter imports its consumers.
var (
	_ onboard.Store     = (*tablestore.Store)(nil)
	_ sweep.Registry    = (*tablestore.Store)(nil)
	_ sweep.PlanSource  = (*tablestore.Store)(nil)
	_ sweep.History     = (*tablestore.Store)(nil)
	_ sweep.Leases      = (*tablestore.Store)(nil)
	_ sweep.Ledger      = (*tablestore.Store)(nil)
	_ sweep.Enqueuer    = (*workqueue.Queue)(nil)
	_ sweep.Backlog     = (*workqueue.Queue)(nil)
	_ onboard.Verifier  = (*task.Runner)(nil)
	_ sweep.Prober      = (*task.Runner)(nil)
	_ task.Signer       = (*azauth.Tenants)(nil)
	_ task.GraphClients = (*graph.Reader)(nil)
	_ tasks.Directory   = (*graph.Reader)(nil)
	_ tasks.Vaults      = (*keyvault.Reader)(nil)
	_ onboard.Forgetter = (*keyvault.Reader)(nil)
)

// deps are what tests may swap; production leaves them zero, so every SDK
// keeps its default transport (and with it HTTPS_PROXY and SSL_CERT_FILE).
type deps struct {
	transport *http.Client
	// wrapProber lets a test inject faults (panics, hangs) into the real
	// per-tenant work.
	wrapProber func(sweep.Prober) sweep.Prober
}

// app is the wired application: one registry, one set of per-tenant
// credentials and clients, shared by both functions for the process's life.
type app struct {
	// planner is TenantSweep: it plans a run onto the work queue, which
	// worker drains as SweepWorker; lock keeps one run at a time.
	planner *sweep.Planner
	worker  *sweep.Worker
	lock    *sweep.RunLock
	queue   *workqueue.Queue
	store   *tablestore.Store
	api     *onboard.API
	cfg     config.Config
}

func newApp(ctx context.Context, cfg config.Config, d deps) (*app, error) {
	var transport policy.Transporter
	var roundTripper http.RoundTripper
	if d.transport != nil {
		transport, roundTripper = d.transport, d.transport.Transport
	}

	store, err := openRegistry(ctx, cfg.Registry, d)
	if err != nil {
		return nil, err
	}
	queue, err := openQueue(ctx, cfg.Queue, d)
	if err != nil {
		return nil, err
	}
	log := zerolog.Ctx(ctx)
	sealer, err := tokenshare.New(tokenshare.Options{Key: cfg.Tokens.Key, Previous: cfg.Tokens.Previous, Freshness: cfg.Tokens.Freshness})
	if err != nil { // config checked the keys: only a bug
		return nil, err
	}
	creds, err := azauth.New(ctx, cfg.App, cfg.Cloud, azauth.Options{
		Transport: transport,
		Sealer:    sealer,
		// The authority is one of the cloud package's fixed Microsoft sign-in
		// hosts, never a configured URL, so MSAL's instance metadata (one
		// request and ~0.9 KB kept per tenant credential, for validating an
		// authority and learning its cache aliases) adds nothing here.
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		return nil, fmt.Errorf("app credential: %w", err)
	}
	vaults := keyvault.New(cfg.Cloud, keyvault.Options{Transport: transport})
	gate := governor.NewGate(governor.Options{Service: "Microsoft Graph", OnPause: pauseLogger(log)})
	graphReader := graph.New(cfg.Cloud, graph.Options{Transport: roundTripper, Gate: gate})
	// The app's own posture and its home tenant's lookups (APP_TENANT_ID).
	appPosture := &posture.Checker{}
	if local := creds.LocalCredentials(); local != nil {
		appPosture.Sources = append(appPosture.Sources, local)
	}
	var lookup onboard.TenantLookup
	if home := cfg.App.TenantID; home != "" {
		// One Session for the process: it keeps the home tenant's token
		// between lookups (a tenant's Session is per piece of work).
		h := graphReader.InHomeTenant(cfg.App.ClientID, sync.OnceValues(func() (azcore.TokenCredential, error) { return creds.Credential(home) }))
		appPosture.Sources = append(appPosture.Sources, h)
		lookup = h
	}
	advisor := tenant.Advisor{AppID: cfg.App.ClientID, Cloud: cfg.Cloud}
	chosen, err := tasks.Select(tasks.All(tasks.Deps{Directory: graphReader, Vaults: vaults, Keys: vaults, Advisor: advisor,
		SecretExpiryWarning: cfg.SecretExpiryWarning}), cfg.Sweep.Tasks)
	if err != nil { // loadEnv checked the names: only a bug
		return nil, err
	}
	runner, err := task.New(task.Config{
		Tasks:         chosen,
		SignIn:        creds,
		Graph:         graphReader,
		Advisor:       advisor,
		Cloud:         cfg.Cloud,
		ClientOptions: azcore.ClientOptions{Transport: transport},
	})
	if err != nil {
		return nil, err
	}

	var prober sweep.Prober = runner
	if d.wrapProber != nil {
		prober = d.wrapProber(runner)
	}
	worker := sweep.NewWorker(store, prober, store, sweep.Options{
		Concurrency:   cfg.Sweep.Concurrency,
		TenantTimeout: cfg.Sweep.TenantTimeout,
		Budget:        cfg.Sweep.Budget,
		BackoffMax:    cfg.Sweep.BackoffMax,
		Gate:          gate,
	})
	lock := sweep.NewRunLock(store, queue)
	planOpts := sweep.PlanOptions{
		TenantsPerMessage: cfg.Queue.TenantsPerMessage,
		Budget:            cfg.Sweep.Budget,
		GraphRate:         float64(cfg.Sweep.GraphRate),
		TokenRate:         float64(cfg.Sweep.TokenRate),
		Freshness:         cfg.Tokens.Freshness,
	}
	if len(appPosture.Sources) > 0 { // a client secret's expiry only the registration knows
		planOpts.Posture = appPosture
	}
	planner := sweep.NewPlanner(store, queue, lock, store, planOpts)
	api := onboard.New(onboard.Config{
		Store:    store,
		Verifier: runner,
		// What the fleet shares of a tenant is in its row, and goes with
		// offboarding; the public parts of its keys are all the process
		// keeps of it.
		Forget:        []onboard.Forgetter{vaults},
		Cloud:         cfg.Cloud,
		AppID:         cfg.App.ClientID,
		Homes:         creds,
		Lookup:        lookup,
		VerifyTimeout: cfg.Onboard.VerifyTimeout,
		RedirectURI:   cfg.Onboard.RedirectURI,
		StateKey:      cfg.Onboard.StateKey,
	})
	if sealer.Ephemeral() {
		log.Warn().Msg("TOKEN_SHARING_KEY is not set: tenants' tokens are sealed with a key of this process only, so other instances sign in again instead of using them")
	}
	return &app{planner: planner, worker: worker, lock: lock, queue: queue, store: store, api: api, cfg: cfg}, nil
}

// pauseLogger tells the operator when Graph throttles the app as a whole:
// one line when this instance's Graph requests start waiting, not one per
// throttled request.
func pauseLogger(log *zerolog.Logger) func(until time.Time, rate float64, scope string) {
	var mu sync.Mutex
	var paused time.Time
	return func(until time.Time, rate float64, scope string) {
		mu.Lock()
		fresh := time.Now().After(paused)
		paused = until
		mu.Unlock()
		if fresh {
			log.Warn().Time("until", until).Float64("requestsPerSecond", rate).Str("scope", scope).
				Msg("Microsoft Graph is throttling the app as a whole: this instance's Graph requests wait, then go at the rate that got through")
		}
	}
}

// azuriteHint tells a developer whose registry is the local emulator how to
// start it, since an unreachable Azurite is the usual reason it cannot open.
func azuriteHint(reg config.Registry) string {
	local := reg.Connection != "" && (strings.Contains(strings.ToLower(reg.Connection), "usedevelopmentstorage=true") ||
		strings.Contains(reg.Connection, "127.0.0.1") || strings.Contains(reg.Connection, "localhost"))
	if !local {
		return ""
	}
	return " (the registry is a local Azurite: start it with `make run`, or `scripts/azurite.sh start`)"
}

// openQueue opens the work queue (and its poison queue), creating them when
// missing.
func openQueue(ctx context.Context, q config.Queue, d deps) (*workqueue.Queue, error) {
	opts := workqueue.Options{}
	if d.transport != nil {
		opts.ClientOptions = &azqueue.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: d.transport}}
	}
	if q.ServiceURL != "" {
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("work queue credential: %w", err)
		}
		opts.Credential = cred
	}
	queue, err := workqueue.Open(ctx, q, opts)
	if err != nil {
		return nil, fmt.Errorf("open work queue %s: %w", q.Name, err)
	}
	return queue, nil
}

// openRegistry opens the tenant registry and run history.
func openRegistry(ctx context.Context, reg config.Registry, d deps) (*tablestore.Store, error) {
	opts := tablestore.Options{}
	if d.transport != nil {
		opts.ClientOptions = &aztables.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: d.transport}}
	}
	if reg.Endpoint != "" {
		// DefaultAzureCredential is the Function App's managed identity in
		// Azure (AZURE_CLIENT_ID picks a user-assigned one) and the
		// developer's az login on a workstation.
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("registry credential: %w", err)
		}
		opts.Credential = cred
	}
	store, err := tablestore.Open(ctx, reg, opts)
	if err != nil {
		return nil, fmt.Errorf("open tenant registry: %w%s", err, azuriteHint(reg))
	}
	return store, nil
}
