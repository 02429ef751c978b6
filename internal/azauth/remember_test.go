package azauth

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// countingCredential stands for the tenant's MSAL client: it counts what it
// is asked and mints a new token each time, with the lifetime set.
type countingCredential struct {
	calls      int
	expiresIn  time.Duration
	refreshIn  time.Duration
	failClaims bool
}

func (f *countingCredential) GetToken(_ context.Context, tro policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.calls++
	if f.failClaims && tro.Claims != "" {
		return azcore.AccessToken{}, errors.New("claims request failed")
	}
	now := time.Now()
	tk := azcore.AccessToken{Token: fmt.Sprintf("token-%d-%s-%s", f.calls, tro.Scopes[0], tro.Claims), ExpiresOn: now.Add(f.expiresIn)}
	if f.refreshIn != 0 {
		tk.RefreshOn = now.Add(f.refreshIn)
	}
	return tk, nil
}

func TestRememberedTokens(t *testing.T) {
	const graph, vault = "https://graph.microsoft.com/.default", "https://vault.azure.net/.default"
	ask := func(scope string) policy.TokenRequestOptions {
		return policy.TokenRequestOptions{Scopes: []string{scope}, EnableCAE: true}
	}
	withClaims := ask(graph)
	withClaims.Claims = `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`
	noCAE := ask(graph)
	noCAE.EnableCAE = false

	for _, tt := range []struct {
		name      string
		expiresIn time.Duration
		refreshIn time.Duration
		asks      []policy.TokenRequestOptions
		rotate    bool // the app secret changes before the last ask
		wantCalls int
	}{
		{name: "the same scope again", expiresIn: time.Hour, asks: []policy.TokenRequestOptions{ask(graph), ask(graph), ask(graph)}, wantCalls: 1},
		{name: "each scope its own", expiresIn: time.Hour, asks: []policy.TokenRequestOptions{ask(graph), ask(vault), ask(graph), ask(vault)}, wantCalls: 2},
		{name: "a claims challenge asks", expiresIn: time.Hour, asks: []policy.TokenRequestOptions{ask(graph), withClaims}, wantCalls: 2},
		{name: "another CAE mode asks", expiresIn: time.Hour, asks: []policy.TokenRequestOptions{ask(graph), noCAE}, wantCalls: 2},
		{name: "a third scope keeps its own", expiresIn: time.Hour, asks: []policy.TokenRequestOptions{ask(graph), ask("api://other/.default"), ask(graph), ask("api://other/.default")}, wantCalls: 2},
		{name: "near its expiry asks", expiresIn: 4 * time.Minute, asks: []policy.TokenRequestOptions{ask(graph), ask(graph)}, wantCalls: 2},
		{name: "just outside the expiry margin is kept", expiresIn: 6 * time.Minute, asks: []policy.TokenRequestOptions{ask(graph), ask(graph)}, wantCalls: 1},
		{name: "due for refresh asks", expiresIn: time.Hour, refreshIn: -time.Second, asks: []policy.TokenRequestOptions{ask(graph), ask(graph)}, wantCalls: 2},
		{name: "not yet due for refresh is kept", expiresIn: time.Hour, refreshIn: 30 * time.Minute, asks: []policy.TokenRequestOptions{ask(graph), ask(graph)}, wantCalls: 1},
		{name: "a rotated app secret asks", expiresIn: time.Hour, asks: []policy.TokenRequestOptions{ask(graph), ask(graph)}, rotate: true, wantCalls: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inner := &countingCredential{expiresIn: tt.expiresIn, refreshIn: tt.refreshIn}
			ts := &Tenants{secret: &secretSource{value: "s1", gen: 1},
				build: func(string, string) (azcore.TokenCredential, error) { return inner, nil }}
			c := &Session{t: ts, tenantID: "11111111-1111-1111-1111-111111111111"}
			for i, tro := range tt.asks {
				if tt.rotate && i == len(tt.asks)-1 {
					ts.secret.mu.Lock()
					ts.secret.value, ts.secret.gen = "s2", 2
					ts.secret.mu.Unlock()
				}
				if _, err := c.GetToken(t.Context(), tro); err != nil {
					t.Fatal(err)
				}
			}
			if inner.calls != tt.wantCalls {
				t.Errorf("%d requests to MSAL, want %d", inner.calls, tt.wantCalls)
			}
		})
	}

	t.Run("the claims token replaces the last one", func(t *testing.T) {
		inner := &countingCredential{expiresIn: time.Hour}
		ts := &Tenants{build: func(string, string) (azcore.TokenCredential, error) { return inner, nil }}
		c := &Session{t: ts, tenantID: "11111111-1111-1111-1111-111111111111"}
		for _, tro := range []policy.TokenRequestOptions{ask(graph), withClaims} {
			if _, err := c.GetToken(t.Context(), tro); err != nil {
				t.Fatal(err)
			}
		}
		tk, err := c.GetToken(t.Context(), ask(graph))
		if err != nil {
			t.Fatal(err)
		}
		if want := "token-2-" + graph + "-" + withClaims.Claims; tk.Token != want || inner.calls != 2 {
			t.Errorf("token %q after %d requests, want %q after 2", tk.Token, inner.calls, want)
		}
	})

	t.Run("a claims challenge forgets the refused token, even when it fails", func(t *testing.T) {
		inner := &countingCredential{expiresIn: time.Hour, failClaims: true}
		ts := &Tenants{build: func(string, string) (azcore.TokenCredential, error) { return inner, nil }}
		c := &Session{t: ts, tenantID: "11111111-1111-1111-1111-111111111111"}
		if _, err := c.GetToken(t.Context(), ask(graph)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetToken(t.Context(), withClaims); err == nil {
			t.Fatal("the claims request succeeded")
		}
		if _, err := c.GetToken(t.Context(), ask(graph)); err != nil {
			t.Fatal(err)
		}
		if inner.calls != 3 {
			t.Errorf("%d requests to MSAL, want 3: the refused token was handed out again", inner.calls)
		}
	})

	t.Run("a clock set back before the token was acquired asks", func(t *testing.T) {
		ts := &Tenants{}
		c := &Session{t: ts, tenantID: "11111111-1111-1111-1111-111111111111"}
		now := time.Now()
		st := c.state(ask(graph))
		c.remember(st, ask(graph), 0, azcore.AccessToken{Token: "t", ExpiresOn: now.Add(time.Hour)})
		if _, ok := c.remembered(st, ask(graph), now.Add(time.Minute)); !ok {
			t.Error("a fresh token was not remembered")
		}
		if _, ok := c.remembered(st, ask(graph), now.Add(-time.Minute)); ok {
			t.Error("a token acquired in the future was handed out")
		}
	})
}
