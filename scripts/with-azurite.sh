#!/usr/bin/env bash
# Runs a command with Azurite's table endpoint in AZURITE_TABLE_ENDPOINT.
# When AZURITE_TABLE_ENDPOINT is already set, that Azurite is used as is;
# otherwise a fresh in-memory one is started on a free port and stopped
# afterwards, whatever the command's outcome. The command's exit code is kept.
#
#   scripts/with-azurite.sh go test ./...
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -gt 0 ]] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

if [[ -z ${AZURITE_TABLE_ENDPOINT:-} ]]; then
	dir="$(mktemp -d "${TMPDIR:-/tmp}/tenantsweep-azurite.XXXXXX")"
	# shellcheck disable=SC2317 # called by the EXIT trap
	cleanup() {
		"$root/scripts/azurite.sh" stop --dir "$dir" >&2 || true
		rm -rf "$dir"
	}
	trap cleanup EXIT
	AZURITE_TABLE_ENDPOINT="$("$root/scripts/azurite.sh" start --in-memory --dir "$dir" | tail -n1)"
	export AZURITE_TABLE_ENDPOINT
fi
echo "with-azurite: AZURITE_TABLE_ENDPOINT=$AZURITE_TABLE_ENDPOINT" >&2
status=0
"$@" || status=$?
exit "$status"
