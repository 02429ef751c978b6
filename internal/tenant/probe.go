package tenant

import (
	"context"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// Prober does the per-tenant work: sign in, read Graph, read each secret's
// metadata. The sweep and onboarding verification share it, so both speak the
// same outcome vocabulary.
type Prober struct {
	Access  Access
	Advisor Advisor
	// ExpiryWarning flags secrets that expire within it.
	ExpiryWarning time.Duration
	Now           func() time.Time
}

// Probe works in one tenant and reports what happened. The tenant's outcome
// is the first failure in the order of the seed's steps: sign-in, Graph, then
// each secret. A failed sign-in stops the probe; later steps are all tried so
// that one report shows everything the customer still owes.
func (p *Prober) Probe(ctx context.Context, rec Record) SweepResult {
	start := p.Now()
	res := SweepResult{At: start, Outcome: outcome.OK}
	var first error
	var firstSubject Subject
	fail := func(err error, s Subject) {
		if first == nil {
			first, firstSubject = err, s
		}
	}

	if err := p.Access.SignIn(ctx, rec.TenantID); err != nil {
		fail(err, Subject{TenantID: rec.TenantID})
	} else {
		if rec.Graph {
			info, err := p.Access.Organization(ctx, rec.TenantID)
			if err != nil {
				fail(err, Subject{TenantID: rec.TenantID})
			} else {
				res.Graph = &info
			}
		}
		for _, kv := range rec.KeyVaults {
			for _, name := range kv.Secrets {
				st := p.secret(ctx, rec.TenantID, kv.VaultURL, name, start)
				if st.err != nil {
					fail(st.err, Subject{TenantID: rec.TenantID, VaultURL: kv.VaultURL, Secret: name})
				}
				res.KeyVault = append(res.KeyVault, st.SecretStatus)
			}
		}
	}

	if first != nil {
		res.Outcome = outcome.Of(first)
		res.Message = p.message(first, firstSubject)
	}
	res.DurationMs = p.Now().Sub(start).Milliseconds()
	return res
}

type secretResult struct {
	SecretStatus
	err error
}

func (p *Prober) secret(ctx context.Context, tenantID, vaultURL, name string, now time.Time) secretResult {
	st := SecretStatus{VaultURL: vaultURL, Secret: name, Outcome: outcome.OK}
	meta, err := p.Access.Secret(ctx, tenantID, vaultURL, name)
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
func (p *Prober) message(err error, s Subject) string {
	msg := p.Advisor.Advise(outcome.Of(err), s).Message
	if d := outcome.Detail(err); d != "" && d != msg {
		msg += " (" + d + ")"
	}
	return msg
}

// Verify probes the tenant and turns the result into the verification that
// onboarding reports: the outcome, the seed step still owed, and the fix.
func (p *Prober) Verify(ctx context.Context, rec Record) Verification {
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
	return v
}
