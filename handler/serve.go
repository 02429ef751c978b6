package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/funchost/local"
	"github.com/tenantsweep/tenantsweep/internal/onboard"
	"github.com/tenantsweep/tenantsweep/internal/sweep"
)

// localAPIWait bounds how long local mode's API waits for the app to start.
const localAPIWait = 2 * time.Second

const (
	sweepFunction   = "TenantSweep"
	onboardFunction = "OnboardTenant"
	consentFunction = "ConsentCallback"
	workerFunction  = "SweepWorker"
	timerBinding    = "timer"
	workBinding     = "work"
)

// httpRoutes are the HTTP functions' routes (function.json's route under
// the host's /api prefix), which the host matches in any case.
var httpRoutes = []string{onboard.TenantsPath, onboard.ConsentCallbackPath}

// routes serves what the Functions host sends: the readiness probe, the
// timer invocation envelope, and the onboarding API and its consent callback,
// which the host forwards as the original HTTP request (or, if forwarding is
// off, as an envelope). Both HTTP functions are served by the one onboard.API.
//
// proc is the process's life: when it ends (SIGTERM, the instance is
// drained) the sweep's invocations stop their tenants at once, record what
// finished and fail, so that the host delivers their work again.
func routes(proc context.Context, l *lazyApp, log zerolog.Logger) http.Handler {
	return routesWith(proc, l, log, funchost.Ready())
}

// localRoutes are routes for local mode, where a person, not the host,
// reads GET /: it says whether the app has started, and why not.
func localRoutes(proc context.Context, l *lazyApp, log zerolog.Logger) http.Handler {
	return routesWith(proc, l, log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.readyNow() {
			funchost.WriteError(w, http.StatusServiceUnavailable, "not_ready", l.notReady())
			return
		}
		funchost.Ready().ServeHTTP(w, r)
	}))
}

func routesWith(proc context.Context, l *lazyApp, log zerolog.Logger, ready http.Handler) http.Handler {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := l.getWithin(r.Context(), l.apiWait)
		if err != nil {
			zerolog.Ctx(r.Context()).Error().Err(err).Msg("onboarding request while not ready")
			code := "unavailable"
			if errors.Is(err, errRegistryNotReady) {
				code = "registry_unavailable"
			}
			w.Header().Set("Retry-After", "10")
			funchost.WriteError(w, http.StatusServiceUnavailable, code, l.notReady())
			return
		}
		a.api.ServeHTTP(w, r)
	})
	timer := func(ctx context.Context, t funchost.TimerInfo) (funchost.Result, error) {
		ctx, cancel := withProcess(ctx, proc)
		defer cancel()
		a, err := l.get(ctx)
		if err != nil {
			return funchost.Result{}, err
		}
		return a.sweepTimer(ctx, t)
	}
	work := func(ctx context.Context, m funchost.QueueMessage) (funchost.Result, error) {
		ctx, cancel := withProcess(ctx, proc)
		defer cancel()
		a, err := l.get(ctx)
		if err != nil {
			return funchost.Result{}, err
		}
		return a.sweepWork(ctx, m)
	}
	mux := http.NewServeMux()
	// The host's readiness probe and health pings are GETs.
	mux.Handle("GET /{$}", ready)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		funchost.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" is not allowed here; allowed: GET, HEAD")
	})
	mux.Handle("/"+sweepFunction, funchost.Timer(sweepFunction, timerBinding, log, timer))
	mux.Handle("/"+workerFunction, funchost.Queue(workerFunction, workBinding, log, work))
	// An envelope's request is rebuilt from its Url, so its path is
	// matched as the host matched it, like a forwarded request's below.
	mux.Handle("/"+onboardFunction, funchost.HTTPEnvelope(onboardFunction, "req", "res", log, funchost.CanonicalRoutes(api, httpRoutes...)))
	mux.Handle("/"+consentFunction, funchost.HTTPEnvelope(consentFunction, "req", "res", log, funchost.CanonicalRoutes(api, httpRoutes...)))
	forwarded := funchost.Forwarded(onboardFunction, log, api)
	mux.Handle(onboard.TenantsPath, forwarded)
	mux.Handle(onboard.TenantsPath+"/", forwarded)
	mux.Handle(onboard.ConsentCallbackPath, funchost.Forwarded(consentFunction, log, api))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		funchost.WriteError(w, http.StatusNotFound, "not_found", "no function serves "+r.URL.Path)
	})
	return funchost.CanonicalRoutes(mux, httpRoutes...)
}

