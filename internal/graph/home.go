package graph

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/google/uuid"
	"github.com/microsoftgraph/msgraph-sdk-go/applicationswithappid"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/posture"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// HomeTenant reads Microsoft Graph in the app's own tenant, where the app
// registration lives: what it may learn of another tenant before
// onboarding it (findTenantInformationByTenantId, which needs
// CrossTenantInformation.ReadBasic.All) and the expiry of its own
// credentials (its registration, which needs Application.Read.All). The
// home tenant's token is not held to GRAPH_PERMISSIONS: those are the
// customers' grants.
type HomeTenant struct {
	r     *Reader
	appID string
	cred  func() (azcore.TokenCredential, error)
}

// InHomeTenant returns a HomeTenant that authenticates with the credential
// cred returns (the app's credential in its home tenant), looked up on each
// call so that a credential cache may drop it meanwhile.
func (r *Reader) InHomeTenant(appID string, cred func() (azcore.TokenCredential, error)) *HomeTenant {
	return &HomeTenant{r: r, appID: appID, cred: cred}
}

func (h *HomeTenant) context(ctx context.Context) (context.Context, error) {
	cred, err := h.cred()
	if err != nil {
		return nil, err
	}
	return outcome.WithAttempts(context.WithValue(ctx, credentialKey{}, cred)), nil
}

// FindTenant looks tenantID up from the home tenant: its display name and
// default domain. Without CrossTenantInformation.ReadBasic.All it is
// graph_consent_missing, like any 403 of Graph; every error is an
// *outcome.Error or a cancellation.
func (h *HomeTenant) FindTenant(ctx context.Context, tenantID string) (tenant.TenantInfo, error) {
	ctx, err := h.context(ctx)
	if err != nil {
		return tenant.TenantInfo{}, err
	}
	info, err := h.r.gsc.TenantRelationships().FindTenantInformationByTenantIdWithTenantId(&tenantID).Get(ctx, nil)
	if err != nil {
		return tenant.TenantInfo{}, classify(ctx, "find tenant information", err)
	}
	var out tenant.TenantInfo
	if n := info.GetDisplayName(); n != nil {
		out.DisplayName = *n
	}
	if d := info.GetDefaultDomainName(); d != nil {
		out.DefaultDomain = *d
	}
	return out, nil
}

// Name is the posture source's name.
func (h *HomeTenant) Name() string { return "the app registration" }

// errRegistrationDenied says why the registration was not read; its text
// goes into the posture line.
var errRegistrationDenied = errors.New("the app may not read its own registration (grant it Application.Read.All in its home tenant to have its client secrets checked)")

// Credentials reads the registration's client secrets and certificates
// (their names, key ids and end dates; Graph never returns a secret's
// value once created), as a posture source.
func (h *HomeTenant) Credentials(ctx context.Context) ([]posture.Credential, error) {
	ctx, err := h.context(ctx)
	if err != nil {
		return nil, err
	}
	app, err := h.r.gsc.ApplicationsWithAppId(&h.appID).Get(ctx, &applicationswithappid.ApplicationsWithAppIdRequestBuilderGetRequestConfiguration{
		QueryParameters: &applicationswithappid.ApplicationsWithAppIdRequestBuilderGetQueryParameters{Select: []string{"passwordCredentials", "keyCredentials"}},
	})
	if err != nil {
		err = classify(ctx, "read the app registration", err)
		if c := outcome.Of(err); c == outcome.GraphConsentMissing || c == outcome.GraphPermissionMissing {
			return nil, errRegistrationDenied
		}
		return nil, errors.New(outcome.Detail(err)) // customer-safe text only
	}
	var out []posture.Credential
	for _, p := range app.GetPasswordCredentials() {
		out = append(out, credential("client secret", p.GetDisplayName(), p.GetKeyId(), p.GetEndDateTime()))
	}
	for _, k := range app.GetKeyCredentials() {
		out = append(out, credential("certificate", k.GetDisplayName(), k.GetKeyId(), k.GetEndDateTime()))
	}
	return out, nil
}

func credential(kind string, name *string, id *uuid.UUID, end *time.Time) posture.Credential {
	c := posture.Credential{Kind: kind, Where: "registration"}
	if name != nil {
		c.Name = printable(*name, 64)
	}
	if id != nil {
		c.ID = id.String()
	}
	if end != nil {
		c.ExpiresOn = end.UTC()
	}
	return c
}

// printable keeps a display name fit for a log line: printable characters,
// at most n of them.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return strings.TrimSpace(s)
}
