#!/usr/bin/env bash
# Assembles the deployment package that azd deploys (azure.yaml: dist):
# host.json, every top-level folder holding a function.json, and the handler
# binary that `make build` produced. Run from the repository root, after
# `make build`; azd's prepackage hook does both.
#
# Usage: infra/scripts/package.sh [OUTPUT_DIR]   (default bin/functions-package)
set -euo pipefail

out=${1:-bin/functions-package}
handler=bin/handler

die() { echo "package.sh: $*" >&2; exit 1; }

[[ -f host.json ]] || die "run from the repository root (host.json not found in $PWD)"
[[ -f $handler ]] || die "$handler is missing: run 'make build' first"
grep -q '"defaultExecutablePath"[[:space:]]*:[[:space:]]*"bin/handler"' host.json ||
  die "host.json customHandler.description.defaultExecutablePath is not bin/handler"

# The package must be a Linux x86-64 ELF binary: check the ELF magic and the
# e_machine field (0x3e) rather than trust the build environment.
magic=$(head -c 4 "$handler" | od -An -tx1 | tr -d ' \n')
[[ $magic == 7f454c46 ]] || die "$handler is not an ELF binary: build it with GOOS=linux (make build)"
machine=$(dd if="$handler" bs=1 skip=18 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
[[ $machine == 3e ]] || die "$handler is not built for amd64 (e_machine=0x$machine): build it with GOARCH=amd64"

rm -rf "$out"
mkdir -p "$out/bin"
cp host.json "$out/"
cp "$handler" "$out/bin/handler"
chmod 0755 "$out/bin/handler"

functions=0
for fj in */function.json; do
  [[ -f $fj ]] || continue
  dir=${fj%/function.json}
  mkdir -p "$out/$dir"
  cp "$fj" "$out/$dir/"
  functions=$((functions + 1))
done
((functions > 0)) || die "no <Function>/function.json folder found"

echo "package.sh: $out holds host.json, $functions function folder(s) and bin/handler"
