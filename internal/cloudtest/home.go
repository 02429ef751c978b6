package cloudtest

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The Graph requests of the app in its home tenant: looking another tenant
// up, and reading its own registration. Each needs its application
// permission in the token's roles, as Graph enforces it: 403
// Authorization_RequestDenied without.
var (
	findTenantPath  = regexp.MustCompile(`^/v1\.0/tenantRelationships/findTenantInformationByTenantId\(tenantId='([^']*)'\)$`)
	applicationPath = regexp.MustCompile(`^/v1\.0/applications\(appId='([^']*)'\)$`)
)

// serveHomeTenant answers the home-tenant requests, and reports whether r
// was one. claims are those of r's valid Graph token.
func (c *Cloud) serveHomeTenant(w http.ResponseWriter, r *http.Request, claims tokenClaims) bool {
	find := findTenantPath.FindStringSubmatch(r.URL.Path)
	app := applicationPath.FindStringSubmatch(r.URL.Path)
	if find == nil && app == nil {
		return false
	}
	if r.Method != http.MethodGet {
		writeODataError(w, http.StatusMethodNotAllowed, "Request_BadRequest", "Only GET is supported by cloudtest.")
		return true
	}
	c.mu.Lock()
	home := c.app.HomeTenant
	ownID := c.app.ClientID
	secrets, certs := slices.Clone(c.app.Secrets), slices.Clone(c.app.Certificates)
	var target *Tenant
	if find != nil {
		if tn, ok := c.tenants[strings.ToLower(find[1])]; ok && tn.Cloud != InstanceChina {
			cp := *tn
			target = &cp
		}
	}
	c.mu.Unlock()
	roles := []string{}
	if claims.Roles != nil {
		roles = *claims.Roles
	}
	switch {
	case find != nil:
		if !strings.EqualFold(claims.Tid, home) || !slices.Contains(roles, "CrossTenantInformation.ReadBasic.All") {
			writeODataError(w, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
			return true
		}
		id := strings.ToLower(find[1])
		if target == nil {
			writeODataError(w, http.StatusNotFound, "Directory_ObjectNotFound", fmt.Sprintf("Tenant '%s' not found.", id))
			return true
		}
		domain := target.DefaultDomain
		if domain == "" {
			domain = id[:8] + ".onmicrosoft.com"
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.context":      "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.tenantInformation",
			"tenantId":            id,
			"displayName":         target.OrgName,
			"defaultDomainName":   domain,
			"federationBrandName": nil,
		})
	default:
		if !strings.EqualFold(claims.Tid, home) || !(slices.Contains(roles, "Application.Read.All") || slices.Contains(roles, "Application.ReadWrite.All")) {
			writeODataError(w, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
			return true
		}
		if !strings.EqualFold(app[1], ownID) {
			writeODataError(w, http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", app[1]))
			return true
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.context":      "https://graph.microsoft.com/v1.0/$metadata#applications(passwordCredentials,keyCredentials)/$entity",
			"passwordCredentials": credentialsJSON(secrets, true),
			"keyCredentials":      credentialsJSON(certs, false),
		})
	}
	return true
}

func credentialsJSON(creds []AppCredential, password bool) []map[string]any {
	out := []map[string]any{}
	for _, cr := range creds {
		m := map[string]any{
			"keyId":         cr.KeyID,
			"displayName":   cr.DisplayName,
			"startDateTime": cr.EndDateTime.Add(-365 * 24 * time.Hour).UTC().Format(time.RFC3339),
			"endDateTime":   cr.EndDateTime.UTC().Format(time.RFC3339),
		}
		if password {
			m["hint"] = "abc"
			m["secretText"] = nil // Graph never returns it after creation
		} else {
			m["type"], m["usage"] = "AsymmetricX509Cert", "Verify"
		}
		out = append(out, m)
	}
	return out
}
