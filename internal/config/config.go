// Package config is the one list of settings the app reads, and their
// validation. Settings are read once at start; a missing or malformed one is a
// start-up error that names it, so a bad deployment fails loudly and at once.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Setting describes one app setting (environment variable).
type Setting struct {
	Name        string
	Default     string
	Description string
	// Host settings are provided by the Functions host or the platform, not
	// by the deployment.
	Host bool
}

// Settings is every setting the app reads. The README table, the Bicep
// template and local.settings.json.example are checked against it by tests.
var Settings = []Setting{
	{Name: "FUNCTIONS_CUSTOMHANDLER_PORT", Description: "Port the Functions host tells the handler to listen on (127.0.0.1).", Host: true},
	{Name: "FUNCTIONS_APP_ROOT_PATH", Default: "(working directory)", Description: "App root, where host.json is read to derive the sweep deadline.", Host: true},
	{Name: "AzureWebJobsStorage", Description: "The host's storage connection; also the registry's when TENANT_REGISTRY_CONNECTION and TENANT_REGISTRY_ENDPOINT are unset. `UseDevelopmentStorage=true` means Azurite."},
	{Name: "TENANT_REGISTRY_CONNECTION", Description: "Table Storage connection string for the tenant registry (`UseDevelopmentStorage=true` works)."},
	{Name: "TENANT_REGISTRY_ENDPOINT", Description: "Table service URL, reached with the app's managed identity instead of a key, e.g. `https://<account>.table.core.windows.net`."},
	{Name: "TENANT_REGISTRY_TABLE", Default: "tenants", Description: "Table holding one row per onboarded tenant; created when missing."},
	{Name: "SWEEP_RUNS_TABLE", Default: "sweepruns", Description: "Table holding one row per sweep run; created when missing."},
	{Name: "TENANT_REGISTRY_TIMEOUT", Default: "10s", Description: "Deadline of each registry call (SDK retries included); past it the API answers `503 registry_unavailable` and start-up tries again."},
	{Name: "AzureWebJobsStorage__queueServiceUri", Description: "Queue service URL of the host's storage, reached with the managed identity (AZURE_CLIENT_ID), when AzureWebJobsStorage is not a connection string: where TenantSweep enqueues its work, as the SweepWorker queue trigger reads it."},
	{Name: "SWEEP_QUEUE", Default: "tenantsweep-work", Description: "Storage queue that TenantSweep fills with work and SweepWorker drains (the trigger's `%SWEEP_QUEUE%`); `<name>-poison` holds the messages that failed `maxDequeueCount` times. 3-56 lower-case letters, digits and single hyphens."},
	{Name: "SWEEP_MESSAGE_TENANTS", Default: "16", Description: "Tenants per work message (1-256): one message is one SweepWorker invocation."},
	{Name: "TenantSweepSchedule", Default: "0 */15 * * * *", Description: "Six-field NCRONTAB schedule of TenantSweep (read by the host, and by local mode)."},
	{Name: "AZURE_CLOUD", Default: "AzurePublic", Description: "`AzurePublic`, `AzureUSGovernment` or `AzureChina`: sign-in, Graph and Key Vault hosts."},
	{Name: "APP_CLIENT_ID", Description: "Application (client) id of the multi-tenant app registration."},
	{Name: "APP_TENANT_ID", Description: "Directory (tenant) id of the developer tenant the app is registered in (its home tenant). Optional. With it, onboarding fills an empty `displayName` and the tenant's default domain from Microsoft Graph (the app needs `CrossTenantInformation.ReadBasic.All` there), and each planned run checks the registration's client secrets and certificates for expiry (`Application.Read.All` there); without a permission that part is skipped."},
	{Name: "APP_CLIENT_SECRET", Description: "Credential method 1: the app's client secret."},
	{Name: "APP_CLIENT_CERTIFICATE_PATH", Description: "Credential method 2: PEM or PKCS#12 file with the app's certificate and private key."},
	{Name: "APP_CLIENT_CERTIFICATE_PASSWORD", Description: "Password of the PKCS#12 file, if any."},
	{Name: "APP_CLIENT_SECRET_URI", Description: "Credential method 3: `https://<vault>.vault.azure.net/secrets/<name>` holding the app's secret, read with the Function App's managed identity."},
	{Name: "APP_FEDERATED_IDENTITY_CLIENT_ID", Description: "Credential method 4 (secretless): client id of the user-assigned managed identity trusted by the app as a federated credential."},
	{Name: "AZURE_CLIENT_ID", Description: "Client id of the user-assigned managed identity used for the registry and APP_CLIENT_SECRET_URI (read by azidentity)."},
	{Name: "SWEEP_TASKS", Default: "access,keys", Description: "The per-tenant tasks that run, comma-separated, in the order their outcomes count (`handler tasks` lists those the binary has, with the permissions each needs): `access` is the access check; `keys` proves each registered key (a tenant without keys is not touched by it); `groups` is the worked example. A name the binary lacks stops the start."},
	{Name: "SECRET_EXPIRY_WARNING", Default: "720h", Description: "A Key Vault secret or key expiring within this duration is flagged (`720h`, or days as `30d`)."},
	{Name: "SWEEP_CONCURRENCY", Default: "64", Description: "Tenants processed at once by one sweep (1-1000)."},
	{Name: "SWEEP_GRAPH_RATE", Default: "5000", Description: "Microsoft Graph requests a second (each step of a `$batch` counted) that a run may send across all instances (1-100000): the planner makes each work message visible when the messages before it fit. Graph allows an app 150,000 resource units per 20 s of identity reads across all tenants (7,500 a second; each of the sweep's reads costs 1) and 130,000 requests per 10 s in all; the default keeps a third in reserve."},
	{Name: "SWEEP_TOKEN_RATE", Default: "2000", Description: "Token requests a second to Entra ID that a run may send across all instances (1-100000), paced like SWEEP_GRAPH_RATE. Entra ID publishes no limit; lower it if sign-ins are throttled."},
	{Name: "TOKEN_SHARING_KEY", Description: "Base64 of 32 random bytes (AES-256) that seals the tenants' tokens the instances share through the registry, so that a token one instance got is used by every instance while it is fresh. Unset: each process seals with a random key of its own, and instances do not share (the start says so)."},
	{Name: "TOKEN_SHARING_KEY_PREVIOUS", Description: "The TOKEN_SHARING_KEY before a rotation: tokens it sealed are still opened, never sealed with, until they are no longer fresh. Needs TOKEN_SHARING_KEY."},
	{Name: "TOKEN_FRESHNESS", Default: "30m", Description: "How long after its issue a shared token is used (1s-55m). An older one is not taken as proof that the tenant's consent still holds: a revoked consent shows within this time."},
	{Name: "SWEEP_TENANT_TIMEOUT", Default: "60s", Description: "Time budget of one tenant in a sweep; past it the tenant is recorded as `timeout`."},
	{Name: "SWEEP_BUDGET", Default: "(host.json functionTimeout minus a margin)", Description: "Wall-time budget of one sweep; no tenant is started after it."},
	{Name: "SWEEP_BACKOFF_MAX", Default: "24h", Description: "Longest a repeatedly failing tenant is skipped between attempts."},
	{Name: "ONBOARD_VERIFY_TIMEOUT", Default: "10s", Description: "Time budget of the verification that follows onboarding."},
	{Name: "ONBOARD_REDIRECT_URI", Description: "Public URL of the ConsentCallback function (`https://<app>/api/consent/callback`), registered as the app's admin-consent redirect URI. Empty disables the consent flow."},
	{Name: "ONBOARD_STATE_KEY", Description: "Base64 key (at least 32 bytes) that signs the admin-consent `state`. Required with ONBOARD_REDIRECT_URI."},
	{Name: "LOG_LEVEL", Default: "info", Description: "zerolog level: debug, info, warn, error."},
	{Name: "LOCAL_PORT", Default: "7071", Description: "Port of local mode (`handler local`), which serves /api/... without the Functions host."},
}

