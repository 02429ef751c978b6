package keyvault

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// wrapAlgorithm is how the probe wraps: RSA-OAEP-256, what Azure services
// wrap their data keys with.
const wrapAlgorithm = azkeys.EncryptionAlgorithmRSAOAEP256

// probeBytes is the size of the value wrapped: a 256-bit data key.
const probeBytes = 32

// keysAPIVersion is Key Vault's keys API version, azkeys v1.5's.
const keysAPIVersion = "2025-07-01"

// maxKnownKeys bounds the public parts a Reader keeps (about 600 bytes
// each for RSA-2048); past it, an arbitrary one is dropped, and that key is
// probed cold once more.
const maxKnownKeys = 20000

// keyFreshness is how long a key's public part, proved by the vault's own
// wrap, stands in for that wrap: the warm probe wraps locally, so a wrapKey
// permission removed since shows once the public part is this old, when the
// vault is asked to wrap again.
const keyFreshness = 30 * time.Minute

// keyID names a key of a tenant's vault.
type keyID struct{ tenantID, host, name string }

// knownKey is the public part of a key's version, kept once the vault has
// wrapped with the key and unwrapped what it wrapped: from then on the
// probe wraps locally, and a warm key costs one round trip.
type knownKey struct {
	version string
	pub     *rsa.PublicKey
	proved  time.Time // when the vault last wrapped with the key
}

// knownKeys are the keys a Reader proved. They are the process's own: on
// another instance a tenant's key is probed cold (two round trips; its
// vault, known through the tenant's row, asks no challenge).
type knownKeys struct {
	mu sync.Mutex
	m  map[keyID]knownKey
}

func (k *knownKeys) get(id keyID, now time.Time) (knownKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kk, ok := k.m[id]
	if !ok || now.Before(kk.proved) || now.Sub(kk.proved) >= keyFreshness {
		return knownKey{}, false
	}
	return kk, true
}

func (k *knownKeys) put(id keyID, kk knownKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[keyID]knownKey{}
	}
	if _, ok := k.m[id]; !ok && len(k.m) >= maxKnownKeys {
		for old := range k.m {
			delete(k.m, old)
			break
		}
	}
	k.m[id] = kk
}

func (k *knownKeys) drop(id keyID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, id)
}

// Forget drops the public parts of the tenant's keys, so that nothing of an
// offboarded tenant stays in the process.
func (r *Reader) Forget(tenantID string) {
	id, err := tenant.ParseTenantID(tenantID)
	if err != nil {
		return // never kept
	}
	r.keys.mu.Lock()
	defer r.keys.mu.Unlock()
	maps.DeleteFunc(r.keys.m, func(k keyID, _ knownKey) bool { return k.tenantID == id })
}

