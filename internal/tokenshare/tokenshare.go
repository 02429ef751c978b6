// Package tokenshare seals a tenant's access tokens for the registry, so
// that every instance of the app uses a token one instance got, and opens
// them again with every check that makes a stored token safe to use:
//
//   - AES-256-GCM with a key from TOKEN_SHARING_KEY (TOKEN_SHARING_KEY_PREVIOUS
//     is also accepted for opening, during a rotation);
//   - the associated data binds the ciphertext to its tenant, its resource
//     and its issue and expiry times, so a sealed token copied to another
//     tenant's row, or to another resource, or given other times, does not
//     open;
//   - once open, the token's own tid and aud must name the tenant and the
//     resource;
//   - a token issued longer ago than the freshness limit is not used: it is
//     not taken as proof that the tenant's consent still holds, so revoked
//     consent shows within one freshness period;
//   - a token due to expire within five minutes, or issued in the future of
//     this clock (beyond five minutes of skew), is not used either.
//
// Without a configured key the Sealer uses a random key of its own process:
// the tokens it stores open for it alone, and other instances sign in
// again.
package tokenshare

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// Margin is how long before its expiry a token is no longer used, as MSAL
// does not hand out a cached one either, and the clock skew tolerated on a
// token's issue time.
const Margin = 5 * time.Minute

// Errors of Open; none carries the token or the key.
var (
	ErrUnknownKey = errors.New("sealed with a key this instance does not hold")
	ErrTampered   = errors.New("does not open: altered, or copied from another tenant or resource")
	ErrClaims     = errors.New("its tid or aud does not name the tenant and resource")
	ErrStale      = errors.New("issued longer ago than the freshness limit")
	ErrExpiring   = errors.New("expires within five minutes")
	ErrFuture     = errors.New("issued in this clock's future")
	ErrNotJWT     = errors.New("not a JWT whose tid and aud can be checked")
)

type key struct {
	id   string
	aead cipher.AEAD
}

func newKey(raw []byte) (*key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("want %d bytes, got %d", KeySize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("tenantsweep token key id\x00"), raw...))
	return &key{id: hex.EncodeToString(sum[:4]), aead: aead}, nil
}

// ParseKey decodes a key setting: base64 (standard, padded) of KeySize
// bytes. Its errors never echo the value.
func ParseKey(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(raw) != KeySize {
		return nil, fmt.Errorf("must be base64 of %d random bytes (openssl rand -base64 %d)", KeySize, KeySize)
	}
	return raw, nil
}

// Options configure a Sealer.
type Options struct {
	// Key seals and opens; nil means a random key of this process.
	Key []byte
	// Previous also opens (the key before a rotation); nil means none.
	Previous []byte
	// Freshness is how long after its issue a token may be used; default
	// 30 minutes.
	Freshness time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sealer seals and opens tenants' tokens. It is safe for concurrent use.
type Sealer struct {
	seal      *key
	open      []*key
	ephemeral bool
	freshness time.Duration
	now       func() time.Time
}

// New returns a Sealer.
func New(opt Options) (*Sealer, error) {
	s := &Sealer{freshness: opt.Freshness, now: opt.Now}
	if s.freshness <= 0 {
		s.freshness = 30 * time.Minute
	}
	if s.now == nil {
		s.now = time.Now
	}
	raw := opt.Key
	if raw == nil {
		s.ephemeral = true
		raw = make([]byte, KeySize)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
	}
	k, err := newKey(raw)
	if err != nil {
		return nil, fmt.Errorf("token sharing key: %w", err)
	}
	s.seal, s.open = k, []*key{k}
	if opt.Previous != nil {
		p, err := newKey(opt.Previous)
		if err != nil {
			return nil, fmt.Errorf("previous token sharing key: %w", err)
		}
		if p.id != k.id {
			s.open = append(s.open, p)
		}
	}
	return s, nil
}

// Ephemeral reports whether the Sealer's key is its process's own: no
// other instance opens what it seals.
func (s *Sealer) Ephemeral() bool { return s.ephemeral }

// Resource is the resource a scope names: the scope without "/.default",
// in lower case.
func Resource(scope string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(scope, "/.default"), "/"))
}

// claims are what Open reads of a token.
type claims struct {
	Tid string          `json:"tid"`
	Aud json.RawMessage `json:"aud"`
	Iat int64           `json:"iat"`
	Exp int64           `json:"exp"`
}

func readClaims(tok string) (claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return claims{}, ErrNotJWT
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return claims{}, ErrNotJWT
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil || c.Tid == "" || len(c.Aud) == 0 || c.Iat == 0 {
		return claims{}, ErrNotJWT
	}
	return c, nil
}

