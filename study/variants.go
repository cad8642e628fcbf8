package study

import (
	"errors"
	"fmt"
	"math"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
)

// evalOptions are what eval needs beyond the rows: the model's threshold and the bootstrap.
type evalOptions struct {
	threshold float64
	bootstrap int
	seed      uint64
	followUps []int64
}

// variants evaluates the reference (every row) and, for each positive follow-up, the drop and
// drop-lost policies. cohortFollowUp marks the variant matching the model's cohort (-1: none).
func variants(rows []row, cfg evalOptions, cohortFollowUp int64, warnings *[]string) ([]eval.CensoringRow, error) {
	ref, err := evaluate(rows, 0, eval.CensoringPolicyKeep, cfg, warnings)
	if err != nil {
		return nil, err
	}
	out := []eval.CensoringRow{ref}
	for _, f := range cfg.followUps {
		if f == 0 {
			continue
		}
		for _, policy := range []string{eval.CensoringPolicyDrop, eval.CensoringPolicyDropLost} {
			v, err := evaluate(rows, f, policy, cfg, warnings)
			if err != nil {
				return nil, err
			}
			v.MatchesCohort = policy == eval.CensoringPolicyDrop && f == cohortFollowUp
			m, r := v.Metrics, ref.Metrics
			v.Delta = &eval.CensoringDelta{AUROC: m.AUROC - r.AUROC, Prevalence: m.Prevalence - r.Prevalence,
				CalibrationInTheLarge: m.CalibrationInTheLarge - r.CalibrationInTheLarge, Slope: m.Slope - r.Slope,
				ECE: m.ECE - r.ECE}
			out = append(out, v)
		}
	}
	if cohortFollowUp == 0 {
		out[0].MatchesCohort = true
	}
	return out, nil
}

// keeps reports whether the policy keeps a row at follow-up f: positives always; negatives
// unless censored within f (drop), or lost to follow-up within f (drop-lost).
func keeps(l *data.Label, f int64, policy string) bool {
	if l.Value || !l.CensoredWithin(f) {
		return true
	}
	switch policy {
	case eval.CensoringPolicyDrop:
		return false
	case eval.CensoringPolicyDropLost:
		return l.CensorReason == data.CensorDeath
	}
	return true
}

// evaluate computes one variant on the rows it keeps.
func evaluate(rows []row, f int64, policy string, cfg evalOptions, warnings *[]string) (eval.CensoringRow, error) {
	v := eval.CensoringRow{FollowUp: data.FormatDuration(f), FollowUpMicros: f, Policy: policy, Censored: map[string]int{}}
	var preds []eval.Prediction
	for i := range rows {
		l := &rows[i].label
		if !l.Value && l.CensoredWithin(f) {
			v.Censored[l.CensorReason]++
		}
		if !keeps(l, f, policy) {
			v.Dropped++
			continue
		}
		preds = append(preds, eval.Prediction{SubjectID: l.SubjectID, PredictionTime: l.PredictionTime, Label: l.Value,
			Score: rows[i].p})
	}
	var err error
	if v.Metrics, err = metricsOf(preds, cfg); err != nil {
		return v, fmt.Errorf("censoring: follow-up %s, %s: %w", v.FollowUp, policy, err)
	}
	if math.IsNaN(float64(v.Metrics.AUROC)) {
		*warnings = append(*warnings, fmt.Sprintf("follow-up %s, %s: %d positive and %d negative labels: no AUROC",
			v.FollowUp, policy, v.Metrics.Positives, v.Metrics.Negatives))
	}
	return v, nil
}

// metricsOf is eval's view of the predictions: Compute's AUROC (with its bootstrap interval),
// prevalence and calibration summary, and the mean predicted probability. Rows of one class
// only leave AUROC and the calibration fit null.
func metricsOf(preds []eval.Prediction, cfg evalOptions) (eval.CensoringMetrics, error) {
	nan := eval.Num(math.NaN())
	m := eval.CensoringMetrics{Labels: len(preds), AUROC: nan, AUROCLow: nan, AUROCHigh: nan, Prevalence: nan,
		MeanPredicted: nan, CalibrationInTheLarge: nan, Slope: nan, ECE: nan}
	subjects := map[int64]bool{}
	sum := 0.0
	for _, p := range preds {
		subjects[p.SubjectID] = true
		sum += p.Score
		if p.Label {
			m.Positives++
		} else {
			m.Negatives++
		}
	}
	m.Subjects = len(subjects)
	if len(preds) == 0 {
		return m, nil
	}
	m.Prevalence = eval.Num(float64(m.Positives) / float64(len(preds)))
	m.MeanPredicted = eval.Num(sum / float64(len(preds)))
	m.CalibrationInTheLarge = m.Prevalence - m.MeanPredicted
	threshold := eval.ThresholdSpec{Method: eval.ThresholdFixed, Value: cfg.threshold}
	res, err := eval.Compute(preds, eval.Config{Threshold: threshold, Bootstrap: cfg.bootstrap, Seed: cfg.seed})
	if errors.Is(err, eval.ErrOneClass) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	m.AUROC, m.AUROCLow, m.AUROCHigh = res.Sample.AUROC.Value, res.Sample.AUROC.Lo, res.Sample.AUROC.Hi
	m.Slope, m.ECE = res.Calibration.Slope, res.Calibration.ECE
	return m, nil
}
