package train

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/tokenize"
)

// BERTClassifyConfig is `medseq train classify`: a BERT classifier trained from scratch on the
// cohort's labels.
type BERTClassifyConfig struct {
	Inputs
	Out   string
	Force bool
	Name  string

	Config        string // tiny, small, base
	Hidden        int    // overrides (0: the named config's)
	Layers        int
	Heads         int
	Intermediate  int
	AgeEmbeddings bool
	MaxLen        int     // tokens per sequence with [CLS] and [SEP] (0: the tokenizer's)
	Dropout       float64 // hidden and attention dropout (<0: the config's 0.1)

	BatchSize   int
	LR          float64
	Warmup      float64 // steps, or a fraction of the total steps when below 1
	WeightDecay float64
	Clip        float64
	Epochs      float64
	MaxSteps    int // 0: Epochs decide
	EvalEvery   int
	Patience    int // evaluations without a better validation loss before stopping (0: never)
	OverfitK    int // evaluations of falling train loss and rising validation loss before warning
	Seed        uint64
	Device      string
	// Calibration fitted on the tuning split: isotonic (default), platt or identity.
	Calibration string
}

// DefaultBERTClassifyConfig is the flags' defaults.
func DefaultBERTClassifyConfig() BERTClassifyConfig {
	return BERTClassifyConfig{Config: "tiny", Dropout: -1, BatchSize: 32, LR: 5e-4, Warmup: 0.1, WeightDecay: 0.01, Clip: 1,
		Epochs: 3, EvalEvery: 200, Patience: 5, OverfitK: 3, Seed: 1, Device: "cpu"}
}

// BERTMetrics is one line of metrics.jsonl.
type BERTMetrics struct {
	Step       int     `json:"step"`
	Epoch      float64 `json:"epoch"`
	TrainLoss  float64 `json:"train_loss"`
	ValLoss    float64 `json:"val_loss"`
	ValAUROC   float64 `json:"val_auroc"`
	LR         float64 `json:"lr"`
	TokensPerS float64 `json:"tokens_per_s"`
	ElapsedS   float64 `json:"elapsed_s"`
}

