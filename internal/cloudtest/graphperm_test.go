package cloudtest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
)

// graphToken signs in to a new tenant of c and returns its Graph token.
func graphToken(t *testing.T, c *cloudtest.Cloud, tid string, tn cloudtest.Tenant) string {
	t.Helper()
	c.AddTenant(tid, tn)
	tok, err := secretCred(t, c, tid, "s3cret").GetToken(context.Background(), graphScope)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

type odataError struct {
	Error struct {
		Code       string         `json:"code"`
		Message    string         `json:"message"`
		InnerError map[string]any `json:"innerError"`
	} `json:"error"`
}

// Graph lets a token do what one of the endpoint's permissions allows and
// answers anything else 403 Authorization_RequestDenied, whatever the
// token's shape; a path it does not know is left to the router.
func TestGraphEnforcesPermissions(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	endpoints := []struct {
		path string
		hdr  map[string]string
	}{
		{"/v1.0/organization", nil},
		{"/v1.0/users?$top=1", nil},
		{"/v1.0/users?$count=true&$top=1", map[string]string{"ConsistencyLevel": "eventual"}},
		{"/v1.0/users/$count", map[string]string{"ConsistencyLevel": "eventual"}},
	}
	tests := []struct {
		name  string
		roles []string
		want  []int // per endpoint
	}{
		{"default roles", nil, []int{200, 200, 200, 200}},
		{"none granted", []string{}, []int{403, 403, 403, 403}},
		{"organization only", []string{"Organization.Read.All"}, []int{200, 403, 403, 403}},
		{"users only", []string{"User.Read.All"}, []int{403, 200, 200, 200}},
		{"directory read covers both", []string{"Directory.Read.All"}, []int{200, 200, 200, 200}},
		{"directory readwrite covers both", []string{"Directory.ReadWrite.All"}, []int{200, 200, 200, 200}},
		{"readwrite of each", []string{"Organization.ReadWrite.All", "User.ReadWrite.All"}, []int{200, 200, 200, 200}},
		{"names match without case", []string{"organization.read.all", "USER.READ.ALL"}, []int{200, 200, 200, 200}},
		{"unrelated permissions", []string{"Group.Read.All", "Application.Read.All", "User.ReadBasic.All"}, []int{403, 403, 403, 403}},
	}
	shapes := []struct {
		name  string
		shape cloudtest.TokenShape
	}{{"jwt with roles", cloudtest.TokenWithRoles}, {"jwt without roles", cloudtest.TokenNoRoles}, {"opaque", cloudtest.TokenOpaque}}
	n := 0
	for _, tt := range tests {
		for _, sh := range shapes {
			t.Run(tt.name+"/"+sh.name, func(t *testing.T) {
				n++
				tok := graphToken(t, c, fmt.Sprintf("dddddddd-0000-4000-8000-%012d", n),
					cloudtest.Tenant{OrgName: "Contoso", Users: 3, GraphRoles: tt.roles, GraphToken: sh.shape})
				for i, ep := range endpoints {
					var e odataError
					req, _ := http.NewRequest(http.MethodGet, "https://graph.microsoft.com"+ep.path, nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					for k, v := range ep.hdr {
						req.Header.Set(k, v)
					}
					resp, err := c.HTTPClient().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != tt.want[i] {
						t.Errorf("GET %s = %d %s, want %d", ep.path, resp.StatusCode, b, tt.want[i])
						continue
					}
					if resp.StatusCode != 403 {
						continue
					}
					if json.Unmarshal(b, &e) != nil || e.Error.Code != "Authorization_RequestDenied" ||
						e.Error.Message != "Insufficient privileges to complete the operation." ||
						e.Error.InnerError["request-id"] == nil || e.Error.InnerError["date"] == nil {
						t.Errorf("GET %s: 403 body %s is not Graph's", ep.path, b)
					}
				}
			})
		}
	}

	t.Run("unknown path falls through", func(t *testing.T) {
		tok := graphToken(t, c, "eeeeeeee-0000-4000-8000-000000000001", cloudtest.Tenant{GraphRoles: []string{}})
		var e odataError
		if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/applications", tok, nil, &e); st != 404 || e.Error.Code != "Request_ResourceNotFound" {
			t.Errorf("GET /applications = %d %+v, want the router's 404", st, e)
		}
	})

	// The roles are the tenant's grant when the token was issued, as Entra
	// ID writes them into the token: a later grant needs a new token.
	t.Run("a token keeps the roles of its issue", func(t *testing.T) {
		tid := "eeeeeeee-0000-4000-8000-000000000002"
		old := graphToken(t, c, tid, cloudtest.Tenant{GraphRoles: []string{"Organization.Read.All"}, GraphToken: cloudtest.TokenOpaque})
		c.UpdateTenant(tid, func(tn *cloudtest.Tenant) { tn.GraphRoles = []string{"User.Read.All"} })
		if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/organization", old, nil, nil); st != 200 {
			t.Errorf("old token, organization: %d", st)
		}
		if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/users", old, nil, nil); st != 403 {
			t.Errorf("old token, users: %d, want 403", st)
		}
		fresh, err := secretCred(t, c, tid, "s3cret").GetToken(context.Background(), graphScope)
		if err != nil {
			t.Fatal(err)
		}
		if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/users", fresh.Token, nil, nil); st != 200 {
			t.Errorf("new token, users: %d", st)
		}
		if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/organization", fresh.Token, nil, nil); st != 403 {
			t.Errorf("new token, organization: %d, want 403", st)
		}
	})
}

