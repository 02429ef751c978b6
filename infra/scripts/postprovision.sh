#!/usr/bin/env bash
# azd postprovision hook (azure.yaml): creates, once each, the key that signs
# the admin-consent state (ONBOARD_STATE_KEY) and the key that seals the
# tokens the instances share (TOKEN_SHARING_KEY), both Key Vault
# references. A key that exists is left alone, so running it again changes
# nothing.
#
# azd passes the environment's values (the outputs of infra/main.bicep) as
# environment variables; it can also be run by hand after `azd env get-values`.
set -euo pipefail

die() { echo "postprovision.sh: $*" >&2; exit 1; }

for tool in az openssl; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
vault=${KEY_VAULT_NAME:-}
[[ -n $vault ]] || die "KEY_VAULT_NAME is not set: run through azd (azd provision) or export the outputs of infra/main.bicep"

# ensure_key NAME DESCRIPTION writes 32 random bytes, base64, as the vault
# secret NAME unless it exists.
ensure_key() {
  local entry=$1 description=$2
  # The deployer's Key Vault Secrets Officer role was granted moments ago by
  # the template; role assignments can take a few minutes to apply.
  if az keyvault secret show --vault-name "$vault" --name "$entry" --query id -o tsv >/dev/null 2>&1; then
    echo "postprovision.sh: $vault/$entry exists; leaving it as is"
    return
  fi
  local tmp
  tmp=$(mktemp)
  chmod 600 "$tmp"
  # 32 random bytes, base64: what both settings require.
  openssl rand -base64 32 | tr -d '\n' >"$tmp"
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if az keyvault secret set --vault-name "$vault" --name "$entry" --file "$tmp" --encoding utf-8 \
      --content-type "$description" --query id -o tsv >/dev/null; then
      echo "postprovision.sh: created $vault/$entry"
      rm -f "$tmp"
      return
    fi
    if ((attempt == 10)); then
      rm -f "$tmp"
      die "could not write $vault/$entry; do you hold Key Vault Secrets Officer on it? (azd sets it for AZURE_PRINCIPAL_ID)"
    fi
    echo "postprovision.sh: waiting for the vault role assignment to apply (attempt $attempt)..." >&2
    sleep 30
  done
}

ensure_key "${STATE_KEY_VAULT_ENTRY:-onboard-state-key}" "base64 HMAC key (tenantsweep admin-consent state)"
ensure_key "${TOKEN_KEY_VAULT_ENTRY:-token-sharing-key}" "base64 AES-256 key (tenantsweep shared tokens)"

if [[ -z ${APP_CLIENT_ID:-} ]]; then
  echo "postprovision.sh: next, run infra/scripts/register-app.sh to create the app registration and its credential" >&2
else
  echo "postprovision.sh: next, run infra/scripts/register-app.sh to add the redirect URI and the ${APP_CREDENTIAL_METHOD:-federated} credential (idempotent)"
fi
