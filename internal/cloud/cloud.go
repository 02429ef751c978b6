// Package cloud holds the endpoints of each Azure cloud the app can run in, so
// that a token is only ever sent to hosts of the configured cloud.
package cloud

import (
	"fmt"
	"strings"
)

// Cloud is one national cloud's set of endpoints.
type Cloud struct {
	Name string
	// AuthorityHost is the Entra ID sign-in host, with scheme and trailing slash.
	AuthorityHost string
	// GraphEndpoint is the Microsoft Graph host, with scheme and no trailing slash.
	GraphEndpoint string
	// KeyVaultSuffix is the DNS suffix every vault host of this cloud ends with.
	KeyVaultSuffix string
	// KeyVaultScope is the scope of a Key Vault data-plane token.
	KeyVaultScope string
	// TokenExchangeAudience is the audience of a managed identity token used as
	// a federated client assertion.
	TokenExchangeAudience string
	// Instance is how a tenant's OpenID metadata names this cloud
	// (cloud_instance_name).
	Instance string
}

// GraphScope is the client-credentials scope of Microsoft Graph in this cloud.
func (c Cloud) GraphScope() string { return c.GraphEndpoint + "/.default" }

// Unseen names the tenants this cloud's sign-in host cannot see at all, or
// is "": the global cloud does not know the tenants of Microsoft Azure
// operated by 21Vianet (they answer AADSTS90002 there), while US
// Government tenants are found there, and reported as in another cloud.
func (c Cloud) Unseen() string {
	if c.Name == AzurePublic.Name {
		return "a tenant of Microsoft Azure operated by 21Vianet"
	}
	return ""
}

// GraphHost is the bare host name of Microsoft Graph in this cloud.
func (c Cloud) GraphHost() string { return strings.TrimPrefix(c.GraphEndpoint, "https://") }

// IsVaultHost reports whether host (no port) is a Key Vault of this cloud:
// exactly one DNS label in front of the suffix.
func (c Cloud) IsVaultHost(host string) bool {
	host = strings.ToLower(host)
	name, ok := strings.CutSuffix(host, "."+c.KeyVaultSuffix)
	return ok && name != "" && !strings.Contains(name, ".")
}

var (
	AzurePublic = Cloud{
		Name:                  "AzurePublic",
		AuthorityHost:         "https://login.microsoftonline.com/",
		GraphEndpoint:         "https://graph.microsoft.com",
		KeyVaultSuffix:        "vault.azure.net",
		KeyVaultScope:         "https://vault.azure.net/.default",
		TokenExchangeAudience: "api://AzureADTokenExchange",
		Instance:              "microsoftonline.com",
	}
	AzureUSGovernment = Cloud{
		Name:                  "AzureUSGovernment",
		AuthorityHost:         "https://login.microsoftonline.us/",
		GraphEndpoint:         "https://graph.microsoft.us",
		KeyVaultSuffix:        "vault.usgovcloudapi.net",
		KeyVaultScope:         "https://vault.usgovcloudapi.net/.default",
		TokenExchangeAudience: "api://AzureADTokenExchangeUSGov",
		Instance:              "microsoftonline.us",
	}
	AzureChina = Cloud{
		Name:                  "AzureChina",
		AuthorityHost:         "https://login.chinacloudapi.cn/",
		GraphEndpoint:         "https://microsoftgraph.chinacloudapi.cn",
		KeyVaultSuffix:        "vault.azure.cn",
		KeyVaultScope:         "https://vault.azure.cn/.default",
		TokenExchangeAudience: "api://AzureADTokenExchangeChina",
		Instance:              "partner.microsoftonline.cn",
	}
)

// All lists the supported clouds.
var All = []Cloud{AzurePublic, AzureUSGovernment, AzureChina}

// ByName returns the cloud with the given name (case-insensitive).
func ByName(name string) (Cloud, error) {
	for _, c := range All {
		if strings.EqualFold(c.Name, name) {
			return c, nil
		}
	}
	return Cloud{}, fmt.Errorf("unknown cloud %q (want AzurePublic, AzureUSGovernment or AzureChina)", name)
}

// ByInstance returns the cloud whose tenants' OpenID metadata names it
// instance (cloud_instance_name, any case).
func ByInstance(instance string) (Cloud, bool) {
	for _, c := range All {
		if strings.EqualFold(c.Instance, instance) {
			return c, true
		}
	}
	return Cloud{}, false
}
