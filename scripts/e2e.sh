#!/usr/bin/env bash
# End-to-end check of `medseq serve` on loopback: builds the binary, trains the demo models,
# scores the cohort offline, starts the server, checks it with grpc-health-probe and
# grpcurl (reflection, Predict, ModelInfer), compares the server's answers with the offline
# predictions (to 1e-6), scrapes /metrics, then stops it with SIGTERM (graceful drain); then
# the same pipeline (synth, cohort, tokenizer, XGBoost, tiny BERT, predict, eval report,
# serving) on codes spelt as real MEDS ETLs spell them (`data synth --code-style etl`).
# `make e2e` runs this. E2E_OUT=DIR keeps the outputs there (default: a temp dir, removed).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=${GOEXPERIMENT:-simd}
GRPCURL_VERSION=v1.9.4
HEALTH_PROBE_VERSION=v0.4.61
SUBJECTS=${E2E_SUBJECTS:-1500}
N=${E2E_N:-200}

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
script_setup e2e "${E2E_OUT:-}"
go_tool grpcurl "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
go_tool grpc-health-probe "github.com/grpc-ecosystem/grpc-health-probe@$HEALTH_PROBE_VERSION"

step "build"
BIN=$OUT/medseq
go build -o "$BIN" ./cmd/medseq
go build -o "$OUT/e2echeck" ./serve/internal/e2echeck
grep -q '^  serve ' <<<"$("$BIN" help)" || fail "this medseq has no 'serve' command (cmd/medseq/main.go must list it)"

step "demo ($SUBJECTS subjects)"
"$BIN" demo --out "$OUT/demo" --subjects "$SUBJECTS" --bert-max-steps 60 --force >"$OUT/demo.log" 2>&1 || { tail -20 "$OUT/demo.log"; fail "demo"; }
MODEL_DIR=$OUT/demo/models/t2d-xgboost/1
[ -f "$MODEL_DIR/manifest.json" ] || fail "demo wrote no $MODEL_DIR"
[ -f "$OUT/demo/censoring.json" ] || fail "demo wrote no censoring.json (eval censoring)"
for panel in "Censoring sensitivity" "Kaplan" "Decision curve" "Exclusion"; do
  grep -qi "$panel" "$OUT/demo/report/report.html" || fail "the demo's report has no $panel panel"
done

step "offline predictions for every label (medseq predict)"
"$BIN" predict --force --model "$MODEL_DIR" --meds "$OUT/demo/meds" --cohort "$OUT/demo/cohort" \
  --out "$OUT/offline.parquet" >"$OUT/predict.log" 2>&1 || { cat "$OUT/predict.log"; fail "offline predict"; }
"$BIN" predict --force --model "$OUT/demo/models/t2d-bert/1" --meds "$OUT/demo/meds" --cohort "$OUT/demo/cohort" \
  --out "$OUT/offline-bert.parquet" >"$OUT/predict-bert.log" 2>&1 || { cat "$OUT/predict-bert.log"; fail "offline BERT predict"; }

step "start the server on loopback"
"$BIN" serve --models "$OUT/demo/models" --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --poll 1s \
  --audit "$OUT/audit.jsonl" >"$OUT/serve.out" 2>"$OUT/serve.err" &
