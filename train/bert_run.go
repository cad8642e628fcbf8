package train

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
)

// bertRun is what `train classify` and `train pretrain` share of a run: the sequence length,
// the device and engine, the schedule, the checkpoints and the training loop. Its phases
// follow run's: startBERTRun, the driver's weights and sequences, openEngine, schedule,
// createOut, openCheckpoints, train, then finish with a bertFolder and closeWork.
type bertRun struct {
	*run
	t             BERTTraining
	maxLen        int
	pad           int32
	dev           bert.Device
	eng           *bert.Engine
	params        int // the model's weights
	stepsPerEpoch int
	total, warmup int
	work          *runWork
}

// startBERTRun checks the settings and opens the inputs.
func startBERTRun(task string, in Inputs, out outFolder, mf BERTModel, t BERTTraining,
	log *slog.Logger) (*bertRun, error) {
	// A learning rate of 0 trains nothing, but runs: the check that a run left its initial
	// loss (train classify) is tested so.
	if t.BatchSize <= 0 || t.LR < 0 || t.EvalEvery <= 0 {
		return nil, fmt.Errorf("%s: batch size and eval-every must be positive, the learning rate not negative", task)
	}
	r, err := startRun(task, in, out, log)
	if err != nil {
		return nil, err
	}
	return &bertRun{run: r, t: t, maxLen: mf.maxLen(r.o.tok), pad: r.o.tok.Vocab.Pad}, nil
}

// openEngine picks the device and puts w on it for task: AdamW with the run's weight decay
// and clipping (posWeight: the BCE positive weight of classification, 0 for 1; maxMasked: the
// most masked positions per sequence of MLM, 0 for classification).
func (b *bertRun) openEngine(w *bert.Weights, task bert.Task, posWeight float64, maxMasked int) error {
	dev, err := bert.OpenDevice(b.t.Device, b.t.PJRTPlugin, b.t.DType, b.t.Attention, b.log)
	if err != nil {
		return err
	}
	b.dev, b.params = dev, w.NumParams()
	opt := bert.DefaultOptim()
	opt.WeightDecay, opt.Clip, opt.PosWeight = b.t.WeightDecay, b.t.Clip, posWeight
	b.eng, err = bert.NewEngineOn(dev, w, task, opt, int64(b.t.Seed), maxMasked)
	return err
}

// schedule sets the steps for rows training sequences: per epoch, in all (--epochs and
// --max-steps) and of warmup.
func (b *bertRun) schedule(rows int) error {
	b.stepsPerEpoch = (rows + b.t.BatchSize - 1) / b.t.BatchSize
	b.total = totalSteps(b.t.Epochs, b.t.MaxSteps, b.stepsPerEpoch)
	if b.total <= 0 {
		return fmt.Errorf("%s: no steps to take (set --epochs or --max-steps)", b.task)
	}
	b.warmup = warmupSteps(b.t.Warmup, b.total)
	return nil
}

// openCheckpoints readies the work folder: the settings a resumed run must share (extra: the
// task's own), the newest checkpoint restored with --resume, and the live metrics log.
func (b *bertRun) openCheckpoints(extra map[string]any, line func(BERTMetrics) any) error {
	params := trainParams(b.task, b.eng.Config(), b.maxLen, b.t, b.total, b.warmup, b.o, extra)
	var err error
	b.work, err = openWork(b.out.path, b.task, params, b.t.Resume, b.out.force, b.eng, b.log, line)
	return err
}

// close releases the engine and the live metrics log.
func (b *bertRun) close() {
	if b.work != nil {
		b.work.metrics.Close()
	}
	if b.eng != nil {
		b.eng.Close()
	}
}

// closeWork removes the work folder once the model folder holds everything.
func (b *bertRun) closeWork() {
	b.work.metrics.Close()
	os.RemoveAll(b.work.ckpt.work)
}

// bertTask is what a task brings to the training loop.
type bertTask struct {
	batch    func(step int) *bert.Batch
	fetch    func(step int) (*bert.Batch, error) // instead of batch, for batches that may fail
	stepped  func(step int, loss float64)        // optional: hears each step's training loss
	evaluate func() (BERTMetrics, error)         // fills ValLoss and the task's validation metrics
	line     func(BERTMetrics) any               // a metrics.jsonl line
	describe func(BERTMetrics) string            // the progress line's tail
	// stopOn is what early stopping and the best weights follow (nil: the validation loss);
	// patienceSteps, when positive, counts patience in steps rather than evaluations.
	stopOn        *stopMetric
	patienceSteps int
}

// bertOutcome is what training ended with.
type bertOutcome struct {
	loopState
	best       *bert.Weights
	tokensPerS float64
	stepsPerS  float64
}

