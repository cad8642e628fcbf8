#!/usr/bin/env bash
# Installs what the HuggingFace parity test and benchmark (tokenize/hf_test.go,
# tokenize/bench_test.go) need: node and npm (Debian's nodejs and npm, when node is missing) and
# the pinned npm package tokenizers in tokenize/testdata/hf/node_modules (from the committed
# package-lock.json, when node_modules is missing). Idempotent and quick when all is there.
set -euo pipefail

cd "$(dirname "$0")/.."
dir=tokenize/testdata/hf
have() { command -v "$1" >/dev/null 2>&1; }

if ! have node || ! have npm; then
  if [ "$(id -u)" -ne 0 ] && have sudo; then SUDO=sudo; else SUDO=; fi
  echo "hf-deps: installing nodejs and npm" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

if [ ! -f "$dir/node_modules/tokenizers/package.json" ]; then
  echo "hf-deps: npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund)
fi
