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
	"github.com/medseq/medseq/study"
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

// demoOptions are the flags of `medseq demo`.
type demoOptions struct {
	out                     string
	subjects                int
	seed                    int64
	force                   bool
	bert, pretrain, values  bool
	bertSteps               int
	meds, cohort, tokenizer string // the stages' folders under out
	xgboostModel, bertModel string
	// otherXGBoost is the second XGBoost variant: reading last values when the demo's
	// models read codes only, codes only when --values.
	otherXGBoost, otherXGBoostName string
}

// demoRun is the demo's state: its options and what each step hands to the next.
type demoRun struct {
	e             *env
	o             *demoOptions
	oracle        oracleResult
	xres          *train.XGBoostResult      // the XGBoost reading what the BERT reads
	xother        *train.XGBoostResult      // the other XGBoost variant (values or codes only)
	bres          *train.BERTClassifyResult // the direct BERT
	pres          *train.BERTClassifyResult // the pretrained, fine-tuned BERT
	modelDirs     []string                  // the models the report compares
	censoringFile string                    // the censoring-sensitivity JSON the report shows
}

// demoStep is one step of the demo: a numbered heading ("" for none) and what it does.
type demoStep struct {
	n     int
	title string
	run   func(ctx context.Context) error
	on    bool
}

func demoFlags(e *env, args []string) (*demoOptions, error) {
	fs := newFlags(e, "demo", "[--out DIR] [--subjects N] [--seed S] [--force] [--bert=false] [--pretrain] [--values]")
	o := &demoOptions{}
	fs.StringVar(&o.out, "out", "out/demo", "folder for everything the demo writes")
	fs.IntVar(&o.subjects, "subjects", synth.DefaultSubjects, "synthetic subjects")
	fs.Int64Var(&o.seed, "seed", 1, "seed for the data, sampling and splits")
	fs.BoolVar(&o.force, "force", false, "replace the output of an earlier demo")
	fs.BoolVar(&o.bert, "bert", true, "train the BERT too (a few minutes on a 2-core CPU)")
	fs.IntVar(&o.bertSteps, "bert-max-steps", 0, "cap the BERT's training steps (0: epochs and early stopping decide)")
	fs.BoolVar(&o.pretrain, "pretrain", false, "also pretrain a masked-language model and fine-tune it (train pretrain, "+
		"then train classify --init)")
	fs.BoolVar(&o.values, "values", false, "let both models read numeric values (lab results): the tokenizer with "+
		"--value-bins 10, XGBoost with --last-values")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if o.subjects < 100 {
		return nil, usagef("flag --subjects: at least 100 for a cohort worth the name, got %d", o.subjects)
	}
	o.meds, o.cohort = filepath.Join(o.out, demoMEDS), filepath.Join(o.out, demoCohort)
	o.tokenizer = filepath.Join(o.out, demoTokenizer)
	o.xgboostModel = filepath.Join(o.out, demoModels, "t2d-xgboost", "1")
	o.bertModel = filepath.Join(o.out, demoModels, "t2d-bert", "1")
	o.otherXGBoostName = "t2d-xgboost-values"
	if o.values {
		o.otherXGBoostName = "t2d-xgboost-codes"
	}
	o.otherXGBoost = filepath.Join(o.out, demoModels, o.otherXGBoostName, "1")
	return o, nil
}

