package main

import (
	"fmt"
	"io"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
)

// oracleResult is the synthetic oracle's AUROC on a cohort's labels, or why there is none.
type oracleResult = synth.OracleScores

// cohortOracle scores labels with the synth oracle of meds (synth.ScoreLabels), before the
// caller commits its output.
func cohortOracle(meds string, targets []string, labels []data.Label, lead int64) (oracleResult, error) {
	return synth.ScoreLabels(meds, targets, labels, lead)
}

// printOracle prints the oracle's AUROC, or why there is none (nothing for real data).
func printOracle(w io.Writer, o oracleResult) {
	switch {
	case o.Why == synth.WhyNoOracle:
	case o.Why != "":
		fmt.Fprintf(w, "  oracle AUROC       none: %s\n", o.Why)
	default:
		fmt.Fprintf(w, "  oracle AUROC       %.3f on held_out (%d labels), %.3f on all %d labels: the best any model can do "+
			"on this cohort\n",
			o.HeldOut, o.NHeldOut, o.All, o.N)
	}
}
