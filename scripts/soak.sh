#!/usr/bin/env bash
# Soak test of `medseq serve` on loopback (issue 14): builds the binary, trains a small demo
# XGBoost model, scores its held-out labels offline, then serve/internal/soak starts the
# server (bearer tokens, audit log, --max-inflight-bytes) and runs a bounded mixed load against
# it: good Predict, PredictBatch and ModelInfer calls checked against the offline predictions
# (1e-6), bad ones (no or unknown token, garbage bytes, strings not UTF-8, infinite and inline
# values, long fields, unknown models) checked for their status, a burst of 15 MB requests,
# new model versions copied in and one removed, the audit log rotated with SIGHUP twice, then
# SIGTERM with callers running. It fails on any wrong or lost answer (the audit log must hold
# exactly the subjects answered), an unexpected status, a server RSS above SOAK_MAX_RSS_MB
# (sampled from /proc), or an unclean drain.
# `make soak` runs this; about 1-2 minutes on 2 cores; not part of `make test`.
# SOAK_DURATION (60s), SOAK_WORKERS (8), SOAK_MAX_CALLS (150000), SOAK_MAX_RSS_MB (450),
# SOAK_SUBJECTS (1000), SOAK_OUT=DIR keeps the outputs (default: a temp dir, removed).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=${GOEXPERIMENT:-simd}
SUBJECTS=${SOAK_SUBJECTS:-1000}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
script_setup soak "${SOAK_OUT:-}"

step "build"
BIN=$OUT/medseq
go build -o "$BIN" ./cmd/medseq
go build -o "$OUT/soak" ./serve/internal/soak

step "demo ($SUBJECTS subjects, XGBoost only)"
rm -rf "$OUT/demo" "$OUT/run" # a kept SOAK_OUT: the run adds model versions and audit logs
"$BIN" demo --out "$OUT/demo" --subjects "$SUBJECTS" --bert=false --force >"$OUT/demo.log" 2>&1 || { tail -20 "$OUT/demo.log"; fail "demo"; }
MODEL_DIR=$OUT/demo/models/t2d-xgboost/1
[ -f "$MODEL_DIR/manifest.json" ] || fail "demo wrote no $MODEL_DIR"

step "offline predictions"
"$BIN" predict --force --model "$MODEL_DIR" --meds "$OUT/demo/meds" --cohort "$OUT/demo/cohort" \
  --out "$OUT/offline.parquet" >"$OUT/predict.log" 2>&1 || { cat "$OUT/predict.log"; fail "offline predict"; }

step "soak (${SOAK_DURATION:-60s})"
mkdir -p "$OUT/run"
"$OUT/soak" --bin "$BIN" --models "$OUT/demo/models" --meds "$OUT/demo/meds" --cohort "$OUT/demo/cohort" \
  --offline "$OUT/offline.parquet" --out "$OUT/run" --duration "${SOAK_DURATION:-60s}" --workers "${SOAK_WORKERS:-8}" \
  --max-calls "${SOAK_MAX_CALLS:-150000}" --max-rss-mb "${SOAK_MAX_RSS_MB:-450}" \
  || { tail -20 "$OUT/run/serve.err" >&2; fail "soak"; }
echo "soak: PASS"
