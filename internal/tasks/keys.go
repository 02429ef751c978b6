package tasks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/task"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// KeyProver proves that the app can use a key of a vault of the tenant:
// it reads the key and has the vault unwrap a fresh value wrapped with it,
// sending the tenant's tokens to that vault's host only. Its errors and the
// KeyCheck's are *outcome.Error for the vault's answers. *keyvault.Reader
// is one.
type KeyProver interface {
	Key(ctx context.Context, tenantID, vaultURL, name string, cred azcore.TokenCredential) (tenant.KeyCheck, error)
}

// Keys proves, in every sweep and in onboarding verification, that the app
// can use each key the tenant registered as a customer-managed key: the
// seed's own example ("encrypt their content using a key in their
// keyvault"), and what Azure Storage, SQL and Cosmos DB do with a
// cross-tenant key. A key that goes away is reported within one sweep
// (Azure SQL makes a database inaccessible about 10 minutes after losing
// its key, and heals by itself only when access returns within 30). Its
// results are lastSweep.keys, one per key.
type Keys struct {
	Vaults KeyProver
	// ExpiryWarning flags keys that expire within it.
	ExpiryWarning time.Duration
	Now           func() time.Time
	// Advisor gives each failing key its step and remediation, for the
	// line that tells its change (tenant.Record.StatusChanges).
	Advisor tenant.Advisor
}

// KeysName is the keys task's name.
const KeysName = tenant.KeysTask

// About declares the role the customer's vault owner grants the app on
// each key: what Azure services are granted for a customer-managed key.
func (Keys) About() task.About {
	return task.About{Name: KeysName, Roles: []string{tenant.KeyRole}, Verify: true}
}

// Needs: a Key Vault token, in a tenant that registered keys.
func (Keys) Needs(rec tenant.Record) (task.Needs, bool) {
	for _, kv := range rec.KeyVaults {
		if len(kv.Keys) > 0 {
			return task.Needs{KeyVault: true}, true
		}
	}
	return task.Needs{}, false
}

// KeysBody is what the task found: each key's status, in registration
// order.
type KeysBody struct {
	Keys []tenant.KeyStatus
}

// Record keeps the body in lastSweep.keys.
func (Keys) Record(res *tenant.SweepResult, body any) {
	if b, ok := body.(KeysBody); ok {
		res.Keys = b.Keys
	}
}

// Run proves every key at once (at most maxParallelReads at a time), each
// in one round trip when warm, so that the task adds no round trip to a
// warm tenant. Every key is tried, so that one report shows all that the
// customer owes; the error is the first failing key in registration order,
// marked with its vault and name.
func (k Keys) Run(ctx context.Context, t *task.Tenant) (any, error) {
	type read struct{ vaultURL, name string }
	var reads []read
	for _, kv := range t.Record.KeyVaults {
		for _, name := range kv.Keys {
			reads = append(reads, read{kv.VaultURL, name})
		}
	}
	now := k.now()
	var (
		statuses = make([]tenant.KeyStatus, len(reads))
		errs     = make([]error, len(reads))
		g        group
	)
	for i, rd := range reads {
		g.Go(func() { statuses[i], errs[i] = k.key(ctx, t, rd.vaultURL, rd.name, now) })
	}
	g.Wait()
	var first error
	for _, err := range errs {
		if err != nil {
			first = err
			break
		}
	}
	return KeysBody{Keys: statuses}, first
}

func (k Keys) now() time.Time {
	if k.Now == nil {
		return time.Now()
	}
	return k.Now()
}

// key proves one key and judges what the vault answered.
func (k Keys) key(ctx context.Context, t *task.Tenant, vaultURL, name string, now time.Time) (tenant.KeyStatus, error) {
	st := tenant.KeyStatus{VaultURL: vaultURL, Key: name, Outcome: outcome.OK}
	check, err := k.Vaults.Key(ctx, t.Record.TenantID, vaultURL, name, t.Credential)
	if err == nil {
		st.Version, st.Enabled, st.ExpiresOn = check.Version, check.Enabled, check.ExpiresOn
		st.ExpiresSoon = check.ExpiresOn != nil && check.ExpiresOn.Before(now.Add(k.ExpiryWarning))
		if check.RecoveryLevel != "" {
			// Purge protection is what keeps a deleted key recoverable
			// through its retention; Azure SQL and Storage require it.
			on := !strings.Contains(check.RecoveryLevel, "Purgeable")
			st.PurgeProtection = &on
		}
		err = verdict(check, now)
	}
	if err != nil {
		st.Outcome, st.OutcomeDetail = outcome.Of(err), outcome.Detail(err)
		s := tenant.SubjectOf(err, t.Record.TenantID)
		s.VaultURL, s.Key = vaultURL, name
		adv := k.Advisor.Advise(st.Outcome, s)
		st.Step, st.Remediation = adv.Step, adv.Remediation
		return st, tenant.About(err, s)
	}
	return st, nil
}

// verdict judges a key the vault read, in the order that tells the customer
// most: what the attributes say (the service's own refusals follow from
// them), then the vault's refusals, then the proof itself.
func verdict(c tenant.KeyCheck, now time.Time) error {
	switch {
	case c.Enabled != nil && !*c.Enabled:
		return outcome.New(outcome.KeyDisabled, "the key's current version is disabled (enabled: false)", nil)
	case c.ExpiresOn != nil && !now.Before(*c.ExpiresOn):
		return outcome.New(outcome.KeyExpired, fmt.Sprintf("the key expired on %s: Key Vault still unwraps with it but refuses to wrap", c.ExpiresOn.UTC().Format(time.DateOnly)), nil)
	case c.Kty != "RSA" && c.Kty != "RSA-HSM":
		return outcome.New(outcome.KeyUnusable, fmt.Sprintf("the key's type is %s, not RSA: it cannot wrap with RSA-OAEP-256", orUnknown(c.Kty)), nil)
	case c.KeyOps != nil && (!slices.Contains(c.KeyOps, "wrapKey") || !slices.Contains(c.KeyOps, "unwrapKey")):
		return outcome.New(outcome.KeyUnusable, fmt.Sprintf("the key's permitted operations (key_ops: %s) do not include both wrapKey and unwrapKey", strings.Join(c.KeyOps, ", ")), nil)
	case c.NotBefore != nil && now.Before(*c.NotBefore):
		return outcome.New(outcome.KeyUnusable, fmt.Sprintf("the key is not valid before %s", c.NotBefore.UTC().Format(time.RFC3339)), nil)
	case c.WrapErr != nil:
		return c.WrapErr
	case c.UnwrapErr != nil:
		return c.UnwrapErr
	case c.Mismatch:
		return outcome.New(outcome.KeyUnusable, "the vault unwrapped a value wrapped with the key to a different value", nil)
	case !c.Unwrapped:
		return outcome.New(outcome.UpstreamError, "the vault's unwrap with the key could not be proven", nil)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
