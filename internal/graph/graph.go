// Package graph reads a customer tenant's organization and user count from
// Microsoft Graph, and makes the Graph client bound to a tenant that tasks
// use. msgraph-sdk-go's build cost stays out of the domain: only this
// package, internal/task (the client's type) and internal/tasks (the
// tasks' requests) import it, and tenant, sweep, onboard and the storage
// packages test in seconds.
package graph

import (
	"context"
	"encoding/json"
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
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/organization"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
	"github.com/tenantsweep/tenantsweep/internal/governor"
	"github.com/tenantsweep/tenantsweep/internal/outcome"
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
	// Gate is the process's Graph gate: every request waits there while the
	// app as a whole is throttled, and a 429 of the app's closes it (see
	// governor). Nil: no gate.
	Gate *governor.Gate
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
	gsc  *msgraph.GraphServiceClient
	gate *governor.Gate
}

// New returns a Reader for the Graph endpoint of cl. Every request it sends,
// including redirects and @odata.nextLink pages, is refused unless it goes to
// https://<cl.GraphHost()>. Each carries its context's priority
// (x-ms-throttle-priority) and goes through opts.Gate.
func New(cl cloud.Cloud, opts Options) *Reader {
	parent := opts.Transport
	if parent == nil {
		parent = khttp.GetDefaultTransport()
	}
	o := msgraph.GetDefaultClientOptions()
	mws := msgraphcore.GetDefaultMiddlewaresWithOptions(&o)
	for i, mw := range mws {
		switch mw.(type) {
		case *khttp.RetryHandler:
			mws[i] = khttp.NewRetryHandlerWithOptions(boundedRetry(opts.Retry))
		case *khttp.CompressionHandler:
			// kiota gzips every request body; the only body sent is the
			// $batch's few hundred bytes, and each gzip writer allocates
			// ~1 MB of compressor state: more CPU and memory than it saves.
			mws[i] = khttp.NewCompressionHandlerWithOptions(*khttp.NewCompressionOptionsReference(false))
		}
	}
	hc := &http.Client{
		// kiota's redirect handler follows redirects (and drops the token
		// when the host changes); net/http must not follow them again.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: khttp.NewCustomTransportWithParentTransport(
			hostGuard{host: cl.GraphHost(), next: &governor.Transport{Gate: opts.Gate, Next: parent}}, mws...),
	}
	auth := tenantAuth{scopes: []string{cl.GraphScope()}, hosts: []string{cl.GraphHost()}}
	adapter, err := msgraph.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
	if err != nil {
		// It fails only without an authentication provider, and auth is one.
		panic(fmt.Sprintf("graph: request adapter: %v", err))
	}
	adapter.SetBaseUrl(cl.GraphEndpoint + "/v1.0")
	return &Reader{gsc: msgraph.NewGraphServiceClient(adapter), gate: opts.Gate}
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
// authenticating with cred, a credential of that tenant. Both reads go in
// one JSON $batch request, one round trip; a step that Graph throttled or
// failed transiently (429, 503, 504) is sent again on its own, through
// kiota's retry handler, and a user count that the advanced query cannot
// give (400, 404) is paged instead.
func (r *Reader) Organization(ctx context.Context, cred azcore.TokenCredential) (tenant.GraphInfo, error) {
	if cred == nil {
		return tenant.GraphInfo{}, errNoCredential
	}
	ctx = context.WithValue(ctx, credentialKey{}, cred)
	// Each request counts its own tries, for classify to name them.
	bctx := outcome.WithAttempts(ctx)
	org, count, err := r.batch(bctx)
	if err != nil {
		return tenant.GraphInfo{}, classify(bctx, "batch", err)
	}
	// Each step counts against Graph's limits; a step the app's limit
	// throttled closes the gate, so that its retry below waits there
	// instead of spending the tenant's retries.
	governor.MeterOf(ctx).Graph(2 - 1) // two steps; the transport counted the envelope as one
	for _, st := range []batchStep{org, count} {
		if st.Status == http.StatusTooManyRequests {
			r.gate.StepThrottled(ctx, st.header())
		}
	}
	name, err := orgNameOf(org)
	if retryStep(err) {
		bctx = outcome.WithAttempts(ctx)
		name, err = r.orgName(bctx)
	}
	if err != nil {
		return tenant.GraphInfo{}, classify(bctx, "read organization", err)
	}
	bctx = outcome.WithAttempts(ctx)
	n, err := userCountOf(count)
	if retryStep(err) {
		n, err = r.userCount(bctx)
	} else if s := statusOf(err); s == http.StatusBadRequest || s == http.StatusNotFound {
		n, err = r.pageUsers(bctx)
	}
	if err != nil {
		return tenant.GraphInfo{}, classify(bctx, "count users", err)
	}
	return tenant.GraphInfo{Organization: name, UserCount: n}, nil
}