// The shape of a token changes only what a client can read from it.
func TestGraphTokenShapes(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	roles := []string{"Organization.Read.All"}
	for i, tt := range []struct {
		shape     cloudtest.TokenShape
		jwt       bool
		wantRoles []string // nil: no roles claim
	}{
		{cloudtest.TokenWithRoles, true, roles},
		{cloudtest.TokenNoRoles, true, nil},
		{cloudtest.TokenOpaque, false, nil},
	} {
		tok := graphToken(t, c, fmt.Sprintf("ffffffff-0000-4000-8000-%012d", i), cloudtest.Tenant{GraphRoles: roles, GraphToken: tt.shape})
		parts := strings.Split(tok, ".")
		if (len(parts) == 3) != tt.jwt {
			t.Errorf("shape %d: %d dot-separated parts", tt.shape, len(parts))
			continue
		}
		if !tt.jwt {
			continue
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var cl struct {
			Roles *[]string `json:"roles"`
		}
		if err := json.Unmarshal(payload, &cl); err != nil {
			t.Fatal(err)
		}
		switch {
		case tt.wantRoles == nil && cl.Roles != nil:
			t.Errorf("shape %d: roles claim %v, want none", tt.shape, *cl.Roles)
		case tt.wantRoles != nil && (cl.Roles == nil || !slices.Equal(*cl.Roles, tt.wantRoles)):
			t.Errorf("shape %d: roles claim %v, want %v", tt.shape, cl.Roles, tt.wantRoles)
		}
	}
}

// Each step of a $batch is checked on its own, with the batch's token.
func TestGraphBatchEnforcesPermissionsPerStep(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	tok := graphToken(t, c, tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 4, GraphRoles: []string{"Organization.Read.All"}})
	body := `{"requests":[
		{"id":"org","method":"GET","url":"/organization"},
		{"id":"users","method":"GET","url":"/users?$count=true&$top=1","headers":{"ConsistencyLevel":"eventual"}},
		{"id":"count","method":"GET","url":"/users/$count","headers":{"ConsistencyLevel":"eventual"}},
		{"id":"apps","method":"GET","url":"/applications"}]}`
	req, _ := http.NewRequest(http.MethodPost, "https://graph.microsoft.com/v1.0/$batch", bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Responses []struct {
			ID     string          `json:"id"`
			Status int             `json:"status"`
			Body   json.RawMessage `json:"body"`
		} `json:"responses"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("batch: %d %v", resp.StatusCode, err)
	}
	want := map[string]struct {
		status int
		code   string
	}{
		"org":   {200, ""},
		"users": {403, "Authorization_RequestDenied"},
		"count": {403, "Authorization_RequestDenied"},
		"apps":  {404, "Request_ResourceNotFound"},
	}
	if len(out.Responses) != len(want) {
		t.Fatalf("%d responses, want %d", len(out.Responses), len(want))
	}
	for _, r := range out.Responses {
		w, ok := want[r.ID]
		if !ok {
			t.Errorf("unexpected step %q", r.ID)
			continue
		}
		var e odataError
		_ = json.Unmarshal(r.Body, &e)
		if r.Status != w.status || e.Error.Code != w.code {
			t.Errorf("step %s = %d %q, want %d %q", r.ID, r.Status, e.Error.Code, w.status, w.code)
		}
	}
}

func TestGraphPermissionsFor(t *testing.T) {
	users := []string{"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
	tests := []struct {
		method, path string
		want         []string
	}{
		{"GET", "/v1.0/organization", []string{"Organization.Read.All", "Directory.Read.All", "Organization.ReadWrite.All", "Directory.ReadWrite.All"}},
		{"GET", "/v1.0/users", users},
		{"get", "/users?$select=id&$top=5", users},
		{"GET", "/users/$count", users},
		{"POST", "/v1.0/users", nil},
		{"GET", "/v1.0/applications", nil},
	}
	for _, tt := range tests {
		got := cloudtest.GraphPermissionsFor(tt.method, tt.path)
		if !slices.Equal(got, tt.want) {
			t.Errorf("GraphPermissionsFor(%s, %s) = %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
	got := cloudtest.GraphPermissionsFor("GET", "/v1.0/users")
	got[0] = "Mutated"
	if again := cloudtest.GraphPermissionsFor("GET", "/v1.0/users"); again[0] != "User.Read.All" {
		t.Errorf("the result shares the table: %v", again)
	}
	// The default grant is enough for every endpoint the app reads.
	for _, p := range []string{"/organization", "/users", "/users/$count"} {
		allowed := cloudtest.GraphPermissionsFor("GET", p)
		if !slices.ContainsFunc(cloudtest.DefaultGraphRoles, func(r string) bool { return slices.Contains(allowed, r) }) {
			t.Errorf("DefaultGraphRoles %v grant none of %v for %s", cloudtest.DefaultGraphRoles, allowed, p)
		}
	}
}
