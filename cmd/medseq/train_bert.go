package main

import (
	"context"
	"fmt"
	"io"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/train"
)

func trainClassifyFlags(e *env, args []string) (*train.BERTClassifyConfig, error) {
	fs := newFlags(e, "train classify", "--meds DIR --cohort DIR --tokenizer DIR --out MODELDIR [flags]")
	cfg := train.DefaultBERTClassifyConfig()
	fs.StringVar(&cfg.MEDS, "meds", "", "MEDS dataset folder")
	fs.StringVar(&cfg.Cohort, "cohort", "", "cohort folder (medseq data cohort)")
	fs.StringVar(&cfg.Cohort, "labels", "", "alias of --cohort")
	fs.StringVar(&cfg.Tokenizer, "tokenizer", "", "tokenizer folder (medseq tokenize build)")
	fs.StringVar(&cfg.Out, "out", "", "model version folder to write, e.g. models/t2d-bert/1")
	fs.StringVar(&cfg.Name, "name", "", "model name recorded in the manifest")
	fs.BoolVar(&cfg.Force, "force", false, "replace an existing output folder")
	fs.BoolVar(&cfg.AllowMismatch, "allow-mismatch", false, "accept inputs from different runs")
	fs.StringVar(&cfg.Config, "config", cfg.Config, "model size: tiny, small or base")
	fs.IntVar(&cfg.Hidden, "hidden", 0, "hidden size (overrides --config; the FFN becomes 4x unless --intermediate)")
	fs.IntVar(&cfg.Layers, "layers", 0, "transformer layers (overrides --config)")
	fs.IntVar(&cfg.Heads, "heads", 0, "attention heads (overrides --config)")
	fs.IntVar(&cfg.Intermediate, "intermediate", 0, "feed-forward size (overrides --config)")
	fs.BoolVar(&cfg.AgeEmbeddings, "age-embeddings", false, "add embeddings of each token's age in years (BEHRT)")
	fs.IntVar(&cfg.MaxLen, "max-len", 0, "tokens per sequence with [CLS] and [SEP] (0: the tokenizer's); older codes are dropped")
	fs.Float64Var(&cfg.Dropout, "dropout", 0.1, "dropout on hidden states and attention probabilities")
	fs.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "sequences per step")
	fs.Float64Var(&cfg.LR, "lr", cfg.LR, "peak learning rate (AdamW)")
	fs.Float64Var(&cfg.Warmup, "warmup", cfg.Warmup, "warmup steps, or a fraction of all steps when below 1; then linear decay to 0")
	fs.Float64Var(&cfg.WeightDecay, "weight-decay", cfg.WeightDecay, "AdamW weight decay (dense weights only; never LayerNorm, biases or embeddings)")
	fs.Float64Var(&cfg.Clip, "clip", cfg.Clip, "clip the gradients' global norm to this (0: off)")
	fs.Float64Var(&cfg.Epochs, "epochs", cfg.Epochs, "passes over the training split (ignored with --max-steps)")
	fs.IntVar(&cfg.MaxSteps, "max-steps", 0, "training steps (0: --epochs decide)")
	fs.IntVar(&cfg.EvalEvery, "eval-every", cfg.EvalEvery, "evaluate on the tuning split every N steps")
	fs.IntVar(&cfg.Patience, "patience", cfg.Patience, "stop after N evaluations without a better validation loss (0: never)")
	fs.IntVar(&cfg.OverfitK, "overfit-warn", cfg.OverfitK, "warn after N evaluations of falling training loss and rising validation loss (0: never)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (initialisation, batches, dropout)")
	fs.StringVar(&cfg.Device, "device", cfg.Device, "cpu (gpu: not in this build yet)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("meds", cfg.MEDS, "cohort", cfg.Cohort, "tokenizer", cfg.Tokenizer, "out", cfg.Out); err != nil {
		return nil, err
	}
	if _, err := bert.Named(cfg.Config, 10, 10); err != nil {
		return nil, usagef("flag --config: %v", err)
	}
	switch {
	case cfg.BatchSize < 1:
		return nil, usagef("flag --batch-size: must be at least 1")
	case cfg.LR <= 0:
		return nil, usagef("flag --lr: must be positive")
	case cfg.Dropout < 0 || cfg.Dropout >= 1:
		return nil, usagef("flag --dropout: must be in [0, 1)")
	case cfg.Warmup < 0 || cfg.WeightDecay < 0 || cfg.Clip < 0:
		return nil, usagef("flags --warmup, --weight-decay and --clip must not be negative")
	case cfg.Epochs <= 0 && cfg.MaxSteps <= 0:
		return nil, usagef("flag --epochs or --max-steps: one must be positive")
	case cfg.EvalEvery < 1:
		return nil, usagef("flag --eval-every: must be at least 1")
	case cfg.MaxLen != 0 && cfg.MaxLen < 3:
		return nil, usagef("flag --max-len: at least 3, or 0 for the tokenizer's")
	case cfg.Device != "cpu" && cfg.Device != "gpu" && cfg.Device != "auto":
		return nil, usagef("flag --device: %q is not cpu, gpu or auto", cfg.Device)
	}
	return &cfg, nil
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
	fmt.Fprintf(w, "bert model %s (run %s)\n", r.Out, r.RunID)
	fmt.Fprintf(w, "  model              hidden %d, layers %d, heads %d, FFN %d, max len %d, %d parameters\n",
		c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings, r.Params)
	fmt.Fprintf(w, "  rows               train %d, tuning %d, held_out %d\n", r.Rows[data.SplitTrain], r.Rows[data.SplitTuning], r.Rows[data.SplitHeldOut])
	fmt.Fprintf(w, "  steps              %d (best %d, val loss %.4f; %s)\n", r.Steps, r.BestStep, r.BestLoss, r.Stopped)
	fmt.Fprintf(w, "  speed              %.1f steps/s, %.0f tokens/s (%.1fs in all)\n", r.StepsPerS, r.TokensPerS, r.Elapsed.Seconds())
	fmt.Fprintf(w, "  AUROC              train %.3f, tuning %.3f, held_out %.3f\n", r.AUROC[data.SplitTrain], r.AUROC[data.SplitTuning], r.AUROC[data.SplitHeldOut])
	if r.Overfit {
		fmt.Fprintln(w, "  warning            training loss fell while validation loss rose: overfitting")
	}
}
