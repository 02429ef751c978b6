package graph

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/cloudtest"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

const (
	tenantA = cloudtest.TenantA
	tenantB = cloudtest.TenantB
)

// graphRequests are the requests Graph received, with the tenant of their
// bearer token.
func graphRequests(c *cloudtest.Cloud) []cloudtest.Request {
	var out []cloudtest.Request
	for _, r := range c.Requests() {
		if r.Host == cloudtest.GraphHost {
			out = append(out, r)
		}
	}
	return out
}

func checkTenantOfTokens(t *testing.T, c *cloudtest.Cloud, tenantID string) {
	t.Helper()
	reqs := graphRequests(c)
	if len(reqs) == 0 {
		t.Fatal("no Graph request")
	}
	for _, r := range reqs {
		if r.Tenant != tenantID {
			t.Errorf("%s %s?%s carried a token of tenant %q, want %q", r.Method, r.Path, r.Query, r.Tenant, tenantID)
		}
	}
}

func TestOrganization(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 250})
	r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
	info, err := r.Organization(context.Background(), c.SecretCredential(t, tenantA))
	if err != nil {
		t.Fatal(err)
	}
	if info.Organization != "Contoso" || info.UserCount != 250 {
		t.Errorf("info = %+v, want Contoso with 250 users", info)
	}
	checkTenantOfTokens(t, c, tenantA)
	var paths []string
	for _, r := range graphRequests(c) {
		paths = append(paths, r.Path)
	}
	if strings.Join(paths, " ") != "/v1.0/$batch" {
		t.Errorf("Graph requests %v, want one $batch of the organization and the count", paths)
	}
}

// interceptor sits under the Reader (as its parent transport) and can answer
// requests itself; it records every host it is asked to reach.
type interceptor struct {
	next   http.RoundTripper
	answer func(*http.Request) *http.Response

	mu    sync.Mutex
	hosts []string
}

func (i *interceptor) RoundTrip(r *http.Request) (*http.Response, error) {
	i.mu.Lock()
	i.hosts = append(i.hosts, r.URL.Host)
	i.mu.Unlock()
	if i.answer != nil {
		if resp := i.answer(r); resp != nil {
			return resp, nil
		}
	}
	return i.next.RoundTrip(r)
}

func jsonResponse(r *http.Request, status int, h http.Header, body string) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r,
		ContentLength: int64(len(body)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

func TestOrganizationPagesWhenCountIsUnsupported(t *testing.T) {
	for _, status := range []int{400, 404} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			c := cloudtest.StartWithApp(t)
			c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Fabrikam", Users: 2100, CountStatus: status})
			r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
			info, err := r.Organization(context.Background(), c.SecretCredential(t, tenantA))
			if err != nil {
				t.Fatal(err)
			}
			if info.Organization != "Fabrikam" || info.UserCount != 2100 {
				t.Errorf("info = %+v, want Fabrikam with 2100 users", info)
			}
			pages := 0
			for _, r := range graphRequests(c) {
				if r.Path == "/v1.0/users" {
					pages++
				}
			}
			if pages != 3 {
				t.Errorf("user pages = %d, want 3 (999 a page)", pages)
			}
			checkTenantOfTokens(t, c, tenantA)
		})
	}
}