SERVER_PID=$!
ADDR= METRICS=
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's/^serving .* on \(.*\)$/\1/p' "$OUT/serve.out" | head -1 || true)
  METRICS=$(sed -n 's/.*msg=metrics addr=\([^ ]*\).*/\1/p' "$OUT/serve.err" | head -1 || true)
  [ -n "$ADDR" ] && [ -n "$METRICS" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited"
  sleep 0.1
done
[ -n "$ADDR" ] || fail "server did not start"
echo "server $ADDR, metrics $METRICS"

step "grpc-health-probe"
# Per-model health: both demo models loaded, the BERT included.
for svc in "" medseq.v1.Predictor inference.GRPCInferenceService medseq.v1.Predictor/t2d-xgboost medseq.v1.Predictor/t2d-bert; do
  grpc-health-probe -addr "$ADDR" -service "$svc" -connect-timeout 2s -rpc-timeout 2s || fail "health of '$svc'"
done

step "grpcurl: reflection"
grpcurl -plaintext "$ADDR" list >"$OUT/services.txt"
for svc in medseq.v1.Predictor inference.GRPCInferenceService grpc.health.v1.Health; do
  grep -qx "$svc" "$OUT/services.txt" || fail "reflection lacks $svc"
done
grpcurl -plaintext "$ADDR" describe medseq.v1.Predictor >/dev/null || fail "describe"

step "compare with offline predictions ($N labelled subjects: Predict with age and sex as fields, events or both, PredictBatch, ModelInfer; the model folders' predictions)"
# Every model kind, calibrated and raw: the same probability and the same decision at the
# manifest's operating point through every door.
XGB_DIR=$MODEL_DIR BERT_DIR=$OUT/demo/models/t2d-bert/1
"$OUT/e2echeck" --addr "$ADDR" --meds "$OUT/demo/meds" --cohort "$OUT/demo/cohort" --offline "$OUT/offline.parquet" \
  --folder "$XGB_DIR" --n "$N" --write-predict "$OUT/predict.json" --write-infer "$OUT/infer.json" --write-expected "$OUT/expected.txt" \
  || fail "server and offline predictions differ"
"$OUT/e2echeck" --addr "$ADDR" --meds "$OUT/demo/meds" --cohort "$OUT/demo/cohort" --offline "$OUT/offline.parquet" \
  --folder "$XGB_DIR" --n "$N" --raw --report "$OUT/demo/report/metrics.json" || fail "server and offline raw predictions differ"
"$OUT/e2echeck" --addr "$ADDR" --meds "$OUT/demo/meds" --cohort "$OUT/demo/cohort" --offline "$OUT/offline-bert.parquet" \
  --model t2d-bert --folder "$BERT_DIR" --n "$N" --raw || fail "server and offline raw BERT predictions differ"
"$OUT/e2echeck" --addr "$ADDR" --meds "$OUT/demo/meds" --cohort "$OUT/demo/cohort" --offline "$OUT/offline-bert.parquet" \
  --model t2d-bert --folder "$BERT_DIR" --n "$N" --report "$OUT/demo/report/metrics.json" \
  || fail "server and offline calibrated BERT predictions differ"

step "grpcurl: Predict and ModelInfer"
grpcurl -plaintext -d @ "$ADDR" medseq.v1.Predictor/Predict <"$OUT/predict.json" >"$OUT/predict.out" || fail "grpcurl Predict"
grpcurl -plaintext -d @ "$ADDR" inference.GRPCInferenceService/ModelInfer <"$OUT/infer.json" >"$OUT/infer.out" || fail "grpcurl ModelInfer"
grpcurl -plaintext -d '{"name":"t2d-xgboost"}' "$ADDR" inference.GRPCInferenceService/ModelMetadata >/dev/null || fail "grpcurl ModelMetadata"
python3 - "$OUT/expected.txt" "$OUT/predict.out" "$OUT/infer.out" <<'PY' || fail "grpcurl answers differ from offline"
import json, sys
want = float(open(sys.argv[1]).read())
p = json.load(open(sys.argv[2]))
i = json.load(open(sys.argv[3]))
got_p = p["probability"]
out = {o["name"]: o for o in i["outputs"]}
got_i = out["probability"]["contents"]["fp32Contents"][0]
for what, got in (("Predict", got_p), ("ModelInfer", got_i)):
    if abs(got - want) > 1e-6:
        sys.exit(f"{what}: {got} vs offline {want}")
print(f"grpcurl Predict {got_p:.9f}, ModelInfer {got_i:.9f}, offline {want:.9f}")
PY
# Codes as real MEDS ETLs spell them (a trailing blank, spaces, a special token's name) and from
# outside the vocabulary: accepted whole and counted as [UNK], never read as the special token.
grpcurl -plaintext -d '{"model_name":"t2d-xgboost","prediction_time":"2021-01-01","birth_date":"1960-01-01","sex":"F","events":[
  {"code":"ICD10/I10","time":"2019-01-01"},{"code":"LAB//51498// ","time":"2019-02-01"},
  {"code":"HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM","time":"2019-03-01"},{"code":"[MASK]","time":"2019-04-01"},
  {"code":"READ/C10..","time":"2019-05-01"}]}' "$ADDR" medseq.v1.Predictor/Predict >"$OUT/foreign.out" || fail "grpcurl Predict with foreign codes"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); n=r.get("unknownCodes",0); sys.exit(0 if n==4 else f"unknown codes {n}, want 4")' "$OUT/foreign.out" \
  || fail "foreign codes not counted as unknown"