// runDemo runs the whole pipeline on the built-in synthetic data, step by step. Every
// capability adds its step here.
func runDemo(ctx context.Context, e *env, args []string) error {
	o, err := demoFlags(e, args)
	if err != nil {
		return err
	}
	if !xgb.Available { // the demo trains the XGBoost baseline: say so before hours of data work
		return fmt.Errorf("demo: %w", xgb.ErrUnavailable)
	}
	start := time.Now()
	d := &demoRun{e: e, o: o}
	steps := []demoStep{
		{1, "synthetic primary-care EHR (medseq data synth)", d.synth, true},
		{2, "cohort: type 2 diabetes one year ahead, leak-free censoring, matched-age negatives " +
			"(medseq data cohort)", d.cohort, true},
		{3, "tokenizer: WordPiece over whole codes, counted on the censored training split " +
			"(medseq tokenize build)", d.tokenizer, true},
		{4, "XGBoost baseline: token counts, age and sex; libxgboost to train, leaves to serve " +
			"(medseq train xgboost)", d.xgboost, true},
		{4, d.otherXGBoostTitle(), d.xgboostOther, true},
		{5, "BERT by direct classification, trained from scratch on the codes (medseq train classify)", d.bertDirect, o.bert},
		{5, "BERT pretrained as a masked-language model, then fine-tuned " +
			"(medseq train pretrain; train classify --init)", d.bertPretrained,
			o.bert && o.pretrain},
		{0, "", d.compare, true},
		{6, "censoring sensitivity: the baseline's numbers as the follow-up rule changes (medseq eval censoring)",
			d.censoring,
			true},
		{7, "evaluation report: the models side by side (medseq eval report)", d.report, true},
	}
	for _, s := range steps {
		if !s.on {
			continue
		}
		if s.title != "" {
			fmt.Fprintf(e.stdout, "\n== %d. %s\n", s.n, s.title)
		}
		if err := s.run(ctx); err != nil {
			return err
		}
	}
	d.printNext()
	fmt.Fprintf(e.stdout, "\ndemo done in %.1fs; outputs under %s\n", time.Since(start).Seconds(), o.out)
	return nil
}

func (d *demoRun) synth(ctx context.Context) error {
	o := d.o
	s, err := synth.Generate(ctx, synth.Config{Out: o.meds, Subjects: o.subjects, Seed: o.seed, Force: o.force,
		Logger: d.e.log})
	if err != nil {
		return err
	}
	fmt.Fprintf(d.e.stdout, "%s: %d subjects, %d events, %d distinct codes, "+
		"%d diagnosed with type 2 diabetes in their record\n",
		o.meds, s.Subjects, s.Events, s.DistinctCodes, s.Diagnosed)
	return nil
}

func (d *demoRun) cohort(ctx context.Context) error {
	co := &cohortOptions{meds: d.o.meds, out: d.o.cohort, force: d.o.force, cfg: data.DefaultCohortConfig()}
	co.cfg.Targets = []string{"ICD10/E11", "SNOMED/44054006"}
	co.cfg.Seed = d.o.seed
	res, oracle, err := buildCohort(ctx, d.e, co)
	if err != nil {
		return err
	}
	d.oracle = oracle
	printCohortSummary(d.e.stdout, res.Report, co.out)
	printOracle(d.e.stdout, oracle)
	return nil
}

func (d *demoRun) tokenizer(ctx context.Context) error {
	o := d.o
	cfg := tokenize.FromCohortConfig{MEDS: o.meds, Cohort: o.cohort, Out: o.tokenizer, Force: o.force,
		Build: tokenize.DefaultBuildConfig(), Leak: tokenize.LeakConfig{Threshold: 0.95}, Log: d.e.log}
	if o.values {
		cfg.Build.ValueBins = 10
	}
	res, err := tokenize.BuildFromCohort(ctx, cfg)
	if err != nil {
		return err
	}
	printTokenizerSummary(d.e.stdout, res)
	return nil
}

// inputs are the artifacts every training step reads.
func (d *demoRun) inputs() train.Inputs {
	return train.Inputs{MEDS: d.o.meds, Cohort: d.o.cohort, Tokenizer: d.o.tokenizer}
}

// xgboost trains the baseline that reads what the BERT reads: codes, or last values too with
// --values.
func (d *demoRun) xgboost(ctx context.Context) error {
	res, err := d.trainXGBoost(ctx, d.o.xgboostModel, "t2d-xgboost", d.o.values)
	if err != nil {
		return err
	}
	d.xres = res
	if d.oracle.OK() {
		fmt.Fprintf(d.e.stdout, "  held_out AUROC     xgboost %.3f vs oracle %.3f (the best achievable on this cohort)\n",
			res.AUROC[data.SplitHeldOut], d.oracle.HeldOut)
	}
	return nil
}

