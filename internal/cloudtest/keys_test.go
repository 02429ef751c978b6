package cloudtest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
)

const keyVault = "kv-keys"

// keysClient is a real azkeys client of a vault of tenantA, reaching the
// fake at the vault's real URL (so challenge resource verification stays
// on) with two quick retries.
func keysClient(t *testing.T, c *cloudtest.Cloud, vault string) *azkeys.Client {
	t.Helper()
	client, err := azkeys.NewClient(cloudtest.VaultURL(vault), secretCred(t, c, tenantA, "s3cret"),
		&azkeys.ClientOptions{ClientOptions: clientOptions(c)})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func startKeys(t *testing.T, keys map[string]cloudtest.Key) (*cloudtest.Cloud, *azkeys.Client) {
	t.Helper()
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	c.AddTenant(tenantA, cloudtest.Tenant{})
	c.AddTenant(tenantB, cloudtest.Tenant{})
	c.AddVault(keyVault, tenantA, cloudtest.Vault{Keys: keys})
	return c, keysClient(t, c, keyVault)
}

func rsaPublic(t *testing.T, jwk *azkeys.JSONWebKey) *rsa.PublicKey {
	t.Helper()
	if jwk == nil || len(jwk.N) == 0 || len(jwk.E) == 0 {
		t.Fatalf("JWK without n and e: %+v", jwk)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(jwk.N), E: int(new(big.Int).SetBytes(jwk.E).Int64())}
}

// wrapLocally wraps dek with the key's public JWK, as a client that holds
// it does: RSA-OAEP-256 is OAEP with SHA-256 (and MGF1 with SHA-256).
func wrapLocally(t *testing.T, pub *rsa.PublicKey, dek []byte) []byte {
	t.Helper()
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	return wrapped
}

func newDEK(t *testing.T) []byte {
	t.Helper()
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		t.Fatal(err)
	}
	return dek
}

// kvErr is a Key Vault error as azkeys surfaces it, with the inner code
// that only the body carries.
type kvErr struct {
	status                         int
	code, inner, msg, retryAfterMS string
}

func kvErrOf(t *testing.T, err error) kvErr {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.RawResponse == nil {
		t.Fatalf("not a ResponseError: %v", err)
	}
	body, _ := runtime.Payload(re.RawResponse)
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	return kvErr{status: re.StatusCode, code: re.ErrorCode, inner: e.Error.InnerError.Code, msg: e.Error.Message,
		retryAfterMS: re.RawResponse.Header.Get("retry-after-ms")}
}

