package train

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
)

// BERTPretrainConfig is `medseq train pretrain`: a masked-language model over the censored
// sequences of the cohort's training split.
type BERTPretrainConfig struct {
	Inputs
	Out   string
	Force bool
	Name  string
	BERTModel
	BERTTraining
	MaskRate float64 // share of non-special tokens chosen per sequence (0.15)
}

// DefaultBERTPretrainConfig is the flags' defaults.
func DefaultBERTPretrainConfig() BERTPretrainConfig {
	return BERTPretrainConfig{BERTModel: BERTModel{Config: "tiny", Dropout: -1},
		BERTTraining: BERTTraining{BatchSize: 32, LR: 5e-4, Warmup: 0.1, WeightDecay: 0.01, Clip: 1,
			Epochs: 10, EvalEvery: 200, Patience: 5, OverfitK: 3, Seed: 1, Device: "cpu"}, MaskRate: 0.15}
}

// BERTPretrainResult summarises a pretraining run.
type BERTPretrainResult struct {
	Out        string
	RunID      string
	Config     bert.Config
	Params     int
	Rows       map[string]int // sequences used per split
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
	return mlmMetrics{Step: m.Step, Epoch: m.Epoch, TrainLoss: m.TrainLoss, ValLoss: m.ValLoss, ValMLMAccuracy: m.ValMLMAccuracy,
		LR: m.LR, TokensPerS: m.TokensPerS, ElapsedS: m.ElapsedS}
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

// mlmEvalBatches masks the evaluation sequences once, with a fixed seed, in batches of
// similar lengths.
func mlmEvalBatches(seqs []bert.Encoded, m bert.Masking, rows, maxLen int, pad int32) []*bert.Batch {
	order := make([]int, len(seqs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(seqs[order[a]].IDs) < len(seqs[order[b]].IDs) })
	r := rand.New(rand.NewPCG(evalMaskSeed, 0))
	var out []*bert.Batch
	for lo := 0; lo < len(order); lo += rows {
		hi := min(lo+rows, len(order))
		part := make([]bert.Encoded, 0, hi-lo)
		for _, i := range order[lo:hi] {
			part = append(part, seqs[i])
		}
		out = append(out, bert.MakeMLMBatch(r, m, part, rows, maxLen, pad))
	}
	return out
}

// mlmEval is the mean cross-entropy and the accuracy over every masked position of the
// batches, without dropout.
func mlmEval(eng *bert.Engine, batches []*bert.Batch) (loss, acc float64, err error) {
	V := eng.Config().VocabSize
	var n int
	for _, b := range batches {
		logits, err := eng.MLMLogits(b)
		if err != nil {
			return 0, 0, err
		}
		for k, w := range b.TargetWeights {
			if w == 0 {
				continue
			}
			row := logits[k*V : (k+1)*V]
			mx, arg := math.Inf(-1), 0
			for j, z := range row {
				if float64(z) > mx {
					mx, arg = float64(z), j
				}
			}
			var se float64
			for _, z := range row {
				se += math.Exp(float64(z) - mx)
			}
			t := b.Targets[k]
			loss += mx + math.Log(se) - float64(row[t])
			if arg == int(t) {
				acc++
			}
			n++
		}
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("train pretrain: no masked tokens to evaluate on")
	}
	return loss / float64(n), acc / float64(n), nil
}

// BERTPretrain trains a masked-language model: 15% of the non-special tokens of each
// training sequence chosen (80% [MASK], 10% a random token, 10% kept), the loss on the
// gathered chosen positions, AdamW with warmup and linear decay, evaluation of the MLM loss
// and masked-token accuracy on the tuning split (fixed masks) with early stopping, and
// checkpoints. It writes a run folder: manifest.json (kind bert-mlm), bert/ (a HuggingFace
// folder, bert.SaveHF: config.json for BertForMaskedLM, model.safetensors with the encoder and
// cls.predictions.*, the tokenizer), the tokenizer files and metrics.jsonl; `train classify
// --init` starts from it.
func BERTPretrain(ctx context.Context, cfg BERTPretrainConfig, log *slog.Logger, progress io.Writer) (res *BERTPretrainResult, err error) {
	start := time.Now()
	if cfg.BatchSize <= 0 || cfg.LR <= 0 || cfg.EvalEvery <= 0 {
		return nil, fmt.Errorf("train pretrain: batch size, learning rate and eval-every must be positive")
	}
	if cfg.MaskRate <= 0 || cfg.MaskRate >= 1 {
		return nil, fmt.Errorf("train pretrain: mask rate %v must be in (0, 1)", cfg.MaskRate)
	}
	o, err := cfg.Inputs.open(log)
	if err != nil {
		return nil, err
	}
	if cfg.Config == "" {
		cfg.Config = "tiny"
	}
	maxLen := cfg.maxLen(o.tok)
	pad := o.tok.Vocab.Pad
	bc, err := cfg.modelConfig(o.tok.Vocab.Len(), maxLen, int(pad))
	if err != nil {
		return nil, err
	}
	splits, err := encodeSplits(ctx, o, maxLen, data.SplitTrain, data.SplitTuning)
	if err != nil {
		return nil, err
	}
	special := o.tok.Vocab.IsSpecial
	tr, tu := maskable(splits[data.SplitTrain].seqs, special), maskable(splits[data.SplitTuning].seqs, special)
	if len(tr) == 0 || len(tu) == 0 {
		return nil, fmt.Errorf("cohort %s has %d training and %d tuning sequences with codes: need both", cfg.Cohort, len(tr), len(tu))
	}
	res = &BERTPretrainResult{Out: cfg.Out, Config: bc, Rows: map[string]int{data.SplitTrain: len(tr), data.SplitTuning: len(tu)}}
	masking := bert.Masking{Rate: cfg.MaskRate, MaskID: o.tok.Vocab.Mask, VocabSize: o.tok.Vocab.Len(), Special: special,
		MaxPerRow: bert.MaxPredictions(maxLen, cfg.MaskRate)}

	backend, dev, err := openDevice(cfg.BERTTraining, log)
	if err != nil {
		return nil, err
	}
	w, err := bert.NewWeights(bc, bert.Heads{MLM: true}, cfg.Seed)
	if err != nil {
		return nil, err
	}
	res.Params = w.NumParams()
	opt := bert.DefaultOptim()
	opt.WeightDecay, opt.Clip = cfg.WeightDecay, cfg.Clip
	eng, err := bert.NewEngine(backend, w, bert.TaskMLM, opt, int64(cfg.Seed),
		engineOptions(cfg.BERTTraining, dev, bert.StaticPositions(masking.MaxPerRow))...)
	if err != nil {
		return nil, err
	}
	defer eng.Close()

	stepsPerEpoch := (len(tr) + cfg.BatchSize - 1) / cfg.BatchSize
	total := totalSteps(cfg.Epochs, cfg.MaxSteps, stepsPerEpoch)
	if total <= 0 {
		return nil, fmt.Errorf("train pretrain: no steps to take (set --epochs or --max-steps)")
	}
	warmup := warmupSteps(cfg.Warmup, total)
	log.Info("bert pretrain (masked language model)", "config", cfg.Config, "hidden", bc.HiddenSize, "layers", bc.NumHiddenLayers,
		"heads", bc.NumAttentionHeads, "params", res.Params, "train", len(tr), "tuning", len(tu), "mask_rate", cfg.MaskRate,
		"steps", total, "warmup", warmup, "device", cfg.Device)

	dir, err := data.CreateAtomicDir(cfg.Out, cfg.Force)
	if err != nil {
		return nil, err
	}
	defer dir.Abort()
	params, err := trainParams("train pretrain", bc, maxLen, cfg.BERTTraining, total, warmup, o, map[string]any{"mask_rate": cfg.MaskRate, "max_predictions": masking.MaxPerRow})
	if err != nil {
		return nil, err
	}
	work, err := openWork(cfg.Out, "train pretrain", params, cfg.Resume, cfg.Force, eng, log, mlmLine)
	if err != nil {
		return nil, err
	}
	defer work.metrics.Close()

	evalBatches := mlmEvalBatches(tu, masking, 2*cfg.BatchSize, maxLen, pad)
	if eng.Static() { // one shape for the evaluation too
		for i, b := range evalBatches {
			evalBatches[i] = b.PadTo(maxLen, bert.StaticPositions(masking.MaxPerRow))
		}
	}
	order := &sampleOrder{n: len(tr), batch: cfg.BatchSize, seed: cfg.Seed}
	loop := &trainLoop{eng: eng, total: total, warmup: warmup, stepsPerEpoch: stepsPerEpoch, peakLR: cfg.LR, evalEvery: cfg.EvalEvery,
		patience: cfg.Patience, overfitK: cfg.OverfitK, seed: cfg.Seed,
		batch: func(step int) *bert.Batch {
			rows := order.rows(step)
			seqs := make([]bert.Encoded, len(rows))
			for j, i := range rows {
				seqs[j] = tr[i]
			}
			r := rand.New(rand.NewPCG(stepSeed(cfg.Seed, purposeMask, step), 0x6d6c6d))
			return bert.MakeMLMBatch(r, masking, seqs, cfg.BatchSize, maxLen, pad)
		},
		evaluate: func() (BERTMetrics, error) {
			loss, acc, err := mlmEval(eng, evalBatches)
			return BERTMetrics{ValLoss: loss, ValMLMAccuracy: acc}, err
		},
		line:     mlmLine,
		describe: func(m BERTMetrics) string { return fmt.Sprintf("val MLM accuracy %.4f", m.ValMLMAccuracy) },
		ckpt:     work.ckpt, checkpointEvery: cfg.CheckpointEvery, afterCheckpoint: cfg.afterCheckpoint,
		metrics: work.metrics, progress: progress, log: log, what: "train pretrain"}
	lr, err := loop.run(ctx, work.state, work.best)
	if err != nil {
		return nil, err
	}
	st := work.state
	res.Steps, res.BestStep, res.BestLoss, res.Stopped, res.Overfit, res.History = st.Step, st.BestStep, st.BestLoss, st.Stopped, st.Overfit, st.History
	res.TokensPerS, res.StepsPerS = lr.tokensPerS, lr.stepsPerS
	for _, m := range st.History {
		if m.Step == st.BestStep {
			res.BestAcc = m.ValMLMAccuracy
		}
	}
	log.Info("pretraining done", "steps", res.Steps, "best_step", res.BestStep, "best_val_loss", res.BestLoss, "best_val_mlm_accuracy", res.BestAcc,
		"why", res.Stopped, "tokens_per_s", res.TokensPerS, "steps_per_s", res.StepsPerS)

	if err := writeHistory(modelrepo.TrainLogPath(dir.Tmp), st.History, mlmLine); err != nil {
		return nil, err
	}
	bdir := filepath.Join(dir.Tmp, bert.Dir)
	if _, err := bert.SaveHF(bdir, lr.best, bert.HFExport{Tokenizer: o.tok, MaxLen: maxLen, Log: log}); err != nil {
		return nil, err
	}
	mp := manifestParams(cfg.BERTModel, cfg.BERTTraining, bc, maxLen, warmup, res.Steps, dev, map[string]any{"mask_rate": cfg.MaskRate,
		"max_predictions": masking.MaxPerRow, "static_shapes": eng.Static()})
	m := &modelrepo.Manifest{Manifest: *data.NewManifest("train pretrain", mp), Kind: KindBERTMLM, Name: cfg.Name,
		MaxLen: maxLen, Device: deviceSummary(dev),
		Metrics: map[string]float64{"best_step": float64(res.BestStep), "best_val_loss": res.BestLoss, "best_val_mlm_accuracy": res.BestAcc,
			"tokens_per_s": res.TokensPerS, "params": float64(res.Params)}}
	if err := o.commitRun(dir, m); err != nil {
		return nil, err
	}
	work.metrics.Close()
	os.RemoveAll(work.ckpt.work)
	res.RunID = m.RunID
	res.Elapsed = time.Since(start)
	log.Info("bert pretrain run written", "out", cfg.Out, "seconds", res.Elapsed.Seconds())
	return res, nil
}