// otherXGBoostTitle is the heading of the second XGBoost variant's step.
func (d *demoRun) otherXGBoostTitle() string {
	if d.o.values {
		return "the same XGBoost on codes only, without the numeric values (medseq train xgboost)"
	}
	return "the same XGBoost reading numeric values too: each lab's last value before the prediction time " +
		"(medseq train xgboost --last-values)"
}

// xgboostOther trains the other XGBoost variant, so the demo shows what the values are worth.
func (d *demoRun) xgboostOther(ctx context.Context) error {
	res, err := d.trainXGBoost(ctx, d.o.otherXGBoost, d.o.otherXGBoostName, !d.o.values)
	d.xother = res
	return err
}

// trainXGBoost trains one XGBoost variant with the defaults, isotonic calibration and, with
// lastValues, the last value of each valued code among the features.
func (d *demoRun) trainXGBoost(ctx context.Context, out, name string, lastValues bool) (*train.XGBoostResult, error) {
	o := d.o
	cfg := train.XGBoostConfig{Inputs: d.inputs(), Out: out, Force: o.force, Name: name,
		Params: xgb.DefaultParams(), Calibration: eval.CalibrationIsotonic}
	cfg.Params.Seed = o.seed
	if lastValues {
		cfg.Features = features.DefaultConfig()
		cfg.Features.LastValue = true
	}
	res, err := train.XGBoost(ctx, cfg, d.e.log, d.e.stderr)
	if err != nil {
		return nil, err
	}
	d.modelDirs = append(d.modelDirs, cfg.Out)
	printXGBoostSummary(d.e.stdout, res)
	return res, nil
}

func (d *demoRun) bertDirect(ctx context.Context) error {
	o := d.o
	cfg := train.DefaultBERTClassifyConfig()
	cfg.Inputs, cfg.Out = d.inputs(), o.bertModel
	cfg.Force, cfg.Name, cfg.Seed = o.force, "t2d-bert", uint64(o.seed)
	cfg.MaxLen = 128
	demoSchedule(&cfg, o.bertSteps)
	res, err := train.BERTClassify(ctx, cfg, d.e.log, d.e.stderr)
	if err != nil {
		return err
	}
	d.bres, d.modelDirs = res, append(d.modelDirs, cfg.Out)
	printClassifySummary(d.e.stdout, res)
	return nil
}

// demoSchedule lets a demo classifier choose its schedule from its cohort's size, as `train
// classify` does with no schedule flags; with --bert-max-steps the steps are capped and the
// tuning split is read every 50 steps (or at the cap) instead of every epoch.
func demoSchedule(cfg *train.BERTClassifyConfig, maxSteps int) {
	cfg.Auto = train.AllAuto()
	if maxSteps > 0 {
		cfg.Auto.Epochs, cfg.Auto.EvalEvery = false, false
		cfg.MaxSteps, cfg.EvalEvery = maxSteps, min(50, maxSteps)
	}
}

func (d *demoRun) bertPretrained(ctx context.Context) error {
	_, res, err := demoPretrain(ctx, d.e, d.inputs(), d.o.out, d.o.force, d.o.seed, d.o.bertSteps)
	if err != nil {
		return err
	}
	d.pres, d.modelDirs = res, append(d.modelDirs, res.Out)
	return nil
}

