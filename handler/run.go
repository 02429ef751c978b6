package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/funchost/local"
	"github.com/tenantsweep/tenantsweep/internal/tablestore"
	"github.com/tenantsweep/tenantsweep/internal/workqueue"
)

const usage = `usage:
  handler                          serve the Azure Functions host (FUNCTIONS_CUSTOMHANDLER_PORT)
  handler local [--settings FILE]  development mode: serve /api/... on LOCAL_PORT and run
                                   TenantSweep on its schedule, without the Functions host
  handler sweep [--settings FILE] [--tenant ID] [--force]
                                   run one sweep now, in this process, and print its summary;
                                   refuses (exit 4) while another run is active unless --force
  handler runs [--settings FILE] [--last N]
                                   print the last N sweeps (default 10) with their status and
                                   progress, and the poisoned work messages
  handler tenants [--settings FILE] [--failing] [--needs-consent] [--outcome CODES] [--json]
                                   print the onboarded tenants, their last outcome and its fix

Every command takes --help. runs and tenants read only the registry and queue settings.`

// exitCoder is an error that chooses the process exit code.
type exitCoder interface{ ExitCode() int }

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg + "\n" + usage }
func (usageError) ExitCode() int   { return 2 }

type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }
func (configError) ExitCode() int   { return 2 }

// errHelp is a --help that was answered: exit 0, nothing more to do.
var errHelp = errors.New("help printed")

// flags parses a command's arguments. --help prints the usage to stdout and
// returns errHelp; a bad flag or argument is a usageError naming it.
func flags(name string, args []string, stdout io.Writer, define func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(stdout, usage)
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
		if err := flags("local", args, stdout, func(fs *flag.FlagSet) { settingsFlag(fs, "local.settings.json") }); err != nil {
			return err
		}
		env, err := loadEnv(getenv, settings)
		if err != nil {
			return err
		}
		return serveLocal(ctx, env, stdout, stderr)
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
		if err := flags("runs", args, stdout, func(fs *flag.FlagSet) {
			settingsFlag(fs, "")
			fs.IntVar(&last, "last", 10, "how many runs")
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
		if err := flags("tenants", args, stdout, func(fs *flag.FlagSet) {
			settingsFlag(fs, "")
			fs.BoolVar(&f.failing, "failing", false, "only tenants whose last outcome is a failure")
			fs.BoolVar(&f.needsConsent, "needs-consent", false, "only tenants missing Graph consent, with their consent link")
			fs.BoolVar(&f.json, "json", false, "JSON lines instead of a table")
			fs.Func("outcome", "only tenants whose last outcome is one of these comma-separated codes (README, Outcome codes)", f.setOutcomes)
		}); err != nil {
			return err
		}
		getenv, err := withSettingsFile(getenv, settings)
		if err != nil {
			return err
		}
		reg, err := config.LoadRegistry(getenv)
		if err != nil {
			return configError{err}
		}
		advisor, err := config.LoadAdvisor(getenv)
		if err != nil {
			return configError{err}
		}
		return printTenants(ctx, reg, f, advisor, stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
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
	return env{cfg: cfg, getenv: getenv, appRoot: root}, nil
}
