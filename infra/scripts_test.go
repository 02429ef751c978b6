package infra

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
)

// The scripts run against Azure only, so these tests run them against fakes
// of az, azd and curl that keep the state of a tenant, a vault and the
// onboarding webhook in a JSON file. The fakes are this test binary itself,
// called through symlinks (TestMain dispatches on the program name). They
// check the scripts' logic: what each step does, that a second run changes
// nothing, and that no secret reaches a command line.

const (
	devTenant      = "11111111-1111-1111-1111-111111111111"
	customerTenant = "22222222-2222-2222-2222-222222222222"
	miPrincipal    = "33333333-3333-3333-3333-333333333333"
	knownAppID     = "44444444-4444-4444-4444-444444444444"
	graphAppID     = "00000003-0000-0000-c000-000000000000"
	graphSPID      = "55555555-5555-5555-5555-555555555555"
	userReadAll    = "df021288-bdef-4463-88db-98f22de89214"
	orgReadAll     = "498476ce-e0fe-48b0-b801-37ba7e2685c6"
	groupReadAll   = "5b567255-7703-4780-807c-7be8301ae99b"
	functionKey    = "test-function-key-value"
	redirectURI    = "https://func-abc.azurewebsites.net/api/consent/callback"
	webhookURL     = "https://func-abc.azurewebsites.net/api/tenants"
)

var (
	handlerOnce sync.Once
	handlerPath string
	handlerErr  error
)

// handlerBinary builds bin/handler once, for register-app.sh to list the
// tasks' permissions with (TENANTSWEEP_HANDLER).
func handlerBinary(t testing.TB) string {
	t.Helper()
	handlerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tenantsweep-infra")
		if err != nil {
			handlerErr = err
			return
		}
		handlerPath = filepath.Join(dir, "handler")
		// The flags of handler/harness_test.go, so the two builds share the
		// build cache (-trimpath changes every package's cache key).
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", handlerPath, "../handler")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			handlerErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if handlerErr != nil {
		t.Fatal(handlerErr)
	}
	return handlerPath
}

func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "az":
		os.Exit(fake(fakeAz))
	case "azd":
		os.Exit(fake(fakeAzd))
	case "curl":
		os.Exit(fake(fakeCurl))
	}
	code := m.Run()
	if fakePath != "" && filepath.Base(fakePath) == "fakes.test" {
		os.RemoveAll(filepath.Dir(fakePath))
	}
	os.Exit(code)
}

type fakeApp struct {
	AppID                  string            `json:"appId"`
	ID                     string            `json:"id"`
	DisplayName            string            `json:"displayName"`
	SignInAudience         string            `json:"signInAudience"`
	RequiredResourceAccess json.RawMessage   `json:"requiredResourceAccess"`
	RedirectURIs           []string          `json:"redirectUris"`
	FICs                   []json.RawMessage `json:"fics"`
	Passwords              []fakePassword    `json:"passwords"`
}

type fakePassword struct {
	KeyID, DisplayName, EndDateTime, Value string
}

type fakeVault struct {
	ID, URI string
	RBAC    bool
}

type fakeRequest struct {
	Headers string          `json:"headers"`
	Body    json.RawMessage `json:"body"`
}

type fakeState struct {
	Tenant          string               `json:"tenant"`
	LoggedIn        bool                 `json:"loggedIn"`
	Org             string               `json:"org"`
	Apps            []*fakeApp           `json:"apps"`
	Secrets         map[string]string    `json:"secrets"` // vault/name -> value
	SPs             map[string]string    `json:"sps"`     // appId -> object id
	AppRoles        []string             `json:"appRoles"`
	RoleAssignments []string             `json:"roleAssignments"` // principal|role|scope
	Policies        []string             `json:"policies"`
	Vaults          map[string]fakeVault `json:"vaults"`
	Subscriptions   []string             `json:"subscriptions"`
	AzdEnv          map[string]string    `json:"azdEnv"`
	Requests        []fakeRequest        `json:"requests"`
	Seq             int                  `json:"seq"`

	// DenyRoleAssignments makes role assignment create fail, as for an
	// admin who may not assign roles on the vault.
	DenyRoleAssignments bool `json:"denyRoleAssignments"`
}

func (s *fakeState) app(id string) *fakeApp {
	for _, a := range s.Apps {
		if a.AppID == id || a.ID == id {
			return a
		}
	}
	return nil
}

func (s *fakeState) next() string {
	s.Seq++
	return fmt.Sprintf("99999999-0000-0000-0000-%012d", s.Seq)
}

// fake loads the state, runs one command and saves it, logging the call.
func fake(cmd func(s *fakeState, args []string, out io.Writer) error) int {
	path := os.Getenv("FAKE_STATE")
	var s fakeState
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			fmt.Fprintln(os.Stderr, "fake: bad state:", err)
			return 3
		}
	}
	name := filepath.Base(os.Args[0])
	if f, err := os.OpenFile(os.Getenv("FAKE_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		fmt.Fprintln(f, name+" "+strings.Join(os.Args[1:], " "))
		f.Close()
	}
	var out bytes.Buffer
	err := cmd(&s, os.Args[1:], &out)
	b, _ := json.MarshalIndent(&s, "", " ")
	_ = os.WriteFile(path, b, 0o600)
	os.Stdout.Write(out.Bytes())
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake %s: %v\n", name, err)
		if strings.HasPrefix(err.Error(), "unsupported") {
			return 97
		}
		return 1
	}
	return 0
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// flagValues returns every value after name up to the next flag.
func flagValues(args []string, name string) []string {
	for i, a := range args {
		if a == name {
			var vs []string
			for _, v := range args[i+1:] {
				if strings.HasPrefix(v, "--") || v == "-o" {
					break
				}
				vs = append(vs, v)
			}
			return vs
		}
	}
	return nil
}

