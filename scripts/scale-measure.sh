#!/usr/bin/env bash
# The single-machine rates behind docs/SCALE.md: for each size, a `data synth` dataset, then
# the stages a user runs on it, each under /usr/bin/time -v, one TSV line per stage:
#   size subjects events meds_bytes stage seconds peak_rss_kb detail
# Stages: synth (writing the MEDS folder), cohort (T2D one year ahead, as the demo), tokenize
# (build over the cohort), xgboost (this binary's defaults; detail = train rows, features,
# best iteration), predict (every label of the cohort, all splits; reads every event again).
#
#   scripts/scale-measure.sh                  # 10k, 40k and 120k subjects (~5 minutes on 2 cores)
#   SIZES=120000 scripts/scale-measure.sh
#
# Environment: BIN (default bin/medseq), OUT (default out/scale), SIZES, SEED (1), KEEP=1
# keeps the datasets (the default deletes each size's folder after its line is written).
# Results: $OUT/scale.tsv (appended), printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/medseq}
OUT=${OUT:-out/scale}
SIZES=${SIZES:-10000 40000 120000}
SEED=${SEED:-1}
KEEP=${KEEP:-0}
TARGET=ICD10/E11,SNOMED/44054006
[ -x "$BIN" ] || { echo "scale-measure: no $BIN (run make build, or set BIN)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "scale-measure: needs GNU time (/usr/bin/time; Debian package time)" >&2; exit 1; }
mkdir -p "$OUT"
TSV=$OUT/scale.tsv
[ -s "$TSV" ] || printf 'size\tsubjects\tevents\tmeds_bytes\tstage\tseconds\tpeak_rss_kb\tdetail\n' >"$TSV"

# timed STAGE DIR CMD...: runs CMD with its stderr in DIR/STAGE.err, its stdout in DIR/STAGE.out.
timed() {
  local stage=$1 dir=$2
  shift 2
  if ! /usr/bin/time -v -o "$dir/$stage.time" "$@" >"$dir/$stage.out" 2>"$dir/$stage.err"; then
    echo "scale-measure: $stage failed:" >&2
    tail -20 "$dir/$stage.err" >&2
    exit 1
  fi
}

# seconds and peak RSS from GNU time's report.
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

for n in $SIZES; do
  D=$OUT/s$n
  rm -rf "$D" && mkdir -p "$D"
  echo "== scale-measure: $n subjects ($(date -u +%H:%M:%S))"
  timed synth "$D" "$BIN" data synth --out "$D/meds" --subjects "$n" --seed "$SEED" --force
  timed cohort "$D" "$BIN" data cohort --meds "$D/meds" --target "$TARGET" --seed "$SEED" --out "$D/cohort" --force
  timed tokenize "$D" "$BIN" tokenize build --meds "$D/meds" --cohort "$D/cohort" --out "$D/tok" --force
  timed xgboost "$D" "$BIN" train xgboost --meds "$D/meds" --cohort "$D/cohort" --tokenizer "$D/tok" \
    --out "$D/xgb" --seed "$SEED" --force
  timed predict "$D" "$BIN" predict --model "$D/xgb" --meds "$D/meds" --cohort "$D/cohort" \
    --out "$D/pred.parquet" --force
  events=$(grep 'synth done' "$D/synth.err" | grep -o ' events=[0-9]*' | cut -d= -f2)
  bytes=$(du -sb "$D/meds/data" | cut -f1)
  xgb=$(grep -o 'train_rows=[0-9]* tuning_rows=[0-9]* features=[0-9]*' "$D/xgboost.err" | head -1)
  best=$(grep -o 'best_iteration=[0-9]*' "$D/xgboost.err" | head -1)
  labels=$(grep -o 'labels=[0-9]*' "$D/cohort.err" | head -1)
  for s in synth cohort tokenize xgboost predict; do
    detail=
    case $s in
      cohort | predict) detail=$labels ;;
      xgboost) detail="$xgb $best" ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$n" "$events" "$bytes" "$s" "$(wall "$D/$s.time")" \
      "$(rss "$D/$s.time")" "$detail" >>"$TSV"
  done
  [ "$KEEP" = 1 ] || rm -rf "$D"
done
column -t -s $'\t' "$TSV"