// Retired are settings the app no longer reads, and what replaced each; a
// deployment that still sets one is told so at start.
var Retired = map[string]string{
	"GRAPH_PERMISSIONS": "each task declares the Graph permissions it needs (SWEEP_TASKS; `handler tasks` lists them)",
	"TENANT_CACHE_SIZE": "a process keeps nothing of a tenant between sweeps: the instances share tokens through the registry (TOKEN_SHARING_KEY)",
}

// RetiredSet lists the retired settings that are set, with what replaced
// each.
func RetiredSet(getenv func(string) string) map[string]string {
	set := map[string]string{}
	for name, instead := range Retired {
		if strings.TrimSpace(getenv(name)) != "" {
			set[name] = instead
		}
	}
	return set
}

// CredentialMethod names how the app proves its identity to Entra ID.
type CredentialMethod string

const (
	MethodSecret      CredentialMethod = "secret"
	MethodCertificate CredentialMethod = "certificate"
	MethodKeyVault    CredentialMethod = "keyvault-secret"
	MethodFederated   CredentialMethod = "federated-identity"
)

// App is the multi-tenant app's identity.
type App struct {
	ClientID string
	// TenantID is the home tenant, where the app is registered; empty when
	// not configured.
	TenantID            string
	Method              CredentialMethod
	Secret              string
	CertificatePath     string
	CertificatePassword string
	// SecretURI is where the keyvault-secret method reads the app secret.
	SecretURI         tenant.SecretURI
	FederatedClientID string
	// ManagedIdentityClientID selects a user-assigned managed identity for
	// reading SecretURI (AZURE_CLIENT_ID); empty means system-assigned.
	ManagedIdentityClientID string
}

