package study

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
)

// DefaultFollowUps are the follow-up requirements compared: 0, six months, one and two years.
func DefaultFollowUps() []int64 {
	return []int64{0, 182 * data.MicrosPerDay, 365 * data.MicrosPerDay, 730 * data.MicrosPerDay}
}

// CensoringConfig says what Censoring compares. Scorer and Calibration are the model, loaded
// (and verified) by the caller as medseq predict loads it.
type CensoringConfig struct {
	MEDS        string                 // the dataset the cohort was built from
	Cohort      string                 // the model's cohort folder
	Model       string                 // the model version folder, for the report
	Scorer      scorer.Scorer          // the model
	Calibration *modelrepo.Calibration // the model's calibration.json; nil scores raw probabilities
	FollowUps   []int64                // follow-up requirements (DefaultFollowUps() when empty); 0 is always the reference
	Split       string                 // the split evaluated (default held_out)
	// AllowOtherCohort evaluates a cohort the model was not trained on (its splits then cannot
	// say which subjects the model saw: a warning says so).
	AllowOtherCohort bool
	Bootstrap        int    // AUROC interval resamples (0: none)
	Seed             uint64 // bootstrap seed
	Batch            int    // labels per Score call (default 512)
	Logger           *slog.Logger
}

// Censoring rebuilds the model's cohort with follow-up 0, scores its evaluated split and
// compares the follow-up requirements and policies (see the package doc). The result is eval's
// censoring-sensitivity file (eval.WriteCensoringSensitivity writes it, eval report reads it).
func Censoring(ctx context.Context, cfg CensoringConfig) (*eval.CensoringSensitivity, error) {
	r, _, err := censoring(ctx, cfg)
	return r, err
}

// censoring is Censoring, with the scored rows the variants filter (for tests).
func censoring(ctx context.Context, cfg CensoringConfig) (*eval.CensoringSensitivity, []row, error) {
	if err := cfg.defaults(); err != nil {
		return nil, nil, err
	}
	man := cfg.Scorer.Manifest()
	r := &eval.CensoringSensitivity{Model: cfg.Model, ModelKind: cfg.Scorer.Kind(), ModelRun: man.RunID,
		Dataset: cfg.MEDS, Cohort: cfg.Cohort, Split: cfg.Split, Calibration: "none",
		Threshold: man.OperatingPoint.Threshold, Bootstrap: cfg.Bootstrap}
	if cfg.Calibration != nil {
		r.Calibration = cfg.Calibration.Method
	}
	c, ds, err := openInputs(cfg, r)
	if err != nil {
		return nil, nil, err
	}
	labels, err := followUpLabels(ctx, ds, c, r)
	if err != nil {
		return nil, nil, err
	}
	cfg.Logger.Info("scoring censoring rows", "labels", len(labels), "split", cfg.Split, "rebuilt", r.Rebuilt)
	rows, err := scoreRows(ctx, cfg, ds, c, labels)
	if err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("censoring: cohort %s has no %s labels", cfg.Cohort, cfg.Split)
	}
	cohortFollowUp := int64(-1)
	if r.CohortFollowUp != "" {
		cohortFollowUp, _ = data.ParseDuration(r.CohortFollowUp)
	}
	opts := evalOptions{threshold: r.Threshold, bootstrap: cfg.Bootstrap, seed: cfg.Seed, followUps: cfg.FollowUps}
	if r.Variants, err = variants(rows, opts, cohortFollowUp, &r.Warnings); err != nil {
		return nil, nil, err
	}
	return r, rows, nil
}