func readAt(arg string) ([]byte, error) { return os.ReadFile(strings.TrimPrefix(arg, "@")) }

func fakeAz(s *fakeState, args []string, out io.Writer) error {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	cmd := strings.Join(words, " ")
	query := flagValue(args, "--query")
	id := flagValue(args, "--id")
	tsv := func(v string) error { fmt.Fprintln(out, v); return nil }
	js := func(v any) error { return json.NewEncoder(out).Encode(v) }
	switch {
	case cmd == "version" && query == `"azure-cli"`:
		return tsv("2.75.0")
	case cmd == "login":
		s.Tenant, s.LoggedIn = flagValue(args, "--tenant"), true
		return nil
	case !s.LoggedIn:
		return fmt.Errorf("please run az login")
	case cmd == "account show" && query == "tenantId":
		return tsv(s.Tenant)
	case cmd == "account list" && query == "[?tenantId=='"+s.Tenant+"'].id":
		return tsv(strings.Join(s.Subscriptions, "\n"))
	case cmd == "cloud show" && query == "name":
		return tsv("AzureCloud")
	case cmd == "cloud show" && query == "endpoints.microsoftGraphResourceId":
		return tsv("https://graph.microsoft.com/")
	case cmd == "cloud show" && query == "endpoints.activeDirectory":
		return tsv("https://login.microsoftonline.com")

	case cmd == "ad app list":
		list := []*fakeApp{}
		for _, a := range s.Apps {
			if strings.HasPrefix(a.DisplayName, flagValue(args, "--display-name")) {
				list = append(list, a)
			}
		}
		return js(list)
	case cmd == "ad app create":
		a := &fakeApp{AppID: s.next(), ID: s.next(), DisplayName: flagValue(args, "--display-name"),
			SignInAudience: flagValue(args, "--sign-in-audience"), RequiredResourceAccess: json.RawMessage("[]")}
		s.Apps = append(s.Apps, a)
		return tsv(a.AppID)
	case cmd == "ad app show" || cmd == "ad app update" || strings.HasPrefix(cmd, "ad app federated-credential") ||
		strings.HasPrefix(cmd, "ad app credential"):
		a := s.app(id)
		if a == nil {
			return fmt.Errorf("app %s not found", id)
		}
		return fakeAzApp(s, a, cmd, args, query, tsv, js)

	case cmd == "ad sp show" && id == graphAppID && query == "id":
		return tsv(graphSPID)
	case cmd == "ad sp show" && id == graphAppID:
		roles := map[string]string{"User.Read.All": userReadAll, "Organization.Read.All": orgReadAll, "Group.Read.All": groupReadAll}
		for name, rid := range roles {
			if query == "appRoles[?value=='"+name+"'].id | [0]" {
				return tsv(rid)
			}
		}
	case cmd == "ad sp show" && query == "id":
		if sp, ok := s.SPs[id]; ok {
			return tsv(sp)
		}
		return fmt.Errorf("service principal %s does not exist", id)
	case cmd == "ad sp create" && query == "id":
		if s.SPs == nil {
			s.SPs = map[string]string{}
		}
		s.SPs[id] = s.next()
		return tsv(s.SPs[id])

	case cmd == "rest":
		return fakeAzRest(s, args, query, tsv)

	case cmd == "keyvault secret show" && query == "id":
		key := flagValue(args, "--vault-name") + "/" + flagValue(args, "--name")
		if _, ok := s.Secrets[key]; !ok {
			return fmt.Errorf("secret %s not found", key)
		}
		return tsv("https://" + key)
	case cmd == "keyvault secret set":
		if flagValue(args, "--value") != "" {
			return fmt.Errorf("unsupported: a secret value on the command line")
		}
		b, err := readAt(flagValue(args, "--file"))
		if err != nil {
			return err
		}
		if s.Secrets == nil {
			s.Secrets = map[string]string{}
		}
		s.Secrets[flagValue(args, "--vault-name")+"/"+flagValue(args, "--name")] = string(b)
		if query == "id" {
			return tsv("https://secret")
		}
		return nil
	case cmd == "keyvault show":
		v, ok := s.Vaults[flagValue(args, "--name")]
		if !ok || !strings.Contains(v.ID, "/subscriptions/"+flagValue(args, "--subscription")+"/") {
			return fmt.Errorf("vault not found")
		}
		return js(map[string]any{"id": v.ID, "properties": map[string]any{"vaultUri": v.URI, "enableRbacAuthorization": v.RBAC}})
	case cmd == "keyvault set-policy":
		policy := flagValue(args, "--object-id") + "|" + flagValue(args, "--name")
		if perms := flagValues(args, "--key-permissions"); perms != nil {
			policy += "|keys " + strings.Join(perms, " ")
		}
		s.Policies = append(s.Policies, policy)
		return nil
	case cmd == "role assignment list" && query == "length(@)":
		key := flagValue(args, "--assignee") + "|" + flagValue(args, "--role") + "|" + flagValue(args, "--scope")
		if slices.Contains(s.RoleAssignments, key) {
			return tsv("1")
		}
		return tsv("0")
	case cmd == "role assignment create" && s.DenyRoleAssignments:
		return fmt.Errorf("(AuthorizationFailed) the client does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write'")
	case cmd == "role assignment create":
		s.RoleAssignments = append(s.RoleAssignments,
			flagValue(args, "--assignee-object-id")+"|"+flagValue(args, "--role")+"|"+flagValue(args, "--scope"))
		return nil
	}
	return fmt.Errorf("unsupported: az %s", strings.Join(args, " "))
}

