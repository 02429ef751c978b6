package tenant

import (
	"fmt"

	"github.com/tenantsweep/tenantsweep/internal/outcome"
)

// KeyRole is the Azure role that lets an app use a customer's key as Azure
// services use a customer-managed key: read it, wrap and unwrap with it
// (Microsoft.KeyVault/vaults/keys/read, wrap/action and unwrap/action).
const KeyRole = "Key Vault Crypto Service Encryption User"

// adviseKey describes an outcome of a registered key (seed step 5: the
// customer's vault owner).
func (a Advisor) adviseKey(code outcome.Code, s Subject) Advice {
	vault, key := vaultName(s.VaultURL), s.Key
	adv := Advice{Step: "5"}
	switch code {
	case outcome.KeyVaultAccessDenied:
		if s.Firewall {
			adv.Message = fmt.Sprintf("the firewall of vault %s refuses the app %s: Azure services that use a customer-managed key reach a firewalled vault as trusted Microsoft services, while this app reaches it from its own network addresses", s.VaultURL, a.AppID)
			adv.Remediation = fmt.Sprintf("The vault's owner lets the app's outbound addresses (the app's developer gives them) through the firewall: az keyvault network-rule add --name %s --ip-address <address>; or allows public network access to the vault.", vault)
			return adv
		}
		adv.Message = fmt.Sprintf("the app %s may not use key %q in vault %s (it needs get, wrapKey and unwrapKey)", a.AppID, key, s.VaultURL)
		adv.Remediation = fmt.Sprintf("The vault's owner grants the app's service principal the %s role on the key: az role assignment create --role %q --assignee %s --scope \"$(az keyvault show --name %s --query id -o tsv)/keys/%s\"; on a vault that uses access policies: az keyvault set-policy --name %s --spn %s --key-permissions get wrapKey unwrapKey",
			KeyRole, KeyRole, a.AppID, vault, key, vault, a.AppID)
	case outcome.KeyNotFound:
		adv.Message = fmt.Sprintf("key %q does not exist in vault %s (or it is deleted)", key, s.VaultURL)
		adv.Remediation = fmt.Sprintf("The vault's owner recovers a deleted key (az keyvault key recover --vault-name %s --name %s), or creates it (az keyvault key create --vault-name %s --name %s --kty RSA --size 3072 --ops wrapKey unwrapKey), or onboards again with the right key names.",
			vault, key, vault, key)
	case outcome.KeyDisabled:
		adv.Message = fmt.Sprintf("key %q in vault %s is disabled: a service encrypting with it can no longer unwrap its data keys", key, s.VaultURL)
		adv.Remediation = fmt.Sprintf("The vault's owner enables the key again: az keyvault key set-attributes --vault-name %s --name %s --enabled true", vault, key)
	case outcome.KeyExpired:
		adv.Message = fmt.Sprintf("key %q in vault %s has expired: Key Vault still unwraps with it but refuses to wrap, so a service cannot protect new data with it", key, s.VaultURL)
		adv.Remediation = fmt.Sprintf("The vault's owner rotates the key (az keyvault key rotate --vault-name %s --name %s) or sets a later expiry (az keyvault key set-attributes --vault-name %s --name %s --expires <date>).",
			vault, key, vault, key)
	default: // outcome.KeyUnusable
		adv.Message = fmt.Sprintf("key %q in vault %s cannot wrap and unwrap with RSA-OAEP-256", key, s.VaultURL)
		adv.Remediation = fmt.Sprintf("The vault's owner registers an RSA key whose permitted operations include wrapKey and unwrapKey: az keyvault key set-attributes --vault-name %s --name %s --ops wrapKey unwrapKey, or az keyvault key create --vault-name %s --name <new key> --kty RSA --size 3072 --ops wrapKey unwrapKey and onboard again with its name.",
			vault, key, vault)
	}
	return adv
}
