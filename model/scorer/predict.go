package scorer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// PredictConfig is what PredictCohort scores: a model version folder and a cohort's labels.
type PredictConfig struct {
	Model        string // model version folder (train xgboost / train classify)
	MEDS, Cohort string
	// AllowMismatch scores a dataset the cohort was not built from, with a warning.
	AllowMismatch bool
	Splits        []string     // only these splits' labels; all when empty
	Batch         int          // labels per Score call; 0: 512
	Registry      *Registry    // the model kinds this binary scores; nil: XGBoost only
	Log           *slog.Logger // nil: no log
}

// LabelScore is one label's prediction: the model's raw probability and the calibrated one.
type LabelScore struct {
	Label           data.Label
	Raw, Calibrated float64
}

// Predictions are a cohort's calibrated predictions (eval.WritePredictions writes them) with
// what scored them.
type Predictions struct {
	Scores      []LabelScore        // in the order ScoreCohort scores the labels
	Kind        string              // the model's kind (bert, xgboost)
	Manifest    *modelrepo.Manifest // the model's: its operating point and training code rates
	Calibration string              // the calibration method applied
	Rates       tokenize.CodeRates  // how the model's tokenizer read the scored codes
}

// PredictCohort scores every label of the cohort's splits with the model version folder, on
// the label's censored history (ScoreCohort), and calibrates the scores with the folder's
// calibration.json. Nothing of the folder is read before it is verified against its manifest
// (modelrepo.Verify: every file's fingerprint, no symbolic links); the cohort must come from
// the dataset (data.OpenCohort). A cohort with no label in the splits is an error.
func PredictCohort(ctx context.Context, cfg PredictConfig) (*Predictions, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	if _, err := modelrepo.Verify(cfg.Model); err != nil {
		return nil, err
	}
	sc, err := reg.Load(cfg.Model)
	if err != nil {
		return nil, err
	}
	cal, err := modelrepo.ReadCalibration(cfg.Model)
	if err != nil {
		return nil, err
	}
	in, err := data.OpenCohort(cfg.MEDS, cfg.Cohort, cfg.AllowMismatch)
	if err != nil {
		return nil, err
	}
	if err := checkSplits(in.Cohort, cfg.Splits); err != nil {
		return nil, err
	}
	if in.Mismatch != nil {
		log.Warn("scoring a dataset the cohort was not built from", "cohort_run", in.Cohort.Manifest.RunID)
	}
	man := sc.Manifest()
	if in.Cohort.Gap != man.Gap.Micros() {
		log.Warn("the cohort's gap differs from the model's: scoring censors as the cohort does",
			"cohort_gap", data.FormatDuration(in.Cohort.Gap), "model_gap", data.FormatDuration(man.Gap.Micros()))
	}
	out := &Predictions{Kind: sc.Kind(), Manifest: man, Calibration: cal.Method}
	err = ScoreCohort(ctx, sc, in.Dataset, in.Cohort, cfg.Splits, cfg.Batch, func(batch []Scored) error {
		for _, x := range batch {
			out.add(x, cal)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out.Scores) == 0 {
		return nil, fmt.Errorf("no labels to score in %s (splits %v)", cfg.Cohort, cfg.Splits)
	}
	return out, nil
}

// ErrUnknownSplit is returned when a split asked for holds no label of the cohort.
var ErrUnknownSplit = errors.New("no label in this split")

// checkSplits refuses a split the cohort has no label in (a typo, or "all"), naming the
// splits it has, before anything is scored.
func checkSplits(c *data.Cohort, splits []string) error {
	have := map[string]bool{}
	for _, l := range c.Labels {
		have[l.Split] = true
	}
	for _, s := range splits {
		if !have[s] {
			names := slices.Sorted(maps.Keys(have))
			return fmt.Errorf("split %q: %w of cohort %s (it has %s; without --split every label is scored)",
				s, ErrUnknownSplit, c.Dir, strings.Join(names, ", "))
		}
	}
	return nil
}

// add appends one scored label's calibrated prediction and counts its codes.
func (p *Predictions) add(x Scored, cal *modelrepo.Calibration) {
	p.Rates.Add(x.Result.Rates(x.Events))
	p.Scores = append(p.Scores, LabelScore{Label: x.Label, Raw: x.Result.Probability,
		Calibrated: cal.Apply(x.Result.Probability)})
}