// Registry says where the tenant registry lives.
type Registry struct {
	// Connection is a connection string; Endpoint a table service URL reached
	// with the managed identity. Exactly one is set.
	Connection string
	Endpoint   string
	// ConnectionSetting names the setting Connection came from
	// (TENANT_REGISTRY_CONNECTION or AzureWebJobsStorage), for errors.
	ConnectionSetting string
	Table             string
	RunsTable         string
	// Timeout bounds each registry call; 0 means the store's default.
	Timeout time.Duration
}

// Queue says where TenantSweep's work queue lives: the host's storage, the
// AzureWebJobsStorage connection that the queueTrigger binding reads too.
type Queue struct {
	// Name is the work queue; its poison queue is Name + "-poison".
	Name string
	// Connection is a connection string; ServiceURL a queue service URL
	// reached with the managed identity. Exactly one is set.
	Connection string
	ServiceURL string
	// ConnectionSetting names the setting the connection came from.
	ConnectionSetting string
	// TenantsPerMessage is how many tenants one work message carries.
	TenantsPerMessage int
}

// Sweep tunes TenantSweep.
type Sweep struct {
	Schedule    string
	Concurrency int
	// GraphRate and TokenRate are the requests a second a run may send to
	// Graph and to Entra ID's token endpoint across all instances.
	GraphRate, TokenRate int
	// Tasks are the names of the tasks that run, in order; which names
	// exist is the binary's business (internal/tasks).
	Tasks         []string
	TenantTimeout time.Duration
	Budget        time.Duration
	BackoffMax    time.Duration
}

// Tokens configures the tokens the instances share through the registry.
type Tokens struct {
	// Key seals and opens; nil means a random key of the process. Previous
	// only opens.
	Key, Previous []byte
	Freshness     time.Duration
}

// Onboard tunes OnboardTenant.
type Onboard struct {
	VerifyTimeout time.Duration
	RedirectURI   string
	StateKey      []byte
}

// Config is every validated setting.
type Config struct {
	Cloud               cloud.Cloud
	App                 App
	Registry            Registry
	Queue               Queue
	Sweep               Sweep
	Tokens              Tokens
	Onboard             Onboard
	SecretExpiryWarning time.Duration
	LogLevel            zerolog.Level
	LocalPort           int
}