// withProcess is ctx, also cancelled when the process begins to stop.
func withProcess(ctx, proc context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(proc, cancel)
	return ctx, func() { stop(); cancel() }
}

// serveHost is the custom handler proper: it listens on the port the host
// chose before anything else, so the host's readiness probe succeeds at once.
func serveHost(ctx context.Context, e env, stdout, stderr io.Writer) error {
	addr, err := funchost.Addr(e.getenv)
	if err != nil {
		return configError{fmt.Errorf("%w (for development use `handler local`)", err)}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log := funchost.NewLogger(e.cfg.LogLevel, stdout, stderr)
	warnRetired(log, e.getenv)
	log.Info().Str("addr", ln.Addr().String()).Str("cloud", e.cfg.Cloud.Name).
		Str("credential", string(e.cfg.App.Method)).Msg("custom handler listening")
	l := startApp(ctx, e.cfg, deps{}, log)
	return serve(ctx, ln, routes(ctx, l, log), log)
}

// serveLocal is development mode: the same routes on localhost, with
// TenantSweep fired on its schedule by an NCRONTAB scheduler instead of the
// host.
func serveLocal(ctx context.Context, e env, demo *demoWorld, stdout, stderr io.Writer) error {
	log := funchost.NewLogger(e.cfg.LogLevel, stdout, stderr)
	log.Warn().Msg("DEVELOPMENT MODE: serving without the Azure Functions host (no function keys, no host retries); use `func start` or Azure for anything else")
	warnRetired(log, e.getenv)
	schedule, err := local.TimerSchedule(e.appRoot, sweepFunction, func(name string) string {
		if name == "TenantSweepSchedule" {
			return e.cfg.Sweep.Schedule // validated, with its default
		}
		return e.getenv(name)
	})
	if err != nil {
		return configError{err}
	}
	sched, err := local.ParseNCRONTAB(schedule)
	if err != nil {
		return configError{fmt.Errorf("setting TenantSweepSchedule: %w", err)}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(e.cfg.LocalPort)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info().Str("url", "http://localhost:"+strconv.Itoa(e.cfg.LocalPort)+"/api/tenants").
		Str("schedule", schedule).Msg("local mode listening")
	var d deps
	if demo != nil {
		d.transport = demo.transport
		log.Warn().Msg("DEMO: Entra ID, Microsoft Graph and Key Vault are fakes in this process; the sample tenants are onboarded at start and swept every minute")
	}
	l := startApp(ctx, e.cfg, d, log)
	// A developer waits for an answer: 2 s, not the registry's deadline.
	l.apiWait = min(l.apiWait, localAPIWait)

	listenerOpts, err := local.QueueOptions(e.appRoot)
	if err != nil {
		return configError{err}
	}
	// As func start does: the timer plans onto the queue, and a queue
	// listener delivers each work message to SweepWorker over HTTP.
	stop := sched.Start(func() {
		ictx, ilog := funchost.Begin(ctx, log, sweepFunction, "")
		a, err := l.get(ictx)
		if err != nil {
			ilog.Error().Err(err).Msg("scheduled sweep skipped")
			return
		}
		run, err := a.planner.Plan(ictx, sweep.Request{ID: funchost.InvocationID(ictx), Trigger: "local"})
		if err != nil {
			ilog.Warn().Err(err).Msg("scheduled sweep not planned")
			return
		}
		ilog.Info().Msg(run.PlanString())
	})
	defer stop()
	go func() {
		a, err := l.get(ctx)
		for err != nil && ctx.Err() == nil {
			a, err = l.get(ctx) // the app is still starting
		}
		if err != nil {
			return
		}
		if demo != nil {
			go demo.seed(ctx, a, "http://"+ln.Addr().String(), log)
		}
		listener := &local.QueueListener{Queue: a.queue, Function: workerFunction, Binding: workBinding,
			Target: "http://" + ln.Addr().String(), Options: listenerOpts, Log: log}
		if err := listener.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error().Err(err).Msg("local queue listener stopped")
		}
	}()
	return serve(ctx, ln, localRoutes(ctx, l, log), log)
}

const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
)

func serve(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger) error {
	// A request must arrive whole within readTimeout (headers within
	// readHeaderTimeout): a client that trickles its body would otherwise
	// hold a connection and a goroutine for as long as it likes. The host
	// sends from the same machine; 64 KiB takes milliseconds.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		log.Info().Msg("shutting down")
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	}
}