// batch sends the organization read and the user count ($count=true on a
// one-user page, which Graph answers as JSON; $count as a path segment is
// text/plain, which a batch carries base64-encoded) as one $batch request,
// and returns each step's answer. msgraph-sdk-go-core builds the request;
// its response model is not used, because it drops every number in a step's
// body (v1.4.0 batch_item_model.go deserializeValue returns nil for them),
// which is where @odata.count is.
func (r *Reader) batch(ctx context.Context) (org, count batchStep, err error) {
	orgInfo, err := r.gsc.Organization().ToGetRequestInformation(ctx, orgRequest)
	if err != nil {
		return org, count, err
	}
	h := abs.NewRequestHeaders()
	h.Add("ConsistencyLevel", "eventual")
	one, withCount := int32(1), true
	usersInfo, err := r.gsc.Users().ToGetRequestInformation(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		Headers:         h,
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Count: &withCount, Top: &one, Select: []string{"id"}},
	})
	if err != nil {
		return org, count, err
	}
	adapter := r.gsc.GetAdapter()
	b := msgraphcore.NewBatchRequest(adapter)
	orgStep, err := b.AddBatchRequestStep(*orgInfo)
	if err != nil {
		return org, count, err
	}
	countStep, err := b.AddBatchRequestStep(*usersInfo)
	if err != nil {
		return org, count, err
	}
	info := abs.NewRequestInformation()
	info.Method = abs.POST
	info.UrlTemplate = "{+baseurl}/$batch"
	info.PathParameters["baseurl"] = adapter.GetBaseUrl()
	if err := info.SetContentFromParsable(ctx, adapter, "application/json", b); err != nil {
		return org, count, err
	}
	info.Headers.TryAdd("Accept", "application/json")
	raw, err := adapter.SendPrimitive(ctx, info, "[]byte", abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		return org, count, err
	}
	body, _ := raw.([]byte)
	var resp struct {
		Responses []batchStep `json:"responses"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return org, count, fmt.Errorf("graph: $batch response: %w", err)
	}
	var gotOrg, gotCount bool
	for _, st := range resp.Responses {
		switch st.ID {
		case *orgStep.GetId():
			org, gotOrg = st, true
		case *countStep.GetId():
			count, gotCount = st, true
		}
	}
	if !gotOrg || !gotCount {
		return org, count, errBatchIncomplete
	}
	return org, count, nil
}

// batchStep is one answer of a $batch response.
type batchStep struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

func (s batchStep) header() http.Header {
	h := make(http.Header, len(s.Headers))
	for k, v := range s.Headers {
		h.Set(k, v)
	}
	return h
}

var orgRequest = &organization.OrganizationRequestBuilderGetRequestConfiguration{
	QueryParameters: &organization.OrganizationRequestBuilderGetQueryParameters{Select: []string{"id", "displayName"}},
}

// stepBody decodes a batch step's JSON body into v, or returns the step's
// failure as an *odataerrors.ODataError with its status and Graph's error
// code, as the same request sent on its own would have failed.
func stepBody(step batchStep, v any) error {
	if step.Status < 200 || step.Status > 299 {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(step.Body, &e)
		oe := odataerrors.NewODataError()
		oe.SetStatusCode(step.Status)
		me := odataerrors.NewMainError()
		code, msg := outcome.SafeCode(e.Error.Code), fmt.Sprintf("batch step answered HTTP %d", step.Status)
		me.SetCode(&code)
		me.SetMessage(&msg)
		oe.SetErrorEscaped(me)
		return oe
	}
	if err := json.Unmarshal(step.Body, v); err != nil {
		return fmt.Errorf("graph: batch step body: %w", err)
	}
	return nil
}

func orgNameOf(step batchStep) (string, error) {
	var body struct {
		Value []struct {
			DisplayName *string `json:"displayName"`
		} `json:"value"`
	}
	if err := stepBody(step, &body); err != nil {
		return "", err
	}
	if len(body.Value) == 0 {
		return "", errNoOrganization
	}
	if n := body.Value[0].DisplayName; n != nil {
		return *n, nil
	}
	return "", nil
}

func userCountOf(step batchStep) (int, error) {
	var body struct {
		Count *float64 `json:"@odata.count"`
	}
	if err := stepBody(step, &body); err != nil {
		return 0, err
	}
	if body.Count == nil {
		// Graph left the count out: as a 400 would, page instead.
		oe := odataerrors.NewODataError()
		oe.SetStatusCode(http.StatusBadRequest)
		return 0, oe
	}
	return int(*body.Count), nil
}

// retryStep says whether a failed batch step is worth sending again on its
// own: kiota's retry handler retries exactly these statuses, honouring
// Retry-After within the context's deadline.
func retryStep(err error) bool {
	switch statusOf(err) {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (r *Reader) orgName(ctx context.Context) (string, error) {
	resp, err := r.gsc.Organization().Get(ctx, orgRequest)
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
	errNoOrganization  = errors.New("graph: no organization in the response")
	errBatchIncomplete = errors.New("graph: the $batch response lacks a step")
	errForeignHost     = errors.New("graph: request to a host other than the cloud's Graph host refused")
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
	resp, err := g.next.RoundTrip(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	outcome.Sent(req.Context(), req.Method+" "+req.URL.Path, status)
	return resp, err
}