var (
	tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,62}$`)
	logLevels   = map[string]zerolog.Level{"debug": zerolog.DebugLevel, "info": zerolog.InfoLevel, "warn": zerolog.WarnLevel, "error": zerolog.ErrorLevel}
)

// Load reads and validates every setting. functionTimeout is how long the host
// lets an invocation run (host.json's, read by funchost; 0 means unbounded);
// the sweep's default budget is derived from it.
func Load(getenv func(string) string, functionTimeout time.Duration) (Config, error) {
	l := loader{getenv: getenv}
	var c Config

	cl, err := cloud.ByName(l.str("AZURE_CLOUD"))
	if err != nil {
		return c, settingErr("AZURE_CLOUD", err.Error())
	}
	c.Cloud = cl

	if c.App, err = loadApp(l, cl); err != nil {
		return c, err
	}
	if c.Registry, err = loadRegistry(l); err != nil {
		return c, err
	}

	if c.Queue, err = loadQueue(l); err != nil {
		return c, err
	}
	c.Sweep.Schedule = l.str("TenantSweepSchedule")
	if c.Sweep.Concurrency, err = l.intIn("SWEEP_CONCURRENCY", 1, 1000); err != nil {
		return c, err
	}
	if c.Sweep.GraphRate, err = l.intIn("SWEEP_GRAPH_RATE", 1, 100000); err != nil {
		return c, err
	}
	if c.Sweep.TokenRate, err = l.intIn("SWEEP_TOKEN_RATE", 1, 100000); err != nil {
		return c, err
	}
	if c.Tokens, err = loadTokens(l); err != nil {
		return c, err
	}
	if c.Sweep.TenantTimeout, err = l.duration("SWEEP_TENANT_TIMEOUT", time.Second, 30*time.Minute); err != nil {
		return c, err
	}
	if c.Sweep.BackoffMax, err = l.duration("SWEEP_BACKOFF_MAX", time.Minute, 30*24*time.Hour); err != nil {
		return c, err
	}
	if c.Sweep.Budget, err = sweepBudget(l, functionTimeout); err != nil {
		return c, err
	}
	if c.Sweep.Tasks, err = taskNames(l.str("SWEEP_TASKS")); err != nil {
		return c, err
	}
	if c.SecretExpiryWarning, err = l.duration("SECRET_EXPIRY_WARNING", 0, 3650*24*time.Hour); err != nil {
		return c, err
	}
	if c.Onboard, err = loadOnboard(l); err != nil {
		return c, err
	}
	// Only the documented four: zerolog also knows trace, fatal, panic and
	// disabled, and the last two silence errors.
	lvl, ok := logLevels[strings.ToLower(l.str("LOG_LEVEL"))]
	if !ok {
		return c, settingErr("LOG_LEVEL", fmt.Sprintf("want debug, info, warn or error, got %q", truncate(l.str("LOG_LEVEL"), 32)))
	}
	c.LogLevel = lvl
	if c.LocalPort, err = l.intIn("LOCAL_PORT", 1, 65535); err != nil {
		return c, err
	}
	return c, nil
}

func loadApp(l loader, cl cloud.Cloud) (App, error) {
	a := App{
		ClientID:                l.str("APP_CLIENT_ID"),
		Secret:                  l.str("APP_CLIENT_SECRET"),
		CertificatePath:         l.str("APP_CLIENT_CERTIFICATE_PATH"),
		CertificatePassword:     l.str("APP_CLIENT_CERTIFICATE_PASSWORD"),
		FederatedClientID:       l.str("APP_FEDERATED_IDENTITY_CLIENT_ID"),
		ManagedIdentityClientID: l.str("AZURE_CLIENT_ID"),
	}
	secretURI := l.str("APP_CLIENT_SECRET_URI")
	if a.ClientID == "" {
		return a, settingErr("APP_CLIENT_ID", "is required (the multi-tenant app's application id)")
	}
	id, ok := tenant.ParseGUID(a.ClientID)
	if !ok {
		return a, settingErr("APP_CLIENT_ID", "must be a GUID")
	}
	a.ClientID = id
	if raw := l.str("APP_TENANT_ID"); raw != "" {
		home, err := tenant.ParseTenantID(raw)
		if err != nil {
			return a, settingErr("APP_TENANT_ID", "must be the GUID of the developer tenant the app is registered in")
		}
		a.TenantID = home
	}
	var set []string
	for name, v := range map[string]string{
		"APP_CLIENT_SECRET":                a.Secret,
		"APP_CLIENT_CERTIFICATE_PATH":      a.CertificatePath,
		"APP_CLIENT_SECRET_URI":            secretURI,
		"APP_FEDERATED_IDENTITY_CLIENT_ID": a.FederatedClientID,
	} {
		if v != "" {
			set = append(set, name)
		}
	}
	switch len(set) {
	case 0:
		return a, settingErr("APP_CLIENT_SECRET", "no app credential: set exactly one of APP_CLIENT_SECRET, APP_CLIENT_CERTIFICATE_PATH, APP_CLIENT_SECRET_URI, APP_FEDERATED_IDENTITY_CLIENT_ID")
	case 1:
	default:
		slices.Sort(set)
		return a, settingErr(set[0], "more than one app credential is set ("+strings.Join(set, ", ")+"); set exactly one")
	}
	switch {
	case a.Secret != "":
		a.Method = MethodSecret
	case a.CertificatePath != "":
		a.Method = MethodCertificate
		if err := checkCertificate(a.CertificatePath, a.CertificatePassword); err != nil {
			return a, settingErr("APP_CLIENT_CERTIFICATE_PATH", err.Error())
		}
	case secretURI != "":
		a.Method = MethodKeyVault
		var err error
		if a.SecretURI, err = tenant.ParseSecretURI(secretURI, cl); err != nil {
			return a, settingErr("APP_CLIENT_SECRET_URI", err.Error())
		}
	default:
		a.Method = MethodFederated
		if _, ok := tenant.ParseGUID(a.FederatedClientID); !ok {
			return a, settingErr("APP_FEDERATED_IDENTITY_CLIENT_ID", "must be a GUID (the managed identity's client id)")
		}
	}
	if a.CertificatePassword != "" && a.Method != MethodCertificate {
		return a, settingErr("APP_CLIENT_CERTIFICATE_PASSWORD", "is set but APP_CLIENT_CERTIFICATE_PATH is not")
	}
	return a, nil
}

// LoadAdvisor reads what the advice texts and consent links name: the app's
// client id (optional here: empty when unset) and the cloud.
func LoadAdvisor(getenv func(string) string) (tenant.Advisor, error) {
	l := loader{getenv: getenv}
	cl, err := cloud.ByName(l.str("AZURE_CLOUD"))
	if err != nil {
		return tenant.Advisor{}, settingErr("AZURE_CLOUD", err.Error())
	}
	a := tenant.Advisor{Cloud: cl}
	if raw := l.str("APP_CLIENT_ID"); raw != "" {
		id, ok := tenant.ParseGUID(raw)
		if !ok {
			return a, settingErr("APP_CLIENT_ID", "must be a GUID")
		}
		a.AppID = id
	}
	return a, nil
}

// LoadTasks reads only SWEEP_TASKS, for tools that describe the tasks.
func LoadTasks(getenv func(string) string) ([]string, error) {
	return taskNames(loader{getenv: getenv}.str("SWEEP_TASKS"))
}

// LoadRegistry reads and validates only where the tenant registry lives, for
// tools that read the registry and need no app credential.
func LoadRegistry(getenv func(string) string) (Registry, error) {
	return loadRegistry(loader{getenv: getenv})
}

// checkCertificate reads the app's certificate the way the credential will,
// so that a missing or unreadable file stops the start instead of failing
// every sign-in. The messages never include the file's contents.
func checkCertificate(path, password string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("the file does not exist")
		}
		return errors.New("the file cannot be read")
	}
	if _, _, err := azidentity.ParseCertificates(data, []byte(password)); err != nil {
		return errors.New("the file holds no certificate and private key this app can use (PEM, or PKCS#12 with APP_CLIENT_CERTIFICATE_PASSWORD)")
	}
	return nil
}

func loadRegistry(l loader) (Registry, error) {
	r := Registry{
		Connection: l.str("TENANT_REGISTRY_CONNECTION"),
		Endpoint:   l.str("TENANT_REGISTRY_ENDPOINT"),
		Table:      l.str("TENANT_REGISTRY_TABLE"),
		RunsTable:  l.str("SWEEP_RUNS_TABLE"),
	}
	if r.Connection != "" && r.Endpoint != "" {
		return r, settingErr("TENANT_REGISTRY_ENDPOINT", "set either TENANT_REGISTRY_CONNECTION or TENANT_REGISTRY_ENDPOINT, not both")
	}
	if r.Connection != "" {
		r.ConnectionSetting = "TENANT_REGISTRY_CONNECTION"
	}
	if r.Connection == "" && r.Endpoint == "" {
		r.Connection = l.str("AzureWebJobsStorage")
		r.ConnectionSetting = "AzureWebJobsStorage"
		if r.Connection == "" {
			return r, settingErr("TENANT_REGISTRY_CONNECTION", "no tenant registry: set TENANT_REGISTRY_CONNECTION, TENANT_REGISTRY_ENDPOINT or AzureWebJobsStorage")
		}
	}
	if r.Endpoint != "" {
		u, err := url.Parse(r.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return r, settingErr("TENANT_REGISTRY_ENDPOINT", "must be a table service URL such as https://<account>.table.core.windows.net")
		}
	}
	for name, v := range map[string]string{"TENANT_REGISTRY_TABLE": r.Table, "SWEEP_RUNS_TABLE": r.RunsTable} {
		if !tableNameRE.MatchString(v) {
			return r, settingErr(name, fmt.Sprintf("%q is not a valid table name (3-63 letters and digits, starting with a letter)", v))
		}
		if strings.EqualFold(v, "tables") {
			return r, settingErr(name, `"tables" is a name Table Storage reserves; choose another`)
		}
	}
	if strings.EqualFold(r.Table, r.RunsTable) {
		return r, settingErr("SWEEP_RUNS_TABLE", "must differ from TENANT_REGISTRY_TABLE")
	}
	var err error
	if r.Timeout, err = l.duration("TENANT_REGISTRY_TIMEOUT", 500*time.Millisecond, 2*time.Minute); err != nil {
		return r, err
	}
	return r, nil
}

var queueNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,54}[a-z0-9]$`)

