#!/usr/bin/env bash
# Runs a command with Azurite's table endpoint in AZURITE_TABLE_ENDPOINT and
# its queue endpoint in AZURITE_QUEUE_ENDPOINT. An endpoint already set is
# used as is; when either is missing, a fresh in-memory Azurite is started on
# free ports to fill in what is missing, and stopped afterwards, whatever the
# command's outcome. The command's exit code is kept.
#
#   scripts/with-azurite.sh go test ./...
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -gt 0 ]] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

if [[ -z ${AZURITE_TABLE_ENDPOINT:-} || -z ${AZURITE_QUEUE_ENDPOINT:-} ]]; then
	dir="$(mktemp -d "${TMPDIR:-/tmp}/tenantsweep-azurite.XXXXXX")"
	# shellcheck disable=SC2317 # called by the EXIT trap
	cleanup() {
		"$root/scripts/azurite.sh" stop --dir "$dir" >&2 || true
		rm -rf "$dir"
	}
	trap cleanup EXIT
	out="$("$root/scripts/azurite.sh" start --in-memory --dir "$dir")"
	# The last two lines: the queue endpoint, then the table endpoint.
	AZURITE_TABLE_ENDPOINT=${AZURITE_TABLE_ENDPOINT:-$(tail -n1 <<<"$out")}
	AZURITE_QUEUE_ENDPOINT=${AZURITE_QUEUE_ENDPOINT:-$(tail -n2 <<<"$out" | head -n1)}
	export AZURITE_TABLE_ENDPOINT AZURITE_QUEUE_ENDPOINT
fi
echo "with-azurite: AZURITE_TABLE_ENDPOINT=$AZURITE_TABLE_ENDPOINT AZURITE_QUEUE_ENDPOINT=$AZURITE_QUEUE_ENDPOINT" >&2
status=0
"$@" || status=$?
exit "$status"
