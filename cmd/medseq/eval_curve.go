package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/features"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/study"
	"github.com/medseq/medseq/train"
)

// curveOptions are the flags of `medseq eval curve` that need reading after parsing.
type curveOptions struct {
	cfg                        study.CurveConfig
	fractions, models, windows []string
	lastValues, progress       bool
	posWeight                  *string
}

func curveFlags(e *env, args []string) (*curveOptions, error) {
	fs := newFlags(e, "eval curve", "--meds DIR --cohort DIR --tokenizer DIR --out DIR [--fractions 0.1,0.25,0.5,1] "+
		"[--models xgboost,bert] [model flags]")
	o := &curveOptions{}
	c := &o.cfg
	fs.StringVar(&c.MEDS, "meds", "", "MEDS dataset folder the cohort was built from")
	fs.StringVar(&c.Cohort, "cohort", "", "cohort folder (medseq data cohort): its training split is cut, "+
		"its tuning and held_out splits kept")
	fs.StringVar(&c.Tokenizer, "tokenizer", "", "tokenizer folder built from the cohort (medseq tokenize build): every "+
		"fit reads it")
	fs.StringVar(&c.Out, "out", "", "output folder: curve.json and curve.svg (the fits go to OUT.fits/, removed at the "+
		"end)")
	fs.BoolVar(&c.Force, "force", false, "replace --out (and a left-over OUT.fits/)")
	fs.BoolVar(&c.AllowMismatch, "allow-mismatch", false, "accept a tokenizer built from another cohort or dataset")
	fs.BoolVar(&c.KeepModels, "keep-models", false, "keep the fits' cohorts and model folders in OUT.fits/")
	listVar(fs, &o.fractions, "fractions", []string{"0.1", "0.25", "0.5", "1"},
		"shares of the training split's subjects, ascending, each in (0, 1]; nested and stratified by class")
	listVar(fs, &o.models, "models", []string{study.CurveXGBoost, study.CurveBERT}, "models fitted: xgboost, bert or both")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the fractions' subjects, the bootstrap and the models")
	fs.IntVar(&c.Bootstrap, "bootstrap", 1000, "bootstrap resamples of subjects for the held_out AUROC intervals (0: "+
		"none)")
	fs.BoolVar(&o.progress, "progress", false, "print the training drivers' progress lines on stderr")
	curveXGBoostFlags(fs, &c.XGBoost, o)
	o.posWeight = curveBERTFlags(fs, &c.BERT)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("meds", c.MEDS, "cohort", c.Cohort, "tokenizer", c.Tokenizer, "out", c.Out); err != nil {
		return nil, err
	}
	if err := o.finish(fs); err != nil {
		return nil, err
	}
	if o.progress {
		c.Progress = e.stderr
	}
	c.Logger = e.log
	return o, nil
}

// curveXGBoostFlags registers the XGBoost fits' flags, as train xgboost names them.
func curveXGBoostFlags(fs *flag.FlagSet, cfg *train.XGBoostConfig, o *curveOptions) {
	p := &cfg.Params
	*p = xgb.DefaultParams()
	fs.Float64Var(&p.Eta, "eta", p.Eta, "XGBoost learning rate")
	fs.Float64Var(&p.Gamma, "gamma", p.Gamma, "XGBoost minimum loss reduction to split")
	fs.IntVar(&p.MaxDepth, "max-depth", p.MaxDepth, "XGBoost maximum tree depth")
	fs.Float64Var(&p.MinChildWeight, "min-child-weight", p.MinChildWeight, "XGBoost minimum hessian in a child")
	fs.Float64Var(&p.Subsample, "subsample", p.Subsample, "XGBoost rows sampled per tree")
	fs.Float64Var(&p.ColsampleByTree, "colsample-bytree", p.ColsampleByTree, "XGBoost columns sampled per tree")
	fs.Float64Var(&p.Lambda, "lambda", p.Lambda, "XGBoost L2 regularisation of leaf weights")
	fs.Float64Var(&p.Alpha, "alpha", p.Alpha, "XGBoost L1 regularisation of leaf weights")
	fs.Float64Var(&p.ScalePosWeight, "scale-pos-weight", 0, "XGBoost weight of positives "+
		"(0: negatives/positives of each fit's training rows)")
	fs.StringVar(&p.EvalMetric, "eval-metric", p.EvalMetric, "XGBoost early-stopping metric on the tuning split: logloss "+
		"or auc")
	fs.IntVar(&p.Rounds, "rounds", p.Rounds, "XGBoost maximum boosting rounds")
	fs.IntVar(&p.EarlyStopping, "early-stopping", p.EarlyStopping, "XGBoost: stop after this many "+
		"rounds without improvement on the tuning split (0: never)")
	fs.IntVar(&p.NThread, "nthread", p.NThread, "XGBoost threads")
	cfg.Search = xgb.DefaultSearchConfig(0)
	fs.IntVar(&cfg.Search.Trials, "search", 0, "XGBoost: search the parameters with this "+
		"many trials on the tuning split at every fraction (0: the flags' values)")
	fs.StringVar(&cfg.Search.Sampler, "search-sampler", cfg.Search.Sampler, "how --search draws trials: tpe or random")
	fs.Uint64Var(&cfg.Search.Seed, "search-seed", cfg.Search.Seed, "seed of --search's draws")
	listVar(fs, &o.windows, "windows", []string{"all", "365d", "30d"}, "XGBoost count windows "+
		"before the prediction time (all = whole history)")
	fs.BoolVar(&o.lastValues, "last-values", false, "XGBoost: add each code's latest numeric value as a feature")
}