// Key proves that the app can use key name of the vault at vaultURL as a
// service encrypting with a customer-managed key does, authenticating with
// cred, a credential of tenantID: it reads the key (its attributes and
// public part) and has the vault unwrap a fresh random 32-byte value
// wrapped with the key's current version with RSA-OAEP-256.
//
// The plan, in round trips after the sign-in (and the vault's challenge,
// when the tenant's credential does not know the vault):
//   - warm (the key's public part is known, and fresh): the read and the
//     unwrap of a value wrapped locally with the version last seen go out
//     at once: one round trip. When the read shows a new version (the key
//     was rotated), its public part is kept and the unwrap is done again
//     at once with the new version: two, in that sweep only.
//   - cold (the first time in this process, or keyFreshness after the
//     vault last wrapped): the read and the vault's own wrap (which proves
//     the wrapKey permission, and needs no public part) at once, then the
//     unwrap of what the vault wrapped: two. When the vault refuses to wrap
//     because of the key's state (expired, not yet valid, an operation the
//     key does not permit), the value is wrapped locally instead; when it
//     refuses the app (a role, an access policy, its firewall), that is the
//     answer and the key stays cold.
//
// The values wrapped and unwrapped never leave this function.
//
// err is the read's failure (an *outcome.Error, marked with tenant.About
// when the vault's firewall refused); the wrap's and unwrap's are in the
// KeyCheck. A vault URL or key name that is not valid is refused before any
// request, with a plain error.
func (r *Reader) Key(ctx context.Context, tenantID, vaultURL, name string, cred azcore.TokenCredential) (tenant.KeyCheck, error) {
	id, host, err := r.target(tenantID, vaultURL, "key", name, cred)
	if err != nil {
		return tenant.KeyCheck{}, err
	}
	kid := keyID{tenantID: id, host: host, name: strings.ToLower(name)}
	p := probe{r: r, v: r.vault(id, host, cred), name: name}
	readURL := p.url("")

	// Each request counts its own tries: they run at once.
	readCtx, wrapCtx := r.requestContext(ctx), r.requestContext(ctx)
	// One challenge, when the vault is not known, before the requests that
	// would each ask it.
	if resp, err := r.learn(readCtx, p.v, http.MethodGet, readURL); err != nil || resp != nil {
		if err == nil {
			err = runtime.NewResponseError(resp) // a vault that asks no token has no key for the app
		}
		return tenant.KeyCheck{}, classifyKey(readCtx, "get", name, err)
	}
	known, warm := r.keys.get(kid, time.Now())

	var (
		bundle  azkeys.KeyBundle
		readErr error
		first   proof
		wrapped azkeys.KeyOperationResult
		wrapErr error
		value   = fresh()
		wg      sync.WaitGroup
	)
	defer clear(value)
	wg.Go(func() { readErr = p.do(readCtx, http.MethodGet, readURL, nil, &bundle) })
	if warm {
		wg.Go(func() { first = p.unwrapLocal(ctx, known.version, known.pub, value) })
	} else {
		// The version is left out, as azkeys leaves it: the vault wraps with
		// the current one and names it in its answer.
		wg.Go(func() {
			wrapErr = p.do(wrapCtx, http.MethodPost, p.url("/wrapkey"),
				azkeys.KeyOperationParameters{Algorithm: new(wrapAlgorithm), Value: value}, &wrapped)
		})
	}
	wg.Wait()
	defer clear(wrapped.Result)
	if readErr != nil {
		return tenant.KeyCheck{}, classifyKey(readCtx, "get", name, readErr)
	}
	check, pub := keyCheck(bundle)

	switch {
	case warm && known.version == check.Version:
		first.into(&check)
	case warm:
		// Rotated: the new version is the key from now on.
		if pub == nil {
			r.keys.drop(kid)
			break
		}
		r.keys.put(kid, knownKey{version: check.Version, pub: pub, proved: known.proved})
		again := fresh()
		defer clear(again)
		p.unwrapLocal(ctx, check.Version, pub, again).into(&check)
	case wrapErr == nil:
		version := ""
		if wrapped.KID != nil {
			version = wrapped.KID.Version()
		}
		pr := p.unwrap(ctx, version, wrapped.Result, value)
		pr.into(&check)
		if pr.matched && pub != nil && version == check.Version {
			r.keys.put(kid, knownKey{version: version, pub: pub, proved: time.Now()})
		}
	default:
		werr := classifyKey(wrapCtx, "wrapKey", name, wrapErr)
		if !keyState(werr) {
			check.WrapErr = werr
			break
		}
		// The key's state refused the wrap, which the attributes tell; the
		// unwrap is still worth proving when the key allows it.
		if pub != nil && check.Enabled != nil && *check.Enabled && permits(check.KeyOps, azkeys.KeyOperationUnwrapKey) {
			p.unwrapLocal(ctx, check.Version, pub, value).into(&check)
		}
	}
	if pub == nil && check.UnwrapErr == nil && !check.Unwrapped && rsaType(check.Kty) {
		check.UnwrapErr = outcome.New(outcome.KeyUnusable, "the vault answered the key without its public RSA part", nil)
	}
	return check, nil
}

// probe is one key's requests.
type probe struct {
	r    *Reader
	v    vault
	name string
}

// url is the address of the key's current version (version "", as azkeys
// spells it: /keys/<name>/) followed by op, or of one version's op
// ("<version>/unwrapkey").
func (p probe) url(op string) string {
	return "https://" + p.v.host + "/keys/" + url.PathEscape(p.name) + "/" + strings.TrimPrefix(op, "/") + "?api-version=" + keysAPIVersion
}

