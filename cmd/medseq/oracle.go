package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
	"github.com/medseq/medseq/eval"
)

// oracleScores is the synthetic data's best achievable AUROC on a cohort's labels: each
// label scored by the true probability of a diagnosis within the lead time.
type oracleScores struct {
	All, HeldOut float64
	N, NHeldOut  int
}

// oracleResult is cohortOracle's answer: the scores, or why there are none.
type oracleResult struct {
	oracleScores
	Why string // "" when the scores are there
}

func (r oracleResult) ok() bool { return r.Why == "" }

// whyNoOracle is the Why of a dataset without an oracle (real data).
const whyNoOracle = "the dataset has no synthetic oracle"

// cohortOracle scores labels with the synth oracle of meds. The oracle is optional: the result
// says why there are no scores when the dataset has none (real data), when the cohort's
// targets are not the outcome the oracle models (synth.OracleTargets), or when it cannot score
// every label (it then scores none). The error is an oracle that cannot be read. Callers
// compute it before they commit an output, so that a failure leaves nothing behind.
func cohortOracle(meds string, targets []string, labels []data.Label, lead int64) (oracleResult, error) {
	o, err := synth.LoadOracle(meds)
	if errors.Is(err, os.ErrNotExist) {
		return oracleResult{Why: whyNoOracle}, nil
	}
	if err != nil {
		return oracleResult{}, err
	}
	if !synth.ModelsTargets(targets) {
		if len(targets) == 0 {
			return oracleResult{Why: "the cohort's targets are unknown; the synthetic oracle models --target " + strings.Join(synth.OracleTargets, ",")}, nil
		}
		return oracleResult{Why: fmt.Sprintf("the synthetic oracle models --target %s, not %s", strings.Join(synth.OracleTargets, ","), strings.Join(targets, ","))}, nil
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
		return oracleResult{Why: fmt.Sprintf("the oracle cannot score %d of the %d labels (a subject it does not know, a prediction time at or after the diagnosis, or a lead of 0)", unscored, len(labels))}, nil
	}
	var out oracleResult
	out.N, out.NHeldOut = len(s), len(sh)
	if out.All, err = eval.AUROC(yb, s); err != nil {
		if errors.Is(err, eval.ErrOneClass) {
			return oracleResult{Why: "the labels have one class only"}, nil
		}
		return oracleResult{}, err
	}
	if out.HeldOut, err = eval.AUROC(ybh, sh); err != nil && !errors.Is(err, eval.ErrOneClass) {
		return oracleResult{}, err
	}
	return out, nil
}

// printOracle prints the oracle's AUROC, or why there is none (nothing for real data).
func printOracle(w io.Writer, o oracleResult) {
	switch {
	case o.Why == whyNoOracle:
	case o.Why != "":
		fmt.Fprintf(w, "  oracle AUROC       none: %s\n", o.Why)
	default:
		fmt.Fprintf(w, "  oracle AUROC       %.3f on held_out (%d labels), %.3f on all %d labels: the best any model can do on this cohort\n",
			o.HeldOut, o.NHeldOut, o.All, o.N)
	}
}