func fakeAzApp(s *fakeState, a *fakeApp, cmd string, args []string, query string, tsv func(string) error, js func(any) error) error {
	switch {
	case cmd == "ad app show" && query == "appId":
		return tsv(a.AppID)
	case cmd == "ad app show" && query == "signInAudience":
		return tsv(a.SignInAudience)
	case cmd == "ad app show" && query == "requiredResourceAccess":
		return js(a.RequiredResourceAccess)
	case cmd == "ad app show" && query == "web.redirectUris":
		return js(append([]string{}, a.RedirectURIs...))
	case cmd == "ad app update":
		if v := flagValue(args, "--sign-in-audience"); v != "" {
			a.SignInAudience = v
		}
		if v := flagValue(args, "--required-resource-accesses"); v != "" {
			b, err := readAt(v)
			if err != nil || !json.Valid(b) {
				return fmt.Errorf("bad --required-resource-accesses %s: %v", v, err)
			}
			a.RequiredResourceAccess = b
		}
		if uris := flagValues(args, "--web-redirect-uris"); uris != nil {
			a.RedirectURIs = uris
		}
		return nil
	case cmd == "ad app federated-credential list":
		return js(append([]json.RawMessage{}, a.FICs...))
	case cmd == "ad app federated-credential create":
		b, err := readAt(flagValue(args, "--parameters"))
		if err != nil || !json.Valid(b) {
			return fmt.Errorf("bad --parameters: %v", err)
		}
		a.FICs = append(a.FICs, b)
		return nil
	case cmd == "ad app credential reset":
		if !slices.Contains(args, "--append") {
			return fmt.Errorf("unsupported: credential reset without --append drops the secrets in use")
		}
		p := fakePassword{KeyID: s.next(), DisplayName: flagValue(args, "--display-name"),
			EndDateTime: "2030-01-01T00:00:00Z", Value: fmt.Sprintf("s3cr3t~value~%d", s.Seq)}
		a.Passwords = append(a.Passwords, p)
		return tsv(p.Value)
	case cmd == "ad app credential list" && query == "" && flagValue(args, "-o") == "json":
		list := []map[string]string{}
		for _, p := range a.Passwords {
			list = append(list, map[string]string{"keyId": p.KeyID, "displayName": p.DisplayName, "endDateTime": p.EndDateTime})
		}
		return js(list)
	}
	return fmt.Errorf("unsupported: az %s", strings.Join(args, " "))
}

func fakeAzRest(s *fakeState, args []string, query string, tsv func(string) error) error {
	method, url := flagValue(args, "--method"), flagValue(args, "--url")
	const graph = "https://graph.microsoft.com/v1.0/"
	switch {
	case method == "get" && url == graph+"organization" && query == "value[0].displayName":
		return tsv(s.Org)
	case method == "get" && strings.HasSuffix(url, "/appRoleAssignments") && query == "value[?resourceId=='"+graphSPID+"'].appRoleId":
		sp := strings.TrimSuffix(strings.TrimPrefix(url, graph+"servicePrincipals/"), "/appRoleAssignments")
		for _, a := range s.AppRoles {
			if p, role, _ := strings.Cut(a, "|"); p == sp {
				if err := tsv(role); err != nil {
					return err
				}
			}
		}
		return nil
	case method == "post" && url == graph+"servicePrincipals/"+graphSPID+"/appRoleAssignedTo":
		b, err := readAt(flagValue(args, "--body"))
		if err != nil {
			return err
		}
		var a struct{ PrincipalID, ResourceID, AppRoleID string }
		if err := json.Unmarshal(b, &a); err != nil || a.ResourceID != graphSPID {
			return fmt.Errorf("bad appRoleAssignedTo body %s", b)
		}
		s.AppRoles = append(s.AppRoles, a.PrincipalID+"|"+a.AppRoleID)
		return nil
	}
	return fmt.Errorf("unsupported: az %s", strings.Join(args, " "))
}

func fakeAzd(s *fakeState, args []string, out io.Writer) error {
	switch {
	case len(args) == 2 && args[0] == "env" && args[1] == "get-values":
		keys := make([]string, 0, len(s.AzdEnv))
		for k := range s.AzdEnv {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(out, "%s=%q\n", k, s.AzdEnv[k])
		}
		return nil
	case len(args) == 4 && args[0] == "env" && args[1] == "set":
		s.AzdEnv[args[2]] = args[3]
		return nil
	}
	return fmt.Errorf("unsupported: azd %s", strings.Join(args, " "))
}

