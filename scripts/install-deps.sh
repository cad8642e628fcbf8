#!/usr/bin/env bash
# Installs what building and testing medseq needs on a fresh Debian machine. Idempotent and
# quick when everything is there. Go itself: any go >= 1.21 fetches the pinned toolchain
# (GOTOOLCHAIN=go1.27.3) through the module proxy.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }

# Go: any go >= 1.21 switches itself to the pinned toolchain. Debian's golang-go (1.19) cannot,
# so after installing it we fetch the pinned toolchain as the module the go command itself uses
# (golang.org/toolchain, from the module proxy) and link it as /usr/local/bin/go.
go_ok() { have go && go version | awk '{split(substr($3,3),v,"."); exit !(v[1]>1 || (v[1]==1 && v[2]>=21))}'; }
[ -x /usr/local/go/bin/go ] && ! have go && export PATH="$PATH:/usr/local/go/bin"
go_ok || have_go_needed=1
[ "${have_go_needed:-0}" = 1 ] && ! have go && need_apt+=(golang-go)
have git || need_apt+=(git)
have gcc || need_apt+=(gcc)
# model/xgb trains through libxgboost (cgo); its tests check model.json with Python's xgboost.
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }
have_pkg libxgboost-dev || need_apt+=(libxgboost-dev)
have_pkg python3-xgboost || need_apt+=(python3-xgboost)
# eval's numbers are checked against scikit-learn; the BERT export against PyTorch.
have_pkg python3-sklearn || need_apt+=(python3-sklearn)
have_pkg python3-torch || need_apt+=(python3-torch)
# The evaluation report is checked in headless Chromium (no network).
have_pkg chromium || need_apt+=(chromium)

if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ] && have sudo; then SUDO=sudo; else SUDO=; fi
  echo "install-deps: installing ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! go_ok; then
  tc=golang.org/toolchain@v0.0.1-go1.27.3.linux-$(dpkg --print-architecture)
  echo "install-deps: fetching the Go toolchain $tc" >&2
  dir=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod GO111MODULE=on GOTOOLCHAIN=local go mod download -json "$tc" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -n "$dir" ] && [ -f "$dir/bin/go" ] || { echo "install-deps: could not download $tc" >&2; exit 1; }
  # The module cache drops the executable bits (the go command restores them when it switches
  # toolchains itself): give them back to the binaries and the tools.
  find "$dir/bin" "$dir/pkg/tool" -type f -exec chmod a+x {} +
  if [ "$(id -u)" -ne 0 ] && have sudo; then SUDO=sudo; else SUDO=; fi
  $SUDO ln -sf "$dir/bin/go" /usr/local/bin/go
  hash -r
fi
# The go command downloads and caches the pinned toolchain the first time.
GOTOOLCHAIN=go1.27.3 go version >/dev/null
# The HuggingFace tokenizers parity test: node, npm and the pinned npm package.
"$(dirname "$0")/hf-deps.sh"
