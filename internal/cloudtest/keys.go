package cloudtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"maps"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Key is one key of a Vault: the attributes of its current version, and
// faults that apply to every request for it, whichever version. Key Vault's
// keys REST API (what azkeys sends, api-version 2025-07-01) serves it:
// GET /keys/<name>[/<version>] answers the KeyBundle (the public JWK and
// the attributes), and POST /keys/<name>/<version>/{wrapkey,unwrapkey,
// encrypt,decrypt} runs the operation with real key material.
type Key struct {
	// Kty is "RSA" (the default), or "EC" (P-256) or "oct" for a key that
	// cannot wrap with RSA: an RSA algorithm on them is answered 400
	// BadParameter. (A vault has no oct keys; Managed HSM's are oct-HSM.)
	Kty string
	// Size is the RSA modulus in bits: 2048 (the default), 3072 or 4096.
	Size int
	// Version names the current version. Empty, the fake names it (32 hex
	// digits, as Key Vault does) when the key is set and writes the name
	// back here, so that later changes through UpdateVault keep the
	// version. A Version the key never had makes a new version with new
	// key material; older versions stay usable by their version id. A
	// version keeps its Kty and Size, as its material does.
	Version string
	// Enabled must be true for the private-key operations (unwrapkey,
	// decrypt): on a disabled key Key Vault answers them 403 Forbidden with
	// inner error KeyDisabled, while GET still answers the bundle with
	// enabled false and the public-key operations (wrapkey, encrypt) still
	// work (observed against Key Vault: azure-sdk-for-python#45342; that a
	// GET works shows in notaryproject/ratify#1474, which had to check
	// enabled itself).
	Enabled bool
	// ExpiresOn and NotBefore bound the key's validity (zero: none).
	// Outside it Key Vault refuses wrapkey and encrypt with 403 Forbidden
	// but still unwraps and decrypts (learn.microsoft.com/azure/key-vault/
	// keys/about-keys-details, "Date-time controlled operations"); the
	// inner error codes KeyExpired and KeyNotYetValid are the fake's, the
	// documentation names none.
	ExpiresOn, NotBefore time.Time
	// RecoveryLevel is the vault's deletion recovery level the attributes
	// show: "Recoverable" (the default, purge protection on) or
	// "Recoverable+Purgeable" (off), among Key Vault's values.
	RecoveryLevel string
	// KeyOps are the operations the key permits (the JWK's key_ops); nil
	// means all that its type supports: for RSA encrypt, decrypt, sign,
	// verify, wrapKey and unwrapKey; for EC sign and verify; for oct
	// encrypt, decrypt, wrapKey and unwrapKey. Another operation is
	// answered as Key Vault answers it: 403 Forbidden, inner
	// KeyOperationForbidden (azure-sdk-for-go's keyvault TROUBLESHOOTING.md).
	KeyOps []string
	Tags   map[string]string

	// Status, when non-zero, answers every request for the key with it: 403
	// Forbidden with inner ForbiddenByRbac (a role without the action), 404
	// KeyNotFound, 429 Throttled, anything else a generic error.
	Status int
	// UnwrapStatus is the same for unwrapkey alone: 403 is a role that can
	// read the key but not unwrap with it.
	UnwrapStatus int
	// Firewall answers every request 403 Forbidden with inner error
	// ForbiddenByFirewall, as a vault whose firewall does not admit the
	// client does.
	Firewall bool
	// AccessPolicyDenied are operations ("get", "wrapKey", "unwrapKey",
	// "encrypt", "decrypt") that a vault using access policies refuses the
	// app: 403 Forbidden, inner AccessDenied, naming the missing "keys
	// <operation>" permission.
	AccessPolicyDenied []string
	// WrongUnwrap makes unwrapkey answer 200 with a value that is not the
	// wrapped one.
	WrongUnwrap bool
	// Throttle is the number of requests for the key answered 429
	// (retry-after-ms: 5, Retry-After: 0) before they succeed.
	Throttle int
}

// keyOpNames are Key Vault's names of the operations the fake serves, by
// the lower-case path segment azkeys sends; get is GET of the key.
var keyOpNames = map[string]string{"get": "get", "wrapkey": "wrapKey", "unwrapkey": "unwrapKey", "encrypt": "encrypt", "decrypt": "decrypt"}

