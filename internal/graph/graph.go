// Package graph reads a customer tenant's organization and user count from
// Microsoft Graph. It is the only package that imports msgraph-sdk-go, whose
// build cost would otherwise spread to every package that tests the domain.
package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	abs "github.com/microsoft/kiota-abstractions-go"
	kauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraph "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/organization"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/lru"
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// DefaultMaxClients bounds the per-tenant client cache when
// Options.MaxClients is zero. It matches the credential cache's bound: a
// client evicted before its tenant's next sweep is rebuilt, and for Key Vault
// that costs another 401 challenge on every sweep (measured at 10,000 tenants
// with a smaller bound: 4 calls a tenant instead of 3).
const DefaultMaxClients = 100000

// Options tune a Reader. The zero value is right for production.
type Options struct {
	// Transport is the parent transport under kiota's middleware; nil means
	// kiota's default transport. Tests pass one that dials a local fake.
	Transport http.RoundTripper
	// Retry replaces kiota's default retry options (tests shorten them). The
	// Reader still refuses to wait for a retry past the context's deadline.
	Retry *khttp.RetryHandlerOptions
	// MaxClients bounds the number of tenants whose client is cached.
	MaxClients int
}

// Reader reads Microsoft Graph in customer tenants. It is safe for
// concurrent use.
type Reader struct {
	cl   cloud.Cloud
	http *http.Client

	mu      sync.Mutex
	clients *lru.Cache[string, *client]
}

type client struct {
	cred azcore.TokenCredential
	gsc  *msgraph.GraphServiceClient
}

// New returns a Reader for the Graph endpoint of cl. Every request it sends,
// including redirects and @odata.nextLink pages, is refused unless it goes to
// https://<cl.GraphHost()>.
func New(cl cloud.Cloud, opts Options) *Reader {
	parent := opts.Transport
	if parent == nil {
		parent = khttp.GetDefaultTransport()
	}
	o := msgraph.GetDefaultClientOptions()
	mws := msgraphcore.GetDefaultMiddlewaresWithOptions(&o)
	for i, mw := range mws {
		if _, ok := mw.(*khttp.RetryHandler); ok {
			mws[i] = khttp.NewRetryHandlerWithOptions(boundedRetry(opts.Retry))
		}
	}
	hc := &http.Client{
		// kiota's redirect handler follows redirects (and drops the token
		// when the host changes); net/http must not follow them again.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     khttp.NewCustomTransportWithParentTransport(hostGuard{host: cl.GraphHost(), next: parent}, mws...),
	}
	size := opts.MaxClients
	if size <= 0 {
		size = DefaultMaxClients
	}
	return &Reader{cl: cl, http: hc, clients: lru.New[string, *client](size)}
}

// Organization reads the tenant's display name and its number of users,
// authenticating with cred, a credential of that tenant.
func (r *Reader) Organization(ctx context.Context, tenantID string, cred azcore.TokenCredential) (tenant.GraphInfo, error) {
	c, err := r.client(tenantID, cred)
	if err != nil {
		return tenant.GraphInfo{}, err
	}
	name, err := r.orgName(ctx, c)
	if err != nil {
		return tenant.GraphInfo{}, classify(ctx, "read organization", err)
	}
	n, err := r.userCount(ctx, c)
	if err != nil {
		return tenant.GraphInfo{}, classify(ctx, "count users", err)
	}
	return tenant.GraphInfo{Organization: name, UserCount: n}, nil
}

// Forget drops the tenant's cached client.
func (r *Reader) Forget(tenantID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients.Remove(cacheKey(tenantID))
}

// cacheKey is the canonical form of a tenant id (a GUID, case-insensitive).
func cacheKey(tenantID string) string { return strings.ToLower(strings.TrimSpace(tenantID)) }

