package tenant

import (
	"context"
	"sync"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// SecretMeta is a Key Vault secret's metadata; the value is never part of it.
type SecretMeta struct {
	Version   string
	Enabled   *bool
	ExpiresOn *time.Time
}

// The Prober's reach into a tenant is three small interfaces over C, the
// tenant's credential: signing in hands it out once, and the reads use it.
// The adapters satisfy them with C = azcore.TokenCredential; this package
// never looks inside a C. Every fault an implementation recognises is an
// *outcome.Error; a cancellation is returned as is.
type (
	// Signer signs in to one tenant (never a shared endpoint) and returns the
	// credential the reads then use. keyVault says that Key Vault reads
	// follow, so that the signer gets that token too, at the same time as
	// the sign-in's (a cold tenant then costs two round trips, not three).
	// *azauth.Tenants is one.
	Signer[C any] interface {
		SignIn(ctx context.Context, tenantID string, keyVault bool) (C, error)
	}
	// Directory reads the tenant's display name and number of users from
	// Microsoft Graph. *graph.Reader is one.
	Directory[C any] interface {
		Organization(ctx context.Context, cred C) (GraphInfo, error)
	}
	// Vaults reads a secret's metadata from a vault of the tenant, sending
	// the tenant's tokens to that vault's host only. *keyvault.Reader is one.
	Vaults[C any] interface {
		Secret(ctx context.Context, tenantID, vaultURL, name string, cred C) (SecretMeta, error)
	}
)

// Prober does the per-tenant work: sign in, read Graph, read each secret's
// metadata. The sweep and onboarding verification share it, so both speak the
// same outcome vocabulary.
type Prober[C any] struct {
	SignIn    Signer[C]
	Directory Directory[C]
	Vaults    Vaults[C]
	Advisor   Advisor
	// ExpiryWarning flags secrets that expire within it.
	ExpiryWarning time.Duration
	Now           func() time.Time
}

// Probe works in one tenant and reports what happened. The tenant's outcome
// is the first failure in the order of the seed's steps: sign-in, Graph, then
// each secret. A failed sign-in stops the probe; later steps are all tried so
// that one report shows everything the customer still owes.
//
// After the sign-in, Graph and every secret are read at once (at most
// maxParallelReads at a time), so a warm tenant costs one round trip
// whatever it registered; the results keep the registration's order.
func (p *Prober[C]) Probe(ctx context.Context, rec Record) SweepResult {
	start := p.Now()
	res := SweepResult{At: start, Outcome: outcome.OK}
	var first error
	var firstSubject Subject
	fail := func(err error, s Subject) {
		if first == nil {
			first, firstSubject = err, s
		}
	}

	type read struct{ vaultURL, name string }
	var reads []read
	for _, kv := range rec.KeyVaults {
		for _, name := range kv.Secrets {
			reads = append(reads, read{kv.VaultURL, name})
		}
	}
	if cred, err := p.SignIn.SignIn(ctx, rec.TenantID, len(reads) > 0); err != nil {
		fail(err, Subject{TenantID: rec.TenantID})
	} else {
		var (
			info     GraphInfo
			graphErr error
			secrets  = make([]secretResult, len(reads))
			g        group
		)
		if rec.Graph {
			g.Go(func() { info, graphErr = p.Directory.Organization(ctx, cred) })
		}
		for i, rd := range reads {
			g.Go(func() { secrets[i] = p.secret(ctx, cred, rec.TenantID, rd.vaultURL, rd.name, start) })
		}
		g.Wait()
		if rec.Graph {
			if graphErr != nil {
				fail(graphErr, Subject{TenantID: rec.TenantID})
			} else {
				res.Graph = &info
			}
		}
		for i, st := range secrets {
			if st.err != nil {
				fail(st.err, Subject{TenantID: rec.TenantID, VaultURL: reads[i].vaultURL, Secret: reads[i].name})
			}
			res.KeyVault = append(res.KeyVault, st.SecretStatus)
		}
	}

	if first != nil {
		res.Outcome = outcome.Of(first)
		res.Message = p.message(first, firstSubject)
		adv := p.Advisor.Advise(res.Outcome, firstSubject)
		res.Step, res.Remediation = adv.Step, adv.Remediation
	}
	res.DurationMs = p.Now().Sub(start).Milliseconds()
	return res
}

// maxParallelReads bounds one tenant's concurrent reads (a registration may
// hold hundreds of secrets), so that the sweep's concurrency stays the
// bound of the whole process's work.
const maxParallelReads = 16

// group runs a tenant's reads at once, at most maxParallelReads at a time.
// A panic in a read is raised again in Wait's goroutine, where the sweep's
// recovery (internal_error for that tenant) sees it, instead of ending the
// process.
type group struct {
	wg    sync.WaitGroup
	sem   chan struct{}
	mu    sync.Mutex
	panic any
}

func (g *group) Go(f func()) {
	if g.sem == nil {
		g.sem = make(chan struct{}, maxParallelReads)
	}
	g.sem <- struct{}{}
	g.wg.Go(func() {
		defer func() {
			<-g.sem
			if v := recover(); v != nil {
				g.mu.Lock()
				if g.panic == nil {
					g.panic = v
				}
				g.mu.Unlock()
			}
		}()
		f()
	})
}

func (g *group) Wait() {
	g.wg.Wait()
	if g.panic != nil {
		panic(g.panic)
	}
}

type secretResult struct {
	SecretStatus
	err error
}

func (p *Prober[C]) secret(ctx context.Context, cred C, tenantID, vaultURL, name string, now time.Time) secretResult {
	st := SecretStatus{VaultURL: vaultURL, Secret: name, Outcome: outcome.OK}
	meta, err := p.Vaults.Secret(ctx, tenantID, vaultURL, name, cred)
	if err != nil {
		st.Outcome = outcome.Of(err)
		st.OutcomeDetail = outcome.Detail(err)
		return secretResult{st, err}
	}
	st.Version, st.Enabled, st.ExpiresOn = meta.Version, meta.Enabled, meta.ExpiresOn
	st.ExpiresSoon = meta.ExpiresOn != nil && meta.ExpiresOn.Before(now.Add(p.ExpiryWarning))
	return secretResult{st, nil}
}

// message is the customer-facing sentence for a failure: the advice for its
// outcome, with the adapter's safe detail (an AADSTS code, say) appended.
func (p *Prober[C]) message(err error, s Subject) string {
	msg := p.Advisor.Advise(outcome.Of(err), s).Message
	if d := outcome.Detail(err); d != "" && d != msg {
		msg += " (" + d + ")"
	}
	return msg
}

// Verify probes the tenant and turns the result into the verification that
// onboarding reports: the outcome, the seed step still owed, and the fix.
func (p *Prober[C]) Verify(ctx context.Context, rec Record) Verification {
	res := p.Probe(ctx, rec)
	v := Verification{Outcome: res.Outcome, Message: res.Message, At: res.At}
	s := Subject{TenantID: rec.TenantID}
	for _, st := range res.KeyVault {
		if st.Outcome == res.Outcome && st.Outcome != outcome.OK {
			s.VaultURL, s.Secret = st.VaultURL, st.Secret
			break
		}
	}
	adv := p.Advisor.Advise(res.Outcome, s)
	v.Step, v.Remediation = adv.Step, adv.Remediation
	if v.Message == "" {
		v.Message = adv.Message
	}
	return p.Advisor.MarkPending(v, rec.OnboardedAt, res.At)
}
