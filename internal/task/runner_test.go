package task

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	abs "github.com/microsoft/kiota-abstractions-go"
	msgraph "github.com/microsoftgraph/msgraph-sdk-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/governor"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

const (
	appID    = "11111111-2222-4333-8444-555555555555"
	tenantID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
)

// fakeTask is a task whose every part a test sets.
type fakeTask struct {
	about   About
	needs   Needs
	applies bool
	run     func(ctx context.Context, t *Tenant) (any, error)
}

func (f fakeTask) About() About { return f.about }
func (f fakeTask) Needs(tenant.Record) (Needs, bool) {
	return f.needs, f.applies
}
func (f fakeTask) Run(ctx context.Context, t *Tenant) (any, error) { return f.run(ctx, t) }

func task(name string, run func(ctx context.Context, t *Tenant) (any, error)) fakeTask {
	return fakeTask{about: About{Name: name, Verify: true}, needs: Needs{Graph: true}, applies: true, run: run}
}

func returns(body any, err error) func(context.Context, *Tenant) (any, error) {
	return func(context.Context, *Tenant) (any, error) { return body, err }
}

// fakeSigner signs in to a fake credential and records each sign-in's
// scopes and the shared tokens it was given.
type fakeSigner struct {
	mu     sync.Mutex
	calls  [][]string
	shared []tenant.Shared
	err    error
	cred   azcore.TokenCredential
}

func (f *fakeSigner) SignIn(_ context.Context, tid string, scopes []string, shared tenant.Shared) (azcore.TokenCredential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(scopes))
	f.shared = append(f.shared, shared)
	if f.err != nil {
		return nil, f.err
	}
	if f.cred != nil {
		return f.cred, nil
	}
	return jwtCredential{roles: []string{"User.Read.All"}}, nil
}

// jwtCredential hands out unsigned JWTs with the roles claim set, as
// Entra ID's Graph tokens carry the tenant's grants.
type jwtCredential struct{ roles []string }

