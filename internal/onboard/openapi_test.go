package onboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// openAPI is the part of docs/openapi.json this test holds the router to.
type openAPI struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage
	Comps   struct {
		Responses map[string]struct {
			Content map[string]json.RawMessage
		}
		Schemas map[string]json.RawMessage
	} `json:"components"`
}

type operation struct {
	Responses map[string]struct {
		Ref     string `json:"$ref"`
		Content map[string]json.RawMessage
	}
}

func readOpenAPI(t *testing.T) openAPI {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec openAPI
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatalf("docs/openapi.json: %v", err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.1") {
		t.Fatalf("openapi %q, want 3.1", spec.OpenAPI)
	}
	return spec
}

// documented is, per "METHOD /path" operation, each documented status and
// its media type.
func (s openAPI) documented(t *testing.T) map[string]map[int]string {
	t.Helper()
	ops := map[string]map[int]string{}
	for path, item := range s.Paths {
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			key := strings.ToUpper(method) + " " + path
			ops[key] = map[int]string{}
			for code, r := range op.Responses {
				status, err := strconv.Atoi(code)
				if err != nil {
					t.Fatalf("%s: status %q", key, code)
				}
				content := r.Content
				if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
					ref, found := s.Comps.Responses[name]
					if !found {
						t.Fatalf("%s %d: no component response %s", key, status, name)
					}
					content = ref.Content
				}
				media := ""
				for m := range content {
					media = m
				}
				ops[key][status] = media
			}
		}
	}
	return ops
}

