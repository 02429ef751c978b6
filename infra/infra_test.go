// Package infra holds the deployment: azure.yaml's Bicep templates and the
// scripts around them. Bicep cannot be compiled here, so these tests read the
// templates as text and check what drifts silently otherwise: that every app
// setting the Go code reads is set (and nothing else), that the templates'
// parameters, modules and outputs fit together, that no secret has a default,
// and that the scripts pass shellcheck.
package infra

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/config"
)

// intentionallyUnset are the settings of config.Settings that main.bicep
// leaves unset, and why. Everything else that is not Host must be set.
var intentionallyUnset = map[string]string{
	"AzureWebJobsStorage":        "the host connects with the managed identity (the AzureWebJobsStorage__* settings); there is no connection string",
	"TENANT_REGISTRY_CONNECTION": "the registry is reached with the managed identity through TENANT_REGISTRY_ENDPOINT",
	"APP_CLIENT_SECRET":          "a client secret in an app setting is what the keyvault-secret method (APP_CLIENT_SECRET_URI) avoids",
	"LOCAL_PORT":                 "local mode only (handler local); in Azure the host gives the port in FUNCTIONS_CUSTOMHANDLER_PORT",
	"TOKEN_SHARING_KEY_PREVIOUS": "set only while the token sharing key rotates (docs/operations.md); a Key Vault reference to a secret that does not exist would stop the app",
}