func (c jwtCredential) GetToken(_ context.Context, tro policy.TokenRequestOptions) (azcore.AccessToken, error) {
	claims, _ := json.Marshal(map[string]any{"aud": tro.Scopes[0], "roles": c.roles})
	tok := "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(claims) + ".sig"
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type noGraph struct{}

func (noGraph) For(azcore.TokenCredential) *msgraph.GraphServiceClient { return nil }

func newRunner(t *testing.T, signer Signer, tasks ...Task) *Runner {
	t.Helper()
	r, err := New(Config{Tasks: tasks, SignIn: signer, Graph: noGraph{}, Advisor: tenant.Advisor{AppID: appID, Cloud: cloud.AzurePublic},
		Cloud: cloud.AzurePublic})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func record() tenant.Record {
	return tenant.Record{TenantID: tenantID, Status: tenant.StatusActive, Graph: true}
}

func TestNewChecksTheTasks(t *testing.T) {
	ok := returns(nil, nil)
	for _, tt := range []struct {
		name  string
		tasks []Task
	}{
		{"a name with upper case", []Task{task("Groups", ok)}},
		{"an empty name", []Task{task("", ok)}},
		{"a name too long", []Task{task(strings.Repeat("a", 33), ok)}},
		{"a trailing hyphen", []Task{task("a-", ok)}},
		{"a name twice", []Task{task("access", ok), task("access", ok)}},
		{"a permission that is not one", []Task{fakeTask{about: About{Name: "x", Graph: []string{"Group.Read.All|not a permission"}}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(Config{Tasks: tt.tasks}); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

// The tasks run at once, after one sign-in that asks for every token they
// need (Graph's first), and each is recorded; the tenant's outcome is the
// first failure in the configured order, not in the order they finished.
func TestRunSignsInOnceAndRunsTheTasksAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		signer := &fakeSigner{}
		slow := func(d time.Duration, err error) func(context.Context, *Tenant) (any, error) {
			return func(context.Context, *Tenant) (any, error) {
				time.Sleep(d)
				return map[string]int{"n": 1}, err
			}
		}
		first := fakeTask{about: About{Name: "first"}, needs: Needs{KeyVault: true}, applies: true,
			run: slow(3*time.Second, outcome.New(outcome.SecretNotFound, "no such secret", nil))}
		second := fakeTask{about: About{Name: "second"}, needs: Needs{Graph: true, Scopes: []string{"https://management.azure.com/.default"}}, applies: true,
			run: slow(time.Second, outcome.New(outcome.GraphConsentMissing, "no consent", nil))}
		third := fakeTask{about: About{Name: "third"}, applies: true, run: slow(2*time.Second, nil)}
		skipped := fakeTask{about: About{Name: "skipped"}, applies: false, run: func(context.Context, *Tenant) (any, error) {
			t.Error("a task that does not apply ran")
			return nil, nil
		}}
		r := newRunner(t, signer, first, second, third, skipped)

		start := time.Now()
		res := r.Probe(t.Context(), record())
		if took := time.Since(start); took != 3*time.Second {
			t.Errorf("took %s, want 3s: the tasks did not run at once", took)
		}
		want := []string{cloud.AzurePublic.GraphScope(), cloud.AzurePublic.KeyVaultScope, "https://management.azure.com/.default"}
		if len(signer.calls) != 1 || !slices.Equal(signer.calls[0], want) {
			t.Errorf("sign-ins %v, want one asking for %v", signer.calls, want)
		}
		if res.Outcome != outcome.SecretNotFound || res.Step != "5" || !strings.Contains(res.Message, "no such secret") {
			t.Errorf("tenant = %s step %q %q, want the first task's failure", res.Outcome, res.Step, res.Message)
		}
		if len(res.Tasks) != 3 {
			t.Fatalf("tasks recorded: %v, want first, second, third", res.Tasks)
		}
		if got := res.Tasks["second"]; got.Outcome != outcome.GraphConsentMissing || got.Step != "4" || got.DurationMs != 1000 ||
			!strings.Contains(got.Remediation, "Grant admin consent") || string(got.Body) != `{"n":1}` {
			t.Errorf("second = %+v", got)
		}
		if got := res.Tasks["third"]; got.Outcome != outcome.OK || got.Message != "" || got.Step != "" {
			t.Errorf("third = %+v", got)
		}
	})
}

// A task that needs no token asks for none: the tenant's credential only.
func TestNoTokenNoSignIn(t *testing.T) {
	signer := &fakeSigner{}
	r := newRunner(t, signer, fakeTask{about: About{Name: "local"}, applies: true, run: returns(nil, nil)})
	res := r.Probe(t.Context(), record())
	if len(signer.calls) != 1 || len(signer.calls[0]) != 0 {
		t.Errorf("sign-ins %v, want one with no scopes (the credential only)", signer.calls)
	}
	if res.Outcome != outcome.OK || res.Tasks["local"].Outcome != outcome.OK {
		t.Errorf("result = %+v", res)
	}
}

// A sign-in that fails fails every task with its outcome, and runs none.
func TestSignInFailureFailsEveryTask(t *testing.T) {
	signer := &fakeSigner{err: outcome.New(outcome.AppNotInTenant, "AADSTS700016: not there", nil)}
	ran := false
	run := func(context.Context, *Tenant) (any, error) { ran = true; return nil, nil }
	r := newRunner(t, signer, task("access", run), task("groups", run))
	res := r.Probe(t.Context(), record())
	if ran {
		t.Error("a task ran after a failed sign-in")
	}
	if res.Outcome != outcome.AppNotInTenant || res.Step != "3" || !strings.Contains(res.Remediation, "az ad sp create --id "+appID) || len(res.Tasks) != 2 {
		t.Errorf("tenant = %+v", res)
	}
	for name, tr := range res.Tasks {
		if tr.Outcome != outcome.AppNotInTenant || !strings.Contains(tr.Message, "AADSTS700016") {
			t.Errorf("%s = %+v", name, tr)
		}
	}
}

// One task's panic, or its ignoring the tenant's deadline, is that task's
// outcome alone: the others' results are kept.
func TestTasksAreIsolated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRunner(t, &fakeSigner{},
			task("panics", func(context.Context, *Tenant) (any, error) { panic("boom") }),
			task("hangs", func(context.Context, *Tenant) (any, error) { time.Sleep(time.Hour); return nil, nil }),
			task("honours", func(ctx context.Context, _ *Tenant) (any, error) { <-ctx.Done(); return nil, ctx.Err() }),
			task("fine", returns("done", nil)))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		res := r.Probe(ctx, record())
		want := map[string]outcome.Code{"panics": outcome.InternalError, "hangs": outcome.Timeout, "honours": outcome.Timeout, "fine": outcome.OK}
		for name, code := range want {
			if got := res.Tasks[name]; got.Outcome != code {
				t.Errorf("%s = %+v, want %s", name, got, code)
			}
		}
		if res.Tasks["fine"].Body == nil || res.Outcome != outcome.InternalError {
			t.Errorf("result = %+v", res)
		}
		time.Sleep(time.Hour) // let the abandoned task end inside the bubble
	})
}

func responseError(t *testing.T, status int, rawURL string) error {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"error":{"code":"X","message":"https://leak.example/?sig=SECRETSIG"}}`)),
		Request: &http.Request{Method: http.MethodGet, URL: u}}
	return runtime.NewResponseError(resp)
}

// What a task returns unclassified is classified as the built-in reads
// classify theirs, by the service that answered and its status; the SDK's
// text (URLs, bodies) never reaches the message.
func TestUnclassifiedErrors(t *testing.T) {
	graph403 := abs.NewApiError()
	graph403.ResponseStatusCode = 403
	graph429 := abs.NewApiError()
	graph429.ResponseStatusCode = 429
	for _, tt := range []struct {
		name string
		err  error
		code outcome.Code
		step string
	}{
		{"Graph 403", graph403, outcome.GraphConsentMissing, "4"},
		{"Graph 429", graph429, outcome.Throttled, ""},
		{"Key Vault 403", responseError(t, 403, "https://contoso.vault.azure.net/keys/k1"), outcome.KeyVaultAccessDenied, "5"},
		{"Key Vault secret 404", responseError(t, 404, "https://contoso.vault.azure.net/secrets/s1/"), outcome.SecretNotFound, "5"},
		{"another resource 403", responseError(t, 403, "https://management.azure.com/subscriptions/x"), outcome.AccessDenied, "5"},
		{"another resource 404", responseError(t, 404, "https://management.azure.com/subscriptions/x"), outcome.ResourceNotFound, "5"},
		{"429", responseError(t, 429, "https://management.azure.com/x"), outcome.Throttled, ""},
		{"503", responseError(t, 503, "https://management.azure.com/x"), outcome.UpstreamError, ""},
		{"wrapped by the task", errors.Join(errors.New("reading things"), responseError(t, 403, "https://contoso.vault.azure.net/keys/k1")), outcome.KeyVaultAccessDenied, "5"},
		{"deadline", context.DeadlineExceeded, outcome.Timeout, ""},
		{"network", &url.Error{Op: "Get", URL: "https://x.example", Err: &net.OpError{Op: "dial", Err: errors.New("connection reset")}}, outcome.UpstreamError, ""},
		{"the task's own", errors.New("sig=SECRETSIG: unexpected"), outcome.InternalError, ""},
		{"classified by the task", outcome.New(outcome.ResourceNotFound, "no such group", nil), outcome.ResourceNotFound, "5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRunner(t, &fakeSigner{}, task("t", returns(nil, tt.err)))
			res := r.Probe(t.Context(), record())
			got := res.Tasks["t"]
			if got.Outcome != tt.code || got.Step != tt.step {
				t.Errorf("outcome %s step %q, want %s %q (%s)", got.Outcome, got.Step, tt.code, tt.step, got.Message)
			}
			if strings.Contains(got.Message, "SECRETSIG") || strings.Contains(got.Remediation, "SECRETSIG") {
				t.Errorf("message %q carries the error's text", got.Message)
			}
		})
	}
}

type recordingTask struct{ fakeTask }

func (recordingTask) Record(res *tenant.SweepResult, body any) {
	res.Graph = &tenant.GraphInfo{Organization: body.(string)}
}

func TestBodies(t *testing.T) {
	huge := strings.Repeat("x", tenant.MaxTaskBody)
	r := newRunner(t, &fakeSigner{},
		task("small", returns(map[string]int{"groups": 3}, nil)),
		task("huge", returns(huge, nil)),
		task("unencodable", returns(func() {}, nil)),
		task("failed", returns(map[string]int{"found": 1}, outcome.New(outcome.Throttled, "slow down", nil))),
		recordingTask{task("lifted", returns("Contoso", nil))})
	res := r.Probe(t.Context(), record())
	if got := string(res.Tasks["small"].Body); got != `{"groups":3}` {
		t.Errorf("small body %s", got)
	}
	if res.Tasks["huge"].Body != nil || res.Tasks["unencodable"].Body != nil || res.Tasks["huge"].Outcome != outcome.OK {
		t.Errorf("bodies that cannot be stored were: %+v", res.Tasks)
	}
	if got := string(res.Tasks["failed"].Body); got != `{"found":1}` {
		t.Errorf("a failed task's body %s, want it kept", got)
	}
	if res.Graph == nil || res.Graph.Organization != "Contoso" || res.Tasks["lifted"].Body != nil {
		t.Errorf("a Recorder's body was not lifted: graph %+v, body %s", res.Graph, res.Tasks["lifted"].Body)
	}
}

// Verify runs only the tasks that say so, and reports a missing service
// principal of a freshly onboarded tenant as pending.
func TestVerify(t *testing.T) {
	ranQuiet := false
	quiet := task("quiet", func(context.Context, *Tenant) (any, error) { ranQuiet = true; return nil, nil })
	quiet.about.Verify = false
	r := newRunner(t, &fakeSigner{}, task("loud", returns(nil, outcome.New(outcome.GraphConsentMissing, "403", nil))), quiet)
	v := r.Verify(t.Context(), record())
	if ranQuiet || len(v.Tasks) != 1 || v.Outcome != outcome.GraphConsentMissing || v.Step != "4" || v.Remediation == "" || v.At.IsZero() {
		t.Errorf("verification = %+v (quiet ran: %v)", v, ranQuiet)
	}

	r = newRunner(t, &fakeSigner{err: outcome.New(outcome.AppNotInTenant, "AADSTS700016", nil)}, task("loud", returns(nil, nil)))
	rec := record()
	rec.OnboardedAt = time.Now()
	if v := r.Verify(t.Context(), rec); v.Step != "3" || !strings.HasPrefix(v.Message, "pending:") {
		t.Errorf("fresh tenant's verification = %+v, want pending", v)
	}
}

// A task whose Graph permissions the tenant has not granted gets no Graph
// token (graph_permission_missing, before any request); its other tokens,
// and the other tasks, are unaffected.
func TestGraphPermissionGate(t *testing.T) {
	graphTRO := policy.TokenRequestOptions{Scopes: []string{cloud.AzurePublic.GraphScope()}, EnableCAE: true}
	vaultTRO := policy.TokenRequestOptions{Scopes: []string{cloud.AzurePublic.KeyVaultScope}, EnableCAE: true}
	probe := func(cred azcore.TokenCredential) (groups, vault, users error) {
		use := func(tro policy.TokenRequestOptions, out *error) func(ctx context.Context, t *Tenant) (any, error) {
			return func(ctx context.Context, t *Tenant) (any, error) {
				_, *out = t.Credential.GetToken(ctx, tro)
				return nil, *out
			}
		}
		r := newRunner(t, &fakeSigner{cred: cred},
			fakeTask{about: About{Name: "groups", Graph: []string{"Group.Read.All|Directory.Read.All"}}, needs: Needs{Graph: true}, applies: true, run: use(graphTRO, &groups)},
			fakeTask{about: About{Name: "vault", Graph: []string{"Group.Read.All"}}, needs: Needs{KeyVault: true}, applies: true, run: use(vaultTRO, &vault)},
			fakeTask{about: About{Name: "users", Graph: []string{"User.Read.All"}}, needs: Needs{Graph: true}, applies: true, run: use(graphTRO, &users)})
		r.Probe(t.Context(), record())
		return
	}
	groups, vault, users := probe(jwtCredential{roles: []string{"User.Read.All"}})
	if outcome.Of(groups) != outcome.GraphPermissionMissing || !strings.Contains(outcome.Detail(groups), "Group.Read.All (or Directory.Read.All)") {
		t.Errorf("groups without its permission: %v", groups)
	}
	if vault != nil || users != nil {
		t.Errorf("vault %v, users %v; want both tokens", vault, users)
	}
	// Graph's token asked for by Graph's app id, or with a named
	// permission, is gated too.
	for _, scope := range []string{"00000003-0000-0000-c000-000000000000/.default", "https://graph.microsoft.com/Group.Read.All"} {
		graphTRO = policy.TokenRequestOptions{Scopes: []string{scope}}
		if groups, _, _ = probe(jwtCredential{roles: []string{"User.Read.All"}}); outcome.Of(groups) != outcome.GraphPermissionMissing {
			t.Errorf("a Graph token asked for as %s: %v, want graph_permission_missing", scope, groups)
		}
	}
	graphTRO = policy.TokenRequestOptions{Scopes: []string{cloud.AzurePublic.GraphScope()}, EnableCAE: true}
	if groups, _, _ = probe(jwtCredential{roles: []string{"Directory.ReadWrite.All"}}); groups != nil {
		t.Errorf("Directory.ReadWrite.All counts for Directory.Read.All: %v", groups)
	}
	if groups, _, _ = probe(opaqueCredential{}); groups != nil {
		t.Errorf("a token that is not a JWT is not checked: %v", groups)
	}
}

// Graph's 403 Authorization_RequestDenied to a token that holds
// application permissions, every one the task declares among them, is not
// a missing consent: the task needs one it does not declare, the app's bug
// (internal_error, nothing asked of the customer). Without any permission
// in the token it is the missing consent; another 403 of Graph's (a
// licence, a policy of the tenant) is not taken for the app's bug.
func TestGraph403WithTheDeclaredPermissions(t *testing.T) {
	graphTRO := policy.TokenRequestOptions{Scopes: []string{cloud.AzurePublic.GraphScope()}, EnableCAE: true}
	odata403 := func(code, message string) error {
		main := odataerrors.NewMainError()
		main.SetCode(&code)
		if message != "" {
			main.SetMessage(&message)
		}
		e := odataerrors.NewODataError()
		e.SetErrorEscaped(main)
		e.ResponseStatusCode = 403
		return e
	}
	graph403 := odata403("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	bare403 := abs.NewApiError()
	bare403.ResponseStatusCode = 403
	for _, tt := range []struct {
		name  string
		cred  azcore.TokenCredential
		graph []string // the task's declared permissions
		err   error    // what the task returns
		code  outcome.Code
		step  string
	}{
		{"declared permissions held", jwtCredential{roles: []string{"Group.Read.All"}}, []string{"Group.Read.All"}, graph403, outcome.InternalError, ""},
		{"nothing declared, permissions held", jwtCredential{roles: []string{"User.Read.All"}}, nil, graph403, outcome.InternalError, ""},
		{"no permission in the token", jwtCredential{roles: []string{}}, nil, graph403, outcome.GraphConsentMissing, "4"},
		{"no roles claim", opaqueCredential{}, []string{"Group.Read.All"}, graph403, outcome.GraphConsentMissing, "4"},
		{"classified by the task", jwtCredential{roles: []string{"Group.Read.All"}}, []string{"Group.Read.All"},
			outcome.New(outcome.GraphConsentMissing, "no consent", nil), outcome.GraphConsentMissing, "4"},
		{"an error body without a message", jwtCredential{roles: []string{"Group.Read.All"}}, []string{"Group.Read.All"},
			odata403("Authorization_RequestDenied", ""), outcome.InternalError, ""},
		{"another 403 of Graph's", jwtCredential{roles: []string{"AuditLog.Read.All"}}, []string{"AuditLog.Read.All"},
			odata403("Authentication_RequestFromNonPremiumTenantOrB2CTenant", "Neither tenant is B2C or tenant doesn't have premium license"), outcome.GraphConsentMissing, "4"},
		{"no Graph error body", jwtCredential{roles: []string{"Group.Read.All"}}, []string{"Group.Read.All"}, bare403, outcome.GraphConsentMissing, "4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRunner(t, &fakeSigner{cred: tt.cred}, fakeTask{about: About{Name: "t", Graph: tt.graph}, needs: Needs{Graph: true}, applies: true,
				run: func(ctx context.Context, tn *Tenant) (any, error) {
					if _, err := tn.Credential.GetToken(ctx, graphTRO); err != nil {
						return nil, err
					}
					return nil, tt.err
				}})
			got := r.Probe(t.Context(), record()).Tasks["t"]
			if got.Outcome != tt.code || got.Step != tt.step {
				t.Errorf("outcome %s step %q, want %s %q (%s)", got.Outcome, got.Step, tt.code, tt.step, got.Message)
			}
			if tt.code == outcome.InternalError && !strings.Contains(got.Message, "does not declare") {
				t.Errorf("message %q does not say what is missing", got.Message)
			}
		})
	}
}

type opaqueCredential struct{}

func (opaqueCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "opaque", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestPermissions(t *testing.T) {
	got := Permissions([]Task{
		fakeTask{about: About{Name: "a", Graph: []string{"Organization.Read.All|Directory.Read.All", "User.Read.All"}}},
		fakeTask{about: About{Name: "b", Graph: []string{"user.read.all", "Group.Read.All|GroupMember.Read.All"}}},
	})
	if want := []string{"Organization.Read.All", "User.Read.All", "Group.Read.All"}; !slices.Equal(got, want) {
		t.Errorf("Permissions = %v, want %v", got, want)
	}
}

// A task's own SDK client, built with t.ClientOptions, stops retrying when
// the next wait would outlast the tenant's deadline, as the built-in reads
// do, and says how often the service answered, instead of sleeping into a
// timeout.
func TestClientOptionsStopAtTheDeadline(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ok := returns(nil, nil)
	useClient := fakeTask{about: About{Name: "client"}, applies: true, run: func(ctx context.Context, tn *Tenant) (any, error) {
		pl := runtime.NewPipeline("test", "v1", runtime.PipelineOptions{}, &tn.ClientOptions)
		req, err := runtime.NewRequest(ctx, http.MethodGet, srv.URL+"/thing")
		if err != nil {
			return nil, err
		}
		resp, err := pl.Do(req)
		if err != nil {
			return nil, err
		}
		if !runtime.HasStatusCode(resp, http.StatusOK) {
			return nil, runtime.NewResponseError(resp)
		}
		return nil, nil
	}}
	r, err := New(Config{Tasks: []Task{useClient, task("other", ok)}, SignIn: &fakeSigner{}, Graph: noGraph{},
		Advisor: tenant.Advisor{AppID: appID, Cloud: cloud.AzurePublic}, Cloud: cloud.AzurePublic,
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{RetryDelay: 200 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	got := r.Probe(ctx, record()).Tasks["client"]
	if took := time.Since(start); got.Outcome != outcome.UpstreamError || !strings.Contains(got.Message, "answered HTTP 503 three times") || took > 1400*time.Millisecond {
		t.Errorf("after %s and %d calls: %+v; want upstream_error naming three 503s before the deadline", took, calls, got)
	}
}

// sharingCredential is a jwtCredential that leaves one token for the
// fleet, recording the scopes it was told were refused.
type sharingCredential struct {
	jwtCredential
	refused *[]string
}

func (c sharingCredential) Share(refused ...string) tenant.SharedUpdate {
	*c.refused = append(*c.refused, refused...)
	return tenant.SharedUpdate{Put: []tenant.SharedToken{{Resource: "https://vault.azure.net", Sealed: "sealed"}}}
}

// The sweep signs in with the tokens the fleet shares for the tenant and
// leaves its own for the fleet, Graph's held back when Graph refused its
// grants; the sweep's Graph requests are low priority. Verification signs
// in afresh, shares nothing, and is high priority.
func TestSharedTokensAndPriorities(t *testing.T) {
	var refused []string
	signer := &fakeSigner{cred: sharingCredential{jwtCredential{roles: []string{"User.Read.All"}}, &refused}}
	var priorities []governor.Priority
	var mu sync.Mutex
	graphTask := func(err error) fakeTask {
		return task("access", func(ctx context.Context, _ *Tenant) (any, error) {
			mu.Lock()
			priorities = append(priorities, governor.PriorityOf(ctx))
			mu.Unlock()
			return nil, err
		})
	}
	rec := record()
	rec.Shared.Tokens = []tenant.SharedToken{{Resource: "https://graph.microsoft.com", Sealed: "from-the-fleet"}}

	res := newRunner(t, signer, graphTask(nil)).Probe(t.Context(), rec)
	if len(signer.shared) != 1 || len(signer.shared[0].Tokens) != 1 || signer.shared[0].Tokens[0].Sealed != "from-the-fleet" {
		t.Errorf("the sweep signed in with %v, want the record's tokens", signer.shared)
	}
	if len(res.Shared.Put) != 1 || len(refused) != 0 {
		t.Errorf("left for the fleet %+v (refused %v)", res.Shared, refused)
	}

	newRunner(t, signer, graphTask(outcome.New(outcome.GraphConsentMissing, "no consent", nil))).Probe(t.Context(), rec)
	if !slices.Equal(refused, []string{cloud.AzurePublic.GraphScope()}) {
		t.Errorf("refused %v after Graph's 403, want Graph's scope", refused)
	}

	v := newRunner(t, signer, graphTask(nil)).Verify(t.Context(), rec)
	if v.Outcome != outcome.OK || len(signer.shared) != 3 || len(signer.shared[2].Tokens) != 0 {
		t.Errorf("verification %s signed in with %v, want no shared token", v.Outcome, signer.shared[2])
	}
	if !slices.Equal(priorities, []governor.Priority{governor.Low, governor.Low, governor.High}) {
		t.Errorf("priorities %v", priorities)
	}
}
