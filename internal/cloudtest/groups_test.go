package cloudtest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	kauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraph "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
)

// groupReaders are the permissions Graph's List groups reference accepts.
var groupReaders = []string{"GroupMember.Read.All", "Directory.Read.All", "Directory.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All"}

// graphClient is a real msgraph-sdk-go client of a tenant of c, built as
// sdk-test-recipes.md §3.1 does, that reaches the fake at its real base URL.
func graphClient(t *testing.T, c *cloudtest.Cloud, tid string) *msgraph.GraphServiceClient {
	t.Helper()
	auth, err := kauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(
		secretCred(t, c, tid, "s3cret"), []string{"https://graph.microsoft.com/.default"}, []string{cloudtest.GraphHost})
	if err != nil {
		t.Fatal(err)
	}
	o := msgraph.GetDefaultClientOptions()
	mws := msgraphcore.GetDefaultMiddlewaresWithOptions(&o)
	hc := &http.Client{Transport: khttp.NewCustomTransportWithParentTransport(c.HTTPClient().Transport, mws...)}
	adapter, err := msgraph.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
	if err != nil {
		t.Fatal(err)
	}
	return msgraph.NewGraphServiceClient(adapter)
}

func eventual() *abs.RequestHeaders {
	h := abs.NewRequestHeaders()
	h.Add("ConsistencyLevel", "eventual")
	return h
}

func oDataStatus(t *testing.T, err error) (int, string) {
	t.Helper()
	var oe *odataerrors.ODataError
	if !errors.As(err, &oe) {
		t.Fatalf("not an ODataError: %v", err)
	}
	code := ""
	if m := oe.GetErrorEscaped(); m != nil && m.GetCode() != nil {
		code = *m.GetCode()
	}
	return oe.ResponseStatusCode, code
}