// platformSettings are app settings main.bicep may set that the Go code does
// not read: the Functions host's own. (AzureWebJobsStorage__queueServiceUri
// is the host's too, but the app reads it, so it is in config.Settings.)
var platformSettings = []string{
	"AzureWebJobsStorage__credential",
	"AzureWebJobsStorage__clientId",
	"AzureWebJobsStorage__accountName",
	"AzureWebJobsStorage__blobServiceUri",
	"AzureWebJobsStorage__tableServiceUri",
	"APPLICATIONINSIGHTS_CONNECTION_STRING",
	"APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

// flexRejected are settings that the Flex Consumption plan rejects or
// replaces with functionAppConfig (the runtime is functionAppConfig.runtime,
// the package comes from functionAppConfig.deployment).
var flexRejected = []string{
	"FUNCTIONS_WORKER_RUNTIME",
	"FUNCTIONS_WORKER_RUNTIME_VERSION",
	"FUNCTIONS_EXTENSION_VERSION",
	"WEBSITE_CONTENTSHARE",
	"WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
	"WEBSITE_RUN_FROM_PACKAGE",
	"WEBSITE_NODE_DEFAULT_VERSION",
	"SCM_DO_BUILD_DURING_DEPLOYMENT",
	"ENABLE_ORYX_BUILD",
}

// apiVersions are the resource API versions the templates were written
// against (looked up in the ARM template reference when written); a new
// version is a reviewed change to this table as well.
var apiVersions = map[string]string{
	"Microsoft.Resources/resourceGroups":                        "2024-03-01",
	"Microsoft.ManagedIdentity/userAssignedIdentities":          "2023-01-31",
	"Microsoft.OperationalInsights/workspaces":                  "2023-09-01",
	"Microsoft.Insights/components":                             "2020-02-02",
	"Microsoft.Insights/scheduledQueryRules":                    "2023-12-01",
	"Microsoft.Storage/storageAccounts":                         "2025-01-01",
	"Microsoft.Storage/storageAccounts/blobServices":            "2025-01-01",
	"Microsoft.Storage/storageAccounts/blobServices/containers": "2025-01-01",
	"Microsoft.Storage/storageAccounts/tableServices":           "2025-01-01",
	"Microsoft.Storage/storageAccounts/tableServices/tables":    "2025-01-01",
	"Microsoft.Storage/storageAccounts/queueServices":           "2025-01-01",
	"Microsoft.Storage/storageAccounts/queueServices/queues":    "2025-01-01",
	"Microsoft.KeyVault/vaults":                                 "2025-05-01",
	"Microsoft.Web/serverfarms":                                 "2024-11-01",
	"Microsoft.Web/sites":                                       "2024-11-01",
	"Microsoft.Web/sites/config":                                "2024-11-01",
	"Microsoft.Authorization/roleAssignments":                   "2022-04-01",
}

// builtInRoles are the role definition ids main.bicep's roles may name.
var builtInRoles = map[string]string{
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
	"974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
	"19e7f393-937e-4f77-808e-94535e297925": "Storage Queue Data Reader",
	"c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
	"8a0f0c08-91a1-4084-bc3d-661d67233fed": "Storage Queue Data Message Processor",
	"0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
	"76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
	"4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
	"b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
	"3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

// requiredOutputs are the outputs the issue asks for and the scripts and
// docs/operations.md read from the azd environment.
var requiredOutputs = []string{
	"FUNCTION_URL", "FUNCTION_APP_NAME", "MANAGED_IDENTITY_CLIENT_ID", "MANAGED_IDENTITY_PRINCIPAL_ID",
	"KEY_VAULT_URI", "KEY_VAULT_NAME", "APP_VAULT_ENTRY", "STATE_KEY_VAULT_ENTRY", "ONBOARD_REDIRECT_URI",
	"AZURE_TENANT_ID", "AZURE_RESOURCE_GROUP", "APP_CREDENTIAL_METHOD", "STORAGE_ACCOUNT_NAME",
	"SWEEP_RUNS_TABLE", "TENANT_REGISTRY_TABLE", "APPLICATIONINSIGHTS_NAME",
}

func TestEverySettingTheAppReadsIsSet(t *testing.T) {
	main := parseBicep(t, "main.bicep")
	set := main.settingNames()
	if len(set) == 0 {
		t.Fatal("main.bicep has no `var ...Settings = { ... }` block")
	}
	for _, s := range config.Settings {
		_, isSet := set[s.Name]
		why, unset := intentionallyUnset[s.Name]
		switch {
		case s.Host && isSet:
			t.Errorf("%s is provided by the Functions host; main.bicep must not set it", s.Name)
		case s.Host:
		case isSet && unset:
			t.Errorf("%s is set in main.bicep but listed as intentionally unset (%s)", s.Name, why)
		case !isSet && !unset:
			t.Errorf("the app reads %s but main.bicep does not set it; set it in a `var ...Settings` block or list it in intentionallyUnset with the reason", s.Name)
		}
	}
	for name := range intentionallyUnset {
		if !slices.ContainsFunc(config.Settings, func(s config.Setting) bool { return s.Name == name }) {
			t.Errorf("intentionallyUnset names %s, which config.Settings no longer has", name)
		}
	}
}

func TestPlatformSettingsAreNotTheApps(t *testing.T) {
	for _, name := range platformSettings {
		if slices.ContainsFunc(config.Settings, func(s config.Setting) bool { return s.Name == name }) {
			t.Errorf("%s is in platformSettings, but the app reads it (config.Settings): remove it from platformSettings", name)
		}
	}
}

func TestNoUnknownSetting(t *testing.T) {
	main := parseBicep(t, "main.bicep")
	for name, block := range main.settingNames() {
		known := slices.ContainsFunc(config.Settings, func(s config.Setting) bool { return s.Name == name })
		if !known && !slices.Contains(platformSettings, name) {
			t.Errorf("%s (var %s) is neither read by the app (config.Settings) nor a known platform setting", name, block)
		}
		if slices.Contains(flexRejected, name) {
			t.Errorf("%s is rejected by Flex Consumption (functionAppConfig replaces it)", name)
		}
		if strings.Contains(name, "__") && !strings.HasPrefix(name, "AzureWebJobsStorage__") {
			t.Errorf("%s: only the host's AzureWebJobsStorage__ connection uses the __ form", name)
		}
	}
	for _, v := range main.vars {
		if strings.HasSuffix(v.name, "Settings") && main.uses(v.name) == 0 {
			t.Errorf("var %s is never applied to the Function App", v.name)
		}
	}
}

// TestBicepDefaultsMatchTheApp keeps each default that main.bicep passes to
// the app equal to the app's own default, so an unset parameter means the
// same in Azure as locally.
func TestBicepDefaultsMatchTheApp(t *testing.T) {
	main := parseBicep(t, "main.bicep")
	checked := 0
	for _, s := range config.Settings {
		expr, ok := main.settingValue(s.Name)
		if !ok || s.Default == "" || strings.HasPrefix(s.Default, "(") {
			continue
		}
		ident := strings.TrimSuffix(strings.TrimPrefix(expr, "string("), ")")
		lit, ok := main.literal(ident)
		if !ok {
			continue
		}
		checked++
		if lit != s.Default {
			t.Errorf("%s: main.bicep's default %q (%s) differs from the app's default %q", s.Name, lit, ident, s.Default)
		}
	}
	if checked < 5 {
		t.Errorf("only %d defaults compared; the parser no longer sees main.bicep's settings", checked)
	}
}

func TestParametersAreUsedAndSafe(t *testing.T) {
	for _, f := range bicepFiles(t) {
		b := parseBicep(t, f)
		for _, p := range b.params {
			if b.uses(p.name) == 0 {
				t.Errorf("%s: param %s is never used", f, p.name)
			}
			if p.secure && p.def != "" && p.def != "''" {
				t.Errorf("%s: @secure() param %s has a default", f, p.name)
			}
			if looksSecret(p.name, p.def) {
				t.Errorf("%s: param %s has a secret-looking default %s", f, p.name, p.def)
			}
			if strings.Contains(p.def, "newGuid()") {
				t.Errorf("%s: param %s defaults to newGuid(), which changes on every deployment", f, p.name)
			}
		}
	}
}

func TestParametersFileMatchesMain(t *testing.T) {
	main := parseBicep(t, "main.bicep")
	var pf struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	readJSON(t, "main.parameters.json", &pf)
	envRef := regexp.MustCompile(`^\$\{[A-Z_][A-Z0-9_]*(=[^}]*)?\}$`)
	for name, v := range pf.Parameters {
		p, ok := main.param(name)
		if !ok {
			t.Errorf("main.parameters.json sets %s, which main.bicep does not declare", name)
			continue
		}
		s, _ := v.Value.(string)
		m := envRef.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("main.parameters.json: %s must come from the azd environment as ${VAR} or ${VAR=default}, got %v", name, v.Value)
			continue
		}
		if def, hasDefault := strings.CutPrefix(m[1], "="); hasDefault {
			if looksSecret(name, "'"+def+"'") {
				t.Errorf("main.parameters.json: %s has a secret-looking default", name)
			}
			if p.allowed != nil && !slices.Contains(p.allowed, def) {
				t.Errorf("main.parameters.json: default %q of %s is not among its @allowed values %v", def, name, p.allowed)
			}
		}
	}
	for _, p := range main.params {
		if _, ok := pf.Parameters[p.name]; !ok && p.def == "" {
			t.Errorf("main.bicep param %s has no default and main.parameters.json does not set it", p.name)
		}
	}
}

func TestModulesFitTogether(t *testing.T) {
	main := parseBicep(t, "main.bicep")
	if len(main.modules) == 0 {
		t.Fatal("main.bicep declares no module")
	}
	for _, m := range main.modules {
		mod := parseBicep(t, m.path)
		for _, p := range mod.params {
			if _, passed := m.args[p.name]; !passed && p.def == "" {
				t.Errorf("module %s: required param %s is not passed", m.path, p.name)
			}
		}
		for arg := range m.args {
			if _, ok := mod.param(arg); !ok {
				t.Errorf("module %s: main.bicep passes %s, which it does not declare", m.path, arg)
			}
		}
		for _, ref := range main.outputRefs(m.symbol) {
			if !slices.Contains(mod.outputs, ref) {
				t.Errorf("main.bicep reads %s.outputs.%s, which %s does not declare", m.symbol, ref, m.path)
			}
		}
	}
}

func TestResourcesUseKnownAPIVersions(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range bicepFiles(t) {
		for _, r := range parseBicep(t, f).resources {
			seen[r.typ] = true
			want, ok := apiVersions[r.typ]
			switch {
			case strings.Contains(r.version, "preview"):
				t.Errorf("%s: %s uses preview API version %s", f, r.typ, r.version)
			case !ok:
				t.Errorf("%s: %s@%s is not in apiVersions; look it up and add it", f, r.typ, r.version)
			case want != r.version:
				t.Errorf("%s: %s@%s, but apiVersions says %s", f, r.typ, r.version, want)
			}
		}
	}
	for _, typ := range []string{"Microsoft.Web/sites", "Microsoft.Web/serverfarms", "Microsoft.KeyVault/vaults",
		"Microsoft.Storage/storageAccounts/tableServices/tables", "Microsoft.ManagedIdentity/userAssignedIdentities",
		"Microsoft.Insights/components", "Microsoft.OperationalInsights/workspaces", "Microsoft.Authorization/roleAssignments"} {
		if !seen[typ] {
			t.Errorf("no template declares a %s", typ)
		}
	}
}

func TestFlexConsumptionCustomHandler(t *testing.T) {
	src := parseBicep(t, "modules/functionapp.bicep").code
	for _, want := range []string{
		"tier: 'FlexConsumption'", "name: 'FC1'", "reserved: true", "kind: 'functionapp,linux'",
		"type: 'UserAssignedIdentity'", "keyVaultReferenceIdentity: identityId",
		"'azd-service-name': serviceName", "httpsOnly: true",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("modules/functionapp.bicep lacks %q", want)
		}
	}
	// The custom handler runtime of Flex Consumption (its stack: runtime custom, version 1.0).
	runtime, ok := objectAt(src, "runtime:")
	if !ok || runtime["name"] != "'custom'" || runtime["version"] != "'1.0'" {
		t.Errorf("functionAppConfig.runtime = %v, want { name: 'custom', version: '1.0' }", runtime)
	}
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	readJSON(t, "../host.json", &host)
	if got := host.CustomHandler.Description.DefaultExecutablePath; got != "bin/handler" {
		t.Errorf("host.json runs %q but infra/scripts/package.sh packages bin/handler", got)
	}
}

