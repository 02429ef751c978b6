#!/usr/bin/env bash
# Customer side of the seed's steps 3 to 5, run by an admin of the customer's
# tenant, then the developer's onboarding webhook:
#   3. adds the developer's multi-tenant app to the tenant (az ad sp create),
#   4. grants admin consent to its Microsoft Graph application permissions
#      (opens or prints the consent URL, or grants them through Graph),
#   5. gives it Key Vault Secrets User on the named vaults, and Key Vault
#      Crypto Service Encryption User on the named keys (what Azure services
#      are granted on a customer-managed key), or prints the command for the
#      vault's owner when the grant is refused,
#   and registers the tenant with the webhook, printing the app's own check
#   of steps 3 to 5 (the verification).
#
# Idempotent: each step checks first and does only what is missing, so it can
# be run again after fixing whatever the verification reports. Runs with the
# bash 3.2 of macOS as well as with Linux's.
set -euo pipefail

readonly GRAPH_APP_ID=00000003-0000-0000-c000-000000000000
readonly GUID_RE='^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$'

usage() {
  cat <<'EOF'
Usage: infra/scripts/onboard-customer.sh --tenant TENANT_ID --app-id APP_ID [options]

  --tenant ID           your tenant id (Microsoft Entra admin center > Overview)
  --app-id ID           application (client) id the app's developer gave you
  --webhook URL         onboarding URL the developer gave you, https://<app>/api/tenants
                        (omit it to do steps 3 to 5 only)
  --display-name NAME   name shown to the developer (default: your organization's name)
  --vault NAME[:S1,S2]  grant the app Key Vault Secrets User on vault NAME and register the
                        secrets S1,S2 it should check; repeat for more vaults
  --key NAME:K1[,K2]    grant the app Key Vault Crypto Service Encryption User on the keys
                        K1,K2 of vault NAME (get, wrapKey and unwrapKey in an access-policy
                        vault) and register them: every sweep proves the app can unwrap with
                        each; repeat for more vaults
  --subscription ID     subscription of the vaults (default: every subscription of the tenant is searched)
  --no-graph            the app does not read Microsoft Graph in your tenant (skips step 4)
  --permissions LIST    the app's Graph application permissions, comma-separated, as its
                        developer tells you (`handler tasks` prints them; default:
                        Organization.Read.All,User.Read.All): --consent graph grants these
  --consent url|graph   url: open or print the admin-consent URL (default)
                        graph: grant the app roles directly through Microsoft Graph
                        (needs Privileged Role Administrator or Global Administrator)
  --no-browser          print the consent URL instead of opening a browser
  --retries N           verify again up to N times, 30 s apart, while new grants
                        take effect (default: 6)
  -h, --help            show this help

The webhook needs the function key the developer issued to you: put it in
TENANTSWEEP_FUNCTION_KEY, or you are asked for it (input hidden).

Exit status: 0 onboarded and verified; 2 onboarded but the verification still
reports a missing step (its remediation is printed); 1 error.
EOF
}

log() { echo "onboard-customer.sh: $*"; }
warn() { echo "onboard-customer.sh: warning: $*" >&2; }
die() {
  echo "onboard-customer.sh: $*" >&2
  exit 1
}

# The access task's Graph permissions, what the app asks for unless its
# developer says otherwise (--permissions); infra/scripts_test.go holds this
# to the task's own declaration.
readonly DEFAULT_GRAPH_ROLES="Organization.Read.All,User.Read.All"

tenant=""
app=""
webhook=""
display_name=""
subscription=""
graph=true
consent_mode=url
browser=true
retries=6
vault_specs=()
permissions=$DEFAULT_GRAPH_ROLES
key_specs=()
while (($# > 0)); do
  case $1 in
  --tenant) tenant=${2:?--tenant needs a value}; shift 2 ;;
  --app-id) app=${2:?--app-id needs a value}; shift 2 ;;
  --webhook) webhook=${2:?--webhook needs a value}; shift 2 ;;
  --display-name) display_name=${2:?--display-name needs a value}; shift 2 ;;
  --vault) vault_specs+=("${2:?--vault needs a value}"); shift 2 ;;
  --key) key_specs+=("${2:?--key needs a value}"); shift 2 ;;
  --subscription) subscription=${2:?--subscription needs a value}; shift 2 ;;
  --no-graph) graph=false; shift ;;
  --permissions) permissions=${2:?--permissions needs a value}; shift 2 ;;
  --consent) consent_mode=${2:?--consent needs a value}; shift 2 ;;
  --no-browser) browser=false; shift ;;
  --retries) retries=${2:?--retries needs a value}; shift 2 ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $tenant =~ $GUID_RE ]] || die "--tenant must be your tenant id (a GUID)"
