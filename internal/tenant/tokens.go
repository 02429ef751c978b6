package tenant

import (
	"slices"
	"strings"
	"time"
)

// SharedToken is one of a tenant's access tokens as the fleet shares it
// through the registry: sealed (encrypted, and bound to the tenant, the
// resource and these times) by the instance that got it, so that every
// instance holding the key uses it while it is fresh instead of signing in
// again. Resource and the times are in the clear, so that the registry
// keeps the newest and the planner can tell when a tenant signs in again;
// the token itself never is. The API never shows it.
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

// TokenUpdate is what a run of a tenant's tasks leaves for the fleet: the
// tokens it requested, sealed, and those it found refused, which must not be
// used again.
type TokenUpdate struct {
	Put []SharedToken
	// Drop are tokens whose grants were refused (Graph's consent, say): the
	// registry forgets its token of the resource unless it is newer.
	Drop []SharedToken
}

// Empty reports whether u changes nothing.
func (u TokenUpdate) Empty() bool { return len(u.Put) == 0 && len(u.Drop) == 0 }

// MergeTokens applies u to the tenant's shared tokens: a token replaces
// the one of its resource unless that one is newer (so that a result
// applied again after losing a race to another instance never puts back an
// older token), a dropped one goes unless the stored one is newer, and
// tokens expired by now go. A tenant that is not active keeps none.
func MergeTokens(rec *Record, u TokenUpdate, now time.Time) {
	if !rec.Active() {
		rec.Tokens = nil
		return
	}
	out := slices.DeleteFunc(slices.Clone(rec.Tokens), func(st SharedToken) bool { return !now.Before(st.ExpiresOn) })
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
	rec.Tokens = out
}

// TokensDue is when the tenant's shared tokens stop being fresh (the oldest
// one's IssuedAt plus freshness), and how many it shares; a zero time when
// it shares none: it signs in on its next sweep.
func (r Record) TokensDue(freshness time.Duration) (due time.Time, n int) {
	for _, st := range r.Tokens {
		if at := st.IssuedAt.Add(freshness); due.IsZero() || at.Before(due) {
			due = at
		}
	}
	return due, len(r.Tokens)
}