// keyRBACActions are the Azure RBAC data actions Key Vault checks for them.
var keyRBACActions = map[string]string{
	"get": "Microsoft.KeyVault/vaults/keys/read", "wrapKey": "Microsoft.KeyVault/vaults/keys/wrap/action",
	"unwrapKey": "Microsoft.KeyVault/vaults/keys/unwrap/action", "encrypt": "Microsoft.KeyVault/vaults/keys/encrypt/action",
	"decrypt": "Microsoft.KeyVault/vaults/keys/decrypt/action",
}

// keyVersion is one version of a key: its own attributes and material.
type keyVersion struct {
	id      string
	k       Key // attributes as of this version; the faults come from the current Key
	rsa     *rsa.PrivateKey
	ec      *ecdsa.PrivateKey
	created time.Time
	updated time.Time
}

func (k Key) kty() string {
	if k.Kty == "" {
		return "RSA"
	}
	return k.Kty
}

func (k Key) size() int {
	if k.Size == 0 {
		return 2048
	}
	return k.Size
}

func (k Key) keyOps() []string {
	switch {
	case k.KeyOps != nil:
		return k.KeyOps
	case k.kty() == "EC":
		return []string{"sign", "verify"}
	case k.kty() == "oct":
		return []string{"encrypt", "decrypt", "wrapKey", "unwrapKey"}
	}
	return []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
}

// sameAttributes says whether k and o show the same attributes and tags,
// whatever their faults: a change of them is an update of the version.
func (k Key) sameAttributes(o Key) bool {
	return k.Enabled == o.Enabled && k.ExpiresOn.Equal(o.ExpiresOn) && k.NotBefore.Equal(o.NotBefore) &&
		k.RecoveryLevel == o.RecoveryLevel && slices.Equal(k.KeyOps, o.KeyOps) && maps.Equal(k.Tags, o.Tags)
}

func (k Key) recoveryLevel() string {
	if k.RecoveryLevel == "" {
		return "Recoverable"
	}
	return k.RecoveryLevel
}

// rsaKeys are RSA keys generated in this process, by size: the n-th key
// material a Cloud needs is the n-th of its size, so the fakes of one
// test never share material while a package's tests pay for each key once
// (2048 bits take ~0.1 s to generate, far more under -race).
var rsaKeys struct {
	sync.Mutex
	bySize map[int][]*rsa.PrivateKey
}

func pooledRSAKey(bits, n int) (*rsa.PrivateKey, error) {
	rsaKeys.Lock()
	defer rsaKeys.Unlock()
	if rsaKeys.bySize == nil {
		rsaKeys.bySize = map[int][]*rsa.PrivateKey{}
	}
	for len(rsaKeys.bySize[bits]) <= n {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, err
		}
		rsaKeys.bySize[bits] = append(rsaKeys.bySize[bits], k)
	}
	return rsaKeys.bySize[bits][n], nil
}

// newKeyVersionLocked makes the material of a new version of k; c.mu is
// held.
func (c *Cloud) newKeyVersionLocked(k Key) *keyVersion {
	now := time.Now()
	kv := &keyVersion{id: k.Version, k: k, created: now, updated: now}
	if kv.id == "" {
		kv.id = randHex(16)
		kv.k.Version = kv.id
	}
	var err error
	switch k.kty() {
	case "RSA":
		if !slices.Contains([]int{2048, 3072, 4096}, k.size()) {
			err = fmt.Errorf("RSA keys are 2048, 3072 or 4096 bits in Key Vault, not %d", k.Size)
			break
		}
		n := c.rsaUsed[k.size()]
		if c.rsaDistinct > 0 {
			n %= c.rsaDistinct
		}
		kv.rsa, err = pooledRSAKey(k.size(), n)
		c.rsaUsed[k.size()]++
	case "EC":
		kv.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "oct":
	default:
		err = fmt.Errorf("key type %q is not RSA, EC or oct", k.Kty)
	}
	if err != nil {
		// A test set up a key Key Vault cannot have.
		panic("cloudtest: key material: " + err.Error())
	}
	return kv
}

