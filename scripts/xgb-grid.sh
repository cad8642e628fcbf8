#!/usr/bin/env bash
# The evidence behind `medseq train xgboost`'s defaults (issue 16): on `data synth` cohorts of
# several sizes (type 2 diabetes one year ahead, as the demo builds it), with token counts
# alone and with --last-values, train
#   old          the defaults before issue 16 (eta 0.1, depth 6, min_child_weight 1,
#                subsample/colsample 0.8, 500 rounds, early stopping after 30 on logloss);
#   regularised  issue 16's hand-regularised run (eta 0.05, depth 4, min_child_weight 5,
#                colsample 0.5, early stopping after 100 on AUROC);
#   defaults     this binary's defaults;
#   search       --search $TRIALS (TPE, seed 1) with this binary's rounds and patience;
#   p:K=V:...    candidate defaults: --K V ... over this binary's defaults (p:eta=0.05:max-depth=3);
# and tabulate held-out AUROC (95% bootstrap interval over subjects), tuning and train
# AUROC, best iteration and time. Every model uses --calibration identity so that the
# predictions files hold the raw probabilities the AUROCs are of. Nothing but the search
# reads the tuning split to choose, and nothing reads the held-out split but the table.
#
#   scripts/xgb-grid.sh                      # everything (hours on a 2-core machine)
#   SIZES=10000 CONFIGS="defaults search" scripts/xgb-grid.sh
#
# Environment: BIN (medseq binary, default bin/medseq), OUT (out/xgb-grid), SIZES
# ("10000 40000 120000" subjects), FEATURES ("codes values"), CONFIGS ("old regularised
# defaults search"), TRIALS (30), NTHREAD (2), SEED (1: data, cohort and model seed).
# Data, cohorts and tokenizers are built once per size and reused; a model folder that
# exists is reused (delete it to rerun). Results: $OUT/results.tsv (one line per model,
# appended) and the markdown table scripts/xgb-grid.sh prints at the end ($OUT/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/medseq}
OUT=${OUT:-out/xgb-grid}
SIZES=${SIZES:-"10000 40000 120000"}
FEATURES=${FEATURES:-"codes values"}
CONFIGS=${CONFIGS:-"old regularised defaults search"}
TRIALS=${TRIALS:-30}
NTHREAD=${NTHREAD:-2}
SEED=${SEED:-1}
TARGET="ICD10/E11,SNOMED/44054006"

[ -x "$BIN" ] || { echo "xgb-grid: $BIN not found: make build (or BIN=...)" >&2; exit 1; }
command -v jq >/dev/null || { echo "xgb-grid: jq is needed" >&2; exit 1; }
mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
[ -s "$RESULTS" ] || printf 'subjects\tlabels\ttrain\ttuning\theld_out\tfeatures\tconfig\theld_out_auroc\tci_low\tci_high\ttuning_auroc\ttrain_auroc\tbest_iteration\tseconds\tparams\n' >"$RESULTS"

log() { printf '%s xgb-grid: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# prepare SUBJECTS: synthetic data, the demo's cohort and a default tokenizer, once.
prepare() {
	local n=$1 d="$OUT/s$1"
	mkdir -p "$d"
	if [ ! -f "$d/meds/.done" ]; then
		log "data synth --subjects $n"
		"$BIN" data synth --out "$d/meds" --subjects "$n" --seed "$SEED" --force >"$d/synth.log" 2>&1
		touch "$d/meds/.done"
	fi
	if [ ! -f "$d/cohort/manifest.json" ]; then
		log "data cohort ($n subjects)"
		"$BIN" data cohort --meds "$d/meds" --target "$TARGET" --seed "$SEED" --out "$d/cohort" --force >"$d/cohort.log" 2>&1
	fi
	if [ ! -f "$d/tok/manifest.json" ]; then
		log "tokenize build ($n subjects)"
		"$BIN" tokenize build --meds "$d/meds" --cohort "$d/cohort" --out "$d/tok" --force >"$d/tok.log" 2>&1
	fi
}

# flags CONFIG: the train xgboost flags of a configuration.
flags() {
	case $1 in
	old) echo "--eta 0.1 --max-depth 6 --min-child-weight 1 --subsample 0.8 --colsample-bytree 0.8 --lambda 1 --alpha 0" \
		"--eval-metric logloss --rounds 500 --early-stopping 30" ;;
	regularised) echo "--eta 0.05 --max-depth 4 --min-child-weight 5 --subsample 0.8 --colsample-bytree 0.5" \
		"--eval-metric auc --rounds 500 --early-stopping 100" ;;
	defaults) echo "" ;;
	search) echo "--search $TRIALS --search-seed 1" ;;
	p:*) # p:eta=0.05:max-depth=3 is --eta 0.05 --max-depth 3 over this binary's defaults
		local kv out=""
		IFS=: read -ra kv <<<"${1#p:}"
		for x in "${kv[@]}"; do out+=" --${x%%=*} ${x#*=}"; done
		echo "$out" ;;
	*) echo "xgb-grid: unknown config $1" >&2; return 1 ;;
	esac
}

