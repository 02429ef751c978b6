package tasks_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	msgraph "github.com/microsoftgraph/msgraph-sdk-go"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/task/tasktest"
	"github.com/tenantsweep/tenantsweep/internal/tasks"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

const (
	appID    = "11111111-2222-4333-8444-555555555555"
	tenantID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	vaultURL = "https://contoso.vault.azure.net/"
)

// fakeAccess is the Signer, Directory and Vaults of an access check: it
// fails the steps it is told to and records its calls.
type fakeAccess struct {
	signIn  error
	org     error
	secrets map[string]error // by secret name
	meta    tenant.SecretMeta

	calls []string // under callsMu: the reads run at once
}

var callsMu sync.Mutex

func (f *fakeAccess) call(c string) {
	callsMu.Lock()
	defer callsMu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeAccess) SignIn(_ context.Context, tenantID string, scopes []string, _ tenant.Shared) (azcore.TokenCredential, error) {
	f.call("signin:" + strings.Join(scopes, " "))
	if f.signIn != nil {
		return nil, f.signIn
	}
	return opaque{}, nil
}

func (f *fakeAccess) Organization(context.Context, azcore.TokenCredential) (tenant.GraphInfo, error) {
	f.call("graph")
	return tenant.GraphInfo{Organization: "Contoso", UserCount: 42}, f.org
}

func (f *fakeAccess) Secret(_ context.Context, _, _, name string, _ azcore.TokenCredential) (tenant.SecretMeta, error) {
	f.call("secret:" + name)
	return f.meta, f.secrets[name]
}

func (f *fakeAccess) For(azcore.TokenCredential) *msgraph.GraphServiceClient { return nil }

type opaque struct{}

func (opaque) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "opaque", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func runner(t *testing.T, a *fakeAccess, access tasks.Access) *task.Runner {
	t.Helper()
	access.Directory, access.Vaults = a, a
	r, err := task.New(task.Config{Tasks: []task.Task{access}, SignIn: a, Graph: a,
		Advisor: tenant.Advisor{AppID: appID, Cloud: cloud.AzurePublic}, Cloud: cloud.AzurePublic})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func record() tenant.Record {
	return tenant.Record{TenantID: tenantID, Status: tenant.StatusActive, Graph: true,
		KeyVaults: []tenant.KeyVault{{VaultURL: vaultURL, Secrets: []string{"db-password", "api-key"}}}}
}

func TestAccessNamesTheMissingStep(t *testing.T) {
	fault := func(c outcome.Code) error { return outcome.New(c, "detail of "+string(c), nil) }
	tests := []struct {
		name        string
		access      fakeAccess
		wantOutcome outcome.Code
		wantStep    string
		wantRemedy  string
		wantCalls   int
	}{
		{"all done", fakeAccess{}, outcome.OK, "", "", 4},
		{"app not added", fakeAccess{signIn: fault(outcome.AppNotInTenant)}, outcome.AppNotInTenant, "3", "az ad sp create --id " + appID, 1},
		{"wrong tenant", fakeAccess{signIn: fault(outcome.TenantNotFound)}, outcome.TenantNotFound, "onboarding", "tenant id", 1},
		{"our secret expired", fakeAccess{signIn: fault(outcome.AppCredentialInvalid)}, outcome.AppCredentialInvalid, "1", "developer rotates", 1},
		{"no consent", fakeAccess{org: fault(outcome.GraphConsentMissing)}, outcome.GraphConsentMissing, "4", "Grant admin consent", 4},
		{"no vault role", fakeAccess{secrets: map[string]error{"api-key": fault(outcome.KeyVaultAccessDenied)}}, outcome.KeyVaultAccessDenied, "5", "--scope $(az keyvault show --name contoso", 4},
		{"no secret", fakeAccess{secrets: map[string]error{"db-password": fault(outcome.SecretNotFound)}}, outcome.SecretNotFound, "5", "--name db-password", 4},
		{"graph step reported before vault step", fakeAccess{org: fault(outcome.GraphConsentMissing), secrets: map[string]error{"db-password": fault(outcome.KeyVaultAccessDenied)}}, outcome.GraphConsentMissing, "4", "adminconsent?client_id=" + appID, 4},
		{"the first secret in registration order", fakeAccess{secrets: map[string]error{"db-password": fault(outcome.SecretNotFound), "api-key": fault(outcome.KeyVaultAccessDenied)}}, outcome.SecretNotFound, "5", "--name db-password", 4},
		{"timeout", fakeAccess{org: context.DeadlineExceeded}, outcome.Timeout, "", "next sweep", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := runner(t, &tt.access, tasks.Access{}).Verify(context.Background(), record())
			if v.Outcome != tt.wantOutcome || v.Step != tt.wantStep {
				t.Fatalf("verification = %+v, want outcome %s step %q", v, tt.wantOutcome, tt.wantStep)
			}
			if !strings.Contains(v.Remediation, tt.wantRemedy) {
				t.Errorf("remediation %q does not contain %q", v.Remediation, tt.wantRemedy)
			}
			if v.Message == "" || v.At.IsZero() {
				t.Errorf("verification lacks a message or time: %+v", v)
			}
			if len(tt.access.calls) != tt.wantCalls {
				t.Errorf("calls = %v, want %d", tt.access.calls, tt.wantCalls)
			}
		})
	}
}