func TestRoleAssignments(t *testing.T) {
	main := parseBicep(t, "main.bicep")
	roles, ok := main.objectLiteral("roles")
	if !ok {
		t.Fatal("main.bicep has no `var roles = { ... }`")
	}
	for key, val := range roles {
		id := strings.Trim(val, "'")
		if _, known := builtInRoles[id]; !known {
			t.Errorf("roles.%s = %s is not a built-in role this test knows", key, id)
		}
		if main.count(`roles\.`+key+`\b`) == 0 {
			t.Errorf("roles.%s is never assigned", key)
		}
		if name, ok := builtInRoles[id]; ok && key != lowerCamel(name) {
			t.Errorf("roles.%s = %s, which is %s: name the key %s", key, id, name, lowerCamel(name))
		}
	}
	// Every role id is named once, in main.bicep's roles, and assigned as roles.<name>.
	guid := regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	named := map[string]bool{}
	for _, v := range roles {
		named[strings.ToLower(strings.Trim(v, "'"))] = true
	}
	for _, f := range bicepFiles(t) {
		b := parseBicep(t, f)
		for _, id := range guid.FindAllString(b.code, -1) {
			if !named[strings.ToLower(id)] {
				t.Errorf("%s uses the id %s, which is not a value of main.bicep's roles", f, id)
			}
		}
		if n := b.count(`roleId:\s*'`); n > 0 {
			t.Errorf("%s: %d roleId given as a literal; use roles.<name>", f, n)
		}
	}
	if n := main.count(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`); n != len(roles) {
		t.Errorf("main.bicep holds %d role ids but roles names %d: an id is written out twice", n, len(roles))
	}
	for _, want := range []string{"storageTableDataContributor", "storageBlobDataOwner", "storageQueueDataContributor",
		"keyVaultSecretsUser", "monitoringMetricsPublisher"} {
		if _, ok := roles[want]; !ok {
			t.Errorf("the app's identity needs roles.%s", want)
		}
	}
	// The identity never gets a broader role than the data-plane ones above.
	for _, broad := range []string{"Contributor'", "Owner'", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c"} {
		if main.count(regexp.QuoteMeta(broad)) > 0 {
			t.Errorf("main.bicep grants %s", broad)
		}
	}
}

// queueRoleRights are the rights of the built-in queue roles on a queue
// (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage),
// actions and dataActions without the prefix
// Microsoft.Storage/storageAccounts/queueServices/queues/.
var queueRoleRights = map[string][]string{
	"Storage Queue Data Contributor":       {"read", "write", "delete", "messages/read", "messages/write", "messages/delete", "messages/process/action"},
	"Storage Queue Data Reader":            {"read", "messages/read"},
	"Storage Queue Data Message Processor": {"messages/read", "messages/process/action"},
	"Storage Queue Data Message Sender":    {"messages/add/action"},
}

// queueNeeds are what the app's identity does on each queue, per storage
// module param, and the rights that allow it (any one of them): Get Queue
// Properties is queues/read, Peek Messages messages/read, Get and Delete
// Message messages/process/action, Update Message messages/write, Put
// Message messages/add/action or messages/write
// (https://learn.microsoft.com/azure/storage/queues/queues-auth-abac-attributes).
var queueNeeds = map[string][]struct {
	what  string
	anyOf []string
}{
	"workQueueRoleAssignments": {
		{"the trigger's scaling and TenantSweep read the approximate message count", []string{"read"}},
		{"the trigger peeks", []string{"messages/read"}},
		{"the trigger gets and deletes messages", []string{"messages/process/action"}},
		{"the trigger renews a running message's lease and releases a failed one (Update Message)", []string{"messages/write"}},
		{"TenantSweep enqueues work", []string{"messages/add/action", "messages/write"}},
	},
	"poisonQueueRoleAssignments": {
		{"the host moves a message here past maxDequeueCount", []string{"messages/add/action", "messages/write"}},
		{"handler runs peeks the poisoned messages", []string{"messages/read"}},
		{"handler runs counts them", []string{"read"}},
	},
}

// TestQueueRoles checks that the identity's queue roles cover what the
// trigger and the app do on each queue, that no queue role is granted on the
// whole account, and that each list is applied at its own queue's scope.
func TestQueueRoles(t *testing.T) {
	main := parseBicep(t, "main.bicep")
	roles, _ := main.objectLiteral("roles")
	storage, ok := bracketedAfter(main.code, "module storage ")
	if !ok {
		t.Fatal("main.bicep has no module storage")
	}
	grantedRoles := func(list string) []string {
		var names []string
		for _, m := range regexp.MustCompile(`principalId: identity\.outputs\.principalId[^}]*roleId: roles\.(\w+)`).FindAllStringSubmatch(list, -1) {
			names = append(names, builtInRoles[strings.Trim(roles[m[1]], "'")])
		}
		return names
	}
	for param, needs := range queueNeeds {
		list, ok := bracketedAfter(storage, param+":")
		if !ok {
			t.Errorf("main.bicep's storage module is not passed %s", param)
			continue
		}
		rights := map[string]bool{}
		granted := grantedRoles(list)
		for _, r := range granted {
			for _, a := range queueRoleRights[r] {
				rights[a] = true
			}
		}
		for _, n := range needs {
			if !slices.ContainsFunc(n.anyOf, func(a string) bool { return rights[a] }) {
				t.Errorf("%s %v: %s needs one of %v", param, granted, n.what, n.anyOf)
			}
		}
	}
	if account, ok := bracketedAfter(storage, "\n    roleAssignments:"); !ok {
		t.Error("main.bicep's storage module is not passed roleAssignments")
	} else {
		for _, r := range grantedRoles(account) {
			if strings.HasPrefix(r, "Storage Queue") {
				t.Errorf("%s is granted on the whole storage account; grant it on the queue that needs it", r)
			}
		}
	}
	src := parseBicep(t, "modules/storage.bicep").code
	for list, scope := range map[string]string{"workQueueRoleAssignments": "workQueue", "poisonQueueRoleAssignments": "poisonQueue"} {
		if !regexp.MustCompile(`for a in ` + list + `: \{\s*name: guid\(` + scope + `\.id,[^}]*scope: ` + scope + `\n`).MatchString(src) {
			t.Errorf("modules/storage.bicep must assign %s at scope %s (named after %s.id)", list, scope, scope)
		}
	}
}

// poisonSuffix is what the Functions queue trigger appends to a queue's name
// for its poison queue (config.Queue.Name + "-poison").
const poisonSuffix = "-poison"

// TestWorkQueue keeps the queues Bicep creates, the app setting SWEEP_QUEUE
// and the limits of both in step with the app and the host.
func TestWorkQueue(t *testing.T) {
	main := parseBicep(t, "main.bicep")
	storage := parseBicep(t, "modules/storage.bicep")
	if v, _ := main.settingValue("SWEEP_QUEUE"); v != "sweepQueue" {
		t.Errorf("SWEEP_QUEUE = %q, want the param sweepQueue", v)
	}
	for _, m := range main.modules {
		if m.symbol == "storage" && m.args["workQueueName"] != "sweepQueue" {
			t.Errorf("the storage module's workQueueName = %q, want sweepQueue (the SWEEP_QUEUE the trigger reads)", m.args["workQueueName"])
		}
	}
	// The queues: exactly the work queue and <work queue>-poison.
	var names []string
	for _, m := range regexp.MustCompile(`resource \w+ 'Microsoft\.Storage/storageAccounts/queueServices/queues@[\w-]+' = \{[^}]*?name: ([^\n]+)`).FindAllStringSubmatch(storage.code, -1) {
		names = append(names, strings.TrimSpace(m[1]))
	}
	slices.Sort(names)
	if want := []string{"'${workQueueName}" + poisonSuffix + "'", "workQueueName"}; !slices.Equal(names, want) {
		t.Errorf("modules/storage.bicep creates the queues %v, want %v", names, want)
	}
	// Bicep accepts a name exactly when the app does (and then its poison queue's name fits 63).
	const maxQueueName = 63
	env := func(kv ...string) func(string) string {
		m := map[string]string{"AzureWebJobsStorage__queueServiceUri": "https://account.queue.core.windows.net"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	nameOf := func(n int) string { return "a" + strings.Repeat("b", max(n-2, 0)) + "c"[:min(n-1, 1)] }
	for _, p := range []struct {
		file  *bicepFile
		param string
	}{{main, "sweepQueue"}, {storage, "workQueueName"}} {
		bp, ok := p.file.param(p.param)
		if !ok {
			t.Errorf("%s has no param %s", p.file.path, p.param)
			continue
		}
		lo, hasLo := bp.limits["minLength"]
		hi, hasHi := bp.limits["maxLength"]
		if !hasLo || !hasHi {
			t.Errorf("%s: param %s needs @minLength and @maxLength", p.file.path, p.param)
			continue
		}
		if hi+len(poisonSuffix) > maxQueueName {
			t.Errorf("%s: %s allows %d characters, but %s%s must fit in %d", p.file.path, p.param, hi, p.param, poisonSuffix, maxQueueName)
		}
		for n, accept := range map[int]bool{lo - 1: false, lo: true, hi: true, hi + 1: false} {
			if _, err := config.LoadQueue(env("SWEEP_QUEUE", nameOf(n))); (err == nil) != accept {
				t.Errorf("%s: %s's limits %d-%d, but the app's answer for a %d-character name is %v", p.file.path, p.param, lo, hi, n, err)
			}
		}
	}
	bp, _ := main.param("sweepMessageTenants")
	lo, hi := bp.limits["minValue"], bp.limits["maxValue"]
	for n, accept := range map[int]bool{lo - 1: false, lo: true, hi: true, hi + 1: false} {
		if _, err := config.LoadQueue(env("SWEEP_MESSAGE_TENANTS", strconv.Itoa(n))); (err == nil) != accept {
			t.Errorf("sweepMessageTenants allows %d-%d, but the app's answer for %d is %v", lo, hi, n, err)
		}
	}
}

func TestOutputs(t *testing.T) {
	main := parseBicep(t, "main.bicep")
	for _, o := range requiredOutputs {
		if !slices.Contains(main.outputs, o) {
			t.Errorf("main.bicep lacks output %s", o)
		}
	}
	for _, line := range strings.Split(main.code, "\n") {
		if strings.HasPrefix(line, "output ") && regexp.MustCompile(`list\w*\(|@secure|secret\(`).MatchString(line) {
			t.Errorf("an output exposes a secret: %s", line)
		}
	}
}

func TestAzureYAML(t *testing.T) {
	y := parseYAML(t, "../azure.yaml")
	if got := y.get("infra", "path"); got != "infra" {
		t.Errorf("azure.yaml infra.path = %q, want infra", got)
	}
	if got := y.get("infra", "module"); got != "" && got != "main" {
		t.Errorf("azure.yaml infra.module = %q, want main", got)
	}
	services := y.keys("services")
	if len(services) != 1 {
		t.Fatalf("azure.yaml has services %v, want exactly one", services)
	}
	svc := services[0]
	main := parseBicep(t, "main.bicep")
	if lit, _ := main.literal("serviceName"); lit != svc {
		t.Errorf("azure.yaml's service %q is not main.bicep's serviceName %q (azd finds the app by the azd-service-name tag)", svc, lit)
	}
	for key, want := range map[string]string{"host": "function", "language": "custom", "project": "."} {
		if got := y.get("services", svc, key); got != want {
			t.Errorf("azure.yaml services.%s.%s = %q, want %q", svc, key, got, want)
		}
	}
	dist := y.get("services", svc, "dist")
	pkg := readFile(t, "scripts/package.sh")
	if dist == "" || !strings.Contains(pkg, "out=${1:-"+dist+"}") {
		t.Errorf("azure.yaml dist %q is not where infra/scripts/package.sh writes", dist)
	}
	prepackage := y.get("services", svc, "hooks", "prepackage", "run")
	if !strings.Contains(prepackage, "make build") || !strings.Contains(prepackage, "infra/scripts/package.sh") {
		t.Errorf("the prepackage hook %q must run make build and infra/scripts/package.sh", prepackage)
	}
	for _, hook := range []string{prepackage, y.get("hooks", "postprovision", "run")} {
		for _, script := range regexp.MustCompile(`infra/scripts/[\w.-]+\.sh`).FindAllString(hook, -1) {
			if _, err := os.Stat(filepath.Join("..", script)); err != nil {
				t.Errorf("azure.yaml runs %s: %v", script, err)
			}
		}
	}
	if !strings.Contains(y.get("hooks", "postprovision", "run"), "postprovision.sh") {
		t.Error("azure.yaml must run infra/scripts/postprovision.sh after provisioning (it creates the state key)")
	}
}

func TestScriptsAreStrict(t *testing.T) {
	scripts, _ := filepath.Glob("scripts/*.sh")
	if len(scripts) == 0 {
		t.Fatal("no infra/scripts/*.sh")
	}
	for _, want := range []string{"register-app.sh", "onboard-customer.sh", "package.sh", "postprovision.sh"} {
		if !slices.Contains(scripts, "scripts/"+want) {
			t.Errorf("infra/scripts/%s is missing", want)
		}
	}
	for _, s := range scripts {
		src := readFile(t, s)
		if !strings.HasPrefix(src, "#!/usr/bin/env bash\n") {
			t.Errorf("%s must start with #!/usr/bin/env bash", s)
		}
		if !regexp.MustCompile(`(?m)^set -euo pipefail$`).MatchString(src) {
			t.Errorf("%s must set -euo pipefail", s)
		}
		if fi, err := os.Stat(s); err == nil && fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
	}
}

// TestShellcheck runs shellcheck on the scripts. It skips when shellcheck is
// not installed, except in CI, where a skipped check would hide a failure.
func TestShellcheck(t *testing.T) {
	bin, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("shellcheck is not installed (apt-get install shellcheck, or make deps); CI must run it")
		}
		t.Skip("shellcheck is not installed (apt-get install shellcheck); skipping")
	}
	scripts, _ := filepath.Glob("scripts/*.sh")
	out, err := exec.Command(bin, append([]string{"-x", "--severity=style"}, scripts...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck %v: %v\n%s", scripts, err, out)
	}
}

// --- a reader for the subset of Bicep these templates use -------------------

type bicepParam struct {
	name, typ, def string
	secure         bool
	allowed        []string
	// limits holds @minLength, @maxLength, @minValue and @maxValue.
	limits map[string]int
}

type bicepVar struct{ name, expr string }

type bicepResource struct{ typ, version string }

type bicepModule struct {
	symbol, path string
	args         map[string]string
}

type bicepFile struct {
	path      string
	code      string // comments removed
	idents    string // code with string literals blanked, declarations' own names removed
	params    []bicepParam
	vars      []bicepVar
	resources []bicepResource
	modules   []bicepModule
	outputs   []string
}

func bicepFiles(t *testing.T) []string {
	t.Helper()
	mods, err := filepath.Glob("modules/*.bicep")
	if err != nil || len(mods) == 0 {
		t.Fatalf("no modules/*.bicep: %v", err)
	}
	return append([]string{"main.bicep"}, mods...)
}

func parseBicep(t *testing.T, path string) *bicepFile {
	t.Helper()
	b := &bicepFile{path: path, code: stripComments(readFile(t, path))}
	lines := strings.Split(b.code, "\n")
	var decorators []string
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(line, "@"):
			// A decorator may span lines (@allowed([ ... ])).
			dec := line
			for depth := bracketDepth(line); depth > 0 && i+1 < len(lines); {
				i++
				dec += "\n" + lines[i]
				depth += bracketDepth(lines[i])
			}
			decorators = append(decorators, dec)
			continue
		case strings.HasPrefix(line, "param "):
			b.params = append(b.params, newParam(t, path, line, decorators))
		case strings.HasPrefix(line, "var "):
			name, expr, _ := strings.Cut(strings.TrimPrefix(line, "var "), " = ")
			b.vars = append(b.vars, bicepVar{name: name, expr: expr + "\n" + blockAfter(lines, i, expr)})
		case strings.HasPrefix(line, "output "):
			b.outputs = append(b.outputs, strings.Fields(line)[1])
		case strings.HasPrefix(line, "module "):
			f := strings.Fields(line)
			m := bicepModule{symbol: f[1], path: strings.Trim(f[2], "'"), args: map[string]string{}}
			body := blockAfter(lines, i, line)
			if params, ok := objectAt(body, "params:"); ok {
				m.args = params
			}
			b.modules = append(b.modules, m)
		}
		if m := regexp.MustCompile(`resource \w+ '([\w./]+)@([\w-]+)'`).FindStringSubmatch(line); m != nil {
			b.resources = append(b.resources, bicepResource{typ: m[1], version: m[2]})
		}
		decorators = nil
	}
	b.idents = identifiersOnly(b.code)
	return b
}

func newParam(t *testing.T, path, line string, decorators []string) bicepParam {
	t.Helper()
	m := regexp.MustCompile(`^param (\w+) ([\w\[\]]+)(?: = (.+))?$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("%s: cannot read %q", path, line)
	}
	p := bicepParam{name: m[1], typ: m[2], def: m[3], limits: map[string]int{}}
	for _, d := range decorators {
		if l := regexp.MustCompile(`^@(minLength|maxLength|minValue|maxValue)\((-?\d+)\)`).FindStringSubmatch(d); l != nil {
			p.limits[l[1]], _ = strconv.Atoi(l[2])
		}
		if strings.HasPrefix(d, "@secure()") {
			p.secure = true
		}
		if strings.HasPrefix(d, "@allowed(") {
			for _, v := range regexp.MustCompile(`'([^']*)'|\b(\d+)\b`).FindAllStringSubmatch(d, -1) {
				p.allowed = append(p.allowed, v[1]+v[2])
			}
		}
	}
	return p
}

func (b *bicepFile) param(name string) (bicepParam, bool) {
	for _, p := range b.params {
		if p.name == name {
			return p, true
		}
	}
	return bicepParam{}, false
}

// settingNames maps each key of every `var <x>Settings = { ... }` object
// literal to the var it is in.
func (b *bicepFile) settingNames() map[string]string {
	names := map[string]string{}
	for _, v := range b.vars {
		if !strings.HasSuffix(v.name, "Settings") {
			continue
		}
		obj, ok := b.objectLiteral(v.name)
		if !ok {
			continue // an expression combining other Settings vars
		}
		for k := range obj {
			names[k] = v.name
		}
	}
	return names
}

// settingValue is the expression main.bicep assigns to an app setting.
func (b *bicepFile) settingValue(name string) (string, bool) {
	for _, v := range b.vars {
		if obj, ok := b.objectLiteral(v.name); ok && strings.HasSuffix(v.name, "Settings") {
			if e, ok := obj[name]; ok {
				return e, true
			}
		}
	}
	return "", false
}

// objectLiteral returns the keys and value expressions of `var name = { ... }`.
func (b *bicepFile) objectLiteral(name string) (map[string]string, bool) {
	for _, v := range b.vars {
		if v.name == name && strings.HasPrefix(v.expr, "{") {
			return objectAt(v.expr, "")
		}
	}
	return nil, false
}

// literal resolves an identifier to the literal default of a param or the
// literal value of a var, unquoted.
func (b *bicepFile) literal(ident string) (string, bool) {
	val := ""
	if p, ok := b.param(ident); ok {
		val = p.def
	}
	for _, v := range b.vars {
		if v.name == ident {
			val, _, _ = strings.Cut(v.expr, "\n")
		}
	}
	if s, err := strconv.Unquote(`"` + strings.Trim(val, "'") + `"`); err == nil && strings.HasPrefix(val, "'") && strings.HasSuffix(val, "'") {
		return s, true
	}
	if _, err := strconv.Atoi(val); err == nil {
		return val, true
	}
	return "", false
}

// uses counts the references to an identifier outside its own declaration,
// string literals (but not their interpolations) and property keys.
func (b *bicepFile) uses(ident string) int {
	n := 0
	re := regexp.MustCompile(`(^|[^.\w])` + regexp.QuoteMeta(ident) + `\b`)
	for _, loc := range re.FindAllStringIndex(b.idents, -1) {
		start := loc[0]
		if b.idents[start] != ident[0] {
			start++
		}
		before := strings.TrimRight(b.idents[:start], " \t")
		after := strings.TrimLeft(b.idents[loc[1]:], " \t")
		key := strings.HasPrefix(after, ":") &&
			(before == "" || strings.HasSuffix(before, "\n") || strings.HasSuffix(before, "{") || strings.HasSuffix(before, ","))
		if !key {
			n++
		}
	}
	return n
}

func (b *bicepFile) count(pattern string) int {
	return len(regexp.MustCompile(pattern).FindAllStringIndex(b.code, -1))
}

// outputRefs lists the NAME of every `<symbol>.outputs.NAME`.
func (b *bicepFile) outputRefs(symbol string) []string {
	var refs []string
	for _, m := range regexp.MustCompile(`\b`+regexp.QuoteMeta(symbol)+`\.outputs\.(\w+)`).FindAllStringSubmatch(b.code, -1) {
		refs = append(refs, m[1])
	}
	return refs
}

// bracketedAfter returns the text inside the first bracket pair ({}, [] or
// ()) that opens after marker in src.
func bracketedAfter(src, marker string) (string, bool) {
	at := strings.Index(src, marker)
	if at < 0 {
		return "", false
	}
	open := strings.IndexAny(src[at:], "{[(")
	if open < 0 {
		return "", false
	}
	open += at
	depth := 0
	for i := open; i < len(src); i++ {
		switch src[i] {
		case '{', '[', '(':
			depth++
		case '}', ']', ')':
			if depth--; depth == 0 {
				return src[open+1 : i], true
			}
		}
	}
	return "", false
}

// lowerCamel turns a role's name into its key in main.bicep's roles:
// "Storage Queue Data Reader" is storageQueueDataReader.
func lowerCamel(name string) string {
	words := strings.Fields(name)
	for i, w := range words {
		if i == 0 {
			words[i] = strings.ToLower(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, "")
}

// blockAfter returns the text from line i's first unclosed bracket to the
// line that closes it (empty when the line is complete).
func blockAfter(lines []string, i int, first string) string {
	depth := bracketDepth(first)
	var out []string
	for depth > 0 && i+1 < len(lines) {
		i++
		out = append(out, lines[i])
		depth += bracketDepth(lines[i])
	}
	return strings.Join(out, "\n")
}

// objectAt parses the object literal that follows marker in src (from the
// start when marker is empty): its top-level keys and value expressions.
func objectAt(src, marker string) (map[string]string, bool) {
	at := strings.Index(src, marker+" {")
	if marker == "" {
		at = strings.Index(src, "{")
	}
	if at < 0 {
		return nil, false
	}
	open := strings.Index(src[at:], "{") + at
	depth, end := 0, -1
	for i := open; i < len(src) && end < 0; i++ {
		switch src[i] {
		case '{', '[', '(':
			depth++
		case '}', ']', ')':
			depth--
			if depth == 0 {
				end = i
			}
		}
	}
	if end < 0 {
		return nil, false
	}
	obj := map[string]string{}
	depth = 0
	for _, line := range strings.Split(src[open+1:end], "\n") {
		if depth == 0 {
			if m := regexp.MustCompile(`^\s*'?([\w-]+)'?\s*:\s*(.*)$`).FindStringSubmatch(line); m != nil {
				obj[m[1]] = strings.TrimSpace(m[2])
			}
		}
		depth += bracketDepth(line)
	}
	return obj, true
}

func bracketDepth(line string) int {
	d := 0
	inString := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && inString:
			i++
		case c == '\'':
			inString = !inString
		case inString:
		case c == '{' || c == '[' || c == '(':
			d++
		case c == '}' || c == ']' || c == ')':
			d--
		}
	}
	return d
}

// stripComments removes // and /* */ comments outside string literals.
func stripComments(src string) string {
	var out strings.Builder
	inString := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case inString:
			out.WriteByte(c)
			if c == '\\' && i+1 < len(src) {
				i++
				out.WriteByte(src[i])
			} else if c == '\'' {
				inString = false
			}
		case c == '\'':
			inString = true
			out.WriteByte(c)
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			if i < len(src) {
				out.WriteByte('\n')
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return out.String()
			}
			i += end + 3
		default:
			out.WriteByte(c)
		}
	}
	return out.String()
}

