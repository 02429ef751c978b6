package onboard

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	testKey   = []byte("0123456789abcdef0123456789abcdef")
	otherKey  = []byte("fedcba9876543210fedcba9876543210")
	stateTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

const (
	tenantA = "3c1e8b2a-5f4d-4e6b-9a7c-2d8f0e1b4a6c"
	tenantB = "11111111-2222-3333-4444-555555555555"
)

func mustMint(t *testing.T, key []byte, tenantID string, now time.Time) string {
	t.Helper()
	s, err := mintState(key, tenantID, now)
	if err != nil {
		t.Fatalf("mintState: %v", err)
	}
	return s
}

func TestStateRoundTrip(t *testing.T) {
	s := mustMint(t, testKey, tenantA, stateTime)
	if strings.ContainsAny(s, "+/=") {
		t.Errorf("state %q is not unpadded base64url", s)
	}
	if strings.Contains(s, tenantA) {
		t.Log("the tenant id is readable inside the state; that is fine, it is not secret")
	}
	for _, d := range []time.Duration{0, time.Minute, stateTTL - time.Second} {
		if err := verifyState(testKey, s, tenantA, stateTime.Add(d)); err != nil {
			t.Errorf("verify %s after minting: %v", d, err)
		}
	}
	if s2 := mustMint(t, testKey, tenantA, stateTime); s2 == s {
		t.Error("two states for the same tenant and time are equal; the nonce is missing")
	}
}

func TestStateRejected(t *testing.T) {
	good := mustMint(t, testKey, tenantA, stateTime)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	reencode := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	withByte := func(i int, b byte) string {
		c := append([]byte(nil), raw...)
		c[i] ^= b
		return reencode(c)
	}
	// A state that claims tenant B, re-signed with the wrong key.
	forgedTenant := append([]byte(nil), raw...)
	copy(forgedTenant, tenantB)
	copy(forgedTenant[statePayload:], stateMAC(otherKey, forgedTenant[:statePayload]))

	tests := []struct {
		name   string
		key    []byte
		state  string
		tenant string
		now    time.Time
		want   error
	}{
		{"empty", testKey, "", tenantA, stateTime, errStateMalformed},
		{"not base64", testKey, strings.Repeat("!", len(good)), tenantA, stateTime, errStateMalformed},
		{"standard base64 padding", testKey, base64.StdEncoding.EncodeToString(raw), tenantA, stateTime, errStateMalformed},
		{"truncated", testKey, good[:len(good)-1], tenantA, stateTime, errStateMalformed},
		{"extended", testKey, good + "A", tenantA, stateTime, errStateMalformed},
		{"wrong key", otherKey, good, tenantA, stateTime, errStateSignature},
		{"tenant byte flipped", testKey, withByte(0, 1), tenantA, stateTime, errStateSignature},
		{"expiry byte flipped", testKey, withByte(stateTenantID+7, 1), tenantA, stateTime, errStateSignature},
		{"nonce byte flipped", testKey, withByte(stateTenantID+8, 1), tenantA, stateTime, errStateSignature},
		{"MAC byte flipped", testKey, withByte(stateLen-1, 0x80), tenantA, stateTime, errStateSignature},
		{"tenant replaced, signed with another key", testKey, reencode(forgedTenant), tenantB, stateTime, errStateSignature},
		{"expired exactly", testKey, good, tenantA, stateTime.Add(stateTTL), errStateExpired},
		{"expired long ago", testKey, good, tenantA, stateTime.Add(48 * time.Hour), errStateExpired},
		{"from the future", testKey, mustMint(t, testKey, tenantA, stateTime.Add(3*time.Hour)), tenantA, stateTime, errStateExpired},
		{"another tenant", testKey, good, tenantB, stateTime, errStateTenant},
		{"tenant in upper case", testKey, good, strings.ToUpper(tenantA), stateTime, errStateTenant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyState(tt.key, tt.state, tt.tenant, tt.now)
			if !errors.Is(err, tt.want) {
				t.Errorf("verifyState = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStateEveryByteIsSigned(t *testing.T) {
	raw, _ := base64.RawURLEncoding.DecodeString(mustMint(t, testKey, tenantA, stateTime))
	for i := range raw {
		c := append([]byte(nil), raw...)
		c[i] ^= 0x01
		if err := verifyState(testKey, base64.RawURLEncoding.EncodeToString(c), tenantA, stateTime); err == nil {
			t.Errorf("flipping byte %d was accepted", i)
		}
	}
}

func TestMintStateRejectsNonCanonicalTenant(t *testing.T) {
	for _, id := range []string{"", "contoso", "{" + tenantA + "}"} {
		if _, err := mintState(testKey, id, stateTime); err == nil {
			t.Errorf("mintState(%q) succeeded", id)
		}
	}
}
