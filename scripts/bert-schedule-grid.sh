#!/usr/bin/env bash
# The evidence behind `medseq train classify`'s schedule by cohort size (issue 16, item 3): on
# `data synth` cohorts (type 2 diabetes one year ahead, as the demo builds it), train the tiny
# BERT by direct classification with
#   before       the defaults before issue 16 (lr 5e-4, 3 epochs, warmup 10%, evaluation every
#                200 steps, the kept weights those of the best tuning loss);
#   demo-before  what `medseq demo` trained before issue 16 (lr 1e-3, 4 epochs, evaluation every
#                50 steps, the best tuning loss);
#   auto         this binary's defaults (the schedule chosen from the training labels, early
#                stopping on the tuning AUROC);
#   p:K=V:...    candidates: --K V ... over this binary's defaults (p:lr=3e-3:epochs=24);
# every one at --max-len 128 (the demo's; 512, the tokenizer's, is 4x the time) and
# --calibration identity, so the predictions files hold the raw scores the AUROCs are of. The
# tuning split chooses the kept weights; only the table reads the held-out split.
#
#   scripts/bert-schedule-grid.sh                     # everything (many hours on a busy 2-core CPU)
#   DATASETS="demo:10000:1:0" CONFIGS="auto" scripts/bert-schedule-grid.sh
#
# Environment: BIN (medseq binary, default bin/medseq), OUT (out/bert-grid), DATASETS (NAME:
# SUBJECTS:SEED:VALUE_BINS ..., default "demo:10000:1:0 s10k2v:10000:2:10": the demo's data
# with its codes-only tokenizer, and another 10k-subject draw read with value tokens as
# `medseq demo --values` does), CONFIGS ("before demo-before auto"), JOBS (runs at once, 1).
# A model folder that exists is reused (delete it to rerun). Results: $OUT/results.tsv (one
# line per model, appended; wall and CPU seconds from /usr/bin/time) and the markdown table
# printed at the end ($OUT/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/medseq}
OUT=${OUT:-out/bert-grid}
DATASETS=${DATASETS:-"demo:10000:1:0 s10k2v:10000:2:10"}
CONFIGS=${CONFIGS:-"before demo-before auto"}
JOBS=${JOBS:-1}
TARGET="ICD10/E11,SNOMED/44054006"
COMMON="--max-len 128 --calibration identity"

[ -x "$BIN" ] || { echo "bert-grid: $BIN not found: make build (or BIN=...)" >&2; exit 1; }
command -v jq >/dev/null || { echo "bert-grid: jq is needed" >&2; exit 1; }
mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
[ -s "$RESULTS" ] || printf 'dataset\ttrain\ttuning\theld_out\tconfig\theld_out_auroc\tci_low\tci_high\ttuning_auroc\ttrain_auroc\tsteps\tbest_step\tsteps_per_epoch\tstopped\twall_s\tcpu_s\tstuck\tparams\n' >"$RESULTS"

log() { printf '%s bert-grid: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# prepare NAME SUBJECTS SEED BINS: synthetic data, the demo's cohort and a tokenizer, once.
prepare() {
	local d="$OUT/$1" n=$2 seed=$3 bins=$4
	mkdir -p "$d"
	if [ ! -f "$d/meds/.done" ]; then
		log "data synth --subjects $n --seed $seed"
		"$BIN" data synth --out "$d/meds" --subjects "$n" --seed "$seed" --force >"$d/synth.log" 2>&1
		touch "$d/meds/.done"
	fi
	if [ ! -f "$d/cohort/manifest.json" ]; then
		log "data cohort ($1)"
		"$BIN" data cohort --meds "$d/meds" --target "$TARGET" --seed "$seed" --out "$d/cohort" --force >"$d/cohort.log" 2>&1
	fi
	if [ ! -f "$d/tok/manifest.json" ]; then
		log "tokenize build ($1, value bins $bins)"
		"$BIN" tokenize build --meds "$d/meds" --cohort "$d/cohort" --out "$d/tok" --value-bins "$bins" --force >"$d/tok.log" 2>&1
	fi
}

# flags CONFIG: the train classify flags of a configuration.
flags() {
	case $1 in
	before) echo "--lr 5e-4 --epochs 3 --warmup 0.1 --eval-every 200 --patience 5 --early-stopping-metric loss" ;;
	demo-before) echo "--lr 1e-3 --epochs 4 --warmup 0.1 --eval-every 50 --patience 5 --early-stopping-metric loss" ;;
	auto) echo "" ;;
	p:*) # p:lr=3e-3:epochs=24 is --lr 3e-3 --epochs 24 over this binary's defaults
		local kv out=""
		IFS=: read -ra kv <<<"${1#p:}"
		for x in "${kv[@]}"; do out+=" --${x%%=*} ${x#*=}"; done
		echo "$out" ;;
	*) echo "bert-grid: unknown config $1" >&2; return 1 ;;
	esac
}

