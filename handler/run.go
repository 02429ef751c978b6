package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/funchost/local"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
	"github.com/tenantsweep/tenantsweep/internal/workqueue"
)

// command is one of the binary's commands, as its --help describes it.
type command struct {
	name, synopsis, about string
}

var commands = []command{
	{"", "handler", "Serve the Azure Functions host: listen on FUNCTIONS_CUSTOMHANDLER_PORT and answer the\nhost's invocations of TenantSweep, SweepWorker, OnboardTenant and ConsentCallback."},
	{"local", "handler local [--settings FILE] [--demo]", "Development mode: serve /api/... on LOCAL_PORT, run TenantSweep on its schedule and\ndeliver the work queue to SweepWorker, as `func start` would, without the Functions host.\nWith --demo, against built-in fakes of Entra ID, Graph and Key Vault and sample tenants\n(a binary built by `make demo`)."},
	{"sweep", "handler sweep [--settings FILE] [--tenant ID] [--force]", "Run one sweep now, in this process, through the planner and worker the functions use,\nand print its summary. Exit 0, 1 on a failure, 3 when the app's own credential was\nrefused, 4 while another run is active (unless --force)."},
	{"runs", "handler runs [--settings FILE] [--last N] [--demo]", "Print the last N sweeps, newest first, with their status and progress, then the\npoisoned work messages. Needs only the registry and queue settings."},
	{"tenants", "handler tenants [--settings FILE] [--failing] [--needs-consent] [--outcome CODES] [--json] [--demo]", "Print the onboarded tenants: last outcome, since when, the seed step and the fix, and\neach task's outcome. Needs only the registry settings (and APP_CLIENT_ID for\n--needs-consent)."},
	{"tasks", "handler tasks [--settings FILE] [--json]", "Print the per-tenant tasks this binary has, which SWEEP_TASKS runs, and what the\ncustomer grants for each: the Graph application permissions the app registration\nasks for, and the Azure roles."},
}

// usage is the list of commands.
func usage() string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %s\n", c.synopsis)
	}
	b.WriteString("\n`handler COMMAND --help` describes a command and its flags.")
	return b.String()
}

// exitCoder is an error that chooses the process exit code.
type exitCoder interface{ ExitCode() int }

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg + "\n" + usage() }
func (usageError) ExitCode() int   { return 2 }

type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }
func (configError) ExitCode() int   { return 2 }

// errHelp is a --help that was answered: exit 0, nothing more to do.
var errHelp = errors.New("help printed")

// flags parses a command's arguments. --help prints the command's own usage
// and flags to stdout and returns errHelp; a bad flag or argument is a
// usageError naming it.
func flags(name string, args []string, stdout io.Writer, define func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		for _, c := range commands {
			if c.name == name {
				fmt.Fprintf(stdout, "usage: %s\n\n%s\n\nflags:\n", c.synopsis, c.about)
			}
		}
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return errHelp
	case err != nil:
		return usageError{name + ": " + err.Error()}
	case fs.NArg() > 0:
		return usageError{fmt.Sprintf("%s: unexpected argument %q", name, fs.Arg(0))}
	}
	return nil
}

