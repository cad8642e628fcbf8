#!/usr/bin/env bash
# BERT training-step benchmark: ours (gomlx, pure-Go CPU backend) and the PyTorch reference
# (model/bert/testdata/torch_bench.py on Debian's python3-torch, 2 threads) in one run, for
# the tiny and small configs (MLM on gathered positions, AdamW, batch 32 x 64 tokens, vocab
# 2000). Prints tokens/s, steps/s and peak RSS of each, and ours / PyTorch (goal: >= 2.5x).
# The halves alternate (ours, PyTorch, ours, PyTorch, ...) for BENCH_COUNT rounds (default 3)
# and the table takes the best of each, with the range of the rounds beside it: a shared, busy
# machine slows whichever half it catches, PyTorch's OpenMP threads most.
#
#   scripts/bench-bert.sh                      # both configs, 3 rounds of >= 5 s of steps each
#   MEDSEQ_BENCH_SECONDS=20 BENCH_COUNT=5 scripts/bench-bert.sh
#   BENCH_CPUPROFILE=out/bert.cpu scripts/bench-bert.sh   # also profile ours (medseq rows only)
#
# Needs /usr/bin/python3 with torch for the PyTorch rows (skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -Wno-deprecated-declarations}"
# Each round runs the whole benchmark once (tiny ours, tiny PyTorch, small ours, small PyTorch),
# so the halves alternate; go test's -count would repeat each half back to back instead.
if [[ -n "${BENCH_CPUPROFILE:-}" ]]; then
  mkdir -p "$(dirname "$BENCH_CPUPROFILE")"
  go test -run '^$' -bench 'BenchmarkTrainStepVsTorch/.*/medseq' -benchtime 1x -count 1 -v \
    -cpuprofile "$(realpath -m "$BENCH_CPUPROFILE")" ./model/bert
  exit
fi
bin=$(mktemp -d)/bert.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./model/bert
for round in $(seq 1 "${BENCH_COUNT:-3}"); do
  echo "--- round $round of ${BENCH_COUNT:-3}" >&2
  (cd model/bert && "$bin" -test.run '^$' -test.bench 'BenchmarkTrainStepVsTorch' -test.benchtime 1x -test.timeout 30m -test.v)
done | tee /dev/stderr | awk '
  /^Benchmark/ && NF > 2 {
    n = split($1, p, "/"); if (n < 3) next; cfg = p[2]; fw = p[3]; sub(/-[0-9]+$/, "", fw)
    for (i = 2; i < NF; i++) {
      m = $(i+1); x = $i + 0
      if (x > v[cfg, fw, m] + 0) v[cfg, fw, m] = x  # best of the rounds
      if (!((cfg, fw, m) in lo) || x < lo[cfg, fw, m]) lo[cfg, fw, m] = x
    }
    rounds[cfg, fw]++
    if (!(cfg in seen)) { seen[cfg] = 1; order[++k] = cfg }
  }
  END {
    if (k == 0) exit
    printf "\n%-6s %7s %14s %15s %14s %15s %8s %10s %11s\n", "config", "rounds", "medseq tok/s", "(range)", "pytorch tok/s", "(range)", "ratio", "medseq MB", "pytorch MB"
    for (j = 1; j <= k; j++) {
      c = order[j]; a = v[c, "medseq", "tokens/s"]; b = v[c, "pytorch", "tokens/s"]
      printf "%-6s %7d %14.0f %15s %14.0f %15s %8s %10.0f %11.0f\n", c, rounds[c, "medseq"], a,
        sprintf("%.0f-%.0f", lo[c, "medseq", "tokens/s"], a), b, sprintf("%.0f-%.0f", lo[c, "pytorch", "tokens/s"], b),
        (b > 0 ? sprintf("%.2fx", a / b) : "n/a"), v[c, "medseq", "peak-RSS-MB"], v[c, "pytorch", "peak-RSS-MB"]
    }
    print "best of the rounds for each half, ratio of the bests; goal: medseq >= 2.5x PyTorch (issue 19)"
  }'