// rememberKeysLocked gives each key's current version its material: a new
// version for an empty or unknown Version, else the named version takes the
// key's current attributes; c.mu is held.
func (c *Cloud) rememberKeysLocked(fv *fakeVault) {
	for _, name := range slices.Sorted(maps.Keys(fv.v.Keys)) {
		k := fv.v.Keys[name]
		versions := fv.keys[name]
		if i := slices.IndexFunc(versions, func(kv *keyVersion) bool { return k.Version != "" && kv.id == k.Version }); i >= 0 {
			// The type and size are the material's, which a version keeps.
			k.Kty, k.Size = versions[i].k.Kty, versions[i].k.Size
			if !k.sameAttributes(versions[i].k) {
				versions[i].updated = time.Now()
			}
			versions[i].k = k
			fv.v.Keys[name] = k
			continue
		}
		kv := c.newKeyVersionLocked(k)
		fv.keys[name] = append(versions, kv)
		k.Version = kv.id
		fv.v.Keys[name] = k
	}
}

// ShareRSAKeys makes the RSA keys added from now on share the material of
// the first n of their size, in turn, instead of each having its own: for
// a benchmark with a key in each of thousands of vaults (a 2048-bit key
// takes ~0.1 s to generate). Each key still has its own versions; nothing
// outside the fakes can tell, as a vault never reveals a private part.
func (c *Cloud) ShareRSAKeys(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rsaDistinct = n
}

// SetKey sets a key of a vault: a Key with an empty Version, or a Version
// the key never had, is a new version with new key material; the current
// Version keeps the material and takes the new attributes. It reports false
// for a vault never added.
func (c *Cloud) SetKey(vault, name string, k Key) bool {
	return c.UpdateVault(vault, func(v *Vault) {
		if v.Keys == nil {
			v.Keys = map[string]Key{}
		}
		v.Keys[name] = k
	})
}

// RotateKey makes a new version of a key with new key material, as Key
// Vault's rotate does, and returns its version id; the new version takes
// the current one's type, size, key_ops and other attributes, and the key
// keeps its faults. ok is false for a vault or key never added.
func (c *Cloud) RotateKey(vault, name string) (version string, ok bool) {
	c.UpdateVault(vault, func(v *Vault) {
		k, found := v.Keys[name]
		if !found {
			return
		}
		k.Version = ""
		v.Keys[name] = k
		ok = true
	})
	if !ok {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.vaults[strings.ToLower(vault)].v.Keys[name].Version, true
}

// KeyVersions returns the version ids of a key, oldest first: the last is
// the current one. It is nil for a vault or key never added.
func (c *Cloud) KeyVersions(vault, name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	fv, ok := c.vaults[strings.ToLower(vault)]
	if !ok {
		return nil
	}
	var ids []string
	for _, kv := range fv.keys[name] {
		ids = append(ids, kv.id)
	}
	return ids
}

// UnwrapCount is how many times the vault unwrapped with the key (any
// version) and answered the value that was wrapped: 200s of unwrapkey,
// WrongUnwrap's excepted.
func (c *Cloud) UnwrapCount(vault, key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	fv, ok := c.vaults[strings.ToLower(vault)]
	if !ok {
		return 0
	}
	return fv.unwraps[key]
}

// KeyOperationValues are the values of the key operations the vault
// served (wrapkey, unwrapkey, encrypt, decrypt): what each request sent and
// what each answered, wrapped and plain, so that a test can look for them
// where they must never appear (logs, the registry, answers).
func (c *Cloud) KeyOperationValues(vault string) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	fv, ok := c.vaults[strings.ToLower(vault)]
	if !ok {
		return nil
	}
	out := make([][]byte, len(fv.opValues))
	for i, v := range fv.opValues {
		out[i] = bytes.Clone(v)
	}
	return out
}

func keyNotFound(w http.ResponseWriter, id string) {
	writeKVError(w, http.StatusNotFound, "KeyNotFound", fmt.Sprintf("A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", id), "")
}

