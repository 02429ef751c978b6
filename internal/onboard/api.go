// Package onboard is the OnboardTenant HTTP API: it registers a customer
// tenant in the registry (seed step 6's tenant list), verifies at once that the
// customer's admin did steps 3-5, reads, lists and disables tenants, and runs
// the admin-consent round trip (seed step 4) whose redirect lands back here.
package onboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/funchost"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Verifier checks that a tenant is set up: it signs in to the tenant and
// probes Graph and each secret. It never fails; every fault is an outcome.
type Verifier interface {
	Verify(ctx context.Context, rec tenant.Record) tenant.Verification
}

// Store is what the API needs of the tenant registry.
type Store interface {
	// Get returns one tenant, or tenant.ErrNotFound.
	Get(ctx context.Context, tenantID string) (tenant.Record, error)
	// Mutate reads the tenant (exists=false and a zero record when missing),
	// applies fn, and writes the result conditionally on the version read:
	// on a concurrent change it re-reads and re-applies fn, so no update is
	// lost. fn may be called more than once and must not have side effects.
	// An error from fn aborts the write and is returned as is.
	Mutate(ctx context.Context, tenantID string, fn func(rec *tenant.Record, exists bool) error) (rec tenant.Record, created bool, err error)
	// List returns one page of tenants in key order; a token it did not
	// issue is tenant.ErrBadContinuation.
	List(ctx context.Context, pageSize int, continuation string) (tenant.Page, error)
}

// Forgetter drops what the process keeps of a tenant.
type Forgetter interface {
	Forget(tenantID string)
}

// Config wires the API. Store and Verifier are required.
type Config struct {
	Store    Store
	Verifier Verifier
	// Forget are told about disabled tenants, so that nothing the process
	// keeps of them outlives the offboarding.
	Forget []Forgetter
	Cloud  cloud.Cloud
	// AppID is the multi-tenant app's client id, used in the consent link.
	AppID string
	// VerifyTimeout bounds the verification after onboarding; 0 means 10s.
	VerifyTimeout time.Duration
	// Homes, when set, is asked about a tenant before it is recorded (the
	// tenant's OpenID metadata): an unknown tenant, or one of another cloud
	// than Cloud, is refused with 422 and nothing is written.
	Homes HomeReader
	// Lookup, when set, fills an empty display name and the tenant's
	// default domain from the app's home tenant.
	Lookup TenantLookup
	// CheckTimeout bounds that check and lookup; 0 means 5s.
	CheckTimeout time.Duration
	// RedirectURI and StateKey enable the admin-consent flow; without both
	// it answers 501.
	RedirectURI string
	StateKey    []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Limits of the API.
const (
	MaxBodyBytes    = 64 << 10
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// maxContinuation bounds a token passed through to the store.
	maxContinuation = 4096
)

// ConsentCallbackPath is the admin-consent redirect URI's path, served by
// the ConsentCallback function (ONBOARD_REDIRECT_URI ends with it).
const ConsentCallbackPath = "/api/consent/callback"

// API serves /api/tenants and the consent callback.
type API struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the API. It panics if Store or Verifier is missing, which is a
// wiring bug.
func New(cfg Config) *API {
	if cfg.Store == nil || cfg.Verifier == nil {
		panic("onboard.New: Store and Verifier are required")
	}
	if cfg.VerifyTimeout <= 0 {
		cfg.VerifyTimeout = 10 * time.Second
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &API{cfg: cfg, mux: http.NewServeMux()}
	a.mux.Handle("POST "+TenantsPath, a.handle(a.post))
	a.mux.Handle("GET "+TenantsPath, a.handle(a.list))
	a.mux.Handle("GET "+TenantsPath+"/{tenantId}", a.handle(a.get))
	a.mux.Handle("DELETE "+TenantsPath+"/{tenantId}", a.handle(a.delete))
	// ServeMux's own 404 and 405 answers are plain text; these give JSON.
	a.mux.Handle(TenantsPath, a.handle(methodNotAllowed("GET, HEAD, POST")))
	a.mux.Handle(TenantsPath+"/{tenantId}", a.handle(methodNotAllowed("DELETE, GET, HEAD")))
	// The admin-consent redirect: its own function (ConsentCallback), with
	// no function key, since Entra ID's redirect cannot carry one. The
	// signed state is its only guard, checked before any work.
	a.mux.HandleFunc("GET "+ConsentCallbackPath, a.consentCallback)
	a.mux.Handle(ConsentCallbackPath, a.handle(methodNotAllowed("GET, HEAD")))
	a.mux.Handle("/", a.handle(func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusNotFound, "not_found", "no such endpoint; the API is /api/tenants")
	}))
	return a
}

