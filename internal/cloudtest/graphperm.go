package cloudtest

import (
	"net/http"
	"slices"
	"strings"
)

// graphPermissions are the application permissions Microsoft Graph v1.0
// accepts for each request the fake serves, least privileged first, as the
// Permissions table of the endpoint's API reference page lists them
// (learn.microsoft.com/graph/api/<page>?view=graph-rest-1.0):
//
//	organization-list  Organization.Read.All; higher: Directory.Read.All,
//	                   Organization.ReadWrite.All, Directory.ReadWrite.All
//	user-list          User.Read.All; higher: User.ReadWrite.All,
//	                   Directory.Read.All, Directory.ReadWrite.All
//	group-list         GroupMember.Read.All; higher: Directory.Read.All,
//	                   Directory.ReadWrite.All, Group.Read.All,
//	                   Group.ReadWrite.All
//
// $count is a segment of the list and needs what the list needs. A granted
// X.ReadWrite.All counts where the table lists it, as every permission
// does: there is no rule here that a write permission implies the read.
//
// Requests the table does not know are not checked here: they go on to the
// router (which answers 404 for paths it does not serve), so an endpoint
// added later, in its own file, can add its row here or check with
// requireGraphPermission itself.
var graphPermissions = map[string][]string{
	"GET /v1.0/organization":  {"Organization.Read.All", "Directory.Read.All", "Organization.ReadWrite.All", "Directory.ReadWrite.All"},
	"GET /v1.0/users":         userReaders,
	"GET /v1.0/users/$count":  userReaders,
	"GET /v1.0/groups":        groupReaders,
	"GET /v1.0/groups/$count": groupReaders,
}

var (
	userReaders  = []string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	groupReaders = []string{"GroupMember.Read.All", "Directory.Read.All", "Directory.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All"}
)

// GraphPermissionsFor returns the application permissions the fake Graph
// accepts for a request, least privileged first; a token needs any one of
// them (Tenant.GraphRoles grants them). path is as sent, with or without
// the /v1.0 prefix and query (GET, "/v1.0/users?$top=1" and "/users/$count"
// both work). nil means the fake does not check the request: it serves no
// such endpoint, or the endpoint checks on its own.
func GraphPermissionsFor(method, path string) []string {
	path, _, _ = strings.Cut(path, "?")
	if !strings.HasPrefix(path, "/v1.0/") {
		path = "/v1.0" + path
	}
	return slices.Clone(graphPermissions[strings.ToUpper(method)+" "+path])
}

// requireGraphPermission answers 403 Authorization_RequestDenied, as Graph
// does, unless the request's token grants one of allowed (matched without
// regard to case, as Entra ID's permission names are); it reports whether
// the request may go on. The roles are those recorded when the token was
// issued, whatever its shape.
func (c *Cloud) requireGraphPermission(w http.ResponseWriter, r *http.Request, allowed []string) bool {
	c.mu.Lock()
	ti, _ := c.lookupLocked(bearer(r))
	c.mu.Unlock()
	for _, g := range ti.graphRoles {
		if slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, g) }) {
			return true
		}
	}
	writeODataError(w, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	return false
}
