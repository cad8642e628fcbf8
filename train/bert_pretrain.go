package train

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
)

// BERTPretrainConfig is `medseq train pretrain`: a masked-language model over the whole
// records of the dataset's training subjects (Corpus.Kind records) or over the censored
// sequences of the cohort's training split (cohort).
type BERTPretrainConfig struct {
	Inputs
	Out   string
	Force bool
	Name  string
	BERTModel
	BERTTraining
	MaskRate float64 // share of non-special tokens chosen per sequence (0.15)
	Corpus   CorpusConfig

	onBatch func(*bert.Batch) // tests: every batch the engine is fed
}

// DefaultBERTPretrainConfig is the flags' defaults.
func DefaultBERTPretrainConfig() BERTPretrainConfig {
	return BERTPretrainConfig{BERTModel: BERTModel{Config: "tiny", Dropout: -1},
		BERTTraining: BERTTraining{BatchSize: 32, LR: 5e-4, Warmup: 0.1, WeightDecay: 0.01, Clip: 1,
			Epochs: 10, EvalEvery: 200, Patience: 5, OverfitK: 3, Seed: 1, Device: "cpu"}, MaskRate: 0.15,
		Corpus: DefaultCorpusConfig()}
}

// BERTPretrainResult summarises a pretraining run.
type BERTPretrainResult struct {
	Out        string
	RunID      string
	Config     bert.Config
	Params     int
	Rows       map[string]int // windows (sequences) used per split
	Corpus     modelrepo.Corpus
	Steps      int
	BestStep   int
	BestLoss   float64 // validation MLM loss at the best step
	BestAcc    float64 // validation masked-token accuracy at the best step
	Stopped    string
	Overfit    bool
	TokensPerS float64
	StepsPerS  float64
	Elapsed    time.Duration
	History    []BERTMetrics
}

// mlmMetrics is a pretrain metrics.jsonl line.
type mlmMetrics struct {
	Step           int     `json:"step"`
	Epoch          float64 `json:"epoch"`
	TrainLoss      float64 `json:"train_loss"`
	ValLoss        float64 `json:"val_loss"`
	ValMLMAccuracy float64 `json:"val_mlm_accuracy"`
	LR             float64 `json:"lr"`
	TokensPerS     float64 `json:"tokens_per_s"`
	ElapsedS       float64 `json:"elapsed_s"`
}

func mlmLine(m BERTMetrics) any {
	return mlmMetrics{Step: m.Step, Epoch: m.Epoch, TrainLoss: m.TrainLoss, ValLoss: m.ValLoss,
		ValMLMAccuracy: m.ValMLMAccuracy, LR: m.LR, TokensPerS: m.TokensPerS, ElapsedS: m.ElapsedS}
}

