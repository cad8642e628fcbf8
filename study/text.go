package study

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
)

// WriteCensoringText writes a censoring sensitivity (Censoring) as a table: one line per
// variant, its rows, AUROC with its interval, prevalence and calibration, and how far each moves
// AUROC and prevalence from the reference.
func WriteCensoringText(w io.Writer, r *eval.CensoringSensitivity) error {
	ew := &errWriter{w: w}
	ew.printf("censoring sensitivity: %s model %s on cohort %s (%s split, calibration %s)\n",
		r.ModelKind, r.Model, r.Cohort, r.Split, r.Calibration)
	if r.Rebuilt {
		ew.printf("  labels rebuilt from the cohort's rules with follow-up 0 (the cohort required %s)", r.CohortFollowUp)
		if r.SplitFromCohort > 0 {
			ew.printf("; %d took their subject's split in the cohort", r.SplitFromCohort)
		}
		ew.printf("\n")
	} else {
		ew.printf("  the cohort's own labels (from a label file), with their time to event\n")
	}
	ew.printf("  %-9s %-32s %6s %5s %6s %6s %-21s %7s %6s %7s %6s %6s %7s\n", "follow-up", "censored negatives",
		"labels", "pos", "neg", "prev", "AUROC (interval)", "dAUROC", "mean p", "O-E", "slope", "ECE", "dprev")
	for _, v := range r.Variants {
		m := v.Metrics
		mark := " "
		if v.MatchesCohort {
			mark = "*"
		}
		dAUROC, dPrev := "", ""
		if v.Delta != nil {
			dAUROC, dPrev = signed(v.Delta.AUROC, 3), signed(v.Delta.Prevalence, 3)
		}
		ew.printf("%s %-9s %-32s %6d %5d %6d %6s %-21s %7s %6s %7s %6s %6s %7s\n", mark, v.FollowUp, censoredText(v),
			m.Labels, m.Positives, m.Negatives, num(m.Prevalence, 3), aurocText(m), dAUROC, num(m.MeanPredicted, 3),
			signed(m.CalibrationInTheLarge, 3), num(m.Slope, 2), num(m.ECE, 3), dPrev)
	}
	ew.printf("  censored negatives: dropped/censored, no event and followed less than the follow-up, by reason: D death,\n")
	ew.printf("  E end of record, A dataset end (administrative); drop leaves them out as data cohort --follow-up does,\n")
	ew.printf("  drop-lost keeps those who died.\n")
	ew.printf("  O-E is observed prevalence minus mean predicted probability; * marks the rows of the model's cohort.\n")
	for _, x := range r.Warnings {
		ew.printf("  WARNING: %s\n", x)
	}
	return ew.err
}

// censoredText is a variant's censored negatives and what the policy did with them.
func censoredText(v eval.CensoringRow) string {
	total := 0
	reasons := make([]string, 0, len(v.Censored))
	for r, n := range v.Censored {
		total += n
		reasons = append(reasons, r)
	}
	if v.FollowUpMicros == 0 {
		return "all kept (reference)"
	}
	sort.Strings(reasons)
	var parts []string
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%s %d", shortReason(r), v.Censored[r]))
	}
	return fmt.Sprintf("%s %d/%d (%s)", v.Policy, v.Dropped, total, strings.Join(parts, " "))
}

func shortReason(r string) string {
	switch r {
	case data.CensorDeath:
		return "D"
	case data.CensorEndOfRecord:
		return "E"
	case data.CensorDatasetEnd:
		return "A"
	}
	return r
}

func aurocText(m eval.CensoringMetrics) string {
	if math.IsNaN(float64(m.AUROCLow)) {
		return num(m.AUROC, 3)
	}
	return fmt.Sprintf("%s (%s-%s)", num(m.AUROC, 3), num(m.AUROCLow, 3), num(m.AUROCHigh, 3))
}

func num(x eval.Num, prec int) string {
	if math.IsNaN(float64(x)) {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, float64(x))
}

func signed(x eval.Num, prec int) string {
	if math.IsNaN(float64(x)) {
		return "-"
	}
	return fmt.Sprintf("%+.*f", prec, float64(x))
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