// BERTClassifyResult summarises a run.
type BERTClassifyResult struct {
	Out        string
	RunID      string
	Config     bert.Config
	Params     int
	Rows       map[string]int
	Steps      int
	BestStep   int
	BestLoss   float64
	AUROC      map[string]float64
	Stopped    string // why training ended
	Overfit    bool   // the overfitting warning fired
	TokensPerS float64
	StepsPerS  float64
	Elapsed    time.Duration
	History    []BERTMetrics
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

// BERTClassify trains a BERT classifier: encoded censored sequences, AdamW with warmup and
// linear decay, evaluation on the tuning split every EvalEvery steps, early stopping on the
// validation loss keeping the best weights, then the model version folder.
func BERTClassify(ctx context.Context, cfg BERTClassifyConfig, log *slog.Logger, progress io.Writer) (res *BERTClassifyResult, err error) {
	start := time.Now()
	if cfg.BatchSize <= 0 || cfg.LR <= 0 || cfg.EvalEvery <= 0 {
		return nil, fmt.Errorf("train classify: batch size, learning rate and eval-every must be positive")
	}
	o, err := cfg.Inputs.open(log)
	if err != nil {
		return nil, err
	}
	maxLen := cfg.MaxLen
	if maxLen == 0 {
		maxLen = o.tok.MaxLen
	}
	if maxLen < 3 {
		maxLen = 512
	}
	bc, err := bert.Named(cfg.Config, o.tok.Vocab.Len(), maxLen)
	if err != nil {
		return nil, err
	}
	for _, ov := range []struct {
		dst *int
		v   int
	}{{&bc.HiddenSize, cfg.Hidden}, {&bc.NumHiddenLayers, cfg.Layers}, {&bc.NumAttentionHeads, cfg.Heads}, {&bc.IntermediateSize, cfg.Intermediate}} {
		if ov.v > 0 {
			*ov.dst = ov.v
		}
	}
	if cfg.Hidden > 0 && cfg.Intermediate == 0 {
		bc.IntermediateSize = 4 * bc.HiddenSize
	}
	if cfg.Dropout >= 0 {
		bc.HiddenDropoutProb, bc.AttentionProbsDropoutProb = cfg.Dropout, cfg.Dropout
	}
	bc.AgeEmbeddings = cfg.AgeEmbeddings
	bc.PadTokenID = int(o.tok.Vocab.Pad)
	if err := bc.Validate(); err != nil {
		return nil, err
	}

	// Encode every split's censored sequences.
	cm := o.tok.NewCodeMap(o.ds.Codes)
	opts := tokenize.Options{MaxLen: maxLen, VisitSeparators: o.tok.VisitSeparators}
	splits := map[string]*bertSplit{data.SplitTrain: {}, data.SplitTuning: {}, data.SplitHeldOut: {}}
	err = o.forSplits(ctx, nil, func(s data.Sequence) error {
		sd, ok := splits[s.Label.Split]
		if !ok {
			return nil
		}
		cm.Refresh()
		enc := cm.Encode(tokenize.Input{Events: s.Events, Birth: s.Label.Birth, PredictionTime: s.Label.PredictionTime}, opts)
		sd.seqs = append(sd.seqs, bert.FromEncoding(enc))
		sd.labels = append(sd.labels, s.Label)
		return nil
	})
	if err != nil {
		return nil, err
	}
	res = &BERTClassifyResult{Out: cfg.Out, Config: bc, Rows: map[string]int{}, AUROC: map[string]float64{}}
	for name, sd := range splits {
		res.Rows[name] = len(sd.labels)
		sd.y = sd.labelled.y()
	}
	tr, tu := splits[data.SplitTrain], splits[data.SplitTuning]
	if len(tr.labels) == 0 || len(tu.labels) == 0 {
		return nil, fmt.Errorf("cohort %s has %d training and %d tuning labels: need both", cfg.Cohort, len(tr.labels), len(tu.labels))
	}
	pos := 0
	for _, y := range tr.y {
		pos += int(y)
	}
	if pos == 0 || pos == len(tr.y) {
		return nil, fmt.Errorf("the training split has %d positives of %d: need both classes", pos, len(tr.y))
	}
	posWeight := float64(len(tr.y)-pos) / float64(pos)

	backend, err := bert.Backend(cfg.Device)
	if err != nil {
		return nil, err
	}
	w, err := bert.NewWeights(bc, bert.Heads{Classifier: true}, cfg.Seed)
	if err != nil {
		return nil, err
	}
	res.Params = w.NumParams()
	opt := bert.DefaultOptim()
	opt.WeightDecay, opt.Clip, opt.PosWeight = cfg.WeightDecay, cfg.Clip, posWeight
	eng, err := bert.NewEngine(backend, w, bert.TaskClassify, opt, int64(cfg.Seed))
	if err != nil {
		return nil, err
	}
	defer eng.Close()

	stepsPerEpoch := (len(tr.seqs) + cfg.BatchSize - 1) / cfg.BatchSize
	total := cfg.MaxSteps
	if total <= 0 {
		total = int(math.Ceil(cfg.Epochs * float64(stepsPerEpoch)))
	}
	if total <= 0 {
		return nil, fmt.Errorf("train classify: no steps to take (set --epochs or --max-steps)")
	}
	warmup := int(cfg.Warmup)
	if cfg.Warmup > 0 && cfg.Warmup < 1 {
		warmup = int(cfg.Warmup * float64(total))
	}
	log.Info("bert classify", "config", cfg.Config, "hidden", bc.HiddenSize, "layers", bc.NumHiddenLayers, "heads", bc.NumAttentionHeads,
		"params", res.Params, "train", len(tr.seqs), "tuning", len(tu.seqs), "pos_weight", posWeight, "steps", total, "warmup", warmup, "device", cfg.Device)

	dir, err := data.CreateAtomicDir(cfg.Out, cfg.Force)
	if err != nil {
		return nil, err
	}
	defer dir.Abort()
	logf, err := data.CreateAtomic(filepath.Join(dir.Tmp, scorer.TrainLogFile))
	if err != nil {
		return nil, err
	}
	defer logf.Abort()
	jw := bufio.NewWriter(logf)
	enc := json.NewEncoder(jw)

	rng := rand.New(rand.NewPCG(cfg.Seed, 0x7472616963))
	perm := rng.Perm(len(tr.seqs))
	cursor := 0
	var best *bert.Weights
	res.BestLoss = math.Inf(1)
	bad, rising := 0, 0
	prevTrain, prevVal := math.Inf(1), math.Inf(-1)
	var lossSum float64
	var lossN, tokens int
	trainStart := time.Now()
	windowStart, windowTokens := time.Now(), 0
	pad := o.tok.Vocab.Pad
	res.Stopped = "max steps"
	for step := 0; step < total; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seqs := make([]bert.Encoded, 0, cfg.BatchSize)
		ys := make([]float32, 0, cfg.BatchSize)
		for len(seqs) < cfg.BatchSize {
			if cursor == len(perm) {
				perm, cursor = rng.Perm(len(tr.seqs)), 0
			}
			i := perm[cursor]
			cursor++
			seqs, ys = append(seqs, tr.seqs[i]), append(ys, tr.y[i])
		}
		b := bert.MakeBatch(seqs, ys, cfg.BatchSize, maxLen, pad)
		lr := LRAt(step, warmup, total, cfg.LR)
		sr, err := eng.TrainStep(b, lr)
		if err != nil {
			return nil, err
		}
		lossSum += sr.Loss
		lossN++
		for _, m := range b.Mask {
			tokens += int(m)
			windowTokens += int(m)
		}
		if progress != nil && (step%10 == 0 || step == total-1) {
			el := time.Since(trainStart).Seconds()
			rate := float64(step+1) / el
			fmt.Fprintf(progress, "\rstep %d/%d  loss %.4f  %.0f tokens/s  ETA %s   ", step+1, total, sr.Loss,
				float64(tokens)/el, (time.Duration(float64(total-step-1)/rate) * time.Second).Round(time.Second))
		}
		if (step+1)%cfg.EvalEvery != 0 && step != total-1 {
			continue
		}
		// Evaluate on the tuning split with the current weights (no dropout).
		logits, err := eng.PredictLogits(tu.seqs, 2*cfg.BatchSize, pad)
		if err != nil {
			return nil, err
		}
		valLoss, auc := bceLoss(logits, tu.y, posWeight), aurocOf(tu.bools(), logits)
		el := time.Since(windowStart).Seconds()
		m := BERTMetrics{Step: step + 1, Epoch: float64(step+1) / float64(stepsPerEpoch), TrainLoss: lossSum / float64(lossN),
			ValLoss: valLoss, ValAUROC: auc, LR: lr, TokensPerS: float64(windowTokens) / el, ElapsedS: time.Since(trainStart).Seconds()}
		res.History = append(res.History, m)
		if err := enc.Encode(m); err != nil {
			return nil, err
		}
		if progress != nil {
			fmt.Fprintf(progress, "\rstep %d/%d  train loss %.4f  val loss %.4f  val AUROC %.4f  %.0f tokens/s\n", m.Step, total, m.TrainLoss, m.ValLoss, m.ValAUROC, m.TokensPerS)
		}
		log.Debug("eval", "step", m.Step, "train_loss", m.TrainLoss, "val_loss", m.ValLoss, "val_auroc", m.ValAUROC)
		if m.TrainLoss < prevTrain && m.ValLoss > prevVal {
			rising++
		} else {
			rising = 0
		}
		if cfg.OverfitK > 0 && rising >= cfg.OverfitK && !res.Overfit {
			res.Overfit = true
			log.Warn("overfitting: training loss keeps falling while validation loss rises (raise --dropout or --weight-decay, or stop earlier)",
				"evaluations", rising, "step", m.Step, "train_loss", m.TrainLoss, "val_loss", m.ValLoss)
		}
		prevTrain, prevVal = m.TrainLoss, m.ValLoss
		lossSum, lossN = 0, 0
		windowStart, windowTokens = time.Now(), 0
		if valLoss < res.BestLoss {
			res.BestLoss, res.BestStep, bad = valLoss, step+1, 0
			if best, err = eng.Weights(); err != nil {
				return nil, err
			}
		} else if bad++; cfg.Patience > 0 && bad >= cfg.Patience {
			res.Stopped = fmt.Sprintf("early stopping: no better validation loss in %d evaluations", bad)
			res.Steps = step + 1
			break
		}
		res.Steps = step + 1
	}
	if progress != nil {
		fmt.Fprintln(progress)
	}
	trainTime := time.Since(trainStart).Seconds()
	res.TokensPerS, res.StepsPerS = float64(tokens)/trainTime, float64(res.Steps)/trainTime
	if best == nil {
		return nil, fmt.Errorf("train classify: no evaluation produced weights")
	}
	eng.SetWeights(best)
	log.Info("training done", "steps", res.Steps, "best_step", res.BestStep, "best_val_loss", res.BestLoss, "why", res.Stopped,
		"tokens_per_s", res.TokensPerS, "steps_per_s", res.StepsPerS)
	if err := jw.Flush(); err != nil {
		return nil, err
	}
	if err := logf.Commit(); err != nil {
		return nil, err
	}

	scores := map[string][]float64{}
	for _, name := range []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut} {
		sd := splits[name]
		if len(sd.seqs) == 0 {
			continue
		}
		logits, err := eng.PredictLogits(sd.seqs, 2*cfg.BatchSize, pad)
		if err != nil {
			return nil, err
		}
		p := make([]float64, len(logits))
		for i, z := range logits {
			p[i] = bert.Probability(z)
		}
		scores[name] = p
		if auc, err := eval.AUROC(sd.bools(), p); err == nil {
			res.AUROC[name] = auc
		}
	}
	if err := bert.Save(filepath.Join(dir.Tmp, bert.Dir), best); err != nil {
		return nil, err
	}
	if err := copyTokenizer(cfg.Tokenizer, dir.Tmp); err != nil {
		return nil, err
	}
	labels := map[string][]data.Label{}
	for name, sd := range splits {
		labels[name] = sd.labels
	}
	if err := writeSplitOutputs(dir.Tmp, labels, scores, cfg.Calibration); err != nil {
		return nil, err
	}
	params := map[string]any{"config": cfg.Config, "hidden": bc.HiddenSize, "layers": bc.NumHiddenLayers, "heads": bc.NumAttentionHeads,
		"intermediate": bc.IntermediateSize, "max_len": maxLen, "age_embeddings": bc.AgeEmbeddings, "dropout": bc.HiddenDropoutProb,
		"batch_size": cfg.BatchSize, "lr": cfg.LR, "warmup_steps": warmup, "weight_decay": cfg.WeightDecay, "clip": cfg.Clip,
		"epochs": cfg.Epochs, "max_steps": cfg.MaxSteps, "steps": res.Steps, "eval_every": cfg.EvalEvery, "patience": cfg.Patience,
		"seed": cfg.Seed, "device": cfg.Device, "pos_weight": posWeight}
	m := &scorer.Manifest{Manifest: *data.NewManifest("train classify", params), Kind: scorer.KindBERT, Name: cfg.Name,
		Threshold: 0.5, VocabSize: o.tok.Vocab.Len(),
		Metrics: map[string]float64{"best_step": float64(res.BestStep), "best_val_loss": res.BestLoss, "tokens_per_s": res.TokensPerS,
			"params": float64(res.Params)}}
	for k, v := range res.AUROC {
		m.Metrics["auroc_"+k] = v
	}
	if err := cfg.Inputs.addInputs(&m.Manifest); err != nil {
		return nil, err
	}
	if err := writeModelManifest(dir.Tmp, m); err != nil {
		return nil, err
	}
	if err := dir.Commit(); err != nil {
		return nil, err
	}
	res.RunID = m.RunID
	res.Elapsed = time.Since(start)
	log.Info("bert model written", "out", cfg.Out, "seconds", res.Elapsed.Seconds())
	return res, nil
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