// ServeHTTP serves the API. The Functions host matches routes in any case;
// funchost.CanonicalRoutes, in front of the API, gives a request for
// /API/Tenants the routes' case.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mux.ServeHTTP(w, r)
}

// TenantsPath is the API's route; ConsentCallbackPath is the callback's.
const TenantsPath = "/api/tenants"

// httpError is an error the client is told about as is.
type httpError struct {
	status  int
	code    string
	message string
	allow   string // the Allow header of a 405
	// cause is logged, never sent.
	cause error
}

func (e *httpError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// handle adapts a handler that returns an error. Only *httpError text reaches
// the client; anything else is logged and answered with a generic 500, since
// store errors can carry request URLs and response bodies.
func (a *API) handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			zerolog.Ctx(r.Context()).Error().Err(err).Str("method", r.Method).Msg("onboard request failed")
			he = errorf(http.StatusInternalServerError, "internal", "internal error; it has been logged")
		}
		if he.cause != nil {
			zerolog.Ctx(r.Context()).Error().Err(he.cause).Str("method", r.Method).Str("code", he.code).Msg("onboard request failed")
		}
		if he.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "10")
		}
		if he.allow != "" {
			w.Header().Set("Allow", he.allow)
		}
		funchost.WriteError(w, he.status, he.code, he.message)
	})
}

func methodNotAllowed(allow string) func(http.ResponseWriter, *http.Request) error {
	return func(_ http.ResponseWriter, r *http.Request) error {
		e := errorf(http.StatusMethodNotAllowed, "method_not_allowed", "method %s is not allowed here; allowed: %s", r.Method, allow)
		e.allow = allow
		return e
	}
}

// storeError maps the registry's errors to answers; op names the operation
// for the log.
func storeError(op, tenantID string, err error) error {
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "tenant %s is not onboarded", tenantID)
	case errors.Is(err, tenant.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "the registration is too large for the registry; register fewer vaults or secrets")
	case errors.Is(err, tenant.ErrConflict):
		return errorf(http.StatusConflict, "conflict", "tenant %s was changed concurrently; retry the request", tenantID)
	case errors.Is(err, tenant.ErrUnavailable):
		return unavailable(fmt.Errorf("%s tenant %s: %w", op, tenantID, err))
	}
	return fmt.Errorf("%s tenant %s: %w", op, tenantID, err)
}

// unavailable is the answer when the registry did not answer within its
// deadline or failed on its side; nothing was written.
func unavailable(cause error) *httpError {
	e := errorf(http.StatusServiceUnavailable, "registry_unavailable", "the tenant registry did not answer in time; retry the request")
	e.cause = cause
	return e
}

func pathTenantID(r *http.Request) (string, error) {
	id, err := tenant.ParseTenantID(r.PathValue("tenantId"))
	if err != nil {
		return "", errorf(http.StatusBadRequest, "invalid_request", "%s", err)
	}
	return id, nil
}

func (a *API) post(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if cs, ok := params["charset"]; err != nil || mt != "application/json" || ok && !strings.EqualFold(cs, "utf-8") {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		}
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	in, err := decodePost(body)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_request", "%s", err)
	}
	reg, err := in.registration().Validate(a.cfg.Cloud)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_request", "%s", err)
	}
	consent, err := in.consentRequested()
	if err != nil {
		return err
	}
	if consent && !a.consentConfigured() {
		return errConsentNotConfigured()
	}
	check, err := a.checkTenant(ctx, &reg)
	if err != nil {
		return err
	}
	if consent {
		return a.consentLink(w, reg.TenantID, check)
	}

	now := a.cfg.Now()
	rec, created, err := a.cfg.Store.Mutate(ctx, reg.TenantID, func(rec *tenant.Record, exists bool) error {
		reg.Apply(rec, exists, now)
		return nil
	})
	if err != nil {
		return storeError("register", reg.TenantID, err)
	}
	rec = a.verify(ctx, rec)
	zerolog.Ctx(ctx).Info().Str("tenantId", rec.TenantID).Bool("created", created).
		Str("outcome", string(rec.Verification.Outcome)).Msg("tenant registered")
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	funchost.WriteJSON(w, status, postResponse{Record: rec, TenantCheck: check})
	return nil
}

