package study

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/train"
)

// Models a learning curve trains (CurveConfig.Models, CurvePoint.Model).
const (
	CurveXGBoost = "xgboost" // train.XGBoost
	CurveBERT    = "bert"    // train.BERTClassify
)

// Files of a learning curve's output folder.
const (
	CurveJSONFile = "curve.json" // the CurveResult
	CurveSVGFile  = "curve.svg"  // the plot
)

// ErrFractions is wrapped by the errors about the fractions asked for: out of (0, 1], not
// ascending, or too small to keep both classes in the training split.
var ErrFractions = errors.New("fractions")

// DefaultCurveFractions are the shares of the training split's subjects fitted by default.
func DefaultCurveFractions() []float64 { return []float64{0.1, 0.25, 0.5, 1} }

// CurveConfig says what Curve fits and where it writes.
type CurveConfig struct {
	MEDS, Cohort, Tokenizer string // the dataset, the cohort built from it and a tokenizer built from that cohort
	// AllowMismatch accepts a tokenizer built from another cohort or dataset (with a warning).
	AllowMismatch bool
	// Fractions of the training split's subjects, ascending, each in (0, 1]
	// (DefaultCurveFractions() when empty).
	Fractions []float64
	Models    []string // CurveXGBoost and/or CurveBERT, fitted in this order (both when empty)
	// Seed draws the training subjects each fraction keeps, and the bootstrap resamples.
	Seed uint64
	// XGBoost and BERT are the fits' settings: the parameters, features, search, model shape,
	// schedule and --init. Inputs, Out, Force and Name are set for each fit.
	XGBoost   train.XGBoostConfig
	BERT      train.BERTClassifyConfig
	Bootstrap int // held-out AUROC interval resamples (0: no intervals)
	// Out is the output folder (curve.json, curve.svg), written atomically; Force replaces it.
	// The fits are written under Out + ".fits" (FitsSuffix), removed at the end unless
	// KeepModels.
	Out        string
	Force      bool
	KeepModels bool
	Logger     *slog.Logger
	Progress   io.Writer // the training drivers' progress lines (nil: none)
}

// FitsSuffix names the folder beside Out that the fits are written into.
const FitsSuffix = ".fits"