# train SUBJECTS FEATURES CONFIG: one model and its line of results.tsv.
train() {
	local n=$1 feat=$2 cfg=$3 d="$OUT/s$1" extra=""
	local m="$d/models/$feat-$cfg"
	[ "$feat" = values ] && extra="--last-values"
	if [ ! -f "$m/manifest.json" ]; then
		log "train xgboost $n subjects, $feat, $cfg"
		local t0=$SECONDS
		# shellcheck disable=SC2046
		"$BIN" train xgboost --meds "$d/meds" --cohort "$d/cohort" --tokenizer "$d/tok" --out "$m" --force \
			--nthread "$NTHREAD" --seed "$SEED" --calibration identity $extra $(flags "$cfg") \
			>"$d/train-$feat-$cfg.log" 2>&1 || { tail -n 20 "$d/train-$feat-$cfg.log" >&2; return 1; }
		echo $((SECONDS - t0)) >"$m.seconds"
	fi
	local ci rows
	ci=$("$BIN" eval metrics --predictions "$m/predictions_held_out.parquet" --json --bootstrap 1000 --seed 1 2>/dev/null |
		jq -r '.metrics.sample_weighted.auroc | [.value, .ci_low, .ci_high] | @tsv')
	rows=$(jq -r '[.labels, (.splits | .train, .tuning, .held_out | .positives + .negatives)] | @tsv' \
		"$d/cohort/cohort_report.json")
	jq -r --arg n "$n" --arg feat "$feat" --arg cfg "$cfg" --arg ci "$ci" --arg rows "$rows" \
		--arg secs "$(cat "$m.seconds" 2>/dev/null || echo)" '
		[$n] + ($rows | split("\t")) + [$feat, $cfg] + ($ci | split("\t")) +
		[ .metrics.auroc_tuning, .metrics.auroc_train, .metrics.best_iteration, $secs,
		  (.params | "eta=\(.eta) depth=\(.max_depth) mcw=\(.min_child_weight) sub=\(.subsample)" +
		    " col=\(.colsample_bytree) lambda=\(.lambda) alpha=\(.alpha) metric=\(.eval_metric)" +
		    " patience=\(.early_stopping) rounds=\(.rounds)") ]
		| @tsv' "$m/manifest.json" >>"$RESULTS"
}

for n in $SIZES; do
	prepare "$n"
	for feat in $FEATURES; do
		for cfg in $CONFIGS; do
			train "$n" "$feat" "$cfg"
		done
	done
done

# The table: one row per size and features, held-out AUROC [95% CI] (train AUROC, best
# iteration) per configuration, and defaults − search when both ran; the last line of
# results.tsv for each model counts.
awk -F'\t' -v sizes="$SIZES" -v feats="$FEATURES" -v cfgs="$CONFIGS" '
	NR > 1 { k = $1 SUBSEP $6 SUBSEP $7; cell[k] = sprintf("%.3f [%.3f, %.3f] (train %.3f, it %d)", $8, $9, $10, $12, $13)
		auc[k] = $8; labels[$1] = $2 }
	END {
		nc = split(cfgs, c, " "); ns = split(sizes, s, " "); nf = split(feats, f, " ")
		both = index(" " cfgs " ", " defaults ") && index(" " cfgs " ", " search ")
		printf "| subjects (labels) | features |"; for (i = 1; i <= nc; i++) printf " %s |", c[i]
		if (both) printf " defaults − search |"
		printf "\n|---|---|"; for (i = 1; i <= nc + both; i++) printf "---|"; printf "\n"
		for (a = 1; a <= ns; a++) for (b = 1; b <= nf; b++) {
			printf "| %s (%s) | %s |", s[a], labels[s[a]], f[b]
			for (i = 1; i <= nc; i++) printf " %s |", cell[s[a], f[b], c[i]]
			d = s[a] SUBSEP f[b] SUBSEP "defaults"; q = s[a] SUBSEP f[b] SUBSEP "search"
			if (both) printf((d in auc && q in auc) ? " %+.3f |" : " |", auc[d] - auc[q])
			printf "\n"
		}
	}' "$RESULTS" | tee "$OUT/results.md"
