package onboard

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
	"github.com/tenantsweep/tenantsweep/internal/tenant/tenanttest"
)

const (
	testAppID       = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	testRedirectURI = "https://tenantsweep.azurewebsites.net/api/consent/callback"
	// Values that must never show up in a response or a log.
	authHeader = "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.SECRET-TOKEN"
	funcKey    = "FUNCTION-KEY-abc123=="
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	api    *API
	store  *tenanttest.Store
	ver    *fakeVerifier
	forget *fakeForgetter
	clock  *fakeClock
	logs   *bytes.Buffer
}

func newEnv(t *testing.T, edit func(*Config), recs ...tenant.Record) *env {
	t.Helper()
	e := &env{
		store:  tenanttest.New(recs...),
		ver:    &fakeVerifier{result: tenant.Verification{Outcome: outcome.OK}},
		forget: &fakeForgetter{},
		clock:  &fakeClock{t: t0},
		logs:   &bytes.Buffer{},
	}
	cfg := Config{
		Store:         e.store,
		Verifier:      e.ver,
		Forget:        []Forgetter{e.forget},
		Cloud:         cloud.AzurePublic,
		AppID:         testAppID,
		VerifyTimeout: 3 * time.Second,
		RedirectURI:   testRedirectURI,
		StateKey:      testKey,
		Now:           e.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	e.api = New(cfg)
	return e
}

// do sends a request with the headers a real caller would, including
// credentials that must not leak.
func (e *env) do(t *testing.T, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.serve(req)
}

func (e *env) serve(req *http.Request) *httptest.ResponseRecorder {
	req.Header.Set("Authorization", authHeader)
	req.Header.Set("x-functions-key", funcKey)
	logger := zerolog.New(e.logs)
	req = req.WithContext(logger.WithContext(req.Context()))
	rr := httptest.NewRecorder()
	e.api.ServeHTTP(rr, req)
	if strings.Contains(rr.Body.String(), "SECRET-TOKEN") || strings.Contains(rr.Body.String(), funcKey) ||
		strings.Contains(e.logs.String(), "SECRET-TOKEN") || strings.Contains(e.logs.String(), funcKey) {
		panic("a credential header leaked into a response or a log")
	}
	return rr
}

func registrationBody(tenantID string) string {
	return `{"tenantId":"` + tenantID + `","displayName":"Contoso","graph":true,"keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":["db-password"]}]}`
}

func decodeRecord(t *testing.T, rr *httptest.ResponseRecorder) tenant.Record {
	t.Helper()
	if ct := rr.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var rec tenant.Record
	dec := json.NewDecoder(rr.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("decode record: %v", err)
	}
	return rec
}

// wantError checks the status and the exact shape of an error body.
func wantError(t *testing.T, rr *httptest.ResponseRecorder, status int, code string) string {
	t.Helper()
	if rr.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rr.Code, status, rr.Body)
	}
	if ct := rr.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(rr.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Error == nil {
		t.Fatalf("error body %q: %v", rr.Body, err)
	}
	if body.Error.Code != code {
		t.Errorf("code = %q, want %q (%s)", body.Error.Code, code, body.Error.Message)
	}
	if body.Error.Message == "" {
		t.Error("empty error message")
	}
	return body.Error.Message
}

func TestPostCreatesThenUpdates(t *testing.T) {
	e := newEnv(t, nil)
	rr := e.do(t, "POST", "/api/tenants", registrationBody(strings.ToUpper(tenantA)))
	if rr.Code != http.StatusCreated {
		t.Fatalf("first POST: status %d, body %s", rr.Code, rr.Body)
	}
	raw := rr.Body.Bytes()
	var compact bytes.Buffer
	_ = json.Compact(&compact, raw)
	if !bytes.Equal(bytes.TrimSpace(raw), compact.Bytes()) {
		t.Errorf("response is not compact JSON: %s", raw)
	}
	rec := decodeRecord(t, rr)
	want := tenant.Record{
		TenantID: tenantA, DisplayName: "Contoso", Status: tenant.StatusActive, Graph: true,
		KeyVaults:   []tenant.KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Secrets: []string{"db-password"}}},
		OnboardedAt: t0, UpdatedAt: t0,
		Verification: &tenant.Verification{Outcome: outcome.OK, At: t0},
	}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("record\n got %+v\nwant %+v", rec, want)
	}
	if got := e.store.Writes(); got != 2 {
		t.Errorf("writes = %d, want 2 (registration, verification)", got)
	}
	if e.ver.callCount() != 1 || e.ver.calls[0].TenantID != tenantA || len(e.ver.calls[0].KeyVaults) != 1 {
		t.Errorf("verifier calls = %+v", e.ver.calls)
	}
	if stored, _ := e.store.Stored(tenantA); stored.Verification == nil || stored.Verification.Outcome != outcome.OK {
		t.Errorf("stored verification = %+v", stored.Verification)
	}

	e.clock.Advance(2 * time.Hour)
	rr = e.do(t, "POST", "/api/tenants", strings.Replace(registrationBody(tenantA), "Contoso", "Contoso Ltd", 1))
	if rr.Code != http.StatusOK {
		t.Fatalf("second POST: status %d, body %s", rr.Code, rr.Body)
	}
	rec = decodeRecord(t, rr)
	if rec.DisplayName != "Contoso Ltd" || !rec.OnboardedAt.Equal(t0) || !rec.UpdatedAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("updated record = %+v", rec)
	}
	if rec.Verification == nil || !rec.Verification.At.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("verification not refreshed: %+v", rec.Verification)
	}
	if got := e.store.Writes(); got != 4 {
		t.Errorf("writes = %d, want 4", got)
	}
}