// msgraph-sdk-go lists, pages, selects and counts the fake's groups as it
// does Graph's.
func TestGroupsThroughSDK(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Groups: 7, GraphRoles: []string{"GroupMember.Read.All"}})
	ctx := context.Background()
	client := graphClient(t, c, tenantA)

	top, withCount := int32(3), true
	resp, err := client.Groups().Get(ctx, &groups.GroupsRequestBuilderGetRequestConfiguration{
		Headers: eventual(),
		QueryParameters: &groups.GroupsRequestBuilderGetQueryParameters{
			Count: &withCount, Top: &top, Select: []string{"id", "displayName", "groupTypes", "mailEnabled", "securityEnabled"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := resp.GetOdataCount(); n == nil || *n != 7 {
		t.Errorf("@odata.count = %v, want 7", n)
	}
	if len(resp.GetValue()) != 3 {
		t.Errorf("first page has %d groups, want 3", len(resp.GetValue()))
	}
	// The nextLink of an advanced query is one too: like Graph, the fake
	// wants ConsistencyLevel again on every page, which the iterator does
	// not carry over from the first request.
	bare, err := msgraphcore.NewPageIterator[models.Groupable](resp, client.GetAdapter(), models.CreateGroupCollectionResponseFromDiscriminatorValue)
	if err != nil {
		t.Fatal(err)
	}
	if err := bare.Iterate(ctx, func(models.Groupable) bool { return true }); err == nil {
		t.Error("next page of $count=true without ConsistencyLevel: want Graph's 400")
	}
	var all []models.Groupable
	it, err := msgraphcore.NewPageIterator[models.Groupable](resp, client.GetAdapter(), models.CreateGroupCollectionResponseFromDiscriminatorValue)
	if err != nil {
		t.Fatal(err)
	}
	it.SetHeaders(eventual())
	if err := it.Iterate(ctx, func(g models.Groupable) bool { all = append(all, g); return true }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 {
		t.Fatalf("iterated %d groups, want 7", len(all))
	}
	ids := map[string]bool{}
	kinds := map[string]int{}
	for _, g := range all {
		if g.GetId() == nil || g.GetDisplayName() == nil || g.GetMailEnabled() == nil || g.GetSecurityEnabled() == nil {
			t.Fatalf("group lacks a selected property: id %v name %v", g.GetId(), g.GetDisplayName())
		}
		ids[*g.GetId()] = true
		if g.GetMail() != nil {
			t.Errorf("group %s has mail %q, which was not selected", *g.GetId(), *g.GetMail())
		}
		switch {
		case slices.Equal(g.GetGroupTypes(), []string{"Unified"}) && *g.GetMailEnabled() && !*g.GetSecurityEnabled():
			kinds["microsoft 365"]++
		case len(g.GetGroupTypes()) == 0 && !*g.GetMailEnabled() && *g.GetSecurityEnabled():
			kinds["security"]++
		case len(g.GetGroupTypes()) == 0 && *g.GetMailEnabled() && *g.GetSecurityEnabled():
			kinds["mail-enabled security"]++
		default:
			t.Errorf("group %s is of no kind Graph knows: %v %v %v", *g.GetId(), g.GetGroupTypes(), *g.GetMailEnabled(), *g.GetSecurityEnabled())
		}
	}
	if len(ids) != 7 {
		t.Errorf("%d distinct ids, want 7", len(ids))
	}
	if kinds["microsoft 365"] != 3 || kinds["security"] != 2 || kinds["mail-enabled security"] != 2 {
		t.Errorf("kinds = %v", kinds)
	}

	n, err := client.Groups().Count().Get(ctx, &groups.CountRequestBuilderGetRequestConfiguration{Headers: eventual()})
	if err != nil || n == nil || *n != 7 {
		t.Errorf("groups/$count = %v, %v; want 7", n, err)
	}
	if _, err := client.Groups().Count().Get(ctx, nil); err == nil {
		t.Error("groups/$count without ConsistencyLevel: want an error")
	} else if st, code := oDataStatus(t, err); st != 400 || code != "Request_BadRequest" {
		t.Errorf("groups/$count without ConsistencyLevel: %d %s", st, code)
	}
}

// Reading groups needs one of List groups' permissions, and the tenant's
// faults apply to it as to users.
func TestGroupsPermissionsAndFaultsThroughSDK(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	ctx := context.Background()
	tests := []struct {
		name   string
		tenant cloudtest.Tenant
		status int // 0: success
		code   string
		count  int // status of groups/$count (0: success)
	}{
		{name: "least privileged", tenant: cloudtest.Tenant{GraphRoles: []string{"GroupMember.Read.All"}}},
		{name: "group read", tenant: cloudtest.Tenant{GraphRoles: []string{"Group.Read.All"}}},
		{name: "group readwrite", tenant: cloudtest.Tenant{GraphRoles: []string{"Group.ReadWrite.All"}}},
		{name: "directory read", tenant: cloudtest.Tenant{GraphRoles: []string{"Directory.Read.All"}}},
		{name: "directory readwrite", tenant: cloudtest.Tenant{GraphRoles: []string{"Directory.ReadWrite.All"}}},
		{name: "default roles lack groups", tenant: cloudtest.Tenant{}, status: 403, code: "Authorization_RequestDenied", count: 403},
		{name: "member readwrite is not listed", tenant: cloudtest.Tenant{GraphRoles: []string{"GroupMember.ReadWrite.All"}}, status: 403, code: "Authorization_RequestDenied", count: 403},
		{name: "opaque token, no group role", tenant: cloudtest.Tenant{GraphToken: cloudtest.TokenOpaque}, status: 403, code: "Authorization_RequestDenied", count: 403},
		{name: "opaque token, group role", tenant: cloudtest.Tenant{GraphToken: cloudtest.TokenOpaque, GraphRoles: []string{"Group.Read.All"}}},
		{name: "throttled then served", tenant: cloudtest.Tenant{GraphRoles: groupReaders, GraphThrottle: 2}},
		{name: "consent revoked", tenant: cloudtest.Tenant{GraphRoles: groupReaders, GraphStatus: 403}, status: 403, code: "Authorization_RequestDenied", count: 403},
		{name: "unavailable", tenant: cloudtest.Tenant{GraphRoles: groupReaders, GraphStatus: 503}, status: 503, code: "serviceNotAvailable", count: 503},
		{name: "no advanced query", tenant: cloudtest.Tenant{GraphRoles: groupReaders, CountStatus: 400}, count: 400},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tid := fmt.Sprintf("abababab-0000-4000-8000-%012d", i)
			tn := tt.tenant
			tn.Groups = 4
			c.AddTenant(tid, tn)
			client := graphClient(t, c, tid)
			resp, err := client.Groups().Get(ctx, nil)
			if tt.status == 0 {
				if err != nil || len(resp.GetValue()) != 4 {
					t.Fatalf("list: %v", err)
				}
			} else if err == nil {
				t.Fatalf("list: no error, want %d", tt.status)
			} else if st, code := oDataStatus(t, err); st != tt.status || code != tt.code {
				t.Errorf("list: %d %s, want %d %s", st, code, tt.status, tt.code)
			}
			n, err := client.Groups().Count().Get(ctx, &groups.CountRequestBuilderGetRequestConfiguration{Headers: eventual()})
			if tt.count == 0 {
				if err != nil || n == nil || *n != 4 {
					t.Errorf("count: %v %v", n, err)
				}
			} else if err == nil {
				t.Errorf("count: no error, want %d", tt.count)
			} else if st, _ := oDataStatus(t, err); st != tt.count {
				t.Errorf("count: %d, want %d", st, tt.count)
			}
		})
	}

	t.Run("hang", func(t *testing.T) {
		tid := "abababab-0000-4000-8000-999999999999"
		c.AddTenant(tid, cloudtest.Tenant{Groups: 1, GraphRoles: groupReaders, GraphHang: true})
		client := graphClient(t, c, tid)
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := client.Groups().Get(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("hang: %v", err)
		}
	})
}

// The wire format of List groups and groups/$count, as Graph's reference
// shows it.
func TestGroupsRaw(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	tok := graphToken(t, c, tenantA, cloudtest.Tenant{OrgName: "Contoso", Groups: 250, GraphRoles: []string{"Group.Read.All"}})
	ev := map[string]string{"ConsistencyLevel": "eventual"}
	type listPage struct {
		Context string           `json:"@odata.context"`
		Count   *int             `json:"@odata.count"`
		Next    string           `json:"@odata.nextLink"`
		Value   []map[string]any `json:"value"`
	}

	// Default page size 100, absolute nextLinks that keep the query.
	next, sizes, seen := "https://graph.microsoft.com/v1.0/groups?$select=id", []int{}, map[string]bool{}
	for next != "" {
		var p listPage
		if st := getJSON(t, c, next, tok, nil, &p); st != 200 {
			t.Fatalf("GET %s: %d", next, st)
		}
		sizes = append(sizes, len(p.Value))
		for _, g := range p.Value {
			if len(g) != 1 {
				t.Fatalf("$select=id returned %v", g)
			}
			seen[g["id"].(string)] = true
		}
		next = p.Next
		if next != "" {
			u, err := url.Parse(next)
			if err != nil || u.Host != cloudtest.GraphHost || u.Path != "/v1.0/groups" || u.Query().Get("$select") != "id" {
				t.Fatalf("nextLink %q", next)
			}
		}
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) || len(seen) != 250 {
		t.Errorf("page sizes %v, %d distinct groups; want 100 100 50 and 250", sizes, len(seen))
	}

	// The default properties, in Graph's types.
	var p listPage
	if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/groups?$top=2", tok, nil, &p); st != 200 || len(p.Value) != 2 {
		t.Fatalf("$top=2: %d %d", st, len(p.Value))
	}
	g := p.Value[0]
	if _, ok := g["id"].(string); !ok || g["displayName"] != "Group 1" || g["mailEnabled"] != true || g["securityEnabled"] != false ||
		fmt.Sprint(g["groupTypes"]) != "[Unified]" || g["mail"] != "group1@contoso.onmicrosoft.com" {
		t.Errorf("first group %v", g)
	}
	if p.Context != "https://graph.microsoft.com/v1.0/$metadata#groups" || p.Count != nil {
		t.Errorf("context %q count %v", p.Context, p.Count)
	}

	// $select names properties without regard to case; @odata.context lists them.
	p = listPage{}
	if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/groups?$top=1&$select=DisplayName,groupTypes", tok, nil, &p); st != 200 {
		t.Fatalf("$select: %d", st)
	}
	if len(p.Value) != 1 || len(p.Value[0]) != 2 || p.Value[0]["displayName"] != "Group 1" || p.Context != "https://graph.microsoft.com/v1.0/$metadata#groups(displayName,groupTypes)" {
		t.Errorf("$select: %q %v", p.Context, p.Value)
	}

	// $count=true needs ConsistencyLevel: eventual.
	p = listPage{}
	if st := getJSON(t, c, "https://graph.microsoft.com/v1.0/groups?$count=true&$top=1", tok, ev, &p); st != 200 || p.Count == nil || *p.Count != 250 || p.Next == "" {
		t.Errorf("$count=true: %d %v %q", st, p.Count, p.Next)
	}

	// groups/$count is text/plain.
	req, _ := http.NewRequest(http.MethodGet, "https://graph.microsoft.com/v1.0/groups/$count", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("ConsistencyLevel", "eventual")
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "250" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("groups/$count = %d %q %s", resp.StatusCode, b, resp.Header.Get("Content-Type"))
	}

	for _, tt := range []struct {
		name, path string
		hdr        map[string]string
		code       string
	}{
		{"$top 0", "/v1.0/groups?$top=0", nil, "Request_UnsupportedQuery"},
		{"$top 1000", "/v1.0/groups?$top=1000", nil, "Request_UnsupportedQuery"},
		{"bad skiptoken", "/v1.0/groups?$skiptoken=nope", nil, "Request_BadRequest"},
		{"unknown property", "/v1.0/groups?$select=id,colour", nil, "Request_BadRequest"},
		{"$count=true, not eventual", "/v1.0/groups?$count=true", nil, "Request_BadRequest"},
		{"$count, not eventual", "/v1.0/groups/$count", nil, "Request_BadRequest"},
	} {
		var e odataError
		if st := getJSON(t, c, "https://graph.microsoft.com"+tt.path, tok, tt.hdr, &e); st != 400 || e.Error.Code != tt.code {
			t.Errorf("%s: %d %q, want 400 %s", tt.name, st, e.Error.Code, tt.code)
		}
	}
}