// The API as docs/openapi.json describes it is the API the router serves:
// every documented operation and status is produced by a real request, with
// the documented media type and, for JSON errors, the error shape with a
// documented code; every status a request produced is documented; and a
// method the file does not list answers 405 naming the ones it does.
func TestOpenAPIDescribesTheRouter(t *testing.T) {
	spec := readOpenAPI(t)
	doc := spec.documented(t)
	var errSchema struct {
		Properties struct {
			Error struct {
				Properties struct {
					Code struct {
						Enum []string
					}
				}
			}
		}
	}
	if err := json.Unmarshal(spec.Comps.Schemas["Error"], &errSchema); err != nil {
		t.Fatal(err)
	}
	codes := errSchema.Properties.Error.Properties.Code.Enum

	big := `{"tenantId":"` + tenantA + `","displayName":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	existing := tenant.Record{TenantID: tenantB, Status: tenant.StatusActive, Graph: true}
	type call struct {
		op, method, target, body string
		contentType              string
		edit                     func(*Config)
		setup                    func(*env)
	}
	calls := []call{
		{op: "POST /api/tenants", method: "POST", target: "/api/tenants", body: registrationBody(tenantA)},
		{op: "POST /api/tenants", method: "POST", target: "/api/tenants", body: registrationBody(tenantB)},
		{op: "POST /api/tenants", method: "POST", target: "/api/tenants", body: `{"tenantId":"common"}`},
		{op: "POST /api/tenants", method: "POST", target: "/api/tenants", body: big},
		{op: "POST /api/tenants", method: "POST", target: "/api/tenants", body: registrationBody(tenantA), contentType: "text/plain"},
		{op: "POST /api/tenants", method: "POST", target: "/api/tenants", body: `{"tenantId":"` + tenantA + `","consent":true}`, edit: func(c *Config) { c.RedirectURI, c.StateKey = "", nil }},
		{op: "POST /api/tenants", method: "POST", target: "/api/tenants", body: registrationBody(tenantB),
			setup: func(e *env) { e.store.BeforeWrite(func(id string) { r, _ := e.store.Stored(id); e.store.Put(r) }) }},
		{op: "POST /api/tenants", method: "POST", target: "/api/tenants", body: registrationBody(tenantA), setup: func(e *env) { e.store.FailWith(tenant.ErrUnavailable) }},
		{op: "POST /api/tenants", method: "POST", target: "/api/tenants", body: registrationBody(tenantA), edit: func(c *Config) { c.Homes = &fakeHomes{} }},
		{op: "GET /api/tenants", method: "GET", target: "/api/tenants"},
		{op: "GET /api/tenants", method: "GET", target: "/api/tenants?pageSize=0"},
		{op: "GET /api/tenants", method: "GET", target: "/api/tenants", setup: func(e *env) { e.store.FailWith(tenant.ErrUnavailable) }},
		{op: "GET /api/tenants/{tenantId}", method: "GET", target: "/api/tenants/" + tenantB},
		{op: "GET /api/tenants/{tenantId}", method: "GET", target: "/api/tenants/nope"},
		{op: "GET /api/tenants/{tenantId}", method: "GET", target: "/api/tenants/" + tenantA},
		{op: "GET /api/tenants/{tenantId}", method: "GET", target: "/api/tenants/" + tenantB, setup: func(e *env) { e.store.FailWith(tenant.ErrUnavailable) }},
		{op: "DELETE /api/tenants/{tenantId}", method: "DELETE", target: "/api/tenants/" + tenantB},
		{op: "DELETE /api/tenants/{tenantId}", method: "DELETE", target: "/api/tenants/nope"},
		{op: "DELETE /api/tenants/{tenantId}", method: "DELETE", target: "/api/tenants/" + tenantA},
		{op: "DELETE /api/tenants/{tenantId}", method: "DELETE", target: "/api/tenants/" + tenantB,
			setup: func(e *env) { e.store.BeforeWrite(func(id string) { r, _ := e.store.Stored(id); e.store.Put(r) }) }},
		{op: "DELETE /api/tenants/{tenantId}", method: "DELETE", target: "/api/tenants/" + tenantB, setup: func(e *env) { e.store.FailWith(tenant.ErrUnavailable) }},
		{op: "GET /api/consent/callback", method: "GET", target: "valid state"},
		{op: "GET /api/consent/callback", method: "GET", target: ConsentCallbackPath + "?admin_consent=True&tenant=" + tenantA + "&state=forged"},
		{op: "GET /api/consent/callback", method: "GET", target: "valid state", setup: func(e *env) { e.store.FailWith(errors.New("table down")) }},
		{op: "GET /api/consent/callback", method: "GET", target: "valid state", setup: func(e *env) { e.api.cfg.Homes = &fakeHomes{} }},
		{op: "GET /api/consent/callback", method: "GET", target: ConsentCallbackPath + "?admin_consent=True&tenant=" + tenantA + "&state=x", edit: func(c *Config) { c.RedirectURI, c.StateKey = "", nil }},
	}
	seen := map[string]map[int]bool{}
	for _, c := range calls {
		e := newEnv(t, c.edit, existing)
		target := c.target
		if target == "valid state" {
			target = ConsentCallbackPath + "?admin_consent=True&tenant=" + tenantA + "&state=" + consentState(t, e, tenantA)
		}
		if c.setup != nil {
			c.setup(e)
		}
		var rr *httptest.ResponseRecorder
		if c.contentType != "" {
			req := httptest.NewRequest(c.method, target, strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.contentType)
			rr = e.serve(req)
		} else {
			rr = e.do(t, c.method, target, c.body)
		}
		want, ok := doc[c.op]
		if !ok {
			t.Fatalf("%s is not in docs/openapi.json", c.op)
		}
		name := fmt.Sprintf("%s %s → %d", c.method, target, rr.Code)
		media, documented := want[rr.Code]
		if !documented {
			t.Errorf("%s: status not documented for %s (%s)", name, c.op, rr.Body)
			continue
		}
		if seen[c.op] == nil {
			seen[c.op] = map[int]bool{}
		}
		seen[c.op][rr.Code] = true
		ct := rr.Header().Get("Content-Type")
		if media != "" && !strings.HasPrefix(ct, media) || media == "" && rr.Body.Len() > 0 {
			t.Errorf("%s: Content-Type %q, documented %q", name, ct, media)
		}
		if media == "application/json" && rr.Code >= 400 {
			var body map[string]map[string]string
			if err := json.Unmarshal(rr.Body.Bytes(), &body); err != nil || len(body) != 1 || len(body["error"]) != 2 ||
				body["error"]["message"] == "" || !slices.Contains(codes, body["error"]["code"]) {
				t.Errorf("%s: error body %s is not the documented shape", name, rr.Body)
			}
		}
	}
	for op, statuses := range doc {
		for status := range statuses {
			if !seen[op][status] {
				t.Errorf("docs/openapi.json documents %d for %s, which no request produced", status, op)
			}
		}
	}

	// A method the file does not list for a path answers 405, naming the
	// ones it does (GET implies HEAD).
	methods := map[string][]string{}
	for op := range doc {
		m, path, _ := strings.Cut(op, " ")
		methods[path] = append(methods[path], m)
	}
	for path, ms := range methods {
		target := strings.ReplaceAll(path, "{tenantId}", tenantB)
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if slices.Contains(ms, m) {
				continue
			}
			rr := newEnv(t, nil, existing).do(t, m, target, "")
			allow := strings.Split(rr.Header().Get("Allow"), ", ")
			want := slices.Clone(ms)
			if slices.Contains(want, "GET") {
				want = append(want, "HEAD")
			}
			slices.Sort(allow)
			slices.Sort(want)
			if rr.Code != http.StatusMethodNotAllowed || !slices.Equal(allow, want) {
				t.Errorf("%s %s: %d, Allow %v; want 405 naming %v", m, path, rr.Code, allow, want)
			}
		}
	}
}

// The schemas name every property the API answers with (a record with
// every field set, as JSON), and the Outcome enum is the vocabulary, in
// its order.
func TestOpenAPIDescribesTheRecord(t *testing.T) {
	spec := readOpenAPI(t)
	props := func(schema string) map[string]bool {
		var s struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(spec.Comps.Schemas[schema], &s); err != nil {
			t.Fatalf("schema %s: %v", schema, err)
		}
		m := map[string]bool{}
		for k := range s.Properties {
			m[k] = true
		}
		return m
	}
	var outcomes struct {
		Enum []outcome.Code `json:"enum"`
	}
	if err := json.Unmarshal(spec.Comps.Schemas["Outcome"], &outcomes); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(outcomes.Enum, outcome.Codes) {
		t.Errorf("Outcome enum %v, want outcome.Codes %v", outcomes.Enum, outcome.Codes)
	}
	now := time.Now()
	yes := true
	tr := tenant.TaskResult{Outcome: outcome.OK, Message: "m", Step: "4", Remediation: "r", DurationMs: 1, Body: json.RawMessage(`{}`)}
	res := tenant.SweepResult{RunID: "r", At: now, Outcome: outcome.OK, DurationMs: 1, Message: "m", Step: "4", Remediation: "r",
		OutcomeSince: now, Graph: &tenant.GraphInfo{}, KeyVault: []tenant.SecretStatus{{Enabled: &yes}},
		SecretCounts: map[outcome.Code]int{outcome.OK: 1}, Omitted: 1, Tasks: map[string]tenant.TaskResult{"access": tr}}
	ver := tenant.Verification{Outcome: outcome.OK, Step: "4", Message: "m", Remediation: "r", At: now, Tasks: res.Tasks}
	rec := tenant.Record{TenantID: "t", DisplayName: "d", Status: tenant.StatusActive, Graph: true, KeyVaults: []tenant.KeyVault{{VaultURL: "v", Secrets: []string{"s"}}},
		OnboardedAt: now, UpdatedAt: now, Verification: &ver, LastSweep: &res, ConsecutiveFailures: 1, BackoffUntil: &now,
		Damage: &tenant.Damage{Code: tenant.DamageCode}}
	for schema, v := range map[string]any{"Tenant": rec, "SweepResult": res, "Verification": ver, "TaskResult": tr} {
		b, _ := json.Marshal(v)
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(b, &fields)
		documented := props(schema)
		for f := range fields {
			if !documented[f] {
				t.Errorf("schema %s lacks property %s", schema, f)
			}
		}
	}
}
