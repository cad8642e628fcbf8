package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// runPredict scores every labelled subject of a cohort with a model version folder and writes
// the predictions in the MEDS-evaluation layout (Parquet, or CSV by extension): a Parquet
// --out holds meds-evaluation's PredictionSchema only, and age, sex, split and the raw
// probability go to NAME.extra.parquet beside it (eval.WritePredictions).
func runPredict(ctx context.Context, e *env, args []string) error {
	for _, a := range args {
		if a == "--addr" || a == "-addr" || strings.HasPrefix(a, "--addr=") || strings.HasPrefix(a, "-addr=") {
			return runPredictClient(ctx, e, args)
		}
	}
	fs := newFlags(e, "predict", "--model MODELDIR --meds DIR --cohort COHORT --out FILE [--split S]")
	modelDir := fs.String("model", "", "model version folder (train xgboost / train classify)")
	meds := fs.String("meds", "", "MEDS dataset folder")
	cohort := fs.String("cohort", "", "cohort folder (medseq data cohort): its labels say whom to score and when")
	out := fs.String("out", "", "predictions file (.parquet: meds-evaluation's PredictionSchema, with NAME.extra.parquet beside it; or .csv)")
	force := fs.Bool("force", false, "replace --out if it exists")
	var splits []string
	listVar(fs, &splits, "split", nil, "only these splits (default: all labels)")
	allow := fs.Bool("allow-mismatch", false, "score a dataset the cohort was not built from")
	batch := fs.Int("batch", 512, "subjects scored per batch")
	var sd scoringDevice
	sd.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required("model", *modelDir, "meds", *meds, "cohort", *cohort, "out", *out); err != nil {
		return err
	}
	if ext := strings.ToLower(filepath.Ext(*out)); ext != ".parquet" && ext != ".csv" {
		return usagef("flag --out: %q must end in .parquet or .csv", *out)
	}
	if *batch < 1 {
		return usagef("flag --batch: must be at least 1")
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		return fmt.Errorf("%s already exists (pass --force to replace it)", *out)
	}
	reg, _, err := sd.registry()
	if err != nil {
		return err
	}
	// Nothing of the folder is read before it is verified against its manifest: every file's
	// fingerprint, no symbolic links (issue 14, D13).
	if _, err := modelrepo.Verify(*modelDir); err != nil {
		return err
	}
	sc, err := reg.Load(*modelDir)
	if err != nil {
		return err
	}
	man := sc.Manifest()
	cal, err := modelrepo.ReadCalibration(*modelDir)
	if err != nil {
		return err
	}
	c, err := data.LoadCohort(*cohort)
	if err != nil {
		return err
	}
	if err := c.CheckDataset(*meds); err != nil {
		if !*allow {
			return fmt.Errorf("%w (or pass --allow-mismatch)", err)
		}
		e.log.Warn("scoring a dataset the cohort was not built from", "cohort_run", c.Manifest.RunID)
	}
	if c.Gap != man.Gap.Micros() {
		e.log.Warn("the cohort's gap differs from the model's: scoring censors as the cohort does", "cohort_gap", data.FormatDuration(c.Gap),
			"model_gap", data.FormatDuration(man.Gap.Micros()))
	}
	ds, err := data.Open(*meds)
	if err != nil {
		return err
	}
	var preds []eval.Prediction
	var rates tokenize.CodeRates
	err = scorer.ScoreCohort(ctx, sc, ds, c, splits, *batch, func(batch []scorer.Scored) error {
		for _, x := range batch {
			l, r := x.Label, x.Result
			rates.Add(r.Rates(x.Events))
			attrs := eval.LabelAttrs(l, l.Split)
			attrs[eval.ColRawProbability] = eval.FormatRaw(r.Probability)
			preds = append(preds, eval.Prediction{SubjectID: l.SubjectID, PredictionTime: l.PredictionTime, Label: l.Value, Score: cal.Apply(r.Probability), Attrs: attrs})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(preds) == 0 {
		return fmt.Errorf("no labels to score in %s (splits %v)", *cohort, splits)
	}
	op := man.OperatingPoint
	if err := eval.WritePredictions(*out, preds, op.Threshold); err != nil {
		return err
	}
	y := make([]bool, len(preds))
	s := make([]float64, len(preds))
	for i, p := range preds {
		y[i], s[i] = p.Label, p.Score
	}
	fmt.Fprintf(e.stdout, "scored %d labels with %s model %s (calibrated: %s)\n", len(preds), sc.Kind(), *modelDir, cal.Method)
	if auc, err := eval.AUROC(y, s); err == nil {
		fmt.Fprintf(e.stdout, "  AUROC %.4f\n", auc)
	}
	sens, spec, ppv, _ := eval.PointRates(preds, op.Threshold)
	fmt.Fprintf(e.stdout, "  operating point %s: sensitivity %.3f, specificity %.3f, PPV %.3f\n", op, sens, spec, ppv)
	fmt.Fprintf(e.stdout, "  codes read by the tokenizer: %s\n", rates)
	if tr := man.TokenRates; tr != nil {
		fmt.Fprintf(e.stdout, "  in training (%s split): whole %.2f%%, pieced %.2f%%, [UNK] %.2f%% of %d codes\n",
			tr.Split, 100*tr.WholeRate, 100*tr.PiecedRate, 100*tr.UnknownRate, tr.Codes)
		if _, _, u := rates.Rates(); u > tr.UnknownRate+0.05 {
			e.log.Warn("far more codes are unknown to the tokenizer than in training: codes from another coding system or version?",
				"unknown_rate", u, "training_unknown_rate", tr.UnknownRate)
		}
	}
	fmt.Fprintf(e.stdout, "  predictions: %s\n", *out)
	if strings.EqualFold(filepath.Ext(*out), ".parquet") {
		fmt.Fprintf(e.stdout, "  age, sex, split, raw_probability: %s\n", modelrepo.PredictionsExtraPath(*out))
	}
	return nil
}