code=$(grpcurl -plaintext -d '{"model_name":"nope","prediction_time":"2020-01-01","events":[{"code":"A"}]}' "$ADDR" medseq.v1.Predictor/Predict 2>&1 || true)
echo "$code" | grep -q "NotFound" || fail "unknown model should be NOT_FOUND: $code"

step "metrics"
python3 - "http://$METRICS/metrics" <<'PY' || fail "metrics"
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
for want in ('medseq_requests_total{code="OK",method="Predict",model="t2d-xgboost"}',
             'medseq_request_duration_seconds_bucket{method="ModelInfer",model="t2d-xgboost",version="1"',
             'medseq_model_load_duration_seconds{model="t2d-xgboost",version="1"}',
             'medseq_codes_total{kind="unknown",model="t2d-xgboost",version="1"}',
             'medseq_codes_total{kind="whole",model="t2d-bert",version="1"}',
             'medseq_model_training_code_share{kind="whole",model="t2d-xgboost",version="1"}',
             'medseq_batch_size_bucket', 'medseq_queue_duration_seconds_bucket'):
    if want not in body:
        sys.exit("metrics lack " + want)
print("metrics ok")
PY
[ -s "$OUT/audit.jsonl" ] || fail "empty audit log"

step "SIGTERM: graceful drain"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "server exited with status $?"
SERVER_PID=
grep -q 'msg=stopped' "$OUT/serve.err" || fail "server did not log its stop"

# Real-world codes: the whole pipeline again on a dataset whose codes are spelt as MEDS ETLs
# spell MIMIC-IV's (synth.ETLCode: spaces, a trailing blank, repeated slashes, units, %,
# non-ASCII letters, special-token names), then served by a second server.
ETL=$OUT/etl ETL_SUBJECTS=${E2E_ETL_SUBJECTS:-800}
ETL_T0=$SECONDS
efail() { [ -f "$ETL/serve.err" ] && tail -20 "$ETL/serve.err" >&2; fail "$@"; }
elog() { # run a medseq command, its output in $ETL/NAME.log, shown on failure
  local name=$1; shift
  "$BIN" "$@" >"$ETL/$name.log" 2>&1 || { tail -20 "$ETL/$name.log"; efail "etl: medseq $name"; }
}
mkdir -p "$ETL"
step "etl codes: data synth --code-style etl ($ETL_SUBJECTS subjects), cohort on the etl targets (the oracle scores it)"
elog synth data synth --out "$ETL/meds" --subjects "$ETL_SUBJECTS" --seed 3 --code-style etl --force
ETL_TARGETS=$(sed -n 's/.*the oracle.s outcome is --target "\(.*\)"$/\1/p' "$ETL/synth.log")
[ -n "$ETL_TARGETS" ] || efail "data synth --code-style etl names no targets"
echo "targets: $ETL_TARGETS"
elog cohort data cohort --meds "$ETL/meds" --target "$ETL_TARGETS" --out "$ETL/cohort" --force
grep -q 'oracle AUROC .*the best any model can do' "$ETL/cohort.log" || { cat "$ETL/cohort.log"; efail "no oracle AUROC for the etl targets"; }

