#!/usr/bin/env bash
# Developer side of the seed's steps 1 and 2, in the developer's tenant:
#   - the multi-tenant app registration (sign-in audience AzureADMultipleOrgs),
#   - its Microsoft Graph application permissions, those of the tasks the
#     deployment runs (SWEEP_TASKS: access needs Organization.Read.All and
#     User.Read.All), which each customer's admin consents to,
#   - the admin-consent redirect URI (the ConsentCallback function),
#   - its credential: a federated credential that trusts the Function App's
#     managed identity (no secret), or a client secret stored in the Key Vault.
#
# Idempotent: it finds the app by id or display name, and adds only what is
# missing. Run it once before `azd up` (it creates the app and sets
# APP_CLIENT_ID in the azd environment) and once after (it adds the redirect
# URI and the credential, which need the provisioned resources). Runs with the
# bash 3.2 of macOS as well as with Linux's.
set -euo pipefail

readonly GRAPH_APP_ID=00000003-0000-0000-c000-000000000000
readonly MIN_AZ_VERSION=2.60.0

usage() {
  cat <<'EOF'
Usage: infra/scripts/register-app.sh [options]

  --name NAME          display name of the app registration (default: tenantsweep)
  --app-id ID          use this app registration instead of looking it up by name
  --credential METHOD  federated | keyvault-secret | certificate | none
                       (default: APP_CREDENTIAL_METHOD of the azd environment, else federated)
  --rotate             keyvault-secret: add a new client secret and store it as the
                       vault secret's new version even if one exists (zero-downtime rotation)
  --years N            keyvault-secret: lifetime of a new client secret (default: 1)
  --tasks LIST         the tasks the deployment runs, comma-separated (SWEEP_TASKS; default:
                       SWEEP_TASKS of the azd environment, else access,keys): the app asks for
                       their Graph permissions (bin/handler tasks lists them)
  --no-azd             do not read or write the azd environment
  -h, --help           show this help

Values of the azd environment (from `azd env get-values`) fill in what the
provisioned resources decide; environment variables of the same name win:
  APP_CLIENT_ID, APP_CREDENTIAL_METHOD, AZURE_TENANT_ID, KEY_VAULT_NAME,
  APP_VAULT_ENTRY, MANAGED_IDENTITY_PRINCIPAL_ID, ONBOARD_REDIRECT_URI, SWEEP_TASKS

Needs: az (>= 2.60, signed in to the developer tenant with a role that can
create app registrations, e.g. Application Developer) and jq. The
keyvault-secret method also needs Key Vault Secrets Officer on the vault,
which `azd provision` grants to the signed-in user.
EOF
}

log() { echo "register-app.sh: $*"; }
warn() { echo "register-app.sh: warning: $*" >&2; }
die() {
  echo "register-app.sh: $*" >&2
  exit 1
}

# graph_roles sets GRAPH_ROLES to the Graph application permissions the
# comma-separated tasks $1 declare, as the app itself lists them
# (`handler tasks --json`, the first alternative of each need): the tasks'
# declarations are the one list, so a task added to the binary needs nothing
# here. TENANTSWEEP_HANDLER names a built handler to ask; by default the
# repository's source is run with `go run`, so a stale build cannot answer.
graph_roles() {
  local json
  if [[ -n ${TENANTSWEEP_HANDLER:-} ]]; then
    json=$(SWEEP_TASKS=$1 "$TENANTSWEEP_HANDLER" tasks --json) || die "cannot list the tasks' permissions ($TENANTSWEEP_HANDLER tasks)"
  else
    command -v go >/dev/null || die "go is required to list the tasks' permissions (or set TENANTSWEEP_HANDLER to a built bin/handler)"
    json=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && SWEEP_TASKS=$1 go run ./handler tasks --json) ||
      die "cannot list the tasks' permissions (go run ./handler tasks)"
  fi
  GRAPH_ROLES=()
  local role
  while IFS= read -r role; do
    [[ -z $role ]] || GRAPH_ROLES+=("$role")
  done < <(jq -r 'select(.enabled) | .graph[] | split("|")[0]' <<<"$json" | awk '!seen[$0]++')
}

name=tenantsweep
app_id_flag=""
method_flag=""
rotate=false
years=1
use_azd=true
tasks_flag=""
while (($# > 0)); do
  case $1 in
  --name) name=${2:?--name needs a value}; shift 2 ;;
  --app-id) app_id_flag=${2:?--app-id needs a value}; shift 2 ;;
  --credential) method_flag=${2:?--credential needs a value}; shift 2 ;;
  --rotate) rotate=true; shift ;;
  --years) years=${2:?--years needs a value}; shift 2 ;;
  --tasks) tasks_flag=${2:?--tasks needs a value}; shift 2 ;;
  --no-azd) use_azd=false; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $years =~ ^[1-9][0-9]*$ ]] || die "--years must be a positive integer"