func TestOrganizationFaults(t *testing.T) {
	tests := []struct {
		name     string
		tenant   cloudtest.Tenant
		want     outcome.Code
		requests int // Graph requests, kiota's retries included
	}{
		{"consent missing", cloudtest.Tenant{GraphStatus: 403}, outcome.GraphConsentMissing, 1},
		// The $batch, then the throttled organization step on its own
		// with kiota's three retries.
		{"always throttled", cloudtest.Tenant{GraphStatus: 429}, outcome.Throttled, 5},
		{"unavailable", cloudtest.Tenant{GraphStatus: 503}, outcome.UpstreamError, 5},
		{"server error", cloudtest.Tenant{GraphStatus: 500}, outcome.UpstreamError, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cloudtest.StartWithApp(t)
			tt.tenant.OrgName = "Contoso"
			c.AddTenant(tenantA, tt.tenant)
			r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
			_, err := r.Organization(context.Background(), c.SecretCredential(t, tenantA))
			var oe *outcome.Error
			if !errors.As(err, &oe) || oe.Code != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "Insufficient privileges") || strings.Contains(err.Error(), cloudtest.TokenMarker) {
				t.Errorf("error text leaks Graph's message or a token: %v", err)
			}
			if n := len(graphRequests(c)); n != tt.requests {
				t.Errorf("Graph requests = %d, want %d", n, tt.requests)
			}
			checkTenantOfTokens(t, c, tenantA)
		})
	}
	t.Run("consent detail", func(t *testing.T) {
		c := cloudtest.StartWithApp(t)
		c.AddTenant(tenantA, cloudtest.Tenant{GraphStatus: 403})
		r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
		_, err := r.Organization(context.Background(), c.SecretCredential(t, tenantA))
		if got := outcome.Detail(err); got != "admin consent for Microsoft Graph application permissions is missing" {
			t.Errorf("detail = %q", got)
		}
	})
}

func TestOrganizationThrottledThenSucceeds(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 5, GraphThrottle: 2})
	r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
	start := time.Now()
	info, err := r.Organization(context.Background(), c.SecretCredential(t, tenantA))
	if err != nil {
		t.Fatal(err)
	}
	if info.UserCount != 5 {
		t.Errorf("info = %+v", info)
	}
	if n := len(graphRequests(c)); n != 3 {
		t.Errorf("Graph requests = %d, want 3 (the $batch with both steps throttled, then each step on its own)", n)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v: Retry-After 0 was not honoured", d)
	}
}

// A Retry-After beyond the context's deadline is not slept through: the 429
// comes back at once as throttled.
func TestOrganizationRetryAfterBeyondDeadline(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso"})
	ic := &interceptor{next: c.HTTPClient().Transport, answer: func(r *http.Request) *http.Response {
		return jsonResponse(r, 429, http.Header{"Retry-After": {"30"}}, `{"error":{"code":"TooManyRequests","message":"x"}}`)
	}}
	r := New(cloud.AzurePublic, Options{Transport: ic})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := r.Organization(ctx, c.SecretCredential(t, tenantA))
	if got := outcome.Of(err); got != outcome.Throttled {
		t.Errorf("outcome = %s (%v), want throttled", got, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v, want an immediate return", d)
	}
}

func TestOrganizationHangTimesOut(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", GraphHang: true})
	r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
	cred := c.SecretCredential(t, tenantA)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := r.Organization(ctx, cred)
	if got := outcome.Of(err); got != outcome.Timeout {
		t.Errorf("outcome = %s (%v), want timeout", got, err)
	}
}

func TestOrganizationReusesClientAndToken(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 3})
	r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
	cred := c.SecretCredential(t, tenantA)
	for range 2 {
		if _, err := r.Organization(context.Background(), cred); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.TokenRequests(tenantA); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
	// A new credential for the tenant is used as given: it signs in anew.
	if _, err := r.Organization(context.Background(), c.SecretCredential(t, tenantA)); err != nil {
		t.Fatal(err)
	}
	if n := c.TokenRequests(tenantA); n != 2 {
		t.Errorf("token requests = %d, want 2 after a new credential", n)
	}
}