// do sends one request of the key with body (nil: none) as JSON, and
// decodes a 200 into out; any other answer is an *azcore.ResponseError.
func (p probe) do(ctx context.Context, method, url string, body any, out any) error {
	var raw []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("keyvault: encode request: %w", err)
		}
		raw = b
		defer clear(raw)
	}
	resp, err := p.r.call(ctx, p.v, method, url, raw)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return runtime.NewResponseError(resp)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	defer clear(b)
	if err != nil {
		return fmt.Errorf("keyvault: read answer: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return outcome.New(outcome.UpstreamError, "Key Vault's answer did not decode", err)
	}
	return nil
}

// proof is the result of one unwrap.
type proof struct {
	matched, mismatch bool
	err               error
}

func (pr proof) into(check *tenant.KeyCheck) {
	check.Unwrapped, check.Mismatch, check.UnwrapErr = pr.matched, pr.mismatch, pr.err
}

// unwrapLocal wraps value with pub, locally, and has the vault unwrap it
// with version.
func (p probe) unwrapLocal(ctx context.Context, version string, pub *rsa.PublicKey, value []byte) proof {
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, value, nil)
	if err != nil {
		return proof{err: outcome.New(outcome.KeyUnusable, "the key's public part cannot wrap with RSA-OAEP-256", nil)}
	}
	return p.unwrap(ctx, version, wrapped, value)
}

// unwrap has the vault unwrap wrapped with version and compares the answer
// with want, in constant time; the answer is cleared at once.
func (p probe) unwrap(ctx context.Context, version string, wrapped, want []byte) proof {
	if version == "" {
		return proof{err: outcome.New(outcome.UpstreamError, "the vault's answer named no key version", nil)}
	}
	ctx = p.r.requestContext(ctx)
	var res azkeys.KeyOperationResult
	err := p.do(ctx, http.MethodPost, p.url(url.PathEscape(version)+"/unwrapkey"),
		azkeys.KeyOperationParameters{Algorithm: new(wrapAlgorithm), Value: wrapped}, &res)
	defer clear(res.Result)
	if err != nil {
		return proof{err: classifyKey(ctx, "unwrapKey", p.name, err)}
	}
	if subtle.ConstantTimeCompare(res.Result, want) != 1 {
		return proof{mismatch: true}
	}
	return proof{matched: true}
}

// requestContext is the context of one request: its own count of tries
// (requests of a key run at once) and the tenant's deadline on retries.
// target checks what a read is asked for before any request: the tenant id,
// a vault URL of the configured cloud, the name of the secret or key (what)
// and a credential. It returns the tenant id and the vault's host, or a
// plain error.
func (r *Reader) target(tenantID, vaultURL, what, name string, cred azcore.TokenCredential) (id, host string, err error) {
	if id, err = tenant.ParseTenantID(tenantID); err != nil {
		return "", "", fmt.Errorf("keyvault: %w", err)
	}
	if host, err = tenant.ParseVaultURL(vaultURL, r.cl); err != nil {
		return "", "", fmt.Errorf("keyvault: vault URL: %w", err)
	}
	if !tenant.ValidSecretName(name) {
		return "", "", fmt.Errorf("keyvault: invalid %s name %q", what, name)
	}
	if cred == nil {
		return "", "", errors.New("keyvault: nil credential")
	}
	return id, host, nil
}

func (r *Reader) requestContext(ctx context.Context) context.Context {
	return r.boundRetry(outcome.WithAttempts(ctx))
}

// fresh is a new random value to wrap.
func fresh() []byte {
	b := make([]byte, probeBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return b
}

// keyCheck reads a key bundle's attributes, and its RSA public part when it
// has one.
func keyCheck(b azkeys.KeyBundle) (tenant.KeyCheck, *rsa.PublicKey) {
	var check tenant.KeyCheck
	if a := b.Attributes; a != nil {
		check.Enabled, check.ExpiresOn, check.NotBefore = a.Enabled, a.Expires, a.NotBefore
		if a.RecoveryLevel != nil {
			check.RecoveryLevel = *a.RecoveryLevel
		}
	}
	k := b.Key
	if k == nil {
		return check, nil
	}
	if k.KID != nil {
		check.Version = k.KID.Version()
	}
	if k.Kty != nil {
		check.Kty = string(*k.Kty)
	}
	for _, op := range k.KeyOps {
		if op != nil {
			check.KeyOps = append(check.KeyOps, string(*op))
		}
	}
	if !rsaType(check.Kty) || len(k.N) == 0 || len(k.E) == 0 || len(k.E) > 4 {
		return check, nil
	}
	e := new(big.Int).SetBytes(k.E)
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
		return check, nil
	}
	return check, &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(e.Int64())}
}

