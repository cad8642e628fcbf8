package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/train"
)

// bertModelFlags registers the model-shape flags.
func bertModelFlags(fs *flag.FlagSet, m *train.BERTModel) {
	fs.StringVar(&m.Config, "config", m.Config, "model size: tiny, small or base")
	fs.IntVar(&m.Hidden, "hidden", 0, "hidden size (overrides --config; the FFN becomes 4x unless --intermediate)")
	fs.IntVar(&m.Layers, "layers", 0, "transformer layers (overrides --config)")
	fs.IntVar(&m.Heads, "heads", 0, "attention heads (overrides --config)")
	fs.IntVar(&m.Intermediate, "intermediate", 0, "feed-forward size (overrides --config)")
	fs.BoolVar(&m.AgeEmbeddings, "age-embeddings", false, "add embeddings of each token's age in years (BEHRT)")
	fs.BoolVar(&m.TimeEmbeddings, "time-embeddings", false, "add embeddings of how long before the prediction time each "+
		"event happened (log2 buckets of days)")
	fs.IntVar(&m.MaxLen, "max-len", 0, "tokens per sequence with [CLS] and [SEP] (0: the tokenizer's); older codes are "+
		"dropped")
	fs.Float64Var(&m.Dropout, "dropout", 0.1, "dropout on hidden states and attention probabilities")
}

// bertTrainingFlags registers the optimisation, evaluation, device and checkpoint flags.
func bertTrainingFlags(fs *flag.FlagSet, t *train.BERTTraining) {
	bertStepFlags(fs, t)
	fs.IntVar(&t.OverfitK, "overfit-warn", t.OverfitK, "warn after N evaluations of falling training loss and rising "+
		"validation loss (0: never)")
	fs.Uint64Var(&t.Seed, "seed", t.Seed, "random seed (initialisation, batch order, masking, dropout)")
	fs.IntVar(&t.CheckpointEvery, "checkpoint-every", 0, "write a checkpoint (weights, optimizer state, early-stopping "+
		"state, metrics) to OUT.work/ every N steps (0: never)")
	fs.BoolVar(&t.Resume, "resume", false, "continue from the newest checkpoint in OUT.work/ (ends exactly where an "+
		"unbroken run ends)")
}

// bertStepFlags registers the optimisation, evaluation and device flags: those of every BERT
// fit, also eval curve's (which has its own --seed and no checkpoints).
func bertStepFlags(fs *flag.FlagSet, t *train.BERTTraining) {
	fs.IntVar(&t.BatchSize, "batch-size", t.BatchSize, "sequences per step")
	fs.Float64Var(&t.LR, "lr", t.LR, "peak learning rate (AdamW)")
	fs.Float64Var(&t.Warmup, "warmup", t.Warmup, "warmup steps, or a fraction of all steps when below 1; then linear "+
		"decay to 0")
	fs.Float64Var(&t.WeightDecay, "weight-decay", t.WeightDecay, "AdamW weight decay (dense weights only; never "+
		"LayerNorm, biases or embeddings)")
	fs.Float64Var(&t.Clip, "clip", t.Clip, "clip the gradients' global norm to this (0: off)")
	fs.Float64Var(&t.Epochs, "epochs", t.Epochs, "passes over the training split (0: --max-steps decides; --max-steps "+
		"alone ignores the default; with both given, the smaller wins)")
	fs.IntVar(&t.MaxSteps, "max-steps", 0, "at most this many training steps (0: --epochs decide; with both, the smaller "+
		"wins)")
	fs.IntVar(&t.EvalEvery, "eval-every", t.EvalEvery, "evaluate on the tuning split every N steps")
	fs.IntVar(&t.Patience, "patience", t.Patience, "stop after N evaluations without a better validation loss (0: never)")
	fs.StringVar(&t.Device, "device", t.Device, "cpu, gpu (an NVIDIA GPU through XLA; build with -tags xla) or auto")
	fs.StringVar(&t.PJRTPlugin, "pjrt-plugin", "", "XLA CUDA PJRT plugin for --device gpu (default: searched, e.g. "+
		"jax_plugins/xla_cuda*/xla_cuda_plugin.so)")
	fs.StringVar(&t.DType, "dtype", "float32", "float32 (exact float32, also on a GPU); tf32 (float32 weights, matrix "+
		"products on TF32 tensor cores) on GPUs of compute capability 8.0 or later; bfloat16 (every matrix product and its "+
		"gradients in bfloat16, float32 master weights and optimizer state) on such GPUs; float16 (the same with dynamic "+
		"loss scaling) on GPUs of compute capability 7.0 or later such as the V100; bfloat16 and float16 also on --device "+
		"cpu for testing (slower there); or auto: bfloat16 on compute capability 8.0 or later, float16 on 7.x, float32 on "+
		"the CPU")
	fs.StringVar(&t.Attention, "attention", "auto", "plain (attention scores materialised, dropout on the attention "+
		"probabilities), fused (gomlx attention.Core: cuDNN flash attention on a GPU in bfloat16/float16; no "+
		"attention-probability dropout, padding as lengths) or auto (fused on a GPU in bfloat16/float16, plain elsewhere)")
}

