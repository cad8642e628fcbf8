package main

import (
	"errors"
	"fmt"
	"io"
	"os"

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

// cohortOracle scores labels with the synth oracle of meds; ok is false when the dataset has
// no oracle (real data).
func cohortOracle(meds string, labels []data.Label, lead int64) (oracleScores, bool, error) {
	o, err := synth.LoadOracle(meds)
	if errors.Is(err, os.ErrNotExist) {
		return oracleScores{}, false, nil
	}
	if err != nil {
		return oracleScores{}, false, err
	}
	var s, sh []float64
	var yb, ybh []bool
	for _, l := range labels {
		r, ok := o.Risk(l.SubjectID, l.PredictionTime, lead)
		if !ok {
			return oracleScores{}, false, fmt.Errorf("oracle has no risk for subject %d at its prediction time", l.SubjectID)
		}
		s, yb = append(s, r), append(yb, l.Value)
		if l.Split == data.SplitHeldOut {
			sh, ybh = append(sh, r), append(ybh, l.Value)
		}
	}
	var out oracleScores
	out.N, out.NHeldOut = len(s), len(sh)
	if out.All, err = eval.AUROC(yb, s); err != nil {
		return out, false, err
	}
	if out.HeldOut, err = eval.AUROC(ybh, sh); err != nil && !errors.Is(err, eval.ErrOneClass) {
		return out, false, err
	}
	return out, true, nil
}

func printOracle(w io.Writer, o oracleScores) {
	fmt.Fprintf(w, "  oracle AUROC       %.3f on held_out (%d labels), %.3f on all %d labels: the best any model can do on this cohort\n",
		o.HeldOut, o.NHeldOut, o.All, o.N)
}
