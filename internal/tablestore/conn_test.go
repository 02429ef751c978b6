package tablestore

import (
	"strings"
	"testing"

	"github.com/tenantsweep/tenantsweep/internal/storageconn"
)

// TestParseConnectionString covers what the store adds to storageconn.Parse
// (whose own tests cover the forms): a table endpoint is required.
func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name    string
		cs      string
		want    connection
		wantErr string
	}{
		{
			name: "development storage",
			cs:   "UseDevelopmentStorage=true",
			want: connection{endpoint: "http://127.0.0.1:10002/devstoreaccount1", account: storageconn.DevAccountName, key: storageconn.DevAccountKey},
		},
		{
			name: "explicit Azurite string",
			cs:   storageconn.DevConnectionString("http://127.0.0.1:41234/devstoreaccount1", ""),
			want: connection{endpoint: "http://127.0.0.1:41234/devstoreaccount1", account: storageconn.DevAccountName, key: storageconn.DevAccountKey},
		},
		{
			name: "SAS",
			cs:   "TableEndpoint=https://contoso.table.core.windows.net;SharedAccessSignature=?sv=2020&sig=" + someKey,
			want: connection{endpoint: "https://contoso.table.core.windows.net", sas: "sv=2020&sig=" + someKey},
		},
		{name: "queue-only SAS", cs: "QueueEndpoint=https://contoso.queue.core.windows.net;SharedAccessSignature=sig=" + someKey, wantErr: "neither TableEndpoint nor AccountName"},
		{name: "malformed", cs: "AccountName=a;hunter2", wantErr: "segment 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConnectionString(tt.cs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), someKey) || strings.Contains(err.Error(), "sig=") {
					t.Fatalf("error leaks the secret: %v", err)
				}
				if CheckConnectionString(tt.cs) == nil {
					t.Fatal("CheckConnectionString accepts it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
