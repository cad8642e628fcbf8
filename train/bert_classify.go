package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// BERTModel is the model's shape as flags give it.
type BERTModel struct {
	Config        string // tiny, small, base ("" with Init: the pretrained model's)
	Hidden        int    // overrides (0: the named config's)
	Layers        int
	Heads         int
	Intermediate  int
	AgeEmbeddings bool
	// TimeEmbeddings adds embeddings of how long before the prediction time each event
	// happened (log2 buckets of days).
	TimeEmbeddings bool
	MaxLen         int     // tokens per sequence with [CLS] and [SEP] (0: the tokenizer's)
	Dropout        float64 // hidden and attention dropout (<0: the config's 0.1)
}

// BERTTraining is the optimisation, evaluation and checkpoint settings shared by `train
// classify` and `train pretrain`.
type BERTTraining struct {
	BatchSize   int
	LR          float64
	Warmup      float64 // steps, or a fraction of the total steps when below 1
	WeightDecay float64
	Clip        float64
	Epochs      float64 // passes over the training rows (0: MaxSteps decides)
	MaxSteps    int     // 0: Epochs decide; with both, the smaller wins
	EvalEvery   int
	Patience    int // evaluations without a better validation loss before stopping (0: never)
	OverfitK    int // evaluations of falling train loss and rising validation loss before warning
	Seed        uint64
	Device      string // cpu, gpu or auto
	PJRTPlugin  string // the XLA CUDA PJRT plugin for gpu (default: searched)
	// DType is float32 (default), tf32, bfloat16 or float16 (mixed precision, float32 master
	// weights and AdamW state; float16 with loss scaling), or auto (bert.ResolveDType).
	DType     string
	Attention string // plain, fused or auto ("" too: bert.Device.WithAttention)
	// CheckpointEvery writes a checkpoint to WorkDir(Out) every N steps (0: never); Resume
	// continues from the newest one there.
	CheckpointEvery int
	Resume          bool

	afterCheckpoint func(step int) // tests: simulate a kill
}

// BERTClassifyConfig is `medseq train classify`: a BERT classifier trained on the cohort's
// labels, from scratch or from a pretrained encoder (Init).
type BERTClassifyConfig struct {
	Inputs
	Out   string
	Force bool
	Name  string
	// Init is a `train pretrain` run folder whose encoder starts the classifier (heads new).
	Init string
	BERTModel
	BERTTraining
	// Calibration fitted on the tuning split: isotonic (default), platt or identity.
	Calibration string
	// Threshold is the rule of the operating point, chosen on the calibrated tuning
	// predictions (zero: max-f1).
	Threshold eval.ThresholdSpec
	// Auto names the settings chosen from the number of training labels and the model's size
	// (AutoClassifySchedule) in place of BERTTraining's; the CLI sets it for the flags not given.
	Auto AutoSettings
	// Pooling is what the classifier reads: bert.PoolingCLS ("" too, or the pretrained
	// model's) or bert.PoolingMean (the mean over the non-padding tokens).
	Pooling string
	// PosWeight weighs the positives in the loss: 0 is auto (negatives/positives on the
	// training split), 1 none, X > 0 that weight. Calibration is fitted on the tuning split
	// afterwards, so the probabilities stay honest.
	PosWeight float64
	// EarlyStopping is what early stopping and the kept weights follow: StopOnLoss (the
	// tuning loss, "" too) or StopOnAUROC (the tuning AUROC). Patience counts epochs here. The
	// loss is the default: on tuning splits of a few hundred labels the AUROC's noise kept the
	// weights of epochs that had memorised the training split (scripts/bert-schedule-grid.sh).
	EarlyStopping string
}

// Early-stopping metrics of train classify.
const (
	StopOnAUROC = "auroc"
	StopOnLoss  = "loss"
)

// DefaultBERTClassifyConfig is the flags' defaults, with the schedule given (the CLI's
// defaults add AllAuto).
func DefaultBERTClassifyConfig() BERTClassifyConfig {
	return BERTClassifyConfig{BERTModel: BERTModel{Config: "tiny", Dropout: -1},
		BERTTraining: BERTTraining{BatchSize: 32, LR: 5e-4, Warmup: 0.1, WeightDecay: 0.01, Clip: 1,
			Epochs: 3, EvalEvery: 200, Patience: 5, OverfitK: 3, Seed: 1, Device: "cpu"},
		Pooling: bert.PoolingCLS, EarlyStopping: StopOnLoss}
}

