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
)

const usage = `usage:
  handler                          serve the Azure Functions host (FUNCTIONS_CUSTOMHANDLER_PORT)
  handler local [--settings FILE]  development mode: serve /api/... on LOCAL_PORT and run
                                   TenantSweep on its schedule, without the Functions host
  handler sweep [--settings FILE] [--tenant ID]
                                   run one sweep now and print its summary
  handler runs [--settings FILE] [--last N]
                                   print the last N sweeps from the run history (default 10)`

// exitCoder is an error that chooses the process exit code.
type exitCoder interface{ ExitCode() int }

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg + "\n" + usage }
func (usageError) ExitCode() int   { return 2 }

type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }
func (configError) ExitCode() int   { return 2 }

// run is main without the process: everything it reads comes from its
// arguments, so tests can drive every mode.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := ""
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "":
		env, err := loadEnv(getenv, "")
		if err != nil {
			return err
		}
		return serveHost(ctx, env, stdout, stderr)
	case "local":
		fs := flag.NewFlagSet("local", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		settings := fs.String("settings", "local.settings.json", "")
		if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
			return usageError{"local: bad arguments"}
		}
		env, err := loadEnv(getenv, *settings)
		if err != nil {
			return err
		}
		return serveLocal(ctx, env, stdout, stderr)
	case "sweep":
		fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		settings := fs.String("settings", "", "")
		tenantID := fs.String("tenant", "", "")
		if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
			return usageError{"sweep: bad arguments"}
		}
		env, err := loadEnv(getenv, *settings)
		if err != nil {
			return err
		}
		return sweepOnce(ctx, env, *tenantID, stdout, stderr)
	case "runs":
		fs := flag.NewFlagSet("runs", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		settings := fs.String("settings", "", "")
		last := fs.Int("last", 10, "")
		if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *last < 1 || *last > 1000 {
			return usageError{"runs: bad arguments (--last takes 1 to 1000)"}
		}
		env, err := loadEnv(getenv, *settings)
		if err != nil {
			return err
		}
		return printRuns(ctx, env, *last, stdout)
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

// loadEnv validates the settings. A settings file (local.settings.json) is a
// development convenience: its Values fill in what the environment lacks, as
// `func start` does. An explicitly named file must exist; the default one may
// be absent.
func loadEnv(getenv func(string) string, settingsFile string) (env, error) {
	if settingsFile != "" {
		withFile, err := local.ReadSettings(settingsFile, getenv)
		switch {
		case errors.Is(err, os.ErrNotExist) && settingsFile == "local.settings.json":
		case err != nil:
			return env{}, configError{err}
		default:
			getenv = withFile
		}
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
	return env{cfg: cfg, getenv: getenv, appRoot: root}, nil
}
