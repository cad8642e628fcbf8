package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/scorer"
)

// runPredict scores every labelled subject of a cohort with a model version folder and writes
// the predictions in the MEDS-evaluation layout (Parquet, or CSV by extension).
func runPredict(ctx context.Context, e *env, args []string) error {
	for _, a := range args {
		if a == "--addr" || a == "-addr" || strings.HasPrefix(a, "--addr=") || strings.HasPrefix(a, "-addr=") {
			return runPredictClient(ctx, e, args)
		}
	}
	fs := newFlags(e, "predict", "--model MODELDIR --meds DIR --labels COHORT --out FILE [--split S]")
	modelDir := fs.String("model", "", "model version folder (train xgboost / train classify)")
	meds := fs.String("meds", "", "MEDS dataset folder")
	labels := fs.String("labels", "", "cohort folder: its labels say whom to score and when")
	out := fs.String("out", "", "predictions file (.parquet or .csv)")
	var splits []string
	listVar(fs, &splits, "split", nil, "only these splits (default: all labels)")
	allow := fs.Bool("allow-mismatch", false, "score a dataset the cohort was not built from")
	batch := fs.Int("batch", 512, "subjects scored per batch")
	var sd scoringDevice
	sd.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required("model", *modelDir, "meds", *meds, "labels", *labels, "out", *out); err != nil {
		return err
	}
	if ext := strings.ToLower(filepath.Ext(*out)); ext != ".parquet" && ext != ".csv" {
		return usagef("flag --out: %q must end in .parquet or .csv", *out)
	}
	if *batch < 1 {
		return usagef("flag --batch: must be at least 1")
	}
	reg, _, err := sd.registry()
	if err != nil {
		return err
	}
	sc, err := reg.Load(*modelDir)
	if err != nil {
		return err
	}
	var cal *eval.Calibration
	if c, err := eval.LoadCalibration(filepath.Join(*modelDir, scorer.CalibrationFile)); err == nil {
		cal = c
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	c, err := data.LoadCohort(*labels)
	if err != nil {
		return err
	}
	if err := c.CheckDataset(*meds); err != nil {
		if !*allow {
			return fmt.Errorf("%w (or pass --allow-mismatch)", err)
		}
		e.log.Warn("scoring a dataset the cohort was not built from", "cohort_run", c.Manifest.RunID)
	}
	ds, err := data.Open(*meds)
	if err != nil {
		return err
	}
	var preds []eval.Prediction
	var pending []scorer.Input
	var pendingLabels []data.Label
	unknown := 0
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		res, err := sc.Score(ds.Codes, pending)
		if err != nil {
			return err
		}
		for i, r := range res {
			l := pendingLabels[i]
			p := r.Probability
			if cal != nil {
				p = cal.Apply(p)
			}
			unknown += r.Unknown
			preds = append(preds, eval.Prediction{SubjectID: l.SubjectID, PredictionTime: l.PredictionTime, Label: l.Value, Score: p,
				Attrs: map[string]string{"age": fmt.Sprintf("%.2f", l.Age), "sex": l.Sex, "split": l.Split, "raw_probability": fmt.Sprintf("%.9g", r.Probability)}})
		}
		pending, pendingLabels = pending[:0], pendingLabels[:0]
		return nil
	}
	// Events of a shard stay valid while the shard is current: score before moving on.
	err = c.Sequences(ctx, ds, splits, func(s data.Sequence) error {
		pending = append(pending, scorer.Input{Events: s.Events, Birth: s.Label.Birth, Sex: s.Label.Sex, PredictionTime: s.Label.PredictionTime})
		pendingLabels = append(pendingLabels, s.Label)
		if len(pending) >= *batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	if len(preds) == 0 {
		return fmt.Errorf("no labels to score in %s (splits %v)", *labels, splits)
	}
	if err := eval.WritePredictions(*out, preds); err != nil {
		return err
	}
	y := make([]bool, len(preds))
	s := make([]float64, len(preds))
	for i, p := range preds {
		y[i], s[i] = p.Label, p.Score
	}
	msg := fmt.Sprintf("scored %d labels with %s model %s", len(preds), sc.Kind(), *modelDir)
	if cal != nil {
		msg += " (calibrated: " + cal.Method + ")"
	}
	fmt.Fprintln(e.stdout, msg)
	if auc, err := eval.AUROC(y, s); err == nil {
		fmt.Fprintf(e.stdout, "  AUROC %.4f\n", auc)
	}
	fmt.Fprintf(e.stdout, "  codes unknown to the tokenizer: %d\n  predictions: %s\n", unknown, *out)
	return nil
}