func writeKVThrottled(w http.ResponseWriter) {
	w.Header().Set("retry-after-ms", "5")
	w.Header().Set("Retry-After", "0")
	writeKVError(w, http.StatusTooManyRequests, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached", "")
}

// caller is how Key Vault names the token's principal in a 403.
func caller(cl tokenClaims) string {
	return fmt.Sprintf("appid=%s;oid=%s;iss=%s", cl.AppID, cl.Oid, cl.Iss)
}

// writeKVForbiddenByRBAC answers as a vault using Azure RBAC does when no
// role assignment gives the caller the operation's data action.
func writeKVForbiddenByRBAC(w http.ResponseWriter, cl tokenClaims, vault, resource, action string) {
	writeKVError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(
		"Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: %s\r\nAction: '%s'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/cloudtest/providers/microsoft.keyvault/vaults/%s/%s'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: %s;location=westeurope\r\n",
		caller(cl), action, vault, resource, vault), "ForbiddenByRbac")
}

// writeKeyStatus answers a Key's injected Status (or UnwrapStatus).
func writeKeyStatus(w http.ResponseWriter, status int, cl tokenClaims, vault, name, op string) {
	switch status {
	case http.StatusForbidden:
		writeKVForbiddenByRBAC(w, cl, vault, "keys/"+name, keyRBACActions[op])
	case http.StatusNotFound:
		keyNotFound(w, name)
	case http.StatusTooManyRequests:
		writeKVThrottled(w)
	default:
		writeKVError(w, status, "InternalServerError", "cloudtest injected key fault.", "")
	}
}

// keyRequest is what a request under /keys asks for.
type keyRequest struct {
	name, version string // version "": the current one
	op            string // a keyOpNames value; "" for a list
	versions      bool   // GET /keys/<name>/versions (name "" and op "": GET /keys)
}

// parseKeyRequest reads the keys API's paths, split at "/": GET /keys,
// GET /keys/<name>[/<version>] (azkeys sends /keys/<name>/ for the current
// version), GET /keys/<name>/versions, and POST /keys/<name>/[<version>/]
// <operation>, where an empty or missing version is the current one.
func parseKeyRequest(method string, segs []string) (keyRequest, bool) {
	opOf := func(s string) string {
		if op := keyOpNames[strings.ToLower(s)]; op != "get" {
			return op
		}
		return ""
	}
	switch {
	case method == http.MethodGet && len(segs) == 1:
		return keyRequest{}, true
	case method == http.MethodGet && len(segs) == 3 && segs[2] == "versions":
		return keyRequest{name: segs[1], versions: true}, true
	case method == http.MethodGet && (len(segs) == 2 || len(segs) == 3):
		kr := keyRequest{name: segs[1], op: "get"}
		if len(segs) == 3 {
			kr.version = segs[2]
		}
		return kr, true
	case method == http.MethodPost && len(segs) == 3 && opOf(segs[2]) != "":
		return keyRequest{name: segs[1], op: opOf(segs[2])}, true
	case method == http.MethodPost && len(segs) == 4 && opOf(segs[3]) != "":
		return keyRequest{name: segs[1], version: segs[2], op: opOf(segs[3])}, true
	}
	return keyRequest{}, false
}