[[ $app =~ $GUID_RE ]] || die "--app-id must be the application id the developer gave you (a GUID)"
[[ -z $webhook || $webhook == https://* ]] || die "--webhook must be an https URL"
[[ $consent_mode == url || $consent_mode == graph ]] || die "--consent is url or graph"
[[ $retries =~ ^[0-9]+$ ]] || die "--retries must be a number"
IFS=, read -r -a GRAPH_ROLES <<<"$permissions"
for role in "${GRAPH_ROLES[@]}"; do
  [[ $role =~ ^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+$ ]] || die "--permissions: '$role' is not a Graph permission name such as User.Read.All"
done
for spec in ${key_specs[@]+"${key_specs[@]}"}; do
  [[ $spec =~ ^[A-Za-z0-9-]{3,24}:[A-Za-z0-9-]{1,127}(,[A-Za-z0-9-]{1,127})*$ ]] ||
    die "--key $spec: want VAULT:KEY[,KEY...] (vault and key names are letters, digits and hyphens)"
done
tenant=$(printf '%s' "$tenant" | tr '[:upper:]' '[:lower:]')
app=$(printf '%s' "$app" | tr '[:upper:]' '[:lower:]')

# --- prerequisites -------------------------------------------------------------

for tool in az jq; do
  command -v "$tool" >/dev/null || die "$tool is required (https://learn.microsoft.com/cli/azure/install-azure-cli, apt-get install jq)"
done
[[ -z $webhook ]] || command -v curl >/dev/null || die "curl is required to call the webhook"

tmpdir=$(mktemp -d)
trap 'rm -rf "$tmpdir"' EXIT
chmod 700 "$tmpdir"

function_key=${TENANTSWEEP_FUNCTION_KEY:-}
if [[ -n $webhook && -z $function_key ]]; then
  [[ -t 0 ]] || die "set TENANTSWEEP_FUNCTION_KEY to the function key the developer gave you"
  read -rsp "Function key for $webhook: " function_key
  echo
  [[ -n $function_key ]] || die "no function key given"
fi
if [[ -n $webhook ]]; then
  # The key goes in a header file, never on a command line.
  printf 'x-functions-key: %s\nContent-Type: application/json\n' "$function_key" >"$tmpdir/headers"
fi

# post BODY: POSTs BODY to the webhook; prints the HTTP status, leaves the body in $tmpdir/response.
post() {
  curl -sS --max-time 120 -o "$tmpdir/response" -w '%{http_code}' -X POST -H "@$tmpdir/headers" \
    --data-binary @- "$webhook" <<<"$1"
}

# --- sign in to the customer's tenant ------------------------------------------------

if [[ $(az account show --query tenantId -o tsv 2>/dev/null || true) != "$tenant" ]]; then
  log "signing in to tenant $tenant"
  az login --tenant "$tenant" --allow-no-subscriptions -o none
fi
[[ $(az account show --query tenantId -o tsv) == "$tenant" ]] || die "could not sign in to tenant $tenant"

graph_url=$(az cloud show --query endpoints.microsoftGraphResourceId -o tsv)
graph_url=${graph_url%/}
login_url=$(az cloud show --query endpoints.activeDirectory -o tsv)
login_url=${login_url%/}
changed=false

# --- step 3: add the app to the tenant ---------------------------------------------------

sp=$(az ad sp show --id "$app" --query id -o tsv 2>/dev/null || true)
if [[ -n $sp ]]; then
  log "step 3: the app already has a service principal in your tenant ($sp)"
else
  sp=$(az ad sp create --id "$app" --query id -o tsv) ||
    die "step 3 failed: az ad sp create --id $app (is the app id right, and are you allowed to add enterprise applications?)"
  log "step 3: added the app to your tenant (service principal $sp)"
  changed=true
fi

# --- step 4: admin consent for Microsoft Graph ----------------------------------------

# role_id ROLE: the app role id of a Graph application permission (bash 3.2 has no associative arrays).
role_id() { awk -v r="$1" '$1 == r { print $2 }' <<<"$role_ids"; }

# missing_roles: the Graph permissions not yet granted to the app, one per line.
missing_roles() {
  local assigned role
  assigned=$(az rest --method get --url "$graph_url/v1.0/servicePrincipals/$sp/appRoleAssignments" \
    --query "value[?resourceId=='$graph_sp'].appRoleId" -o tsv)
  for role in "${GRAPH_ROLES[@]}"; do
    grep -Fxq -- "$(role_id "$role")" <<<"$assigned" || echo "$role"
  done
}

if $graph; then
  graph_sp=$(az ad sp show --id "$GRAPH_APP_ID" --query id -o tsv)
  role_ids=""
  for role in "${GRAPH_ROLES[@]}"; do
    id=$(az ad sp show --id "$GRAPH_APP_ID" --query "appRoles[?value=='$role'].id | [0]" -o tsv)
    [[ -n $id ]] || die "Microsoft Graph in your tenant has no application permission $role"
    role_ids+="$role $id"$'\n'
  done
  missing=$(missing_roles)
  if [[ -z $missing ]]; then
    log "step 4: admin consent already granted (${GRAPH_ROLES[*]})"
  elif [[ $consent_mode == graph ]]; then
    for role in $missing; do
      jq -n --arg p "$sp" --arg r "$graph_sp" --arg a "$(role_id "$role")" \
        '{principalId: $p, resourceId: $r, appRoleId: $a}' >"$tmpdir/assignment.json"
      az rest --method post --url "$graph_url/v1.0/servicePrincipals/$graph_sp/appRoleAssignedTo" \
        --headers Content-Type=application/json --body "@$tmpdir/assignment.json" -o none
      log "step 4: granted $role to the app"
    done
    changed=true
  else
    consent_url=""
    if [[ -n $webhook ]]; then
      # The app's own consent URL returns the admin to it, which records the consent.
      body=$(jq -n --arg t "$tenant" '{tenantId: $t, consent: true}')
      if [[ $(post "$body") == 200 ]]; then
        consent_url=$(jq -r '.consentUrl // empty' "$tmpdir/response")
      fi
    fi
    [[ -n $consent_url ]] || consent_url="$login_url/$tenant/adminconsent?client_id=$app"
    log "step 4: an admin must consent to ${missing//$'\n'/ } for the app:"
    echo "    $consent_url"
    opened=false
    if $browser; then
      for opener in xdg-open open wslview; do
        if command -v "$opener" >/dev/null && "$opener" "$consent_url" >/dev/null 2>&1; then
          opened=true
          break
        fi
      done
    fi
    $opened && log "step 4: opened the consent page in your browser"
    if [[ -t 0 ]]; then
      read -rp "Press Enter once you have accepted the consent page... " _
      missing=$(missing_roles)
      if [[ -z $missing ]]; then
        log "step 4: admin consent granted"
      else
        warn "step 4: still missing ${missing//$'\n'/ }; the verification below will say so"
      fi
    else
      warn "step 4: not waiting (no terminal); open the URL above, then run this script again"
    fi
    changed=true
  fi
else
  log "step 4: skipped (--no-graph)"
fi

# --- step 5: Key Vault Secrets User on the vaults, the crypto role on the keys ---------

# vault_json NAME: the vault's resource JSON, from --subscription or any subscription of the tenant.
vault_json() {
  local name=$1 sub
  if [[ -n $subscription ]]; then
    az keyvault show --name "$name" --subscription "$subscription" -o json 2>/dev/null
    return
  fi
  while IFS= read -r sub; do
    [[ -n $sub ]] || continue
    if az keyvault show --name "$name" --subscription "$sub" -o json 2>/dev/null; then
      return 0
    fi
  done < <(az account list --query "[?tenantId=='$tenant'].id" -o tsv)
  return 1
}

vaults='[]'
for spec in ${vault_specs[@]+"${vault_specs[@]}"}; do
  name=${spec%%:*}
  secrets=""
  [[ $spec != *:* ]] || secrets=${spec#*:}
  [[ $name =~ ^[A-Za-z0-9-]{3,24}$ ]] || die "--vault $spec: '$name' is not a vault name"
  vault=$(vault_json "$name") || die "step 5: vault $name not found in your subscriptions (pass --subscription)"
  vault_id=$(jq -r .id <<<"$vault")
  vault_uri=$(jq -r .properties.vaultUri <<<"$vault")
  if [[ $(jq -r '.properties.enableRbacAuthorization // false' <<<"$vault") == true ]]; then
    n=$(az role assignment list --assignee "$sp" --role "Key Vault Secrets User" --scope "$vault_id" --query 'length(@)' -o tsv)
    if ((n > 0)); then
      log "step 5: the app already holds Key Vault Secrets User on $name"
    else
      az role assignment create --assignee-object-id "$sp" --assignee-principal-type ServicePrincipal \
        --role "Key Vault Secrets User" --scope "$vault_id" -o none
      log "step 5: granted the app Key Vault Secrets User on $name"
      changed=true
    fi
  else
    # A vault in access-policy mode: the equivalent of Key Vault Secrets User.
    az keyvault set-policy --name "$name" --subscription "$(cut -d/ -f3 <<<"$vault_id")" \
      --object-id "$sp" --secret-permissions get list -o none
    log "step 5: access policy on $name lets the app get and list secrets (consider RBAC mode)"
    changed=true
  fi
  vaults=$(jq --arg u "$vault_uri" --arg s "$secrets" \
    '. + [{vaultUrl: $u, secrets: ($s | split(",") | map(select(. != "")))}]' <<<"$vaults")
done

readonly KEY_ROLE="Key Vault Crypto Service Encryption User"
for spec in ${key_specs[@]+"${key_specs[@]}"}; do
  name=${spec%%:*}
  keys=${spec#*:}
  vault=$(vault_json "$name") || die "step 5: vault $name not found in your subscriptions (pass --subscription)"
  vault_id=$(jq -r .id <<<"$vault")
  vault_uri=$(jq -r .properties.vaultUri <<<"$vault")
  if [[ $(jq -r '.properties.enableRbacAuthorization // false' <<<"$vault") == true ]]; then
    for key in ${keys//,/ }; do
      scope="$vault_id/keys/$key"
      n=$(az role assignment list --assignee "$sp" --role "$KEY_ROLE" --scope "$scope" --query 'length(@)' -o tsv)
      if ((n > 0)); then
        log "step 5: the app already holds $KEY_ROLE on key $key of $name"
      elif az role assignment create --assignee-object-id "$sp" --assignee-principal-type ServicePrincipal \
        --role "$KEY_ROLE" --scope "$scope" -o none; then
        log "step 5: granted the app $KEY_ROLE on key $key of $name"
        changed=true
      else
        warn "step 5: could not grant $KEY_ROLE on key $key of $name; the vault's owner runs:"
        echo "    az role assignment create --assignee-object-id $sp --assignee-principal-type ServicePrincipal --role \"$KEY_ROLE\" --scope $scope"
      fi
    done
  else
    # A vault in access-policy mode: what the role grants on keys.
    az keyvault set-policy --name "$name" --subscription "$(cut -d/ -f3 <<<"$vault_id")" \
      --object-id "$sp" --key-permissions get wrapKey unwrapKey -o none
    log "step 5: access policy on $name lets the app get, wrap and unwrap with keys (consider RBAC mode)"
    changed=true
  fi
  # One entry a vault: keys join the vault's secrets when --vault named it too.
  vaults=$(jq --arg u "$vault_uri" --arg k "$keys" '($k | split(",")) as $keys |
    if any(.[]; .vaultUrl == $u)
    then map(if .vaultUrl == $u then .keys = ((.keys // []) + $keys) else . end)
    else . + [{vaultUrl: $u, keys: $keys}] end' <<<"$vaults")
done
((${#vault_specs[@]} + ${#key_specs[@]} > 0)) || log "step 5: no --vault or --key given; nothing to grant"

# --- the webhook: register the tenant and print the verification -------------------------

if [[ -z $webhook ]]; then
  log "no --webhook given: steps 3 to 5 are done; send your tenant id and vault names to the app's developer"
  exit 0
fi

if [[ -z $display_name ]]; then
  display_name=$(az rest --method get --url "$graph_url/v1.0/organization" --query 'value[0].displayName' -o tsv 2>/dev/null || true)
  display_name=${display_name:-$tenant}
fi
body=$(jq -n --arg t "$tenant" --arg d "$display_name" --argjson g "$graph" --argjson kv "$vaults" \
  '{tenantId: $t, displayName: $d, graph: $g, keyVaults: $kv}')

attempt=0
while :; do
  status=$(post "$body") || die "could not reach $webhook"
  case $status in
  200 | 201) ;;
  401 | 403) die "the webhook refused the function key (HTTP $status): ask the developer for a valid one" ;;
  *)
    echo "onboard-customer.sh: the webhook answered HTTP $status:" >&2
    jq . "$tmpdir/response" >&2 2>/dev/null || cat "$tmpdir/response" >&2
    exit 1
    ;;
  esac
  outcome=$(jq -r '.verification.outcome // "unknown"' "$tmpdir/response")
  [[ $outcome != ok ]] || break
  # New service principals, consents and role assignments take minutes to apply.
  case $outcome in
  app_not_in_tenant | graph_consent_missing | keyvault_access_denied) ;;
  *) break ;;
  esac
  if ! $changed || ((attempt >= retries)); then
    break
  fi
  attempt=$((attempt + 1))
  log "verification says $outcome; new grants can take a few minutes, checking again in 30 s ($attempt/$retries)"
  sleep 30
done

echo
jq -r '"Registered tenant \(.tenantId) (\(.displayName)), status \(.status // "active")",
  "Verification: \(.verification.outcome)\(if .verification.step then " (seed step \(.verification.step))" else "" end)",
  (.verification.message // empty | "  \(.)"),
  (.verification.remediation // empty | "  To fix: \(.)")' "$tmpdir/response"

if [[ $outcome == ok ]]; then
  log "done: the app can work in your tenant"
  exit 0
fi
log "onboarded, but a step is still missing (see above); fix it and run this script again"
exit 2
