package tenant

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/tenantsweep/tenantsweep/internal/cloud"
)

// The rules for what names a tenant, a vault and a secret live here, once:
// the API, the registry, the credential code and the settings all call them,
// so that nothing is stored that cannot be swept, and nothing is swept that
// could not have been stored.

var (
	guidRE       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	secretNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	vaultLabelRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,22}[a-z0-9]$`)
)

const (
	nilGUID = "00000000-0000-0000-0000-000000000000"
	// consumersTenant is the GUID of "consumers", the Microsoft-account
	// tenant: a shared endpoint, no customer's directory. Signing in there
	// answers AADSTS90002 for every app-only request.
	consumersTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
)

// ParseGUID returns s in lower case when it is a GUID in the canonical
// 8-4-4-4-12 form (any case, no braces) other than the nil GUID.
func ParseGUID(s string) (string, bool) {
	if !guidRE.MatchString(s) {
		return "", false
	}
	s = strings.ToLower(s)
	return s, s != nilGUID
}

// ParseTenantID is the rule for a customer tenant id: a GUID (the names of
// the shared endpoints common, organizations and consumers are not), not the
// nil GUID and not the consumers tenant's GUID. It returns the id in lower
// case, the form the registry keys on and tokens are asked for. Its errors
// are *ValidationError for the field tenantId.
func ParseTenantID(s string) (string, error) {
	if s == "" {
		return "", invalid("tenantId", "is required")
	}
	if !guidRE.MatchString(s) {
		return "", invalid("tenantId", "must be a GUID like 3c1e8b2a-5f4d-4e6b-9a7c-2d8f0e1b4a6c")
	}
	id, ok := ParseGUID(s)
	switch {
	case !ok:
		return "", invalid("tenantId", "must not be the nil GUID")
	case id == consumersTenant:
		return "", invalid("tenantId", "is the consumers tenant (personal Microsoft accounts), not a customer directory")
	}
	return id, nil
}

// ParseVaultURL is the rule for a customer vault: https://<name>.<suffix of
// cl>, with no port, path, query, fragment or user information, and a name
// that Key Vault allows (3-24 letters, digits and single hyphens, starting
// with a letter). It returns the vault's host in lower case. The app sends
// cl's Key Vault tokens to that host, so nothing else passes. Its errors never
// repeat the URL, which could carry credentials.
func ParseVaultURL(raw string, cl cloud.Cloud) (string, error) {
	want := fmt.Errorf("must be https://<vault-name>.%s/", cl.KeyVaultSuffix)
	if strings.ContainsAny(raw, "?#") {
		return "", fmt.Errorf("must not have a query or fragment; %w", want)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", want
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("must use https; %w", want)
	}
	if u.User != nil {
		return "", fmt.Errorf("must not have user information; %w", want)
	}
	// Host differs from Hostname when a port, even an empty one, is given.
	if u.Port() != "" || u.Host != u.Hostname() {
		return "", fmt.Errorf("must not have a port; %w", want)
	}
	if u.Path != "" && u.Path != "/" || u.RawPath != "" {
		return "", fmt.Errorf("must not have a path; %w", want)
	}
	host := strings.ToLower(u.Hostname())
	if !cl.IsVaultHost(host) {
		return "", fmt.Errorf("is not a Key Vault of %s; %w", cl.Name, want)
	}
	name := strings.TrimSuffix(host, "."+strings.ToLower(cl.KeyVaultSuffix))
	if !vaultLabelRE.MatchString(name) || strings.Contains(name, "--") {
		return "", fmt.Errorf("vault name %q is not valid (3-24 letters, digits and single hyphens, starting with a letter); %w", name, want)
	}
	return host, nil
}

// ValidSecretName reports whether name is a Key Vault secret name: 1-127
// letters, digits and hyphens.
func ValidSecretName(name string) bool { return secretNameRE.MatchString(name) }

// SecretURI addresses one secret: the vault's host, the secret's name and,
// optionally, a version (empty for the latest).
type SecretURI struct {
	VaultHost string
	Name      string
	Version   string
}

// VaultURL is the vault's URL, as the Key Vault client wants it.
func (s SecretURI) VaultURL() string { return "https://" + s.VaultHost }

// ParseSecretURI parses https://<vault>.<suffix>/secrets/<name>[/<version>],
// with the vault rule of ParseVaultURL.
func ParseSecretURI(raw string, cl cloud.Cloud) (SecretURI, error) {
	want := fmt.Errorf("must be https://<vault>.%s/secrets/<name>[/<version>]", cl.KeyVaultSuffix)
	u, err := url.Parse(raw)
	if err != nil || u.RawQuery != "" || u.Fragment != "" || u.RawPath != "" {
		return SecretURI{}, want
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "secrets" || !ValidSecretName(parts[1]) {
		return SecretURI{}, want
	}
	vault := *u
	vault.Path = ""
	host, err := ParseVaultURL(vault.String(), cl)
	if err != nil {
		return SecretURI{}, fmt.Errorf("the vault %w", err)
	}
	s := SecretURI{VaultHost: host, Name: parts[1]}
	if len(parts) == 3 {
		if parts[2] == "" {
			return SecretURI{}, want
		}
		s.Version = parts[2]
	}
	return s, nil
}