// curveBERTFlags registers the BERT fits' flags as train classify names them (their help
// marked "BERT:"), but for --seed (eval curve's own) and checkpoints; --pos-weight's is returned.
func curveBERTFlags(fs *flag.FlagSet, cfg *train.BERTClassifyConfig) *string {
	*cfg = train.DefaultBERTClassifyConfig()
	before := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { before[f.Name] = true })
	bertModelFlags(fs, &cfg.BERTModel)
	fs.StringVar(&cfg.Init, "init", "", "fine-tune from the encoder of this `medseq train pretrain` run folder "+
		"(built with --tokenizer)")
	bertStepFlags(fs, &cfg.BERTTraining)
	posWeight := classifyFlags(fs, cfg)
	fs.VisitAll(func(f *flag.Flag) {
		if !before[f.Name] {
			f.Usage = "BERT: " + f.Usage
		}
	})
	return posWeight
}

// finish reads the lists and checks the flags after parsing.
func (o *curveOptions) finish(fs *flag.FlagSet) error {
	c := &o.cfg
	for _, s := range o.fractions {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return usagef("flag --fractions: %q is not a number", s)
		}
		c.Fractions = append(c.Fractions, f)
	}
	if err := study.CheckFractions(c.Fractions); err != nil {
		return usagef("flag --%v", err)
	}
	for i, m := range o.models {
		if (m != study.CurveXGBoost && m != study.CurveBERT) || slices.Contains(o.models[:i], m) {
			return usagef("flag --models: %q: want xgboost, bert or xgboost,bert, each once", m)
		}
	}
	c.Models = o.models
	if c.Bootstrap < 0 {
		return usagef("flag --bootstrap: must be at least 0")
	}
	if err := o.finishXGBoost(fs); err != nil {
		return err
	}
	return o.finishBERT(fs)
}

// finishXGBoost sets the XGBoost fits' features and seed and checks their flags.
func (o *curveOptions) finishXGBoost(fs *flag.FlagSet) error {
	cfg := &o.cfg.XGBoost
	var windows []int64
	for _, w := range o.windows {
		if w == "all" {
			windows = append(windows, 0)
			continue
		}
		d, err := data.ParseDuration(w)
		if err != nil || d == 0 {
			return usagef("flag --windows: %q is not a duration (e.g. 365d) or all", w)
		}
		windows = append(windows, d)
	}
	cfg.Features = features.Config{Windows: windows, LastValue: o.lastValues}
	cfg.Params.Seed = int64(o.cfg.Seed)
	if err := cfg.Params.Validate(); err != nil {
		return usagef("%v", err)
	}
	return checkSearchFlags(fs, cfg)
}

// finishBERT sets the BERT fits' seed and checks their flags as train classify does: the
// schedule's settings left out are chosen by each fit from its own number of training labels.
func (o *curveOptions) finishBERT(fs *flag.FlagSet) error {
	o.cfg.BERT.Seed = o.cfg.Seed
	return finishClassifyFlags(fs, &o.cfg.BERT, *o.posWeight)
}

// runEvalCurve is eval curve: each model trained on nested fractions of the training split,
// its held-out AUROC against the training labels (study.Curve).
func runEvalCurve(ctx context.Context, e *env, args []string) error {
	o, err := curveFlags(e, args)
	if err != nil {
		return err
	}
	r, err := study.Curve(ctx, o.cfg)
	if errors.Is(err, study.ErrFractions) {
		return fmt.Errorf("flag --%w", err)
	}
	if err != nil {
		return err
	}
	if err := r.WriteText(e.stdout); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "  written: %s, %s\n", filepath.Join(o.cfg.Out, study.CurveJSONFile),
		filepath.Join(o.cfg.Out, study.CurveSVGFile))
	if r.FitsDir != "" {
		fmt.Fprintf(e.stdout, "  fits kept: %s (cohorts/, models/)\n", r.FitsDir)
	}
	return nil
}