// identifiersOnly blanks string literals except their ${...} interpolations
// and drops decorators and the names that declarations introduce.
func identifiersOnly(code string) string {
	var out strings.Builder
	inString := false
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case !inString && c == '\'':
			inString = true
			out.WriteString("''")
		case !inString:
			out.WriteByte(c)
		case c == '\\':
			i++
		case c == '\'':
			inString = false
		case strings.HasPrefix(code[i:], "${"):
			depth, j := 0, i+1
			for ; j < len(code); j++ {
				if code[j] == '{' {
					depth++
				} else if code[j] == '}' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			out.WriteString(" " + code[i+2:min(j, len(code))] + " ")
			i = j
		}
	}
	var kept []string
	decl := regexp.MustCompile(`^(\s*)(param|var|output|resource|module|type)\s+\w+`)
	lines := strings.Split(out.String(), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.HasPrefix(strings.TrimSpace(line), "@") {
			for depth := bracketDepth(line); depth > 0 && i+1 < len(lines); {
				i++
				depth += bracketDepth(lines[i])
			}
			continue
		}
		kept = append(kept, decl.ReplaceAllString(line, "$1$2"))
	}
	return strings.Join(kept, "\n")
}

// looksSecret reports whether a parameter's default could be a secret: a
// non-empty default of a parameter named like one (ending in Secret,
// Password, Token, Key, ...), or a long random-looking token whatever the name.
func looksSecret(name, def string) bool {
	val := strings.Trim(def, "'")
	if val == "" {
		return false
	}
	if regexp.MustCompile(`(?i)(secret|password|passwd|token|key|credential|connectionstring|sas)$`).MatchString(name) {
		return true
	}
	return regexp.MustCompile(`^[A-Za-z0-9+/=_-]{24,}$`).MatchString(val) &&
		regexp.MustCompile(`[0-9]`).MatchString(val) && regexp.MustCompile(`[A-Za-z]`).MatchString(val)
}

