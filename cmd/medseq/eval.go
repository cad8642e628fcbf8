package main

import (
	"context"
	"encoding/json"
	"fmt"

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
}

func evalMetricsFlags(e *env, args []string) (*evalMetricsOptions, error) {
	fs := newFlags(e, "eval metrics", "--predictions FILE [--segments COLS] [--threshold 0.5|max-f1|youden|sens=0.9] [--tuning FILE] [--bootstrap 1000] [--seed 1]")
	o := &evalMetricsOptions{}
	var threshold string
	fs.StringVar(&o.predictions, "predictions", "", "predictions to evaluate (MEDS-evaluation layout, .parquet or .csv)")
	fs.StringVar(&o.tuning, "tuning", "", "tuning-split predictions on which max-f1, youden and sens= thresholds are chosen (without it they are chosen on --predictions, optimistically)")
	listVar(fs, &o.segments, "segments", nil, "comma-separated attribute columns to report per segment (age bands are added when an age column exists)")
	fs.StringVar(&threshold, "threshold", "0.5", "decision threshold: a probability, max-f1, youden or sens=X (target sensitivity)")
	fs.IntVar(&o.bootstrap, "bootstrap", 1000, "bootstrap resamples of subjects for 95% intervals (0 for none)")
	fs.Uint64Var(&o.seed, "seed", 1, "bootstrap seed")
	fs.IntVar(&o.minPos, "min-positives", 10, "segments with fewer positives are reported with counts only")
	fs.IntVar(&o.minNeg, "min-negatives", 10, "segments with fewer negatives are reported with counts only")
	fs.IntVar(&o.bins, "bins", 10, "reliability-curve bins")
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
		return nil, usagef("flag --tuning: only used with --threshold max-f1, youden or sens=X")
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
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}
