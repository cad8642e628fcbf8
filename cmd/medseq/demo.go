package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/features"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/tokenize"
	"github.com/medseq/medseq/train"
)

// demoStages are the folders the demo writes under --out, in order.
const (
	demoMEDS      = "meds"
	demoCohort    = "cohort"
	demoTokenizer = "tokenizer"
	demoModels    = "models"
)

// runDemo runs the whole pipeline on the built-in synthetic data. Every capability adds its
// stage here.
func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "[--out DIR] [--subjects N] [--seed S] [--force] [--bert=false] [--pretrain] [--values]")
	out := fs.String("out", "out/demo", "folder for everything the demo writes")
	subjects := fs.Int("subjects", synth.DefaultSubjects, "synthetic subjects")
	seed := fs.Int64("seed", 1, "seed for the data, sampling and splits")
	force := fs.Bool("force", false, "replace the output of an earlier demo")
	withBERT := fs.Bool("bert", true, "train the BERT too (a few minutes on a 2-core CPU)")
	bertSteps := fs.Int("bert-max-steps", 0, "cap the BERT's training steps (0: epochs and early stopping decide)")
	withPretrain := fs.Bool("pretrain", false, "also pretrain a masked-language model and fine-tune it (train pretrain, then train classify --init)")
	withValues := fs.Bool("values", false, "let both models read numeric values (lab results): the tokenizer with --value-bins 10, XGBoost with --last-values")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *subjects < 100 {
		return usagef("flag --subjects: at least 100 for a cohort worth the name, got %d", *subjects)
	}
	start := time.Now()
	meds := filepath.Join(*out, demoMEDS)
	step := func(n int, what string) { fmt.Fprintf(e.stdout, "\n== %d. %s\n", n, what) }

	step(1, "synthetic primary-care EHR (medseq data synth)")
	s, err := synth.Generate(ctx, synth.Config{Out: meds, Subjects: *subjects, Seed: *seed, Force: *force, Logger: e.log})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %d subjects, %d events, %d distinct codes, %d diagnosed with type 2 diabetes in their record\n",
		meds, s.Subjects, s.Events, s.DistinctCodes, s.Diagnosed)

	step(2, "cohort: type 2 diabetes one year ahead, leak-free censoring, matched-age negatives (medseq data cohort)")
	co := &cohortOptions{meds: meds, out: filepath.Join(*out, demoCohort), force: *force, cfg: data.DefaultCohortConfig()}
	co.cfg.Targets = []string{"ICD10/E11", "SNOMED/44054006"}
	co.cfg.Seed = *seed
	res, oracle, err := buildCohort(ctx, e, co)
	if err != nil {
		return err
	}
	printCohortSummary(e.stdout, res.Report, co.out)
	printOracle(e.stdout, oracle)
	haveOracle := oracle.ok()

	step(3, "tokenizer: WordPiece over whole codes, counted on the censored training split (medseq tokenize build)")
	to := &tokenizeOptions{meds: meds, cohort: co.out, out: filepath.Join(*out, demoTokenizer), force: *force,
		build: tokenize.DefaultBuildConfig(), leak: tokenize.LeakConfig{Threshold: 0.95}}
	if *withValues {
		to.build.ValueBins = 10
	}
	tr, err := buildTokenizer(ctx, e, to)
	if err != nil {
		return err
	}
	printTokenizerSummary(e.stdout, tr)

	step(4, "XGBoost baseline: token counts, age and sex; libxgboost to train, leaves to serve (medseq train xgboost)")
	xcfg := train.XGBoostConfig{
		Inputs: train.Inputs{MEDS: meds, Cohort: co.out, Tokenizer: to.out},
		Out:    filepath.Join(*out, demoModels, "t2d-xgboost", "1"), Force: *force, Name: "t2d-xgboost",
		Params: xgb.DefaultParams(), Calibration: eval.CalibrationIsotonic,
	}
	xcfg.Params.Seed = *seed
	if *withValues {
		xcfg.Features = features.DefaultConfig()
		xcfg.Features.LastValue = true
	}
	xres, err := train.XGBoost(ctx, xcfg, e.log, e.stderr)
	if err != nil {
		return err
	}
	printXGBoostSummary(e.stdout, xres)
	if haveOracle {
		fmt.Fprintf(e.stdout, "  held_out AUROC     xgboost %.3f vs oracle %.3f (the best achievable on this cohort)\n", xres.AUROC[data.SplitHeldOut], oracle.HeldOut)
	}

	modelDirs := []string{xcfg.Out}
	if *withBERT {
		step(5, "BERT by direct classification, trained from scratch on the codes (medseq train classify)")
		bcfg := train.DefaultBERTClassifyConfig()
		bcfg.Inputs = train.Inputs{MEDS: meds, Cohort: co.out, Tokenizer: to.out}
		bcfg.Out = filepath.Join(*out, demoModels, "t2d-bert", "1")
		bcfg.Force, bcfg.Name, bcfg.Seed = *force, "t2d-bert", uint64(*seed)
		bcfg.MaxLen, bcfg.LR, bcfg.EvalEvery, bcfg.Epochs = 128, 1e-3, 50, 4
		bcfg.MaxSteps = *bertSteps
		if bcfg.MaxSteps > 0 && bcfg.MaxSteps < bcfg.EvalEvery {
			bcfg.EvalEvery = bcfg.MaxSteps
		}
		bres, err := train.BERTClassify(ctx, bcfg, e.log, e.stderr)
		if err != nil {
			return err
		}
		modelDirs = append(modelDirs, bcfg.Out)
		printClassifySummary(e.stdout, bres)
		var pres *train.BERTClassifyResult
		if *withPretrain {
			step(5, "BERT pretrained as a masked-language model, then fine-tuned (medseq train pretrain; train classify --init)")
			_, pres, err = demoPretrain(ctx, e, bcfg.Inputs, *out, *force, *seed, *bertSteps)
			if err != nil {
				return err
			}
			modelDirs = append(modelDirs, pres.Out)
		}
		fmt.Fprintf(e.stdout, "\n  %-22s %8s %8s\n", "tuning / held_out AUROC", "tuning", "held_out")
		fmt.Fprintf(e.stdout, "  %-22s %8.3f %8.3f\n", "XGBoost", xres.AUROC[data.SplitTuning], xres.AUROC[data.SplitHeldOut])
		fmt.Fprintf(e.stdout, "  %-22s %8.3f %8.3f\n", "BERT (direct)", bres.AUROC[data.SplitTuning], bres.AUROC[data.SplitHeldOut])
		if pres != nil {
			fmt.Fprintf(e.stdout, "  %-22s %8.3f %8.3f\n", "BERT (pretrained)", pres.AUROC[data.SplitTuning], pres.AUROC[data.SplitHeldOut])
		}
		if haveOracle {
			fmt.Fprintf(e.stdout, "  %-22s %8s %8.3f\n", "oracle", "", oracle.HeldOut)
		}
		d := bres.AUROC[data.SplitHeldOut] - xres.AUROC[data.SplitHeldOut]
		verdict := "within 0.03 of"
		switch {
		case d > 0:
			verdict = "better than"
		case d < -0.03:
			verdict = "more than 0.03 below"
		}
		fmt.Fprintf(e.stdout, "  held_out: the BERT (direct) is %s the XGBoost baseline (%+.3f AUROC; DeLong's test in the report)\n", verdict, d)
	}

	step(6, "evaluation report: the models side by side (medseq eval report)")
	rcfg := eval.ReportConfig{Models: modelDirs, Bootstrap: 1000, Seed: uint64(*seed), CohortDir: co.out, CohortMEDS: meds}
	if haveOracle {
		rcfg.OracleAUROC, rcfg.OracleNote = &oracle.HeldOut, fmt.Sprintf("held_out, %d labels", oracle.NHeldOut)
	}
	if _, _, err := writeEvalReport(e, rcfg, filepath.Join(*out, "report")); err != nil {
		return err
	}

	names := "t2d-xgboost"
	if *withBERT {
		names += ", t2d-bert (its calls are batched)"
	}
	fmt.Fprintf(e.stdout, "\nserve: medseq serve --models %s --addr 127.0.0.1:8500 --metrics-addr 127.0.0.1:9090\n  then: medseq predict --addr 127.0.0.1:8500 --name t2d-xgboost --codes \"ICD10/I10@2019-05-01 SNOMED/38341003@2020-02-03\" --birth-date 1961-04-12 --sex F --prediction-time 2021-01-01\n    (or birth and sex as events: --codes \"SEX//F MEDS_BIRTH@1961-04-12 ICD10/I10@2019-05-01 ...\")\n  models served: %s\n", filepath.Join(*out, demoModels), names)
	fmt.Fprintf(e.stdout, "\nscore offline: medseq predict --model %s --meds %s --cohort %s --split held_out --out held_out.parquet\n", xcfg.Out, meds, co.out)
	fmt.Fprintf(e.stdout, "\ndemo done in %.1fs; outputs under %s\n", time.Since(start).Seconds(), *out)
	return nil
}
