package azauth_test

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/azauth"
	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// chaosFault is one kind of tenant in the mixed sign-in test: how the fakes
// treat it and the outcome its sign-in must have.
type chaosFault struct {
	name   string
	tenant *cloudtest.Tenant // nil: a tenant that does not exist
	want   outcome.Code
}

var chaosFaults = []chaosFault{
	{"ok", &cloudtest.Tenant{}, outcome.OK},
	{"unknown tenant", nil, outcome.TenantNotFound},
	{"tenant not found", &cloudtest.Tenant{SignIn: cloudtest.FaultTenantNotFound}, outcome.TenantNotFound},
	{"app not in tenant", &cloudtest.Tenant{SignIn: cloudtest.FaultAppNotInTenant}, outcome.AppNotInTenant},
	{"invalid secret", &cloudtest.Tenant{SignIn: cloudtest.FaultInvalidSecret}, outcome.AppCredentialInvalid},
	{"expired secret", &cloudtest.Tenant{SignIn: cloudtest.FaultSecretExpired}, outcome.AppCredentialInvalid},
	{"throttled", &cloudtest.Tenant{SignInThrottle: 1 << 20}, outcome.Throttled},
	{"unavailable", &cloudtest.Tenant{SignInStatus: 503}, outcome.UpstreamError},
	{"other code", &cloudtest.Tenant{SignIn: "50034"}, outcome.UpstreamError},
	{"no service principal", &cloudtest.Tenant{SignIn: cloudtest.FaultNoServicePrincipal}, outcome.AppNotInTenant},
	{"app disabled", &cloudtest.Tenant{SignIn: cloudtest.FaultAppDisabled}, outcome.AppDisabled},
	{"conditional access", &cloudtest.Tenant{SignIn: cloudtest.FaultConditionalAccess}, outcome.BlockedByPolicy},
	{"tenant restrictions", &cloudtest.Tenant{SignIn: cloudtest.FaultTenantRestrictions}, outcome.BlockedByPolicy},
	{"tenant unavailable", &cloudtest.Tenant{SignIn: cloudtest.FaultTenantUnavailable}, outcome.TenantNotFound},
	{"tenant inactive", &cloudtest.Tenant{SignIn: cloudtest.FaultTenantInactive}, outcome.TenantNotFound},
	{"invalid tenant id", &cloudtest.Tenant{SignIn: cloudtest.FaultInvalidTenantID}, outcome.TenantNotFound},
	{"US Government tenant", &cloudtest.Tenant{Cloud: cloudtest.InstanceUSGov, RegionSubScope: "DOD"}, outcome.WrongCloud},
	{"China tenant", &cloudtest.Tenant{Cloud: cloudtest.InstanceChina}, outcome.TenantNotFound},
	// The Key Vault token's failure is the vault read's to report, not the
	// sign-in's.
	{"no Key Vault principal", &cloudtest.Tenant{MissingResources: []string{cloudtest.VaultResource}}, outcome.OK},
}

// Hundreds of cold tenants sign in at once, as a sweep's first minute does,
// each with the Key Vault token prefetched beside the Graph token (so two
// token requests, and MSAL's one OpenID metadata request, per tenant), with
// every sign-in fault in the mix, directly and through an HTTPS proxy. Every
// tenant must get its own outcome, on every round: the classification must
// not depend on which of the two requests Entra ID's answer reached first.
// Run it with -count to look for flakes
// (go test -race -count=20 -run TestMixedSignInFaults ./internal/azauth).
func TestMixedSignInFaults(t *testing.T) {
	const perFault = 20
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: secret})
	var cases []chaosCase
	for i := range perFault {
		for j, f := range chaosFaults {
			id := fmt.Sprintf("%08x-0000-4000-8000-%012d", 0xc0000000+j, i)
			if f.tenant != nil {
				c.AddTenant(id, *f.tenant)
			}
			cases = append(cases, chaosCase{id, f})
		}
	}
	proxy, err := url.Parse(c.ProxyURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("direct", func(t *testing.T) { mixedSignIns(t, c.HTTPClient(), cases) })
	t.Run("through a proxy", func(t *testing.T) { mixedSignIns(t, azauth.SignInHTTPVia(proxy, c.CertPool()), cases) })
}

type chaosCase struct {
	id    string
	fault chaosFault
}

func mixedSignIns(t *testing.T, transport policy.Transporter, cases []chaosCase) {
	const (
		rounds      = 3
		concurrency = 64
	)
	app := config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}
	opts := azauth.Options{
		Transport:                transport,
		Retry:                    &policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond},
		DisableInstanceDiscovery: true,
	}
	misclassified := map[string]int{}
	var mu sync.Mutex
	for round := range rounds {
		// A new set of credentials each round: every tenant is cold.
		ts, err := azauth.New(ctx, app, cloud.AzurePublic, opts)
		if err != nil {
			t.Fatal(err)
		}
		sem := make(chan struct{}, concurrency)
		var wg sync.WaitGroup
		for _, tc := range cases {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				_, err := ts.SignIn(ctx, tc.id, []string{graphTRO.Scopes[0], cloud.AzurePublic.KeyVaultScope}, tenant.Shared{})
				if got := outcome.Of(err); got != tc.fault.want {
					mu.Lock()
					misclassified[tc.fault.name]++
					if misclassified[tc.fault.name] <= 3 {
						t.Errorf("round %d, %s tenant %s: %s (%s), want %s", round, tc.fault.name, tc.id, got, outcome.Detail(err), tc.fault.want)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	if len(misclassified) > 0 {
		t.Errorf("misclassified sign-ins by fault, over %d rounds of %d tenants: %v", rounds, len(cases), misclassified)
	}
}
