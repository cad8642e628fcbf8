#!/usr/bin/env bash
# GPU checks on a machine with an NVIDIA GPU and a CUDA PJRT plugin (jax's), but no Go and no
# network, such as the lent H100/H200 (CI has no GPU and never runs this).
#
#   scripts/gpu-check.sh prepare   # here: builds everything into .gpucheck/ (in .gitignore)
#   scripts/gpu-check.sh run       # there, from the repository root, with .gpucheck carried
#
# prepare: medseq built with -tags xla, the model/bert test binary (-tags xla), e2echeck and
# ghz (xz-compressed), libxgboost and the libraries it needs, and a small demo (synthetic
# MEDS, cohort, tokenizer, models). run, each stage under its own timeout, all output in
# $OUT (or GPU_OUT):
#   tests   the GPU against the CPU (TestGPUMatchesCPU, TestGPUPredictLogitsChunks): logits,
#           three AdamW steps, MLM logits, in float32, tf32, bfloat16 and float16 (loss
#           scaling), plain and fused attention (cuDNN flash attention against the CPU's plain
#           float32); the CPU-side checks of the mixed precision (every product's dtype, the
#           FLOPs count, the loss scaler, fused against plain attention); the plugin search as
#           a user meets it (no variable set);
#   dtype   train pretrain --device gpu on the demo in float32, float16 (loss scaling) and
#           bfloat16 (--attention auto: fused in both), GPU_DTYPE_STEPS steps (300): the best
#           validation losses must agree within 5% (float16 converging as float32 does);
#   bench   the MLM training step on the GPU against PyTorch on the same GPU
#           (BenchmarkTrainStepGPUVsTorch: tiny and small, BERT-base at 64x128 and 256x128 in
#           each dtype, plain and fused attention; tokens/s, steps/s, MFU, peak GPU memory);
#           GPU_BENCH picks sub-benchmarks by regexp (e.g. 'base/64x128', 'base/256x128');
#   metrics serve's GPU metrics (go-nvml) on the Prometheus port;
#   load    the load test (scripts/load.sh) on the machine's cores;
#   serve   serving on the GPU: medseq serve --device gpu answers the t2d-bert model as the CPU
#           scores it offline (e2echeck), and medseq predict --device gpu matches predict on the CPU;
#   cli     train classify --device gpu (GPU_DTYPE, default float32; and the same on the CPU
#           unless GPU_CLI_CPU=""), and the GPU-trained model scored offline on the CPU (train
#           pretrain on the GPU is the dtype stage's).
# GPU_STAGES picks stages (default "tests dtype bench metrics serve cli"; load on request). One
# device call may run 10 minutes and a session has about 15, so run it in two calls:
#   GPU_STAGES="tests bench" scripts/gpu-check.sh run            # at most 4 + 5.5 minutes
#   GPU_STAGES="dtype serve cli metrics" scripts/gpu-check.sh run # at most 2.5 + 2 + 5 + 0.5
# (the limits are each stage's timeout; on an H200 on 2026-12-04 tests, metrics, load, bench
# and cli took 7.3 minutes, with a shorter bench). GPU_CHECK_DRY=1 runs it all on the CPU (the
# CPU in the GPU's place) to check this script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
G=.gpucheck