// maskable keeps the sequences with at least one token that may be masked.
func maskable(seqs []bert.Encoded, special func(int32) bool) []bert.Encoded {
	out := seqs[:0:0]
	for _, s := range seqs {
		for _, id := range s.IDs {
			if !special(id) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// BERTPretrain trains a masked-language model: 15% of the non-special tokens of each
// training window chosen (80% [MASK], 10% a random token, 10% kept), the loss on the
// gathered chosen positions, AdamW with warmup and linear decay, evaluation of the MLM loss
// and masked-token accuracy on the tuning windows (fixed masks) with early stopping, and
// checkpoints. The windows are the corpus's (cfg.Corpus): the training subjects' whole
// records streamed shard by shard, or the cohort's censored training sequences; a tuning or
// held-out subject is never trained on. It writes a run folder: manifest.json (kind bert-mlm,
// with the corpus), bert/ (a HuggingFace folder, bert.SaveHF: config.json for
// BertForMaskedLM, model.safetensors with the encoder and cls.predictions.*, the tokenizer),
// the tokenizer files and metrics.jsonl; `train classify --init` starts from it.
func BERTPretrain(ctx context.Context, cfg BERTPretrainConfig, log *slog.Logger,
	progress io.Writer) (*BERTPretrainResult, error) {
	if cfg.MaskRate <= 0 || cfg.MaskRate >= 1 {
		return nil, fmt.Errorf("train pretrain: mask rate %v must be in (0, 1)", cfg.MaskRate)
	}
	b, err := startBERTRun("train pretrain", cfg.Inputs, outFolder{cfg.Out, cfg.Force, cfg.Name}, cfg.BERTModel,
		cfg.BERTTraining, log)
	if err != nil {
		return nil, err
	}
	defer b.close()
	if err := cfg.Corpus.check(b.maxLen); err != nil {
		return nil, err
	}
	if cfg.Config == "" {
		cfg.Config = "tiny"
	}
	bc, err := cfg.choice().Config(b.o.tok.Vocab.Len(), b.maxLen, int(b.pad))
	if err != nil {
		return nil, err
	}
	opened := time.Now()
	corpus, err := openCorpus(ctx, b, cfg.Corpus)
	if err != nil {
		return nil, err
	}
	logCorpus(log, corpus.summary, time.Since(opened).Seconds())
	masking := bert.NewMasking(cfg.MaskRate, b.o.tok.Vocab.Mask, b.o.tok.Vocab.Len(), b.o.tok.Vocab.IsSpecial, b.maxLen)
	w, err := bert.NewWeights(bc, bert.Heads{MLM: true}, cfg.Seed)
	if err != nil {
		return nil, err
	}
	if err := b.openEngine(w, bert.TaskMLM, 0, masking.MaxPerRow); err != nil {
		return nil, err
	}
	if err := b.schedule(corpus.summary.Windows); err != nil {
		return nil, err
	}
	log.Info("bert pretrain (masked language model)", "config", cfg.Config, "hidden", bc.HiddenSize,
		"layers", bc.NumHiddenLayers, "heads", bc.NumAttentionHeads, "params", b.params, "corpus", corpus.summary.Kind,
		"train", corpus.summary.Windows, "tuning", len(corpus.tuning), "mask_rate", cfg.MaskRate, "steps", b.total,
		"steps_per_epoch", b.stepsPerEpoch, "warmup", b.warmup, "device", cfg.Device)

	if err := b.createOut(); err != nil {
		return nil, err
	}
	defer b.abort()
	mlm := map[string]any{"mask_rate": cfg.MaskRate, "max_predictions": masking.MaxPerRow}
	for k, v := range corpus.params {
		mlm[k] = v
	}
	if err := b.openCheckpoints(mlm, mlmLine); err != nil {
		return nil, err
	}
	out, err := b.train(ctx, mlmTask(b, corpus, masking, cfg.onBatch), progress)
	if err != nil {
		return nil, err
	}
	return finishPretrain(ctx, b, cfg, corpus, out)
}

// finishPretrain writes the run folder from the best weights and sums the run up.
func finishPretrain(ctx context.Context, b *bertRun, cfg BERTPretrainConfig, corpus *pretrainCorpus,
	out *bertOutcome) (*BERTPretrainResult, error) {
	bestAcc := out.bestMLMAccuracy()
	b.log.Info("pretraining done", "steps", out.Step, "best_step", out.BestStep, "best_val_loss", out.BestLoss,
		"best_val_mlm_accuracy", bestAcc, "why", out.Stopped, "tokens_per_s", out.tokensPerS,
		"steps_per_s", out.stepsPerS)

	m := b.manifest(KindBERTMLM, cfg.BERTModel, out, map[string]any{"mask_rate": cfg.MaskRate,
		"max_predictions": bert.MaxPredictions(b.maxLen, cfg.MaskRate), "corpus": corpus.summary.Kind})
	m.Metrics["best_val_mlm_accuracy"] = bestAcc
	sum := corpus.summary
	m.Corpus = &sum
	model := &bertFolder{weights: out.best, history: out.History, line: mlmLine,
		export: bert.HFExport{Tokenizer: b.o.tok, MaxLen: b.maxLen, Log: b.log}}
	if _, err := b.finish(ctx, ending{manifest: m, model: model}); err != nil {
		return nil, err
	}
	b.closeWork()
	res := &BERTPretrainResult{Out: cfg.Out, RunID: m.RunID, Config: out.best.Config, Params: b.params,
		Rows:   map[string]int{data.SplitTrain: sum.Windows, data.SplitTuning: len(corpus.tuning)},
		Corpus: sum, Steps: out.Step, BestStep: out.BestStep, BestLoss: out.BestLoss, BestAcc: bestAcc,
		Stopped: out.Stopped, Overfit: out.Overfit, TokensPerS: out.tokensPerS, StepsPerS: out.stepsPerS,
		Elapsed: time.Since(b.start), History: out.History}
	b.log.Info("bert pretrain run written", "out", cfg.Out, "seconds", res.Elapsed.Seconds())
	return res, nil
}

// maskableSplits encodes the training and tuning sequences that have a token to mask.
func maskableSplits(ctx context.Context, b *bertRun, cohort string) (tr, tu []bert.Encoded, err error) {
	splits, err := encodeSplits(ctx, b.o, b.maxLen, data.SplitTrain, data.SplitTuning)
	if err != nil {
		return nil, nil, err
	}
	special := b.o.tok.Vocab.IsSpecial
	tr, tu = maskable(splits[data.SplitTrain].seqs, special), maskable(splits[data.SplitTuning].seqs, special)
	if len(tr) == 0 || len(tu) == 0 {
		return nil, nil, fmt.Errorf("cohort %s has %d training and %d tuning sequences with codes: need both",
			cohort, len(tr), len(tu))
	}
	return tr, tu, nil
}

// mlmTask is masked language modelling in the training loop: the step's training windows
// masked with the step's seed, evaluation on the tuning windows masked once with a fixed
// seed, and a log line per epoch. onBatch (tests) sees every batch the engine is fed.
func mlmTask(b *bertRun, corpus *pretrainCorpus, masking bert.Masking, onBatch func(*bert.Batch)) bertTask {
	evalBatches := bert.MLMEvalBatches(rand.New(rand.NewPCG(evalMaskSeed, 0)), masking, corpus.tuning, 2*b.t.BatchSize,
		b.maxLen, b.pad)
	epochs := &epochLog{log: b.log, stepsPerEpoch: b.stepsPerEpoch, total: b.total, start: time.Now()}
	// The loop fetches a step's batch while the step before it trains (trainLoop.prefetch):
	// the epoch log counts a batch when its step is taken, on the loop's goroutine.
	fed := &fedBatches{byStep: map[int]fedBatch{}}
	return bertTask{
		fetch: func(step int) (*bert.Batch, error) {
			seqs, err := corpus.batch(step)
			if err != nil {
				return nil, err
			}
			r := rand.New(rand.NewPCG(stepSeed(b.t.Seed, purposeMask, step), 0x6d6c6d))
			batch := bert.MakeMLMBatch(r, masking, seqs, b.t.BatchSize, b.maxLen, b.pad)
			fed.put(step, fedBatch{len(seqs), batch})
			if onBatch != nil {
				onBatch(batch)
			}
			return batch, nil
		},
		stepped: func(step int, loss float64) {
			if f, ok := fed.take(step); ok {
				epochs.fed(f.windows, f.batch)
			}
			epochs.stepped(step, loss)
		},
		evaluate: func() (BERTMetrics, error) {
			loss, acc, err := b.eng.EvalMLM(evalBatches)
			return BERTMetrics{ValLoss: loss, ValMLMAccuracy: acc}, err
		},
		line:     mlmLine,
		describe: func(m BERTMetrics) string { return fmt.Sprintf("val MLM accuracy %.4f", m.ValMLMAccuracy) },
	}
}

// bestMLMAccuracy is the validation masked-token accuracy at the best step.
func (o *bertOutcome) bestMLMAccuracy() float64 {
	var acc float64
	for _, m := range o.History {
		if m.Step == o.BestStep {
			acc = m.ValMLMAccuracy
		}
	}
	return acc
}

// fedBatch is a fetched batch and its count of windows, until its step is taken.
type fedBatch struct {
	windows int
	batch   *bert.Batch
}

// fedBatches hands fetched batches from the fetching goroutine to the loop's.
type fedBatches struct {
	mu     sync.Mutex
	byStep map[int]fedBatch
}

func (f *fedBatches) put(step int, b fedBatch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byStep[step] = b
}

func (f *fedBatches) take(step int) (fedBatch, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.byStep[step]
	delete(f.byStep, step)
	return b, ok
}