// LoadQueue reads and validates only where the work queue lives, for tools
// that read it and need no app credential.
func LoadQueue(getenv func(string) string) (Queue, error) {
	return loadQueue(loader{getenv: getenv})
}

func loadQueue(l loader) (Queue, error) {
	q := Queue{Name: l.str("SWEEP_QUEUE")}
	// Queue names are those of DNS labels; the poison queue's suffix must
	// fit too (63 characters in all).
	if !queueNameRE.MatchString(q.Name) || strings.Contains(q.Name, "--") {
		return q, settingErr("SWEEP_QUEUE", fmt.Sprintf("%q is not a queue name this app can use (3-56 lower-case letters, digits and single hyphens, starting and ending with a letter or digit)", truncate(q.Name, 64)))
	}
	// The host reads AzureWebJobsStorage as a connection string first and
	// its __queueServiceUri form otherwise; so does the app.
	switch cs, uri := l.str("AzureWebJobsStorage"), l.str("AzureWebJobsStorage__queueServiceUri"); {
	case cs != "":
		q.Connection, q.ConnectionSetting = cs, "AzureWebJobsStorage"
	case uri != "":
		u, err := url.Parse(uri)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return q, settingErr("AzureWebJobsStorage__queueServiceUri", "must be a queue service URL such as https://<account>.queue.core.windows.net")
		}
		q.ServiceURL, q.ConnectionSetting = strings.TrimRight(uri, "/"), "AzureWebJobsStorage__queueServiceUri"
	default:
		return q, settingErr("AzureWebJobsStorage", "no work queue: set AzureWebJobsStorage (a connection string) or AzureWebJobsStorage__queueServiceUri (with the managed identity)")
	}
	var err error
	if q.TenantsPerMessage, err = l.intIn("SWEEP_MESSAGE_TENANTS", 1, 256); err != nil {
		return q, err
	}
	return q, nil
}