// fakeCurl is the onboarding webhook: it checks the function key, and
// verifies the seed's steps against the fake tenant.
func fakeCurl(s *fakeState, args []string, out io.Writer) error {
	if flagValue(args, "-X") != "POST" || flagValue(args, "--data-binary") != "@-" || args[len(args)-1] != webhookURL {
		return fmt.Errorf("unsupported: curl %s", strings.Join(args, " "))
	}
	headers, err := readAt(flagValue(args, "-H"))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(os.Stdin)
	s.Requests = append(s.Requests, fakeRequest{Headers: string(headers), Body: json.RawMessage(body)})
	respond := func(status int, v any) error {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(flagValue(args, "-o"), b, 0o600); err != nil {
			return err
		}
		fmt.Fprint(out, status)
		return nil
	}
	if !strings.Contains(string(headers), "x-functions-key: "+functionKey+"\n") {
		return respond(401, map[string]string{"error": "unauthorized"})
	}
	var req struct {
		TenantID    string `json:"tenantId"`
		DisplayName string `json:"displayName"`
		Consent     bool   `json:"consent"`
		Graph       bool   `json:"graph"`
		KeyVaults   []struct {
			VaultURL string   `json:"vaultUrl"`
			Secrets  []string `json:"secrets"`
			Keys     []string `json:"keys"`
		} `json:"keyVaults"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return respond(400, map[string]string{"error": err.Error()})
	}
	if req.Consent {
		return respond(200, map[string]string{"consentUrl": "https://login.microsoftonline.com/" + req.TenantID + "/adminconsent?client_id=" + knownAppID + "&state=signed"})
	}
	outcome, step := "ok", ""
	sp, inTenant := s.SPs[knownAppID]
	switch {
	case !inTenant:
		outcome, step = "app_not_in_tenant", "3"
	case req.Graph && !(slices.Contains(s.AppRoles, sp+"|"+userReadAll) && slices.Contains(s.AppRoles, sp+"|"+orgReadAll)):
		outcome, step = "graph_consent_missing", "4"
	}
	for _, kv := range req.KeyVaults {
		for name, v := range s.Vaults {
			if v.URI == kv.VaultURL && outcome == "ok" && len(kv.Secrets) > 0 &&
				!slices.Contains(s.RoleAssignments, sp+"|Key Vault Secrets User|"+v.ID) && !slices.Contains(s.Policies, sp+"|"+name) {
				outcome, step = "keyvault_access_denied", "5"
			}
			for _, key := range kv.Keys {
				if v.URI == kv.VaultURL && outcome == "ok" &&
					!slices.Contains(s.RoleAssignments, sp+"|Key Vault Crypto Service Encryption User|"+v.ID+"/keys/"+key) &&
					!slices.Contains(s.Policies, sp+"|"+name+"|keys get wrapKey unwrapKey") {
					outcome, step = "keyvault_access_denied", "5"
				}
			}
		}
	}
	return respond(201, map[string]any{"tenantId": req.TenantID, "displayName": req.DisplayName, "status": "active",
		"verification": map[string]string{"outcome": outcome, "step": step, "message": "fake verification", "at": "2026-01-01T00:00:00Z"}})
}

// --- the harness ---------------------------------------------------------

type fakeEnv struct {
	t     *testing.T
	dir   string
	state string
	log   string
	path  string
}

func newFakeEnv(t *testing.T, s fakeState) *fakeEnv {
	t.Helper()
	if _, err := exec.LookPath("jq"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("jq is not installed; the scripts need it")
		}
		t.Skip("jq is not installed (apt-get install jq); skipping")
	}
	self := fakeBinary(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"az", "azd", "curl"} {
		if err := os.Symlink(self, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	if s.AzdEnv == nil {
		s.AzdEnv = map[string]string{}
	}
	e := &fakeEnv{t: t, dir: dir, state: filepath.Join(dir, "state.json"), log: filepath.Join(dir, "calls.log"),
		path: bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	e.save(s)
	return e
}

var (
	fakeOnce sync.Once
	fakePath string
	fakeErr  error
)

// fakeBinary is the program the fakes run as: a copy of this test binary
// built without the race detector, because the scripts start it dozens of
// times and a race-instrumented binary starts slowly. Without the go tool it
// is this binary itself.
func fakeBinary(t *testing.T) string {
	t.Helper()
	fakeOnce.Do(func() {
		if gobin, err := exec.LookPath("go"); err == nil {
			dir, err := os.MkdirTemp("", "tenantsweep-fakes-")
			if err != nil {
				fakeErr = err
				return
			}
			fakePath = filepath.Join(dir, "fakes.test")
			cmd := exec.Command(gobin, "test", "-c", "-o", fakePath, ".")
			cmd.Env = append(os.Environ(), "GOFLAGS=")
			if out, err := cmd.CombinedOutput(); err != nil {
				fakeErr = fmt.Errorf("building the fakes: %v\n%s", err, out)
			}
			return
		}
		fakePath, fakeErr = os.Executable()
	})
	if fakeErr != nil {
		t.Fatal(fakeErr)
	}
	return fakePath
}

func (e *fakeEnv) save(s fakeState) {
	b, _ := json.Marshal(s)
	if err := os.WriteFile(e.state, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *fakeEnv) load() fakeState {
	var s fakeState
	b, err := os.ReadFile(e.state)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// run runs a script with the fakes first on PATH and returns its exit code and output.
func (e *fakeEnv) run(script string, env []string, args ...string) (int, string) {
	e.t.Helper()
	_ = os.Remove(e.log)
	cmd := exec.Command("bash", append([]string{filepath.Join("scripts", script)}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+e.path, "FAKE_STATE="+e.state, "FAKE_LOG="+e.log,
		"TENANTSWEEP_FUNCTION_KEY=", "APP_CLIENT_ID=", "KEY_VAULT_NAME=", "ONBOARD_REDIRECT_URI=",
		"MANAGED_IDENTITY_PRINCIPAL_ID=", "AZURE_TENANT_ID=", "APP_CREDENTIAL_METHOD=", "APP_VAULT_ENTRY=",
		"STATE_KEY_VAULT_ENTRY=", "SWEEP_TASKS=", "TENANTSWEEP_HANDLER="+handlerBinary(e.t))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader("") // not a terminal
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	if strings.Contains(string(out), "unsupported:") {
		e.t.Fatalf("%s made a call the fakes do not know:\n%s", script, out)
	}
	return code, string(out)
}

// mutations lists the calls of the last run that change something.
func (e *fakeEnv) mutations() []string {
	b, _ := os.ReadFile(e.log)
	var muts []string
	re := regexp.MustCompile(`^(az (ad app (create|update|federated-credential create|credential reset)|ad sp create|keyvault secret set|keyvault set-policy|role assignment create|rest --method post)|azd env set)`)
	for _, line := range strings.Split(string(b), "\n") {
		if re.MatchString(line) {
			muts = append(muts, line)
		}
	}
	return muts
}

func (e *fakeEnv) calls() string {
	b, _ := os.ReadFile(e.log)
	return string(b)
}

func developerTenant() fakeState {
	return fakeState{Tenant: devTenant, LoggedIn: true, AzdEnv: map[string]string{
		"AZURE_TENANT_ID":               devTenant,
		"MANAGED_IDENTITY_PRINCIPAL_ID": miPrincipal,
		"ONBOARD_REDIRECT_URI":          redirectURI,
		"KEY_VAULT_NAME":                "kv-abc",
		"APP_VAULT_ENTRY":               "app-client-secret",
	}}
}

func TestRegisterAppFederated(t *testing.T) {
	e := newFakeEnv(t, developerTenant())
	code, out := e.run("register-app.sh", nil)
	if code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	s := e.load()
	if len(s.Apps) != 1 {
		t.Fatalf("%d apps, want 1", len(s.Apps))
	}
	a := s.Apps[0]
	if a.DisplayName != "tenantsweep" || a.SignInAudience != "AzureADMultipleOrgs" {
		t.Errorf("app %+v, want tenantsweep, AzureADMultipleOrgs", a)
	}
	var rra []struct {
		ResourceAppID  string `json:"resourceAppId"`
		ResourceAccess []struct{ ID, Type string }
	}
	if err := json.Unmarshal(a.RequiredResourceAccess, &rra); err != nil || len(rra) != 1 || rra[0].ResourceAppID != graphAppID {
		t.Fatalf("requiredResourceAccess %s", a.RequiredResourceAccess)
	}
	var roles []string
	for _, r := range rra[0].ResourceAccess {
		if r.Type != "Role" {
			t.Errorf("permission %s is %s, want Role (application permission)", r.ID, r.Type)
		}
		roles = append(roles, r.ID)
	}
	slices.Sort(roles)
	if want := []string{orgReadAll, userReadAll}; !slices.Equal(roles, want) {
		t.Errorf("Graph application permissions %v, want %v", roles, want)
	}
	if !slices.Equal(a.RedirectURIs, []string{redirectURI}) {
		t.Errorf("redirect URIs %v, want [%s]", a.RedirectURIs, redirectURI)
	}
	if len(a.FICs) != 1 {
		t.Fatalf("%d federated credentials, want 1", len(a.FICs))
	}
	var fic struct {
		Name, Issuer, Subject string
		Audiences             []string
	}
	_ = json.Unmarshal(a.FICs[0], &fic)
	if fic.Issuer != "https://login.microsoftonline.com/"+devTenant+"/v2.0" || fic.Subject != miPrincipal ||
		!slices.Equal(fic.Audiences, []string{"api://AzureADTokenExchange"}) {
		t.Errorf("federated credential %+v", fic)
	}
	if got := s.AzdEnv["APP_CLIENT_ID"]; got != a.AppID {
		t.Errorf("azd APP_CLIENT_ID = %q, want %s", got, a.AppID)
	}
	if len(a.Passwords) != 0 {
		t.Error("the federated method created a client secret")
	}

	code, out = e.run("register-app.sh", nil)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if m := e.mutations(); len(m) > 0 {
		t.Errorf("second run changed things:\n%s", strings.Join(m, "\n"))
	}
}

// register-app.sh asks the app for its tasks' permissions (handler tasks
// --json); onboard-customer.sh's default is the access task's own
// declaration.
func TestCustomerScriptDefaultIsTheAccessTasks(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("scripts", "onboard-customer.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^readonly DEFAULT_GRAPH_ROLES="([^"]*)"$`).FindSubmatch(b)
	access, _ := task.Find(tasks.All(tasks.Deps{}), tasks.AccessName)
	if want := strings.Join(task.Permissions([]task.Task{access}), ","); m == nil || string(m[1]) != want {
		t.Errorf("onboard-customer.sh's DEFAULT_GRAPH_ROLES = %q, the access task declares %q", m, want)
	}
}