// serveKeyLocked answers the keys API under /keys of vault fv (segs is
// the path split at "/"): the key's faults in the order Key Vault meets
// them (network, throttling, authorization), then the version, then the
// operation; c.mu is held.
func (c *Cloud) serveKeyLocked(w http.ResponseWriter, r *http.Request, fv *fakeVault, vault string, segs []string, cl tokenClaims) {
	host := "https://" + vault + "." + VaultSuffix
	kr, ok := parseKeyRequest(r.Method, segs)
	if !ok {
		writeKVError(w, http.StatusBadRequest, "BadParameter", "cloudtest: the fake serves GET of keys and their versions, and POST of wrapkey, unwrapkey, encrypt and decrypt.", "")
		return
	}
	if kr.name == "" {
		var items []map[string]any
		for _, n := range slices.Sorted(maps.Keys(fv.v.Keys)) {
			items = append(items, keyItem(host, n, fv.current(n), false))
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": items, "nextLink": nil})
		return
	}
	name, version, op := kr.name, kr.version, kr.op
	k, ok := fv.v.Keys[name]
	if !ok {
		keyNotFound(w, name)
		return
	}
	if kr.versions {
		var items []map[string]any
		for _, kv := range fv.keys[name] {
			items = append(items, keyItem(host, name, kv, true))
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": items, "nextLink": nil})
		return
	}

	switch {
	case k.Firewall:
		writeKVError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(
			"Client address is not authorized and caller is not a trusted service.\r\nClient address: 203.0.113.7\r\nCaller: %s\r\nVault: %s;location=westeurope", caller(cl), vault), "ForbiddenByFirewall")
		return
	case k.Throttle > 0:
		k.Throttle--
		fv.v.Keys[name] = k
		writeKVThrottled(w)
		return
	case k.Status != 0 && k.Status != http.StatusOK:
		writeKeyStatus(w, k.Status, cl, vault, name, op)
		return
	case slices.ContainsFunc(k.AccessPolicyDenied, func(d string) bool { return strings.EqualFold(d, op) }):
		writeKVError(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(
			"The user, group or application '%s' does not have keys %s permission on key vault '%s;location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
			caller(cl), op, vault), "AccessDenied")
		return
	case op == "unwrapKey" && k.UnwrapStatus != 0 && k.UnwrapStatus != http.StatusOK:
		writeKeyStatus(w, k.UnwrapStatus, cl, vault, name, op)
		return
	}

	kv := fv.current(name)
	if version != "" {
		i := slices.IndexFunc(fv.keys[name], func(kv *keyVersion) bool { return kv.id == version })
		if i < 0 {
			keyNotFound(w, name+"/"+version)
			return
		}
		kv = fv.keys[name][i]
	}
	if op == "get" {
		writeJSON(w, http.StatusOK, keyBundle(host, name, kv))
		return
	}
	c.keyOperationLocked(w, r, fv, host, name, kv, op, k.WrongUnwrap)
}

// keyOperationLocked runs wrapKey, unwrapKey, encrypt or decrypt with a
// version of a key, after the request's faults; c.mu is held.
func (c *Cloud) keyOperationLocked(w http.ResponseWriter, r *http.Request, fv *fakeVault, host, name string, kv *keyVersion, op string, wrongUnwrap bool) {
	var in struct {
		Alg   string `json:"alg"`
		Value string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil || in.Alg == "" {
		writeKVError(w, http.StatusBadRequest, "BadParameter", "The request body must be JSON with 'alg' and 'value'.", "")
		return
	}
	private := op == "unwrapKey" || op == "decrypt"
	now := time.Now()
	switch {
	case private && !kv.k.Enabled:
		writeKVError(w, http.StatusForbidden, "Forbidden", "Operation "+op+" is not allowed on a disabled key.", "KeyDisabled")
		return
	case !private && !kv.k.ExpiresOn.IsZero() && !now.Before(kv.k.ExpiresOn):
		writeKVError(w, http.StatusForbidden, "Forbidden", "Operation "+op+" is not allowed on an expired key.", "KeyExpired")
		return
	case !private && !kv.k.NotBefore.IsZero() && now.Before(kv.k.NotBefore):
		writeKVError(w, http.StatusForbidden, "Forbidden", "Operation "+op+" is not allowed on a key that is not yet valid.", "KeyNotYetValid")
		return
	case !slices.Contains(kv.k.keyOps(), op):
		writeKVError(w, http.StatusForbidden, "Forbidden", "Operation "+op+" is not permitted on this key.", "KeyOperationForbidden")
		return
	case kv.rsa == nil:
		writeKVError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("Algorithm %s is not supported for key type %s.", in.Alg, kv.k.kty()), "")
		return
	}
	value, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(in.Value, "="))
	if err != nil {
		writeKVError(w, http.StatusBadRequest, "BadParameter", "Property 'value' is not base64url encoded.", "")
		return
	}
	var h hash.Hash
	switch in.Alg {
	case "RSA-OAEP-256":
		h = sha256.New()
	case "RSA-OAEP": // OAEP with SHA-1 and MGF1 with SHA-1, RFC 3447's defaults
		h = sha1.New()
	case "RSA1_5":
	default:
		writeKVError(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("Algorithm %s is not supported for key type %s.", in.Alg, kv.k.kty()), "")
		return
	}
	var out []byte
	if private {
		if h != nil {
			out, err = rsa.DecryptOAEP(h, nil, kv.rsa, value, nil)
		} else {
			//lint:ignore SA1019 Key Vault still serves RSA1_5 ("not recommended"), so its fake does
			out, err = rsa.DecryptPKCS1v15(nil, kv.rsa, value)
		}
	} else {
		if h != nil {
			out, err = rsa.EncryptOAEP(h, rand.Reader, &kv.rsa.PublicKey, value, nil)
		} else {
			//lint:ignore SA1019 Key Vault still serves RSA1_5 ("not recommended"), so its fake does
			out, err = rsa.EncryptPKCS1v15(rand.Reader, &kv.rsa.PublicKey, value)
		}
	}
	if err != nil {
		writeKVError(w, http.StatusBadRequest, "BadParameter", "The "+op+" operation failed: "+err.Error()+".", "")
		return
	}
	fv.opValues = append(fv.opValues, bytes.Clone(value))
	defer func() { fv.opValues = append(fv.opValues, bytes.Clone(out)) }()
	if op == "unwrapKey" {
		if wrongUnwrap {
			out = bytes.Clone(out)
			for i := range out {
				out[i] ^= 0x5a
			}
			if len(out) == 0 {
				out = []byte{0x5a}
			}
		} else {
			fv.unwraps[name]++
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"kid":   host + "/keys/" + name + "/" + kv.id,
		"value": base64.RawURLEncoding.EncodeToString(out),
	})
}

