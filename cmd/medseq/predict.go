package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
)

// predictOptions are the flags of `medseq predict --model`.
type predictOptions struct {
	cfg   scorer.PredictConfig
	out   string
	force bool
	sd    scoringDevice
}

func predictFlags(e *env, args []string) (*predictOptions, error) {
	fs := newFlags(e, "predict", "--model MODELDIR --meds DIR --cohort COHORT --out FILE [--split S]")
	o := &predictOptions{cfg: scorer.PredictConfig{Log: e.log}}
	fs.StringVar(&o.cfg.Model, "model", "", "model version folder (train xgboost / train classify)")
	fs.StringVar(&o.cfg.MEDS, "meds", "", "MEDS dataset folder")
	fs.StringVar(&o.cfg.Cohort, "cohort", "", "cohort folder (medseq data cohort): its labels say whom to score and when")
	fs.StringVar(&o.out, "out", "", "predictions file (.parquet: meds-evaluation's PredictionSchema, with "+
		"NAME.extra.parquet beside it; or .csv)")
	fs.BoolVar(&o.force, "force", false, "replace --out if it exists")
	listVar(fs, &o.cfg.Splits, "split", nil, "only these splits (default: all labels)")
	fs.BoolVar(&o.cfg.AllowMismatch, "allow-mismatch", false, "score a dataset the cohort was not built from")
	fs.IntVar(&o.cfg.Batch, "batch", 512, "subjects scored per batch")
	o.sd.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("model", o.cfg.Model, "meds", o.cfg.MEDS, "cohort", o.cfg.Cohort, "out", o.out); err != nil {
		return nil, err
	}
	if ext := strings.ToLower(filepath.Ext(o.out)); ext != ".parquet" && ext != ".csv" {
		return nil, usagef("flag --out: %q must end in .parquet or .csv", o.out)
	}
	if o.cfg.Batch < 1 {
		return nil, usagef("flag --batch: must be at least 1")
	}
	return o, nil
}

// runPredict scores every labelled subject of a cohort with a model version folder and writes
// the predictions in the MEDS-evaluation layout (Parquet, or CSV by extension): a Parquet
// --out holds meds-evaluation's PredictionSchema only, and age, sex, split and the raw
// probability go to NAME.extra.parquet beside it (eval.WritePredictions). With --addr it is a
// client of a running server (runPredictClient).
func runPredict(ctx context.Context, e *env, args []string) error {
	for _, a := range args {
		if a == "--addr" || a == "-addr" || strings.HasPrefix(a, "--addr=") || strings.HasPrefix(a, "-addr=") {
			return runPredictClient(ctx, e, args)
		}
	}
	o, err := predictFlags(e, args)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.out); err == nil && !o.force {
		return fmt.Errorf("%s already exists (pass --force to replace it)", o.out)
	}
	if o.cfg.Registry, _, err = o.sd.registry(); err != nil {
		return err
	}
	res, err := scorer.PredictCohort(ctx, o.cfg)
	if err != nil {
		return err
	}
	preds := evalPredictions(res.Scores)
	if err := eval.WritePredictions(o.out, preds, res.Manifest.OperatingPoint.Threshold); err != nil {
		return err
	}
	printPredictions(e.stdout, e.log, o, res, preds)
	return nil
}

// evalPredictions are the scores as rows of a predictions file: the calibrated probability, and
// age, sex, split and the raw probability as attributes.
func evalPredictions(scores []scorer.LabelScore) []eval.Prediction {
	preds := make([]eval.Prediction, len(scores))
	for i, x := range scores {
		l := x.Label
		attrs := eval.LabelAttrs(l, l.Split)
		attrs[eval.ColRawProbability] = eval.FormatRaw(x.Raw)
		preds[i] = eval.Prediction{SubjectID: l.SubjectID, PredictionTime: l.PredictionTime, Label: l.Value,
			Score: x.Calibrated, Attrs: attrs}
	}
	return preds
}

// printPredictions prints what predict scored: AUROC, the operating point's rates, how the
// tokenizer read the codes against training, and where the predictions are.
func printPredictions(w io.Writer, log *slog.Logger, o *predictOptions, res *scorer.Predictions,
	preds []eval.Prediction) {
	man := res.Manifest
	y := make([]bool, len(preds))
	s := make([]float64, len(preds))
	for i, p := range preds {
		y[i], s[i] = p.Label, p.Score
	}
	fmt.Fprintf(w, "scored %d labels with %s model %s (calibrated: %s)\n", len(preds), res.Kind, o.cfg.Model,
		res.Calibration)
	if auc, err := eval.AUROC(y, s); err == nil {
		fmt.Fprintf(w, "  AUROC %.4f\n", auc)
	}
	op := man.OperatingPoint
	sens, spec, ppv, _ := eval.PointRates(preds, op.Threshold)
	fmt.Fprintf(w, "  operating point %s: sensitivity %.3f, specificity %.3f, PPV %.3f\n", op, sens, spec, ppv)
	fmt.Fprintf(w, "  codes read by the tokenizer: %s\n", res.Rates)
	if tr := man.TokenRates; tr != nil {
		fmt.Fprintf(w, "  in training (%s split): whole %.2f%%, pieced %.2f%%, [UNK] %.2f%% of %d codes\n",
			tr.Split, 100*tr.WholeRate, 100*tr.PiecedRate, 100*tr.UnknownRate, tr.Codes)
		if _, _, u := res.Rates.Rates(); u > tr.UnknownRate+0.05 {
			log.Warn("far more codes are unknown to the tokenizer than in training: codes from another coding system or "+
				"version?",
				"unknown_rate", u, "training_unknown_rate", tr.UnknownRate)
		}
	}
	fmt.Fprintf(w, "  predictions: %s\n", o.out)
	if strings.EqualFold(filepath.Ext(o.out), ".parquet") {
		fmt.Fprintf(w, "  age, sex, split, raw_probability: %s\n", modelrepo.PredictionsExtraPath(o.out))
	}
}
