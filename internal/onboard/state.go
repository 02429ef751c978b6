package onboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// The admin-consent state is signed rather than stored, so the callback needs
// no storage and a forged link writes nothing. Its layout, before base64url:
//
//	tenant id (36 ASCII bytes, lower case) | expiry (8 bytes, Unix seconds) |
//	nonce (16 bytes) | HMAC-SHA256 of stateDomain and all of the above
//
// The nonce makes every link distinct; a link can be replayed until it
// expires, which only repeats an idempotent onboarding of the same tenant.
const (
	stateTTL      = time.Hour
	stateTenantID = 36
	stateNonce    = 16
	statePayload  = stateTenantID + 8 + stateNonce
	stateLen      = statePayload + sha256.Size
	// stateDomain keeps a MAC made with this key for any other purpose from
	// being accepted as a state.
	stateDomain = "tenantsweep/admin-consent-state/v1\x00"
)

// Reasons a state is refused. The caller shows one page for all of them; they
// differ only in the log.
var (
	errStateMalformed = errors.New("consent state is malformed")
	errStateSignature = errors.New("consent state signature does not match")
	errStateExpired   = errors.New("consent state has expired")
	errStateTenant    = errors.New("consent state was issued for another tenant")
)

// mintState returns a state for tenantID (canonical lower-case GUID) that
// expires stateTTL after now.
func mintState(key []byte, tenantID string, now time.Time) (string, error) {
	if len(tenantID) != stateTenantID {
		return "", errors.New("mint consent state: tenant id is not a canonical GUID")
	}
	b := make([]byte, statePayload, stateLen)
	copy(b, tenantID)
	binary.BigEndian.PutUint64(b[stateTenantID:], uint64(now.Add(stateTTL).Unix()))
	if _, err := rand.Read(b[stateTenantID+8 : statePayload]); err != nil {
		return "", err
	}
	b = append(b, stateMAC(key, b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// verifyState checks the state's signature (in constant time), its expiry, and
// that it was minted for exactly tenantID.
func verifyState(key []byte, state, tenantID string, now time.Time) error {
	if len(state) != base64.RawURLEncoding.EncodedLen(stateLen) {
		return errStateMalformed
	}
	b, err := base64.RawURLEncoding.DecodeString(state)
	if err != nil || len(b) != stateLen {
		return errStateMalformed
	}
	if !hmac.Equal(b[statePayload:], stateMAC(key, b[:statePayload])) {
		return errStateSignature
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(b[stateTenantID:])), 0)
	// A state from further in the future than a fresh one was not minted here.
	if !now.Before(exp) || exp.Sub(now) > stateTTL+time.Minute {
		return errStateExpired
	}
	if string(b[:stateTenantID]) != tenantID {
		return errStateTenant
	}
	return nil
}

func stateMAC(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stateDomain))
	m.Write(payload)
	return m.Sum(nil)
}