// BERTMetrics is one line of metrics.jsonl.
type BERTMetrics struct {
	Step      int     `json:"step"`
	Epoch     float64 `json:"epoch"`
	TrainLoss float64 `json:"train_loss"`
	ValLoss   float64 `json:"val_loss"`
	ValAUROC  float64 `json:"val_auroc"`
	// ValMLMAccuracy is pretraining's share of masked tokens predicted right.
	ValMLMAccuracy float64 `json:"val_mlm_accuracy,omitempty"`
	LR             float64 `json:"lr"`
	TokensPerS     float64 `json:"tokens_per_s"`
	ElapsedS       float64 `json:"elapsed_s"`
}

// BERTClassifyResult summarises a run.
type BERTClassifyResult struct {
	Out      string
	RunID    string
	Config   bert.Config
	Params   int
	Rows     map[string]int
	Steps    int
	BestStep int
	BestLoss float64
	AUROC    map[string]float64
	Stopped  string // why training ended
	Overfit  bool   // the overfitting warning fired
	// BestAUROC is the tuning AUROC at the best step.
	BestAUROC float64
	// Schedule is what the rule chose for this cohort (used for the settings Auto names).
	Schedule  ClassifySchedule
	PosWeight float64
	// Stuck: the training loss never left the loss of predicting the prevalence (Warnings
	// says what to try).
	Stuck      bool
	Warnings   []string
	TokensPerS float64
	StepsPerS  float64
	Device     bert.Device
	Elapsed    time.Duration
	History    []BERTMetrics
	Point      modelrepo.OperatingPoint
}

type bertSplit struct {
	labelled
	seqs []bert.Encoded
	y    []float32
}

// LRAt is the schedule: linear warmup from 0 to peak over warmup steps, then linear decay to 0
// at total.
func LRAt(step, warmup, total int, peak float64) float64 {
	if warmup > 0 && step < warmup {
		return peak * float64(step+1) / float64(warmup)
	}
	if total <= warmup {
		return peak
	}
	return peak * math.Max(0, float64(total-step)/float64(total-warmup))
}

// KindBERTMLM is the manifest kind of a `train pretrain` run: an encoder with its MLM head,
// not a servable model.
const KindBERTMLM = modelrepo.KindBERTMLM

// maxLen is the sequence length: the flag's, else the tokenizer's, else 512.
func (mf BERTModel) maxLen(tok *tokenize.Tokenizer) int {
	n := mf.MaxLen
	if n == 0 {
		n = tok.MaxLen
	}
	if n < 3 {
		n = 512
	}
	return n
}

// choice is the configuration the flags ask for.
func (mf BERTModel) choice() bert.Choice {
	return bert.Choice{Name: mf.Config, Hidden: mf.Hidden, Layers: mf.Layers, Heads: mf.Heads,
		Intermediate: mf.Intermediate, AgeEmbeddings: mf.AgeEmbeddings, TimeEmbeddings: mf.TimeEmbeddings,
		Dropout: mf.Dropout}
}