# train NAME CONFIG: one model and its line of results.tsv.
train() {
	local name=$1 cfg=$2 d="$OUT/$1"
	local m="$d/models/${cfg//[:=]/_}"
	mkdir -p "$d/models"
	if [ ! -f "$m/manifest.json" ]; then
		log "train classify $name, $cfg"
		# shellcheck disable=SC2046
		/usr/bin/time -f '%e %U %S' -o "$m.time" "$BIN" train classify --meds "$d/meds" --cohort "$d/cohort" \
			--tokenizer "$d/tok" --out "$m" --force $COMMON $(flags "$cfg") >"$m.log" 2>&1 ||
			{ tail -n 20 "$m.log" >&2; return 1; }
	fi
	local ci rows wall cpu why
	ci=$("$BIN" eval metrics --predictions "$m/predictions_held_out.parquet" --json --bootstrap 1000 --seed 1 2>/dev/null |
		jq -r '.metrics.sample_weighted.auroc | [.value, .ci_low, .ci_high] | @tsv')
	rows=$(jq -r '[.splits | .train, .tuning, .held_out | .positives + .negatives] | @tsv' "$d/cohort/cohort_report.json")
	read -r wall cpu <<<"$(tail -n 1 "$m.time" | awk '{ print $1, $2 + $3 }')"
	why=$(grep -o 'why="[^"]*"' "$m.log" | tail -n 1 | sed 's/why="//; s/"$//')
	jq -r --arg name "$name" --arg cfg "$cfg" --arg ci "$ci" --arg rows "$rows" --arg wall "$wall" --arg cpu "$cpu" \
		--arg why "$why" '
		[$name] + ($rows | split("\t")) + [$cfg] + ($ci | split("\t")) +
		[ .metrics.auroc_tuning, .metrics.auroc_train, .params.steps, .metrics.best_step,
		  (.params.schedule.steps_per_epoch // ""), $why, $wall, $cpu, ((.warnings // []) | length > 0),
		  (.params | "lr=\(.lr) epochs=\(.epochs) warmup_steps=\(.warmup_steps) patience=\(.patience)" +
		    " eval_every=\(.eval_every) pooling=\(.pooling // "cls") pos_weight=\(.pos_weight)" +
		    " stop=\(.early_stopping // "validation loss")") ]
		| @tsv' "$m/manifest.json" >>"$RESULTS"
}

for spec in $DATASETS; do
	IFS=: read -r name n seed bins <<<"$spec"
	prepare "$name" "$n" "$seed" "$bins"
done
running=0
for spec in $DATASETS; do
	name=${spec%%:*}
	for cfg in $CONFIGS; do
		train "$name" "$cfg" &
		running=$((running + 1))
		if [ "$running" -ge "$JOBS" ]; then
			wait -n
			running=$((running - 1))
		fi
	done
done
wait

# The table: one row per dataset and configuration (the last line of results.tsv for each).
{
	printf '| dataset (train / tuning / held-out labels) | config | held-out AUROC [95%% CI] | tuning AUROC | best step / steps (per epoch) | stopped | wall / CPU s |\n'
	printf '|---|---|---|---|---|---|---|\n'
	awk -F'\t' 'NR > 1 { k = $1 FS $5; last[k] = $0; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
		END { for (i = 1; i <= n; i++) { split(last[order[i]], f, FS)
			printf "| %s (%s / %s / %s) | %s | %.3f [%.3f, %.3f] | %.3f | %s / %s (%s) | %s | %s / %s |\n",
				f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[12], f[11], f[13], f[14], f[15], f[16] } }' "$RESULTS"
} | tee "$OUT/results.md"