func loadTokens(l loader) (Tokens, error) {
	var t Tokens
	var err error
	if t.Freshness, err = l.duration("TOKEN_FRESHNESS", time.Second, 55*time.Minute); err != nil {
		return t, err
	}
	key, prev := l.str("TOKEN_SHARING_KEY"), l.str("TOKEN_SHARING_KEY_PREVIOUS")
	if key == "" {
		if prev != "" {
			return t, settingErr("TOKEN_SHARING_KEY_PREVIOUS", "is set but TOKEN_SHARING_KEY is not")
		}
		return t, nil
	}
	if t.Key, err = sharingKey(key); err != nil {
		return t, settingErr("TOKEN_SHARING_KEY", err.Error())
	}
	if prev != "" {
		if t.Previous, err = sharingKey(prev); err != nil {
			return t, settingErr("TOKEN_SHARING_KEY_PREVIOUS", err.Error())
		}
	}
	return t, nil
}

// sharingKey decodes a token sharing key: base64 of 32 bytes. Its error
// never echoes the value.
func sharingKey(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != 32 {
		return nil, errors.New("must be base64 of 32 random bytes (openssl rand -base64 32)")
	}
	return raw, nil
}

func loadOnboard(l loader) (Onboard, error) {
	var o Onboard
	var err error
	if o.VerifyTimeout, err = l.duration("ONBOARD_VERIFY_TIMEOUT", 100*time.Millisecond, 2*time.Minute); err != nil {
		return o, err
	}
	o.RedirectURI = l.str("ONBOARD_REDIRECT_URI")
	key := l.str("ONBOARD_STATE_KEY")
	if o.RedirectURI == "" {
		if key != "" {
			return o, settingErr("ONBOARD_REDIRECT_URI", "is required when ONBOARD_STATE_KEY is set")
		}
		return o, nil
	}
	u, err := url.Parse(o.RedirectURI)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
		return o, settingErr("ONBOARD_REDIRECT_URI", "must be an https URL (http only for localhost)")
	}
	if strings.Contains(o.RedirectURI, "#") {
		// Entra ID refuses a redirect URI with a fragment.
		return o, settingErr("ONBOARD_REDIRECT_URI", "must not have a #fragment")
	}
	if key == "" {
		return o, settingErr("ONBOARD_STATE_KEY", "is required when ONBOARD_REDIRECT_URI is set (base64, at least 32 bytes)")
	}
	o.StateKey, err = base64.StdEncoding.DecodeString(key)
	if err != nil || len(o.StateKey) < 32 {
		return o, settingErr("ONBOARD_STATE_KEY", "must be base64 of at least 32 random bytes (openssl rand -base64 32)")
	}
	return o, nil
}

