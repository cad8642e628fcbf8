#!/usr/bin/env bash
# Load test of `medseq serve` with ghz, as issue 7 judges it: XGBoost Predict throughput
# against a grpc.health.v1 Check on the same server in the same run, 50 concurrent streams,
# LOAD_N (default 100k) calls per phase, zero errors. Phases alternate LOAD_ROUNDS times
# (default 3) so that drift on a shared machine hits both; the figure is the median ratio.
# Paced phases then measure Predict latency at fixed fractions of that throughput
# (LOAD_PACED, default "0.25 0.5"), where latency is the service's and not the queue's.
#
# `make load` runs this; it is not part of `make test` (timings are the machine's).
# LOAD_OUT=DIR keeps the outputs; LOAD_BIN/LOAD_E2ECHECK/LOAD_GHZ use prebuilt binaries; LOAD_MODELS=DIR serves an existing repository instead of
# training the demo models; LOAD_STRICT=1 fails unless the goals are met.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=${GOEXPERIMENT:-simd}
GHZ_VERSION=v0.121.0
N=${LOAD_N:-100000}
ROUNDS=${LOAD_ROUNDS:-3}
C=50

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
script_setup load "${LOAD_OUT:-}"
# LOAD_BIN, LOAD_E2ECHECK and LOAD_GHZ name prebuilt binaries (for a machine without Go,
# such as a lent GPU machine with more cores); otherwise they are built here.
GHZ=${LOAD_GHZ:-}
if [ -z "$GHZ" ]; then go_tool ghz "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"; GHZ=ghz; fi
BIN=${LOAD_BIN:-}
E2ECHECK=${LOAD_E2ECHECK:-}
if [ -z "$BIN" ] || [ -z "$E2ECHECK" ]; then
  step "build"
  BIN=$OUT/medseq E2ECHECK=$OUT/e2echeck
  go build -o "$BIN" ./cmd/medseq
  go build -o "$E2ECHECK" ./serve/internal/e2echeck
fi

MODELS=${LOAD_MODELS:-}
if [ -z "$MODELS" ]; then
  step "demo models (1500 subjects)"
  "$BIN" demo --out "$OUT/demo" --subjects 1500 --force >"$OUT/demo.log" 2>&1 || { tail -20 "$OUT/demo.log"; fail "demo"; }
  MODELS=$OUT/demo/models
fi

