package main

import (
	"context"
	"fmt"
	"io"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/features"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/train"
)

func xgboostFlags(e *env, args []string) (*train.XGBoostConfig, error) {
	fs := newFlags(e, "train xgboost", "--meds DIR --cohort DIR --tokenizer DIR --out MODELDIR [flags]")
	cfg := &train.XGBoostConfig{}
	p := &cfg.Params
	*p = xgb.DefaultParams()
	fs.StringVar(&cfg.MEDS, "meds", "", "MEDS dataset folder")
	fs.StringVar(&cfg.Cohort, "cohort", "", "cohort folder (medseq data cohort)")
	fs.StringVar(&cfg.Tokenizer, "tokenizer", "", "tokenizer folder (medseq tokenize build)")
	fs.StringVar(&cfg.Out, "out", "", "model version folder to write, e.g. models/t2d-xgboost/1")
	fs.StringVar(&cfg.Name, "name", "", "model name recorded in the manifest (default: the folder above --out)")
	fs.BoolVar(&cfg.Force, "force", false, "replace an existing output folder")
	fs.BoolVar(&cfg.AllowMismatch, "allow-mismatch", false, "accept inputs from different runs")
	fs.Float64Var(&p.Eta, "eta", p.Eta, "learning rate")
	fs.Float64Var(&p.Gamma, "gamma", p.Gamma, "minimum loss reduction to split")
	fs.IntVar(&p.MaxDepth, "max-depth", p.MaxDepth, "maximum tree depth")
	fs.Float64Var(&p.MinChildWeight, "min-child-weight", p.MinChildWeight, "minimum hessian in a child")
	fs.Float64Var(&p.Subsample, "subsample", p.Subsample, "rows sampled per tree")
	fs.Float64Var(&p.ColsampleByTree, "colsample-bytree", p.ColsampleByTree, "columns sampled per tree")
	fs.Float64Var(&p.ScalePosWeight, "scale-pos-weight", 0, "weight of positives (0: negatives/positives of the training split)")
	fs.StringVar(&p.EvalMetric, "eval-metric", p.EvalMetric, "early-stopping metric on the tuning split: logloss or auc")
	fs.IntVar(&p.Rounds, "rounds", p.Rounds, "maximum boosting rounds")
	fs.IntVar(&p.EarlyStopping, "early-stopping", p.EarlyStopping, "stop after this many rounds without improvement on the tuning split (0: never)")
	fs.IntVar(&p.NThread, "nthread", p.NThread, "threads")
	fs.Int64Var(&p.Seed, "seed", p.Seed, "random seed")
	var windows []int64
	var ws []string
	listVar(fs, &ws, "windows", []string{"all", "365d", "30d"}, "count windows before the prediction time (all = whole history)")
	lastValues := fs.Bool("last-values", false, "add each code's latest numeric value (lab results) as a feature; a BERT sees values only through a tokenizer built with --value-bins, so without one this makes the comparison unequal")
	fs.StringVar(&cfg.Calibration, "calibration", eval.CalibrationIsotonic, "calibration fitted on the tuning split: isotonic, platt or identity")
	operatingPointFlag(fs, &cfg.Threshold)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("meds", cfg.MEDS, "cohort", cfg.Cohort, "tokenizer", cfg.Tokenizer, "out", cfg.Out); err != nil {
		return nil, err
	}
	for _, w := range ws {
		if w == "all" {
			windows = append(windows, 0)
			continue
		}
		d, err := data.ParseDuration(w)
		if err != nil || d == 0 {
			return nil, usagef("flag --windows: %q is not a duration (e.g. 365d) or all", w)
		}
		windows = append(windows, d)
	}
	cfg.Features = features.Config{Windows: windows, LastValue: *lastValues}
	if err := p.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	if err := checkCalibration(cfg.Calibration); err != nil {
		return nil, err
	}
	return cfg, nil
}

func runTrainXGBoost(ctx context.Context, e *env, args []string) error {
	cfg, err := xgboostFlags(e, args)
	if err != nil {
		return err
	}
	res, err := train.XGBoost(ctx, *cfg, e.log, e.stderr)
	if err != nil {
		return err
	}
	printXGBoostSummary(e.stdout, res)
	return nil
}

func printXGBoostSummary(w io.Writer, r *train.XGBoostResult) {
	fmt.Fprintf(w, "xgboost model %s (run %s)\n", r.Out, r.RunID)
	fmt.Fprintf(w, "  rows               train %d, tuning %d, held_out %d\n", r.Rows[data.SplitTrain], r.Rows[data.SplitTuning], r.Rows[data.SplitHeldOut])
	fmt.Fprintf(w, "  best iteration     %d (%.1fs)\n", r.BestIteration, r.Elapsed.Seconds())
	fmt.Fprintf(w, "  AUROC              train %.3f, tuning %.3f, held_out %.3f\n", r.AUROC[data.SplitTrain], r.AUROC[data.SplitTuning], r.AUROC[data.SplitHeldOut])
	fmt.Fprintf(w, "  leaves vs libxgboost max |diff| %.2g over tuning and held-out rows\n", r.ParityMaxDiff)
	printOperatingPoint(w, r.Point)
	fmt.Fprintln(w, "  top features by gain")
	for i, f := range r.TopFeatures {
		if i == 10 {
			break
		}
		fmt.Fprintf(w, "    %10.1f  %-34s %s\n", f.Gain, f.Feature, f.Description)
	}
}
