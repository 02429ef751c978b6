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
	"strings"

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
	"github.com/tenantsweep/tenantsweep/internal/tenant"
)

// Options tune a Reader. The zero value is right for production.
type Options struct {
	// Transport is the parent transport under kiota's middleware; nil means
	// kiota's default transport. Tests pass one that dials a local fake.
	Transport http.RoundTripper
	// Retry replaces kiota's default retry options (tests shorten them). The
	// Reader still refuses to wait for a retry past the context's deadline.
	Retry *khttp.RetryHandlerOptions
}

// Reader reads Microsoft Graph in customer tenants. It is safe for
// concurrent use.
//
// One GraphServiceClient serves every tenant; each request is authenticated
// with the credential of the tenant it is for, carried in its context. A
// client per tenant would be built while other tenants' requests run, and
// msgraph.NewGraphServiceClient writes a kiota package-level variable
// (EnableBackingStore) that their deserialisation reads: a data race.
type Reader struct {
	gsc *msgraph.GraphServiceClient
	err error // of building gsc; only a bug
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
	auth := tenantAuth{scopes: []string{cl.GraphScope()}, hosts: []string{cl.GraphHost()}}
	adapter, err := msgraph.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
	if err != nil {
		return &Reader{err: fmt.Errorf("graph: request adapter: %w", err)}
	}
	adapter.SetBaseUrl(cl.GraphEndpoint + "/v1.0")
	return &Reader{gsc: msgraph.NewGraphServiceClient(adapter)}
}

type credentialKey struct{}

var errNoCredential = errors.New("graph: request without a tenant credential")

// tenantAuth authenticates a Graph request with the credential in its
// context. The valid hosts are the configured cloud's Graph host only: kiota
// attaches a token to no other host (and hostGuard sends nothing elsewhere).
type tenantAuth struct{ scopes, hosts []string }

func (a tenantAuth) AuthenticateRequest(ctx context.Context, req *abs.RequestInformation, extra map[string]any) error {
	cred, ok := ctx.Value(credentialKey{}).(azcore.TokenCredential)
	if !ok || cred == nil {
		return errNoCredential
	}
	p, err := kauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, a.scopes, a.hosts)
	if err != nil {
		return fmt.Errorf("graph: auth provider: %w", err)
	}
	return p.AuthenticateRequest(ctx, req, extra)
}

// Organization reads the tenant's display name and its number of users,
// authenticating with cred, a credential of that tenant.
func (r *Reader) Organization(ctx context.Context, cred azcore.TokenCredential) (tenant.GraphInfo, error) {
	if r.err != nil {
		return tenant.GraphInfo{}, r.err
	}
	if cred == nil {
		return tenant.GraphInfo{}, errNoCredential
	}
	ctx = context.WithValue(ctx, credentialKey{}, cred)
	name, err := r.orgName(ctx)
	if err != nil {
		return tenant.GraphInfo{}, classify(ctx, "read organization", err)
	}
	n, err := r.userCount(ctx)
	if err != nil {
		return tenant.GraphInfo{}, classify(ctx, "count users", err)
	}
	return tenant.GraphInfo{Organization: name, UserCount: n}, nil
}

func (r *Reader) orgName(ctx context.Context) (string, error) {
	resp, err := r.gsc.Organization().Get(ctx, &organization.OrganizationRequestBuilderGetRequestConfiguration{
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
func (r *Reader) userCount(ctx context.Context) (int, error) {
	h := abs.NewRequestHeaders()
	h.Add("ConsistencyLevel", "eventual")
	n, err := r.gsc.Users().Count().Get(ctx, &users.CountRequestBuilderGetRequestConfiguration{Headers: h})
	if err == nil && n != nil {
		return int(*n), nil
	}
	if err != nil {
		if s := statusOf(err); s != http.StatusBadRequest && s != http.StatusNotFound {
			return 0, err
		}
	}
	return r.pageUsers(ctx)
}

func (r *Reader) pageUsers(ctx context.Context) (int, error) {
	top := int32(999)
	resp, err := r.gsc.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Select: []string{"id"}, Top: &top},
	})
	if err != nil {
		return 0, err
	}
	it, err := msgraphcore.NewPageIterator[models.Userable](resp, r.gsc.GetAdapter(), models.CreateUserCollectionResponseFromDiscriminatorValue)
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