// train runs the loop from the restored (or fresh) state to the end of training.
func (b *bertRun) train(ctx context.Context, task bertTask, progress io.Writer) (*bertOutcome, error) {
	loop := &trainLoop{eng: b.eng, total: b.total, warmup: b.warmup, stepsPerEpoch: b.stepsPerEpoch, peakLR: b.t.LR,
		evalEvery: b.t.EvalEvery, patience: b.t.Patience, patienceSteps: task.patienceSteps, overfitK: b.t.OverfitK,
		seed: b.t.Seed, stopOn: task.stopOn, batch: task.batch, fetch: task.fetch, stepped: task.stepped,
		evaluate: task.evaluate, line: task.line, describe: task.describe,
		ckpt: b.work.ckpt, checkpointEvery: b.t.CheckpointEvery, afterCheckpoint: b.t.afterCheckpoint,
		metrics: b.work.metrics, progress: progress, log: b.log, what: b.task}
	lr, err := loop.run(ctx, b.work.state, b.work.best)
	if err != nil {
		return nil, err
	}
	return &bertOutcome{loopState: *b.work.state, best: lr.best, tokensPerS: lr.tokensPerS,
		stepsPerS: lr.stepsPerS}, nil
}

// manifest starts a BERT run's manifest: the settings (extra: the task's own), the trained
// length, the device and the metrics every BERT run records.
func (b *bertRun) manifest(kind string, mf BERTModel, out *bertOutcome, extra map[string]any) *modelrepo.Manifest {
	extra["static_shapes"] = b.eng.Static()
	extra["attention"] = b.eng.Attention()
	if sc := b.eng.Scaler(); sc != nil { // float16: where the loss scale ended and what it skipped
		extra["loss_scale"], extra["skipped_steps"] = sc.Scale, b.eng.SkippedSteps()
	}
	mp := manifestParams(mf, b.t, b.eng.Config(), b.maxLen, b.warmup, out.Step, b.dev, extra)
	m := b.run.manifest(kind, mp, map[string]float64{"best_step": float64(out.BestStep), "best_val_loss": out.BestLoss,
		"tokens_per_s": out.tokensPerS, "params": float64(b.params)})
	m.MaxLen, m.Device = b.maxLen, deviceSummary(b.dev)
	return m
}

// bertFolder is a trained BERT as its run folder holds it: metrics.jsonl, and bert/ as a
// HuggingFace folder with the tokenizer (bert.SaveHF).
type bertFolder struct {
	weights *bert.Weights
	history []BERTMetrics
	line    func(BERTMetrics) any
	export  bert.HFExport
}

func (f *bertFolder) save(dir string) error {
	if err := writeHistory(modelrepo.TrainLogPath(dir), f.history, f.line); err != nil {
		return err
	}
	_, err := bert.SaveHF(modelrepo.BERTPath(dir), f.weights, f.export)
	return err
}

// manifestParams are the settings a BERT run records in its manifest.
func manifestParams(mf BERTModel, t BERTTraining, bc bert.Config, maxLen, warmup, steps int, dev bert.Device,
	extra map[string]any) map[string]any {
	p := map[string]any{"config": mf.Config, "hidden": bc.HiddenSize, "layers": bc.NumHiddenLayers,
		"heads": bc.NumAttentionHeads, "intermediate": bc.IntermediateSize, "max_len": maxLen,
		"age_embeddings": bc.AgeEmbeddings, "time_embeddings": bc.TimeEmbeddings, "dropout": bc.HiddenDropoutProb,
		"batch_size": t.BatchSize, "lr": t.LR, "warmup_steps": warmup, "weight_decay": t.WeightDecay, "clip": t.Clip,
		"epochs": t.Epochs, "max_steps": t.MaxSteps, "steps": steps, "eval_every": t.EvalEvery, "patience": t.Patience,
		"seed": t.Seed, "device": dev}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// trainParams are the settings a checkpoint must share with a resumed run.
func trainParams(task string, bc bert.Config, maxLen int, t BERTTraining, total, warmup int, o *opened,
	extra map[string]any) map[string]any {
	p := map[string]any{"task": task, "config": bc, "max_len": maxLen, "batch_size": t.BatchSize, "lr": t.LR,
		"warmup_steps": warmup, "weight_decay": t.WeightDecay, "clip": t.Clip, "steps": total,
		"eval_every": t.EvalEvery, "patience": t.Patience, "overfit_warn": t.OverfitK, "seed": t.Seed,
		"device": t.Device}
	for _, name := range []string{"cohort", "tokenizer"} {
		p[name+"_fingerprint"] = o.fp[name]
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// deviceSummary is the manifest's record of where a BERT trained.
func deviceSummary(d bert.Device) *modelrepo.Device {
	out := &modelrepo.Device{Kind: d.Kind, DType: d.DType}
	if d.GPU != nil {
		out.GPU = d.GPU.Name
	}
	return out
}
