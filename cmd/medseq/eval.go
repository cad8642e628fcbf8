package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"

	"github.com/medseq/medseq/eval"
)

// evalMetricsOptions are the flags of `medseq eval metrics`.
type evalMetricsOptions struct {
	predictions, tuning string
	segments            []string
	threshold           eval.ThresholdSpec
	bootstrap           int
	seed                uint64
	minPos, minNeg      int
	bins                int
	json                bool
}

func evalMetricsFlags(e *env, args []string) (*evalMetricsOptions, error) {
	fs := newFlags(e, "eval metrics", "--predictions FILE [--segments COLS] [--threshold 0.5|max-f1|youden|sens=0.9] "+
		"[--tuning FILE] [--bootstrap 1000] [--seed 1]")
	o := &evalMetricsOptions{}
	var threshold string
	fs.StringVar(&o.predictions, "predictions", "", "predictions to evaluate (MEDS-evaluation layout, .parquet or .csv)")
	fs.StringVar(&o.tuning, "tuning", "", "tuning-split predictions on which max-f1, youden and sens= thresholds are "+
		"chosen (without it they are chosen on --predictions, optimistically)")
	listVar(fs, &o.segments, "segments", nil, "comma-separated attribute columns to report per segment (age bands are "+
		"added when an age column exists)")
	fs.StringVar(&threshold, "threshold", "0.5", "decision threshold: a probability, max-f1, youden, sens=X or spec=X "+
		"(target sensitivity or specificity)")
	fs.IntVar(&o.bootstrap, "bootstrap", 1000, "bootstrap resamples of subjects for 95% intervals (0 for none)")
	fs.Uint64Var(&o.seed, "seed", 1, "bootstrap seed")
	fs.IntVar(&o.minPos, "min-positives", 10, "segments with fewer positives are reported with counts only")
	fs.IntVar(&o.minNeg, "min-negatives", 10, "segments with fewer negatives are reported with counts only")
	fs.IntVar(&o.bins, "bins", 10, "reliability-curve bins")
	fs.BoolVar(&o.json, "json", false, "print every number (both weightings, calibration bins, segments) as JSON instead "+
		"of the table")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("predictions", o.predictions); err != nil {
		return nil, err
	}
	t, err := eval.ParseThreshold(threshold)
	if err != nil {
		return nil, usagef("flag --threshold: %v", err)
	}
	o.threshold = t
	switch {
	case o.bootstrap < 0:
		return nil, usagef("flag --bootstrap: must be 0 or more")
	case o.bins < 1:
		return nil, usagef("flag --bins: must be at least 1")
	case o.minPos < 1 || o.minNeg < 1:
		return nil, usagef("flags --min-positives and --min-negatives: must be at least 1")
	}
	if o.tuning != "" && t.Method == eval.ThresholdFixed {
		return nil, usagef("flag --tuning: only used with --threshold max-f1, youden, sens=X or spec=X")
	}
	return o, nil
}

// evalMetricsReport is what `medseq eval metrics` prints.
type evalMetricsReport struct {
	Predictions string         `json:"predictions"`
	Tuning      string         `json:"tuning,omitempty"`
	Metrics     *eval.Metrics  `json:"metrics"`
	Segments    []eval.Segment `json:"segments,omitempty"`
}