func TestPostRejected(t *testing.T) {
	big := `{"tenantId":"` + tenantA + `","displayName":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	vaults := func(urls ...string) string {
		var kv []string
		for _, u := range urls {
			kv = append(kv, `{"vaultUrl":"`+u+`","secrets":["s"]}`)
		}
		return `{"tenantId":"` + tenantA + `","keyVaults":[` + strings.Join(kv, ",") + `]}`
	}
	var many []string
	for i := range 21 {
		many = append(many, fmt.Sprintf("https://kv%03d.vault.azure.net/", i))
	}
	secrets := func(names string) string {
		return `{"tenantId":"` + tenantA + `","keyVaults":[{"vaultUrl":"https://contoso.vault.azure.net/","secrets":` + names + `}]}`
	}

	tests := []struct {
		name        string
		contentType string // "-" for none
		body        string
		status      int
		code        string
		msg         string
	}{
		{"malformed JSON", "", `{"tenantId":`, 400, "invalid_request", "JSON"},
		{"not JSON at all", "", `hello`, 400, "invalid_request", "malformed JSON"},
		{"empty body", "-", ``, 400, "invalid_request", "empty"},
		{"trailing data", "", `{"tenantId":"` + tenantA + `"} {}`, 400, "invalid_request", "exactly one"},
		{"unknown field", "", `{"tenantId":"` + tenantA + `","plan":"gold"}`, 400, "invalid_request", "plan"},
		{"non-GUID tenant", "", `{"tenantId":"contoso.onmicrosoft.com"}`, 400, "invalid_request", "tenantId"},
		{"nil GUID tenant", "", `{"tenantId":"00000000-0000-0000-0000-000000000000"}`, 400, "invalid_request", "tenantId"},
		{"consumers tenant", "", `{"tenantId":"9188040d-6c67-4c5b-b112-36a304b66dad"}`, 400, "invalid_request", "consumers"},
		{"consumers tenant asking for a consent link", "", `{"tenantId":"9188040D-6C67-4C5B-B112-36A304B66DAD","consent":true}`, 400, "invalid_request", "consumers"},
		{"missing tenant", "", `{"displayName":"x"}`, 400, "invalid_request", "tenantId"},
		{"body over 64 KiB", "", big, 413, "too_large", "64 KiB"},
		{"http vault", "", vaults("http://contoso.vault.azure.net/"), 400, "invalid_request", "keyVaults[0].vaultUrl"},
		{"vault on another host", "", vaults("https://evil.example/"), 400, "invalid_request", "keyVaults[0].vaultUrl"},
		{"vault suffix trick", "", vaults("https://x.vault.azure.net.evil.com/"), 400, "invalid_request", "keyVaults[0].vaultUrl"},
		{"vault with userinfo", "", vaults("https://contoso.vault.azure.net@evil.example/"), 400, "invalid_request", "keyVaults[0].vaultUrl"},
		{"duplicate vaults", "", vaults("https://contoso.vault.azure.net/", "https://CONTOSO.vault.azure.net"), 400, "invalid_request", "keyVaults[1].vaultUrl"},
		{"21 vaults", "", vaults(many...), 400, "invalid_request", "at most 20"},
		{"secret with underscore", "", secrets(`["db_password"]`), 400, "invalid_request", "keyVaults[0].secrets[0]"},
		{"secret too long", "", secrets(`["` + strings.Repeat("a", 128) + `"]`), 400, "invalid_request", "keyVaults[0].secrets[0]"},
		{"empty secret", "", secrets(`[""]`), 400, "invalid_request", "keyVaults[0].secrets[0]"},
		{"no secrets", "", secrets(`[]`), 400, "invalid_request", "keyVaults[0].secrets"},
		{"duplicate secrets", "", secrets(`["db-password","DB-PASSWORD"]`), 400, "invalid_request", "keyVaults[0].secrets[1]"},
		{"nothing to do", "", `{"tenantId":"` + tenantA + `","graph":false}`, 400, "invalid_request", "nothing to check"},
		{"text/plain", "text/plain", registrationBody(tenantA), 415, "unsupported_media_type", "application/json"},
		{"form", "application/x-www-form-urlencoded", registrationBody(tenantA), 415, "unsupported_media_type", "application/json"},
		{"latin-1 JSON", "application/json; charset=iso-8859-1", registrationBody(tenantA), 415, "unsupported_media_type", "application/json"},
		{"unparsable Content-Type", "application/json; charset", registrationBody(tenantA), 415, "unsupported_media_type", "application/json"},
		{"consent with other fields", "", `{"tenantId":"` + tenantA + `","consent":true,"displayName":"x"}`, 400, "invalid_request", "consent"},
		{"consent not a boolean", "", `{"tenantId":"` + tenantA + `","consent":"yes"}`, 400, "invalid_request", "consent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			req := httptest.NewRequest("POST", "/api/tenants", strings.NewReader(tt.body))
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			msg := wantError(t, e.serve(req), tt.status, tt.code)
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not mention %q", msg, tt.msg)
			}
			if n := e.store.Writes(); n != 0 {
				t.Errorf("store writes = %d, want 0", n)
			}
			if n := e.ver.callCount(); n != 0 {
				t.Errorf("verifier calls = %d, want 0", n)
			}
		})
	}
}

func TestPostTooLargeWithoutContentLength(t *testing.T) {
	e := newEnv(t, nil)
	body := io.MultiReader(strings.NewReader(`{"tenantId":"`+tenantA+`","displayName":"`), strings.NewReader(strings.Repeat("a", MaxBodyBytes)))
	req := httptest.NewRequest("POST", "/api/tenants", body)
	req.ContentLength = -1 // chunked
	wantError(t, e.serve(req), http.StatusRequestEntityTooLarge, "too_large")
	if e.store.Writes() != 0 {
		t.Error("a write happened")
	}
}

func TestPostAcceptedContentTypes(t *testing.T) {
	for _, ct := range []string{"", "application/json", "Application/JSON", "application/json; charset=UTF-8"} {
		t.Run(ct, func(t *testing.T) {
			e := newEnv(t, nil)
			req := httptest.NewRequest("POST", "/api/tenants", strings.NewReader(registrationBody(tenantA)))
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			if rr := e.serve(req); rr.Code != http.StatusCreated {
				t.Errorf("status %d: %s", rr.Code, rr.Body)
			}
		})
	}
}

func TestPostExactly64KiBIsRead(t *testing.T) {
	e := newEnv(t, nil)
	body := registrationBody(tenantA)
	body += strings.Repeat(" ", MaxBodyBytes-len(body))
	if rr := e.do(t, "POST", "/api/tenants", body); rr.Code != http.StatusCreated {
		t.Errorf("status %d: %s", rr.Code, rr.Body)
	}
}

func TestStoreErrors(t *testing.T) {
	leaky := errors.New("PUT https://acct.table.core.windows.net/tenants?sig=LEAKY-SAS: 503")
	tests := []struct {
		name      string
		method    string
		target    string
		body      string
		storeErr  error
		status    int
		code      string
		wantInLog bool
	}{
		{"POST, unexpected", "POST", "/api/tenants", registrationBody(tenantA), leaky, 500, "internal", true},
		{"POST, too large", "POST", "/api/tenants", registrationBody(tenantA), fmt.Errorf("upsert: %w", tenant.ErrTooLarge), 413, "too_large", false},
		{"POST, conflict", "POST", "/api/tenants", registrationBody(tenantA), tenant.ErrConflict, 409, "conflict", false},
		{"GET one", "GET", "/api/tenants/" + tenantA, "", leaky, 500, "internal", true},
		{"GET list", "GET", "/api/tenants", "", leaky, 500, "internal", true},
		{"DELETE", "DELETE", "/api/tenants/" + tenantA, "", leaky, 500, "internal", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.store.FailWith(tt.storeErr)
			rr := e.do(t, tt.method, tt.target, tt.body)
			msg := wantError(t, rr, tt.status, tt.code)
			if strings.Contains(rr.Body.String(), "LEAKY") {
				t.Errorf("store error text reached the client: %s", msg)
			}
			if tt.wantInLog && !strings.Contains(e.logs.String(), "LEAKY-SAS") {
				t.Errorf("the real error was not logged: %s", e.logs)
			}
			if e.ver.callCount() != 0 || len(e.forget.ids) != 0 {
				t.Error("verifier or forgetter called after a store error")
			}
		})
	}
}

func TestVerificationDoesNotChangeStatus(t *testing.T) {
	e := newEnv(t, nil)
	e.ver.result = tenant.Verification{Outcome: outcome.KeyVaultAccessDenied, Step: "5", Message: "403 on db-password", Remediation: "grant Key Vault Secrets User", At: t0}
	rr := e.do(t, "POST", "/api/tenants", registrationBody(tenantA))
	if rr.Code != http.StatusCreated {
		t.Fatalf("status %d", rr.Code)
	}
	rec := decodeRecord(t, rr)
	if rec.Verification == nil || !reflect.DeepEqual(*rec.Verification, e.ver.result) {
		t.Errorf("verification = %+v, want %+v", rec.Verification, e.ver.result)
	}
}

func TestVerificationWriteKeepsConcurrentChange(t *testing.T) {
	e := newEnv(t, nil)
	e.ver.during = func(ctx context.Context, rec tenant.Record) {
		// The sweep records a result while onboarding verifies.
		_, _, _ = e.store.Mutate(ctx, rec.TenantID, func(r *tenant.Record, exists bool) error {
			r.LastSweep = &tenant.SweepResult{Outcome: outcome.OK, At: t0}
			return nil
		})
	}
	rr := e.do(t, "POST", "/api/tenants", registrationBody(tenantA))
	rec := decodeRecord(t, rr)
	stored, _ := e.store.Stored(tenantA)
	for name, r := range map[string]tenant.Record{"response": rec, "stored": stored} {
		if r.LastSweep == nil || r.Verification == nil || r.DisplayName != "Contoso" {
			t.Errorf("%s record lost a change: %+v", name, r)
		}
	}
	if e.ver.deadline <= 0 || e.ver.deadline > 3*time.Second {
		t.Errorf("verifier deadline = %s, want within VerifyTimeout", e.ver.deadline)
	}
}

func TestVerificationWriteRaceRetries(t *testing.T) {
	e := newEnv(t, nil)
	raced := false
	e.ver.during = func(context.Context, tenant.Record) {
		// Make the first attempt of the verification write lose once.
		e.store.BeforeWrite(func(id string) {
			if !raced {
				raced = true
				r, _ := e.store.Stored(id)
				r.ConsecutiveFailures = 9
				e.store.Put(r)
			}
		})
	}
	rr := e.do(t, "POST", "/api/tenants", registrationBody(tenantA))
	if rr.Code != http.StatusCreated {
		t.Fatalf("status %d", rr.Code)
	}
	stored, _ := e.store.Stored(tenantA)
	if stored.ConsecutiveFailures != 9 || stored.Verification == nil {
		t.Errorf("stored = %+v", stored)
	}
}

func TestVerificationWriteFailureStillAnswers(t *testing.T) {
	e := newEnv(t, nil)
	e.ver.during = func(context.Context, tenant.Record) { e.store.FailWritesWith(errors.New("table down")) }
	rr := e.do(t, "POST", "/api/tenants", registrationBody(tenantA))
	if rr.Code != http.StatusCreated {
		t.Fatalf("status %d", rr.Code)
	}
	if rec := decodeRecord(t, rr); rec.Verification == nil || rec.Verification.Outcome != outcome.OK {
		t.Errorf("verification = %+v", rec.Verification)
	}
	if !strings.Contains(e.logs.String(), "table down") {
		t.Errorf("failure not logged: %s", e.logs)
	}
}

func TestGet(t *testing.T) {
	stored := tenant.Record{TenantID: tenantA, DisplayName: "Contoso", Status: tenant.StatusActive, Graph: true,
		KeyVaults: []tenant.KeyVault{}, OnboardedAt: t0, UpdatedAt: t0}
	tests := []struct {
		name   string
		target string
		status int
		code   string
	}{
		{"found", "/api/tenants/" + tenantA, 200, ""},
		{"found, upper case", "/api/tenants/" + strings.ToUpper(tenantA), 200, ""},
		{"not onboarded", "/api/tenants/" + tenantB, 404, "not_found"},
		{"not a GUID", "/api/tenants/contoso", 400, "invalid_request"},
		{"braces", "/api/tenants/%7B" + tenantA + "%7D", 400, "invalid_request"},
		{"nil GUID", "/api/tenants/00000000-0000-0000-0000-000000000000", 400, "invalid_request"},
		{"consumers tenant", "/api/tenants/9188040d-6c67-4c5b-b112-36a304b66dad", 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, stored)
			rr := e.do(t, "GET", tt.target, "")
			if tt.status != 200 {
				wantError(t, rr, tt.status, tt.code)
				return
			}
			if rr.Code != 200 {
				t.Fatalf("status %d", rr.Code)
			}
			if got := decodeRecord(t, rr); !reflect.DeepEqual(got, stored) {
				t.Errorf("got %+v", got)
			}
		})
	}

	t.Run("exact 404 body", func(t *testing.T) {
		e := newEnv(t, nil)
		rr := e.do(t, "GET", "/api/tenants/"+tenantB, "")
		want := `{"error":{"code":"not_found","message":"tenant ` + tenantB + ` is not onboarded"}}`
		if got := strings.TrimSpace(rr.Body.String()); got != want {
			t.Errorf("body = %s\nwant   %s", got, want)
		}
	})
}

