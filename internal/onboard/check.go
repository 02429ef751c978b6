package onboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// HomeReader reads what Microsoft Entra ID says of a tenant before any
// sign-in: its OpenID metadata, which needs no credential. Its errors are
// *outcome.Error (tenant_not_found for a tenant Entra ID does not know).
// *azauth.Tenants is one.
type HomeReader interface {
	Home(ctx context.Context, tenantID string) (tenant.Home, error)
}

// TenantLookup looks a tenant up from the app's home tenant (Microsoft
// Graph's findTenantInformationByTenantId). An app without the permission
// gets graph_consent_missing or graph_permission_missing.
type TenantLookup interface {
	FindTenant(ctx context.Context, tenantID string) (tenant.TenantInfo, error)
}

// TenantCheck is what onboarding learnt of the tenant before recording it,
// in the answer.
type TenantCheck struct {
	// Checked is false when Entra ID could not be asked (its metadata
	// endpoint down or unreachable): the tenant was recorded unchecked.
	Checked bool `json:"checked"`
	tenant.Home
	Message string `json:"message,omitempty"`
}

// checkTenant asks Entra ID about the tenant before anything is recorded: a
// tenant it does not know (a typo, deleted) is refused with 422
// tenant_not_found, one of another cloud than the deployment's with 422
// wrong_cloud, and nothing is written. When Entra ID cannot tell, onboarding
// goes on and the answer says the tenant is unchecked. With a TenantLookup,
// the registration's empty display name and the tenant's default domain
// are filled in, at the same time. A nil check means the API has no
// HomeReader.
func (a *API) checkTenant(ctx context.Context, reg *tenant.Registration) (*TenantCheck, error) {
	if a.cfg.Homes == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CheckTimeout)
	defer cancel()
	var info tenant.TenantInfo
	var wg sync.WaitGroup
	if a.cfg.Lookup != nil {
		wg.Go(func() { info = a.lookup(ctx, reg.TenantID) })
	}
	home, err := a.cfg.Homes.Home(ctx, reg.TenantID)
	wg.Wait()
	if err != nil && errors.Is(err, context.Canceled) && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, err // the caller went away
	}
	switch outcome.Of(err) {
	case outcome.OK:
	case outcome.TenantNotFound:
		return nil, errorf(http.StatusUnprocessableEntity, string(outcome.TenantNotFound),
			"Microsoft Entra ID (%s) knows no tenant %s (%s)%s. Check the tenant id (Microsoft Entra admin center > Overview > Tenant ID); nothing was recorded",
			a.cfg.Cloud.Name, reg.TenantID, outcome.Detail(err), unseenFrom(a.cfg.Cloud))
	default:
		detail := outcome.Detail(err)
		zerolog.Ctx(ctx).Warn().Str("tenantId", reg.TenantID).Str("outcome", string(outcome.Of(err))).Str("detail", detail).
			Msg("the tenant could not be checked before onboarding; recording it unchecked")
		return &TenantCheck{Message: "Microsoft Entra ID could not be asked whether the tenant exists (" + detail +
			"), so it was recorded without that check; its verification says whether the app can sign in to it"}, nil
	}
	if other, differs, known := otherCloud(home, a.cfg.Cloud); differs && known {
		return nil, errorf(http.StatusUnprocessableEntity, string(outcome.WrongCloud),
			"tenant %s lives in %s (cloud_instance_name %s%s), but this deployment serves %s: onboard it with a deployment whose AZURE_CLOUD is %s; nothing was recorded",
			reg.TenantID, other.Name, home.Instance, regionText(home), a.cfg.Cloud.Name, other.Name)
	} else if differs {
		return nil, errorf(http.StatusUnprocessableEntity, string(outcome.WrongCloud),
			"tenant %s lives in a Microsoft cloud this app does not serve (cloud_instance_name %s%s); this deployment serves %s; nothing was recorded",
			reg.TenantID, home.Instance, regionText(home), a.cfg.Cloud.Name)
	}
	reg.Fill(info)
	return &TenantCheck{Checked: true, Home: home}, nil
}

// lookup asks the app's home tenant about the tenant; any failure leaves
// the registration as it is.
func (a *API) lookup(ctx context.Context, tenantID string) tenant.TenantInfo {
	info, err := a.cfg.Lookup.FindTenant(ctx, tenantID)
	switch c := outcome.Of(err); {
	case err == nil:
	case c == outcome.GraphConsentMissing || c == outcome.GraphPermissionMissing:
		zerolog.Ctx(ctx).Debug().Str("tenantId", tenantID).
			Msg("the app may not look tenants up in its home tenant (CrossTenantInformation.ReadBasic.All): display name and default domain not filled")
	default:
		zerolog.Ctx(ctx).Info().Str("tenantId", tenantID).Str("outcome", string(c)).Str("detail", outcome.Detail(err)).
			Msg("looking the tenant up in the app's home tenant failed: display name and default domain not filled")
	}
	return info
}

// otherCloud reports whether home is in another cloud than the
// deployment's, and which, when this app knows it. A metadata document
// without cloud_instance_name is placed by tenant_region_scope, USGov (or
// USG) being the US Government cloud's; with neither, the tenant is taken
// to be where it was found.
func otherCloud(home tenant.Home, deployed cloud.Cloud) (other cloud.Cloud, differs, known bool) {
	instance := home.Instance
	if instance == "" && (strings.EqualFold(home.RegionScope, "USGov") || strings.EqualFold(home.RegionScope, "USG")) {
		instance = cloud.AzureUSGovernment.Instance
	}
	if instance == "" || strings.EqualFold(instance, deployed.Instance) {
		return cloud.Cloud{}, false, false
	}
	other, known = cloud.ByInstance(instance)
	return other, true, known
}

func regionText(h tenant.Home) string {
	s := ""
	if h.RegionScope != "" {
		s += ", tenant_region_scope " + h.RegionScope
	}
	if h.RegionSubScope != "" {
		s += ", tenant_region_sub_scope " + h.RegionSubScope
	}
	return s
}

// unseenFrom is the note, for a tenant cl does not find, that it may be
// one cl cannot see.
func unseenFrom(cl cloud.Cloud) string {
	if u := cl.Unseen(); u != "" {
		return "; " + u + " is not visible from " + cl.Name + " either"
	}
	return ""
}

// checkedText is the consent page's sentence about an unchecked tenant.
func checkedText(c *TenantCheck) string {
	if c == nil || c.Checked {
		return ""
	}
	return fmt.Sprintf("Note: %s.", c.Message)
}