func (fv *fakeVault) current(name string) *keyVersion {
	versions := fv.keys[name]
	cur := fv.v.Keys[name].Version
	if i := slices.IndexFunc(versions, func(kv *keyVersion) bool { return kv.id == cur }); i >= 0 {
		return versions[i]
	}
	return versions[len(versions)-1]
}

func keyAttributes(kv *keyVersion) map[string]any {
	level := kv.k.recoveryLevel()
	days := 0
	if strings.Contains(level, "Recoverable") {
		days = 90
	}
	a := map[string]any{
		"enabled": kv.k.Enabled, "created": kv.created.Unix(), "updated": kv.updated.Unix(),
		"recoveryLevel": level, "recoverableDays": days, "exportable": false,
	}
	if !kv.k.NotBefore.IsZero() {
		a["nbf"] = kv.k.NotBefore.Unix()
	}
	if !kv.k.ExpiresOn.IsZero() {
		a["exp"] = kv.k.ExpiresOn.Unix()
	}
	return a
}

func keyTags(k Key) map[string]string {
	if k.Tags == nil {
		return map[string]string{}
	}
	return k.Tags
}

// keyBundle is the KeyBundle of GET /keys: the public part of the key as a
// JWK (RFC 7517; big integers as unpadded base64url of their big-endian
// bytes), with its attributes and tags.
func keyBundle(host, name string, kv *keyVersion) map[string]any {
	jwk := map[string]any{"kid": host + "/keys/" + name + "/" + kv.id, "kty": kv.k.kty(), "key_ops": kv.k.keyOps()}
	b64 := base64.RawURLEncoding.EncodeToString
	switch {
	case kv.rsa != nil:
		jwk["n"] = b64(kv.rsa.N.Bytes())
		jwk["e"] = b64(big.NewInt(int64(kv.rsa.E)).Bytes())
	case kv.ec != nil:
		pub, _ := kv.ec.PublicKey.Bytes() // uncompressed: 0x04 || X || Y
		jwk["crv"] = "P-256"
		jwk["x"] = b64(pub[1:33])
		jwk["y"] = b64(pub[33:65])
	}
	return map[string]any{"key": jwk, "attributes": keyAttributes(kv), "tags": keyTags(kv.k)}
}

// keyItem is a KeyProperties item of a list: of the keys, whose kid names
// no version and whose attributes are the current version's, or of a key's
// versions.
func keyItem(host, name string, kv *keyVersion, withVersion bool) map[string]any {
	kid := host + "/keys/" + name
	if withVersion {
		kid += "/" + kv.id
	}
	return map[string]any{"kid": kid, "attributes": keyAttributes(kv), "tags": keyTags(kv.k)}
}