// CurveResult is a learning curve (medseq eval curve, curve.json): each model trained on
// nested shares of the training split's subjects, with the same tuning and held-out rows, and
// its held-out AUROC against the number of training labels. eval report may embed it.
type CurveResult struct {
	Dataset   string `json:"dataset"`
	Cohort    string `json:"cohort"`
	CohortRun string `json:"cohort_run_id"`
	Tokenizer string `json:"tokenizer"`
	// Seed drew the training subjects of each fraction: each fraction keeps the first
	// round(fraction × n) subjects of each class (any positive label) in an order drawn from
	// it, so the fractions are nested and stratified as the splits are.
	Seed      uint64    `json:"seed"`
	Fractions []float64 `json:"fractions"`
	Models    []string  `json:"models"`
	// BERTInit is the pretrain run the BERT was fine-tuned from ("" for one trained from scratch).
	BERTInit string `json:"bert_init,omitempty"`
	// Train is the whole training split; Tuning and HeldOut the rows every fit stops
	// (tuning) and is measured (held out) on, the same for every fit.
	Train   CurveCounts `json:"train"`
	Tuning  CurveCounts `json:"tuning"`
	HeldOut CurveCounts `json:"held_out"`
	// HeldOutRows is a digest of the held-out rows (subject, prediction time, label); every
	// point's must equal it.
	HeldOutRows string `json:"held_out_rows"`
	// Scores is what AUROC is computed on: "raw", each model's own probabilities (calibration
	// does not change the ranking except by ties).
	Scores    string  `json:"scores"`
	Bootstrap int     `json:"bootstrap"`      // resamples of subjects behind the intervals
	Level     float64 `json:"interval_level"` // the intervals' coverage
	// Oracle is the synthetic dataset's true-risk AUROC on the held-out rows (the best any
	// model can do); nil with OracleWhy saying why when there is none.
	Oracle    *CurveOracle `json:"oracle,omitempty"`
	OracleWhy string       `json:"oracle_why,omitempty"`
	// Points are the fits, fraction by fraction, in the models' order.
	Points []CurvePoint `json:"points"`
	// Comparisons are DeLong's test of the two models at each fraction, when both were fitted.
	Comparisons []CurveComparison `json:"comparisons,omitempty"`
	// FitsDir is where the fits' cohorts and model folders were kept (KeepModels); "" when
	// they were removed.
	FitsDir  string   `json:"fits_dir,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	ElapsedS float64  `json:"elapsed_s"`
}

// CurveCounts counts a set of rows.
type CurveCounts struct {
	Subjects  int `json:"subjects"`
	Labels    int `json:"labels"`
	Positives int `json:"positives"`
}

// CurveOracle is the synthetic oracle's AUROC on the held-out rows.
type CurveOracle struct {
	AUROC  eval.Num `json:"auroc"`
	Labels int      `json:"labels"`
	Lead   string   `json:"lead"` // the cohort's lead time the true risk is computed over
}

// CurvePoint is one fit: a model trained on a fraction of the training split.
type CurvePoint struct {
	Model    string      `json:"model"` // CurveXGBoost or CurveBERT
	Fraction float64     `json:"fraction"`
	Train    CurveCounts `json:"train"` // the training rows the model learned from
	// AUROC is on the held-out rows, with its percentile bootstrap interval over subjects
	// (null bounds without one).
	AUROC     eval.Num `json:"auroc"`
	AUROCLow  eval.Num `json:"auroc_ci_low"`
	AUROCHigh eval.Num `json:"auroc_ci_high"`
	// TrainAUROC and TuningAUROC are the driver's, on raw scores: a training AUROC far above
	// the held-out one is overfitting.
	TrainAUROC  eval.Num `json:"train_auroc"`
	TuningAUROC eval.Num `json:"tuning_auroc"`
	HeldOutRows string   `json:"held_out_rows"` // digest of the rows scored (CurveResult.HeldOutRows)
	RunID       string   `json:"run_id"`        // the model folder's run
	// BestIteration is XGBoost's; Steps, BestStep and Stopped the BERT's.
	BestIteration int     `json:"best_iteration,omitempty"`
	Steps         int     `json:"steps,omitempty"`
	BestStep      int     `json:"best_step,omitempty"`
	Stopped       string  `json:"stopped,omitempty"`
	Seconds       float64 `json:"seconds"`
	ModelDir      string  `json:"model_dir,omitempty"` // the kept model folder (KeepModels)
}

// CurveComparison is DeLong's test of two models' held-out AUROCs at one fraction.
type CurveComparison struct {
	Fraction float64 `json:"fraction"`
	A        string  `json:"a"`
	B        string  `json:"b"`
	// Diff is AUROC(B) − AUROC(A), with its standard error and two-sided p-value.
	Diff eval.Num `json:"diff"`
	SE   eval.Num `json:"se"`
	P    eval.Num `json:"p"`
}

// Curve trains each model on each fraction of the training split through the training
// drivers, with the cohort's tuning and held-out rows unchanged, and measures held-out AUROC
// with intervals; it writes curve.json and curve.svg into cfg.Out.
func Curve(ctx context.Context, cfg CurveConfig) (*CurveResult, error) {
	start := time.Now()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	run, err := openCurve(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(run.fits, 0o755); err != nil {
		return nil, fmt.Errorf("curve: fits folder: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(run.fits)
		}
	}()
	if err := run.fitAll(ctx); err != nil {
		return nil, err
	}
	r := run.res
	if r.Comparisons, err = compare(run); err != nil {
		return nil, err
	}
	if cfg.KeepModels {
		r.FitsDir = run.fits
	} else {
		for i := range r.Points {
			r.Points[i].ModelDir = ""
		}
	}
	r.ElapsedS = time.Since(start).Seconds()
	if err := r.write(cfg.Out, cfg.Force); err != nil {
		return nil, err
	}
	keep = cfg.KeepModels
	return r, nil
}

// check validates the configuration and fills in the defaults.
func (cfg *CurveConfig) check() error {
	if len(cfg.Fractions) == 0 {
		cfg.Fractions = DefaultCurveFractions()
	}
	if err := CheckFractions(cfg.Fractions); err != nil {
		return err
	}
	if len(cfg.Models) == 0 {
		cfg.Models = []string{CurveXGBoost, CurveBERT}
	}
	for i, m := range cfg.Models {
		if m != CurveXGBoost && m != CurveBERT {
			return fmt.Errorf("curve: model %q: want %s or %s", m, CurveXGBoost, CurveBERT)
		}
		if slices.Contains(cfg.Models[:i], m) {
			return fmt.Errorf("curve: model %q named twice", m)
		}
	}
	switch {
	case cfg.MEDS == "" || cfg.Cohort == "" || cfg.Tokenizer == "":
		return errors.New("curve: the dataset, the cohort and the tokenizer are required")
	case cfg.Out == "":
		return errors.New("curve: no output folder")
	case cfg.Bootstrap < 0:
		return fmt.Errorf("curve: bootstrap resamples %d: must be at least 0", cfg.Bootstrap)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Refuse before hours of training, not after (the output is written atomically at the end).
	for _, p := range []string{cfg.Out, cfg.Out + FitsSuffix} {
		if _, err := os.Stat(p); err == nil && !cfg.Force {
			return fmt.Errorf("curve: %s already exists (pass --force to replace it)", p)
		}
	}
	if cfg.Force {
		if err := os.RemoveAll(cfg.Out + FitsSuffix); err != nil {
			return fmt.Errorf("curve: %w", err)
		}
	}
	return nil
}

// CheckFractions returns an error wrapping ErrFractions unless every fraction is in (0, 1]
// and they ascend strictly.
func CheckFractions(fs []float64) error {
	if len(fs) == 0 {
		return fmt.Errorf("%w: none given", ErrFractions)
	}
	for i, f := range fs {
		if math.IsNaN(f) || f <= 0 || f > 1 {
			return fmt.Errorf("%w: %g is not in (0, 1]", ErrFractions, f)
		}
		if i > 0 && f <= fs[i-1] {
			return fmt.Errorf("%w: %g after %g: list them in ascending order, each once", ErrFractions, f, fs[i-1])
		}
	}
	return nil
}

// curveRun is a learning curve being fitted.
type curveRun struct {
	cfg     CurveConfig
	log     *slog.Logger
	oc      *data.OpenedCohort
	subsets []curveSubset
	fits    string                       // the fits folder
	held    map[string][]eval.Prediction // held-out raw predictions by point key
	res     *CurveResult
}

// openCurve opens and checks the inputs, draws the fractions' training subjects and scores
// the held-out rows with the oracle.
func openCurve(cfg CurveConfig) (*curveRun, error) {
	oc, err := data.OpenCohort(cfg.MEDS, cfg.Cohort, false)
	if err != nil {
		return nil, fmt.Errorf("curve: %w", err)
	}
	r := &CurveResult{Dataset: cfg.MEDS, Cohort: cfg.Cohort, CohortRun: oc.Cohort.Manifest.RunID, Tokenizer: cfg.Tokenizer,
		Seed: cfg.Seed, Fractions: cfg.Fractions, Models: cfg.Models, Scores: "raw", Bootstrap: cfg.Bootstrap, Level: 0.95}
	if slices.Contains(cfg.Models, CurveBERT) {
		r.BERTInit = cfg.BERT.Init
	}
	if err := checkTokenizer(cfg, oc, r); err != nil {
		return nil, err
	}
	labels := oc.Cohort.Labels
	if err := checkSplits(cfg.Cohort, labels, r); err != nil {
		return nil, err
	}
	subsets, err := nestedSubsets(labels, cfg.Fractions, cfg.Seed)
	if err != nil {
		return nil, err
	}
	if err := curveOracle(cfg.MEDS, oc.Cohort, r); err != nil {
		return nil, err
	}
	return &curveRun{cfg: cfg, log: cfg.Logger, oc: oc, subsets: subsets, fits: cfg.Out + FitsSuffix,
		held: map[string][]eval.Prediction{}, res: r}, nil
}

// checkTokenizer checks that the tokenizer was built from this cohort and dataset (its
// training split holds every fraction's subjects, and no tuning or held-out subject), or
// warns with AllowMismatch.
func checkTokenizer(cfg CurveConfig, oc *data.OpenedCohort, r *CurveResult) error {
	tm, err := data.ReadManifest(cfg.Tokenizer)
	if err != nil {
		return fmt.Errorf("curve: tokenizer %s: %w", cfg.Tokenizer, err)
	}
	err = tm.CheckInputFingerprint(data.InputMEDS, cfg.MEDS, oc.MEDSFingerprint)
	if err == nil {
		err = tm.CheckInput("cohort", cfg.Cohort)
	}
	if err == nil {
		return nil
	}
	if !cfg.AllowMismatch {
		return fmt.Errorf("curve: %w (or pass --allow-mismatch)", err)
	}
	r.Warnings = append(r.Warnings,
		"the tokenizer was not built from this cohort: its vocabulary may have seen tuning or held-out records")
	cfg.Logger.Warn("inputs from different runs", "err", err.Error())
	return nil
}

// checkSplits counts the splits and refuses a cohort whose tuning or held-out split lacks a
// class (nothing to stop on or to measure).
func checkSplits(cohort string, labels []data.Label, r *CurveResult) error {
	by := map[string][]data.Label{}
	for _, l := range labels {
		by[l.Split] = append(by[l.Split], l)
	}
	r.Train, r.Tuning, r.HeldOut = countLabels(by[data.SplitTrain]), countLabels(by[data.SplitTuning]),
		countLabels(by[data.SplitHeldOut])
	for name, c := range map[string]CurveCounts{data.SplitTuning: r.Tuning, data.SplitHeldOut: r.HeldOut} {
		if c.Positives == 0 || c.Positives == c.Labels {
			return fmt.Errorf("curve: cohort %s: the %s split has %d positive labels of %d: need both classes",
				cohort, name, c.Positives, c.Labels)
		}
	}
	r.HeldOutRows = rowsDigest(by[data.SplitHeldOut])
	return nil
}

// curveOracle scores the held-out rows with the synthetic oracle, for a cohort built from
// --target codes on a synthetic dataset; OracleWhy says why there is none otherwise.
func curveOracle(meds string, c *data.Cohort, r *CurveResult) error {
	if _, ok := c.Manifest.Params["targets"]; !ok {
		r.OracleWhy = "the cohort was built from label files, not --target codes"
		return nil
	}
	cc, err := data.CohortConfigFromParams(c.Manifest.Params)
	if err != nil {
		return fmt.Errorf("curve: cohort %s: %w", c.Dir, err)
	}
	var held []data.Label
	for _, l := range c.Labels {
		if l.Split == data.SplitHeldOut {
			held = append(held, l)
		}
	}
	s, err := synth.ScoreLabels(meds, cc.Targets, held, cc.Lead)
	if err != nil {
		return fmt.Errorf("curve: oracle: %w", err)
	}
	if !s.OK() {
		r.OracleWhy = s.Why
		return nil
	}
	r.Oracle = &CurveOracle{AUROC: eval.Num(s.HeldOut), Labels: s.NHeldOut, Lead: data.FormatDuration(cc.Lead)}
	return nil
}
