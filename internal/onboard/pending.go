package onboard

import (
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// PropagationWindow is how long after onboarding a missing service principal
// is reported as still propagating: Entra ID can take minutes to make a new
// service principal (seed step 3, or admin consent) usable for sign-in.
const PropagationWindow = time.Hour

// MarkPending rewrites an app_not_in_tenant verification made within
// PropagationWindow of onboardedAt as pending seed step 3. The outcome code is
// kept, so the stored vocabulary does not grow; the Verifier's remediation is
// kept too, as the step may really not have been done.
func MarkPending(v tenant.Verification, onboardedAt, now time.Time) tenant.Verification {
	if v.Outcome != outcome.AppNotInTenant || onboardedAt.IsZero() || !now.Before(onboardedAt.Add(PropagationWindow)) {
		return v
	}
	v.Step = "3"
	v.Message = "pending: the app's service principal was not found in the tenant yet. " +
		"It may still be propagating, which can take several minutes after the tenant's admin adds the app " +
		"or grants admin consent; register the tenant again later to re-check."
	if v.Remediation == "" {
		v.Remediation = "If no admin has added the app yet, an administrator of the tenant must add it " +
			"(az login --tenant <tenant id> --allow-no-subscriptions, then az ad sp create --id <app id>) or grant admin consent."
	}
	return v
}