step "etl codes: tokenize build (codes with spaces are one token each, in their text form)"
elog tokenize tokenize build --meds "$ETL/meds" --cohort "$ETL/cohort" --out "$ETL/tok" --force
grep -q '^CONDITION//SNOMED%20CT//' "$ETL/tok/vocab.txt" && grep -qx '%5BMASK]' "$ETL/tok/vocab.txt" \
  || efail "vocab.txt lacks the text forms of codes with spaces or special names"
! grep -q '[[:space:]]' "$ETL/tok/vocab.txt" || efail "vocab.txt holds whitespace"

step "etl codes: train xgboost and a tiny BERT, offline predictions for every label, eval report"
XGB_ETL=$ETL/models/etl-xgboost/1 BERT_ETL=$ETL/models/etl-bert/1
elog xgboost train xgboost --meds "$ETL/meds" --cohort "$ETL/cohort" --tokenizer "$ETL/tok" --out "$XGB_ETL" --rounds 60 --force
elog bert train classify --meds "$ETL/meds" --cohort "$ETL/cohort" --tokenizer "$ETL/tok" --out "$BERT_ETL" --config tiny --max-steps 12 --force
elog predict-xgb predict --force --model "$XGB_ETL" --meds "$ETL/meds" --cohort "$ETL/cohort" --out "$ETL/offline-xgb.parquet"
elog predict-bert predict --force --model "$BERT_ETL" --meds "$ETL/meds" --cohort "$ETL/cohort" --out "$ETL/offline-bert.parquet"
grep -h 'codes read by the tokenizer' "$ETL/predict-xgb.log" "$ETL/predict-bert.log" || efail "predict reports no token rates"
elog report eval report --model "$XGB_ETL" --model "$BERT_ETL" --out "$ETL/report" --cohort "$ETL/cohort" --meds "$ETL/meds" \
  --oracle "$ETL/meds" --bootstrap 50
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r.get("oracle") and len(r["models"])==2 else "metrics.json: no oracle or not two models")' \
  "$ETL/report/metrics.json" || efail "etl eval report"

step "etl codes: serve both models (a second server), compare with offline predictions (codes with spaces sent as gRPC strings and in ModelInfer's one-line text form)"
"$BIN" serve --models "$ETL/models" --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --poll 0 >"$ETL/serve.out" 2>"$ETL/serve.err" &
SERVER_PID=$!
ADDR=
for _ in $(seq 1 200); do
  ADDR=$(sed -n 's/^serving .* on \(.*\)$/\1/p' "$ETL/serve.out" | head -1 || true)
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || efail "etl server exited"
  sleep 0.1
done
[ -n "$ADDR" ] || efail "etl server did not start"
"$OUT/e2echeck" --addr "$ADDR" --meds "$ETL/meds" --cohort "$ETL/cohort" --offline "$ETL/offline-xgb.parquet" \
  --model etl-xgboost --folder "$XGB_ETL" --n "$N" --report "$ETL/report/metrics.json" || efail "etl: server and offline XGBoost predictions differ"
"$OUT/e2echeck" --addr "$ADDR" --meds "$ETL/meds" --cohort "$ETL/cohort" --offline "$ETL/offline-bert.parquet" \
  --model etl-bert --folder "$BERT_ETL" --n "$N" --raw || efail "etl: server and offline raw BERT predictions differ"
"$OUT/e2echeck" --addr "$ADDR" --meds "$ETL/meds" --cohort "$ETL/cohort" --offline "$ETL/offline-bert.parquet" \
  --model etl-bert --folder "$BERT_ETL" --n "$N" --report "$ETL/report/metrics.json" || efail "etl: server and offline calibrated BERT predictions differ"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || efail "etl server exited with status $?"
SERVER_PID=
echo "etl codes: $((SECONDS - ETL_T0))s"
echo "e2e: PASS"
