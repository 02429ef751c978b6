// Package storageconn parses Azure Storage connection strings, the one parser
// for the table endpoint of the registry and the queue endpoint of the work
// queue. It understands the forms the Functions host and the Azure portal
// produce, including UseDevelopmentStorage=true, which neither aztables nor
// azqueue can parse.
package storageconn

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Azurite's well-known development account. The key is public (it is in
// Microsoft's documentation and in every Azurite install) and only ever works
// against the emulator.
const (
	DevAccountName = "devstoreaccount1"
	DevAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// The ports UseDevelopmentStorage=true means, as in the .NET parser.
const (
	devQueuePort = "10001"
	devTablePort = "10002"
)

// Conn is a parsed connection string.
type Conn struct {
	// Account and Key are set for shared-key auth; SAS (without its
	// leading "?") otherwise, and then Account is empty.
	Account, Key, SAS string
	// TableEndpoint and QueueEndpoint are service URLs without a trailing
	// slash or a query. Either is empty when the string names neither an
	// account nor that endpoint (a SAS string for the other service).
	TableEndpoint, QueueEndpoint string
}

// DevConnectionString is the explicit form of UseDevelopmentStorage=true for
// Azurite endpoints such as http://127.0.0.1:10002/devstoreaccount1 (table)
// and http://127.0.0.1:10001/devstoreaccount1 (queue); an empty endpoint is
// left out.
func DevConnectionString(tableEndpoint, queueEndpoint string) string {
	cs := "DefaultEndpointsProtocol=http;AccountName=" + DevAccountName + ";AccountKey=" + DevAccountKey + ";"
	if tableEndpoint != "" {
		cs += "TableEndpoint=" + tableEndpoint + ";"
	}
	if queueEndpoint != "" {
		cs += "QueueEndpoint=" + queueEndpoint + ";"
	}
	return cs
}

// Parse understands the connection strings the host and the portal produce
// (also UseDevelopmentStorage=true, DevelopmentStorageProxyUri,
// TableEndpoint/QueueEndpoint and SAS). Keys are case-insensitive as in the
// .NET parser. Errors name the keys involved but never echo a value, since
// values hold secrets.
func Parse(cs string) (Conn, error) {
	var c Conn
	m := map[string]string{}
	for i, part := range strings.Split(cs, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return c, fmt.Errorf("connection string: segment %d is not Key=Value", i+1)
		}
		m[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if len(m) == 0 {
		return c, errors.New("connection string is empty")
	}

	if dev, ok := m["usedevelopmentstorage"]; ok {
		if !strings.EqualFold(dev, "true") {
			return c, errors.New("connection string: UseDevelopmentStorage must be true when present")
		}
		host := "127.0.0.1"
		scheme := "http"
		if proxy := m["developmentstorageproxyuri"]; proxy != "" {
			u, err := url.Parse(proxy)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
				return c, errors.New("connection string: DevelopmentStorageProxyUri must be an http(s) URL")
			}
			scheme, host = u.Scheme, u.Hostname()
		}
		c.TableEndpoint = scheme + "://" + net.JoinHostPort(host, devTablePort) + "/" + DevAccountName
		c.QueueEndpoint = scheme + "://" + net.JoinHostPort(host, devQueuePort) + "/" + DevAccountName
		c.Account, c.Key = DevAccountName, DevAccountKey
		return c, nil
	}

	c.Account = m["accountname"]
	scheme := cmp.Or(strings.ToLower(m["defaultendpointsprotocol"]), "https")
	suffix := cmp.Or(m["endpointsuffix"], "core.windows.net")
	for _, e := range []struct {
		key, service string
		dst          *string
	}{
		{"tableendpoint", "table", &c.TableEndpoint},
		{"queueendpoint", "queue", &c.QueueEndpoint},
	} {
		v := m[e.key]
		if v == "" {
			if c.Account == "" {
				continue
			}
			v = scheme + "://" + c.Account + "." + e.service + "." + suffix
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return c, fmt.Errorf("connection string: the %s endpoint must be an http(s) URL without a query", e.service)
		}
		*e.dst = strings.TrimRight(v, "/")
	}
	if c.TableEndpoint == "" && c.QueueEndpoint == "" {
		return c, errors.New("connection string has neither AccountName nor a TableEndpoint or QueueEndpoint")
	}

	switch key, sas := m["accountkey"], m["sharedaccesssignature"]; {
	case key != "" && sas != "":
		return c, errors.New("connection string has both AccountKey and SharedAccessSignature")
	case key != "":
		if c.Account == "" {
			return c, errors.New("connection string has AccountKey but no AccountName")
		}
		if _, err := base64.StdEncoding.DecodeString(key); err != nil {
			return c, errors.New("connection string: AccountKey is not base64")
		}
		c.Key = key
	case sas != "":
		c.SAS = strings.TrimPrefix(sas, "?")
		c.Account = ""
	default:
		return c, errors.New("connection string has neither AccountKey nor SharedAccessSignature")
	}
	return c, nil
}