// --tasks (or SWEEP_TASKS of the azd environment) adds the permissions of
// each task the deployment runs.
func TestRegisterAppTasks(t *testing.T) {
	e := newFakeEnv(t, developerTenant())
	if code, out := e.run("register-app.sh", nil, "--tasks", "access,groups"); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	var rra []struct {
		ResourceAccess []struct{ ID, Type string }
	}
	if err := json.Unmarshal(e.load().Apps[0].RequiredResourceAccess, &rra); err != nil || len(rra) != 1 {
		t.Fatalf("requiredResourceAccess %s", e.load().Apps[0].RequiredResourceAccess)
	}
	var roles []string
	for _, r := range rra[0].ResourceAccess {
		roles = append(roles, r.ID)
	}
	slices.Sort(roles)
	if want := []string{orgReadAll, groupReadAll, userReadAll}; !slices.Equal(roles, want) {
		t.Errorf("Graph application permissions %v, want %v", roles, want)
	}
	if code, out := e.run("register-app.sh", nil, "--tasks", "access,nope"); code == 0 || !strings.Contains(out, `"nope"`) {
		t.Errorf("an unknown task: exit %d\n%s", code, out)
	}
}

func TestRegisterAppBeforeProvisioning(t *testing.T) {
	e := newFakeEnv(t, fakeState{Tenant: devTenant, LoggedIn: true})
	code, out := e.run("register-app.sh", nil)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	s := e.load()
	if len(s.Apps) != 1 || s.AzdEnv["APP_CLIENT_ID"] != s.Apps[0].AppID {
		t.Fatalf("the app was not created and handed to azd: %+v", s)
	}
	if len(s.Apps[0].FICs) != 0 || len(s.Apps[0].RedirectURIs) != 0 {
		t.Error("added a credential or redirect URI without the provisioned resources")
	}
	if !strings.Contains(out, "run again after azd up") {
		t.Errorf("does not say to run again after azd up:\n%s", out)
	}
}

