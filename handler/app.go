package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/access"
	"github.com/tenantsweep/tenantsweep/internal/azauth"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/graph"
	"github.com/tenantsweep/tenantsweep/internal/keyvault"
	"github.com/tenantsweep/tenantsweep/internal/onboard"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
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
	cfg     config.Config
	store   *tablestore.Store
	access  *access.Access
	prober  *tenant.Prober
	sweeper *sweep.Sweeper
	api     *onboard.API
}

func newApp(ctx context.Context, cfg config.Config, d deps) (*app, error) {
	var transport policy.Transporter
	var roundTripper http.RoundTripper
	if d.transport != nil {
		transport, roundTripper = d.transport, d.transport.Transport
	}

	store, err := openRegistry(ctx, cfg, d)
	if err != nil {
		return nil, err
	}

	creds, err := azauth.New(ctx, cfg.App, cfg.Cloud, azauth.Options{Transport: transport})
	if err != nil {
		return nil, fmt.Errorf("app credential: %w", err)
	}
	acc := access.New(creds,
		graph.New(cfg.Cloud, graph.Options{Transport: roundTripper}),
		keyvault.New(cfg.Cloud, keyvault.Options{Transport: transport}),
		cfg.Cloud)
	advisor := tenant.Advisor{AppID: cfg.App.ClientID, Cloud: cfg.Cloud}
	prober := &tenant.Prober{Access: acc, Advisor: advisor, ExpiryWarning: cfg.SecretExpiryWarning, Now: time.Now}

	opts := sweep.Options{
		Concurrency:   cfg.Sweep.Concurrency,
		TenantTimeout: cfg.Sweep.TenantTimeout,
		Budget:        cfg.Sweep.Budget,
		BackoffMax:    cfg.Sweep.BackoffMax,
	}
	var sweepProber sweep.Prober = prober
	if d.wrapProber != nil {
		sweepProber = d.wrapProber(prober)
	}
	api := onboard.New(onboard.Config{
		Store:         store,
		Verifier:      prober,
		Forget:        acc,
		Cloud:         cfg.Cloud,
		AppID:         cfg.App.ClientID,
		VerifyTimeout: cfg.Onboard.VerifyTimeout,
		RedirectURI:   cfg.Onboard.RedirectURI,
		StateKey:      cfg.Onboard.StateKey,
	})
	return &app{
		cfg:     cfg,
		store:   store,
		access:  acc,
		prober:  prober,
		sweeper: sweep.New(store, store, sweepProber, opts),
		api:     api,
	}, nil
}

// openRegistry opens the tenant registry and run history.
func openRegistry(ctx context.Context, cfg config.Config, d deps) (*tablestore.Store, error) {
	opts := tablestore.Options{}
	if d.transport != nil {
		opts.ClientOptions = &aztables.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: d.transport}}
	}
	if cfg.Registry.Endpoint != "" {
		// DefaultAzureCredential is the Function App's managed identity in
		// Azure (AZURE_CLIENT_ID picks a user-assigned one) and the
		// developer's az login on a workstation.
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("registry credential: %w", err)
		}
		opts.Credential = cred
	}
	store, err := tablestore.Open(ctx, cfg.Registry, opts)
	if err != nil {
		return nil, fmt.Errorf("open tenant registry: %w", err)
	}
	return store, nil
}

// sweepTimer is the TenantSweep function. An app-wide failure fails the
// invocation (500), so it shows as a failed execution and can alert; the
// tenants' outcomes it did record stay recorded.
func (a *app) sweepTimer(ctx context.Context, timer funchost.TimerInfo) (funchost.Result, error) {
	run, err := a.sweeper.Run(ctx, sweep.Request{
		ID:      funchost.InvocationID(ctx),
		Trigger: "timer",
		PastDue: timer.IsPastDue,
	})
	if err != nil {
		return funchost.Result{}, fmt.Errorf("sweep: %w", err)
	}
	return funchost.Result{Logs: []string{run.String()}, ReturnValue: run}, nil
}

// lazyApp lets the handler listen, and answer the host's readiness probe,
// before it does any network I/O: the registry and the app credential are
// set up in the background, and invocations wait for them.
type lazyApp struct {
	ready chan struct{}
	app   *app
	err   error
	wait  time.Duration
}

const initWait = 30 * time.Second

func startApp(ctx context.Context, cfg config.Config, d deps, log zerolog.Logger) *lazyApp {
	l := &lazyApp{ready: make(chan struct{}), wait: initWait}
	go func() {
		defer close(l.ready)
		delay := time.Second
		for {
			a, err := newApp(ctx, cfg, d)
			if err == nil {
				l.app = a
				log.Info().Msg("app ready")
				return
			}
			log.Error().Err(err).Dur("retryIn", delay).Msg("app start failed")
			select {
			case <-ctx.Done():
				l.err = err
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, 30*time.Second)
		}
	}()
	return l
}

var errNotReady = errors.New("the app is still starting: its registry or credential is not reachable yet")

func (l *lazyApp) get(ctx context.Context) (*app, error) {
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case <-l.ready:
		if l.err != nil {
			return nil, l.err
		}
		return l.app, nil
	case <-t.C:
		return nil, errNotReady
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
