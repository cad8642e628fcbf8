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
	"github.com/medseq/medseq/study"
)

// censoringOptions are the flags of `medseq eval censoring`.
type censoringOptions struct {
	cfg   study.CensoringConfig
	out   string
	force bool
	sd    scoringDevice
}

func censoringFlags(e *env, args []string) (*censoringOptions, error) {
	fs := newFlags(e, "eval censoring", "--meds DIR --cohort DIR --model MODELDIR [--out FILE.json]")
	o := &censoringOptions{}
	c := &o.cfg
	fs.StringVar(&c.MEDS, "meds", "", "MEDS dataset folder the cohort was built from")
	fs.StringVar(&c.Cohort, "cohort", "", "the model's cohort folder: rebuilt from its rules with follow-up 0")
	fs.StringVar(&c.Model, "model", "", "model version folder (train xgboost / train classify)")
	fs.StringVar(&o.out, "out", "", "also write the table as JSON here (eval report reads it)")
	fs.BoolVar(&o.force, "force", false, "replace --out if it exists")
	var followUps []string
	for _, f := range study.DefaultFollowUps() {
		followUps = append(followUps, data.FormatDuration(f))
	}
	listVar(fs, &followUps, "follow-ups", followUps, "follow-up requirements of negatives compared (0 is always the "+
		"reference)")
	fs.StringVar(&c.Split, "split", data.SplitHeldOut, "the split evaluated")
	fs.IntVar(&c.Bootstrap, "bootstrap", 1000, "bootstrap resamples of subjects for the AUROC intervals (0: none)")
	fs.Uint64Var(&c.Seed, "seed", 1, "bootstrap seed")
	fs.IntVar(&c.Batch, "batch", 512, "labels scored per batch")
	fs.BoolVar(&c.AllowOtherCohort, "allow-other-cohort", false, "evaluate a cohort the model was not trained on")
	o.sd.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("meds", c.MEDS, "cohort", c.Cohort, "model", c.Model); err != nil {
		return nil, err
	}
	for _, f := range followUps {
		d, err := data.ParseDuration(f)
		if err != nil {
			return nil, usagef("flag --follow-ups: %v", err)
		}
		c.FollowUps = append(c.FollowUps, d)
	}
	if c.Bootstrap < 0 || c.Batch < 1 {
		return nil, usagef("flags --bootstrap and --batch: must be at least 0 and 1")
	}
	if o.out != "" && !strings.EqualFold(filepath.Ext(o.out), ".json") {
		return nil, usagef("flag --out: %q must end in .json", o.out)
	}
	return o, nil
}

// runEvalCensoring is eval censoring: the model's numbers as the cohort's follow-up
// requirement and the treatment of censored negatives change (study.Censoring).
func runEvalCensoring(ctx context.Context, e *env, args []string) error {
	o, err := censoringFlags(e, args)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.out); o.out != "" && err == nil && !o.force {
		return fmt.Errorf("%s already exists (pass --force to replace it)", o.out)
	}
	reg, _, err := o.sd.registry()
	if err != nil {
		return err
	}
	o.cfg.Logger = e.log
	r, err := censoringOf(ctx, reg, o.cfg)
	if err != nil {
		return err
	}
	if o.out != "" {
		if err := eval.WriteCensoringSensitivity(o.out, r); err != nil {
			return err
		}
	}
	if err := study.WriteCensoringText(e.stdout, r); err != nil {
		return err
	}
	if o.out != "" {
		fmt.Fprintf(e.stdout, "  written: %s\n", o.out)
	}
	return nil
}

// censoringOf verifies, loads and calibrates cfg.Model as predict does (nothing of the folder is
// read before it is verified against its manifest), then runs study.Censoring.
func censoringOf(ctx context.Context, reg *scorer.Registry, cfg study.CensoringConfig) (*eval.CensoringSensitivity,
	error) {
	if _, err := modelrepo.Verify(cfg.Model); err != nil {
		return nil, err
	}
	var err error
	if cfg.Scorer, err = reg.Load(cfg.Model); err != nil {
		return nil, err
	}
	if cfg.Calibration, err = modelrepo.ReadCalibration(cfg.Model); err != nil {
		return nil, err
	}
	return study.Censoring(ctx, cfg)
}