func TestRegisterAppWrongTenant(t *testing.T) {
	s := developerTenant()
	s.Tenant = customerTenant
	e := newFakeEnv(t, s)
	if code, out := e.run("register-app.sh", nil); code != 1 || !strings.Contains(out, "az login --tenant "+devTenant) {
		t.Errorf("exit %d, want 1 naming the provisioned tenant:\n%s", code, out)
	}
}

func TestRegisterAppKeyVaultSecret(t *testing.T) {
	e := newFakeEnv(t, developerTenant())
	code, out := e.run("register-app.sh", nil, "--credential", "keyvault-secret")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	s := e.load()
	a := s.Apps[0]
	if len(a.Passwords) != 1 || len(a.FICs) != 0 {
		t.Fatalf("passwords %d, federated credentials %d; want 1, 0", len(a.Passwords), len(a.FICs))
	}
	if got := s.Secrets["kv-abc/app-client-secret"]; got != a.Passwords[0].Value {
		t.Errorf("vault holds %q, want the new client secret exactly (no newline)", got)
	}
	if s.AzdEnv["APP_CREDENTIAL_METHOD"] != "keyvault-secret" {
		t.Errorf("azd APP_CREDENTIAL_METHOD = %q", s.AzdEnv["APP_CREDENTIAL_METHOD"])
	}
	if strings.Contains(e.calls()+out, a.Passwords[0].Value) {
		t.Error("the client secret appears on a command line or in the output")
	}

	if code, out = e.run("register-app.sh", nil, "--credential", "keyvault-secret"); code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if m := e.mutations(); len(m) > 0 {
		t.Errorf("second run changed things:\n%s", strings.Join(m, "\n"))
	}

	// Rotation: a second credential, the vault moves to it, the old one is listed for deletion.
	if code, out = e.run("register-app.sh", nil, "--credential", "keyvault-secret", "--rotate"); code != 0 {
		t.Fatalf("rotation: exit %d\n%s", code, out)
	}
	s = e.load()
	a = s.Apps[0]
	if len(a.Passwords) != 2 || s.Secrets["kv-abc/app-client-secret"] != a.Passwords[1].Value {
		t.Fatalf("after rotation: %d passwords, vault %q", len(a.Passwords), s.Secrets["kv-abc/app-client-secret"])
	}
	if !strings.Contains(out, "az ad app credential delete --id "+a.AppID+" --key-id "+a.Passwords[0].KeyID) {
		t.Errorf("rotation does not name the old credential to delete:\n%s", out)
	}
}

func customerState() fakeState {
	sub := "66666666-6666-6666-6666-666666666666"
	return fakeState{Tenant: devTenant, LoggedIn: true, Org: "Contoso", Subscriptions: []string{sub},
		Vaults: map[string]fakeVault{
			"contoso-kv": {ID: "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso-kv",
				URI: "https://contoso-kv.vault.azure.net/", RBAC: true},
		}}
}