step "start the server on loopback"
"$BIN" serve --models "$MODELS" --addr 127.0.0.1:0 --metrics-addr "" --poll 0 >"$OUT/serve.out" 2>"$OUT/serve.err" &
SERVER_PID=$!
ADDR=
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's/^serving .* on \(.*\)$/\1/p' "$OUT/serve.out" | head -1 || true)
  [ -n "$ADDR" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited: $(tail -5 "$OUT/serve.err")"
  sleep 0.1
done
[ -n "$ADDR" ] || fail "server did not start"

step "requests"
if [ -n "${LOAD_MODELS:-}" ]; then
  [ -n "${LOAD_MEDS:-}" ] && [ -n "${LOAD_COHORT:-}" ] || fail "LOAD_MODELS needs LOAD_MEDS and LOAD_COHORT (the data to draw a request from)"
  MEDS=$LOAD_MEDS COHORT=$LOAD_COHORT
else
  MEDS=$OUT/demo/meds COHORT=$OUT/demo/cohort
fi
# One held-out subject's full request, and a short one: its static rows and its 20 latest
# events before the prediction time (the in-process TestLoad's request).
MODEL_DIR=$(ls -d "$MODELS"/t2d-xgboost/* | sort -V | tail -1)
"$BIN" predict --force --model "$MODEL_DIR" --meds "$MEDS" --cohort "$COHORT" --out "$OUT/offline.parquet" >"$OUT/predict.log" 2>&1 ||
  { cat "$OUT/predict.log"; fail "offline predict"; }
"$E2ECHECK" --addr "$ADDR" --meds "$MEDS" --cohort "$COHORT" --offline "$OUT/offline.parquet" --n 20 \
  --write-predict "$OUT/full.json" >/dev/null || fail "the server's answers differ from offline predictions"
python3 - "$OUT/full.json" "$OUT/small.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
static = [e for e in r["events"] if not e.get("time")]
timed = [e for e in r["events"] if e.get("time") and e["time"] <= r["prediction_time"]]
r["events"] = static + timed[-20:]
json.dump(r, open(sys.argv[2], "w"))
PY

ghz_run() { # NAME ARGS...: one ghz phase, its JSON report in $OUT/NAME.json
  local name=$1; shift
  "$GHZ" --insecure --format json -c "$C" "$@" "$ADDR" >"$OUT/$name.json" 2>"$OUT/$name.err" || fail "ghz $name: $(tail -3 "$OUT/$name.err")"
}
health() { ghz_run "$1" --call grpc.health.v1.Health/Check -d '{}' -n "$N"; }
predict() { ghz_run "$1" --call medseq.v1.Predictor/Predict -D "$2" "${@:3}"; }

step "warm-up"
LOAD_N_SAVED=$N N=5000
health warm-health
predict warm-predict "$OUT/small.json" -n 5000
N=$LOAD_N_SAVED

for r in $(seq 1 "$ROUNDS"); do
  step "round $r/$ROUNDS: health Check, Predict (21-event history), $N calls each, $C streams"
  health "health-$r"
  predict "predict-$r" "$OUT/small.json" -n "$N"
done
step "a full held-out history, $((N / 4)) calls"
predict predict-full "$OUT/full.json" -n $((N / 4))

# Paced phases: Predict at fixed fractions of the saturated health throughput (LOAD_PACED),
# where latency is the service's own rather than the queue's (at saturation, Little's law
# puts the mean latency at streams / throughput whatever the server does).
HEALTH_RPS=$(python3 -c "
import json, statistics
print(statistics.median(json.load(open(f'$OUT/health-{r}.json'))['rps'] for r in range(1, $ROUNDS + 1)))")
PACED=${LOAD_PACED:-0.25 0.5}
for f in $PACED; do
  rps=$(python3 -c "print(max(1, int($HEALTH_RPS * $f)))")
  step "paced: Predict at $rps calls/s ($f x health), $C streams, $((rps * 10)) calls"
  predict "paced-$f" "$OUT/small.json" -n $((rps * 10)) --rps "$rps"
done

python3 - "$OUT" "$ROUNDS" "${LOAD_STRICT:-0}" $PACED <<'PY'
import json, statistics, sys
out, rounds, strict, paced_fracs = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
def rep(name):
    d = json.load(open(f"{out}/{name}.json"))
    lat = {p["percentage"]: p["latency"] / 1e6 for p in d.get("latencyDistribution") or []}
    codes = d.get("statusCodeDistribution") or {}
    errors = d["count"] - codes.get("OK", 0)
    return {"calls": d["count"], "rps": d["rps"], "p50_ms": lat.get(50), "p99_ms": lat.get(99), "errors": errors}
rows = {}
for r in range(1, rounds + 1):
    rows[f"health-{r}"], rows[f"predict-{r}"] = rep(f"health-{r}"), rep(f"predict-{r}")
rows["predict-full"] = rep("predict-full")
for f in paced_fracs:
    rows[f"paced-{f}"] = rep(f"paced-{f}")
ratios = [rows[f"predict-{r}"]["rps"] / rows[f"health-{r}"]["rps"] for r in range(1, rounds + 1)]
for k, v in rows.items():
    print(f"{k:14s} {v['calls']:7d} calls {v['rps']:8.0f}/s  p50 {v['p50_ms']:.2f} ms  p99 {v['p99_ms']:.2f} ms  errors {v['errors']}")
ratio = statistics.median(ratios)
p99 = statistics.median(rows[f"predict-{r}"]["p99_ms"] for r in range(1, rounds + 1))
hp99 = statistics.median(rows[f"health-{r}"]["p99_ms"] for r in range(1, rounds + 1))
paced = rows[f"paced-{paced_fracs[0]}"] if paced_fracs else None
errors = sum(v["errors"] for v in rows.values())
print(f"ratio Predict/health: median {ratio:.2f} (rounds: {', '.join(f'{x:.2f}' for x in ratios)})")
print(f"saturated p99: Predict {p99:.2f} ms, health {hp99:.2f} ms")
for f in paced_fracs:
    p = rows[f"paced-{f}"]
    print(f"paced Predict at {f} x health ({p['rps']:.0f}/s): p50 {p['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms")
print(f"errors: {errors}")
json.dump({"rows": rows, "ratio_median": ratio, "ratios": ratios, "errors": errors}, open(f"{out}/load.json", "w"), indent=1)
bad = []
if errors:
    bad.append(f"{errors} errors")
if strict and ratio < 0.8:
    bad.append(f"ratio {ratio:.2f} < 0.8")
if strict and paced and paced["p99_ms"] >= 5:
    bad.append(f"paced p99 {paced['p99_ms']:.2f} ms >= 5 ms")
if bad:
    sys.exit("load: FAIL: " + "; ".join(bad))
PY
if [ "$keep" = 1 ]; then echo "load: done; ghz reports and load.json in $OUT"; else echo "load: done"; fi