// encodeSplits encodes the censored sequences of the named splits.
func encodeSplits(ctx context.Context, o *opened, maxLen int, names ...string) (map[string]*bertSplit, error) {
	cm := o.tok.NewCodeMap(o.ds.Codes)
	opts := tokenize.Options{MaxLen: maxLen, VisitSeparators: o.tok.VisitSeparators}
	splits := map[string]*bertSplit{}
	for _, n := range names {
		splits[n] = &bertSplit{}
	}
	err := o.forSplits(ctx, names, func(s data.Sequence) error {
		sd, ok := splits[s.Label.Split]
		if !ok {
			return nil
		}
		cm.Refresh()
		o.countTrain(cm, s)
		enc := cm.Encode(tokenize.Input{Events: s.Events, Birth: s.Label.Birth,
			PredictionTime: s.Label.PredictionTime}, opts)
		sd.seqs = append(sd.seqs, bert.FromEncoding(enc))
		sd.labels = append(sd.labels, s.Label)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, sd := range splits {
		sd.y = sd.labelled.y()
	}
	return splits, nil
}

// initHint says what to do when a pretrained encoder's configuration field differs from
// the flags'.
func initHint(field string) string {
	switch field {
	case "vocab_size":
		return "use the tokenizer the model was pretrained with"
	case "max_position_embeddings":
		return "lower --max-len"
	case "age_embeddings", "time_embeddings":
		return "set --" + strings.ReplaceAll(field, "_", "-") + " as the pretrained model has it"
	}
	return "leave --config, --hidden, --layers, --heads and --intermediate out to take the pretrained model's"
}

// loadInit reads the encoder of a pretrain run for a classifier: the run must come from
// this tokenizer, its config must match what the flags ask for, and the heads this model
// lacks are initialised (and listed, as transformers does).
func loadInit(dir string, in Inputs, tok *tokenize.Tokenizer, ch bert.Choice, maxLen int, seed uint64,
	log *slog.Logger) (*bert.Weights, error) {
	m, err := modelrepo.ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("--init %s: %w", dir, err)
	}
	if m.Kind != KindBERTMLM && m.Kind != modelrepo.KindBERT {
		return nil, fmt.Errorf("--init %s: a %q run, not a BERT (train pretrain) run", dir, m.Kind)
	}
	if err := m.CheckInput("tokenizer", in.Tokenizer); err != nil {
		return nil, fmt.Errorf("--init %s was pretrained with a different tokenizer than --tokenizer %s, "+
			"so its token ids mean other codes: %w", dir, in.Tokenizer, err)
	}
	w, newly, err := bert.LoadPretrained(modelrepo.BERTPath(dir), ch, tok.Vocab.Len(), maxLen,
		bert.Heads{Classifier: true}, seed, log)
	var mismatch *bert.MismatchError
	if errors.As(err, &mismatch) {
		return nil, fmt.Errorf("--init %s: %w (%s)", dir, err, initHint(mismatch.Field))
	}
	if err != nil {
		return nil, fmt.Errorf("--init %s: %w", dir, err)
	}
	log.Info("encoder loaded", "init", dir, "run", m.RunID, "tensors", len(w.Specs)-len(newly),
		"newly_initialized", len(newly))
	logInitCorpus(log, dir, m)
	return w, nil
}

// classifyLine is a classify metrics.jsonl line.
func classifyLine(m BERTMetrics) any { m.ValMLMAccuracy = 0; return m }

// BERTClassify trains a BERT classifier: encoded censored sequences, the settings Auto names
// chosen from the number of training labels, positives weighted in the loss (PosWeight),
// AdamW with warmup and linear decay, evaluation on the tuning split, early stopping on the
// tuning loss or AUROC keeping the best weights, checkpoints, a warning when the training
// loss never left its initial value, then the model version folder.
func BERTClassify(ctx context.Context, cfg BERTClassifyConfig, log *slog.Logger,
	progress io.Writer) (*BERTClassifyResult, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	b, err := startBERTRun("train classify", cfg.Inputs, outFolder{cfg.Out, cfg.Force, cfg.Name}, cfg.BERTModel,
		cfg.BERTTraining, log)
	if err != nil {
		return nil, err
	}
	defer b.close()
	if cfg.Init == "" && cfg.Config == "" {
		cfg.Config = "tiny"
	}
	w, err := classifierWeights(cfg, b)
	if err != nil {
		return nil, err
	}
	c, err := prepareClassify(ctx, b, cfg, w)
	if err != nil {
		return nil, err
	}
	if err := b.createOut(); err != nil {
		return nil, err
	}
	defer b.abort()
	extra, err := classifyCheckpointParams(cfg.Init, c.posWeight, c.stopOn.name)
	if err != nil {
		return nil, err
	}
	if err := b.openCheckpoints(extra, classifyLine); err != nil {
		return nil, err
	}
	out, err := b.train(ctx, c.task(b), progress)
	if err != nil {
		return nil, err
	}
	log.Info("training done", "steps", out.Step, "best_step", out.BestStep, "best_val_loss", out.BestLoss,
		"why", out.Stopped, "tokens_per_s", out.tokensPerS, "steps_per_s", out.stepsPerS)
	c.loss = checkLoss(out.History, c.prevalence, c.posWeight)
	if c.loss.Stuck {
		c.warnings = append(c.warnings, c.loss.advice(b.t.LR, c.schedule))
		log.Warn(c.warnings[len(c.warnings)-1], "initial_train_loss", c.loss.Initial, "least_train_loss", c.loss.Best,
			"prevalence_loss", c.loss.Constant)
	}
	res, err := finishClassifier(ctx, b, cfg, c, out)
	if err != nil {
		return nil, err
	}
	log.Info("bert model written", "out", cfg.Out, "seconds", res.Elapsed.Seconds())
	return res, nil
}

// classifyRun is what BERTClassify decides before training and finds after.
type classifyRun struct {
	splits     map[string]*bertSplit
	posWeight  float64
	weightRule string  // auto, none or given
	prevalence float64 // of the training split
	schedule   ClassifySchedule
	stopOn     *stopMetric
	loss       lossCheck
	warnings   []string
}

// prepareClassify encodes the splits, weighs the classes, chooses the schedule, opens the
// engine and sets the steps.
func prepareClassify(ctx context.Context, b *bertRun, cfg BERTClassifyConfig, w *bert.Weights) (*classifyRun, error) {
	splits, err := encodeSplits(ctx, b.o, b.maxLen, data.SplitTrain, data.SplitTuning, data.SplitHeldOut)
	if err != nil {
		return nil, err
	}
	c := &classifyRun{splits: splits, stopOn: classifyStopMetric(cfg.EarlyStopping)}
	if err := c.weighClasses(cfg, b.log); err != nil {
		return nil, err
	}
	tr, tu := splits[data.SplitTrain], splits[data.SplitTuning]
	c.schedule = AutoClassifySchedule(len(tr.seqs), b.t.BatchSize, w.Config.HiddenSize)
	applyAuto(&b.t, cfg.Auto, c.schedule, b.log)
	if err := b.openEngine(w, bert.TaskClassify, c.posWeight, 0); err != nil {
		return nil, err
	}
	if err := b.schedule(len(tr.seqs)); err != nil {
		return nil, err
	}
	if cfg.Auto.EvalEvery {
		b.t.EvalEvery = b.stepsPerEpoch
	}
	bc := w.Config
	b.log.Info("bert classify", "config", cfg.Config, "init", cfg.Init, "hidden", bc.HiddenSize,
		"layers", bc.NumHiddenLayers, "heads", bc.NumAttentionHeads, "pooling", poolingName(bc),
		"params", b.params, "train", len(tr.seqs), "tuning", len(tu.seqs), "pos_weight", c.posWeight,
		"steps", b.total, "steps_per_epoch", b.stepsPerEpoch,
		"warmup", b.warmup, "lr", b.t.LR, "eval_every", b.t.EvalEvery, "early_stopping", c.stopOn.name,
		"patience_epochs", b.t.Patience, "device", cfg.Device)
	return c, nil
}

// task is classification in the training loop, with the run's early stopping.
func (c *classifyRun) task(b *bertRun) bertTask {
	t := classifyTask(b, c.splits[data.SplitTrain], c.splits[data.SplitTuning], c.posWeight)
	t.stopOn, t.patienceSteps = c.stopOn, b.t.Patience*b.stepsPerEpoch
	return t
}

// classifyStopMetric is what early stopping follows for --early-stopping-metric.
func classifyStopMetric(name string) *stopMetric {
	if name == StopOnAUROC {
		return &stopMetric{name: "tuning AUROC", score: func(m BERTMetrics) float64 { return m.ValAUROC }}
	}
	return lossMetric()
}

// poolingName is the pooling a classifier's config records ([CLS] when none is).
func poolingName(c bert.Config) string {
	if c.Pooling == "" {
		return bert.PoolingCLS
	}
	return c.Pooling
}

// check refuses settings BERTClassify cannot honour.
func (cfg BERTClassifyConfig) check() error {
	switch {
	case cfg.Pooling != "" && cfg.Pooling != bert.PoolingCLS && cfg.Pooling != bert.PoolingMean:
		return fmt.Errorf("train classify: pooling %q is not %s or %s", cfg.Pooling, bert.PoolingCLS, bert.PoolingMean)
	case cfg.EarlyStopping != "" && cfg.EarlyStopping != StopOnAUROC && cfg.EarlyStopping != StopOnLoss:
		return fmt.Errorf("train classify: early-stopping metric %q is not %s or %s",
			cfg.EarlyStopping, StopOnAUROC, StopOnLoss)
	case cfg.PosWeight < 0 || math.IsNaN(cfg.PosWeight) || math.IsInf(cfg.PosWeight, 0):
		return fmt.Errorf("train classify: positive weight %v must be positive (0: auto)", cfg.PosWeight)
	}
	return nil
}

// finishClassifier writes the classifier's model folder from the best weights (every split
// scored as the saved folder serves it) and sums the run up.
func finishClassifier(ctx context.Context, b *bertRun, cfg BERTClassifyConfig, c *classifyRun,
	out *bertOutcome) (*BERTClassifyResult, error) {
	m := b.manifest(modelrepo.KindBERT, cfg.BERTModel, out, c.params(cfg, b))
	if cfg.Init != "" {
		if _, err := m.AddInput("init", cfg.Init); err != nil {
			return nil, err
		}
	}
	best, _ := out.bestMetrics()
	m.Metrics["best_val_auroc"] = best.ValAUROC
	m.Metrics["train_loss_initial"], m.Metrics["train_loss_least"] = c.loss.Initial, c.loss.Best
	m.Metrics["train_loss_prevalence"] = c.loss.Constant
	m.Warnings = c.warnings
	model := &classifier{bertFolder: bertFolder{weights: out.best, history: out.History, line: classifyLine,
		export: bert.HFExport{Tokenizer: b.o.tok, MaxLen: b.maxLen, Label: outcomeLabel(b.o.cohort), Log: b.log}},
		o: b.o, dev: b.dev, labels: map[string][]data.Label{}}
	for name, sd := range c.splits {
		model.labels[name] = sd.labels
	}
	auroc, err := b.finish(ctx, ending{manifest: m, model: model,
		served: &served{score: model.score, labels: model.labels, calibration: cfg.Calibration,
			threshold: cfg.Threshold}})
	if err != nil {
		return nil, err
	}
	b.closeWork()
	res := &BERTClassifyResult{Out: cfg.Out, RunID: m.RunID, Config: out.best.Config, Params: b.params,
		Rows: map[string]int{}, Steps: out.Step, BestStep: out.BestStep, BestLoss: out.BestLoss, AUROC: auroc,
		Stopped: out.Stopped, Overfit: out.Overfit, TokensPerS: out.tokensPerS, StepsPerS: out.stepsPerS, Device: b.dev,
		Elapsed: time.Since(b.start), History: out.History, Point: m.OperatingPoint, BestAUROC: best.ValAUROC,
		Schedule: c.schedule, PosWeight: c.posWeight, Stuck: c.loss.Stuck, Warnings: c.warnings}
	for name, sd := range c.splits {
		res.Rows[name] = len(sd.labels)
	}
	return res, nil
}

// params are the classifier's own settings in the manifest: the class weighting, the early
// stopping, the pooling and what the schedule rule chose.
func (c *classifyRun) params(cfg BERTClassifyConfig, b *bertRun) map[string]any {
	auto := cfg.Auto.names()
	if auto == nil {
		auto = []string{}
	}
	return map[string]any{"pos_weight": c.posWeight, "pos_weight_rule": c.weightRule, "init": cfg.Init,
		"pooling": poolingName(b.eng.Config()), "early_stopping": c.stopOn.name, "patience_epochs": b.t.Patience,
		"schedule": map[string]any{"auto": auto, "train_labels": c.schedule.Labels, "epochs": c.schedule.Epochs,
			"lr": c.schedule.LR, "warmup": c.schedule.Warmup, "patience_epochs": c.schedule.Patience,
			"steps_per_epoch": b.stepsPerEpoch}}
}

// classifierChoice is the configuration the flags ask for, with the classifier's pooling.
func (cfg BERTClassifyConfig) classifierChoice() bert.Choice {
	ch := cfg.choice()
	ch.Pooling = cfg.Pooling
	return ch
}

// classifierWeights are the weights a classifier starts from: a pretrain run's encoder
// (--init) with new heads, or new weights of the configuration the flags ask for.
func classifierWeights(cfg BERTClassifyConfig, b *bertRun) (*bert.Weights, error) {
	if cfg.Init != "" {
		w, err := loadInit(cfg.Init, cfg.Inputs, b.o.tok, cfg.classifierChoice(), b.maxLen, cfg.Seed, b.log)
		if err == nil && w.Config.Pooling == "" {
			w.Config.Pooling = bert.PoolingCLS // recorded in config.json, as from scratch
		}
		return w, err
	}
	bc, err := cfg.classifierChoice().Config(b.o.tok.Vocab.Len(), b.maxLen, int(b.pad))
	if err != nil {
		return nil, err
	}
	return bert.NewWeights(bc, bert.Heads{Classifier: true}, cfg.Seed)
}

// weighClasses checks there is something to train and stop on, and sets the BCE positive
// weight (cfg.PosWeight; auto: negatives/positives on the training split) and the training
// split's prevalence.
func (c *classifyRun) weighClasses(cfg BERTClassifyConfig, log *slog.Logger) error {
	tr, tu := c.splits[data.SplitTrain], c.splits[data.SplitTuning]
	if len(tr.labels) == 0 || len(tu.labels) == 0 {
		return fmt.Errorf("cohort %s has %d training and %d tuning labels: need both",
			cfg.Cohort, len(tr.labels), len(tu.labels))
	}
	pos := 0
	for _, y := range tr.y {
		pos += int(y)
	}
	if pos == 0 || pos == len(tr.y) {
		return fmt.Errorf("the training split has %d positives of %d: need both classes", pos, len(tr.y))
	}
	c.prevalence = float64(pos) / float64(len(tr.y))
	switch {
	case cfg.PosWeight == 0:
		c.posWeight, c.weightRule = float64(len(tr.y)-pos)/float64(pos), "auto"
	case cfg.PosWeight == 1:
		c.posWeight, c.weightRule = 1, "none"
	default:
		c.posWeight, c.weightRule = cfg.PosWeight, "given"
	}
	log.Info(fmt.Sprintf("class weighting: positives weigh %.3g in the loss (%s); the calibration is fitted on the "+
		"tuning split afterwards, so the probabilities stay honest", c.posWeight, weightReason(c.weightRule)),
		"positives", pos, "training_labels", len(tr.y))
	return nil
}

// weightReason says where a positive weight came from.
func weightReason(rule string) string {
	switch rule {
	case "auto":
		return "auto: negatives/positives on the training split"
	case "none":
		return "none: unweighted"
	}
	return "--pos-weight"
}

// classifyCheckpointParams are the settings of classification a resumed run must share.
func classifyCheckpointParams(init string, posWeight float64, stopOn string) (map[string]any, error) {
	extra := map[string]any{"pos_weight": posWeight, "early_stopping": stopOn}
	if init != "" {
		fp, err := data.Fingerprint(init)
		if err != nil {
			return nil, err
		}
		extra["init_fingerprint"] = fp
	}
	return extra, nil
}

// classifyTask is classification in the training loop: batches of training rows in the
// step's order, evaluation of the loss and AUROC on the tuning split.
func classifyTask(b *bertRun, tr, tu *bertSplit, posWeight float64) bertTask {
	order := &sampleOrder{n: len(tr.seqs), batch: b.t.BatchSize, seed: b.t.Seed}
	return bertTask{
		batch: func(step int) *bert.Batch {
			rows := order.rows(step)
			seqs, ys := make([]bert.Encoded, len(rows)), make([]float32, len(rows))
			for j, i := range rows {
				seqs[j], ys[j] = tr.seqs[i], tr.y[i]
			}
			return bert.MakeBatch(seqs, ys, b.t.BatchSize, b.maxLen, b.pad)
		},
		evaluate: func() (BERTMetrics, error) {
			// The tuning split with the current weights (no dropout).
			logits, err := b.eng.PredictLogits(tu.seqs, 2*b.t.BatchSize, b.pad)
			if err != nil {
				return BERTMetrics{}, err
			}
			return BERTMetrics{ValLoss: bceLoss(logits, tu.y, posWeight), ValAUROC: aurocOf(tu.bools(), logits)}, nil
		},
		line:     classifyLine,
		describe: func(m BERTMetrics) string { return fmt.Sprintf("val AUROC %.4f", m.ValAUROC) },
	}
}

// classifier is a trained classifier's folder, scored as medseq predict and serve score it.
type classifier struct {
	bertFolder
	o      *opened
	dev    bert.Device
	labels map[string][]data.Label
}

// score scores every split through the saved folder with the BERT scorer (float32, each
// history alone on the CPU), so the folder's predictions are the served answers.
func (c *classifier) score(ctx context.Context, dir string, m *modelrepo.Manifest) (map[string][]float64, error) {
	sc, err := bert.LoadScorerOn(dir, m, c.dev.WithDType("float32"))
	if err != nil {
		return nil, fmt.Errorf("score the model it wrote: %w", err)
	}
	return c.o.scoreWith(ctx, sc, c.labels)
}

// bceLoss is the mean BCE with logits and a positive weight, as the training loss.
func bceLoss(logits []float32, y []float32, posWeight float64) float64 {
	var s float64
	sp := func(x float64) float64 { return math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }
	for i, z := range logits {
		zz := float64(z)
		if y[i] == 1 {
			s += posWeight * sp(-zz)
		} else {
			s += sp(zz)
		}
	}
	return s / float64(len(logits))
}

func aurocOf(y []bool, logits []float32) float64 {
	s := make([]float64, len(logits))
	for i, z := range logits {
		s[i] = float64(z)
	}
	auc, err := eval.AUROC(y, s)
	if err != nil || math.IsNaN(auc) {
		return 0.5 // one class only: AUROC is undefined, report chance
	}
	return auc
}
