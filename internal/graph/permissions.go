package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// checkRoles reads the roles claim of the Graph token cred hands out and
// returns a graph_permission_missing *outcome.Error naming each need that no
// granted role satisfies, before any Graph request is sent. The token is the
// one kiota is about to send (same scope, CAE on), which the credential has
// cached since sign-in, so this costs no round trip. Reading the claim is
// best effort: a token that is not a readable JWT, or has no roles claim, is
// not checked, and the read goes on.
func (r *Reader) checkRoles(ctx context.Context, cred azcore.TokenCredential) error {
	if len(r.needs) == 0 {
		return nil
	}
	tk, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: r.scopes, EnableCAE: true})
	if err != nil {
		return classify(ctx, "token", err)
	}
	roles, ok := rolesOf(tk.Token)
	if !ok {
		return nil
	}
	var missing []string
	for _, n := range r.needs {
		if !satisfied(n, roles) {
			missing = append(missing, describe(n))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return outcome.New(outcome.GraphPermissionMissing,
		"the tenant has not granted the Microsoft Graph application permissions "+strings.Join(missing, ", "), nil)
}

// rolesOf decodes the roles claim of a JWT, without checking its signature
// (Graph does that; this only reads what the token says). ok is false when
// tok is not a JWT whose payload is JSON with a roles array.
func rolesOf(tok string) (roles []string, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, false
	}
	var claims struct {
		Roles *[]string `json:"roles"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Roles == nil {
		return nil, false
	}
	return *claims.Roles, true
}

// satisfied says whether roles grant one of a need's alternatives; a
// granted X.ReadWrite.All also grants X.Read.All.
func satisfied(n []string, roles []string) bool {
	for _, alt := range n {
		readWrite, isRead := strings.CutSuffix(alt, ".Read.All")
		for _, r := range roles {
			if strings.EqualFold(r, alt) || isRead && strings.EqualFold(r, readWrite+".ReadWrite.All") {
				return true
			}
		}
	}
	return false
}

// describe names a need for the customer: "User.Read.All (or
// Directory.Read.All)". The names come from the app's settings, never from
// the token.
func describe(n []string) string {
	if len(n) == 1 {
		return n[0]
	}
	return n[0] + " (or " + strings.Join(n[1:], " or ") + ")"
}
