package tenant

import (
	"slices"
	"strings"
	"time"
)

// Shared is what the fleet shares through a tenant's row about signing in
// there, so that every instance does what one instance learned once: the
// tenant's access tokens, sealed, and the hosts of its vaults whose Key
// Vault challenge named the tenant. The API never shows it.
type Shared struct {
	Tokens []SharedToken
	// Vaults are hosts of the tenant's registered vaults known to belong to
	// the tenant (their 401 challenge named it): its token goes to them
	// without asking again.
	Vaults []string
}

// SharedToken is one of a tenant's access tokens as the fleet shares it:
// sealed (encrypted, and bound to the tenant, the resource and these times)
// by the instance that got it, so that every instance holding the key uses
// it while it is fresh instead of signing in again. Resource and the times
// are in the clear, so that the registry keeps the newest and the planner
// can tell when a tenant signs in again; the token itself never is.
type SharedToken struct {
	// Resource is the token's audience as its scope names it, without
	// "/.default", in lower case: "https://graph.microsoft.com".
	Resource string `json:"r"`
	// IssuedAt is the token's iat (Entra ID's clock); ExpiresOn its expiry.
	IssuedAt  time.Time `json:"iat"`
	ExpiresOn time.Time `json:"exp"`
	// Key identifies the key that sealed it.
	Key string `json:"k"`
	// Sealed is the encrypted token. A record listed for planning has the
	// rest without it.
	Sealed string `json:"-"`
}

// SharedUpdate is what a run of a tenant's tasks leaves for the fleet.
type SharedUpdate struct {
	// Put are the tokens it requested, sealed.
	Put []SharedToken
	// Drop are tokens whose grants were refused (Graph's consent, say): the
	// registry forgets its token of the resource unless it is newer.
	Drop []SharedToken
	// Vaults are vault hosts it found to be the tenant's; NotVaults hosts
	// it found not to be (their challenge named another tenant).
	Vaults, NotVaults []string
}

// Empty reports whether u changes nothing.
func (u SharedUpdate) Empty() bool {
	return len(u.Put) == 0 && len(u.Drop) == 0 && len(u.Vaults) == 0 && len(u.NotVaults) == 0
}

// MergeShared applies u to what the tenant's row shares: a token replaces
// the one of its resource unless that one is newer (so that a result
// applied again after losing a race to another instance never puts back an
// older token), a dropped one goes unless the stored one is newer, tokens
// expired by now go, and the known vaults are those found to be the
// tenant's, among the vaults it registers now. A tenant that is not active
// shares nothing.
func MergeShared(rec *Record, u SharedUpdate, now time.Time) {
	if !rec.Active() {
		rec.Shared = Shared{}
		return
	}
	out := slices.DeleteFunc(slices.Clone(rec.Shared.Tokens), func(st SharedToken) bool { return !now.Before(st.ExpiresOn) })
	for _, put := range u.Put {
		if !now.Before(put.ExpiresOn) {
			continue
		}
		i := slices.IndexFunc(out, func(st SharedToken) bool { return strings.EqualFold(st.Resource, put.Resource) })
		switch {
		case i < 0:
			out = append(out, put)
		case out[i].IssuedAt.Before(put.IssuedAt):
			out[i] = put
		}
	}
	for _, drop := range u.Drop {
		out = slices.DeleteFunc(out, func(st SharedToken) bool {
			return strings.EqualFold(st.Resource, drop.Resource) && !st.IssuedAt.After(drop.IssuedAt)
		})
	}
	if len(out) == 0 {
		out = nil
	}
	rec.Shared.Tokens = out

	var vaults []string
	for _, h := range append(slices.Clone(rec.Shared.Vaults), u.Vaults...) {
		h = strings.ToLower(h)
		if !slices.Contains(vaults, h) && !slices.ContainsFunc(u.NotVaults, func(n string) bool { return strings.EqualFold(n, h) }) &&
			rec.registersVault(h) {
			vaults = append(vaults, h)
		}
	}
	rec.Shared.Vaults = vaults
}

// registersVault reports whether one of the tenant's vault URLs is on host.
func (r Record) registersVault(host string) bool {
	for _, kv := range r.KeyVaults {
		u := strings.TrimPrefix(strings.ToLower(kv.VaultURL), "https://")
		if h, _, _ := strings.Cut(u, "/"); h == host {
			return true
		}
	}
	return false
}

// TokensDue is when the tenant's shared tokens stop being fresh (the oldest
// one's IssuedAt plus freshness), and how many it shares; a zero time when
// it shares none: it signs in on its next sweep.
func (r Record) TokensDue(freshness time.Duration) (due time.Time, n int) {
	for _, st := range r.Shared.Tokens {
		if at := st.IssuedAt.Add(freshness); due.IsZero() || at.Before(due) {
			due = at
		}
	}
	return due, len(r.Shared.Tokens)
}
