package storageconn

import (
	"strings"
	"testing"
)

const someKey = "c2VjcmV0LWtleS1ub3QtdG8tbGVhaw==" // base64 of secret-key-not-to-leak

func TestParse(t *testing.T) {
	const (
		devTable = "http://127.0.0.1:10002/devstoreaccount1"
		devQueue = "http://127.0.0.1:10001/devstoreaccount1"
	)
	tests := []struct {
		name    string
		cs      string
		want    Conn
		wantErr string
	}{
		{
			name: "development storage",
			cs:   "UseDevelopmentStorage=true",
			want: Conn{TableEndpoint: devTable, QueueEndpoint: devQueue, Account: DevAccountName, Key: DevAccountKey},
		},
		{
			name: "development storage, any case, trailing semicolon",
			cs:   "usedevelopmentstorage=TRUE;",
			want: Conn{TableEndpoint: devTable, QueueEndpoint: devQueue, Account: DevAccountName, Key: DevAccountKey},
		},
		{
			name: "development storage through a proxy",
			cs:   "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite.local",
			want: Conn{TableEndpoint: "http://azurite.local:10002/devstoreaccount1", QueueEndpoint: "http://azurite.local:10001/devstoreaccount1", Account: DevAccountName, Key: DevAccountKey},
		},
		{
			name: "development storage through a proxy with a port",
			cs:   "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=https://10.0.0.5:8080/",
			want: Conn{TableEndpoint: "https://10.0.0.5:10002/devstoreaccount1", QueueEndpoint: "https://10.0.0.5:10001/devstoreaccount1", Account: DevAccountName, Key: DevAccountKey},
		},
		{
			name: "explicit Azurite string, table only",
			cs:   DevConnectionString("http://127.0.0.1:41234/devstoreaccount1", ""),
			want: Conn{TableEndpoint: "http://127.0.0.1:41234/devstoreaccount1", Account: DevAccountName, Key: DevAccountKey,
				// AccountName derives the queue endpoint, as in .NET.
				QueueEndpoint: "http://devstoreaccount1.queue.core.windows.net"},
		},
		{
			name: "explicit Azurite string, both",
			cs:   DevConnectionString("http://127.0.0.1:41234/devstoreaccount1", "http://127.0.0.1:41233/devstoreaccount1/"),
			want: Conn{TableEndpoint: "http://127.0.0.1:41234/devstoreaccount1", QueueEndpoint: "http://127.0.0.1:41233/devstoreaccount1", Account: DevAccountName, Key: DevAccountKey},
		},
		{
			name: "account string",
			cs:   "DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=" + someKey + ";EndpointSuffix=core.windows.net",
			want: Conn{TableEndpoint: "https://contoso.table.core.windows.net", QueueEndpoint: "https://contoso.queue.core.windows.net", Account: "contoso", Key: someKey},
		},
		{
			name: "account string, sovereign suffix, default protocol",
			cs:   "AccountName=contoso;AccountKey=" + someKey + ";EndpointSuffix=core.chinacloudapi.cn",
			want: Conn{TableEndpoint: "https://contoso.table.core.chinacloudapi.cn", QueueEndpoint: "https://contoso.queue.core.chinacloudapi.cn", Account: "contoso", Key: someKey},
		},
		{
			name: "account string with TableEndpoint",
			cs:   "AccountName=contoso;AccountKey=" + someKey + ";TableEndpoint=https://contoso.table.core.windows.net/",
			want: Conn{TableEndpoint: "https://contoso.table.core.windows.net", QueueEndpoint: "https://contoso.queue.core.windows.net", Account: "contoso", Key: someKey},
		},
		{
			name: "account string with QueueEndpoint",
			cs:   "AccountName=contoso;AccountKey=" + someKey + ";QueueEndpoint=https://q.example.net/contoso",
			want: Conn{TableEndpoint: "https://contoso.table.core.windows.net", QueueEndpoint: "https://q.example.net/contoso", Account: "contoso", Key: someKey},
		},
		{
			name: "table SAS",
			cs:   "TableEndpoint=https://contoso.table.core.windows.net;SharedAccessSignature=?sv=2020&sig=" + someKey,
			want: Conn{TableEndpoint: "https://contoso.table.core.windows.net", SAS: "sv=2020&sig=" + someKey},
		},
		{
			name: "queue SAS",
			cs:   "QueueEndpoint=https://contoso.queue.core.windows.net/;SharedAccessSignature=sv=2020&sig=" + someKey,
			want: Conn{QueueEndpoint: "https://contoso.queue.core.windows.net", SAS: "sv=2020&sig=" + someKey},
		},
		{name: "empty", cs: " ; ", wantErr: "empty"},
		{name: "not key=value", cs: "AccountName=a;hunter2", wantErr: "segment 2"},
		{name: "dev storage false", cs: "UseDevelopmentStorage=false", wantErr: "UseDevelopmentStorage"},
		{name: "bad proxy", cs: "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=azurite", wantErr: "DevelopmentStorageProxyUri"},
		{name: "no account", cs: "AccountKey=" + someKey, wantErr: "neither AccountName nor a TableEndpoint or QueueEndpoint"},
		{name: "no key", cs: "AccountName=contoso", wantErr: "neither AccountKey nor SharedAccessSignature"},
		{name: "key without account", cs: "QueueEndpoint=https://q.example.net;AccountKey=" + someKey, wantErr: "AccountKey but no AccountName"},
		{name: "key not base64", cs: "AccountName=a;AccountKey=not*base64*" + someKey, wantErr: "not base64"},
		{name: "key and sas", cs: "AccountName=a;AccountKey=" + someKey + ";SharedAccessSignature=sig=" + someKey, wantErr: "both"},
		{name: "bad table endpoint", cs: "AccountName=a;AccountKey=" + someKey + ";TableEndpoint=ftp://x", wantErr: "table endpoint must be an http(s) URL"},
		{name: "queue endpoint with a query", cs: "QueueEndpoint=https://q.example.net/?sig=" + someKey + ";SharedAccessSignature=sig=" + someKey, wantErr: "queue endpoint must be an http(s) URL without a query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.cs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), someKey) || strings.Contains(err.Error(), "sig=") {
					t.Fatalf("error leaks the secret: %v", err)
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
