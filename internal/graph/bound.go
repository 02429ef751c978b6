package graph

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoft/kiota-abstractions-go/serialization"
	"github.com/microsoft/kiota-abstractions-go/store"
	msgraph "github.com/microsoftgraph/msgraph-sdk-go"
)

// For returns a Graph client bound to cred, a tenant's credential: every
// request it sends is authenticated with cred and goes through the
// Reader's pipeline (the cloud's Graph host only, the bounded retry). It
// costs a few small allocations and no network: the clients of all tenants
// share one adapter.
func (r *Reader) For(cred azcore.TokenCredential) *msgraph.GraphServiceClient {
	a := r.gsc.GetAdapter()
	return clientOf(boundAdapter{RequestAdapter: a, cred: cred}, a.GetBaseUrl())
}

// clientOf builds a GraphServiceClient on adapter without
// msgraph.NewGraphServiceClient, which registers kiota's serializers and
// switches the adapter's backing store on each time: package-level and
// adapter state that every tenant's requests read concurrently.
func clientOf(adapter abs.RequestAdapter, base string) *msgraph.GraphServiceClient {
	return &msgraph.GraphServiceClient{GraphBaseServiceClient: msgraph.GraphBaseServiceClient{
		BaseRequestBuilder: *abs.NewBaseRequestBuilder(adapter, "{+baseurl}", map[string]string{"baseurl": base}),
	}}
}

// boundAdapter is the shared adapter with a tenant's credential put in the
// context of each request, where tenantAuth finds it. It never changes the
// shared adapter: its base URL and backing store stay as New set them.
type boundAdapter struct {
	abs.RequestAdapter
	cred azcore.TokenCredential
}

func (b boundAdapter) ctx(ctx context.Context) context.Context {
	if b.cred == nil {
		return ctx // tenantAuth refuses the request
	}
	return context.WithValue(ctx, credentialKey{}, b.cred)
}

func (b boundAdapter) Send(ctx context.Context, ri *abs.RequestInformation, f serialization.ParsableFactory, em abs.ErrorMappings) (serialization.Parsable, error) {
	return b.RequestAdapter.Send(b.ctx(ctx), ri, f, em)
}

func (b boundAdapter) SendEnum(ctx context.Context, ri *abs.RequestInformation, f serialization.EnumFactory, em abs.ErrorMappings) (any, error) {
	return b.RequestAdapter.SendEnum(b.ctx(ctx), ri, f, em)
}

func (b boundAdapter) SendCollection(ctx context.Context, ri *abs.RequestInformation, f serialization.ParsableFactory, em abs.ErrorMappings) ([]serialization.Parsable, error) {
	return b.RequestAdapter.SendCollection(b.ctx(ctx), ri, f, em)
}

func (b boundAdapter) SendEnumCollection(ctx context.Context, ri *abs.RequestInformation, f serialization.EnumFactory, em abs.ErrorMappings) ([]any, error) {
	return b.RequestAdapter.SendEnumCollection(b.ctx(ctx), ri, f, em)
}

func (b boundAdapter) SendPrimitive(ctx context.Context, ri *abs.RequestInformation, typeName string, em abs.ErrorMappings) (any, error) {
	return b.RequestAdapter.SendPrimitive(b.ctx(ctx), ri, typeName, em)
}

func (b boundAdapter) SendPrimitiveCollection(ctx context.Context, ri *abs.RequestInformation, typeName string, em abs.ErrorMappings) ([]any, error) {
	return b.RequestAdapter.SendPrimitiveCollection(b.ctx(ctx), ri, typeName, em)
}

func (b boundAdapter) SendNoContent(ctx context.Context, ri *abs.RequestInformation, em abs.ErrorMappings) error {
	return b.RequestAdapter.SendNoContent(b.ctx(ctx), ri, em)
}

func (b boundAdapter) ConvertToNativeRequest(ctx context.Context, ri *abs.RequestInformation) (any, error) {
	return b.RequestAdapter.ConvertToNativeRequest(b.ctx(ctx), ri)
}

// The shared adapter's base URL and backing store are set once, in New.
func (boundAdapter) SetBaseUrl(string)                            {}
func (boundAdapter) EnableBackingStore(store.BackingStoreFactory) {}