// checkBERTFlags validates the shared flags.
func checkBERTFlags(m *train.BERTModel, t *train.BERTTraining) error {
	if m.Config != "" {
		if _, err := bert.Named(m.Config, 10, 10); err != nil {
			return usagef("flag --config: %v", err)
		}
	}
	switch {
	case t.BatchSize < 1:
		return usagef("flag --batch-size: must be at least 1")
	case t.LR <= 0:
		return usagef("flag --lr: must be positive")
	case m.Dropout >= 1 || (m.Dropout < 0 && m.Dropout != -1):
		return usagef("flag --dropout: must be in [0, 1)")
	case t.Warmup < 0 || t.WeightDecay < 0 || t.Clip < 0:
		return usagef("flags --warmup, --weight-decay and --clip must not be negative")
	case t.Epochs < 0 || t.MaxSteps < 0 || (t.Epochs == 0 && t.MaxSteps == 0):
		return usagef("flag --epochs or --max-steps: one must be positive")
	case t.EvalEvery < 1:
		return usagef("flag --eval-every: must be at least 1")
	case t.CheckpointEvery < 0:
		return usagef("flag --checkpoint-every: must not be negative")
	case m.MaxLen != 0 && m.MaxLen < 3:
		return usagef("flag --max-len: at least 3, or 0 for the tokenizer's")
	case t.Device != "cpu" && t.Device != "gpu" && t.Device != "auto":
		return usagef("flag --device: %q is not cpu, gpu or auto", t.Device)
	}
	return nil
}

// maxStepsAlone lets --max-steps given without --epochs decide alone (the default epochs
// would otherwise cap it); with both given, the smaller wins.
func maxStepsAlone(set map[string]bool, t *train.BERTTraining) {
	if set["max-steps"] && !set["epochs"] && t.MaxSteps > 0 {
		t.Epochs = 0
	}
}

