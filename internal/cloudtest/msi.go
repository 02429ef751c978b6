package cloudtest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// miResources are the resources the fake MSI endpoint issues tokens for.
var miResources = map[string]bool{TokenExchangeResource: true, VaultResource: true, StorageResource: true}

// serveMSI answers the App Service managed identity protocol (api-version
// 2019-08-01), as azidentity calls it with IDENTITY_ENDPOINT and
// IDENTITY_HEADER set.
func (c *Cloud) serveMSI(w http.ResponseWriter, r *http.Request) {
	c.record(r, "")
	c.mu.Lock()
	c.miReqs++
	status := c.miStatus
	c.mu.Unlock()

	msiError := func(status int, msg string) {
		writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "correlationId": guidFrom("corr", randHex(8))})
	}
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodGet:
		msiError(http.StatusMethodNotAllowed, "Only GET is supported.")
		return
	case r.Header.Get("X-IDENTITY-HEADER") != c.miHeader:
		msiError(http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing or wrong.")
		return
	case q.Get("api-version") != "2019-08-01":
		msiError(http.StatusBadRequest, "Unsupported api-version.")
		return
	case status != 0:
		msiError(status, "cloudtest injected managed identity fault.")
		return
	}
	resource := strings.TrimSuffix(q.Get("resource"), "/.default")
	if !miResources[resource] {
		msiError(http.StatusBadRequest, "Unable to issue a token for resource '"+resource+"'.")
		return
	}
	clientID := strings.ToLower(q.Get("client_id"))
	if clientID == "" {
		clientID = SystemAssignedClientID
	}
	expires := time.Now().Add(24 * time.Hour)
	c.mu.Lock()
	tok := c.issueLocked(ManagedIdentityTenant, resource, clientID, true, 24*time.Hour)
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(expires.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    clientID,
	})
}
