package main

import (
	"context"
	"net/http"

	"github.com/rs/zerolog"
)

// The demo keeps its tenants, runs and work apart from a developer's own
// local data in the same Azurite.
const (
	demoTable     = "demotenants"
	demoRunsTable = "demoruns"
	demoQueue     = "tenantsweep-demo"
)

// demoWorld is the demo's fakes of Entra ID, Graph and Key Vault, running
// in the process (demo.go, built with -tags demo).
type demoWorld struct {
	appID, secret string
	transport     *http.Client
	close         func()
	// seed onboards the sample tenants through the API at base and plans a
	// sweep, once the app is ready.
	seed func(ctx context.Context, a *app, base string, log zerolog.Logger)
}

// demoEnv is getenv with the demo's registry tables and queue, and, given
// the world, its app and a sweep every minute; the storage connection and
// the rest come from the environment and the settings file as usual.
func demoEnv(getenv func(string) string, w *demoWorld) func(string) string {
	return func(name string) string {
		switch name {
		case "TENANT_REGISTRY_TABLE":
			return demoTable
		case "SWEEP_RUNS_TABLE":
			return demoRunsTable
		case "SWEEP_QUEUE":
			return demoQueue
		}
		if w == nil {
			return getenv(name)
		}
		switch name {
		case "APP_CLIENT_ID":
			return w.appID
		case "APP_CLIENT_SECRET":
			return w.secret
		case "APP_CLIENT_CERTIFICATE_PATH", "APP_CLIENT_CERTIFICATE_PASSWORD", "APP_CLIENT_SECRET_URI", "APP_FEDERATED_IDENTITY_CLIENT_ID",
			"TENANT_REGISTRY_ENDPOINT", "AZURE_CLOUD":
			return ""
		case "TenantSweepSchedule":
			return "0 * * * * *"
		case "SWEEP_TASKS":
			if v := getenv(name); v != "" {
				return v // a task author sees their own task run
			}
			return "access,groups"
		}
		return getenv(name)
	}
}
