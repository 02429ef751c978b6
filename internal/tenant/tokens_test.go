package tenant

import (
	"slices"
	"testing"
	"time"
)

func TestMergeTokens(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tok := func(res string, issued time.Duration, seal string) SharedToken {
		return SharedToken{Resource: res, IssuedAt: now.Add(issued), ExpiresOn: now.Add(issued + time.Hour), Key: "k1", Sealed: seal}
	}
	const graph, vault = "https://graph.microsoft.com", "https://vault.azure.net"
	for _, tc := range []struct {
		name   string
		status Status
		stored []SharedToken
		u      TokenUpdate
		want   []string // seals, in order
	}{
		{"first tokens", StatusActive, nil,
			TokenUpdate{Put: []SharedToken{tok(graph, 0, "g1"), tok(vault, 0, "v1")}}, []string{"g1", "v1"}},
		{"a newer token replaces its resource's", StatusActive, []SharedToken{tok(graph, -20*time.Minute, "g0"), tok(vault, -20*time.Minute, "v0")},
			TokenUpdate{Put: []SharedToken{tok(graph, 0, "g1")}}, []string{"g1", "v0"}},
		{"an older token never replaces a newer one (a result applied again after a race)", StatusActive,
			[]SharedToken{tok(graph, -time.Minute, "g-other-instance")},
			TokenUpdate{Put: []SharedToken{tok(graph, -10*time.Minute, "g-mine")}}, []string{"g-other-instance"}},
		{"a refused token goes", StatusActive, []SharedToken{tok(graph, -10*time.Minute, "g0"), tok(vault, -10*time.Minute, "v0")},
			TokenUpdate{Drop: []SharedToken{tok(graph, -10*time.Minute, "")}}, []string{"v0"}},
		{"a refusal does not drop a newer token", StatusActive, []SharedToken{tok(graph, -time.Minute, "g-newer")},
			TokenUpdate{Drop: []SharedToken{tok(graph, -10*time.Minute, "")}}, []string{"g-newer"}},
		{"expired tokens go", StatusActive, []SharedToken{tok(graph, -2*time.Hour, "g-expired"), tok(vault, -time.Minute, "v0")},
			TokenUpdate{}, []string{"v0"}},
		{"an expired token is not put", StatusActive, nil,
			TokenUpdate{Put: []SharedToken{tok(graph, -2*time.Hour, "g-expired")}}, nil},
		{"a disabled tenant keeps none", StatusDisabled, []SharedToken{tok(graph, 0, "g0")},
			TokenUpdate{Put: []SharedToken{tok(vault, 0, "v1")}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := Record{Status: tc.status, Tokens: slices.Clone(tc.stored)}
			MergeTokens(&rec, tc.u, now)
			var got []string
			for _, st := range rec.Tokens {
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
	rec := Record{Tokens: []SharedToken{{IssuedAt: now.Add(-10 * time.Minute)}, {IssuedAt: now.Add(-25 * time.Minute)}}}
	if due, n := rec.TokensDue(30 * time.Minute); !due.Equal(now.Add(5*time.Minute)) || n != 2 {
		t.Errorf("due %v, %d tokens", due, n)
	}
	if due, n := (Record{}).TokensDue(30 * time.Minute); !due.IsZero() || n != 0 {
		t.Errorf("no tokens: due %v, %d", due, n)
	}
}