func TestOnboardCustomer(t *testing.T) {
	e := newFakeEnv(t, customerState())
	args := []string{"--tenant", customerTenant, "--app-id", knownAppID, "--webhook", webhookURL,
		"--vault", "contoso-kv:db-password,api-key", "--consent", "graph", "--retries", "0"}
	code, out := e.run("onboard-customer.sh", []string{"TENANTSWEEP_FUNCTION_KEY=" + functionKey}, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	s := e.load()
	sp := s.SPs[knownAppID]
	if s.Tenant != customerTenant || sp == "" {
		t.Fatalf("not signed in to the customer tenant or no service principal: %+v", s)
	}
	if !slices.Contains(s.AppRoles, sp+"|"+userReadAll) || !slices.Contains(s.AppRoles, sp+"|"+orgReadAll) {
		t.Errorf("Graph app roles %v", s.AppRoles)
	}
	if want := sp + "|Key Vault Secrets User|" + s.Vaults["contoso-kv"].ID; !slices.Contains(s.RoleAssignments, want) {
		t.Errorf("role assignments %v, want %s", s.RoleAssignments, want)
	}
	if len(s.Requests) != 1 {
		t.Fatalf("%d webhook calls, want 1", len(s.Requests))
	}
	var body map[string]any
	_ = json.Unmarshal(s.Requests[0].Body, &body)
	want := `{"displayName":"Contoso","graph":true,"keyVaults":[{"secrets":["db-password","api-key"],"vaultUrl":"https://contoso-kv.vault.azure.net/"}],"tenantId":"` + customerTenant + `"}`
	if got, _ := json.Marshal(body); string(got) != want {
		t.Errorf("webhook body\n %s\nwant\n %s", got, want)
	}
	if strings.Contains(e.calls(), functionKey) {
		t.Error("the function key appears on a command line")
	}
	if !strings.Contains(out, "Verification: ok") {
		t.Errorf("verification not printed:\n%s", out)
	}

	code, out = e.run("onboard-customer.sh", []string{"TENANTSWEEP_FUNCTION_KEY=" + functionKey}, args...)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if m := e.mutations(); len(m) > 0 {
		t.Errorf("second run changed things:\n%s", strings.Join(m, "\n"))
	}
}

// --key grants the crypto role on each key (an access policy with get,
// wrapKey and unwrapKey in an access-policy vault) and registers the keys,
// joining the vault's entry when --vault names it too; a second run changes
// nothing in an RBAC vault.
func TestOnboardCustomerKeys(t *testing.T) {
	st := customerState()
	sub := st.Subscriptions[0]
	st.Vaults["legacy-kv"] = fakeVault{ID: "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/legacy-kv",
		URI: "https://legacy-kv.vault.azure.net/"}
	e := newFakeEnv(t, st)
	args := []string{"--tenant", customerTenant, "--app-id", knownAppID, "--webhook", webhookURL, "--consent", "graph", "--retries", "0",
		"--vault", "contoso-kv:db-password", "--key", "contoso-kv:cmk,tls", "--key", "legacy-kv:cmk"}
	code, out := e.run("onboard-customer.sh", []string{"TENANTSWEEP_FUNCTION_KEY=" + functionKey}, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	s := e.load()
	sp := s.SPs[knownAppID]
	for _, key := range []string{"cmk", "tls"} {
		want := sp + "|Key Vault Crypto Service Encryption User|" + s.Vaults["contoso-kv"].ID + "/keys/" + key
		if !slices.Contains(s.RoleAssignments, want) {
			t.Errorf("role assignments %v lack %s", s.RoleAssignments, want)
		}
	}
	if want := sp + "|legacy-kv|keys get wrapKey unwrapKey"; !slices.Contains(s.Policies, want) {
		t.Errorf("policies %v lack %s", s.Policies, want)
	}
	var body map[string]any
	_ = json.Unmarshal(s.Requests[len(s.Requests)-1].Body, &body)
	want := `[{"keys":["cmk","tls"],"secrets":["db-password"],"vaultUrl":"https://contoso-kv.vault.azure.net/"},{"keys":["cmk"],"vaultUrl":"https://legacy-kv.vault.azure.net/"}]`
	if got, _ := json.Marshal(body["keyVaults"]); string(got) != want {
		t.Errorf("keyVaults registered\n %s\nwant\n %s", got, want)
	}
	if !strings.Contains(out, "Verification: ok") {
		t.Errorf("verification not printed:\n%s", out)
	}

	// A second run: the RBAC vault's grants are there already.
	code, out = e.run("onboard-customer.sh", []string{"TENANTSWEEP_FUNCTION_KEY=" + functionKey},
		"--tenant", customerTenant, "--app-id", knownAppID, "--webhook", webhookURL, "--consent", "graph", "--retries", "0",
		"--vault", "contoso-kv:db-password", "--key", "contoso-kv:cmk,tls")
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if m := e.mutations(); len(m) > 0 {
		t.Errorf("second run changed things:\n%s", strings.Join(m, "\n"))
	}
}

// When the admin may not assign roles, the script prints the command for
// the vault's owner and the verification names the step still owed.
func TestOnboardCustomerKeyGrantRefused(t *testing.T) {
	st := customerState()
	st.DenyRoleAssignments = true
	e := newFakeEnv(t, st)
	code, out := e.run("onboard-customer.sh", []string{"TENANTSWEEP_FUNCTION_KEY=" + functionKey},
		"--tenant", customerTenant, "--app-id", knownAppID, "--webhook", webhookURL, "--consent", "graph", "--retries", "0",
		"--key", "contoso-kv:cmk")
	if code != 2 {
		t.Fatalf("exit %d, want 2 (onboarded, a step still missing)\n%s", code, out)
	}
	sp := e.load().SPs[knownAppID]
	for _, want := range []string{
		`az role assignment create --assignee-object-id ` + sp + ` --assignee-principal-type ServicePrincipal --role "Key Vault Crypto Service Encryption User" --scope ` +
			customerState().Vaults["contoso-kv"].ID + "/keys/cmk",
		"Verification: keyvault_access_denied (seed step 5)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, out := e.run("onboard-customer.sh", nil, "--tenant", customerTenant, "--app-id", knownAppID, "--key", "contoso-kv"); code != 1 ||
		!strings.Contains(out, "want VAULT:KEY") {
		t.Errorf("--key without keys: exit %d\n%s", code, out)
	}
}

func TestOnboardCustomerConsentURL(t *testing.T) {
	e := newFakeEnv(t, customerState())
	code, out := e.run("onboard-customer.sh", []string{"TENANTSWEEP_FUNCTION_KEY=" + functionKey},
		"--tenant", customerTenant, "--app-id", knownAppID, "--webhook", webhookURL, "--no-browser", "--retries", "0")
	if code != 2 {
		t.Fatalf("exit %d, want 2 (onboarded, consent still missing)\n%s", code, out)
	}
	for _, want := range []string{
		"https://login.microsoftonline.com/" + customerTenant + "/adminconsent?client_id=" + knownAppID + "&state=signed",
		"Verification: graph_consent_missing (seed step 4)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if s := e.load(); len(s.AppRoles) != 0 {
		t.Error("the url consent mode granted app roles itself")
	}
}

func TestOnboardCustomerBadKey(t *testing.T) {
	e := newFakeEnv(t, customerState())
	code, out := e.run("onboard-customer.sh", []string{"TENANTSWEEP_FUNCTION_KEY=wrong"},
		"--tenant", customerTenant, "--app-id", knownAppID, "--webhook", webhookURL, "--no-graph")
	if code != 1 || !strings.Contains(out, "refused the function key") {
		t.Errorf("exit %d, want 1 with a function key error:\n%s", code, out)
	}
}

func TestOnboardCustomerArguments(t *testing.T) {
	e := newFakeEnv(t, customerState())
	for _, args := range [][]string{
		{"--app-id", knownAppID},
		{"--tenant", "contoso.onmicrosoft.com", "--app-id", knownAppID},
		{"--tenant", customerTenant, "--app-id", knownAppID, "--webhook", "http://insecure/api/tenants"},
		{"--tenant", customerTenant, "--app-id", knownAppID, "--bogus"},
	} {
		if code, out := e.run("onboard-customer.sh", nil, args...); code != 1 {
			t.Errorf("%v: exit %d, want 1\n%s", args, code, out)
		}
	}
	if code, out := e.run("onboard-customer.sh", nil, "--help"); code != 0 || !strings.Contains(out, "Usage:") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if calls := e.calls(); strings.Contains(calls, "az ") {
		t.Errorf("bad arguments reached az:\n%s", calls)
	}
}

func TestPostprovisionStateKey(t *testing.T) {
	e := newFakeEnv(t, developerTenant())
	env := []string{"KEY_VAULT_NAME=kv-abc", "STATE_KEY_VAULT_ENTRY=onboard-state-key", "TOKEN_KEY_VAULT_ENTRY=token-sharing-key"}
	if code, out := e.run("postprovision.sh", env); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	key := e.load().Secrets["kv-abc/onboard-state-key"]
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 32 {
		t.Errorf("state key %q: want base64 of 32 bytes (%v)", key, err)
	}
	tokenKey := e.load().Secrets["kv-abc/token-sharing-key"]
	if raw, err := base64.StdEncoding.DecodeString(tokenKey); err != nil || len(raw) != 32 || tokenKey == key {
		t.Errorf("token sharing key %q: want base64 of 32 bytes of its own (%v)", tokenKey, err)
	}
	if code, out := e.run("postprovision.sh", env); code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if e.load().Secrets["kv-abc/onboard-state-key"] != key || e.load().Secrets["kv-abc/token-sharing-key"] != tokenKey || len(e.mutations()) > 0 {
		t.Error("the second run replaced a key")
	}
	if code, out := e.run("postprovision.sh", nil); code != 1 || !strings.Contains(out, "KEY_VAULT_NAME") {
		t.Errorf("without KEY_VAULT_NAME: exit %d\n%s", code, out)
	}
}

func TestPackage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		machine byte
		elf     bool
		code    int
	}{
		{"linux/amd64", 0x3e, true, 0},
		{"linux/arm64", 0xb7, true, 1},
		{"not ELF", 0x3e, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write := func(path, content string) {
				t.Helper()
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("host.json", readFile(t, "../host.json"))
			write("TenantSweep/function.json", "{}")
			write("OnboardTenant/function.json", "{}")
			write("handler/main.go", "package main")
			bin := make([]byte, 64)
			if tc.elf {
				copy(bin, "\x7fELF")
			}
			bin[18] = tc.machine
			write("bin/handler", string(bin))
			script, _ := filepath.Abs("scripts/package.sh")
			cmd := exec.Command("bash", script)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, out)
			}
			if tc.code != 0 {
				return
			}
			var files []string
			pkg := filepath.Join(root, "bin/functions-package")
			_ = filepath.Walk(pkg, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					rel, _ := filepath.Rel(pkg, p)
					files = append(files, rel)
				}
				return err
			})
			slices.Sort(files)
			if want := []string{"OnboardTenant/function.json", "TenantSweep/function.json", "bin/handler", "host.json"}; !slices.Equal(files, want) {
				t.Errorf("package holds %v, want %v", files, want)
			}
			if fi, err := os.Stat(filepath.Join(pkg, "bin/handler")); err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("bin/handler is not executable in the package: %v", err)
			}
		})
	}
}

