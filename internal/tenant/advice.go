package tenant

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// Advice tells who must do what about an outcome, in the terms of the seed's
// onboarding steps (3: add the app to the tenant, 4: admin consent, 5: grant a
// role on the vault).
type Advice struct {
	Step        string
	Message     string
	Remediation string
}

// Advisor fills the app id and cloud into the remediation of each outcome.
type Advisor struct {
	AppID string
	Cloud cloud.Cloud
}

// Subject names what an outcome is about; only the fields that apply are set.
type Subject struct {
	TenantID string
	VaultURL string
	Secret   string
	// Resource is the host of another Azure resource a task used, and
	// Roles the roles the task's declaration says the customer grants.
	Resource string
	Roles    []string
	// Key is a Key Vault key in VaultURL (the keys task); Firewall says the
	// vault's firewall, not its roles, refused the app.
	Key      string
	Firewall bool
}

// subjectError carries what a failure is about, so that its advice can
// name the vault or secret to fix.
type subjectError struct {
	s   Subject
	err error
}

func (e *subjectError) Error() string { return e.err.Error() }
func (e *subjectError) Unwrap() error { return e.err }

// About returns err marked as being about s; nil stays nil. The mark does
// not change how err is classified.
func About(err error, s Subject) error {
	if err == nil {
		return nil
	}
	return &subjectError{s: s, err: err}
}

// SubjectOf is what About marked err as being about, with tenantID filled
// in when the mark has none.
func SubjectOf(err error, tenantID string) Subject {
	var se *subjectError
	s := Subject{TenantID: tenantID}
	if errors.As(err, &se) {
		s = se.s
		if s.TenantID == "" {
			s.TenantID = tenantID
		}
	}
	return s
}

