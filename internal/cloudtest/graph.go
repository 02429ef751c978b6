package cloudtest

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

func writeODataError(w http.ResponseWriter, status int, code, msg string) {
	now := time.Now().UTC().Format("2006-01-02T15:04:05")
	reqID := guidFrom("req", randHex(8))
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"innerError": map[string]any{
			"date": now, "request-id": reqID, "client-request-id": reqID,
		},
	}})
}

func (c *Cloud) serveGraph(w http.ResponseWriter, r *http.Request) {
	tok := bearer(r)
	c.record(r, c.tenantOfToken(tok))
	if !c.wait(r) {
		return
	}
	claims, err := c.checkToken(tok, GraphResource)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
		writeODataError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure: "+err.Error()+".")
		return
	}
	tenant := claims.Tid
	if c.serveHomeTenant(w, r, claims) {
		return
	}

	c.mu.Lock()
	tn, ok := c.tenants[tenant]
	var t Tenant
	if ok {
		t = *tn
	}
	c.mu.Unlock()
	if !ok {
		writeODataError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure: unknown tenant.")
		return
	}
	if t.GraphHang {
		select {
		case <-r.Context().Done():
		case <-c.done:
		}
		return
	}
	if r.Method == http.MethodPost && r.URL.Path == "/v1.0/$batch" {
		c.serveBatch(w, r, tenant)
		return
	}
	c.serveGraphResource(w, r, tenant)
}

// serveGraphResource answers one Graph request of tenant, on its own or as
// a step of a $batch: the app limit first (SetGraphAppLimit), then the
// tenant's injected faults (each request or step takes one of
// GraphThrottle's 429s), then the permission check of
// the request's token (graphPermissions), then the resource. The faults
// come first so that a tenant made to fail fails the same whatever it
// granted.
func (c *Cloud) serveGraphResource(w http.ResponseWriter, r *http.Request, tenant string) {
	c.mu.Lock()
	tn, ok := c.tenants[tenant]
	var t Tenant
	throttled := false
	if ok {
		if tn.GraphThrottle > 0 {
			tn.GraphThrottle--
			throttled = true
		}
		t = *tn
	}
	c.mu.Unlock()
	if !ok {
		writeODataError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure: unknown tenant.")
		return
	}
	if c.appThrottled(w, r, tenant) {
		return
	}
	if throttled {
		c.tenantThrottleScope(w, r, tenant)
		w.Header().Set("Retry-After", "0")
		writeODataError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests.")
		return
	}
	switch t.GraphStatus {
	case 0, http.StatusOK:
	case http.StatusForbidden:
		writeODataError(w, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	case http.StatusTooManyRequests:
		c.tenantThrottleScope(w, r, tenant)
		w.Header().Set("Retry-After", "0")
		writeODataError(w, http.StatusTooManyRequests, "TooManyRequests", "Too many requests.")
		return
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "0")
		writeODataError(w, http.StatusServiceUnavailable, "serviceNotAvailable", "The service is temporarily unavailable.")
		return
	default:
		writeODataError(w, t.GraphStatus, "generalException", "cloudtest injected Graph fault.")
		return
	}

	if allowed := graphPermissions[r.Method+" "+r.URL.Path]; allowed != nil && !c.requireGraphPermission(w, r, allowed) {
		return
	}
	if r.Method != http.MethodGet {
		writeODataError(w, http.StatusMethodNotAllowed, "Request_BadRequest", "Only GET is supported by cloudtest.")
		return
	}
	if t.CountStatus != 0 && (strings.HasSuffix(r.URL.Path, "/$count") || strings.EqualFold(r.URL.Query().Get("$count"), "true")) {
		writeODataError(w, t.CountStatus, "Request_UnsupportedQuery", "Advanced query is not supported.")
		return
	}
	switch r.URL.Path {
	case "/v1.0/organization":
		c.serveOrganization(w, tenant, t)
	case "/v1.0/users":
		c.serveUsers(w, r, tenant, t)
	case "/v1.0/users/$count":
		serveCount(w, r, t.Users)
	case "/v1.0/groups":
		serveGroups(w, r, tenant, t)
	case "/v1.0/groups/$count":
		serveCount(w, r, t.Groups)
	default:
		writeODataError(w, http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+r.URL.Path+"' does not exist or one of its queried reference-property objects are not present.")
	}
}

// maxBatchSteps is Graph's limit of requests in one JSON batch.
const maxBatchSteps = 20

type batchStep struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

type batchStepResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

