package task

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

var permissionRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+$`)

// need is one Graph permission a task needs, as its alternatives.
type need []string

// parseNeeds reads About.Graph: each entry "A|B" is one need met by any of
// its alternatives.
func parseNeeds(entries []string) ([]need, error) {
	var needs []need
	for _, e := range entries {
		var alts need
		for alt := range strings.SplitSeq(e, "|") {
			alt = strings.TrimSpace(alt)
			if !permissionRE.MatchString(alt) {
				return nil, fmt.Errorf("%q is not a Graph permission name such as User.Read.All", alt)
			}
			alts = append(alts, alt)
		}
		needs = append(needs, alts)
	}
	return needs, nil
}

// Permissions lists the distinct Graph application permissions tasks
// declare, the first alternative of each need (the least privileged one,
// which the app registration asks for), in the order declared.
func Permissions(tasks []Task) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range tasks {
		for _, e := range t.About().Graph {
			first, _, _ := strings.Cut(e, "|")
			first = strings.TrimSpace(first)
			if !seen[strings.ToLower(first)] {
				seen[strings.ToLower(first)] = true
				out = append(out, first)
			}
		}
	}
	return out
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
func (n need) satisfied(roles []string) bool {
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

// String names a need for the customer: "User.Read.All (or
// Directory.Read.All)". The names come from the task, never from the token.
func (n need) String() string {
	if len(n) == 1 {
		return n[0]
	}
	return n[0] + " (or " + strings.Join(n[1:], " or ") + ")"
}

// gatedCredential is the tenant credential a task gets: its Graph tokens
// are handed out only when the tenant granted the task's Graph
// permissions. A Graph request of the task then fails with
// graph_permission_missing before it is sent, whichever client sends it,
// while its other resources (Key Vault, say) are still reached.
type gatedCredential struct {
	azcore.TokenCredential
	graphEndpoint string // https://graph.microsoft.com, say
	needs         []need

	once   sync.Once
	denied error
	// granted: a Graph token the task got carries application
	// permissions, every one the task declares among them. Graph's 403 to
	// such a token is not a missing consent.
	granted atomic.Bool
}

func (g *gatedCredential) GetToken(ctx context.Context, tro policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tk, err := g.TokenCredential.GetToken(ctx, tro)
	if err != nil || !slices.ContainsFunc(tro.Scopes, g.isGraph) {
		return tk, err
	}
	// The tenant's roles do not change within a run: checked once.
	g.once.Do(func() { g.denied = g.check(tk.Token) })
	if g.denied != nil {
		return azcore.AccessToken{}, g.denied
	}
	return tk, nil
}

// graphAppID is Microsoft Graph's application id, which a scope may name
// instead of its URL.
const graphAppID = "00000003-0000-0000-c000-000000000000"

// isGraph reports whether scope asks for a Microsoft Graph token, however
// it is spelt (its URL or its app id, .default or a named permission).
func (g *gatedCredential) isGraph(scope string) bool {
	s := strings.ToLower(scope)
	return strings.HasPrefix(s, strings.ToLower(g.graphEndpoint)+"/") || strings.HasPrefix(s, graphAppID)
}

// check compares the token's roles with the task's needs. Reading the claim
// is best effort: a token that is not a readable JWT, or has no roles
// claim, is not checked, and a real shortfall shows as Graph's 403.
func (g *gatedCredential) check(tok string) error {
	roles, ok := rolesOf(tok)
	if !ok {
		return nil
	}
	var missing []string
	for _, n := range g.needs {
		if !n.satisfied(roles) {
			missing = append(missing, n.String())
		}
	}
	if len(missing) == 0 {
		g.granted.Store(len(roles) > 0)
		return nil
	}
	return outcome.New(outcome.GraphPermissionMissing,
		"the tenant has not granted the Microsoft Graph application permissions "+strings.Join(missing, ", "), nil)
}

// vaults is a tenant credential that knows which vault hosts are the
// tenant's own (*azauth.Session): a task's Key Vault reads ask it, through
// the gated credential, instead of each asking the vault's challenge.
type vaults interface {
	VaultKnown(host string) bool
	VaultIs(host string, own bool)
}

// VaultKnown reports whether the tenant's credential knows the vault at
// host to be the tenant's.
func (g *gatedCredential) VaultKnown(host string) bool {
	v, ok := g.TokenCredential.(vaults)
	return ok && v.VaultKnown(host)
}

// VaultIs tells the tenant's credential what the vault's challenge said.
func (g *gatedCredential) VaultIs(host string, own bool) {
	if v, ok := g.TokenCredential.(vaults); ok {
		v.VaultIs(host, own)
	}
}
