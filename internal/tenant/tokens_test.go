package tenant

import (
	"slices"
	"testing"
	"time"
)

func TestMergeSharedTokens(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tok := func(res string, issued time.Duration, seal string) SharedToken {
		return SharedToken{Resource: res, IssuedAt: now.Add(issued), ExpiresOn: now.Add(issued + time.Hour), Key: "k1", Sealed: seal}
	}
	const graph, vault = "https://graph.microsoft.com", "https://vault.azure.net"
	for _, tc := range []struct {
		name   string
		status Status
		stored []SharedToken
		u      SharedUpdate
		want   []string // seals, in order
	}{
		{"first tokens", StatusActive, nil,
			SharedUpdate{Put: []SharedToken{tok(graph, 0, "g1"), tok(vault, 0, "v1")}}, []string{"g1", "v1"}},
		{"a newer token replaces its resource's", StatusActive, []SharedToken{tok(graph, -20*time.Minute, "g0"), tok(vault, -20*time.Minute, "v0")},
			SharedUpdate{Put: []SharedToken{tok(graph, 0, "g1")}}, []string{"g1", "v0"}},
		{"an older token never replaces a newer one (a result applied again after a race)", StatusActive,
			[]SharedToken{tok(graph, -time.Minute, "g-other-instance")},
			SharedUpdate{Put: []SharedToken{tok(graph, -10*time.Minute, "g-mine")}}, []string{"g-other-instance"}},
		{"a refused token goes", StatusActive, []SharedToken{tok(graph, -10*time.Minute, "g0"), tok(vault, -10*time.Minute, "v0")},
			SharedUpdate{Drop: []SharedToken{tok(graph, -10*time.Minute, "")}}, []string{"v0"}},
		{"a refusal does not drop a newer token", StatusActive, []SharedToken{tok(graph, -time.Minute, "g-newer")},
			SharedUpdate{Drop: []SharedToken{tok(graph, -10*time.Minute, "")}}, []string{"g-newer"}},
		{"expired tokens go", StatusActive, []SharedToken{tok(graph, -2*time.Hour, "g-expired"), tok(vault, -time.Minute, "v0")},
			SharedUpdate{}, []string{"v0"}},
		{"an expired token is not put", StatusActive, nil,
			SharedUpdate{Put: []SharedToken{tok(graph, -2*time.Hour, "g-expired")}}, nil},
		{"a disabled tenant keeps none", StatusDisabled, []SharedToken{tok(graph, 0, "g0")},
			SharedUpdate{Put: []SharedToken{tok(vault, 0, "v1")}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := Record{Status: tc.status, Shared: Shared{Tokens: slices.Clone(tc.stored)}}
			MergeShared(&rec, tc.u, now)
			var got []string
			for _, st := range rec.Shared.Tokens {
				got = append(got, st.Sealed)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("tokens %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTokensDue(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rec := Record{Shared: Shared{Tokens: []SharedToken{{IssuedAt: now.Add(-10 * time.Minute)}, {IssuedAt: now.Add(-25 * time.Minute)}}}}
	if due, n := rec.TokensDue(30 * time.Minute); !due.Equal(now.Add(5*time.Minute)) || n != 2 {
		t.Errorf("due %v, %d tokens", due, n)
	}
	if due, n := (Record{}).TokensDue(30 * time.Minute); !due.IsZero() || n != 0 {
		t.Errorf("no tokens: due %v, %d", due, n)
	}
}

func TestMergeSharedVaults(t *testing.T) {
	now := time.Now()
	rec := Record{Status: StatusActive, KeyVaults: []KeyVault{
		{VaultURL: "https://a.vault.azure.net/"}, {VaultURL: "https://B.vault.azure.net"}, {VaultURL: "https://c.vault.azure.net/"}},
		Shared: Shared{Vaults: []string{"a.vault.azure.net", "gone.vault.azure.net"}}}
	MergeShared(&rec, SharedUpdate{Vaults: []string{"B.vault.azure.net", "a.vault.azure.net", "unregistered.vault.azure.net"}}, now)
	if want := []string{"a.vault.azure.net", "b.vault.azure.net"}; !slices.Equal(rec.Shared.Vaults, want) {
		t.Errorf("vaults %v, want %v (known and found, registered, once each)", rec.Shared.Vaults, want)
	}
	MergeShared(&rec, SharedUpdate{NotVaults: []string{"A.vault.azure.net"}}, now)
	if want := []string{"b.vault.azure.net"}; !slices.Equal(rec.Shared.Vaults, want) {
		t.Errorf("vaults %v after a's challenge named another tenant, want %v", rec.Shared.Vaults, want)
	}
}
