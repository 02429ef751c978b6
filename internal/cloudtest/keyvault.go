package cloudtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Vault is a Key Vault, reached at https://<name>.vault.azure.net.
type Vault struct {
	// Status, when non-zero, answers every authorised request with it; 403
	// is Key Vault's "does not have secrets get permission" answer (keys
	// <operation> for a key).
	Status  int
	Secrets map[string]Secret
	// Keys are the vault's keys by name, each as its current version.
	Keys map[string]Key
}

// Secret is one secret's current version.
type Secret struct {
	Value string
	// Version defaults to a hash of the name and value, so changing the
	// value makes a new version. Older versions stay readable by version.
	Version string
	// Enabled must be true for the value to be readable: like Key Vault,
	// GET of a disabled secret answers 403 Forbidden with inner error
	// SecretDisabled. Its metadata stays listable (GET /secrets/<name>/versions).
	Enabled   bool
	ExpiresOn time.Time // zero: no expiry
	// Status, when non-zero, answers GETs of this secret with it: 404
	// SecretNotFound, 403 Forbidden, 429 Throttled, others a generic error.
	Status int
	// Throttle is the number of GETs answered with 429 (retry-after-ms: 5,
	// Retry-After: 0) before they succeed.
	Throttle int
}

func (s Secret) version(name string) string {
	if s.Version != "" {
		return s.Version
	}
	sum := sha256.Sum256([]byte(name + "\x00" + s.Value))
	return hex.EncodeToString(sum[:16])
}

type fakeVault struct {
	owner   string
	v       Vault
	history map[string]map[string]Secret // name -> version -> secret
	keys    map[string][]*keyVersion     // name -> versions, oldest first
	unwraps map[string]int               // key name -> correct unwraps
	// opValues are the key operations' values, sent and answered.
	opValues [][]byte
	created  time.Time
}

// rememberLocked records the versions of the vault's secrets and keys; c.mu
// is held.
func (c *Cloud) rememberLocked(fv *fakeVault) {
	if fv.v.Secrets == nil {
		fv.v.Secrets = map[string]Secret{}
	}
	if fv.v.Keys == nil {
		fv.v.Keys = map[string]Key{}
	}
	fv.remember()
	c.rememberKeysLocked(fv)
}

func (fv *fakeVault) remember() {
	for name, s := range fv.v.Secrets {
		if fv.history[name] == nil {
			fv.history[name] = map[string]Secret{}
		}
		fv.history[name][s.version(name)] = s
	}
}

// AddVault adds (or replaces) a vault owned by ownerTenantID: only tokens of
// that tenant are accepted, and the 401 challenge names it. Its keys get
// their first versions (RSA key material is generated here, or taken from
// the process's cache).
func (c *Cloud) AddVault(name, ownerTenantID string, v Vault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v.Secrets = maps.Clone(v.Secrets)
	v.Keys = maps.Clone(v.Keys)
	fv := &fakeVault{owner: strings.ToLower(ownerTenantID), v: v, history: map[string]map[string]Secret{},
		keys: map[string][]*keyVersion{}, unwraps: map[string]int{}, created: time.Now()}
	c.rememberLocked(fv)
	c.vaults[strings.ToLower(name)] = fv
}

// UpdateVault changes a vault under the fake's lock; fn must not call the
// Cloud. It reports false, without calling fn, for a vault never added.
func (c *Cloud) UpdateVault(name string, fn func(*Vault)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	fv, ok := c.vaults[strings.ToLower(name)]
	if !ok {
		return false
	}
	fn(&fv.v)
	c.rememberLocked(fv)
	return true
}

// SetSecret sets a secret of a vault (a new version when the value
// changes); false for a vault never added.
func (c *Cloud) SetSecret(vault, name string, s Secret) bool {
	return c.UpdateVault(vault, func(v *Vault) {
		if v.Secrets == nil {
			v.Secrets = map[string]Secret{}
		}
		v.Secrets[name] = s
	})
}

// VaultURL is https://<name>.vault.azure.net.
func VaultURL(name string) string { return "https://" + strings.ToLower(name) + "." + VaultSuffix }