func flagsSet(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

func trainClassifyFlags(e *env, args []string) (*train.BERTClassifyConfig, error) {
	fs := newFlags(e, "train classify", "--meds DIR --cohort DIR --tokenizer DIR --out MODELDIR [--init PRETRAINDIR] "+
		"[flags]")
	cfg := train.DefaultBERTClassifyConfig()
	fs.StringVar(&cfg.MEDS, "meds", "", "MEDS dataset folder")
	fs.StringVar(&cfg.Cohort, "cohort", "", "cohort folder (medseq data cohort)")
	fs.StringVar(&cfg.Tokenizer, "tokenizer", "", "tokenizer folder (medseq tokenize build)")
	fs.StringVar(&cfg.Out, "out", "", "model version folder to write, e.g. models/t2d-bert/1")
	fs.StringVar(&cfg.Name, "name", "", "model name recorded in the manifest")
	fs.StringVar(&cfg.Init, "init", "", "start from the encoder of this `medseq train pretrain` run folder (heads new; "+
		"the model flags default to its config)")
	fs.BoolVar(&cfg.Force, "force", false, "replace an existing output folder (and discard earlier checkpoints)")
	fs.BoolVar(&cfg.AllowMismatch, "allow-mismatch", false, "accept inputs from different runs")
	fs.StringVar(&cfg.Calibration, "calibration", eval.CalibrationIsotonic, "calibration fitted on the tuning split: "+
		"isotonic, platt or identity")
	operatingPointFlag(fs, &cfg.Threshold)
	bertModelFlags(fs, &cfg.BERTModel)
	bertTrainingFlags(fs, &cfg.BERTTraining)
	posWeight := classifyFlags(fs, &cfg)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("meds", cfg.MEDS, "cohort", cfg.Cohort, "tokenizer", cfg.Tokenizer, "out", cfg.Out); err != nil {
		return nil, err
	}
	if err := checkCalibration(cfg.Calibration); err != nil {
		return nil, err
	}
	if err := finishClassifyFlags(fs, &cfg, *posWeight); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// finishClassifyFlags checks a classification's flags after parsing (train classify's and
// eval curve's BERT fits): --max-steps alone, the pretrained model's shape, dropout and pooling
// with --init unless a flag asks otherwise, and the schedule's settings left to the run.
func finishClassifyFlags(fs *flag.FlagSet, cfg *train.BERTClassifyConfig, posWeight string) error {
	set := flagsSet(fs)
	maxStepsAlone(set, &cfg.BERTTraining)
	if cfg.Init != "" {
		if !set["config"] {
			cfg.Config = ""
		}
		if !set["dropout"] {
			cfg.Dropout = -1
		}
	}
	if err := checkBERTFlags(&cfg.BERTModel, &cfg.BERTTraining); err != nil {
		return err
	}
	if cfg.Init != "" && !set["pooling"] {
		cfg.Pooling = "" // the pretrained model's ([CLS] from a pretraining run)
	}
	return checkClassifyFlags(cfg, set, posWeight)
}

// classifyFlags registers the flags of classification alone (--pos-weight's is returned), and
// tells the shared training flags' help that the schedule is chosen from the cohort when they
// are left out.
func classifyFlags(fs *flag.FlagSet, cfg *train.BERTClassifyConfig) *string {
	fs.StringVar(&cfg.Pooling, "pooling", bert.PoolingCLS, "what the classifier reads: cls (the [CLS] token, as "+
		"transformers' BertForSequenceClassification) or mean (the mean over the non-padding tokens; transformers cannot "+
		"load it as such, the bert/ folder says so)")
	fs.StringVar(&cfg.EarlyStopping, "early-stopping-metric", train.StopOnLoss, "what early stopping and the kept "+
		"weights follow on the tuning split: loss or auroc (noisy on a few hundred tuning labels: it kept epochs that had "+
		"memorised the training split)")
	auto := "; auto: chosen from the number of training labels and the model's size (logged, and in the manifest)"
	for name, usage := range map[string]string{
		"epochs": "passes over the training split (an upper bound: early stopping ends sooner; with --max-steps alone, " +
			"the steps decide)",
		"lr":     "peak learning rate (AdamW)",
		"warmup": "warmup steps, or a fraction of all steps when below 1; then linear decay to 0",
		"patience": "stop after N epochs without a better --early-stopping-metric on the tuning split, keeping the best " +
			"weights (0: never)",
		"eval-every": "evaluate on the tuning split every N steps",
	} {
		f := fs.Lookup(name)
		f.DefValue, f.Usage = "auto", usage+auto
		if name == "eval-every" {
			f.DefValue, f.Usage = "once per epoch", usage
		}
	}
	return fs.String("pos-weight", "auto", "weight of the positives in the loss: auto (negatives/positives on the "+
		"training split), none, or a number; the calibration is fitted on the tuning split afterwards either way")
}

// checkClassifyFlags checks the flags of classification and marks the schedule's settings
// left unset as chosen by the run.
func checkClassifyFlags(cfg *train.BERTClassifyConfig, set map[string]bool, posWeight string) error {
	cfg.Auto = train.AutoSettings{Epochs: !set["epochs"] && !set["max-steps"], LR: !set["lr"], Warmup: !set["warmup"],
		Patience: !set["patience"], EvalEvery: !set["eval-every"]}
	switch {
	case cfg.Pooling != "" && cfg.Pooling != bert.PoolingCLS && cfg.Pooling != bert.PoolingMean:
		return usagef("flag --pooling: %q is not cls or mean", cfg.Pooling)
	case cfg.EarlyStopping != train.StopOnAUROC && cfg.EarlyStopping != train.StopOnLoss:
		return usagef("flag --early-stopping-metric: %q is not auroc or loss", cfg.EarlyStopping)
	case cfg.Patience < 0:
		return usagef("flag --patience: must not be negative")
	}
	switch posWeight {
	case "auto":
		cfg.PosWeight = 0
	case "none":
		cfg.PosWeight = 1
	default:
		w, err := strconv.ParseFloat(posWeight, 64)
		if err != nil || !(w > 0) || math.IsInf(w, 0) {
			return usagef("flag --pos-weight: %q is not auto, none or a positive number", posWeight)
		}
		cfg.PosWeight = w
	}
	return nil
}

func trainPretrainFlags(e *env, args []string) (*train.BERTPretrainConfig, error) {
	fs := newFlags(e, "train pretrain", "--meds DIR --cohort DIR --tokenizer DIR --out RUNDIR [flags]")
	cfg := train.DefaultBERTPretrainConfig()
	fs.StringVar(&cfg.MEDS, "meds", "", "MEDS dataset folder")
	fs.StringVar(&cfg.Cohort, "cohort", "", "cohort folder (medseq data cohort): its splits decide whose records are "+
		"trained on (--corpus records), or its censored training split is the corpus (--corpus cohort)")
	fs.StringVar(&cfg.Tokenizer, "tokenizer", "", "tokenizer folder (medseq tokenize build)")
	fs.StringVar(&cfg.Out, "out", "", "run folder to write (for train classify --init), e.g. runs/mlm-1")
	fs.StringVar(&cfg.Name, "name", "", "name recorded in the manifest")
	fs.BoolVar(&cfg.Force, "force", false, "replace an existing output folder (and discard earlier checkpoints)")
	fs.BoolVar(&cfg.AllowMismatch, "allow-mismatch", false, "accept inputs from different runs")
	fs.Float64Var(&cfg.MaskRate, "mask-rate", cfg.MaskRate, "share of non-special tokens masked per sequence (80% "+
		"[MASK], 10% random, 10% kept)")
	corpusFlags(fs, &cfg.Corpus)
	bertModelFlags(fs, &cfg.BERTModel)
	bertTrainingFlags(fs, &cfg.BERTTraining)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("meds", cfg.MEDS, "cohort", cfg.Cohort, "tokenizer", cfg.Tokenizer, "out", cfg.Out); err != nil {
		return nil, err
	}
	maxStepsAlone(flagsSet(fs), &cfg.BERTTraining)
	if err := checkBERTFlags(&cfg.BERTModel, &cfg.BERTTraining); err != nil {
		return nil, err
	}
	if cfg.MaskRate <= 0 || cfg.MaskRate >= 1 {
		return nil, usagef("flag --mask-rate: must be in (0, 1)")
	}
	if err := checkCorpusFlags(&cfg.Corpus); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// corpusFlags registers what train pretrain learns from.
func corpusFlags(fs *flag.FlagSet, c *train.CorpusConfig) {
	fs.StringVar(&c.Kind, "corpus", c.Kind, "records: the whole records of every training subject of the dataset (the "+
		"cohort's split, else the dataset's subject_splits), cut into windows of --max-len tokens; cohort: the cohort's "+
		"censored training sequences")
	fs.StringVar(&c.Until, "until", "", "records: only events before this date (YYYY-MM-DD or RFC 3339)")
	fs.IntVar(&c.Stride, "stride", 0, "records: tokens consecutive windows of a record share (0: none)")
	fs.IntVar(&c.ShuffleBuffer, "shuffle-buffer", c.ShuffleBuffer, "records: windows the training stream shuffles among "+
		"(memory: this many windows)")
	fs.IntVar(&c.ValWindows, "val-windows", c.ValWindows, "records: at most this many tuning windows for the MLM "+
		"validation (a uniform sample beyond)")
}

// checkCorpusFlags validates the corpus flags.
func checkCorpusFlags(c *train.CorpusConfig) error {
	switch {
	case c.Kind != train.CorpusRecords && c.Kind != train.CorpusCohort:
		return usagef("flag --corpus: %q is not records or cohort", c.Kind)
	case c.Kind == train.CorpusCohort && (c.Until != "" || c.Stride != 0):
		return usagef("flags --until and --stride cut records: they need --corpus records")
	case c.Stride < 0:
		return usagef("flag --stride: must not be negative")
	case c.ShuffleBuffer < 1:
		return usagef("flag --shuffle-buffer: must be at least 1")
	case c.ValWindows < 1:
		return usagef("flag --val-windows: must be at least 1")
	}
	if _, err := data.ParseUntil(c.Until); err != nil {
		return usagef("flag --until: %v", err)
	}
	return nil
}

// runTrainPretrain is `medseq train pretrain`.
func runTrainPretrain(ctx context.Context, e *env, args []string) error {
	cfg, err := trainPretrainFlags(e, args)
	if err != nil {
		return err
	}
	res, err := train.BERTPretrain(ctx, *cfg, e.log, e.stderr)
	if err != nil {
		return err
	}
	printPretrainSummary(e.stdout, res)
	return nil
}

func printPretrainSummary(w io.Writer, r *train.BERTPretrainResult) {
	c := r.Config
	fmt.Fprintf(w, "bert masked-language model %s (run %s)\n", r.Out, r.RunID)
	fmt.Fprintf(w, "  model              hidden %d, layers %d, heads %d, FFN %d, max len %d, %d parameters\n",
		c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings, r.Params)
	printCorpus(w, r.Corpus)
	fmt.Fprintf(w, "  steps              %d (best %d; %s)\n", r.Steps, r.BestStep, r.Stopped)
	fmt.Fprintf(w, "  tuning MLM         loss %.4f, masked-token accuracy %.3f\n", r.BestLoss, r.BestAcc)
	fmt.Fprintf(w, "  speed              %.1f steps/s, %.0f tokens/s (%.1fs in all)\n", r.StepsPerS, r.TokensPerS,
		r.Elapsed.Seconds())
	if r.Overfit {
		fmt.Fprintln(w, "  warning            training loss fell while validation loss rose: overfitting")
	}
	fmt.Fprintf(w, "  fine-tune          medseq train classify --init %s ...\n", r.Out)
}

// printCorpus prints what a pretraining run learned from.
func printCorpus(w io.Writer, c modelrepo.Corpus) {
	if c.Kind == train.CorpusCohort {
		fmt.Fprintf(w, "  corpus             cohort: %d censored training sequences of %d subjects (%d tokens), %d tuning\n",
			c.Windows, c.Subjects, c.Tokens, c.TuningWindows)
		return
	}
	until := ""
	if c.Until != "" {
		until = ", events before " + c.Until
	}
	fmt.Fprintf(w, "  corpus             records: %d training subjects, %d windows of up to %d tokens (%d tokens%s)\n",
		c.Subjects, c.Windows, c.MaxLen, c.Tokens, until)
	fmt.Fprintf(w, "  validation         %d windows of %d tuning subjects; left out: %d held-out subjects, %d without a "+
		"split\n",
		c.TuningWindows, c.TuningSubjects, c.HeldOutSubjects, c.Unassigned)
}

// demoPretrain is the demo's --pretrain stage: a masked-language model over the training
// subjects' whole records (the run folder OUT/runs/t2d-bert-mlm, outside models/ since it is
// not servable), then a classifier fine-tuned from it (OUT/models/t2d-bert-pretrained/1), with
// maxSteps capping each (0: the classifier's epochs and early stopping decide, and the
// pretraining takes demoPretrainSteps).
// demoPretrainSteps are the demo's pretraining steps: what four epochs of the cohort's
// censored sequences took (about 290 on the demo's data), now over about half an epoch of the
// 18,000 windows of the training records, so the demo takes as long as it did (about 12 minutes
// on a shared 2-core CPU).
const demoPretrainSteps = 300

func demoPretrain(ctx context.Context, e *env, in train.Inputs, out string, force bool, seed int64,
	maxSteps int) (*train.BERTPretrainResult, *train.BERTClassifyResult, error) {
	models := filepath.Join(out, "models")
	pcfg := train.DefaultBERTPretrainConfig()
	pcfg.Inputs, pcfg.Force, pcfg.Name, pcfg.Seed = in, force, "t2d-bert-mlm", uint64(seed)
	pcfg.Out = filepath.Join(out, "runs", "t2d-bert-mlm")
	pcfg.MaxLen, pcfg.LR, pcfg.EvalEvery, pcfg.Epochs, pcfg.MaxSteps = 128, 1e-3, 50, 0, maxSteps
	if pcfg.MaxSteps == 0 {
		pcfg.MaxSteps = demoPretrainSteps
	}
	if pcfg.MaxSteps > 0 && pcfg.MaxSteps < pcfg.EvalEvery {
		pcfg.EvalEvery = pcfg.MaxSteps
	}
	pres, err := train.BERTPretrain(ctx, pcfg, e.log, e.stderr)
	if err != nil {
		return nil, nil, err
	}
	printPretrainSummary(e.stdout, pres)
	ccfg := train.DefaultBERTClassifyConfig()
	ccfg.Inputs, ccfg.Init, ccfg.Config, ccfg.Dropout = in, pcfg.Out, "", -1
	ccfg.Force, ccfg.Name, ccfg.Seed = force, "t2d-bert-pretrained", uint64(seed)
	ccfg.Out = filepath.Join(models, "t2d-bert-pretrained", "1")
	ccfg.MaxLen = 128
	demoSchedule(&ccfg, maxSteps)
	cres, err := train.BERTClassify(ctx, ccfg, e.log, e.stderr)
	if err != nil {
		return nil, nil, err
	}
	printClassifySummary(e.stdout, cres)
	return pres, cres, nil
}

// runTrainClassify is `medseq train classify`.
func runTrainClassify(ctx context.Context, e *env, args []string) error {
	cfg, err := trainClassifyFlags(e, args)
	if err != nil {
		return err
	}
	res, err := train.BERTClassify(ctx, *cfg, e.log, e.stderr)
	if err != nil {
		return err
	}
	printClassifySummary(e.stdout, res)
	return nil
}

func printClassifySummary(w io.Writer, r *train.BERTClassifyResult) {
	c := r.Config
	pooling := c.Pooling
	if pooling == "" {
		pooling = bert.PoolingCLS
	}
	fmt.Fprintf(w, "bert model %s (run %s)\n", r.Out, r.RunID)
	fmt.Fprintf(w, "  model              hidden %d, layers %d, heads %d, FFN %d, max len %d, %s pooling, %d parameters\n",
		c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings, pooling, r.Params)
	fmt.Fprintf(w, "  rows               train %d, tuning %d, held_out %d (positives weigh %.3g in the loss)\n",
		r.Rows[data.SplitTrain], r.Rows[data.SplitTuning], r.Rows[data.SplitHeldOut], r.PosWeight)
	fmt.Fprintf(w, "  steps              %d (best %d: tuning AUROC %.3f, val loss %.4f; %s)\n", r.Steps, r.BestStep,
		r.BestAUROC,
		r.BestLoss, r.Stopped)
	fmt.Fprintf(w, "  speed              %.1f steps/s, %.0f tokens/s (%.1fs in all)\n", r.StepsPerS, r.TokensPerS,
		r.Elapsed.Seconds())
	fmt.Fprintf(w, "  AUROC              train %.3f, "+
		"tuning %.3f, held_out %.3f\n", r.AUROC[data.SplitTrain], r.AUROC[data.SplitTuning], r.AUROC[data.SplitHeldOut])
	printOperatingPoint(w, r.Point)
	if r.Overfit {
		fmt.Fprintln(w, "  warning            training loss fell while validation loss rose: overfitting")
	}
	for _, msg := range r.Warnings {
		fmt.Fprintln(w, "  warning            "+msg)
	}
}