// --- a reader for the subset of YAML azure.yaml uses -------------------------

type yamlNode struct {
	value    string
	children map[string]*yamlNode
	order    []string
}

func parseYAML(t *testing.T, path string) *yamlNode {
	t.Helper()
	root := &yamlNode{children: map[string]*yamlNode{}}
	type frame struct {
		indent int
		node   *yamlNode
	}
	stack := []frame{{-1, root}}
	for n, raw := range strings.Split(readFile(t, path), "\n") {
		line := raw
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || strings.HasPrefix(key, "- ") {
			t.Fatalf("%s:%d: this reader handles `key: value` mappings only: %q", path, n+1, raw)
		}
		for stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		parent := stack[len(stack)-1].node
		node := &yamlNode{value: strings.Trim(strings.TrimSpace(val), `"'`), children: map[string]*yamlNode{}}
		parent.children[key] = node
		parent.order = append(parent.order, key)
		stack = append(stack, frame{indent, node})
	}
	return root
}

func (y *yamlNode) get(path ...string) string {
	n := y
	for _, k := range path {
		if n = n.children[k]; n == nil {
			return ""
		}
	}
	return n.value
}

func (y *yamlNode) keys(key string) []string {
	if n := y.children[key]; n != nil {
		return n.order
	}
	return nil
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(readFile(t, path)), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
