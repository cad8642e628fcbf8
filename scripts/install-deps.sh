#!/usr/bin/env bash
# Installs what building and testing medseq needs on a fresh Debian machine. Idempotent and
# quick when everything is there. Go itself: any go >= 1.21 fetches the pinned toolchain
# (GOTOOLCHAIN=go1.27.3) through the module proxy.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }

if ! have go && [ ! -x /usr/local/go/bin/go ]; then
  need_apt+=(golang-go)
fi
have git || need_apt+=(git)
have gcc || need_apt+=(gcc)
# model/xgb trains through libxgboost (cgo); its tests check model.json with Python's xgboost.
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }
have_pkg libxgboost-dev || need_apt+=(libxgboost-dev)
have_pkg python3-xgboost || need_apt+=(python3-xgboost)
# eval's numbers are checked against scikit-learn; the BERT export against PyTorch.
have_pkg python3-sklearn || need_apt+=(python3-sklearn)
have_pkg python3-torch || need_apt+=(python3-torch)

if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ] && have sudo; then SUDO=sudo; else SUDO=; fi
  echo "install-deps: installing ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! have go && [ -x /usr/local/go/bin/go ]; then
  echo "install-deps: go is at /usr/local/go/bin; add it to PATH" >&2
  exit 1
fi
# The go command downloads and caches the pinned toolchain the first time.
GOTOOLCHAIN=go1.27.3 go version >/dev/null
# The HuggingFace tokenizers parity test: node, npm and the pinned npm package.
"$(dirname "$0")/hf-deps.sh"