func fiveTenants() []tenant.Record {
	var recs []tenant.Record
	for i := range 5 {
		recs = append(recs, tenant.Record{TenantID: fmt.Sprintf("%08d-0000-0000-0000-000000000000", i+1), Status: tenant.StatusActive, Graph: true})
	}
	return recs
}

func TestListPages(t *testing.T) {
	e := newEnv(t, nil, fiveTenants()...)
	type page struct {
		Tenants []tenant.Record `json:"tenants"`
		Next    *string         `json:"next"`
	}
	var seen []string
	target := "/api/tenants?pageSize=2"
	for i := 0; ; i++ {
		rr := e.do(t, "GET", target, "")
		if rr.Code != 200 || rr.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("page %d: status %d %s", i, rr.Code, rr.Body)
		}
		var p page
		if err := json.Unmarshal(rr.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Tenants {
			seen = append(seen, r.TenantID)
		}
		if p.Next == nil {
			if len(p.Tenants) != 1 {
				t.Errorf("last page has %d tenants", len(p.Tenants))
			}
			break
		}
		if *p.Next == "" || len(p.Tenants) != 2 {
			t.Fatalf("page %d: next %q with %d tenants", i, *p.Next, len(p.Tenants))
		}
		target = "/api/tenants?pageSize=2&next=" + url.QueryEscape(*p.Next)
	}
	if len(seen) != 5 {
		t.Errorf("saw %v", seen)
	}

	e.store.TakeListSizes()
	rr := e.do(t, "GET", "/api/tenants", "")
	if sizes := e.store.TakeListSizes(); !reflect.DeepEqual(sizes, []int{DefaultPageSize}) {
		t.Errorf("page sizes asked = %v", sizes)
	}
	if strings.Contains(rr.Body.String(), `"next"`) {
		t.Errorf("single page carries next: %s", rr.Body)
	}
	if rr := e.do(t, "GET", "/api/tenants?pageSize=1000", ""); rr.Code != 200 {
		t.Errorf("pageSize=1000: %d", rr.Code)
	}
}

