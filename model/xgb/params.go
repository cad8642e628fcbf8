package xgb

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/medseq/medseq/model/gbt"
)

// ErrUnavailable is what every function returns in a build without libxgboost (see
// Available).
var ErrUnavailable = errors.New("training XGBoost needs the cgo build with libxgboost (make build); this binary is " +
	"built without it (CGO_ENABLED=0, the serving build, or -tags noxgboost): it scores XGBoost models, with leaves, " +
	"but cannot train them")

// CSR is the sparse row matrix both model/xgb and model/gbt use: an absent entry is MISSING
// (not zero), as in XGBoost.
type CSR = gbt.CSR

// Params are the booster's training parameters (XGBoost's names in the comments).
type Params struct {
	Eta             float64 // eta, learning rate, in (0, 1]
	Gamma           float64 // gamma, minimum loss reduction to split, >= 0
	MaxDepth        int     // max_depth, >= 1
	MinChildWeight  float64 // min_child_weight, >= 0
	Subsample       float64 // subsample, rows per tree, in (0, 1]
	ColsampleByTree float64 // colsample_bytree, columns per tree, in (0, 1]
	Lambda          float64 // lambda (reg_lambda), L2 regularisation of leaf weights, >= 0
	Alpha           float64 // alpha (reg_alpha), L1 regularisation of leaf weights, >= 0
	ScalePosWeight  float64 // scale_pos_weight; 0 means: negatives/positives of the training labels
	EvalMetric      string  // "logloss" or "auc": what early stopping watches on the tuning set
	Rounds          int     // boosting rounds at most, >= 1
	EarlyStopping   int     // stop after this many rounds without improvement on tune; 0: never
	NThread         int     // nthread; 0 means runtime.NumCPU()
	Seed            int64   // seed

	baseScore float64 // base_score (probability); 0: XGBoost's default. For tests.
}

// DefaultParams are the baseline's defaults, chosen on synthetic cohorts of 10k, 40k and 120k
// subjects with and without --last-values (scripts/xgb-grid.sh; docs/PERFORMANCE.md): shallow
// trees (max_depth 3, min_child_weight 5) learning slowly (eta 0.05) on half the columns per
// tree (colsample_bytree 0.5) and 80% of the rows, lambda 1, alpha 0, scale_pos_weight from
// the labels, up to 1000 rounds with early stopping after 100 rounds without a better tuning
// AUROC, nthread = runtime.NumCPU(), seed 0. Their held-out AUROC is within 0.01 of (and
// mostly above) what a 30-trial search finds at every size measured; the defaults before
// (eta 0.1, depth 6, min_child_weight 1, colsample 0.8, stopping on logloss after 30) fit the
// training labels almost perfectly and were 0.02-0.04 below.
func DefaultParams() Params {
	return Params{
		Eta:             0.05,
		MaxDepth:        3,
		MinChildWeight:  5,
		Subsample:       0.8,
		ColsampleByTree: 0.5,
		Lambda:          1,
		EvalMetric:      "auc",
		Rounds:          1000,
		EarlyStopping:   100,
		NThread:         runtime.NumCPU(),
	}
}

// RoundLog is one boosting round's evaluation: logloss and auc on the training and the
// tuning set (Tune is empty without a tuning set).
type RoundLog struct {
	Round int
	Train map[string]float64
	Tune  map[string]float64
}

// Validate checks every parameter; the error names the first bad one.
func (p Params) Validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !finite(p.Eta) || p.Eta <= 0 || p.Eta > 1:
		return fmt.Errorf("xgb: eta must be in (0, 1], got %v", p.Eta)
	case !finite(p.Gamma) || p.Gamma < 0:
		return fmt.Errorf("xgb: gamma must be >= 0, got %v", p.Gamma)
	case p.MaxDepth < 1:
		return fmt.Errorf("xgb: max_depth must be >= 1, got %d", p.MaxDepth)
	case !finite(p.MinChildWeight) || p.MinChildWeight < 0:
		return fmt.Errorf("xgb: min_child_weight must be >= 0, got %v", p.MinChildWeight)
	case !finite(p.Subsample) || p.Subsample <= 0 || p.Subsample > 1:
		return fmt.Errorf("xgb: subsample must be in (0, 1], got %v", p.Subsample)
	case !finite(p.ColsampleByTree) || p.ColsampleByTree <= 0 || p.ColsampleByTree > 1:
		return fmt.Errorf("xgb: colsample_bytree must be in (0, 1], got %v", p.ColsampleByTree)
	case !finite(p.Lambda) || p.Lambda < 0:
		return fmt.Errorf("xgb: lambda must be >= 0, got %v", p.Lambda)
	case !finite(p.Alpha) || p.Alpha < 0:
		return fmt.Errorf("xgb: alpha must be >= 0, got %v", p.Alpha)
	case !finite(p.ScalePosWeight) || p.ScalePosWeight < 0:
		return fmt.Errorf("xgb: scale_pos_weight must be >= 0 (0: from the labels), got %v", p.ScalePosWeight)
	case p.EvalMetric != "logloss" && p.EvalMetric != "auc":
		return fmt.Errorf("xgb: eval_metric must be \"logloss\" or \"auc\", got %q", p.EvalMetric)
	case p.Rounds < 1:
		return fmt.Errorf("xgb: rounds must be >= 1, got %d", p.Rounds)
	case p.EarlyStopping < 0:
		return fmt.Errorf("xgb: early_stopping must be >= 0, got %d", p.EarlyStopping)
	case p.NThread < 0:
		return fmt.Errorf("xgb: nthread must be >= 0 (0: all CPUs), got %d", p.NThread)
	case p.baseScore != 0 && !(p.baseScore > 0 && p.baseScore < 1):
		return fmt.Errorf("xgb: base_score must be in (0, 1), got %v", p.baseScore)
	}
	return nil
}