prepare() {
  set -e
  export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd CGO_CFLAGS="${CGO_CFLAGS:--O2 -Wno-deprecated-declarations}"
  rm -rf "$G" && mkdir -p "$G/lib" "$G/bin"
  go build -tags xla -trimpath -ldflags='-s -w' -o "$G/bin/medseq" ./cmd/medseq
  go test -c -tags xla -trimpath -ldflags='-s -w' -o "$G/bin/bert.test" ./model/bert
  go build -trimpath -ldflags='-s -w' -o "$G/bin/e2echeck" ./serve/internal/e2echeck
  . scripts/lib.sh
  script_setup gpu-check "$G/tmp"
  go_tool ghz github.com/bojand/ghz/cmd/ghz@v0.121.0
  cp "$(command -v ghz)" "$G/bin/ghz"
  # The medseq binary links libxgboost (training); the GPU machine has none.
  ldd "$G/bin/medseq" | awk '/libxgboost|libdmlc|libgomp/ {print $3}' | xargs -I{} cp -L {} "$G/lib/"
  "$G/bin/medseq" demo --out "$G/tmp/demo" --subjects 1500 --bert-max-steps 100 --force >"$G/tmp/demo.log" 2>&1 ||
    { tail -20 "$G/tmp/demo.log"; exit 1; }
  tar -C "$G/tmp/demo" -cJf "$G/demo.tar.xz" meds cohort tokenizer models
  xz -T0 -6 "$G"/bin/*
  rm -rf "$G/tmp"
  du -sh "$G"
}

run() {
  OUT=${GPU_OUT:-${OUT:-/tmp/gpu-check}}
  mkdir -p "$OUT"
  W=$(mktemp -d)
  LOG=$OUT/gpu-check.log
  exec > >(tee -a "$LOG") 2>&1
  : >"$OUT/stages.txt"
  want() { [[ " ${GPU_STAGES:-tests dtype bench metrics serve cli} " == *" $1 "* ]]; }
  stage() { # NAME SECONDS CMD...: runs CMD under a timeout, records its exit status and time
    local name=$1 secs=$2 t0=$SECONDS rc
    shift 2
    echo "=== $name (at most ${secs}s)"
    timeout -k 5 "$secs" "$@"
    rc=$?
    printf '%-18s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" >>"$OUT/stages.txt"
    echo "=== $name: rc=$rc in $((SECONDS - t0))s"
  }
  mkdir -p "$W/bin"
  for f in "$G"/bin/*.xz; do xz -dc "$f" >"$W/bin/$(basename "$f" .xz)"; done
  chmod +x "$W/bin"/*
  tar -C "$W" -xJf "$G/demo.tar.xz"
  export LD_LIBRARY_PATH="$PWD/$G/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # go-nvml dlopens libnvidia-ml.so.1: add the driver's folder when ld.so does not know it.
  if ! ldconfig -p | grep -q 'libnvidia-ml.so.1'; then
    nv=$(find /usr/local/nvidia /usr/lib /usr/lib64 -name 'libnvidia-ml.so.1' 2>/dev/null | head -1)
    [ -n "$nv" ] && export LD_LIBRARY_PATH="$(dirname "$nv"):$LD_LIBRARY_PATH"
  fi
  PY=$(command -v python3)
  export MEDSEQ_PYTHON=$PY MEDSEQ_GPU=1
  GPU=gpu
  if [ "${GPU_CHECK_DRY:-0}" = 1 ]; then
    export MEDSEQ_GPU=0 MEDSEQ_GPU_DRY_RUN=1 MEDSEQ_PYTHON=/usr/bin/python3
    GPU=cpu
  fi
  MEDSEQ=$W/bin/medseq
  timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.sm,temperature.gpu,utilization.gpu --format=csv | tee "$OUT/nvidia-smi.txt"
  echo "python3: $PY"
  "$MEDSEQ" version 2>&1

  # The plugin search as a user meets it (no variable set), then the plugin named for the rest.
  ( cd model/bert && "$W/bin/bert.test" -test.run 'TestFindPJRTPluginRealSearch' -test.v ) 2>&1 | grep FindPJRTPlugin
  plugin=$(find /opt /usr /root /home -path '*jax_plugins/xla_cuda*/xla_cuda_plugin.so' 2>/dev/null | sort | tail -1)
  [ -n "$plugin" ] && export PJRT_PLUGIN_LIBRARY_PATH=$plugin

  if want tests; then
    ( cd model/bert && stage gpu-vs-cpu 240 "$W/bin/bert.test" -test.run \
      'TestGPU|TestMixedPrecisionProducts|TestTrainFLOPs|TestLossScaler|TestFusedAttention' \
      -test.v -test.timeout 10m ) 2>&1 | tee "$OUT/tests.txt"
    grep -E '^ *(--- |ok|FAIL|PASS)|relative error|seed|GPU:|products|fused' "$OUT/tests.txt" | tail -60
  fi
  if want dtype; then
    {
      steps=${GPU_DTYPE_STEPS:-300}
      [ "$GPU" = cpu ] && steps=${GPU_DTYPE_STEPS:-20}
      for dt in float32 float16 bfloat16; do
        stage "pretrain-$dt" 50 "$MEDSEQ" train pretrain --meds "$W/meds" --cohort "$W/cohort" --tokenizer "$W/tokenizer" \
          --max-steps "$steps" --eval-every "$((steps < 100 ? steps : 100))" --max-len 128 --device "$GPU" --dtype "$dt" --attention auto --seed 7 \
          --out "$W/runs/mlm-$dt" --force
      done
      python3 - "$W/runs" <<'PY'
import json, sys
runs = {}
for dt in ("float32", "float16", "bfloat16"):
    try:
        m = json.load(open(f"{sys.argv[1]}/mlm-{dt}/manifest.json"))
    except OSError as e:
        print(f"{dt}: no manifest ({e})"); continue
    d = m["params"].get("device") or {}
    runs[dt] = m["metrics"]["best_val_loss"]
    print(f"{dt:9s} attention {d.get('attention')} best val loss {runs[dt]:.4f} "
          f"val MLM accuracy {m['metrics'].get('best_val_mlm_accuracy', 0):.4f} tokens/s {m['metrics'].get('tokens_per_s', 0):.0f}")
bad = [dt for dt in ("float16", "bfloat16") if dt not in runs or "float32" not in runs
       or abs(runs[dt] - runs["float32"]) > 0.05 * runs["float32"]]
print("converges as float32 (within 5%):", "no: " + ", ".join(bad) if bad else "yes")
sys.exit(1 if bad else 0)
PY
      echo "dtype-compare rc=$?" | tee -a "$OUT/stages.txt"
    } 2>&1 | tee "$OUT/dtype.txt"
  fi
  if want metrics; then
    {
      stage metrics 30 bash -c '
        "$0" serve --models "$1/models" --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:9464 --poll 0 >"$1/serve.out" 2>"$1/serve.err" &
        pid=$!
        for _ in $(seq 1 150); do grep -q "^serving" "$1/serve.out" 2>/dev/null && break; sleep 0.2; done
        sleep 2
        python3 -c "import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:9464/metrics\").read().decode())" >"$1/metrics.txt"
        kill -TERM $pid; wait $pid
        echo "$(grep -c "^[a-z]" "$1/metrics.txt") samples; GPU lines:"
        grep -E "^(# HELP )?nv_" "$1/metrics.txt" || grep -i "gpu\|nvml" "$1/serve.err"
        grep -q "^nv_gpu_memory_used_bytes" "$1/metrics.txt"' "$MEDSEQ" "$W"
    } 2>&1 | tee "$OUT/metrics.txt"
  fi
  if want load; then
    stage load 180 env LOAD_BIN="$MEDSEQ" LOAD_E2ECHECK="$W/bin/e2echeck" LOAD_GHZ="$W/bin/ghz" LOAD_MODELS="$W/models" \
      LOAD_MEDS="$W/meds" LOAD_COHORT="$W/cohort" LOAD_OUT="$W/load" scripts/load.sh
    cp "$W/load/load.json" "$OUT/" 2>/dev/null
  fi
  if want bench; then
    ( cd model/bert && MEDSEQ_BENCH_SECONDS=${GPU_BENCH_SECONDS:-3} stage bench 330 "$W/bin/bert.test" -test.run '^$' \
      -test.bench "BenchmarkTrainStepGPUVsTorch/${GPU_BENCH:-}" -test.benchtime 1x -test.v ) 2>&1 | tee "$OUT/bench.txt"
  fi
  if want serve; then
    {
      stage serve-gpu 120 bash -c '
        M=$0 W=$1 DEV=$2
        set -e
        for f in bert-cpu.parquet bert-cpu.csv; do
          "$M" predict --model "$W/models/t2d-bert/1" --meds "$W/meds" --cohort "$W/cohort" --out "$W/$f" >/dev/null
        done
        "$M" predict --model "$W/models/t2d-bert/1" --meds "$W/meds" --cohort "$W/cohort" --out "$W/bert-dev.csv" --device "$DEV" >/dev/null
        python3 - "$W/bert-cpu.csv" "$W/bert-dev.csv" "$DEV" <<PY
import csv, sys
a, b = ([float(r["raw_probability"]) for r in csv.DictReader(open(p))] for p in sys.argv[1:3])
d = max(abs(x - y) for x, y in zip(a, b))
print(f"predict --device {sys.argv[3]} vs cpu: {len(a)} subjects, max |raw probability diff| {d:.2e}")
sys.exit(len(a) != len(b) or d > 1e-5)
PY
        "$M" serve --models "$W/models" --device "$DEV" --addr 127.0.0.1:0 --metrics-addr "" --poll 0 >"$W/serve-dev.out" 2>"$W/serve-dev.err" &
        pid=$!
        for _ in $(seq 1 300); do grep -q "^serving" "$W/serve-dev.out" 2>/dev/null && break; sleep 0.2; done
        addr=$(sed -n "s/^serving .* on \(.*\)$/\1/p" "$W/serve-dev.out" | head -1)
        grep -i "score on" "$W/serve-dev.err" | head -1
        "$W/bin/e2echeck" --addr "$addr" --meds "$W/meds" --cohort "$W/cohort" --model t2d-bert --offline "$W/bert-cpu.parquet" --n 100 --raw --tol 1e-5
        kill -TERM $pid; wait $pid' "$MEDSEQ" "$W" "$GPU"
    } 2>&1 | tee -a "$OUT/cli.txt"
  fi
  if want cli; then
    {
      M="--meds $W/meds --cohort $W/cohort --tokenizer $W/tokenizer --epochs 50 --max-steps ${GPU_CLI_STEPS:-300} --patience 0 --max-len 128 --eval-every 100 --seed 7"
      for dev in $GPU ${GPU_CLI_CPU-cpu}; do
        dt=float32
        [ "$dev" = gpu ] && dt=${GPU_DTYPE:-float32}
        # $M is split on purpose (flags).
        # shellcheck disable=SC2086
        stage "classify-$dev" 120 "$MEDSEQ" train classify $M --device "$dev" --dtype "$dt" --name "bert-$dev" --out "$W/runs/bert-$dev/1" --force
        stage "predict-$dev" 30 "$MEDSEQ" predict --model "$W/runs/bert-$dev/1" --meds "$W/meds" --cohort "$W/cohort" --split held_out --out "$W/pred-$dev.parquet" --force
      done
      for m in "$W"/runs/bert-*/1; do
        python3 -c '
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
print(sys.argv[1].split("/runs/")[1], "device", json.dumps(m["params"].get("device")), "steps", m["params"].get("steps"),
        "metrics", json.dumps(m.get("metrics")))' "$m"
      done
    } 2>&1 | tee "$OUT/cli.txt"
  fi
  echo
  echo "=== summary"
  cat "$OUT/stages.txt"
  grep -sE '^Benchmark' "$OUT/bench.txt" | sed 's/BenchmarkTrainStepGPUVsTorch//' | awk '{$2=""; print}'
  grep -sE '^ *--- (PASS|FAIL|SKIP)' "$OUT/tests.txt"
  grep -E 'ratio|p99|errors' "$LOG" | tail -4
  rm -rf "$W"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
