package azauth_test

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/azauth"
	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/config"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tokenshare"
)

// instance is one process's credentials, sealing with key (nil: its own
// random key), its clock offset by skew.
func instance(t *testing.T, c *cloudtest.Cloud, key []byte, skew time.Duration) *azauth.Tenants {
	t.Helper()
	sealer, err := tokenshare.New(tokenshare.Options{Key: key, Now: func() time.Time { return time.Now().Add(skew) }})
	if err != nil {
		t.Fatal(err)
	}
	opts := options(c)
	opts.Sealer = sealer
	return newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, opts)
}

func sharingKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, tokenshare.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

type sharer interface {
	Share(refused ...string) tenant.SharedUpdate
}

var (
	sharedVaultTRO = policy.TokenRequestOptions{Scopes: []string{cloud.AzurePublic.KeyVaultScope}, EnableCAE: true}
	bothScopes     = []string{graphTRO.Scopes[0], sharedVaultTRO.Scopes[0]}
)

// signIn signs in to tenant with the fleet's tokens and returns the Graph
// and Key Vault tokens it hands out, the token requests it made, and what
// it leaves for the fleet.
func signIn(t *testing.T, c *cloudtest.Cloud, ts *azauth.Tenants, tenantID string, shared []tenant.SharedToken) (graph, vault string, requests int, u tenant.SharedUpdate) {
	t.Helper()
	before := c.TokenRequests(tenantID)
	cred, err := ts.SignIn(ctx, tenantID, bothScopes, tenant.Shared{Tokens: shared})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cred.GetToken(ctx, graphTRO)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cred.GetToken(ctx, sharedVaultTRO)
	if err != nil {
		t.Fatal(err)
	}
	return g.Token, v.Token, c.TokenRequests(tenantID) - before, cred.(sharer).Share()
}

// A token one instance got is used by another holding the same key,
// with no token request; copied to another tenant's row, altered, sealed
// with a key the instance lacks, or past the freshness limit, it is not
// used and the instance signs in.
func TestSharedTokens(t *testing.T) {
	c, _ := twoTenants(t)
	key := sharingKey(t)
	one, two := instance(t, c, key, 0), instance(t, c, key, 0)

	g1, v1, n, u := signIn(t, c, one, tenantA, nil)
	if n != 2 || len(u.Put) != 2 || len(u.Drop) != 0 {
		t.Fatalf("cold: %d token requests, update %+v", n, u)
	}
	for _, st := range u.Put {
		if st.Sealed == "" || st.Sealed == g1 || st.Sealed == v1 {
			t.Fatalf("shared token %+v", st)
		}
	}
	g2, v2, n, u2 := signIn(t, c, two, tenantA, u.Put)
	if n != 0 || g2 != g1 || v2 != v1 {
		t.Errorf("another instance: %d token requests, same tokens %v %v", n, g2 == g1, v2 == v1)
	}
	if !u2.Empty() {
		t.Errorf("another instance re-shares what it was given: %+v", u2)
	}

	t.Run("copied to another tenant", func(t *testing.T) {
		g, _, n, _ := signIn(t, c, two, tenantB, u.Put)
		if cl, _ := c.TokenClaims(g); n != 2 || cl.Tenant != tenantB {
			t.Errorf("%d token requests, a Graph token of %s", n, cl.Tenant)
		}
	})
	t.Run("altered", func(t *testing.T) {
		// Graph's (the tokens are shared in the order they were got).
		altered := slices.Clone(u.Put)
		i := slices.IndexFunc(altered, func(st tenant.SharedToken) bool { return st.Resource == "https://graph.microsoft.com" })
		if i < 0 {
			t.Fatalf("no Graph token shared: %+v", altered)
		}
		b, _ := base64.RawStdEncoding.DecodeString(altered[i].Sealed)
		b[20] ^= 0x40
		altered[i].Sealed = base64.RawStdEncoding.EncodeToString(b)
		g, _, n, _ := signIn(t, c, two, tenantA, altered)
		if n != 1 || g == g1 {
			t.Errorf("%d token requests (want 1: the other token opens), the altered one handed out: %v", n, g == g1)
		}
	})
	t.Run("another key", func(t *testing.T) {
		if _, _, n, _ := signIn(t, c, instance(t, c, sharingKey(t), 0), tenantA, u.Put); n != 2 {
			t.Errorf("%d token requests", n)
		}
		if _, _, n, _ := signIn(t, c, instance(t, c, nil, 0), tenantA, u.Put); n != 2 {
			t.Errorf("a process's own key: %d token requests", n)
		}
	})
	t.Run("past the freshness limit", func(t *testing.T) {
		later := instance(t, c, key, 31*time.Minute)
		g, _, n, u := signIn(t, c, later, tenantA, u.Put)
		if n != 2 || g == g1 || len(u.Put) != 2 {
			t.Errorf("31 minutes on: %d token requests, the old token handed out %v, %d to share", n, g == g1, len(u.Put))
		}
	})
	t.Run("refused", func(t *testing.T) {
		cred, err := two.SignIn(ctx, tenantA, bothScopes, tenant.Shared{Tokens: u.Put})
		if err != nil {
			t.Fatal(err)
		}
		r := cred.(sharer).Share(graphTRO.Scopes[0])
		if len(r.Put) != 0 || len(r.Drop) != 1 || r.Drop[0].Resource != cloudtest.GraphResource || !r.Drop[0].IssuedAt.Equal(u.Put[0].IssuedAt) {
			t.Errorf("a refused shared Graph token: %+v", r)
		}
	})
	t.Run("no sealer", func(t *testing.T) {
		plain := newTenants(t, c, config.App{ClientID: appID, Method: config.MethodSecret, Secret: secret}, options(c))
		_, _, n, u := signIn(t, c, plain, tenantA, u.Put)
		if n != 2 || !u.Empty() {
			t.Errorf("%d token requests, update %+v", n, u)
		}
	})
}