// Advise describes code for the given subject.
func (a Advisor) Advise(code outcome.Code, s Subject) Advice {
	switch code {
	case outcome.OK:
		return Advice{Message: "all onboarding steps are complete"}
	case outcome.AppNotInTenant:
		return Advice{
			Step:    "3",
			Message: fmt.Sprintf("the app %s has no service principal in tenant %s: the customer has not added it yet", a.AppID, s.TenantID),
			Remediation: fmt.Sprintf("A tenant admin runs: az login --tenant %s --allow-no-subscriptions && az ad sp create --id %s",
				s.TenantID, a.AppID),
		}
	case outcome.AppDisabled:
		return Advice{
			Step:    "3",
			Message: fmt.Sprintf("the app %s is disabled in tenant %s: its enterprise application does not let it sign in", a.AppID, s.TenantID),
			Remediation: fmt.Sprintf("A tenant admin enables it again: az login --tenant %s --allow-no-subscriptions && az ad sp update --id %s --set accountEnabled=true (or Microsoft Entra admin center > Enterprise applications > application id %s > Properties > Enabled for users to sign-in: Yes)",
				s.TenantID, a.AppID, a.AppID),
		}
	case outcome.BlockedByPolicy:
		// Which kind of policy is in the message (the sign-in's detail);
		// its name is in the sign-in logs only, never guessed here.
		return Advice{
			Step:    StepPolicy,
			Message: fmt.Sprintf("a policy blocked the app %s's sign-in to tenant %s", a.AppID, s.TenantID),
			Remediation: fmt.Sprintf("Who acts depends on the policy the message names. Conditional Access (a policy for workload identities, or a security policy): "+
				"a Conditional Access administrator of tenant %s finds the policy in Microsoft Entra admin center > Monitoring & health > Sign-in logs > Service principal sign-ins (application id %s, its Conditional Access tab) "+
				"and excludes the app or allows where it signs in from. Tenant restrictions: the administrator of the network or device the app signs in from "+
				"(the app's operator, not the customer) allows tenant %s in that tenant restrictions policy (cross-tenant access settings), or the app signs in from a network without it.",
				s.TenantID, a.AppID, s.TenantID),
		}
	case outcome.TenantNotFound:
		return Advice{
			Step:    "onboarding",
			Message: fmt.Sprintf("no Microsoft Entra tenant %s can be signed in to in %s: it does not exist (a typo), was deleted or deactivated%s", s.TenantID, a.Cloud.Name, unseenFrom(a.Cloud)),
			Remediation: fmt.Sprintf("Check the tenant id (Microsoft Entra admin center > Overview > Tenant ID) and onboard again with the right one; offboard a deleted tenant (DELETE /api/tenants/%s). "+
				"A tenant blocked for inactivity can be reactivated by its admin through Microsoft support within 20 days.", s.TenantID),
		}
	case outcome.WrongCloud:
		return Advice{
			Step:    "onboarding",
			Message: fmt.Sprintf("tenant %s lives in another Microsoft cloud than this deployment's (%s): the app cannot sign in to it from here", s.TenantID, a.Cloud.Name),
			Remediation: fmt.Sprintf("Offboard it here (DELETE /api/tenants/%s) and onboard it with a deployment of the tenant's cloud "+
				"(AZURE_CLOUD AzureUSGovernment for a US Government tenant, AzureChina for one operated by 21Vianet).", s.TenantID),
		}
	case outcome.ResourceNotInTenant:
		if s.VaultURL != "" {
			return Advice{
				Step:    "5",
				Message: fmt.Sprintf("tenant %s has no service principal for Azure Key Vault, so no Key Vault token can be issued there for vault %s", s.TenantID, s.VaultURL),
				Remediation: fmt.Sprintf("Register a vault of a subscription of tenant %s; if the vault is one, a tenant admin adds Azure Key Vault to the tenant: az login --tenant %s --allow-no-subscriptions && az ad sp create --id %s",
					s.TenantID, s.TenantID, keyVaultAppID),
			}
		}
		return Advice{
			Step:        "4",
			Message:     fmt.Sprintf("tenant %s has no service principal for Microsoft Graph", s.TenantID),
			Remediation: fmt.Sprintf("A tenant admin adds Microsoft Graph to the tenant: az login --tenant %s --allow-no-subscriptions && az ad sp create --id %s", s.TenantID, graphAppID),
		}
	case outcome.AppCredentialInvalid:
		return Advice{
			Step:        "1",
			Message:     "the app's own credential was rejected: this is the app developer's side, not the customer's",
			Remediation: "The app's developer rotates the client secret or certificate (docs/operations.md, 'Rotating the app's credential with no downtime').",
		}
	case outcome.GraphConsentMissing:
		return Advice{
			Step:    "4",
			Message: fmt.Sprintf("the app %s has no admin consent for its Microsoft Graph application permissions in tenant %s", a.AppID, s.TenantID),
			Remediation: fmt.Sprintf("A tenant admin grants admin consent: Microsoft Entra admin center > Enterprise applications > application id %s > Permissions > Grant admin consent, or opens %s",
				a.AppID, a.AdminConsentURL(s.TenantID)),
		}
	case outcome.GraphPermissionMissing:
		return Advice{
			Step:    "4",
			Message: fmt.Sprintf("the app %s needs Microsoft Graph application permissions that tenant %s has not granted: the app gained them after the tenant's admin consented", a.AppID, s.TenantID),
			Remediation: fmt.Sprintf("A tenant admin grants admin consent again, which covers the app's current permissions: opens %s, or Microsoft Entra admin center > Enterprise applications > application id %s > Permissions > Grant admin consent",
				a.AdminConsentURL(s.TenantID), a.AppID),
		}
	case outcome.KeyVaultAccessDenied, outcome.KeyNotFound, outcome.KeyDisabled, outcome.KeyExpired, outcome.KeyUnusable:
		if code != outcome.KeyVaultAccessDenied || s.Key != "" {
			return a.adviseKey(code, s)
		}
		vault := vaultName(s.VaultURL)
		return Advice{
			Step:    "5",
			Message: fmt.Sprintf("the app %s may not read secrets in vault %s", a.AppID, s.VaultURL),
			Remediation: fmt.Sprintf("The vault's owner grants the app's service principal the Key Vault Secrets User role: az role assignment create --role \"Key Vault Secrets User\" --assignee %s --scope $(az keyvault show --name %s --query id -o tsv)",
				a.AppID, vault),
		}
	case outcome.SecretNotFound:
		return Advice{
			Step:        "5",
			Message:     fmt.Sprintf("secret %q does not exist in vault %s", s.Secret, s.VaultURL),
			Remediation: fmt.Sprintf("Create the secret (az keyvault secret set --vault-name %s --name %s --value ...) or onboard again with the right secret names.", vaultName(s.VaultURL), s.Secret),
		}
	case outcome.AccessDenied:
		role := "the role the task needs"
		if len(s.Roles) > 0 {
			role = strings.Join(s.Roles, " or ")
		}
		return Advice{
			Step:    "5",
			Message: fmt.Sprintf("the app %s may not use %s in tenant %s", a.AppID, orResource(s.Resource), s.TenantID),
			Remediation: fmt.Sprintf("The resource's owner grants the app's service principal %s on it: az role assignment create --role %q --assignee %s --scope <the resource's id>",
				role, firstOr(s.Roles, "<role>"), a.AppID),
		}
	case outcome.ResourceNotFound:
		return Advice{
			Step:        "5",
			Message:     fmt.Sprintf("%s in tenant %s does not have what the app reads there", orResource(s.Resource), s.TenantID),
			Remediation: "Check that the resource exists, or onboard again with the right names.",
		}
	case outcome.Throttled:
		return Advice{Message: "Microsoft Graph or Key Vault throttled the app past its retry budget", Remediation: "Nothing to do: the tenant is retried on the next sweep."}
	case outcome.Timeout:
		return Advice{Message: "the tenant did not answer within its time budget", Remediation: "Nothing to do unless it persists: the tenant is retried on the next sweep."}
	case outcome.InternalError:
		return Advice{Message: "tenantsweep failed on this tenant (a bug, logged with the tenant id)", Remediation: "The app's developer reads the logs for this tenant id."}
	default:
		return Advice{Message: "an Azure service failed or could not be reached", Remediation: "Nothing to do unless it persists: the tenant is retried on the next sweep."}
	}
}