// postResponse is a registration's answer: the stored record, and what was
// learnt of the tenant before it was recorded.
type postResponse struct {
	tenant.Record
	TenantCheck *TenantCheck `json:"tenantCheck,omitempty"`
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	tooLarge := errorf(http.StatusRequestEntityTooLarge, "too_large", "the body is larger than %d KiB", MaxBodyBytes>>10)
	if r.ContentLength > MaxBodyBytes {
		return nil, tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, errorf(http.StatusRequestTimeout, "request_timeout", "the body did not arrive in time")
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_request", "the body could not be read")
	}
	return b, nil
}

// verify runs the Verifier under VerifyTimeout and stores its result. The
// write sets the verification only, on a fresh read, so a change made
// meanwhile is kept. A failed write is logged: the caller still learns the
// result, and the next onboarding or sweep reports again.
func (a *API) verify(ctx context.Context, rec tenant.Record) tenant.Record {
	vctx, cancel := context.WithTimeout(ctx, a.cfg.VerifyTimeout)
	v := a.cfg.Verifier.Verify(vctx, rec)
	cancel()
	now := a.cfg.Now()
	if v.At.IsZero() {
		v.At = now
	}

	updated, _, err := a.cfg.Store.Mutate(ctx, rec.TenantID, func(r *tenant.Record, exists bool) error {
		if !exists { // removed meanwhile: do not bring it back
			return tenant.ErrNotFound
		}
		vv := v
		r.Verification = &vv
		return nil
	})
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("tenantId", rec.TenantID).Msg("store verification result")
		rec.Verification = &v
		return rec
	}
	return updated
}

func (a *API) get(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenantID(r)
	if err != nil {
		return err
	}
	rec, err := a.cfg.Store.Get(r.Context(), id)
	if err != nil {
		return storeError("get", id, err)
	}
	funchost.WriteJSON(w, http.StatusOK, rec)
	return nil
}

type listResponse struct {
	Tenants []tenant.Record `json:"tenants"`
	Next    string          `json:"next,omitempty"`
}

func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	size := DefaultPageSize
	if q.Has("pageSize") {
		n, err := strconv.Atoi(q.Get("pageSize"))
		if err != nil || n < 1 || n > MaxPageSize {
			return errorf(http.StatusBadRequest, "invalid_request", "pageSize: must be an integer from 1 to %d", MaxPageSize)
		}
		size = n
	}
	next := q.Get("next")
	if len(next) > maxContinuation {
		return errorf(http.StatusBadRequest, "invalid_request", "next: the continuation token is invalid")
	}
	page, err := a.cfg.Store.List(r.Context(), size, next)
	if err != nil {
		if errors.Is(err, tenant.ErrBadContinuation) {
			return errorf(http.StatusBadRequest, "invalid_request", "next: the continuation token is invalid")
		}
		if errors.Is(err, tenant.ErrUnavailable) {
			return unavailable(fmt.Errorf("list tenants: %w", err))
		}
		return fmt.Errorf("list tenants: %w", err)
	}
	resp := listResponse{Tenants: page.Records, Next: page.Next}
	if resp.Tenants == nil {
		resp.Tenants = []tenant.Record{}
	}
	funchost.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// delete disables the tenant; the record is kept so that its history stays
// readable and a later POST re-activates it.
func (a *API) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenantID(r)
	if err != nil {
		return err
	}
	now := a.cfg.Now()
	_, _, err = a.cfg.Store.Mutate(r.Context(), id, func(rec *tenant.Record, exists bool) error {
		if !exists {
			return tenant.ErrNotFound
		}
		rec.Status = tenant.StatusDisabled
		rec.UpdatedAt = now
		rec.Shared = tenant.Shared{} // its shared tokens go with it
		return nil
	})
	if err != nil {
		return storeError("disable", id, err)
	}
	for _, f := range a.cfg.Forget {
		f.Forget(id)
	}
	zerolog.Ctx(r.Context()).Info().Str("tenantId", id).Msg("tenant disabled")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
