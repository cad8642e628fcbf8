# Shared by scripts/e2e.sh and scripts/load.sh (sourced, after `set -euo pipefail`):
#   script_setup NAME DIR  OUT=DIR (a temp folder, removed at exit, when DIR is empty); a
#                          running server ($SERVER_PID) is stopped with SIGTERM at exit;
#                          fail MSG and step MSG print as NAME.
#   go_tool CMD MODULE@VERSION  installs CMD unless this exact module version is on PATH.
script_setup() {
  SCRIPT_NAME=$1
  keep=1
  OUT=$2
  if [ -z "$OUT" ]; then OUT=$(mktemp -d); keep=0; fi
  mkdir -p "$OUT"
  SERVER_PID=
  trap script_cleanup EXIT
  if command -v go >/dev/null; then # a machine given prebuilt binaries may have no Go
    GOBIN_DIR=$(go env GOPATH)/bin
    export PATH="$GOBIN_DIR:$PATH"
  fi
}
script_cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ "$keep" = 0 ]; then rm -rf "$OUT"; fi
}
fail() { echo "$SCRIPT_NAME: FAIL: $*" >&2; [ -f "$OUT/serve.err" ] && tail -20 "$OUT/serve.err" >&2; exit 1; }
step() { echo "== $SCRIPT_NAME: $*"; }
go_tool() {
  local cmd=$1 modver=$2 path
  path=$(command -v "$cmd" || true)
  # `@latest` resolves to old releases here: compare the module version, not just the name.
  if [ -n "$path" ] && [ "$(go version -m "$path" 2>/dev/null | awk '$1 == "mod" {print $3}')" = "${modver##*@}" ]; then return; fi
  go install "$modver"
}