// StepPolicy is the step of a sign-in that a policy blocked: not one of the
// seed's steps, which predate Conditional Access for workload identities and
// tenant restrictions.
const StepPolicy = "policy"

// The application ids of the first-party resources the app asks tokens
// for, the same in every cloud.
const (
	keyVaultAppID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093" // Azure Key Vault
	graphAppID    = "00000003-0000-0000-c000-000000000000" // Microsoft Graph
)

// unseenFrom is the note, for a tenant cl does not find, that it may be
// one cl cannot see.
func unseenFrom(cl cloud.Cloud) string {
	if u := cl.Unseen(); u != "" {
		return " (" + u + " is not visible from " + cl.Name + " either)"
	}
	return ""
}

// PropagationWindow is how long after onboarding a missing service principal
// is reported as still propagating: Entra ID can take minutes to make a new
// service principal (seed step 3, or admin consent) usable for sign-in.
const PropagationWindow = time.Hour

// MarkPending rewrites an app_not_in_tenant verification made within
// PropagationWindow of onboardedAt as pending seed step 3. The outcome code is
// kept, so the stored vocabulary does not grow; the remediation is kept too,
// as the step may really not have been done.
func (a Advisor) MarkPending(v Verification, onboardedAt, now time.Time) Verification {
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

// AdminConsentURL is where a tenant admin grants the app's Graph permissions
// (seed step 4) without a redirect back to the app.
func (a Advisor) AdminConsentURL(tenantID string) string {
	q := url.Values{"client_id": {a.AppID}}
	return a.Cloud.AuthorityHost + url.PathEscape(tenantID) + "/adminconsent?" + q.Encode()
}

func orResource(host string) string {
	if host == "" {
		return "a resource"
	}
	return host
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

func vaultName(vaultURL string) string {
	u, err := url.Parse(vaultURL)
	if err != nil {
		return vaultURL
	}
	name, _, _ := strings.Cut(u.Hostname(), ".")
	return name
}