func TestOrganizationTenantsAreSeparate(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 3})
	c.AddTenant(tenantB, cloudtest.Tenant{OrgName: "Fabrikam", Users: 7})
	r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
	credA, credB := c.SecretCredential(t, tenantA), c.SecretCredential(t, tenantB)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			id, cred, want := tenantA, credA, "Contoso/3"
			if i%2 == 1 {
				id, cred, want = tenantB, credB, "Fabrikam/7"
			}
			info, err := r.Organization(context.Background(), cred)
			if err != nil {
				errs <- err
				return
			}
			if got := info.Organization + "/" + strconv.Itoa(info.UserCount); got != want {
				errs <- errors.New("tenant " + id + ": got " + got + ", want " + want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, req := range graphRequests(c) {
		if req.Tenant != tenantA && req.Tenant != tenantB {
			t.Errorf("request without a tenant's token: %+v", req)
		}
	}
}

// A nextLink pointing outside the cloud's Graph host is not followed: no
// request (with or without a token) leaves for it.
func TestOrganizationRefusesForeignNextLink(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", Users: 3, CountStatus: 400})
	ic := &interceptor{next: c.HTTPClient().Transport, answer: func(r *http.Request) *http.Response {
		switch r.URL.Path {
		case "/v1.0/users":
			return jsonResponse(r, 200, nil, `{"value":[{"id":"u1"}],"@odata.nextLink":"https://evil.example.com/v1.0/users?$skiptoken=1"}`)
		}
		return nil
	}}
	r := New(cloud.AzurePublic, Options{Transport: ic})
	_, err := r.Organization(context.Background(), c.SecretCredential(t, tenantA))
	if outcome.Of(err) != outcome.UpstreamError || !errors.Is(err, errForeignHost) {
		t.Errorf("err = %v, want the foreign host refused", err)
	}
	ic.mu.Lock()
	defer ic.mu.Unlock()
	for _, h := range ic.hosts {
		if h != cloudtest.GraphHost {
			t.Errorf("a request was sent to %s", h)
		}
	}
}

// fixedCred returns a classified sign-in failure, as azauth's credentials do.
type fixedCred struct{ err error }

func (f fixedCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, f.err
}

func TestOrganizationKeepsTheCredentialsOutcome(t *testing.T) {
	c := cloudtest.StartWithApp(t)
	r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
	signIn := outcome.New(outcome.AppNotInTenant, "the app is not registered in the tenant", errors.New("AADSTS700016"))
	_, err := r.Organization(context.Background(), fixedCred{signIn})
	if got := outcome.Of(err); got != outcome.AppNotInTenant {
		t.Errorf("outcome = %s (%v)", got, err)
	}
	if n := len(graphRequests(c)); n != 0 {
		t.Errorf("%d Graph requests sent without a token", n)
	}
}

// Graph's faults are reported by their answer and how often it came, not as
// a timeout: kiota's retry (3 s and more without Retry-After) does not start
// past the deadline.
func TestOrganizationRetryBudgetNamesTheCause(t *testing.T) {
	t.Run("no time for a retry", func(t *testing.T) {
		c := cloudtest.StartWithApp(t)
		c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso"})
		ic := &interceptor{next: c.HTTPClient().Transport, answer: func(r *http.Request) *http.Response {
			return jsonResponse(r, 503, nil, `{"error":{"code":"serviceNotAvailable","message":"x"}}`)
		}}
		r := New(cloud.AzurePublic, Options{Transport: ic})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := r.Organization(ctx, c.SecretCredential(t, tenantA))
		if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != "Microsoft Graph answered HTTP 503 once" {
			t.Errorf("err = %v (%s), want upstream_error: Microsoft Graph answered HTTP 503 once", err, outcome.Of(err))
		}
	})
	t.Run("retries spent", func(t *testing.T) {
		c := cloudtest.StartWithApp(t)
		c.AddTenant(tenantA, cloudtest.Tenant{OrgName: "Contoso", GraphStatus: 503}) // Retry-After: 0
		r := New(cloud.AzurePublic, Options{Transport: c.HTTPClient().Transport})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := r.Organization(ctx, c.SecretCredential(t, tenantA))
		if outcome.Of(err) != outcome.UpstreamError || outcome.Detail(err) != "Microsoft Graph answered HTTP 503 four times" {
			t.Errorf("err = %v (%s), want upstream_error: Microsoft Graph answered HTTP 503 four times", err, outcome.Of(err))
		}
	})
}