func TestListEmpty(t *testing.T) {
	e := newEnv(t, nil)
	rr := e.do(t, "GET", "/api/tenants", "")
	if got := strings.TrimSpace(rr.Body.String()); rr.Code != 200 || got != `{"tenants":[]}` {
		t.Errorf("%d %s", rr.Code, got)
	}
}

func TestListRejected(t *testing.T) {
	tests := []struct {
		name  string
		query string
		msg   string
	}{
		{"zero", "pageSize=0", "pageSize"},
		{"negative", "pageSize=-1", "pageSize"},
		{"over max", "pageSize=1001", "pageSize"},
		{"not a number", "pageSize=ten", "pageSize"},
		{"fraction", "pageSize=1.5", "pageSize"},
		{"empty", "pageSize=", "pageSize"},
		{"bad continuation", "next=bogus", "next"},
		{"huge continuation", "next=k:" + strings.Repeat("a", 5000), "next"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, fiveTenants()...)
			msg := wantError(t, e.do(t, "GET", "/api/tenants?"+tt.query, ""), 400, "invalid_request")
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q", msg)
			}
		})
	}

	t.Run("continuation errors other than ErrBadContinuation are internal", func(t *testing.T) {
		e := newEnv(t, nil, fiveTenants()...)
		e.store.FailWith(errors.New("continuation token rejected by the service"))
		wantError(t, e.do(t, "GET", "/api/tenants?next=bogus", ""), 500, "internal")
	})
}