// The sign-in asks for the tokens the registration needs, at once; then
// Graph and every secret are read, with the signed-in credential.
func TestAccessSignsInForWhatTheTenantRegistered(t *testing.T) {
	for _, tt := range []struct {
		name   string
		rec    func(*tenant.Record)
		signIn string
	}{
		{"graph and vaults", func(*tenant.Record) {}, "signin:" + cloud.AzurePublic.GraphScope() + " " + cloud.AzurePublic.KeyVaultScope},
		{"graph only", func(r *tenant.Record) { r.KeyVaults = nil }, "signin:" + cloud.AzurePublic.GraphScope()},
		{"vaults only", func(r *tenant.Record) { r.Graph = false }, "signin:" + cloud.AzurePublic.KeyVaultScope},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &fakeAccess{}
			rec := record()
			tt.rec(&rec)
			res := runner(t, a, tasks.Access{}).Probe(context.Background(), rec)
			if res.Outcome != outcome.OK || a.calls[0] != tt.signIn {
				t.Errorf("result %s, calls %v; want ok and %q first", res.Outcome, a.calls, tt.signIn)
			}
			if rec.Graph != (res.Graph != nil) || len(res.KeyVault) != 2*len(rec.KeyVaults) {
				t.Errorf("graph %+v, keyVault %+v for registration %+v", res.Graph, res.KeyVault, rec)
			}
			if got := res.Tasks[tasks.AccessName]; got.Outcome != outcome.OK || got.Body != nil {
				t.Errorf("tasks.access = %+v, want ok and its body in lastSweep.graph/keyVault", got)
			}
		})
	}
}

func TestAccessSecretExpiry(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	soon, later := now.Add(10*24*time.Hour), now.Add(90*24*time.Hour)
	enabled := true
	for _, tt := range []struct {
		expires *time.Time
		want    bool
	}{{&soon, true}, {&later, false}, {nil, false}} {
		a := &fakeAccess{meta: tenant.SecretMeta{Version: "v1", Enabled: &enabled, ExpiresOn: tt.expires}}
		res := runner(t, a, tasks.Access{ExpiryWarning: 30 * 24 * time.Hour, Now: func() time.Time { return now }}).
			Probe(context.Background(), record())
		if res.Outcome != outcome.OK || len(res.KeyVault) != 2 || res.Graph == nil || res.Graph.UserCount != 42 {
			t.Fatalf("result = %+v", res)
		}
		names := []string{res.KeyVault[0].Secret, res.KeyVault[1].Secret}
		if !slices.Equal(names, []string{"db-password", "api-key"}) {
			t.Errorf("secrets in the order %v, want the registration's", names)
		}
		if got := res.KeyVault[0]; got.ExpiresSoon != tt.want || got.Version != "v1" || got.Outcome != outcome.OK {
			t.Errorf("expires %v: status = %+v, want expiresSoon %v", tt.expires, got, tt.want)
		}
	}
}

// Against the fakes, through the real SDKs: the check's wire format and
// its outcomes, with a tenant that granted exactly what the task declares.
func TestAccessAgainstTheFakes(t *testing.T) {
	env := tasktest.New(t)
	access := tasks.Access{Directory: env.Graph, Vaults: env.Vaults}
	healthy := env.Tenant(cloudtest.Tenant{OrgName: "Contoso", Users: 7}, access)
	kv := env.Vault(healthy, "contoso-kv", cloudtest.Vault{Secrets: map[string]cloudtest.Secret{
		"db-password": {Value: "not-to-be-seen", Enabled: true}}})
	withVault := func(url string, secrets ...string) func(*tenant.Record) {
		return func(r *tenant.Record) { r.KeyVaults = []tenant.KeyVault{{VaultURL: url, Secrets: secrets}} }
	}

	res := env.Run(t, env.Record(healthy, withVault(kv, "db-password")), access)
	if res.Outcome != outcome.OK || res.Graph == nil || res.Graph.Organization != "Contoso" || res.Graph.UserCount != 7 ||
		len(res.KeyVault) != 1 || res.KeyVault[0].Outcome != outcome.OK {
		t.Fatalf("healthy tenant: %+v", res)
	}

	// A tenant that granted only one of the two permissions: the check
	// names the other, sends no Graph request, and still reads the vault.
	partial := env.Tenant(cloudtest.Tenant{OrgName: "Fabrikam", GraphRoles: []string{"Organization.Read.All"}})
	pkv := env.Vault(partial, "fabrikam-kv", cloudtest.Vault{Secrets: map[string]cloudtest.Secret{"s": {Value: "x", Enabled: true}}})
	env.Cloud.ResetCounters()
	res = env.Run(t, env.Record(partial, withVault(pkv, "s")), access)
	if res.Outcome != outcome.GraphPermissionMissing || res.Step != "4" || !strings.Contains(res.Message, "User.Read.All (or Directory.Read.All)") ||
		len(res.KeyVault) != 1 || res.KeyVault[0].Outcome != outcome.OK {
		t.Fatalf("partly consented tenant: %+v", res)
	}
	for _, r := range env.Cloud.Requests() {
		if r.Host == cloudtest.GraphHost {
			t.Errorf("a Graph request (%s %s) though a permission is missing", r.Method, r.Path)
		}
	}

	denied := env.Tenant(cloudtest.Tenant{OrgName: "Tailspin"}, access)
	dkv := env.Vault(denied, "tailspin-kv", cloudtest.Vault{Status: 403})
	res = env.Run(t, env.Record(denied, withVault(dkv, "s")), access)
	if res.Outcome != outcome.KeyVaultAccessDenied || res.Step != "5" || !strings.Contains(res.Remediation, "--name tailspin-kv") {
		t.Fatalf("vault without a role: %+v", res)
	}
}
