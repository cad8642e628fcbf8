package synth

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
)

// WhyNoOracle is OracleScores.Why for a dataset without an oracle (real data).
const WhyNoOracle = "the dataset has no synthetic oracle"

// OracleScores is the synthetic data's best achievable AUROC on a cohort's labels: each label
// scored by the true probability of a diagnosis within the lead time; or why there is none.
type OracleScores struct {
	All, HeldOut float64 // AUROC on every label, and on the held_out split's
	N, NHeldOut  int     // labels scored
	Why          string  // why there are no scores; "" when they are there
}

// OK reports whether the scores are there.
func (s OracleScores) OK() bool { return s.Why == "" }

// ScoreLabels scores labels with the oracle of the synthetic dataset meds. The oracle is
// optional: the result says why there are no scores when the dataset has none (WhyNoOracle),
// when the cohort's targets are not the outcome the oracle models (OracleTargets), or when it
// cannot score every label (it then scores none). The error is an oracle that cannot be read.
// Callers compute it before they commit an output, so that a failure leaves nothing behind.
func ScoreLabels(meds string, targets []string, labels []data.Label, lead int64) (OracleScores, error) {
	o, err := LoadOracle(meds)
	if errors.Is(err, os.ErrNotExist) {
		return OracleScores{Why: WhyNoOracle}, nil
	}
	if err != nil {
		return OracleScores{}, err
	}
	if !ModelsTargets(targets) {
		if len(targets) == 0 {
			return OracleScores{Why: "the cohort's targets are unknown; the synthetic oracle models --target " +
				strings.Join(OracleTargets, ",")}, nil
		}
		return OracleScores{Why: fmt.Sprintf("the synthetic oracle models --target %s, not %s",
			strings.Join(OracleTargets, ","), strings.Join(targets, ","))}, nil
	}
	var s, sh []float64
	var yb, ybh []bool
	unscored := 0
	for _, l := range labels {
		r, ok := o.Risk(l.SubjectID, l.PredictionTime, lead)
		if !ok {
			unscored++
			continue
		}
		s, yb = append(s, r), append(yb, l.Value)
		if l.Split == data.SplitHeldOut {
			sh, ybh = append(sh, r), append(ybh, l.Value)
		}
	}
	if unscored > 0 {
		return OracleScores{Why: fmt.Sprintf("the oracle cannot score %d of the %d labels (a subject it does not know, "+
			"a prediction time at or after the diagnosis, or a lead of 0)", unscored, len(labels))}, nil
	}
	out := OracleScores{N: len(s), NHeldOut: len(sh)}
	if out.All, err = eval.AUROC(yb, s); err != nil {
		if errors.Is(err, eval.ErrOneClass) {
			return OracleScores{Why: "the labels have one class only"}, nil
		}
		return OracleScores{}, err
	}
	if out.HeldOut, err = eval.AUROC(ybh, sh); err != nil && !errors.Is(err, eval.ErrOneClass) {
		return OracleScores{}, err
	}
	return out, nil
}
