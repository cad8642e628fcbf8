#!/usr/bin/env bash
# Installs what medseq needs on a fresh Debian machine, by purpose:
#
#   scripts/install-deps.sh build   building and running the binary (make build, make demo,
#                                   make lint, make gpu-prepare): the pinned Go toolchain, git
#                                   (VCS stamping), gcc (cgo) and libxgboost (headers to build,
#                                   libxgboost0 to run; `medseq version` lists what it links);
#   scripts/install-deps.sh e2e     build, and python3 for the checks of scripts/e2e.sh and
#                                   scripts/load.sh (make e2e, make load; they go-install
#                                   grpcurl, grpc-health-probe and ghz themselves);
#   scripts/install-deps.sh test    e2e, and the test references (make test, make test-short,
#                                   make bench): Python's xgboost, scikit-learn and PyTorch,
#                                   R's survival and riskRegression (r-base-core,
#                                   r-cran-survival, r-cran-riskregression),
#                                   headless Chromium, node + npm and the pinned npm tokenizers
#                                   package (scripts/hf-deps.sh). The default.
#
# Idempotent, and silent when everything is there. Go itself: any go >= 1.21 fetches the
# pinned toolchain (GOTOOLCHAIN=go1.27.3) through the module proxy.
set -euo pipefail

part=${1:-test}
case $part in
build | e2e | test) ;;
*)
  echo "usage: $0 [build|e2e|test]  (default test: everything)" >&2
  exit 2
  ;;
esac

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
# Installed, not merely known to dpkg (a removed package keeps a status entry).
have_pkg() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
need() { have_pkg "$1" || need_apt+=("$1"); }
sudo_cmd() { if [ "$(id -u)" -ne 0 ] && have sudo; then echo sudo; fi; }

# --- build: Go, git, gcc, libxgboost ---------------------------------------------------------
# Go: any go >= 1.21 switches itself to the pinned toolchain. Debian's golang-go (1.19) cannot,
# so after installing it we fetch the pinned toolchain as the module the go command itself uses
# (golang.org/toolchain, from the module proxy) and link it as /usr/local/bin/go.
go_ok() { have go && go version | awk '{split(substr($3,3),v,"."); exit !(v[1]>1 || (v[1]==1 && v[2]>=21))}'; }
[ -x /usr/local/go/bin/go ] && ! have go && export PATH="$PATH:/usr/local/go/bin"
have go || need_apt+=(golang-go)
have git || need_apt+=(git)
have gcc || need_apt+=(gcc)
# model/xgb trains through libxgboost (cgo, linked: the binary does not start without
# libxgboost.so.0, which libxgboost-dev brings as libxgboost0).
need libxgboost-dev

# --- e2e: python3 for the scripts' checks ------------------------------------------------------
if [ "$part" != build ]; then
  have python3 || need_apt+=(python3)
fi

# --- test: the reference implementations the tests compare with --------------------------------
if [ "$part" = test ]; then
  # model/xgb's model.json is checked with Python's xgboost, eval's numbers against
  # scikit-learn, the BERT against PyTorch; the evaluation report in headless Chromium.
  need python3-xgboost
  need python3-sklearn
  need python3-torch
  need chromium
  # eval's survival metrics against R's survival and riskRegression (survfit, concordance, Score).
  need r-base-core
  need r-cran-survival
  need r-cran-riskregression
fi

if ((${#need_apt[@]})); then
  SUDO=$(sudo_cmd)
  echo "install-deps ($part): installing ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! go_ok; then
  tc=golang.org/toolchain@v0.0.1-go1.27.3.linux-$(dpkg --print-architecture)
  echo "install-deps: fetching the Go toolchain $tc" >&2
  dir=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod GO111MODULE=on GOTOOLCHAIN=local go mod download -json "$tc" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -n "$dir" ] && [ -f "$dir/bin/go" ] || {
    echo "install-deps: could not download $tc" >&2
    exit 1
  }
  # The module cache drops the executable bits (the go command restores them when it switches
  # toolchains itself): give them back to the binaries and the tools.
  find "$dir/bin" "$dir/pkg/tool" -type f -exec chmod a+x {} +
  $(sudo_cmd) ln -sf "$dir/bin/go" /usr/local/bin/go
  hash -r
fi
# The go command downloads and caches the pinned toolchain the first time.
GOTOOLCHAIN=go1.27.3 go version >/dev/null

# The HuggingFace tokenizers parity test: node, npm and the pinned npm package.
if [ "$part" = test ]; then
  "$(dirname "$0")/hf-deps.sh"
fi