# --- prerequisites -----------------------------------------------------------

for tool in az jq; do
  command -v "$tool" >/dev/null || die "$tool is required (https://learn.microsoft.com/cli/azure/install-azure-cli, apt-get install jq)"
done
az_version=$(az version --query '"azure-cli"' -o tsv 2>/dev/null) || die "az does not run"
if ! awk -v have="$az_version" -v want="$MIN_AZ_VERSION" 'BEGIN {
  split(have, h, "."); split(want, w, ".")
  for (i = 1; i <= 3; i++) { if (h[i] + 0 != w[i] + 0) exit !(h[i] + 0 > w[i] + 0) }
}'; then
  die "az $az_version is too old; $MIN_AZ_VERSION or later is required (az upgrade)"
fi
tenant=$(az account show --query tenantId -o tsv 2>/dev/null) || die "not signed in: az login --tenant <developer tenant id>"

# --- inputs from the azd environment ------------------------------------------

APP_CLIENT_ID=${APP_CLIENT_ID:-}
APP_CREDENTIAL_METHOD=${APP_CREDENTIAL_METHOD:-}
AZURE_TENANT_ID=${AZURE_TENANT_ID:-}
KEY_VAULT_NAME=${KEY_VAULT_NAME:-}
APP_VAULT_ENTRY=${APP_VAULT_ENTRY:-}
MANAGED_IDENTITY_PRINCIPAL_ID=${MANAGED_IDENTITY_PRINCIPAL_ID:-}
ONBOARD_REDIRECT_URI=${ONBOARD_REDIRECT_URI:-}
SWEEP_TASKS=${SWEEP_TASKS:-}

have_azd=false
if $use_azd && command -v azd >/dev/null && values=$(azd env get-values 2>/dev/null); then
  have_azd=true
  while IFS= read -r line; do
    key=${line%%=*}
    val=${line#*=}
    val=${val#\"}
    val=${val%\"}
    case $key in
    APP_CLIENT_ID | APP_CREDENTIAL_METHOD | AZURE_TENANT_ID | KEY_VAULT_NAME | APP_VAULT_ENTRY | \
      MANAGED_IDENTITY_PRINCIPAL_ID | ONBOARD_REDIRECT_URI | SWEEP_TASKS)
      # An environment variable that is already set wins.
      [[ -n ${!key} ]] || printf -v "$key" '%s' "$val"
      ;;
    esac
  done <<<"$values"
fi

[[ -z $app_id_flag ]] || APP_CLIENT_ID=$app_id_flag
method=${method_flag:-${APP_CREDENTIAL_METHOD:-federated}}
case $method in
federated | keyvault-secret | certificate | none) ;;
*) die "unknown credential method '$method' (federated, keyvault-secret, certificate or none)" ;;
esac
vault_entry=${APP_VAULT_ENTRY:-app-client-secret}
graph_roles "${tasks_flag:-${SWEEP_TASKS:-access,keys}}"

if [[ -n $AZURE_TENANT_ID && $AZURE_TENANT_ID != "$tenant" ]]; then
  die "az is signed in to tenant $tenant but the azd environment was provisioned in $AZURE_TENANT_ID: az login --tenant $AZURE_TENANT_ID"
fi

# Sign-in host and token-exchange audience of this cloud, for the federated credential.
cloud=$(az cloud show --query name -o tsv)
case $cloud in
AzureCloud) issuer_host=https://login.microsoftonline.com; audience=api://AzureADTokenExchange ;;
AzureUSGovernment) issuer_host=https://login.microsoftonline.us; audience=api://AzureADTokenExchangeUSGov ;;
AzureChinaCloud) issuer_host=https://login.partner.microsoftonline.cn; audience=api://AzureADTokenExchangeChina ;;
*) die "cloud $cloud is not supported (AzureCloud, AzureUSGovernment, AzureChinaCloud)" ;;
esac

tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT
chmod 700 "$tmpdir"

# --- step 1: the multi-tenant app registration --------------------------------

if [[ -n $APP_CLIENT_ID ]]; then
  app=$(az ad app show --id "$APP_CLIENT_ID" --query appId -o tsv 2>/dev/null) ||
    die "no app registration with id $APP_CLIENT_ID in tenant $tenant"
  log "using app registration $app"