func TestKeyVaultKeys(t *testing.T) {
	exp := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	c, client := startKeys(t, map[string]cloudtest.Key{
		"kek": {Enabled: true, ExpiresOn: exp, Tags: map[string]string{"purpose": "kek"}},
	})
	ctx := context.Background()

	got, err := client.GetKey(ctx, "kek", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	versions := c.KeyVersions(keyVault, "kek")
	if len(versions) != 1 || len(versions[0]) != 32 {
		t.Fatalf("versions %v, want one of 32 hex digits", versions)
	}
	jwk, a := got.Key, got.Attributes
	if *jwk.Kty != azkeys.KeyTypeRSA || jwk.KID.Name() != "kek" || jwk.KID.Version() != versions[0] ||
		string(*jwk.KID) != cloudtest.VaultURL(keyVault)+"/keys/kek/"+versions[0] {
		t.Errorf("jwk kty %v kid %v", *jwk.Kty, *jwk.KID)
	}
	var ops []string
	for _, op := range jwk.KeyOps {
		ops = append(ops, string(*op))
	}
	if !slices.Equal(ops, []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}) {
		t.Errorf("key_ops %v", ops)
	}
	pub := rsaPublic(t, jwk)
	if pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Errorf("RSA key of %d bits, e %d", pub.N.BitLen(), pub.E)
	}
	if !*a.Enabled || !a.Expires.Equal(exp) || a.NotBefore != nil || *a.RecoveryLevel != "Recoverable" || *a.RecoverableDays != 90 ||
		a.Created == nil || a.Updated == nil || *got.Tags["purpose"] != "kek" {
		t.Errorf("attributes %+v tags %v", a, got.Tags)
	}

	// Wrapped here with the public key, unwrapped by the vault.
	dek := newDEK(t)
	wrapped := wrapLocally(t, pub, dek)
	for i, version := range []string{versions[0], ""} {
		un, err := client.UnwrapKey(ctx, "kek", version, azkeys.KeyOperationParameters{Algorithm: to(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped}, nil)
		if err != nil {
			t.Fatalf("unwrap (version %q): %v", version, err)
		}
		if !bytes.Equal(un.Result, dek) || un.KID.Version() != versions[0] {
			t.Errorf("unwrap (version %q) = %x kid %v, want %x", version, un.Result, *un.KID, dek)
		}
		if n := c.UnwrapCount(keyVault, "kek"); n != i+1 {
			t.Errorf("UnwrapCount = %d, want %d", n, i+1)
		}
	}

	// Every algorithm Key Vault offers for RSA round-trips through the vault.
	for _, alg := range []azkeys.EncryptionAlgorithm{azkeys.EncryptionAlgorithmRSAOAEP256, azkeys.EncryptionAlgorithmRSAOAEP, azkeys.EncryptionAlgorithmRSA15} {
		w, err := client.WrapKey(ctx, "kek", "", azkeys.KeyOperationParameters{Algorithm: to(alg), Value: dek}, nil)
		if err != nil {
			t.Fatalf("wrap %s: %v", alg, err)
		}
		un, err := client.UnwrapKey(ctx, "kek", w.KID.Version(), azkeys.KeyOperationParameters{Algorithm: to(alg), Value: w.Result}, nil)
		if err != nil || !bytes.Equal(un.Result, dek) {
			t.Errorf("wrap then unwrap %s: %v", alg, err)
		}
		enc, err := client.Encrypt(ctx, "kek", "", azkeys.KeyOperationParameters{Algorithm: to(alg), Value: []byte("plain text")}, nil)
		if err != nil {
			t.Fatalf("encrypt %s: %v", alg, err)
		}
		dec, err := client.Decrypt(ctx, "kek", "", azkeys.KeyOperationParameters{Algorithm: to(alg), Value: enc.Result}, nil)
		if err != nil || string(dec.Result) != "plain text" {
			t.Errorf("encrypt then decrypt %s: %v %q", alg, err, dec.Result)
		}
	}
	// A value wrapped under one algorithm does not unwrap under another.
	if _, err := client.UnwrapKey(ctx, "kek", "", azkeys.KeyOperationParameters{Algorithm: to(azkeys.EncryptionAlgorithmRSAOAEP), Value: wrapped}, nil); err == nil {
		t.Error("RSA-OAEP-256 value unwrapped as RSA-OAEP")
	} else if e := kvErrOf(t, err); e.status != 400 || e.code != "BadParameter" {
		t.Errorf("unwrap under the wrong algorithm: %+v", e)
	}

	// The challenge, then requests that carry tenantA's token.
	var challenges, unwraps int
	for _, r := range c.Requests() {
		if r.Host != keyVault+"."+cloudtest.VaultSuffix {
			continue
		}
		switch {
		case r.Tenant == "":
			challenges++
		case r.Tenant != tenantA:
			t.Errorf("%s %s carried a token of %q", r.Method, r.Path, r.Tenant)
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/unwrapkey"):
			unwraps++
		}
	}
	if challenges != 1 || unwraps != 6 {
		t.Errorf("%d challenges and %d unwrap requests, want 1 and 6", challenges, unwraps)
	}

	// A new version: new material, the old version still usable by id.
	v2, ok := c.RotateKey(keyVault, "kek")
	if !ok || v2 == versions[0] {
		t.Fatalf("RotateKey = %q %v", v2, ok)
	}
	cur, err := client.GetKey(ctx, "kek", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Key.KID.Version() != v2 || rsaPublic(t, cur.Key).N.Cmp(pub.N) == 0 || !cur.Attributes.Expires.Equal(exp) {
		t.Errorf("after rotation: kid %v, same modulus %v", *cur.Key.KID, rsaPublic(t, cur.Key).N.Cmp(pub.N) == 0)
	}
	old, err := client.GetKey(ctx, "kek", versions[0], nil)
	if err != nil || rsaPublic(t, old.Key).N.Cmp(pub.N) != 0 {
		t.Errorf("old version by id: %v", err)
	}
	if un, err := client.UnwrapKey(ctx, "kek", versions[0], azkeys.KeyOperationParameters{Algorithm: to(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped}, nil); err != nil || !bytes.Equal(un.Result, dek) {
		t.Errorf("unwrap with the old version: %v", err)
	}
	if _, err := client.UnwrapKey(ctx, "kek", "", azkeys.KeyOperationParameters{Algorithm: to(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped}, nil); err == nil {
		t.Error("a value wrapped by the old version unwrapped with the new one")
	}
	c.SetKey(keyVault, "kek", cloudtest.Key{Enabled: true})
	all := c.KeyVersions(keyVault, "kek")
	if len(all) != 3 || all[0] != versions[0] || all[1] != v2 {
		t.Errorf("versions after SetKey: %v", all)
	}
	pager := client.NewListKeyPropertiesVersionsPager("kek", nil)
	var listed []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			listed = append(listed, p.KID.Version())
		}
	}
	if !slices.Equal(listed, all) {
		t.Errorf("listed versions %v, want %v", listed, all)
	}
	// Changing the current version's attributes keeps its material.
	c.UpdateVault(keyVault, func(v *cloudtest.Vault) {
		k := v.Keys["kek"]
		k.Tags = map[string]string{"changed": "yes"}
		v.Keys["kek"] = k
	})
	if n := len(c.KeyVersions(keyVault, "kek")); n != 3 {
		t.Errorf("%d versions after an attribute change, want 3", n)
	}
}

func to[T any](v T) *T { return &v }

// Each fault answers as Key Vault does, through the real azkeys client.
func TestKeyVaultKeyFaults(t *testing.T) {
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	type want struct {
		status      int // 200: success
		code, inner string
		msg         string // a part of the message
	}
	ok := want{status: 200}
	tests := []struct {
		name string
		key  cloudtest.Key
		// what each operation answers; a missing one is not tried
		get, wrap, unwrap, encrypt, decrypt *want
		wrongValue                          bool // unwrap answers another value
		// newVersion sets the key as a new version (a type of its own)
		// rather than as the faults of the RSA version the values are
		// wrapped with
		newVersion bool
	}{
		{name: "rbac forbids all", key: cloudtest.Key{Enabled: true, Status: 403},
			get:    &want{403, "Forbidden", "ForbiddenByRbac", "Action: 'Microsoft.KeyVault/vaults/keys/read'"},
			unwrap: &want{403, "Forbidden", "ForbiddenByRbac", "Action: 'Microsoft.KeyVault/vaults/keys/unwrap/action'"}},
		{name: "not found", key: cloudtest.Key{Enabled: true, Status: 404},
			get: &want{404, "KeyNotFound", "", "A key with (name/id) k was not found in this key vault"}},
		{name: "always throttled", key: cloudtest.Key{Enabled: true, Status: 429},
			get: &want{429, "Throttled", "", "too many requests"}},
		{name: "server error", key: cloudtest.Key{Enabled: true, Status: 500},
			unwrap: &want{500, "InternalServerError", "", ""}},
		{name: "role without unwrap", key: cloudtest.Key{Enabled: true, UnwrapStatus: 403},
			get: &ok, wrap: &ok, encrypt: &ok, decrypt: &ok,
			unwrap: &want{403, "Forbidden", "ForbiddenByRbac", "keys/unwrap/action"}},
		{name: "firewall", key: cloudtest.Key{Enabled: true, Firewall: true},
			get:    &want{403, "Forbidden", "ForbiddenByFirewall", "Client address is not authorized and caller is not a trusted service."},
			unwrap: &want{403, "Forbidden", "ForbiddenByFirewall", "Caller: appid=" + appID}},
		{name: "access policy without unwrapKey", key: cloudtest.Key{Enabled: true, AccessPolicyDenied: []string{"unwrapKey"}},
			get: &ok, wrap: &ok,
			unwrap: &want{403, "Forbidden", "AccessDenied", "does not have keys unwrapKey permission on key vault 'kv-keys;location="}},
		{name: "access policy without get", key: cloudtest.Key{Enabled: true, AccessPolicyDenied: []string{"get", "wrapKey"}},
			get:    &want{403, "Forbidden", "AccessDenied", "does not have keys get permission"},
			wrap:   &want{403, "Forbidden", "AccessDenied", "does not have keys wrapKey permission"},
			unwrap: &ok},
		{name: "disabled", key: cloudtest.Key{},
			get: &ok, wrap: &ok, encrypt: &ok,
			unwrap:  &want{403, "Forbidden", "KeyDisabled", "Operation unwrapKey is not allowed on a disabled key."},
			decrypt: &want{403, "Forbidden", "KeyDisabled", "Operation decrypt is not allowed on a disabled key."}},
		{name: "expired", key: cloudtest.Key{Enabled: true, ExpiresOn: past},
			get: &ok, unwrap: &ok, decrypt: &ok,
			wrap:    &want{403, "Forbidden", "KeyExpired", "wrapKey"},
			encrypt: &want{403, "Forbidden", "KeyExpired", "encrypt"}},
		{name: "not yet valid", key: cloudtest.Key{Enabled: true, NotBefore: future},
			get: &ok, unwrap: &ok, decrypt: &ok,
			wrap: &want{403, "Forbidden", "KeyNotYetValid", "wrapKey"}},
		{name: "key_ops without unwrapKey", key: cloudtest.Key{Enabled: true, KeyOps: []string{"wrapKey", "encrypt", "decrypt"}},
			get: &ok, wrap: &ok, encrypt: &ok, decrypt: &ok,
			unwrap: &want{403, "Forbidden", "KeyOperationForbidden", "Operation unwrapKey is not permitted on this key."}},
		{name: "EC key", key: cloudtest.Key{Enabled: true, Kty: "EC"}, newVersion: true,
			get:  &ok,
			wrap: &want{403, "Forbidden", "KeyOperationForbidden", "Operation wrapKey is not permitted on this key."}},
		{name: "EC key that lists wrapKey", key: cloudtest.Key{Enabled: true, Kty: "EC", KeyOps: []string{"wrapKey", "unwrapKey"}}, newVersion: true,
			wrap: &want{400, "BadParameter", "", "not supported for key type EC"}, unwrap: &want{400, "BadParameter", "", ""}},
		{name: "oct key", key: cloudtest.Key{Enabled: true, Kty: "oct"}, newVersion: true,
			get: &ok, wrap: &want{400, "BadParameter", "", "not supported for key type oct"}},
		{name: "wrong unwrap", key: cloudtest.Key{Enabled: true, WrongUnwrap: true},
			unwrap: &ok, wrongValue: true},
		{name: "throttled, then served", key: cloudtest.Key{Enabled: true, Throttle: 2},
			unwrap: &ok},
	}
	c, client := startKeys(t, map[string]cloudtest.Key{"k": {Enabled: true}})
	ctx := context.Background()
	good, err := client.GetKey(ctx, "k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, version := rsaPublic(t, good.Key), good.Key.KID.Version()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The faults and attributes of the case on the key material
			// the values below are wrapped with.
			k := tt.key
			if !tt.newVersion {
				k.Version = version
			}
			c.SetKey(keyVault, "k", k)
			dek := newDEK(t)
			wrapped := wrapLocally(t, pub, dek)
			enc := wrapLocally(t, pub, []byte("secret"))
			unwrapsBefore := c.UnwrapCount(keyVault, "k")

			check := func(op string, w *want, call func() ([]byte, error), wantValue []byte) {
				t.Helper()
				if w == nil {
					return
				}
				got, err := call()
				if w.status == 200 {
					if err != nil {
						t.Errorf("%s: %v", op, err)
					} else if wantValue != nil && bytes.Equal(got, wantValue) == tt.wrongValue {
						t.Errorf("%s = %x, want %x (wrong: %v)", op, got, wantValue, tt.wrongValue)
					}
					return
				}
				if err == nil {
					t.Errorf("%s: no error, want %d", op, w.status)
					return
				}
				e := kvErrOf(t, err)
				if e.status != w.status || e.code != w.code || e.inner != w.inner || !strings.Contains(e.msg, w.msg) {
					t.Errorf("%s = %d %s/%s %q, want %d %s/%s containing %q", op, e.status, e.code, e.inner, e.msg, w.status, w.code, w.inner, w.msg)
				}
			}
			params := func(v []byte) azkeys.KeyOperationParameters {
				return azkeys.KeyOperationParameters{Algorithm: to(azkeys.EncryptionAlgorithmRSAOAEP256), Value: v}
			}
			check("get", tt.get, func() ([]byte, error) {
				r, err := client.GetKey(ctx, "k", "", nil)
				if err == nil && *r.Attributes.Enabled != tt.key.Enabled {
					t.Errorf("get: enabled %v, want %v", *r.Attributes.Enabled, tt.key.Enabled)
				}
				return nil, err
			}, nil)
			check("wrap", tt.wrap, func() ([]byte, error) {
				r, err := client.WrapKey(ctx, "k", "", params(dek), nil)
				return r.Result, err
			}, nil)
			check("encrypt", tt.encrypt, func() ([]byte, error) {
				r, err := client.Encrypt(ctx, "k", "", params([]byte("secret")), nil)
				return r.Result, err
			}, nil)
			check("unwrap", tt.unwrap, func() ([]byte, error) {
				r, err := client.UnwrapKey(ctx, "k", "", params(wrapped), nil)
				return r.Result, err
			}, dek)
			check("decrypt", tt.decrypt, func() ([]byte, error) {
				r, err := client.Decrypt(ctx, "k", "", params(enc), nil)
				return r.Result, err
			}, []byte("secret"))

			wantUnwraps := 0
			if tt.unwrap != nil && tt.unwrap.status == 200 && !tt.wrongValue {
				wantUnwraps = 1
			}
			if n := c.UnwrapCount(keyVault, "k") - unwrapsBefore; n != wantUnwraps {
				t.Errorf("UnwrapCount grew by %d, want %d", n, wantUnwraps)
			}
		})
	}

	t.Run("no such key", func(t *testing.T) {
		_, err := client.GetKey(ctx, "missing", "", nil)
		if e := kvErrOf(t, err); e.status != 404 || e.code != "KeyNotFound" {
			t.Errorf("missing key: %+v", e)
		}
		_, err = client.GetKey(ctx, "k", "0123456789abcdef0123456789abcdef", nil)
		if e := kvErrOf(t, err); e.status != 404 || e.code != "KeyNotFound" || !strings.Contains(e.msg, "k/0123456789abcdef0123456789abcdef") {
			t.Errorf("missing version: %+v", e)
		}
	})
	t.Run("throttling answers retry-after-ms", func(t *testing.T) {
		c.SetKey(keyVault, "slow", cloudtest.Key{Enabled: true, Throttle: 1})
		_, err := client.GetKey(ctx, "slow", "", &azkeys.GetKeyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.SetKey(keyVault, "slow", cloudtest.Key{Enabled: true, Status: 429})
		noRetry := policy.WithRetryOptions(ctx, policy.RetryOptions{MaxRetries: -1})
		_, err = client.GetKey(noRetry, "slow", "", nil)
		if e := kvErrOf(t, err); e.status != 429 || e.retryAfterMS == "" {
			t.Errorf("429: %+v", e)
		}
	})
	t.Run("vault status names the key permission", func(t *testing.T) {
		c.AddVault("kv-denied", tenantA, cloudtest.Vault{Status: 403, Keys: map[string]cloudtest.Key{"k": {Enabled: true}}})
		denied := keysClient(t, c, "kv-denied")
		_, err := denied.UnwrapKey(ctx, "k", "", azkeys.KeyOperationParameters{Algorithm: to(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("x")}, nil)
		if e := kvErrOf(t, err); e.status != 403 || e.inner != "AccessDenied" || !strings.Contains(e.msg, "does not have keys unwrapKey permission") {
			t.Errorf("vault 403: %+v", e)
		}
	})
}

// The keys API's sizes, recovery levels and other key types on the wire.
func TestKeyVaultKeyShapes(t *testing.T) {
	_, client := startKeys(t, map[string]cloudtest.Key{
		"rsa3072":   {Enabled: true, Size: 3072, RecoveryLevel: "Recoverable+Purgeable"},
		"ec":        {Enabled: true, Kty: "EC"},
		"oct":       {Enabled: true, Kty: "oct"},
		"versioned": {Enabled: true, Version: "0123456789abcdef0123456789abcdef"},
	})
	ctx := context.Background()
	r, err := client.GetKey(ctx, "rsa3072", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := rsaPublic(t, r.Key).N.BitLen(); n != 3072 || *r.Attributes.RecoveryLevel != "Recoverable+Purgeable" {
		t.Errorf("rsa3072: %d bits, recovery level %s", n, *r.Attributes.RecoveryLevel)
	}
	r, err = client.GetKey(ctx, "ec", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *r.Key.Kty != azkeys.KeyTypeEC || *r.Key.Crv != azkeys.CurveNameP256 || len(r.Key.X) != 32 || len(r.Key.Y) != 32 || len(r.Key.N) != 0 || len(r.Key.KeyOps) != 2 {
		t.Errorf("ec key %+v", r.Key)
	}
	r, err = client.GetKey(ctx, "oct", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *r.Key.Kty != azkeys.KeyTypeOct || len(r.Key.K) != 0 || len(r.Key.N) != 0 {
		t.Errorf("oct key %+v: no key material may leave the vault", r.Key)
	}
	r, err = client.GetKey(ctx, "versioned", "", nil)
	if err != nil || r.Key.KID.Version() != "0123456789abcdef0123456789abcdef" {
		t.Errorf("explicit version: %v", err)
	}
	pager := client.NewListKeyPropertiesPager(nil)
	var names []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			names = append(names, p.KID.Name())
			if p.KID.Version() != "" {
				t.Errorf("list kid %s names a version", *p.KID)
			}
		}
	}
	if !slices.Equal(names, []string{"ec", "oct", "rsa3072", "versioned"}) {
		t.Errorf("listed %v", names)
	}
}

// The wire format under the SDK: paths with and without a version, the
// JSON the REST reference documents, the token checks, the request log and
// the latency.
func TestKeyVaultKeysRaw(t *testing.T) {
	c, client := startKeys(t, map[string]cloudtest.Key{"kek": {Enabled: true, NotBefore: time.Now().Add(-time.Hour).Truncate(time.Second)}})
	ctx := context.Background()
	vaultTok, err := secretCred(t, c, tenantA, "s3cret").GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	base := cloudtest.VaultURL(keyVault)
	do := func(method, path, token, body string) (int, map[string]any, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m, resp.Header
	}

	st, bundle, _ := do(http.MethodGet, "/keys/kek?api-version=2025-07-01", vaultTok.Token, "")
	if st != 200 {
		t.Fatalf("GET: %d %v", st, bundle)
	}
	jwk, _ := bundle["key"].(map[string]any)
	attrs, _ := bundle["attributes"].(map[string]any)
	for _, f := range []string{"kid", "kty", "key_ops", "n", "e"} {
		if jwk[f] == nil {
			t.Errorf("key lacks %s: %v", f, jwk)
		}
	}
	for _, f := range []string{"enabled", "nbf", "created", "updated", "recoveryLevel", "recoverableDays"} {
		if attrs[f] == nil {
			t.Errorf("attributes lack %s: %v", f, attrs)
		}
	}
	if _, isNumber := attrs["created"].(float64); !isNumber || attrs["exp"] != nil || jwk["e"] != "AQAB" || strings.ContainsAny(jwk["n"].(string), "+/=") {
		t.Errorf("attributes %v, e %v: times are Unix seconds, big integers unpadded base64url", attrs, jwk["e"])
	}
	nBytes, _ := base64.RawURLEncoding.DecodeString(jwk["n"].(string))
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(nBytes), E: 65537}
	dek := newDEK(t)
	wrapped := wrapLocally(t, pub, dek)
	kid := jwk["kid"].(string)
	version := kid[strings.LastIndex(kid, "/")+1:]

	for _, tt := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"with version", "/keys/kek/" + version + "/unwrapkey", `{"alg":"RSA-OAEP-256","value":"` + base64.RawURLEncoding.EncodeToString(wrapped) + `"}`, 200, ""},
		{"empty version", "/keys/kek//unwrapkey", `{"alg":"RSA-OAEP-256","value":"` + base64.RawURLEncoding.EncodeToString(wrapped) + `"}`, 200, ""},
		{"no version", "/keys/kek/unwrapKey", `{"alg":"RSA-OAEP-256","value":"` + base64.URLEncoding.EncodeToString(wrapped) + `"}`, 200, ""},
		{"no alg", "/keys/kek//unwrapkey", `{"value":"AAAA"}`, 400, "BadParameter"},
		{"unknown alg", "/keys/kek//unwrapkey", `{"alg":"A256KW","value":"AAAA"}`, 400, "BadParameter"},
		{"not base64url", "/keys/kek//unwrapkey", `{"alg":"RSA-OAEP-256","value":"*"}`, 400, "BadParameter"},
		{"too long to wrap", "/keys/kek//wrapkey", `{"alg":"RSA-OAEP-256","value":"` + base64.RawURLEncoding.EncodeToString(make([]byte, 300)) + `"}`, 400, "BadParameter"},
		{"unknown operation", "/keys/kek//sign", `{"alg":"PS256","value":"AAAA"}`, 400, "BadParameter"},
	} {
		st, out, _ := do(http.MethodPost, tt.path+"?api-version=2025-07-01", vaultTok.Token, tt.body)
		if st != tt.status {
			t.Errorf("%s: %d %v, want %d", tt.name, st, out, tt.status)
			continue
		}
		if tt.status == 200 {
			got, _ := base64.RawURLEncoding.DecodeString(fmt.Sprint(out["value"]))
			if !bytes.Equal(got, dek) || out["kid"] != kid {
				t.Errorf("%s: %v", tt.name, out)
			}
			continue
		}
		if e, _ := out["error"].(map[string]any); e["code"] != tt.code {
			t.Errorf("%s: %v, want code %s", tt.name, out, tt.code)
		}
	}

	// The challenge names the vault's tenant; a Graph token, or a token of
	// another tenant, is refused as Key Vault refuses them.
	st, _, hdr := do(http.MethodGet, "/keys/kek?api-version=2025-07-01", "", "")
	if st != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), "/"+tenantA+`"`) {
		t.Errorf("no token: %d %q", st, hdr.Get("WWW-Authenticate"))
	}
	graphTok, err := secretCred(t, c, tenantA, "s3cret").GetToken(ctx, graphScope)
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := do(http.MethodGet, "/keys/kek?api-version=2025-07-01", graphTok.Token, ""); st != 401 {
		t.Errorf("Graph token: %d", st)
	}
	otherTok, err := secretCred(t, c, tenantB, "s3cret").GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, out, _ := do(http.MethodGet, "/keys/kek?api-version=2025-07-01", otherTok.Token, ""); st != 401 || !strings.Contains(fmt.Sprint(out), "AKV10032") {
		t.Errorf("token of another tenant: %d %v", st, out)
	}
	if st, _, _ := do(http.MethodGet, "/keys/kek", vaultTok.Token, ""); st != 400 {
		t.Errorf("no api-version: %d", st)
	}

	// Authenticated key requests pay the latency and are logged.
	c.ResetCounters()
	c.SetLatency(60 * time.Millisecond)
	start := time.Now()
	if _, err := client.UnwrapKey(ctx, "kek", version, azkeys.KeyOperationParameters{Algorithm: to(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("unwrap took %v with 60ms latency", d)
	}
	c.SetLatency(0)
	reqs := c.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != http.MethodPost || last.Path != "/keys/kek/"+version+"/unwrapkey" || last.Tenant != tenantA || last.Host != keyVault+"."+cloudtest.VaultSuffix {
		t.Errorf("logged %+v", last)
	}
}