func runEvalMetrics(ctx context.Context, e *env, args []string) error {
	o, err := evalMetricsFlags(e, args)
	if err != nil {
		return err
	}
	preds, err := eval.ReadPredictions(o.predictions)
	if err != nil {
		return err
	}
	cfg := eval.Config{Threshold: o.threshold, Bootstrap: o.bootstrap, Seed: o.seed, Bins: o.bins}
	if o.tuning != "" {
		if cfg.Tuning, err = eval.ReadPredictions(o.tuning); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := eval.Compute(preds, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", o.predictions, err)
	}
	rep := evalMetricsReport{Predictions: o.predictions, Tuning: o.tuning, Metrics: m}
	hasAge := false
	for _, p := range preds {
		if _, ok := p.Attrs[eval.AgeColumn]; ok {
			hasAge = true
			break
		}
	}
	if len(o.segments) > 0 || hasAge {
		if err := ctx.Err(); err != nil {
			return err
		}
		sc := eval.SegmentConfig{Columns: o.segments, MinPositives: o.minPos, MinNegatives: o.minNeg, Metrics: cfg}
		if rep.Segments, err = eval.Segments(preds, m.Threshold.Value, sc); err != nil {
			return fmt.Errorf("%s: %w", o.predictions, err)
		}
	}
	for _, w := range m.Warnings {
		e.log.Warn(w)
	}
	if !o.json {
		return writeMetricsTable(e.stdout, rep)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

// writeMetricsTable prints rep for people: the sample-weighted metrics with their 95%
// intervals (and the subject-weighted ones beside them when subjects have several
// predictions), the threshold, calibration and per-segment AUROCs. --json prints everything.
func writeMetricsTable(w io.Writer, rep evalMetricsReport) error {
	m := rep.Metrics
	fmt.Fprintf(w, "%s: %d predictions of %d subjects, %d positive, %d "+
		"negative\n", rep.Predictions, m.N, m.Subjects, m.Positives, m.Negatives)
	fmt.Fprintf(w, "threshold %.3f: %s\n\n", m.Threshold.Value, thresholdHow(m.Threshold))
	if err := writeMetricRows(w, m); err != nil {
		return err
	}
	c, cal := m.Sample.Confusion, m.Calibration
	fmt.Fprintf(w, "confusion          TP %g, FP %g, TN %g, FN %g\n", c.TP, c.FP, c.TN, c.FN)
	fmt.Fprintf(w, "calibration        ECE %s, slope %s, "+
		"intercept %s (%d bins)\n", tableNum(cal.ECE), tableNum(cal.Slope), tableNum(cal.Intercept), cal.Bins)
	if m.Bootstrap != nil {
		fmt.Fprintf(w, "(95%% CIs: percentile bootstrap over subjects, %d resamples, "+
			"seed %d; %s: undefined)\n", m.Bootstrap.Resamples, m.Bootstrap.Seed, eval.Dash)
	} else {
		fmt.Fprintln(w, "(no intervals: --bootstrap 0)")
	}
	if len(rep.Segments) > 0 {
		fmt.Fprintln(w)
		if err := writeSegmentRows(w, rep.Segments); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, "(--json for every number: both weightings, calibration bins, segment metrics)")
	return err
}

// thresholdHow says how the threshold was chosen.
func thresholdHow(th eval.ChosenThreshold) string {
	how := th.Method
	if th.Method == eval.ThresholdSensitivity {
		how = fmt.Sprintf("sensitivity %g", th.Target)
	}
	switch th.ChosenOn {
	case "tuning":
		how += fmt.Sprintf(", chosen on the tuning predictions (%d)", th.TuningN)
	case "evaluation":
		how += ", chosen on these predictions (optimistic)"
	}
	return how
}

// writeMetricRows writes the metrics table: value and interval, and the subject-weighted ones
// beside them when subjects have several predictions.
func writeMetricRows(w io.Writer, m *eval.Metrics) error {
	rows := []struct {
		name string
		get  func(*eval.MetricSet) eval.Estimate
	}{
		{"AUROC", func(s *eval.MetricSet) eval.Estimate { return s.AUROC }},
		{"AUPRC", func(s *eval.MetricSet) eval.Estimate { return s.AUPRC }},
		{"log loss", func(s *eval.MetricSet) eval.Estimate { return s.LogLoss }},
		{"Brier", func(s *eval.MetricSet) eval.Estimate { return s.Brier }},
		{"prevalence", func(s *eval.MetricSet) eval.Estimate { return s.Prevalence }},
		{"precision (PPV)", func(s *eval.MetricSet) eval.Estimate { return s.Precision }},
		{"sensitivity", func(s *eval.MetricSet) eval.Estimate { return s.Recall }},
		{"specificity", func(s *eval.MetricSet) eval.Estimate { return s.Specificity }},
		{"NPV", func(s *eval.MetricSet) eval.Estimate { return s.NPV }},
		{"F1", func(s *eval.MetricSet) eval.Estimate { return s.F1 }},
		{"accuracy", func(s *eval.MetricSet) eval.Estimate { return s.Accuracy }},
		{"balanced accuracy", func(s *eval.MetricSet) eval.Estimate { return s.BalancedAccuracy }},
		{"MCC", func(s *eval.MetricSet) eval.Estimate { return s.MCC }},
		{"LR+", func(s *eval.MetricSet) eval.Estimate { return s.LRPlus }},
		{"LR−", func(s *eval.MetricSet) eval.Estimate { return s.LRMinus }},
	}
	perSubject := m.Subjects < m.N
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "metric\tvalue\t95% CI")
	if perSubject {
		fmt.Fprint(tw, "\tsubject-weighted\t95% CI")
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		e := r.get(&m.Sample)
		fmt.Fprintf(tw, "%s\t%s\t%s", r.name, tableNum(e.Value), tableCI(e))
		if perSubject {
			e := r.get(&m.Subject)
			fmt.Fprintf(tw, "\t%s\t%s", tableNum(e.Value), tableCI(e))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// writeSegmentRows writes each segment's counts and AUROC (or why it has none).
func writeSegmentRows(w io.Writer, segs []eval.Segment) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "segment\tn\tpositives\tnegatives\tAUROC\t95% CI")
	for _, sg := range segs {
		fmt.Fprintf(tw, "%s=%s\t%d\t%d\t%d", sg.Column, sg.Value, sg.N, sg.Positives, sg.Negatives)
		if sg.Metrics == nil {
			fmt.Fprintf(tw, "\t%s\t%s\n", eval.Dash, sg.Note)
			continue
		}
		a := sg.Metrics.Sample.AUROC
		fmt.Fprintf(tw, "\t%s\t%s\n", tableNum(a.Value), tableCI(a))
	}
	return tw.Flush()
}

// tableNum is a number for the table: 3 decimals, the dash for an undefined one.
func tableNum(n eval.Num) string {
	f := n.Float()
	switch {
	case math.IsNaN(f):
		return eval.Dash
	case math.IsInf(f, 1):
		return "∞"
	case math.IsInf(f, -1):
		return "−∞"
	}
	return strconv.FormatFloat(f, 'f', 3, 64)
}

// tableCI is an estimate's interval, or nothing without bootstrap bounds.
func tableCI(e eval.Estimate) string {
	if math.IsNaN(e.Lo.Float()) && math.IsNaN(e.Hi.Float()) {
		return ""
	}
	return tableNum(e.Lo) + "–" + tableNum(e.Hi)
}