else
  found=$(az ad app list --display-name "$name" -o json |
    jq -r --arg n "$name" '.[]? | select(.displayName == $n) | .appId')
  count=$(grep -c . <<<"$found" || true)
  case $count in
  0)
    app=$(az ad app create --display-name "$name" --sign-in-audience AzureADMultipleOrgs --query appId -o tsv)
    log "created app registration '$name': $app"
    ;;
  1)
    app=$found
    log "found app registration '$name': $app"
    ;;
  *) die "$count app registrations are named '$name'; pass --app-id" ;;
  esac
fi

audience_now=$(az ad app show --id "$app" --query signInAudience -o tsv)
if [[ $audience_now != AzureADMultipleOrgs ]]; then
  az ad app update --id "$app" --sign-in-audience AzureADMultipleOrgs
  log "sign-in audience: $audience_now -> AzureADMultipleOrgs"
fi

# --- step 2: Microsoft Graph application permissions ---------------------------

role_ids=()
for role in "${GRAPH_ROLES[@]}"; do
  id=$(az ad sp show --id "$GRAPH_APP_ID" --query "appRoles[?value=='$role'].id | [0]" -o tsv)
  [[ -n $id ]] || die "Microsoft Graph has no application permission $role"
  role_ids+=("$id")
done
current=$(az ad app show --id "$app" --query requiredResourceAccess -o json)
wanted=$(printf '%s\n' "${role_ids[@]}" | jq -R . | jq -s .)
desired=$(jq --arg api "$GRAPH_APP_ID" --argjson ids "$wanted" '
  (. // []) as $all
  | (if any($all[]; .resourceAppId == $api) then $all else $all + [{resourceAppId: $api, resourceAccess: []}] end)
  | map(if .resourceAppId == $api
        then .resourceAccess = ((.resourceAccess + [$ids[] | {id: ., type: "Role"}]) | unique_by([.id, .type]))
        else . end)' <<<"$current")
if [[ $(jq -S -c . <<<"$current") != "$(jq -S -c . <<<"$desired")" ]]; then
  printf '%s' "$desired" >"$tmpdir/rra.json"
  az ad app update --id "$app" --required-resource-accesses "@$tmpdir/rra.json"
  log "Graph application permissions: ${GRAPH_ROLES[*]} (each customer's admin consents to them)"
else
  log "Graph application permissions already set: ${GRAPH_ROLES[*]}"
fi

# --- admin-consent redirect URI --------------------------------------------------

if [[ -z $ONBOARD_REDIRECT_URI ]]; then
  warn "ONBOARD_REDIRECT_URI is unknown (not provisioned yet?): the redirect URI is added on the next run after azd up"
else
  uris=()
  while IFS= read -r uri; do
    [[ -z $uri ]] || uris+=("$uri")
  done < <(az ad app show --id "$app" --query 'web.redirectUris' -o json | jq -r '.[]?')
  if printf '%s\n' ${uris[@]+"${uris[@]}"} | grep -Fxq -- "$ONBOARD_REDIRECT_URI"; then
    log "redirect URI already registered: $ONBOARD_REDIRECT_URI"
  else
    az ad app update --id "$app" --web-redirect-uris ${uris[@]+"${uris[@]}"} "$ONBOARD_REDIRECT_URI"
    log "registered redirect URI $ONBOARD_REDIRECT_URI"
  fi
fi

# --- step 1 continued: the credential --------------------------------------------

credential_state="not configured"
case $method in
federated)
  if [[ -z $MANAGED_IDENTITY_PRINCIPAL_ID ]]; then
    warn "MANAGED_IDENTITY_PRINCIPAL_ID is unknown (not provisioned yet?): the federated credential is added on the next run after azd up"
  else
    issuer="$issuer_host/$tenant/v2.0"
    have=$(az ad app federated-credential list --id "$app" -o json |
      jq --arg i "$issuer" --arg s "$MANAGED_IDENTITY_PRINCIPAL_ID" '[.[] | select(.issuer == $i and .subject == $s)] | length')
    if ((have > 0)); then
      log "federated credential for the managed identity already exists"
    else
      jq -n --arg n "tenantsweep-mi-${MANAGED_IDENTITY_PRINCIPAL_ID:0:8}" --arg i "$issuer" \
        --arg s "$MANAGED_IDENTITY_PRINCIPAL_ID" --arg a "$audience" \
        '{name: $n, issuer: $i, subject: $s, audiences: [$a],
          description: "user-assigned managed identity of the tenantsweep Function App"}' >"$tmpdir/fic.json"
      az ad app federated-credential create --id "$app" --parameters "@$tmpdir/fic.json" -o none
      log "added federated credential: issuer $issuer, subject $MANAGED_IDENTITY_PRINCIPAL_ID, audience $audience"
    fi
    credential_state="federated credential trusting managed identity $MANAGED_IDENTITY_PRINCIPAL_ID"
  fi
  ;;
