package tokenshare

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

const (
	tenantA = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB = "bbbbbbbb-0000-4000-8000-000000000002"
	graph   = "https://graph.microsoft.com/.default"
	vault   = "https://vault.azure.net/.default"
	secret  = "sig-of-a-real-token"
)

// jwt is an unsigned token with the given claims, as Entra ID's look to a
// client that does not check signatures.
func jwt(claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	return "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(payload) + "." + secret
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func token(tid, aud string, iat time.Time) azcore.AccessToken {
	return azcore.AccessToken{Token: jwt(map[string]any{"tid": tid, "aud": aud, "iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix()}),
		ExpiresOn: iat.Add(time.Hour)}
}

func TestSealAndOpen(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	k := randomKey(t)
	one, err := New(Options{Key: k, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(Options{Key: k, Now: clk.Now}) // another instance with the same key
	tk := token(tenantA, "https://graph.microsoft.com", clk.now.Add(-time.Minute))
	st, err := one.Seal(tenantA, graph, tk)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(st.Sealed, secret) || strings.Contains(st.Sealed, tk.Token) || st.Resource != "https://graph.microsoft.com" || st.Key == "" {
		t.Fatalf("sealed token %+v", st)
	}
	got, err := other.Open(tenantA, st)
	if err != nil || got.Token != tk.Token || !got.ExpiresOn.Equal(tk.ExpiresOn) {
		t.Fatalf("open: %v, %v", got, err)
	}

	// A v2.0 token's aud is the resource's application id.
	v2 := token(tenantA, "cfa8b339-82a2-471a-a3c9-0fc0be7a4093", clk.now)
	if st, err := one.Seal(tenantA, vault, v2); err != nil {
		t.Errorf("seal a token with a first-party aud: %v", err)
	} else if _, err := other.Open(tenantA, st); err != nil {
		t.Errorf("open it: %v", err)
	}

	for _, tc := range []struct {
		name   string
		tenant string
		change func(*tenant.SharedToken)
		want   error
	}{
		{"copied to another tenant's row", tenantB, func(*tenant.SharedToken) {}, ErrTampered},
		{"moved to another resource", tenantA, func(st *tenant.SharedToken) { st.Resource = "https://vault.azure.net" }, ErrTampered},
		{"made to look newer", tenantA, func(st *tenant.SharedToken) { st.IssuedAt = st.IssuedAt.Add(time.Minute) }, ErrTampered},
		{"given a longer life", tenantA, func(st *tenant.SharedToken) { st.ExpiresOn = st.ExpiresOn.Add(time.Hour) }, ErrTampered},
		{"a byte flipped", tenantA, func(st *tenant.SharedToken) {
			b, _ := base64.RawStdEncoding.DecodeString(st.Sealed)
			b[len(b)-1] ^= 1
			st.Sealed = base64.RawStdEncoding.EncodeToString(b)
		}, ErrTampered},
		{"cut short", tenantA, func(st *tenant.SharedToken) { st.Sealed = st.Sealed[:8] }, ErrTampered},
		{"not base64", tenantA, func(st *tenant.SharedToken) { st.Sealed = "%%%" }, ErrTampered},
		{"another key", tenantA, func(st *tenant.SharedToken) { st.Key = "0badc0de" }, ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := st
			tc.change(&c)
			tk, err := other.Open(tc.tenant, c)
			if !errors.Is(err, tc.want) || tk.Token != "" {
				t.Errorf("open: %q, %v; want %v", tk.Token, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
}

func TestOpenChecksTimes(t *testing.T) {
	clk := &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, _ := New(Options{Key: randomKey(t), Freshness: 30 * time.Minute, Now: clk.Now})
	issued := clk.now
	st, err := s.Seal(tenantA, graph, token(tenantA, "https://graph.microsoft.com", issued))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration // after issue
		want error
	}{
		{-6 * time.Minute, ErrFuture},
		{-4 * time.Minute, nil}, // clock skew
		{29*time.Minute + 59*time.Second, nil},
		{30 * time.Minute, ErrStale},
	} {
		clk.now = issued.Add(tc.at)
		if _, err := s.Open(tenantA, st); !errors.Is(err, tc.want) {
			t.Errorf("%v after issue: %v, want %v", tc.at, err, tc.want)
		}
	}
	// A token issued with less than five minutes left is not used, fresh or
	// not.
	short := token(tenantA, "https://graph.microsoft.com", issued)
	short.ExpiresOn = issued.Add(6 * time.Minute)
	st, _ = s.Seal(tenantA, graph, short)
	clk.now = issued.Add(time.Minute + time.Second)
	if _, err := s.Open(tenantA, st); !errors.Is(err, ErrExpiring) {
		t.Errorf("near expiry: %v", err)
	}
}

// Only a token whose own tid and aud name the tenant and the resource is
// sealed, and a sealed token whose claims do not (sealed by something other
// than Seal) is not opened.
func TestClaimsAreChecked(t *testing.T) {
	now := time.Now()
	s, _ := New(Options{Key: randomKey(t)})
	for _, tc := range []struct {
		name string
		tk   azcore.AccessToken
		want error
	}{
		{"another tenant's token", token(tenantB, "https://graph.microsoft.com", now), ErrClaims},
		{"another resource's token", token(tenantA, "https://vault.azure.net", now), ErrClaims},
		{"an opaque token", azcore.AccessToken{Token: "opaque-" + secret, ExpiresOn: now.Add(time.Hour)}, ErrNotJWT},
		{"a JWT without tid", azcore.AccessToken{Token: jwt(map[string]any{"aud": "https://graph.microsoft.com", "iat": now.Unix()}), ExpiresOn: now.Add(time.Hour)}, ErrNotJWT},
	} {
		if _, err := s.Seal(tenantA, graph, tc.tk); !errors.Is(err, tc.want) {
			t.Errorf("%s: seal: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Sealed by hand, bound to tenant A, but the token is tenant B's.
	tk := token(tenantB, "https://graph.microsoft.com", now)
	st := tenant.SharedToken{Resource: "https://graph.microsoft.com", IssuedAt: time.Unix(now.Unix(), 0), ExpiresOn: tk.ExpiresOn.Truncate(time.Second), Key: s.seal.id}
	nonce := bytes.Repeat([]byte{7}, s.seal.aead.NonceSize())
	st.Sealed = base64.RawStdEncoding.EncodeToString(s.seal.aead.Seal(nonce, nonce, []byte(tk.Token), associated(tenantA, st)))
	if _, err := s.Open(tenantA, st); !errors.Is(err, ErrClaims) {
		t.Errorf("a token of tenant B bound to tenant A: %v", err)
	}
}

// During a rotation the previous key still opens what it sealed; what the
// new key seals, an instance with only the old one cannot open; without a
// key a Sealer's tokens open for it alone.
func TestKeys(t *testing.T) {
	oldKey, newKey := randomKey(t), randomKey(t)
	before, _ := New(Options{Key: oldKey})
	during, _ := New(Options{Key: newKey, Previous: oldKey})
	now := time.Now()
	st, err := before.Seal(tenantA, graph, token(tenantA, "https://graph.microsoft.com", now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := during.Open(tenantA, st); err != nil {
		t.Errorf("the previous key does not open: %v", err)
	}
	st2, _ := during.Seal(tenantA, graph, token(tenantA, "https://graph.microsoft.com", now))
	if st2.Key == st.Key {
		t.Error("the new key seals under the old key's id")
	}
	if _, err := before.Open(tenantA, st2); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("an instance without the new key: %v", err)
	}
	mine, _ := New(Options{})
	theirs, _ := New(Options{})
	if !mine.Ephemeral() || during.Ephemeral() {
		t.Error("Ephemeral")
	}
	st3, _ := mine.Seal(tenantA, graph, token(tenantA, "https://graph.microsoft.com", now))
	if _, err := mine.Open(tenantA, st3); err != nil {
		t.Errorf("a process's own key: %v", err)
	}
	if _, err := theirs.Open(tenantA, st3); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("another process's own key: %v", err)
	}
	if _, err := New(Options{Key: []byte("short")}); err == nil {
		t.Error("a short key was taken")
	}
	if _, err := ParseKey(base64.StdEncoding.EncodeToString(oldKey)); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(oldKey[:16])} {
		if _, err := ParseKey(bad); err == nil || strings.Contains(err.Error(), bad) && bad != "" {
			t.Errorf("ParseKey(%q): %v", bad, err)
		}
	}
}