// serveBatch answers POST /v1.0/$batch as Graph documents JSON batching: a
// body {"requests": [{id, method, url, headers, body}]} with at most 20
// steps whose urls are relative to the version; the answer is 200 with
// {"responses": [{id, status, headers, body}]}, each step answered as the
// request on its own would be (faults and throttling per step), a JSON body
// as JSON and any other body base64-encoded. kiota gzips request bodies.
// Steps run in the order given; dependsOn is not supported.
func (c *Cloud) serveBatch(w http.ResponseWriter, r *http.Request, tenant string) {
	var body io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			writeODataError(w, http.StatusBadRequest, "BadRequest", "Invalid gzip body.")
			return
		}
		defer zr.Close()
		body = zr
	}
	var req struct {
		Requests []batchStep `json:"requests"`
	}
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&req); err != nil || len(req.Requests) == 0 {
		writeODataError(w, http.StatusBadRequest, "BadRequest", "Invalid batch payload format.")
		return
	}
	if len(req.Requests) > maxBatchSteps {
		writeODataError(w, http.StatusBadRequest, "BadRequest", "Invalid batch payload. The number of requests in the batch exceeds the limit of 20.")
		return
	}
	resps := make([]batchStepResponse, 0, len(req.Requests))
	seen := map[string]bool{}
	for _, st := range req.Requests {
		if st.ID == "" || seen[st.ID] || st.Method == "" || !strings.HasPrefix(st.URL, "/") {
			writeODataError(w, http.StatusBadRequest, "BadRequest", "Invalid batch payload: each request needs a unique id, a method and a relative url.")
			return
		}
		seen[st.ID] = true
		inner, err := http.NewRequestWithContext(r.Context(), st.Method, "https://"+GraphHost+"/v1.0"+st.URL, nil)
		if err != nil {
			writeODataError(w, http.StatusBadRequest, "BadRequest", "Invalid batch step url.")
			return
		}
		for k, v := range st.Headers {
			inner.Header.Set(k, v)
		}
		inner.Header.Set("Authorization", r.Header.Get("Authorization"))
		rec := httptest.NewRecorder()
		c.serveGraphResource(rec, inner, tenant)
		resp := batchStepResponse{ID: st.ID, Status: rec.Code, Headers: map[string]string{}}
		for k := range rec.Header() {
			resp.Headers[k] = rec.Header().Get(k)
		}
		if b := rec.Body.Bytes(); len(b) > 0 {
			if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && json.Valid(b) {
				resp.Body = json.RawMessage(b)
			} else {
				resp.Body = base64.StdEncoding.EncodeToString(b)
			}
		}
		resps = append(resps, resp)
	}
	writeJSON(w, http.StatusOK, map[string]any{"responses": resps})
}

func orgDomain(tenant string, t Tenant) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.ToLower(t.OrgName))
	if name == "" {
		name = "t" + strings.ReplaceAll(tenant, "-", "")[:8]
	}
	return name + ".onmicrosoft.com"
}

func (c *Cloud) serveOrganization(w http.ResponseWriter, tenant string, t Tenant) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": "https://" + GraphHost + "/v1.0/$metadata#organization",
		"value": []map[string]any{{
			"id":          tenant,
			"displayName": t.OrgName,
			"verifiedDomains": []map[string]any{{
				"name": orgDomain(tenant, t), "isDefault": true, "isInitial": true, "type": "Managed", "capabilities": "Email, OfficeCommunicationsOnline",
			}},
		}},
	})
}

// serveCount answers a collection's $count segment as Graph does: the number
// as text/plain, and only as an advanced query (ConsistencyLevel: eventual).
func serveCount(w http.ResponseWriter, r *http.Request, n int) {
	if !strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual") {
		writeODataError(w, http.StatusBadRequest, "Request_BadRequest", "$count is not currently supported.")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprint(w, n)
}

// page is the part of a directory collection a list request asks for.
type page struct {
	top, skip int
	withCount bool // $count=true: the answer carries @odata.count
}

// pageOf reads $top (1 to 999, 100 by default: Graph's page sizes for users
// and groups), $skiptoken (the fake's own, opaque to clients) and
// $count=true, which Graph takes only as an advanced query; it answers the
// request itself, with Graph's 400, and reports false when they are wrong.
// A nextLink keeps $count=true, so its request needs ConsistencyLevel too,
// as Graph's does (msgraph-sdk-dotnet#884, msgraph-sdk-java-core#203): SDK
// page iterators do not carry the header over unless told to.
func pageOf(w http.ResponseWriter, r *http.Request) (page, bool) {
	q := r.URL.Query()
	p := page{top: 100}
	if s := q.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 999 {
			writeODataError(w, http.StatusBadRequest, "Request_UnsupportedQuery", "Invalid page size specified: '"+s+"'. Must be between 1 and 999 inclusive.")
			return p, false
		}
		p.top = n
	}
	if s := q.Get("$skiptoken"); s != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(s, "X"))
		if err != nil || n < 0 {
			writeODataError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid skip token.")
			return p, false
		}
		p.skip = n
	}
	p.withCount = strings.EqualFold(q.Get("$count"), "true")
	if p.withCount && !strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual") {
		writeODataError(w, http.StatusBadRequest, "Request_BadRequest", "$count is not currently supported.")
		return p, false
	}
	return p, true
}