func TestDeleteDisablesThenPostReactivates(t *testing.T) {
	e := newEnv(t, nil)
	if rr := e.do(t, "POST", "/api/tenants", registrationBody(tenantA)); rr.Code != 201 {
		t.Fatalf("POST: %d", rr.Code)
	}

	e.clock.Advance(time.Minute)
	rr := e.do(t, "DELETE", "/api/tenants/"+strings.ToUpper(tenantA), "")
	if rr.Code != http.StatusNoContent || rr.Body.Len() != 0 {
		t.Fatalf("DELETE: %d %q", rr.Code, rr.Body)
	}
	if !reflect.DeepEqual(e.forget.ids, []string{tenantA}) {
		t.Errorf("forgotten = %v", e.forget.ids)
	}
	rec := decodeRecord(t, e.do(t, "GET", "/api/tenants/"+tenantA, ""))
	if rec.Status != tenant.StatusDisabled || !rec.UpdatedAt.Equal(t0.Add(time.Minute)) || rec.DisplayName != "Contoso" || rec.Verification == nil {
		t.Errorf("after DELETE: %+v", rec)
	}

	e.clock.Advance(time.Minute)
	rr = e.do(t, "POST", "/api/tenants", registrationBody(tenantA))
	if rr.Code != http.StatusOK {
		t.Fatalf("re-POST: %d", rr.Code)
	}
	if rec := decodeRecord(t, rr); rec.Status != tenant.StatusActive || !rec.OnboardedAt.Equal(t0) {
		t.Errorf("after re-POST: %+v", rec)
	}
}

