package tablestore

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tenantsweep/tenantsweep/internal/config"
)

// tableExists answers every request as if the table already existed, and
// records what was asked. No network is used.
type tableExists struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (f *tableExists) Do(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	body := `{"odata.error":{"code":"TableAlreadyExists","message":{"lang":"en-US","value":"The table specified already exists."}}}`
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("x-ms-error-code", "TableAlreadyExists")
	return &http.Response{StatusCode: http.StatusConflict, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
}

func TestOpenTargets(t *testing.T) {
	tests := []struct {
		name     string
		reg      config.Registry
		cred     azcore.TokenCredential
		wantURL  string
		wantAuth string
	}{
		{
			name:     "UseDevelopmentStorage=true is Azurite on 127.0.0.1:10002 with the well-known key",
			reg:      config.Registry{Connection: "UseDevelopmentStorage=true"},
			wantURL:  "http://127.0.0.1:10002/devstoreaccount1/Tables",
			wantAuth: "SharedKeyLite devstoreaccount1:",
		},
		{
			name:     "DevelopmentStorageProxyUri",
			reg:      config.Registry{Connection: "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite"},
			wantURL:  "http://azurite:10002/devstoreaccount1/Tables",
			wantAuth: "SharedKeyLite devstoreaccount1:",
		},
		{
			name:     "account key",
			reg:      config.Registry{Connection: "DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=" + someKey + ";EndpointSuffix=core.windows.net"},
			wantURL:  "https://contoso.table.core.windows.net/Tables",
			wantAuth: "SharedKeyLite contoso:",
		},
		{
			name:    "SAS",
			reg:     config.Registry{Connection: "TableEndpoint=https://contoso.table.core.windows.net/;SharedAccessSignature=sv=2020&sig=abc"},
			wantURL: "https://contoso.table.core.windows.net/Tables?sig=abc&sv=2020",
		},
		{
			name:     "endpoint with managed identity",
			reg:      config.Registry{Endpoint: "https://contoso.table.core.windows.net/"},
			cred:     &azfake.TokenCredential{},
			wantURL:  "https://contoso.table.core.windows.net/Tables",
			wantAuth: "Bearer ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &tableExists{}
			tt.reg.Table, tt.reg.RunsTable = "tenants", "sweepruns"
			_, err := Open(t.Context(), tt.reg, Options{Credential: tt.cred, ClientOptions: &aztables.ClientOptions{
				ClientOptions: policy.ClientOptions{Transport: f, Retry: policy.RetryOptions{MaxRetries: -1}},
			}})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if len(f.reqs) != 2 {
				t.Fatalf("%d requests, want 2 (one create per table)", len(f.reqs))
			}
			req := f.reqs[0]
			u := *req.URL
			u.RawQuery = u.Query().Encode() // sorted, to compare
			if req.Method != http.MethodPost || u.String() != tt.wantURL {
				t.Errorf("request %s %s, want POST %s", req.Method, u.String(), tt.wantURL)
			}
			if auth := req.Header.Get("Authorization"); !strings.HasPrefix(auth, tt.wantAuth) || (tt.wantAuth == "") != (auth == "") {
				t.Errorf("Authorization %q, want prefix %q", auth, tt.wantAuth)
			}
		})
	}
}