// taskNames splits SWEEP_TASKS; whether each name is a task of the binary
// is checked where the tasks are (handler).
func taskNames(v string) ([]string, error) {
	var names []string
	for n := range strings.SplitSeq(v, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, settingErr("SWEEP_TASKS", "want comma-separated task names such as access,groups")
		}
		names = append(names, n)
	}
	return names, nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// budgetMargin is what the sweep leaves of functionTimeout for writing back
// results and answering the host before the host kills the process.
func budgetMargin(timeout time.Duration) time.Duration {
	return max(30*time.Second, timeout/10)
}

func sweepBudget(l loader, timeout time.Duration) (time.Duration, error) {
	if l.getenv("SWEEP_BUDGET") != "" {
		d, err := l.duration("SWEEP_BUDGET", time.Second, 24*time.Hour)
		if err != nil {
			return 0, err
		}
		// The host kills the invocation at functionTimeout: a longer budget
		// would be cut short with no summary and results not written.
		if timeout > 0 && d > timeout {
			return 0, settingErr("SWEEP_BUDGET", fmt.Sprintf("%s is longer than host.json's functionTimeout of %s", d, timeout))
		}
		return d, nil
	}
	if timeout <= 0 { // unbounded: keep a sweep from running forever
		return 30 * time.Minute, nil
	}
	budget := timeout - budgetMargin(timeout)
	if budget < time.Second {
		return 0, settingErr("host.json functionTimeout", fmt.Sprintf("%s leaves no time for a sweep after the %s safety margin", timeout, budgetMargin(timeout)))
	}
	return budget, nil
}

// SettingError names the setting that is missing or malformed.
type SettingError struct {
	Name   string
	Reason string
}

func (e *SettingError) Error() string { return fmt.Sprintf("setting %s: %s", e.Name, e.Reason) }

func settingErr(name, reason string) error { return &SettingError{Name: name, Reason: reason} }

type loader struct{ getenv func(string) string }

// str returns the setting or its default.
func (l loader) str(name string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	for _, s := range Settings {
		if s.Name == name && !strings.HasPrefix(s.Default, "(") {
			return s.Default
		}
	}
	return ""
}

func (l loader) intIn(name string, lo, hi int) (int, error) {
	v := l.str(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, settingErr(name, fmt.Sprintf("must be an integer from %d to %d, got %q", lo, hi, v))
	}
	return n, nil
}

// duration accepts Go durations and whole days ("30d").
func (l loader) duration(name string, lo, hi time.Duration) (time.Duration, error) {
	v := l.str(name)
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		// Multiplying first would wrap around (213504d is past the int64
		// nanoseconds of a time.Duration) and could land inside the range.
		if err == nil && (n < 0 || int64(n) > int64(hi/(24*time.Hour))) {
			err = errors.New("out of range")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d < lo || d > hi {
		return 0, settingErr(name, fmt.Sprintf("must be a duration from %s to %s (like 90s, 10m, 30d), got %q", lo, hi, truncate(v, 32)))
	}
	return d, nil
}

// truncate keeps a value quoted in an error short (%q keeps it one line).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