func TestDeleteRejected(t *testing.T) {
	tests := []struct {
		name   string
		target string
		status int
		code   string
	}{
		{"not onboarded", "/api/tenants/" + tenantB, 404, "not_found"},
		{"not a GUID", "/api/tenants/contoso", 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, tenant.Record{TenantID: tenantA, Status: tenant.StatusActive})
			wantError(t, e.do(t, "DELETE", tt.target, ""), tt.status, tt.code)
			if e.store.Writes() != 0 || len(e.forget.ids) != 0 {
				t.Errorf("writes %d, forgotten %v", e.store.Writes(), e.forget.ids)
			}
			if _, ok := e.store.Stored(tenantB); ok {
				t.Error("DELETE created a record")
			}
		})
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		method, target string
		status         int
		allow          string
	}{
		{"PUT", "/api/tenants", 405, "GET, HEAD, POST"},
		{"DELETE", "/api/tenants", 405, "GET, HEAD, POST"},
		{"PATCH", "/api/tenants/" + tenantA, 405, "DELETE, GET, HEAD"},
		{"POST", "/api/tenants/" + tenantA, 405, "DELETE, GET, HEAD"},
		{"GET", "/api/other", 404, ""},
		{"GET", "/api/tenants/" + tenantA + "/extra", 404, ""},
		{"GET", "/api/tenants/", 404, ""},
		{"GET", "/", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			e := newEnv(t, nil)
			rr := e.do(t, tt.method, tt.target, "")
			code := "not_found"
			if tt.status == 405 {
				code = "method_not_allowed"
			}
			wantError(t, rr, tt.status, code)
			if got := rr.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestConsentLink(t *testing.T) {
	for _, cl := range cloud.All {
		t.Run(cl.Name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Cloud = cl })
			rr := e.do(t, "POST", "/api/tenants", `{"tenantId":"`+strings.ToUpper(tenantA)+`","consent":true}`)
			if rr.Code != 200 || rr.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("status %d %s", rr.Code, rr.Body)
			}
			var resp map[string]string
			if err := json.Unmarshal(rr.Body.Bytes(), &resp); err != nil || len(resp) != 1 {
				t.Fatalf("body %s: %v", rr.Body, err)
			}
			u, err := url.Parse(resp["consentUrl"])
			if err != nil {
				t.Fatal(err)
			}
			if got, want := u.Scheme+"://"+u.Host+"/", cl.AuthorityHost; got != want {
				t.Errorf("authority = %q, want %q", got, want)
			}
			if want := "/" + tenantA + "/v2.0/adminconsent"; u.Path != want {
				t.Errorf("path = %q, want %q", u.Path, want)
			}
			q := u.Query()
			if len(q) != 4 {
				t.Errorf("query has %d parameters: %v", len(q), q)
			}
			for k, want := range map[string]string{"client_id": testAppID, "scope": cl.GraphEndpoint + "/.default", "redirect_uri": testRedirectURI} {
				if got := q[k]; len(got) != 1 || got[0] != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if err := verifyState(testKey, q.Get("state"), tenantA, t0.Add(59*time.Minute)); err != nil {
				t.Errorf("state: %v", err)
			}
			if err := verifyState(testKey, q.Get("state"), tenantA, t0.Add(time.Hour)); err == nil {
				t.Error("state outlives an hour")
			}
			if e.store.Writes() != 0 || e.ver.callCount() != 0 {
				t.Error("asking for a consent link wrote or verified")
			}
		})
	}

	t.Run("consent false registers", func(t *testing.T) {
		e := newEnv(t, nil)
		if rr := e.do(t, "POST", "/api/tenants", `{"tenantId":"`+tenantA+`","consent":false}`); rr.Code != 201 {
			t.Errorf("status %d", rr.Code)
		}
	})

	for name, edit := range map[string]func(*Config){
		"no redirect URI": func(c *Config) { c.RedirectURI = "" },
		"no state key":    func(c *Config) { c.StateKey = nil },
		"short state key": func(c *Config) { c.StateKey = []byte("short") },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, edit)
			wantError(t, e.do(t, "POST", "/api/tenants", `{"tenantId":"`+tenantA+`","consent":true}`), 501, "consent_not_configured")
			if e.store.Writes() != 0 {
				t.Error("write")
			}
		})
	}
}