keyvault-secret)
  if [[ -z $KEY_VAULT_NAME ]]; then
    warn "KEY_VAULT_NAME is unknown (not provisioned yet?): the client secret is stored on the next run after azd up"
  elif ! $rotate && az keyvault secret show --vault-name "$KEY_VAULT_NAME" --name "$vault_entry" --query id -o tsv >/dev/null 2>&1; then
    log "client secret already stored in $KEY_VAULT_NAME/$vault_entry (pass --rotate to replace it)"
    credential_state="client secret in $KEY_VAULT_NAME/$vault_entry"
  else
    label="tenantsweep $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    before=$(az ad app credential list --id "$app" -o json | jq -c '[.[].keyId]')
    # --append keeps the existing secrets valid until the new one is in use.
    az ad app credential reset --id "$app" --append --display-name "$label" --years "$years" \
      --query password -o tsv >"$tmpdir/secret"
    [[ -s $tmpdir/secret ]] || die "az ad app credential reset returned no secret"
    # az prints a trailing newline; the vault must hold the secret alone.
    printf '%s' "$(cat "$tmpdir/secret")" >"$tmpdir/secret.value"
    az ad app credential list --id "$app" -o json >"$tmpdir/credentials.json"
    new_key=$(jq -r --argjson before "$before" '[.[] | select(.keyId as $k | $before | index($k) | not)][0].keyId // empty' "$tmpdir/credentials.json")
    [[ -n $new_key ]] || die "cannot tell the new client secret from the old ones"
    ends=$(jq -r --arg k "$new_key" '.[] | select(.keyId == $k) | .endDateTime // empty' "$tmpdir/credentials.json")
    # The vault secret expires with the credential, so its expiry shows in the vault.
    expiry=()
    [[ -z $ends ]] || expiry=(--expires "$ends")
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
      if az keyvault secret set --vault-name "$KEY_VAULT_NAME" --name "$vault_entry" --file "$tmpdir/secret.value" \
        --encoding utf-8 ${expiry[@]+"${expiry[@]}"} --content-type "client secret of app $app" --tags "keyId=$new_key" -o none; then
        break
      fi
      ((attempt < 10)) || die "could not write $KEY_VAULT_NAME/$vault_entry (do you hold Key Vault Secrets Officer on it?); delete the unused new client secret: az ad app credential delete --id $app --key-id $new_key"
      warn "waiting for the vault role assignment to apply (attempt $attempt)..."
      sleep 30
    done
    log "stored a new client secret ('$label', key id $new_key, ends ${ends:-unknown}) in $KEY_VAULT_NAME/$vault_entry"
    log "running instances keep the old secret until it stops working, then re-read the vault; restart to switch now: az functionapp restart -g <resource group> -n <function app>"
    olds=$(jq -r --arg k "$new_key" '.[] | select(.keyId != $k) | [.keyId, (.displayName // ""), (.endDateTime // "")] | @tsv' "$tmpdir/credentials.json")
    if [[ -n $olds ]]; then
      log "once a sweep succeeds with the new secret, delete the older ones (docs/operations.md):"
      while IFS=$'\t' read -r key_id label_old end_old; do
        echo "    az ad app credential delete --id $app --key-id $key_id    # '$label_old', ends $end_old"
      done <<<"$olds"
    fi
    credential_state="client secret in $KEY_VAULT_NAME/$vault_entry"
  fi
  ;;
certificate)
  warn "the certificate method is set up by hand (docs/operations.md, 'Certificate credential'):"
  warn "  az ad app credential reset --id $app --append --cert @cert.pem   # public part only"
  credential_state="certificate (by hand)"
  ;;
none) ;;
esac

# --- hand the app id to azd ------------------------------------------------------

if $have_azd; then
  if [[ $APP_CLIENT_ID != "$app" ]]; then
    azd env set APP_CLIENT_ID "$app"
    log "azd environment: APP_CLIENT_ID=$app"
  fi
  if [[ -n $method_flag && $APP_CREDENTIAL_METHOD != "$method" ]]; then
    azd env set APP_CREDENTIAL_METHOD "$method"
    log "azd environment: APP_CREDENTIAL_METHOD=$method (run azd provision to apply it)"
  fi
fi

cat <<EOF

App registration ready in tenant $tenant:
  application (client) id  $app
  sign-in audience         AzureADMultipleOrgs
  Graph permissions        ${GRAPH_ROLES[*]} (application)
  redirect URI             ${ONBOARD_REDIRECT_URI:-not yet (run again after azd up)}
  credential               $credential_state

Next: azd up (or azd provision) if you have not provisioned with this app id yet;
then give each customer admin the app id, the onboarding URL (FUNCTION_URL) and a
function key, and have them run infra/scripts/onboard-customer.sh.
EOF
