package tenant

import (
	"context"
	"time"
)

// SecretMeta is a Key Vault secret's metadata; the value is never part of it.
type SecretMeta struct {
	Version   string
	Enabled   *bool
	ExpiresOn *time.Time
}

// Access is the app's reach into one customer tenant. Implementations sign in
// to that tenant only (never the common endpoints), send its tokens only to
// hosts of the configured cloud, and return *outcome.Error for every fault they
// recognise (sign-in codes, Graph 403, Key Vault 403/404, throttling).
type Access interface {
	// SignIn obtains (or reuses) a token in the tenant.
	SignIn(ctx context.Context, tenantID string) error
	// Organization reads the tenant's display name and its number of users.
	Organization(ctx context.Context, tenantID string) (GraphInfo, error)
	// Secret reads a secret's metadata from a vault of the tenant.
	Secret(ctx context.Context, tenantID, vaultURL, name string) (SecretMeta, error)
	// Forget drops what is cached for the tenant (its credential and clients).
	Forget(tenantID string)
}