// nextLink is the absolute @odata.nextLink to the page after end of the
// collection at path, keeping the request's other query options; "" when
// end is the last item.
func (p page) nextLink(r *http.Request, path string, end, total int) string {
	if end >= total {
		return ""
	}
	next := url.Values{}
	for k, v := range r.URL.Query() {
		next[k] = v
	}
	next.Set("$top", strconv.Itoa(p.top))
	next.Set("$skiptoken", "X"+strconv.Itoa(end))
	return "https://" + GraphHost + path + "?" + next.Encode()
}

func (c *Cloud) serveUsers(w http.ResponseWriter, r *http.Request, tenant string, t Tenant) {
	p, ok := pageOf(w, r)
	if !ok {
		return
	}
	domain := orgDomain(tenant, t)
	end := min(p.skip+p.top, t.Users)
	users := make([]map[string]any, 0, max(end-p.skip, 0))
	for i := p.skip; i < end; i++ {
		users = append(users, map[string]any{
			"id":                guidFrom("user", tenant, strconv.Itoa(i)),
			"displayName":       fmt.Sprintf("User %d", i+1),
			"userPrincipalName": fmt.Sprintf("user%d@%s", i+1, domain),
		})
	}
	body := map[string]any{
		"@odata.context": "https://" + GraphHost + "/v1.0/$metadata#users",
		"value":          users,
	}
	if p.withCount {
		body["@odata.count"] = t.Users
	}
	if next := p.nextLink(r, "/v1.0/users", end, t.Users); next != "" {
		body["@odata.nextLink"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

// groupProperties are the group properties the fake knows, in Graph's
// spelling: those a list returns by default that a sweep might read. A
// $select of any other name is answered as Graph answers a name the group
// type lacks, so a typo fails here as it would against Graph.
var groupProperties = []string{"id", "displayName", "description", "mail", "mailEnabled", "mailNickname", "securityEnabled", "groupTypes", "createdDateTime", "visibility"}

// group is the i-th group of tenant (from 0): Microsoft 365 groups
// (groupTypes Unified, mail-enabled, not security-enabled), security groups
// and mail-enabled security groups in turn, as Graph describes the kinds.
func group(tenant, domain string, i int) map[string]any {
	nick := fmt.Sprintf("group%d", i+1)
	g := map[string]any{
		"id":              guidFrom("group", tenant, strconv.Itoa(i)),
		"displayName":     fmt.Sprintf("Group %d", i+1),
		"description":     nil,
		"mail":            nil,
		"mailEnabled":     false,
		"mailNickname":    nick,
		"securityEnabled": true,
		"groupTypes":      []string{},
		"createdDateTime": "2024-01-01T00:00:00Z",
		"visibility":      nil,
	}
	switch i % 3 {
	case 0:
		g["groupTypes"] = []string{"Unified"}
		g["mailEnabled"], g["securityEnabled"] = true, false
		g["mail"] = nick + "@" + domain
		g["visibility"] = "Private"
	case 2:
		g["mailEnabled"] = true
		g["mail"] = nick + "@" + domain
	}
	return g
}

// serveGroups answers GET /v1.0/groups as Graph's List groups does: pages of
// $top groups (100 by default, up to 999) linked by an absolute
// @odata.nextLink, @odata.count with $count=true (an advanced query: it
// needs ConsistencyLevel: eventual), and only the properties $select names
// (matched without regard to case; @odata.context then lists them).
func serveGroups(w http.ResponseWriter, r *http.Request, tenant string, t Tenant) {
	p, ok := pageOf(w, r)
	if !ok {
		return
	}
	var selected []string
	if s := r.URL.Query().Get("$select"); s != "" {
		for name := range strings.SplitSeq(s, ",") {
			name = strings.TrimSpace(name)
			i := slices.IndexFunc(groupProperties, func(p string) bool { return strings.EqualFold(p, name) })
			if i < 0 {
				writeODataError(w, http.StatusBadRequest, "Request_BadRequest", "Could not find a property named '"+name+"' on type 'microsoft.graph.group'.")
				return
			}
			selected = append(selected, groupProperties[i])
		}
	}
	domain := orgDomain(tenant, t)
	end := min(p.skip+p.top, t.Groups)
	groups := make([]map[string]any, 0, max(end-p.skip, 0))
	for i := p.skip; i < end; i++ {
		g := group(tenant, domain, i)
		if selected != nil {
			only := make(map[string]any, len(selected))
			for _, name := range selected {
				only[name] = g[name]
			}
			g = only
		}
		groups = append(groups, g)
	}
	metadata := "https://" + GraphHost + "/v1.0/$metadata#groups"
	if selected != nil {
		metadata += "(" + strings.Join(selected, ",") + ")"
	}
	body := map[string]any{"@odata.context": metadata, "value": groups}
	if p.withCount {
		body["@odata.count"] = t.Groups
	}
	if next := p.nextLink(r, "/v1.0/groups", end, t.Groups); next != "" {
		body["@odata.nextLink"] = next
	}
	writeJSON(w, http.StatusOK, body)
}