func (r *Reader) client(tenantID string, cred azcore.TokenCredential) (*client, error) {
	if cred == nil {
		return nil, errors.New("graph: nil credential")
	}
	key := cacheKey(tenantID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients.Get(key); ok && sameCredential(c.cred, cred) {
		return c, nil
	}
	// The valid hosts are the configured cloud's Graph host only: kiota
	// attaches a token to no other host (and the hostGuard sends nothing
	// elsewhere at all).
	auth, err := kauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(
		cred, []string{r.cl.GraphScope()}, []string{r.cl.GraphHost()})
	if err != nil {
		return nil, fmt.Errorf("graph: auth provider: %w", err)
	}
	adapter, err := msgraph.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, r.http)
	if err != nil {
		return nil, fmt.Errorf("graph: request adapter: %w", err)
	}
	adapter.SetBaseUrl(r.cl.GraphEndpoint + "/v1.0")
	c := &client{cred: cred, gsc: msgraph.NewGraphServiceClient(adapter)}
	r.clients.Put(key, c)
	return c, nil
}

// sameCredential reports whether a and b are the same credential, without
// panicking on credential types that are not comparable.
func sameCredential(a, b azcore.TokenCredential) bool {
	if reflect.TypeOf(a) != reflect.TypeOf(b) || !reflect.TypeOf(a).Comparable() {
		return false
	}
	return a == b
}

func (r *Reader) orgName(ctx context.Context, c *client) (string, error) {
	resp, err := c.gsc.Organization().Get(ctx, &organization.OrganizationRequestBuilderGetRequestConfiguration{
		QueryParameters: &organization.OrganizationRequestBuilderGetQueryParameters{Select: []string{"id", "displayName"}},
	})
	if err != nil {
		return "", err
	}
	if resp == nil || len(resp.GetValue()) == 0 || resp.GetValue()[0] == nil {
		return "", errNoOrganization
	}
	if n := resp.GetValue()[0].GetDisplayName(); n != nil {
		return *n, nil
	}
	return "", nil
}

// userCount asks Graph for $count in one request. Graph answers 400 when the
// advanced query is not available (and some clouds or fakes 404); then it
// pages through the users' ids instead.
func (r *Reader) userCount(ctx context.Context, c *client) (int, error) {
	h := abs.NewRequestHeaders()
	h.Add("ConsistencyLevel", "eventual")
	n, err := c.gsc.Users().Count().Get(ctx, &users.CountRequestBuilderGetRequestConfiguration{Headers: h})
	if err == nil && n != nil {
		return int(*n), nil
	}
	if err != nil {
		if s := statusOf(err); s != http.StatusBadRequest && s != http.StatusNotFound {
			return 0, err
		}
	}
	return r.pageUsers(ctx, c)
}

func (r *Reader) pageUsers(ctx context.Context, c *client) (int, error) {
	top := int32(999)
	resp, err := c.gsc.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Select: []string{"id"}, Top: &top},
	})
	if err != nil {
		return 0, err
	}
	it, err := msgraphcore.NewPageIterator[models.Userable](resp, c.gsc.GetAdapter(), models.CreateUserCollectionResponseFromDiscriminatorValue)
	if err != nil {
		return 0, err
	}
	n := 0
	err = it.Iterate(ctx, func(models.Userable) bool { n++; return true })
	return n, err
}

var (
	errNoOrganization = errors.New("graph: no organization in the response")
	errForeignHost    = errors.New("graph: request to a host other than the cloud's Graph host refused")
)

// hostGuard is the bottom of the pipeline: it refuses any request that is not
// https to the cloud's Graph host, so neither a redirect nor a nextLink can
// take a request (with or without a token) anywhere else.
type hostGuard struct {
	host string
	next http.RoundTripper
}

func (g hostGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" || !strings.EqualFold(req.URL.Hostname(), g.host) ||
		(req.URL.Port() != "" && req.URL.Port() != "443") {
		if req.Body != nil {
			_, _ = io.Copy(io.Discard, req.Body)
			_ = req.Body.Close()
		}
		return nil, errForeignHost
	}
	return g.next.RoundTrip(req)
}
