package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

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
	fs.Float64Var(&p.Lambda, "lambda", p.Lambda, "L2 regularisation of leaf weights")
	fs.Float64Var(&p.Alpha, "alpha", p.Alpha, "L1 regularisation of leaf weights")
	fs.Float64Var(&p.ScalePosWeight, "scale-pos-weight", 0, "weight of positives (0: negatives/positives of the training "+
		"split)")
	fs.StringVar(&p.EvalMetric, "eval-metric", p.EvalMetric, "early-stopping metric on the tuning split: logloss or auc")
	fs.IntVar(&p.Rounds, "rounds", p.Rounds, "maximum boosting rounds")
	fs.IntVar(&p.EarlyStopping, "early-stopping", p.EarlyStopping, "stop after this many rounds without improvement on "+
		"the tuning split (0: never)")
	fs.IntVar(&p.NThread, "nthread", p.NThread, "threads")
	fs.Int64Var(&p.Seed, "seed", p.Seed, "random seed")
	cfg.Search = xgb.DefaultSearchConfig(0)
	fs.IntVar(&cfg.Search.Trials, "search", 0, "search eta, max depth, min child weight, subsample, colsample and "+
		"lambda/alpha with this many trials on the tuning split, each stopping early on tuning AUROC; the best is kept "+
		"(0: train once with the flags' values)")
	fs.StringVar(&cfg.Search.Sampler, "search-sampler", cfg.Search.Sampler, "how --search draws trials: tpe or random")
	fs.Uint64Var(&cfg.Search.Seed, "search-seed", cfg.Search.Seed, "seed of --search's draws")
	var windows []int64
	var ws []string
	listVar(fs, &ws, "windows", []string{"all", "365d", "30d"}, "count windows before the prediction time (all = whole "+
		"history)")
	lastValues := fs.Bool("last-values", false, "add each code's latest numeric value (lab results) as a feature; a BERT "+
		"sees values only through a tokenizer built with --value-bins, so without one this makes the comparison unequal")
	fs.StringVar(&cfg.Calibration, "calibration", eval.CalibrationIsotonic, "calibration fitted on the tuning split: "+
		"isotonic, platt or identity")
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
	if err := checkSearchFlags(fs, cfg); err != nil {
		return nil, err
	}
	if err := checkCalibration(cfg.Calibration); err != nil {
		return nil, err
	}
	return cfg, nil
}

// searchedFlags are the flags whose parameters --search chooses.
var searchedFlags = []string{"eta", "max-depth", "min-child-weight", "subsample", "colsample-bytree", "lambda", "alpha"}

// checkSearchFlags refuses a search that could not run as asked: a negative trial count,
// a searched parameter also given as a flag, stopping on logloss or never stopping.
func checkSearchFlags(fs *flag.FlagSet, cfg *train.XGBoostConfig) error {
	s := cfg.Search
	if s.Trials < 0 {
		return usagef("flag --search: trials must be >= 0, got %d", s.Trials)
	}
	if s.Trials == 0 {
		return nil
	}
	var clash []string
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(searchedFlags, f.Name) {
			clash = append(clash, "--"+f.Name)
		}
		if f.Name == "eval-metric" && cfg.Params.EvalMetric != "auc" {
			clash = append(clash, "--eval-metric "+cfg.Params.EvalMetric)
		}
	})
	if len(clash) > 0 {
		return usagef("flag --search chooses --%s itself and stops every trial on tuning AUROC: drop %s",
			strings.Join(searchedFlags, ", --"), strings.Join(clash, ", "))
	}
	if cfg.Params.EarlyStopping < 1 {
		return usagef("flag --search: every trial stops early on tuning AUROC: --early-stopping must be >= 1")
	}
	if err := s.Validate(); err != nil {
		return usagef("%v", err)
	}
	return nil
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
	fmt.Fprintf(w, "  rows               train %d, "+
		"tuning %d, held_out %d\n", r.Rows[data.SplitTrain], r.Rows[data.SplitTuning], r.Rows[data.SplitHeldOut])
	fmt.Fprintf(w, "  best iteration     %d (%.1fs)\n", r.BestIteration, r.Elapsed.Seconds())
	if s := r.Search; s != nil {
		b := s.Trials[s.Best]
		fmt.Fprintf(w, "  search             %d %s trials (seed %d): trial %d kept, tuning AUROC %.3f; eta %.3g, max_depth "+
			"%d, "+
			"min_child_weight %.3g, subsample %.2f, colsample_bytree %.2f, lambda %.3g, alpha %.3g\n",
			len(s.Trials), s.Sampler, s.Seed, b.Trial, b.TuningAUROC, b.Params["eta"], int(b.Params["max_depth"]),
			b.Params["min_child_weight"], b.Params["subsample"], b.Params["colsample_bytree"], b.Params["lambda"],
			b.Params["alpha"])
	}
	fmt.Fprintf(w, "  AUROC              train %.3f, "+
		"tuning %.3f, held_out %.3f\n", r.AUROC[data.SplitTrain], r.AUROC[data.SplitTuning], r.AUROC[data.SplitHeldOut])
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