// consentState asks the API for a link, as the customer's admin would, and
// returns its state.
func consentState(t *testing.T, e *env, tenantID string) string {
	t.Helper()
	rr := e.do(t, "POST", "/api/tenants", `{"tenantId":"`+tenantID+`","consent":true}`)
	var resp struct{ ConsentURL string }
	if err := json.Unmarshal(rr.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(resp.ConsentURL)
	return u.Query().Get("state")
}

func callbackURL(params ...string) string {
	q := url.Values{}
	for i := 0; i < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	return ConsentCallbackPath + "?" + q.Encode()
}

func wantHTML(t *testing.T, rr *httptest.ResponseRecorder, status int, contains ...string) {
	t.Helper()
	if rr.Code != status {
		t.Errorf("status = %d, want %d; %s", rr.Code, status, rr.Body)
	}
	h := rr.Header()
	if h.Get("Content-Type") != "text/html; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("headers = %v", h)
	}
	for _, s := range contains {
		if !strings.Contains(rr.Body.String(), s) {
			t.Errorf("page does not contain %q:\n%s", s, rr.Body)
		}
	}
}

func TestConsentCallbackRecordsNewTenant(t *testing.T) {
	e := newEnv(t, nil)
	state := consentState(t, e, tenantA)
	e.clock.Advance(10 * time.Minute)
	rr := e.do(t, "GET", callbackURL("admin_consent", "True", "tenant", strings.ToUpper(tenantA), "state", state), "")
	wantHTML(t, rr, 200, "Onboarding succeeded", tenantA)

	rec, ok := e.store.Stored(tenantA)
	if !ok || !rec.Active() || !rec.Graph || len(rec.KeyVaults) != 0 || !rec.OnboardedAt.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("stored = %+v", rec)
	}
	if rec.Verification == nil || rec.Verification.Outcome != outcome.OK {
		t.Errorf("verification = %+v", rec.Verification)
	}
	if e.ver.callCount() != 1 {
		t.Errorf("verifier calls = %d", e.ver.callCount())
	}
}

func TestConsentCallbackKeepsExistingSettings(t *testing.T) {
	backoff := t0.Add(time.Hour)
	existing := tenant.Record{
		TenantID: tenantA, DisplayName: "Contoso", Status: tenant.StatusDisabled, Graph: false,
		KeyVaults:   []tenant.KeyVault{{VaultURL: "https://contoso.vault.azure.net/", Secrets: []string{"db-password"}}},
		OnboardedAt: t0.Add(-30 * 24 * time.Hour), UpdatedAt: t0.Add(-time.Hour),
		ConsecutiveFailures: 5, BackoffUntil: &backoff,
	}
	e := newEnv(t, nil, existing)
	state := consentState(t, e, tenantA)
	wantHTML(t, e.do(t, "GET", callbackURL("admin_consent", "True", "tenant", tenantA, "state", state), ""), 200, "Onboarding succeeded")

	rec, _ := e.store.Stored(tenantA)
	if !rec.Active() || rec.Graph || rec.DisplayName != "Contoso" || !reflect.DeepEqual(rec.KeyVaults, existing.KeyVaults) ||
		!rec.OnboardedAt.Equal(existing.OnboardedAt) || rec.ConsecutiveFailures != 0 || rec.BackoffUntil != nil {
		t.Errorf("stored = %+v", rec)
	}
}

func TestConsentCallbackShowsMissingStep(t *testing.T) {
	e := newEnv(t, nil)
	e.ver.result = tenant.Verification{Outcome: outcome.GraphConsentMissing, Step: "4", Message: "Graph answered 403",
		Remediation: "Grant <b>admin</b> consent & retry"}
	state := consentState(t, e, tenantA)
	rr := e.do(t, "GET", callbackURL("admin_consent", "True", "tenant", tenantA, "state", state), "")
	wantHTML(t, rr, 200, "step 4", "Graph answered 403", "Grant &lt;b&gt;admin&lt;/b&gt; consent &amp; retry",
		"Recorded: tenant "+tenantA+", to be checked for Microsoft Graph.", "admin consent to the app&#39;s Microsoft Graph permissions", "To finish it:")
	if strings.Contains(rr.Body.String(), "<b>admin") {
		t.Error("remediation was not escaped")
	}
}