// defaults checks the config and fills in its defaults.
func (cfg *CensoringConfig) defaults() error {
	if cfg.Scorer == nil {
		return errors.New("censoring: no model")
	}
	if cfg.Split == "" {
		cfg.Split = data.SplitHeldOut
	}
	if len(cfg.FollowUps) == 0 {
		cfg.FollowUps = DefaultFollowUps()
	}
	for _, f := range cfg.FollowUps {
		if f < 0 {
			return fmt.Errorf("censoring: follow-up %s is negative", data.FormatDuration(f))
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// openInputs loads the cohort and the dataset and checks that they belong together and to the
// model (its training cohort and gap).
func openInputs(cfg CensoringConfig, r *eval.CensoringSensitivity) (*data.Cohort, *data.Dataset, error) {
	c, err := data.LoadCohort(cfg.Cohort)
	if err != nil {
		return nil, nil, err
	}
	if err := c.CheckDataset(cfg.MEDS); err != nil {
		return nil, nil, fmt.Errorf("censoring: %w", err)
	}
	man := cfg.Scorer.Manifest()
	if err := man.CheckInput("cohort", cfg.Cohort); err != nil {
		if !cfg.AllowOtherCohort {
			return nil, nil, fmt.Errorf("censoring: %w (the model's own cohort says which subjects it trained on)", err)
		}
		r.Warnings = append(r.Warnings, "the model was not trained on this cohort: its "+cfg.Split+
			" subjects may include subjects the model trained on")
	}
	if c.Gap != man.Gap.Micros() {
		r.Warnings = append(r.Warnings,
			fmt.Sprintf("the cohort's gap (%s) differs from the model's (%s): scoring censors as the cohort does",
				data.FormatDuration(c.Gap), data.FormatDuration(man.Gap.Micros())))
	}
	ds, err := data.Open(cfg.MEDS)
	if err != nil {
		return nil, nil, err
	}
	return c, ds, nil
}

// followUpLabels are the labels to score, every one with its time to event and no follow-up
// requirement: a --target cohort rebuilt from its rules with follow-up 0, each subject the
// model's cohort holds keeping its split there; a cohort from external labels as it is.
func followUpLabels(ctx context.Context, ds *data.Dataset, c *data.Cohort,
	r *eval.CensoringSensitivity) ([]data.Label, error) {
	if _, ok := c.Manifest.Params["targets"]; !ok {
		if err := c.RequireTimeToEvent(); err != nil {
			return nil, fmt.Errorf("censoring: %w", err)
		}
		return c.Labels, nil
	}
	cfg, err := data.CohortConfigFromParams(c.Manifest.Params)
	if err != nil {
		return nil, fmt.Errorf("censoring: cohort %s: %w", c.Dir, err)
	}
	r.Rebuilt, r.CohortFollowUp = true, data.FormatDuration(cfg.FollowUp)
	cfg.FollowUp = 0
	res, err := data.BuildCohort(ctx, ds, cfg)
	if err != nil {
		return nil, fmt.Errorf("censoring: rebuilding cohort %s with follow-up 0: %w", c.Dir, err)
	}
	split := make(map[int64]string, len(c.Labels))
	for _, l := range c.Labels {
		split[l.SubjectID] = l.Split
	}
	for i := range res.Labels {
		l := &res.Labels[i]
		if s, ok := split[l.SubjectID]; ok && s != l.Split {
			l.Split = s
			r.SplitFromCohort++
		}
	}
	return res.Labels, nil
}

// row is one scored label: its calibrated probability.
type row struct {
	label data.Label
	p     float64
}

// scoreRows scores the labels of the evaluated split on their censored histories, through
// scorer.ScoreCohort (as medseq predict does), with the model's calibration applied.
func scoreRows(ctx context.Context, cfg CensoringConfig, ds *data.Dataset, c *data.Cohort, labels []data.Label) ([]row,
	error) {
	var keep []data.Label
	for _, l := range labels {
		if l.Split == cfg.Split {
			keep = append(keep, l)
		}
	}
	sub := &data.Cohort{Dir: c.Dir, Labels: keep, Manifest: c.Manifest, Gap: c.Gap, Demographics: c.Demographics,
		TimeToEventColumns: true}
	out := make([]row, 0, len(keep))
	err := scorer.ScoreCohort(ctx, cfg.Scorer, ds, sub, nil, cfg.Batch, func(b []scorer.Scored) error {
		for _, x := range b {
			p := x.Result.Probability
			if cfg.Calibration != nil {
				p = cfg.Calibration.Apply(p)
			}
			out = append(out, row{label: x.Label, p: p})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("censoring: scoring: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].label.SubjectID < out[j].label.SubjectID })
	return out, nil
}