// rsaType reports an RSA key type: software-protected or in an HSM.
func rsaType(kty string) bool {
	return kty == string(azkeys.KeyTypeRSA) || kty == string(azkeys.KeyTypeRSAHSM)
}

// permits reports whether key_ops allow op; none listed allows every one.
func permits(ops []string, op azkeys.KeyOperation) bool {
	if ops == nil {
		return true
	}
	for _, o := range ops {
		if strings.EqualFold(o, string(op)) {
			return true
		}
	}
	return false
}

// keyState reports a refusal of the vault's wrap caused by the key itself
// (its state, its type, its permitted operations), which the attributes
// explain, rather than by the app's access. A 404 counts: the read found
// the key, so the wrap's addressing of its current version is at fault,
// and wrapping locally does without it.
func keyState(err error) bool {
	switch outcome.Of(err) {
	case outcome.KeyDisabled, outcome.KeyExpired, outcome.KeyUnusable, outcome.KeyNotFound:
		return true
	}
	return false
}

// classifyKey turns an error of a keys request (op: get, wrapKey,
// unwrapKey, Key Vault's names of the operations and of their access-policy
// permissions) into an *outcome.Error naming the operation. A firewall's
// refusal is marked as such (tenant.Subject.Firewall).
func classifyKey(ctx context.Context, op, name string, err error) error {
	var re *azcore.ResponseError
	isResp := errors.As(err, &re)
	if settled, ok := outcome.Settled(ctx, err, isResp, "Key Vault did not answer within the tenant's time budget"); ok {
		return settled
	}
	if !isResp {
		return noAnswer(err)
	}
	inner := innerCode(re)
	wrapped := &responseError{op: op + " key", status: re.StatusCode, code: outcome.SafeCode(re.ErrorCode), err: err}
	refused := fmt.Sprintf("Key Vault refused to %s with key %q", op, name)
	switch s := re.StatusCode; {
	case s == http.StatusForbidden:
		switch inner {
		case "ForbiddenByFirewall":
			return tenant.About(outcome.New(outcome.KeyVaultAccessDenied,
				"the vault's firewall refused the app (ForbiddenByFirewall): Azure services reach a firewalled vault as trusted Microsoft services, this app from its own addresses", wrapped),
				tenant.Subject{Firewall: true})
		case "KeyDisabled":
			return outcome.New(outcome.KeyDisabled, refused+": the key is disabled (KeyDisabled)", wrapped)
		case "KeyExpired":
			return outcome.New(outcome.KeyExpired, refused+": the key has expired (KeyExpired)", wrapped)
		case "KeyNotYetValid":
			return outcome.New(outcome.KeyUnusable, refused+": the key is not valid yet (KeyNotYetValid)", wrapped)
		case "KeyOperationForbidden":
			return outcome.New(outcome.KeyUnusable, refused+": the key's permitted operations (key_ops) do not include "+op+" (KeyOperationForbidden)", wrapped)
		case "ForbiddenByRbac":
			return outcome.New(outcome.KeyVaultAccessDenied, fmt.Sprintf(
				"Key Vault refused the app the %s operation on key %q (ForbiddenByRbac): no role assignment on the key or vault allows it", op, name), wrapped)
		case "AccessDenied":
			return outcome.New(outcome.KeyVaultAccessDenied, fmt.Sprintf(
				"Key Vault refused the app the %s operation on key %q (AccessDenied): the vault's access policy for the app lacks the keys %s permission", op, name, op), wrapped)
		}
		return outcome.New(outcome.KeyVaultAccessDenied, fmt.Sprintf("Key Vault refused the app the %s operation on key %q (HTTP 403)", op, name), wrapped)
	case s == http.StatusNotFound:
		return outcome.New(outcome.KeyNotFound, fmt.Sprintf("the vault has no key named %q (or it is deleted)", name), wrapped)
	case s == http.StatusBadRequest:
		return outcome.New(outcome.KeyUnusable, fmt.Sprintf("%s and RSA-OAEP-256 (HTTP 400)", refused), wrapped)
	}
	return answered(ctx, re.StatusCode, wrapped)
}
