package tablestore

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
	devTablePort   = "10002"
)

// DevConnectionString is the explicit form of UseDevelopmentStorage=true for
// an Azurite table endpoint such as http://127.0.0.1:10002/devstoreaccount1.
func DevConnectionString(tableEndpoint string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + DevAccountName +
		";AccountKey=" + DevAccountKey + ";TableEndpoint=" + tableEndpoint + ";"
}

// connection is a parsed connection string.
type connection struct {
	// endpoint is the table service URL, without a SAS.
	endpoint string
	// account and key are set for shared-key auth; sas otherwise.
	account string
	key     string
	sas     string
}

// CheckConnectionString reports whether cs is a connection string the store
// can use, without connecting: start-up calls it so that a malformed one
// stops the process instead of failing every request. Like Open's, its
// errors never echo a value.
func CheckConnectionString(cs string) error {
	_, err := parseConnectionString(cs)
	return err
}

// parseConnectionString understands the forms the Functions host and the
// Azure portal produce, including UseDevelopmentStorage=true which aztables
// cannot parse. Keys are case-insensitive as in the .NET parser. Errors name
// the keys involved but never echo a value, since values hold secrets.
func parseConnectionString(cs string) (connection, error) {
	var c connection
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
		c.endpoint = scheme + "://" + net.JoinHostPort(host, devTablePort) + "/" + DevAccountName
		c.account, c.key = DevAccountName, DevAccountKey
		return c, nil
	}

	c.account = m["accountname"]
	c.endpoint = m["tableendpoint"]
	if c.endpoint == "" {
		if c.account == "" {
			return c, errors.New("connection string has neither TableEndpoint nor AccountName")
		}
		scheme := cmp.Or(strings.ToLower(m["defaultendpointsprotocol"]), "https")
		suffix := cmp.Or(m["endpointsuffix"], "core.windows.net")
		c.endpoint = scheme + "://" + c.account + ".table." + suffix
	}
	u, err := url.Parse(c.endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return c, errors.New("connection string: the table endpoint must be an http(s) URL without a query")
	}
	c.endpoint = strings.TrimRight(c.endpoint, "/")

	switch key, sas := m["accountkey"], m["sharedaccesssignature"]; {
	case key != "" && sas != "":
		return c, errors.New("connection string has both AccountKey and SharedAccessSignature")
	case key != "":
		if c.account == "" {
			return c, errors.New("connection string has AccountKey but no AccountName")
		}
		if _, err := base64.StdEncoding.DecodeString(key); err != nil {
			return c, errors.New("connection string: AccountKey is not base64")
		}
		c.key = key
	case sas != "":
		c.sas = strings.TrimPrefix(sas, "?")
		c.account = ""
	default:
		return c, errors.New("connection string has neither AccountKey nor SharedAccessSignature")
	}
	return c, nil
}