func writeKVError(w http.ResponseWriter, status int, code, msg, inner string) {
	e := map[string]any{"code": code, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]any{"code": inner}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func (c *Cloud) serveVault(w http.ResponseWriter, r *http.Request, name string) {
	tok := bearer(r)
	c.record(r, c.tenantOfToken(tok))
	if tok != "" && !c.wait(r) {
		return
	}
	c.mu.Lock()
	fv, ok := c.vaults[name]
	var owner string
	if ok {
		owner = fv.owner
	}
	c.mu.Unlock()
	if !ok {
		http.Error(w, "cloudtest: no such vault", http.StatusNotFound)
		return
	}

	challenge := func(msg string) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://%s/%s", resource="%s"`, LoginHost, owner, VaultResource))
		writeKVError(w, http.StatusUnauthorized, "Unauthorized", msg, "")
	}
	if tok == "" {
		challenge("AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	claims, err := c.checkToken(tok, VaultResource)
	if err != nil {
		challenge("AKV10022: Invalid token: " + err.Error() + ".")
		return
	}
	if claims.Tid != owner {
		challenge(fmt.Sprintf("AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, found %s.", owner, claims.Iss))
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		writeKVError(w, http.StatusBadRequest, "BadParameter", "The request URI must contain an 'api-version' parameter.", "")
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	isKey := segs[0] == "keys"
	if r.Method != http.MethodGet && !isKey {
		writeKVError(w, http.StatusMethodNotAllowed, "BadParameter", "cloudtest vaults are read-only.", "")
		return
	}
	host := name + "." + VaultSuffix

	c.mu.Lock()
	defer c.mu.Unlock()
	fv = c.vaults[name]
	switch fv.v.Status {
	case 0, http.StatusOK:
	case http.StatusForbidden:
		perm := "secrets get"
		if isKey {
			perm = "keys list"
			if kr, _ := parseKeyRequest(r.Method, segs); kr.op != "" {
				perm = "keys " + kr.op
			}
		}
		writeKVError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(
			"The user, group or application '%s' does not have %s permission on key vault '%s;location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
			caller(claims), perm, name), "AccessDenied")
		return
	default:
		writeKVError(w, fv.v.Status, "InternalServerError", "cloudtest injected vault fault.", "")
		return
	}

	switch {
	case isKey:
		c.serveKeyLocked(w, r, fv, name, segs, claims)
	case len(segs) == 1 && segs[0] == "secrets":
		var items []map[string]any
		for _, n := range slices.Sorted(maps.Keys(fv.v.Secrets)) {
			s := fv.v.Secrets[n]
			items = append(items, map[string]any{"id": "https://" + host + "/secrets/" + n, "attributes": attributes(s, fv.created)})
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": items, "nextLink": nil})
	case len(segs) == 3 && segs[0] == "secrets" && segs[2] == "versions":
		hist, ok := fv.history[segs[1]]
		if _, live := fv.v.Secrets[segs[1]]; !ok || !live {
			secretNotFound(w, segs[1])
			return
		}
		var items []map[string]any
		for _, ver := range slices.Sorted(maps.Keys(hist)) {
			items = append(items, map[string]any{"id": "https://" + host + "/secrets/" + segs[1] + "/" + ver, "attributes": attributes(hist[ver], fv.created)})
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": items, "nextLink": nil})
	case (len(segs) == 2 || len(segs) == 3) && segs[0] == "secrets":
		version := ""
		if len(segs) == 3 {
			version = segs[2]
		}
		c.getSecretLocked(w, fv, host, segs[1], version)
	default:
		writeKVError(w, http.StatusNotFound, "NotFound", "cloudtest: unknown path.", "")
	}
}

func secretNotFound(w http.ResponseWriter, id string) {
	writeKVError(w, http.StatusNotFound, "SecretNotFound", fmt.Sprintf("A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", id), "")
}

func attributes(s Secret, created time.Time) map[string]any {
	a := map[string]any{
		"enabled": s.Enabled, "created": created.Unix(), "updated": created.Unix(),
		"recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90,
	}
	if !s.ExpiresOn.IsZero() {
		a["exp"] = s.ExpiresOn.Unix()
	}
	return a
}

// getSecretLocked answers GET /secrets/<name>[/<version>]; c.mu is held.
func (c *Cloud) getSecretLocked(w http.ResponseWriter, fv *fakeVault, host, name, version string) {
	s, ok := fv.v.Secrets[name]
	if !ok {
		secretNotFound(w, name)
		return
	}
	if s.Throttle > 0 {
		s.Throttle--
		fv.v.Secrets[name] = s
		w.Header().Set("retry-after-ms", "5")
		w.Header().Set("Retry-After", "0")
		writeKVError(w, http.StatusTooManyRequests, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached", "")
		return
	}
	switch s.Status {
	case 0, http.StatusOK:
	case http.StatusNotFound:
		secretNotFound(w, name)
		return
	case http.StatusForbidden:
		writeKVError(w, http.StatusForbidden, "Forbidden", "cloudtest: access to the secret is denied.", "AccessDenied")
		return
	case http.StatusTooManyRequests:
		w.Header().Set("retry-after-ms", "5")
		w.Header().Set("Retry-After", "0")
		writeKVError(w, http.StatusTooManyRequests, "Throttled", "Request was not processed because too many requests were received.", "")
		return
	default:
		writeKVError(w, s.Status, "InternalServerError", "cloudtest injected secret fault.", "")
		return
	}
	if version != "" && version != s.version(name) {
		old, ok := fv.history[name][version]
		if !ok {
			secretNotFound(w, name+"/"+version)
			return
		}
		s = old
	}
	if !s.Enabled {
		writeKVError(w, http.StatusForbidden, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"value":      s.Value,
		"id":         "https://" + host + "/secrets/" + name + "/" + s.version(name),
		"attributes": attributes(s, fv.created),
		"tags":       map[string]string{},
	})
}