// Groups answer inside a $batch too, each step checked and faulted on its own.
func TestGroupsInBatch(t *testing.T) {
	c := cloudtest.Start(t)
	c.SetApp(cloudtest.App{ClientID: appID, Secret: "s3cret"})
	tok := graphToken(t, c, tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 2, Groups: 5, GraphThrottle: 1,
		GraphRoles: []string{"Organization.Read.All", "GroupMember.Read.All"}})
	body := `{"requests":[
		{"id":"throttled","method":"GET","url":"/groups"},
		{"id":"list","method":"GET","url":"/groups?$count=true&$top=2&$select=id","headers":{"ConsistencyLevel":"eventual"}},
		{"id":"count","method":"GET","url":"/groups/$count","headers":{"ConsistencyLevel":"eventual"}},
		{"id":"users","method":"GET","url":"/users/$count","headers":{"ConsistencyLevel":"eventual"}}]}`
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
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || len(out.Responses) != 4 {
		t.Fatalf("batch: %d %v %d responses", resp.StatusCode, err, len(out.Responses))
	}
	got := map[string]int{}
	for _, r := range out.Responses {
		got[r.ID] = r.Status
		switch r.ID {
		case "list":
			var p struct {
				Count int              `json:"@odata.count"`
				Value []map[string]any `json:"value"`
				Next  string           `json:"@odata.nextLink"`
			}
			if json.Unmarshal(r.Body, &p) != nil || p.Count != 5 || len(p.Value) != 2 || !strings.Contains(p.Next, "/v1.0/groups?") {
				t.Errorf("list step body %s", r.Body)
			}
		case "count":
			var text string
			var raw []byte
			if json.Unmarshal(r.Body, &text) == nil {
				raw, _ = base64.StdEncoding.DecodeString(text)
			}
			if string(raw) != "5" {
				t.Errorf("count step body %s, want base64 of 5", r.Body)
			}
		}
	}
	want := map[string]int{"throttled": 429, "list": 200, "count": 200, "users": 403}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("step %s = %d, want %d", id, got[id], st)
		}
	}
}