func TestRegisterAppFindsByName(t *testing.T) {
	existing := func(n int) fakeState {
		s := fakeState{Tenant: devTenant, LoggedIn: true, Seq: 10}
		for i := range n {
			s.Apps = append(s.Apps, &fakeApp{AppID: fmt.Sprintf("aaaaaaaa-0000-0000-0000-00000000000%d", i),
				ID: fmt.Sprintf("bbbbbbbb-0000-0000-0000-00000000000%d", i), DisplayName: "tenantsweep",
				SignInAudience: "AzureADMyOrg", RequiredResourceAccess: json.RawMessage("null")})
		}
		s.Apps = append(s.Apps, &fakeApp{AppID: "cccccccc-0000-0000-0000-000000000000", DisplayName: "tenantsweep-old"})
		return s
	}
	e := newFakeEnv(t, existing(1))
	code, out := e.run("register-app.sh", nil, "--no-azd")
	if code != 0 || !strings.Contains(out, "found app registration 'tenantsweep': aaaaaaaa-0000-0000-0000-000000000000") {
		t.Fatalf("exit %d, want the existing app found by name:\n%s", code, out)
	}
	s := e.load()
	if len(s.Apps) != 2 || s.Apps[0].SignInAudience != "AzureADMultipleOrgs" || len(s.AzdEnv) != 0 {
		t.Errorf("want the existing app made multi-tenant and azd left alone: %+v", s)
	}
	if strings.Contains(e.calls(), "azd ") {
		t.Error("--no-azd ran azd")
	}

	e = newFakeEnv(t, existing(2))
	if code, out := e.run("register-app.sh", nil, "--no-azd"); code != 1 || !strings.Contains(out, "2 app registrations are named 'tenantsweep'") {
		t.Errorf("two apps of the same name: exit %d\n%s", code, out)
	}
}