// firstParty are the application ids v2.0 tokens carry as aud for the
// resources the app reaches, by resource URL host.
var firstParty = map[string]string{
	"graph.microsoft.com":             "00000003-0000-0000-c000-000000000000",
	"graph.microsoft.us":              "00000003-0000-0000-c000-000000000000",
	"dod-graph.microsoft.us":          "00000003-0000-0000-c000-000000000000",
	"microsoftgraph.chinacloudapi.cn": "00000003-0000-0000-c000-000000000000",
	"vault.azure.net":                 "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
	"vault.usgovcloudapi.net":         "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
	"vault.azure.cn":                  "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
	"management.azure.com":            "797f4846-ba00-4fd7-ba43-dac1f8f63013",
	"management.usgovcloudapi.net":    "797f4846-ba00-4fd7-ba43-dac1f8f63013",
	"management.chinacloudapi.cn":     "797f4846-ba00-4fd7-ba43-dac1f8f63013",
}

// audNames reports whether a token's aud claim names resource: the
// resource's URL (with or without a trailing slash) or its first-party
// application id.
func audNames(raw json.RawMessage, resource string) bool {
	var aud string
	if json.Unmarshal(raw, &aud) != nil {
		return false
	}
	aud = strings.ToLower(strings.TrimSuffix(aud, "/"))
	if aud == resource {
		return true
	}
	host := strings.TrimPrefix(resource, "https://")
	return firstParty[host] != "" && aud == firstParty[host]
}

// IssuedAt is a JWT's iat, without checking anything else about it.
func IssuedAt(tok string) (time.Time, bool) {
	c, err := readClaims(tok)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(c.Iat, 0).UTC(), true
}

// associated is the data a sealed token is bound to.
func associated(tenantID string, st tenant.SharedToken) []byte {
	return []byte("tenantsweep/token/v1\x00" + strings.ToLower(tenantID) + "\x00" + st.Resource + "\x00" +
		strconv.FormatInt(st.IssuedAt.Unix(), 10) + "\x00" + strconv.FormatInt(st.ExpiresOn.Unix(), 10))
}

// Seal seals tk, a token of tenantID for the resource scope names. Only a
// JWT whose tid and aud name them is sealed: a token that cannot be checked
// when it is opened is not shared.
func (s *Sealer) Seal(tenantID, scope string, tk azcore.AccessToken) (tenant.SharedToken, error) {
	resource := Resource(scope)
	c, err := readClaims(tk.Token)
	if err != nil {
		return tenant.SharedToken{}, err
	}
	if !strings.EqualFold(c.Tid, tenantID) || !audNames(c.Aud, resource) {
		return tenant.SharedToken{}, ErrClaims
	}
	st := tenant.SharedToken{Resource: resource, IssuedAt: time.Unix(c.Iat, 0).UTC(), ExpiresOn: tk.ExpiresOn.UTC().Truncate(time.Second), Key: s.seal.id}
	nonce := make([]byte, s.seal.aead.NonceSize(), s.seal.aead.NonceSize()+len(tk.Token)+s.seal.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return tenant.SharedToken{}, err
	}
	st.Sealed = base64.RawStdEncoding.EncodeToString(s.seal.aead.Seal(nonce, nonce, []byte(tk.Token), associated(tenantID, st)))
	return st, nil
}

// Open returns the token st seals for tenantID, when it opens with a key
// of this Sealer, names the tenant and resource, and is fresh; otherwise
// an error that says why (never with the token).
func (s *Sealer) Open(tenantID string, st tenant.SharedToken) (azcore.AccessToken, error) {
	now := s.now()
	switch {
	case now.Sub(st.IssuedAt) >= s.freshness:
		return azcore.AccessToken{}, ErrStale
	case st.IssuedAt.After(now.Add(Margin)):
		return azcore.AccessToken{}, ErrFuture
	case !now.Add(Margin).Before(st.ExpiresOn):
		return azcore.AccessToken{}, ErrExpiring
	}
	var k *key
	for _, c := range s.open {
		if c.id == st.Key {
			k = c
		}
	}
	if k == nil {
		return azcore.AccessToken{}, ErrUnknownKey
	}
	sealed, err := base64.RawStdEncoding.DecodeString(st.Sealed)
	if err != nil || len(sealed) < k.aead.NonceSize() {
		return azcore.AccessToken{}, ErrTampered
	}
	plain, err := k.aead.Open(nil, sealed[:k.aead.NonceSize()], sealed[k.aead.NonceSize():], associated(tenantID, st))
	if err != nil {
		return azcore.AccessToken{}, ErrTampered
	}
	tok := string(plain)
	c, err := readClaims(tok)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	if !strings.EqualFold(c.Tid, tenantID) || !audNames(c.Aud, st.Resource) || c.Iat != st.IssuedAt.Unix() {
		return azcore.AccessToken{}, ErrClaims
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: st.ExpiresOn}, nil
}