// compare prints the models' tuning and held_out AUROCs side by side and, with a BERT, the
// verdict on the direct BERT against the XGBoost reading the same inputs.
func (d *demoRun) compare(context.Context) error {
	w := d.e.stdout
	codes, values := d.xres, d.xother
	if d.o.values {
		codes, values = d.xother, d.xres
	}
	fmt.Fprintf(w, "\n  %-22s %8s %8s\n", "tuning / held_out AUROC", "tuning", "held_out")
	row := func(name string, auroc map[string]float64) {
		fmt.Fprintf(w, "  %-22s %8.3f %8.3f\n", name, auroc[data.SplitTuning], auroc[data.SplitHeldOut])
	}
	row("XGBoost (codes)", codes.AUROC)
	row("XGBoost (last values)", values.AUROC)
	if d.bres != nil {
		row("BERT (direct)", d.bres.AUROC)
	}
	if d.pres != nil {
		row("BERT (pretrained)", d.pres.AUROC)
	}
	if d.oracle.OK() {
		fmt.Fprintf(w, "  %-22s %8s %8.3f\n", "oracle", "", d.oracle.HeldOut)
	}
	if d.bres == nil {
		return nil
	}
	diff := d.bres.AUROC[data.SplitHeldOut] - d.xres.AUROC[data.SplitHeldOut]
	verdict := "within 0.03 of"
	switch {
	case diff > 0:
		verdict = "better than"
	case diff < -0.03:
		verdict = "more than 0.03 below"
	}
	fmt.Fprintf(w, "  held_out: the BERT (direct) is %s the XGBoost baseline reading the same %s "+
		"(%+.3f AUROC; DeLong's test in the report)\n", verdict, d.inputsRead(), diff)
	return nil
}

// inputsRead says what the BERT and the baseline XGBoost read.
func (d *demoRun) inputsRead() string {
	if d.o.values {
		return "codes and values"
	}
	return "codes"
}

// censoring runs eval censoring on the XGBoost baseline and writes censoring.json for the report.
func (d *demoRun) censoring(ctx context.Context) error {
	o := d.o
	cfg := study.CensoringConfig{MEDS: o.meds, Cohort: o.cohort, Model: o.xgboostModel, Bootstrap: 1000,
		Seed: uint64(o.seed), Logger: d.e.log}
	reg, _, err := (&scoringDevice{device: "cpu"}).registry()
	if err != nil {
		return err
	}
	r, err := censoringOf(ctx, reg, cfg)
	if err != nil {
		return err
	}
	d.censoringFile = filepath.Join(o.out, "censoring.json")
	if err := eval.WriteCensoringSensitivity(d.censoringFile, r); err != nil {
		return err
	}
	return study.WriteCensoringText(d.e.stdout, r)
}

func (d *demoRun) report(context.Context) error {
	o := d.o
	cfg := eval.ReportConfig{Models: d.modelDirs, Bootstrap: 1000, Seed: uint64(o.seed), CohortDir: o.cohort,
		CohortMEDS: o.meds, Censoring: d.censoringFile}
	if d.oracle.OK() {
		cfg.OracleAUROC, cfg.OracleNote = &d.oracle.HeldOut, fmt.Sprintf("held_out, %d labels", d.oracle.NHeldOut)
	}
	_, _, err := writeEvalReport(d.e, cfg, filepath.Join(o.out, "report"))
	return err
}

// printNext prints how to serve the demo's models and score a cohort offline.
func (d *demoRun) printNext() {
	o := d.o
	names := "t2d-xgboost, " + o.otherXGBoostName
	if o.bert {
		names += ", t2d-bert (its calls are batched)"
	}
	fmt.Fprintf(d.e.stdout, "\nserve: medseq serve --models %s --addr 127.0.0.1:8500 --metrics-addr 127.0.0.1:9090\n"+
		"  then: medseq predict --addr 127.0.0.1:8500 --name t2d-xgboost --codes \"ICD10/I10@2019-05-01 "+
		"SNOMED/38341003@2020-02-03\" "+
		"--birth-date 1961-04-12 --sex F --prediction-time 2021-01-01\n"+
		"    (or birth and sex as events: --codes \"SEX//F MEDS_BIRTH@1961-04-12 ICD10/I10@2019-05-01 ...\")\n"+
		"  models served: %s\n", filepath.Join(o.out, demoModels), names)
	fmt.Fprintf(d.e.stdout, "\nscore offline: medseq predict --model %s --meds %s --cohort %s --split held_out --out "+
		"held_out.parquet\n",
		o.xgboostModel, o.meds, o.cohort)
}
