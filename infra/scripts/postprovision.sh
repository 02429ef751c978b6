#!/usr/bin/env bash
# azd postprovision hook (azure.yaml): creates the key that signs the
# admin-consent state (ONBOARD_STATE_KEY, a Key Vault reference) once. A key
# that exists is left alone, so running it again changes nothing.
#
# azd passes the environment's values (the outputs of infra/main.bicep) as
# environment variables; it can also be run by hand after `azd env get-values`.
set -euo pipefail

die() { echo "postprovision.sh: $*" >&2; exit 1; }

for tool in az openssl; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
vault=${KEY_VAULT_NAME:-}
entry=${STATE_KEY_VAULT_ENTRY:-onboard-state-key}
[[ -n $vault ]] || die "KEY_VAULT_NAME is not set: run through azd (azd provision) or export the outputs of infra/main.bicep"

# The deployer's Key Vault Secrets Officer role was granted moments ago by the
# template; role assignments can take a few minutes to apply.
exists() {
  az keyvault secret show --vault-name "$vault" --name "$entry" --query id -o tsv >/dev/null 2>&1
}

if exists; then
  echo "postprovision.sh: $vault/$entry exists; leaving it as is"
else
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  chmod 600 "$tmp"
  # 32 random bytes, base64: what ONBOARD_STATE_KEY requires.
  openssl rand -base64 32 | tr -d '\n' >"$tmp"
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if az keyvault secret set --vault-name "$vault" --name "$entry" --file "$tmp" --encoding utf-8 \
      --content-type "base64 HMAC key (tenantsweep admin-consent state)" --query id -o tsv >/dev/null; then
      echo "postprovision.sh: created $vault/$entry"
      break
    fi
    ((attempt < 10)) || die "could not write $vault/$entry; do you hold Key Vault Secrets Officer on it? (azd sets it for AZURE_PRINCIPAL_ID)"
    echo "postprovision.sh: waiting for the vault role assignment to apply (attempt $attempt)..." >&2
    sleep 30
  done
fi

if [[ -z ${APP_CLIENT_ID:-} ]]; then
  echo "postprovision.sh: next, run infra/scripts/register-app.sh to create the app registration and its credential" >&2
else
  echo "postprovision.sh: next, run infra/scripts/register-app.sh to add the redirect URI and the ${APP_CREDENTIAL_METHOD:-federated} credential (idempotent)"
fi
