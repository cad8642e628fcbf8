package study

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/train"
)

// fitAll fits every model on every fraction, smallest first, logging each fit as it starts
// and ends.
func (c *curveRun) fitAll(ctx context.Context) error {
	n, total := 0, len(c.subsets)*len(c.cfg.Models)
	for _, s := range c.subsets {
		cohortDir := filepath.Join(c.fits, "cohorts", fractionName(s.fraction))
		if err := writeSubset(cohortDir, c, s); err != nil {
			return fmt.Errorf("curve: cohort of fraction %g: %w", s.fraction, err)
		}
		for _, model := range c.cfg.Models {
			n++
			c.log.Info("curve fit", "fit", n, "of", total, "model", model, "fraction", s.fraction,
				"train_subjects", s.train.Subjects, "train_labels", s.train.Labels, "train_positives", s.train.Positives)
			p, err := c.fit(ctx, model, s, cohortDir)
			if err != nil {
				return fmt.Errorf("curve: %s on fraction %g: %w", model, s.fraction, err)
			}
			c.log.Info("curve fit done", "fit", n, "of", total, "model", model, "fraction", s.fraction,
				"train_labels", s.train.Labels, "auroc", float64(p.AUROC), "auroc_ci_low", float64(p.AUROCLow),
				"auroc_ci_high", float64(p.AUROCHigh), "train_auroc", float64(p.TrainAUROC), "seconds", p.Seconds)
			c.res.Points = append(c.res.Points, p)
		}
	}
	return nil
}

// fit trains one model on one fraction's cohort through its training driver, into a model
// version folder under the fits folder, and measures it on the held-out rows.
func (c *curveRun) fit(ctx context.Context, model string, s curveSubset, cohortDir string) (CurvePoint, error) {
	start := time.Now()
	name := model + "-" + fractionName(s.fraction)
	dir := filepath.Join(c.fits, "models", name, "1")
	// Every fraction reads the tokenizer built from the full cohort: its training split holds
	// the fraction's, and the driver checks the tokenizer against that cohort.
	in := train.Inputs{MEDS: c.cfg.MEDS, Cohort: cohortDir, Tokenizer: c.cfg.Tokenizer,
		AllowMismatch: c.cfg.AllowMismatch, TokenizerCohort: c.cfg.Cohort}
	log := c.log.With("curve_fit", name)
	p := CurvePoint{Model: model, Fraction: s.fraction, Train: s.train, ModelDir: dir}
	var auroc map[string]float64
	switch model {
	case CurveXGBoost:
		cfg := c.cfg.XGBoost
		cfg.Inputs, cfg.Out, cfg.Force, cfg.Name = in, dir, false, name
		res, err := train.XGBoost(ctx, cfg, log, c.cfg.Progress)
		if err != nil {
			return p, err
		}
		p.RunID, p.BestIteration, auroc = res.RunID, res.BestIteration, res.AUROC
	case CurveBERT:
		cfg := c.cfg.BERT
		cfg.Inputs, cfg.Out, cfg.Force, cfg.Name = in, dir, false, name
		cfg.CheckpointEvery, cfg.Resume = 0, false
		res, err := train.BERTClassify(ctx, cfg, log, c.cfg.Progress)
		if err != nil {
			return p, err
		}
		p.RunID, p.Steps, p.BestStep, p.Stopped, auroc = res.RunID, res.Steps, res.BestStep, res.Stopped, res.AUROC
	}
	p.TrainAUROC, p.TuningAUROC = splitAUROC(auroc, data.SplitTrain), splitAUROC(auroc, data.SplitTuning)
	if err := c.measure(dir, &p); err != nil {
		return p, err
	}
	p.Seconds = time.Since(start).Seconds()
	return p, nil
}

func splitAUROC(m map[string]float64, split string) eval.Num {
	if v, ok := m[split]; ok {
		return eval.Num(v)
	}
	return eval.Num(math.NaN())
}

// measure reads the fit's held-out predictions (as eval report reads them: the model's raw
// scores), checks they are the cohort's held-out rows, and computes AUROC with its bootstrap
// interval over subjects.
func (c *curveRun) measure(dir string, p *CurvePoint) error {
	stored, err := eval.ReadPredictions(modelrepo.PredictionsFile(dir, data.SplitHeldOut))
	if err != nil {
		return err
	}
	raw, err := eval.RawScores(stored)
	if err != nil {
		return err
	}
	rows := make([]data.Label, len(raw))
	for i, x := range raw {
		rows[i] = data.Label{SubjectID: x.SubjectID, PredictionTime: x.PredictionTime, Value: x.Label}
	}
	if p.HeldOutRows = rowsDigest(rows); p.HeldOutRows != c.res.HeldOutRows {
		return fmt.Errorf("the model's held-out predictions (%d rows, digest %s) are not the cohort's held-out rows "+
			"(%d, digest %s)", len(rows), p.HeldOutRows, c.res.HeldOut.Labels, c.res.HeldOutRows)
	}
	m, err := eval.Compute(raw, eval.Config{Threshold: eval.ThresholdSpec{Method: eval.ThresholdFixed, Value: 0.5},
		Bootstrap: c.cfg.Bootstrap, Seed: c.cfg.Seed, Level: c.res.Level})
	if err != nil {
		return fmt.Errorf("held-out metrics: %w", err)
	}
	a := m.Sample.AUROC
	p.AUROC, p.AUROCLow, p.AUROCHigh = a.Value, a.Lo, a.Hi
	c.held[pointKey(p.Model, p.Fraction)] = raw
	return nil
}

func pointKey(model string, f float64) string { return fmt.Sprintf("%s@%g", model, f) }

// compare runs DeLong's test of the second model against the first at each fraction, when
// both were fitted.
func compare(c *curveRun) ([]CurveComparison, error) {
	if len(c.cfg.Models) < 2 {
		return nil, nil
	}
	a, b := c.cfg.Models[0], c.cfg.Models[1]
	var out []CurveComparison
	for _, f := range c.cfg.Fractions {
		d, err := eval.CompareAUROC(c.held[pointKey(b, f)], c.held[pointKey(a, f)])
		if err != nil {
			return nil, fmt.Errorf("curve: DeLong at fraction %g: %w", f, err)
		}
		out = append(out, CurveComparison{Fraction: f, A: a, B: b, Diff: d.Diff, SE: d.SE, P: d.P})
	}
	return out, nil
}