// run is main without the process: everything it reads comes from its
// arguments, so tests can drive every mode.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := ""
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var settings string
	settingsFlag := func(fs *flag.FlagSet, def string) {
		fs.StringVar(&settings, "settings", def, "local.settings.json-style file whose Values fill in unset settings")
	}
	switch cmd {
	case "":
		env, err := loadEnv(getenv, "")
		if err != nil {
			return err
		}
		return serveHost(ctx, env, stdout, stderr)
	case "local":
		var demo bool
		if err := flags("local", args, stdout, func(fs *flag.FlagSet) {
			settingsFlag(fs, "local.settings.json")
			fs.BoolVar(&demo, "demo", false, "serve against built-in fakes of Entra ID, Graph and Key Vault with sample tenants (a `make demo` binary)")
		}); err != nil {
			return err
		}
		var w *demoWorld
		if demo {
			var err error
			if w, err = startDemo(); err != nil {
				return usageError{"local: " + err.Error()}
			}
			defer w.close()
		}
		withFile, err := withSettingsFile(getenv, settings)
		if err != nil {
			return err
		}
		env, err := loadEnv(demoGetenv(withFile, demo, w), "")
		if err != nil {
			return err
		}
		return serveLocal(ctx, env, w, stdout, stderr)
	case "sweep":
		var tenantID string
		var force bool
		if err := flags("sweep", args, stdout, func(fs *flag.FlagSet) {
			settingsFlag(fs, "")
			fs.StringVar(&tenantID, "tenant", "", "sweep only this tenant")
			fs.BoolVar(&force, "force", false, "sweep even while another run is active")
		}); err != nil {
			return err
		}
		env, err := loadEnv(getenv, settings)
		if err != nil {
			return err
		}
		return sweepOnce(ctx, env, tenantID, force, stdout, stderr)
	case "runs":
		var last int
		var demo bool
		if err := flags("runs", args, stdout, func(fs *flag.FlagSet) {
			settingsFlag(fs, "")
			fs.IntVar(&last, "last", 10, "how many runs")
			fs.BoolVar(&demo, "demo", false, "the demo's runs (`make demo`), not the app's")
		}); err != nil {
			return err
		}
		if last < 1 || last > 1000 {
			return usageError{"runs: --last takes 1 to 1000"}
		}
		getenv, err := withSettingsFile(getenv, settings)
		if err != nil {
			return err
		}
		getenv = demoGetenv(getenv, demo, nil)
		reg, err := config.LoadRegistry(getenv)
		if err != nil {
			return configError{err}
		}
		q, err := config.LoadQueue(getenv)
		if err != nil {
			return configError{err}
		}
		return printRuns(ctx, reg, q, last, stdout)
	case "tenants":
		var f tenantFilter
		var demo bool
		if err := flags("tenants", args, stdout, func(fs *flag.FlagSet) {
			settingsFlag(fs, "")
			fs.BoolVar(&f.failing, "failing", false, "only tenants whose last outcome is a failure")
			fs.BoolVar(&f.needsConsent, "needs-consent", false, "only tenants missing Graph consent, with their consent link")
			fs.BoolVar(&f.json, "json", false, "JSON lines instead of a table")
			fs.BoolVar(&demo, "demo", false, "the demo's tenants (`make demo`), not the app's")
			fs.Func("outcome", "only tenants whose last outcome is one of these comma-separated codes (README, Outcome codes)", f.setOutcomes)
		}); err != nil {
			return err
		}
		getenv, err := withSettingsFile(getenv, settings)
		if err != nil {
			return err
		}
		getenv = demoGetenv(getenv, demo, nil)
		reg, err := config.LoadRegistry(getenv)
		if err != nil {
			return configError{err}
		}
		advisor, err := config.LoadAdvisor(getenv)
		if err != nil {
			return configError{err}
		}
		return printTenants(ctx, reg, f, advisor, stdout)
	case "tasks":
		var asJSON bool
		if err := flags("tasks", args, stdout, func(fs *flag.FlagSet) {
			settingsFlag(fs, "")
			fs.BoolVar(&asJSON, "json", false, "JSON lines instead of a table")
		}); err != nil {
			return err
		}
		getenv, err := withSettingsFile(getenv, settings)
		if err != nil {
			return err
		}
		names, err := config.LoadTasks(getenv)
		if err != nil {
			return configError{err}
		}
		if err := checkTasks(names); err != nil {
			return configError{&config.SettingError{Name: "SWEEP_TASKS", Reason: err.Error()}}
		}
		return printTasks(names, asJSON, stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage())
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// demoGetenv is getenv, or with demo the demo's (demoEnv), which must wrap
// the settings file's values so that its own win.
func demoGetenv(getenv func(string) string, demo bool, w *demoWorld) func(string) string {
	if !demo {
		return getenv
	}
	return demoEnv(getenv, w)
}

// env is the validated configuration and where it came from.
type env struct {
	cfg     config.Config
	getenv  func(string) string
	appRoot string
}

// withSettingsFile returns getenv with a settings file (local.settings.json)
// filling in what the environment lacks, as `func start` does: a development
// convenience. An explicitly named file must exist; the default one may be
// absent.
func withSettingsFile(getenv func(string) string, settingsFile string) (func(string) string, error) {
	if settingsFile == "" {
		return getenv, nil
	}
	withFile, err := local.ReadSettings(settingsFile, getenv)
	switch {
	case errors.Is(err, os.ErrNotExist) && settingsFile == "local.settings.json":
		return getenv, nil
	case err != nil:
		return nil, configError{err}
	}
	return withFile, nil
}

// loadEnv validates every setting.
func loadEnv(getenv func(string) string, settingsFile string) (env, error) {
	getenv, err := withSettingsFile(getenv, settingsFile)
	if err != nil {
		return env{}, err
	}
	root := funchost.AppRoot(getenv)
	timeout, err := funchost.FunctionTimeout(root)
	if err != nil {
		return env{}, configError{err}
	}
	cfg, err := config.Load(getenv, timeout)
	if err != nil {
		return env{}, configError{err}
	}
	// The connection string's format is the store's to know; a malformed one
	// is a setting error like any other, not a registry that is down.
	if cfg.Registry.Connection != "" {
		if err := tablestore.CheckConnectionString(cfg.Registry.Connection); err != nil {
			return env{}, configError{&config.SettingError{Name: cfg.Registry.ConnectionSetting, Reason: err.Error()}}
		}
	}
	if cfg.Queue.Connection != "" {
		if err := workqueue.CheckConnectionString(cfg.Queue.Connection); err != nil {
			return env{}, configError{&config.SettingError{Name: cfg.Queue.ConnectionSetting, Reason: err.Error()}}
		}
	}
	if err := checkTasks(cfg.Sweep.Tasks); err != nil {
		return env{}, configError{&config.SettingError{Name: "SWEEP_TASKS", Reason: err.Error()}}
	}
	return env{cfg: cfg, getenv: getenv, appRoot: root}, nil
}

// checkTasks reports whether names are tasks of this binary that can run
// together (no name twice).
func checkTasks(names []string) error {
	chosen, err := tasks.Select(tasks.All(tasks.Deps{}), names)
	if err != nil {
		return err
	}
	_, err = task.New(task.Config{Tasks: chosen})
	return err
}

// warnRetired tells a deployment that still sets a setting the app no
// longer reads what replaced it.
func warnRetired(log zerolog.Logger, getenv func(string) string) {
	for name, instead := range config.RetiredSet(getenv) {
		log.Warn().Str("setting", name).Msg("setting " + name + " is no longer read: " + instead)
	}
}
