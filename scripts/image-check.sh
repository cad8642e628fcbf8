#!/usr/bin/env bash
# The serving image's binary serves what the cgo build trained, with the same answers: trains
# an XGBoost model and a tiny BERT with the cgo build (synthetic data), scores every label
# offline with it (medseq predict), then takes the static binary out of the image tarball
# (`make image`), serves each model with it in single-model mode (--model-dir/--model-name, as
# KServe runs it) on loopback, and compares its answers with the offline predictions and the
# model folders' own (serve/internal/e2echeck: Predict, PredictBatch, ModelInfer, to 1e-6).
# `make image-check` runs this. IMAGE=PATH (default bin/medseq-serve-image.tar);
# IMAGE_CHECK_OUT=DIR keeps the outputs (default: a temp dir, removed).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=${GOEXPERIMENT:-simd}
IMAGE=${IMAGE:-bin/medseq-serve-image.tar}
SUBJECTS=${IMAGE_CHECK_SUBJECTS:-800}
N=${IMAGE_CHECK_N:-200}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
script_setup image-check "${IMAGE_CHECK_OUT:-}"
[ -f "$IMAGE" ] || fail "no image at $IMAGE (make image writes it)"

step "build the cgo medseq and e2echeck; take the static medseq out of $IMAGE"
BIN=$OUT/medseq STATIC=$OUT/medseq-static
go build -o "$BIN" ./cmd/medseq
go build -o "$OUT/e2echeck" ./serve/internal/e2echeck
python3 - "$IMAGE" "$STATIC" <<'PY' || fail "cannot take usr/local/bin/medseq out of $IMAGE"
import io, json, os, sys, tarfile
image, out = sys.argv[1], sys.argv[2]
with tarfile.open(image) as outer:
    manifest = json.load(outer.extractfile("manifest.json"))
    if len(manifest) != 1 or len(manifest[0]["Layers"]) != 1:
        sys.exit(f"want one image of one layer: {manifest}")
    layer = outer.extractfile(manifest[0]["Layers"][0]).read()
with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as inner:
    with open(out, "wb") as f:
        f.write(inner.extractfile("usr/local/bin/medseq").read())
os.chmod(out, 0o755)
PY
grep -q '^build: *pure Go, static' <<<"$("$STATIC" version)" || fail "the image's medseq is not the pure-Go static build"
if file "$STATIC" 2>/dev/null | grep -q 'dynamically linked'; then fail "the image's medseq is dynamically linked"; fi

step "train an XGBoost model and a tiny BERT with the cgo build ($SUBJECTS subjects), offline predictions"
run() { # run a cgo medseq command, its output in $OUT/NAME.log, shown on failure
  local name=$1; shift
  "$BIN" "$@" >"$OUT/$name.log" 2>&1 || { tail -20 "$OUT/$name.log"; fail "medseq $name"; }
}
run synth data synth --out "$OUT/meds" --subjects "$SUBJECTS" --seed 5 --force
run cohort data cohort --meds "$OUT/meds" --target ICD10/E11,SNOMED/44054006 --out "$OUT/cohort" --force
run tokenize tokenize build --meds "$OUT/meds" --cohort "$OUT/cohort" --out "$OUT/tok" --force
XGB=$OUT/models/t2d-xgboost/1 BERT=$OUT/models/t2d-bert/1
run xgboost train xgboost --meds "$OUT/meds" --cohort "$OUT/cohort" --tokenizer "$OUT/tok" --out "$XGB" --rounds 60 --force
run bert train classify --meds "$OUT/meds" --cohort "$OUT/cohort" --tokenizer "$OUT/tok" --out "$BERT" --config tiny \
  --max-steps 12 --force
run predict-xgb predict --force --model "$XGB" --meds "$OUT/meds" --cohort "$OUT/cohort" --out "$OUT/offline-xgb.parquet"
run predict-bert predict --force --model "$BERT" --meds "$OUT/meds" --cohort "$OUT/cohort" --out "$OUT/offline-bert.parquet"

# serve_static NAME DIR: the static medseq serves the version folder DIR as NAME (single-model mode).
serve_static() {
  "$STATIC" serve --model-dir "$2" --model-name "$1" --addr 127.0.0.1:0 --metrics-addr "" --poll 0 \
    >"$OUT/serve.out" 2>"$OUT/serve.err" &
  SERVER_PID=$!
  ADDR=
  for _ in $(seq 1 200); do
    ADDR=$(sed -n 's/^serving .* on \(.*\)$/\1/p' "$OUT/serve.out" | head -1 || true)
    [ -n "$ADDR" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the static server exited"
    sleep 0.1
  done
  [ -n "$ADDR" ] || fail "the static server did not start"
}
stop_static() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || fail "the static server exited with status $?"
  SERVER_PID=
  grep -q 'msg=stopped' "$OUT/serve.err" || fail "the static server did not log its stop"
}

step "the static binary serves the XGBoost model (leaves): its answers are the cgo build's offline predictions"
serve_static t2d-xgboost "$XGB"
"$OUT/e2echeck" --addr "$ADDR" --meds "$OUT/meds" --cohort "$OUT/cohort" --offline "$OUT/offline-xgb.parquet" \
  --model t2d-xgboost --folder "$XGB" --n "$N" || fail "static server and cgo offline XGBoost predictions differ"
stop_static

step "the static binary serves the BERT (pure-Go backend): the same"
serve_static t2d-bert "$BERT"
"$OUT/e2echeck" --addr "$ADDR" --meds "$OUT/meds" --cohort "$OUT/cohort" --offline "$OUT/offline-bert.parquet" \
  --model t2d-bert --folder "$BERT" --n "$N" --raw || fail "static server and cgo offline raw BERT predictions differ"
"$OUT/e2echeck" --addr "$ADDR" --meds "$OUT/meds" --cohort "$OUT/cohort" --offline "$OUT/offline-bert.parquet" \
  --model t2d-bert --folder "$BERT" --n "$N" || fail "static server and cgo offline calibrated BERT predictions differ"
stop_static
echo "image-check: PASS"