func TestConsentCallbackRejected(t *testing.T) {
	const invalid = "This consent link is invalid or expired"
	tests := []struct {
		name     string
		edit     func(*Config)
		query    func(stateA, stateB string) string
		advance  time.Duration
		status   int
		contains []string
		absent   string
	}{
		{
			name: "forged signature",
			query: func(a, _ string) string {
				// Change the nonce but keep the old MAC.
				raw, _ := base64.RawURLEncoding.DecodeString(a)
				raw[stateTenantID+8] ^= 1
				return callbackURL("admin_consent", "True", "tenant", tenantA, "state", base64.RawURLEncoding.EncodeToString(raw))
			},
			status: 400, contains: []string{invalid},
		},
		{
			name: "state signed with another key",
			query: func(string, string) string {
				return callbackURL("admin_consent", "True", "tenant", tenantA, "state", mustMintNoT(otherKey, tenantA))
			},
			status: 400, contains: []string{invalid},
		},
		{
			name:    "expired",
			query:   func(a, _ string) string { return callbackURL("admin_consent", "True", "tenant", tenantA, "state", a) },
			advance: time.Hour + time.Minute,
			status:  400, contains: []string{invalid},
		},
		{
			name:   "state for another tenant",
			query:  func(_, b string) string { return callbackURL("admin_consent", "True", "tenant", tenantA, "state", b) },
			status: 400, contains: []string{invalid},
		},
		{
			name:   "tenant parameter missing",
			query:  func(a, _ string) string { return callbackURL("admin_consent", "True", "state", a) },
			status: 400, contains: []string{invalid},
		},
		{
			name:   "tenant parameter not a GUID",
			query:  func(a, _ string) string { return callbackURL("admin_consent", "True", "tenant", "common", "state", a) },
			status: 400, contains: []string{invalid},
		},
		{
			name:   "state missing",
			query:  func(string, string) string { return callbackURL("admin_consent", "True", "tenant", tenantA) },
			status: 400, contains: []string{invalid},
		},
		{
			name:   "admin_consent missing",
			query:  func(a, _ string) string { return callbackURL("tenant", tenantA, "state", a) },
			status: 400, contains: []string{invalid},
		},
		{
			name:   "admin_consent False",
			query:  func(a, _ string) string { return callbackURL("admin_consent", "False", "tenant", tenantA, "state", a) },
			status: 400, contains: []string{invalid},
		},
		{
			name: "error from the consent screen",
			query: func(a, _ string) string {
				return callbackURL("error", "access_denied", "error_description", `AADSTS65004: User declined <script>alert(1)</script>`, "state", a)
			},
			status:   400,
			contains: []string{"Consent was not granted", "access_denied", "AADSTS65004: User declined &lt;script&gt;alert(1)&lt;/script&gt;"},
			absent:   "<script>",
		},
		{
			name: "error with a valid-looking success",
			query: func(a, _ string) string {
				return callbackURL("error", "consent_required", "admin_consent", "True", "tenant", tenantA, "state", a)
			},
			status: 400, contains: []string{"Consent was not granted"},
		},
		{
			name: "consent not configured",
			edit: func(c *Config) { c.RedirectURI, c.StateKey = "", nil },
			query: func(string, string) string {
				return callbackURL("admin_consent", "True", "tenant", tenantA, "state", "x")
			},
			status: 501, contains: []string{"not configured"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.edit)
			stateA, _ := mintState(testKey, tenantA, t0)
			stateB, _ := mintState(testKey, tenantB, t0)
			e.clock.Advance(tt.advance)
			rr := e.do(t, "GET", tt.query(stateA, stateB), "")
			wantHTML(t, rr, tt.status, tt.contains...)
			if tt.absent != "" && strings.Contains(rr.Body.String(), tt.absent) {
				t.Errorf("page contains %q", tt.absent)
			}
			if e.store.Writes() != 0 || e.ver.callCount() != 0 {
				t.Errorf("writes %d, verifier calls %d; want none", e.store.Writes(), e.ver.callCount())
			}
		})
	}
}

func mustMintNoT(key []byte, tenantID string) string {
	s, err := mintState(key, tenantID, t0)
	if err != nil {
		panic(err)
	}
	return s
}

func TestConsentCallbackStoreError(t *testing.T) {
	e := newEnv(t, nil)
	state := consentState(t, e, tenantA)
	e.store.FailWith(errors.New("LEAKY table failure"))
	rr := e.do(t, "GET", callbackURL("admin_consent", "True", "tenant", tenantA, "state", state), "")
	wantHTML(t, rr, 500, "could not be recorded")
	if strings.Contains(rr.Body.String(), "LEAKY") || !strings.Contains(e.logs.String(), "LEAKY") {
		t.Errorf("body %s\nlogs %s", rr.Body, e.logs)
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("é", maxShownError)
	got := clip(long)
	if len(got) > maxShownError+len("…") || !strings.HasSuffix(got, "…") || !utf8ValidString(got) {
		t.Errorf("clip = %q", got)
	}
	if clip("short") != "short" {
		t.Error("short text changed")
	}
	if got := clip("a\xffb"); got != "a\uFFFDb" {
		t.Errorf("invalid UTF-8: %q", got)
	}
}

func utf8ValidString(s string) bool { return strings.ToValidUTF8(s, "") == s }

func TestVerificationWriteDoesNotResurrect(t *testing.T) {
	e := newEnv(t, nil)
	e.ver.during = func(_ context.Context, rec tenant.Record) {
		// An operator removes the row while onboarding verifies.
		e.store.Remove(rec.TenantID)
	}
	rr := e.do(t, "POST", "/api/tenants", registrationBody(tenantA))
	if rr.Code != http.StatusCreated {
		t.Fatalf("status %d", rr.Code)
	}
	if rec := decodeRecord(t, rr); rec.Verification == nil {
		t.Error("response lacks the verification")
	}
	if _, ok := e.store.Stored(tenantA); ok {
		t.Error("the verification write brought a removed tenant back")
	}
}
