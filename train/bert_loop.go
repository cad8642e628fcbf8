package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
)

// Randomness in training is a pure function of (seed, step), so a run resumed from a
// checkpoint replays exactly what an unbroken run does: the order of the training rows is a
// fresh permutation per epoch seeded by (seed, epoch); the dropout masks are drawn from a
// random state seeded by (seed, step); MLM masking likewise.

// splitmix64 mixes a 64-bit value (Steele et al.), for deriving per-step seeds.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// stepSeed is the seed of step's random draws for one purpose.
func stepSeed(seed uint64, purpose uint64, step int) uint64 {
	return splitmix64(splitmix64(seed^purpose) + uint64(step))
}

const (
	purposeOrder   = 0x6f72646572 // "order"
	purposeDropout = 0x64726f70   // "drop"
	purposeMask    = 0x6d61736b   // "mask"
	// evalMaskSeed fixes the masks of MLM evaluation, so validation losses compare across
	// evaluations and runs.
	evalMaskSeed = 0x6576616c6d61736b
)

// sampleOrder gives the training rows of each step: row k of the endless stream is
// perm(epoch k/n)[k mod n], each epoch's permutation seeded by (seed, epoch).
type sampleOrder struct {
	n, batch int
	seed     uint64
	epoch    int
	perm     []int
}

func (o *sampleOrder) rows(step int) []int {
	out := make([]int, o.batch)
	for j := range out {
		k := step*o.batch + j
		e := k / o.n
		if o.perm == nil || e != o.epoch {
			o.perm = rand.New(rand.NewPCG(stepSeed(o.seed, purposeOrder, e), 0x7472616963)).Perm(o.n)
			o.epoch = e
		}
		out[j] = o.perm[k%o.n]
	}
	return out
}

// trainLoop runs AdamW steps with evaluation, early stopping, overfitting warnings,
// checkpoints and progress.
type trainLoop struct {
	eng           *bert.Engine
	total, warmup int
	stepsPerEpoch int
	peakLR        float64
	evalEvery     int
	patience      int // evaluations without a better score before stopping (0: never)
	// patienceSteps, when positive, replaces patience: stop once this many steps have passed
	// since the best evaluation (train classify's --patience in epochs).
	patienceSteps int
	overfitK      int
	seed          uint64
	batch         func(step int) *bert.Batch
	// fetch, when set, replaces batch for a task whose batches may fail (read from disk);
	// stepped, when set, hears each step's training loss.
	fetch   func(step int) (*bert.Batch, error)
	stepped func(step int, loss float64)
	// evaluate fills ValLoss and the task's validation metrics.
	evaluate func() (BERTMetrics, error)
	// line is what metrics.jsonl gets for an evaluation; describe is the progress line's tail.
	line     func(BERTMetrics) any
	describe func(BERTMetrics) string
	// stopOn is what early stopping and the best weights follow (nil: the validation loss).
	stopOn *stopMetric

	ckpt            *checkpointer // nil: no checkpoints
	checkpointEvery int
	afterCheckpoint func(step int) // tests: simulate a kill right after a checkpoint

	metrics  io.Writer // live metrics.jsonl (may be nil)
	progress io.Writer
	log      *slog.Logger
	what     string // for messages: "train classify"
}

// loopResult is what the loop measured in this process.
type loopResult struct {
	best       *bert.Weights
	tokensPerS float64
	stepsPerS  float64
}

func (l *trainLoop) writeLine(m BERTMetrics) error {
	if l.metrics == nil {
		return nil
	}
	buf, err := json.Marshal(l.line(m))
	if err != nil {
		return err
	}
	_, err = l.metrics.Write(append(buf, '\n'))
	return err
}

// run continues st (a fresh state or one restored from a checkpoint, with best its best
// weights) to the end of training.
func (l *trainLoop) run(ctx context.Context, st *loopState, best *bert.Weights) (*loopResult, error) {
	if l.eng.Steps() != st.Step {
		return nil, fmt.Errorf("%s: the engine has taken %d steps, the loop state %d", l.what, l.eng.Steps(), st.Step)
	}
	trainStart := time.Now()
	windowStart, windowTokens, tokens, first := time.Now(), 0, 0, st.Step
	pending := l.prefetch(st.Step)
	defer func() { pending.wait() }() // never leave a fetch running behind the loop
	for st.Step < l.total {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		step := st.Step
		b, err := pending.wait()
		if err != nil {
			return nil, err
		}
		pending = l.prefetch(step + 1) // the next batch is prepared while this step trains
		if err := l.eng.SetDropoutSeed(int64(stepSeed(l.seed, purposeDropout, step))); err != nil {
			return nil, err
		}
		lr := LRAt(step, l.warmup, l.total, l.peakLR)
		sr, err := l.eng.TrainStep(b, lr)
		if err != nil {
			return nil, err
		}
		if l.stepped != nil {
			l.stepped(step, sr.Loss)
		}
		st.Step++
		// a float16 step the scaler skipped may have no loss
		if !sr.Skipped || !math.IsInf(sr.Loss, 0) && !math.IsNaN(sr.Loss) {
			st.LossSum += sr.Loss
			st.LossN++
		}
		for _, m := range b.Mask {
			tokens += int(m)
			windowTokens += int(m)
		}
		if l.progress != nil && (step%10 == 0 || st.Step == l.total) {
			el := time.Since(trainStart).Seconds()
			rate := float64(st.Step-first) / el
			fmt.Fprintf(l.progress, "\rstep %d/%d  loss %.4f  lr %.2g  %.0f tokens/s  ETA %s   ",
				st.Step, l.total, sr.Loss, lr, float64(tokens)/el,
				(time.Duration(float64(l.total-st.Step)/rate) * time.Second).Round(time.Second))
		}
		if st.Step%l.evalEvery == 0 || st.Step == l.total {
			stop, err := l.evalStep(st, &best, lr, windowStart, windowTokens, trainStart)
			if err != nil {
				return nil, err
			}
			windowStart, windowTokens = time.Now(), 0
			if stop {
				break
			}
		}
		if l.ckpt != nil && l.checkpointEvery > 0 && st.Step%l.checkpointEvery == 0 && st.Step < l.total {
			p, err := l.ckpt.save(l.eng, st, best)
			if err != nil {
				return nil, fmt.Errorf("%s: checkpoint: %w", l.what, err)
			}
			l.log.Debug("checkpoint", "step", st.Step, "dir", p)
			if l.afterCheckpoint != nil {
				l.afterCheckpoint(st.Step)
			}
		}
	}
	if st.Stopped == "" {
		st.Stopped = "max steps"
	}
	if l.progress != nil {
		fmt.Fprintln(l.progress)
	}
	if best == nil {
		return nil, fmt.Errorf("%s: no evaluation produced weights", l.what)
	}
	el := time.Since(trainStart).Seconds()
	return &loopResult{best: best, tokensPerS: float64(tokens) / el, stepsPerS: float64(st.Step-first) / el}, nil
}

// fetched is a batch being prepared on another goroutine (prefetch).
type fetched struct {
	ch   chan struct{}
	b    *bert.Batch
	err  error
	done bool
}

// prefetch starts preparing step's batch (nextBatch) on another goroutine, so that it is ready
// when the step before it has trained; nil past the last step. Fetches run one at a time and in
// step order: the loop waits for each before starting the next.
func (l *trainLoop) prefetch(step int) *fetched {
	if step >= l.total {
		return nil
	}
	f := &fetched{ch: make(chan struct{})}
	go func() {
		defer close(f.ch)
		f.b, f.err = l.nextBatch(step)
	}()
	return f
}

// wait is the prefetched batch (nil, nil for nil: no batch was asked for); a second wait
// returns nothing.
func (f *fetched) wait() (*bert.Batch, error) {
	if f == nil || f.done {
		return nil, nil
	}
	<-f.ch
	f.done = true
	return f.b, f.err
}

// nextBatch is step's batch, from fetch when the task has one.
func (l *trainLoop) nextBatch(step int) (*bert.Batch, error) {
	if l.fetch != nil {
		return l.fetch(step)
	}
	return l.batch(step), nil
}

// evalStep evaluates after st.Step steps, records the metrics and decides early stopping.
func (l *trainLoop) evalStep(st *loopState, best **bert.Weights, lr float64,
	windowStart time.Time, windowTokens int, trainStart time.Time) (stop bool, err error) {
	m, err := l.evaluate()
	if err != nil {
		return false, err
	}
	el := time.Since(windowStart).Seconds()
	m.Step, m.Epoch, m.TrainLoss, m.LR = st.Step, float64(st.Step)/float64(l.stepsPerEpoch),
		st.LossSum/float64(st.LossN), lr
	m.TokensPerS, m.ElapsedS = float64(windowTokens)/el, time.Since(trainStart).Seconds()
	st.History = append(st.History, m)
	if err := l.writeLine(m); err != nil {
		return false, err
	}
	if l.progress != nil {
		fmt.Fprintf(l.progress, "\rstep %d/%d  train loss %.4f  val loss %.4f  %s  %.0f tokens/s\n",
			m.Step, l.total, m.TrainLoss, m.ValLoss, l.describe(m), m.TokensPerS)
	}
	l.log.Debug("eval", "step", m.Step, "train_loss", m.TrainLoss, "val_loss", m.ValLoss)
	if st.HavePrev && m.TrainLoss < st.PrevTrain && m.ValLoss > st.PrevVal {
		st.Rising++
	} else {
		st.Rising = 0
	}
	if l.overfitK > 0 && st.Rising >= l.overfitK && !st.Overfit {
		st.Overfit = true
		l.log.Warn("overfitting: training loss keeps falling while validation loss rises "+
			"(raise --dropout or --weight-decay, or stop earlier)",
			"evaluations", st.Rising, "step", m.Step, "train_loss", m.TrainLoss, "val_loss", m.ValLoss)
	}
	st.HavePrev, st.PrevTrain, st.PrevVal = true, m.TrainLoss, m.ValLoss
	st.LossSum, st.LossN = 0, 0
	return l.keepBest(st, m, best)
}

// keepBest keeps the weights of an evaluation better than the best so far and decides early
// stopping.
func (l *trainLoop) keepBest(st *loopState, m BERTMetrics, best **bert.Weights) (stop bool, err error) {
	metric := l.stopOn
	if metric == nil {
		metric = lossMetric()
	}
	if prev, ok := st.bestMetrics(); !ok || metric.score(m) > metric.score(prev) {
		st.HaveBest, st.BestLoss, st.BestStep, st.Bad = true, m.ValLoss, m.Step, 0
		if *best, err = l.eng.Weights(); err != nil {
			return false, err
		}
		return false, nil
	}
	st.Bad++
	switch {
	case l.patienceSteps > 0 && st.Step-st.BestStep >= l.patienceSteps:
		st.Stopped = fmt.Sprintf("early stopping: no better %s in %.3g epochs (%d evaluations)", metric.name,
			float64(st.Step-st.BestStep)/float64(l.stepsPerEpoch), st.Bad)
		return true, nil
	case l.patienceSteps <= 0 && l.patience > 0 && st.Bad >= l.patience:
		st.Stopped = fmt.Sprintf("early stopping: no better %s in %d evaluations", metric.name, st.Bad)
		return true, nil
	}
	return false, nil
}

// stopMetric is what early stopping follows: a score of an evaluation, higher is better.
type stopMetric struct {
	name  string // for messages: "validation loss"
	score func(BERTMetrics) float64
}

// lossMetric follows the validation loss.
func lossMetric() *stopMetric {
	return &stopMetric{name: "validation loss", score: func(m BERTMetrics) float64 { return -m.ValLoss }}
}

// bestMetrics is the evaluation of the best step so far.
func (st *loopState) bestMetrics() (BERTMetrics, bool) {
	if !st.HaveBest {
		return BERTMetrics{}, false
	}
	for _, m := range st.History {
		if m.Step == st.BestStep {
			return m, true
		}
	}
	return BERTMetrics{ValLoss: st.BestLoss}, true
}

// totalSteps is the number of steps: --epochs and --max-steps both bound it, the smaller
// wins (either may be 0 for no bound, not both).
func totalSteps(epochs float64, maxSteps, stepsPerEpoch int) int {
	total := 0
	if epochs > 0 {
		total = int(math.Ceil(epochs * float64(stepsPerEpoch)))
	}
	if maxSteps > 0 && (total == 0 || maxSteps < total) {
		total = maxSteps
	}
	return total
}

// warmupSteps reads --warmup: steps, or a fraction of total when below 1.
func warmupSteps(w float64, total int) int {
	if w > 0 && w < 1 {
		return int(w * float64(total))
	}
	return int(w)
}

// runCheckpoints sets up the work folder of out for a loop: the checkpointer, the restored
// state (or a fresh one) and the live metrics file. close must be called when the loop ends;
// finish removes the work folder after the model folder is committed.
type runWork struct {
	ckpt    *checkpointer
	state   *loopState
	best    *bert.Weights
	metrics *os.File
}

func openWork(out, task string, params map[string]any, resume, force bool, eng *bert.Engine, log *slog.Logger,
	line func(BERTMetrics) any) (*runWork, error) {
	c := &checkpointer{work: WorkDir(out), task: task, params: params, log: log}
	ck, err := c.prepare(resume, force)
	if err != nil {
		return nil, err
	}
	w := &runWork{ckpt: c, state: &loopState{}}
	if ck != nil {
		if w.state, w.best, err = ck.restore(eng); err != nil {
			return nil, err
		}
		log.Info("resuming", "checkpoint", ck.Dir, "step", w.state.Step, "evaluations", len(w.state.History))
	}
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		return nil, err
	}
	// The live metrics log restarts from the checkpoint's history.
	if w.metrics, err = os.Create(filepath.Join(c.work, modelrepo.TrainLogFile)); err != nil {
		return nil, err
	}
	for _, m := range w.state.History {
		buf, _ := json.Marshal(line(m))
		if _, err := w.metrics.Write(append(buf, '\n')); err != nil {
			w.metrics.Close()
			return nil, err
		}
	}
	return w, nil
}

// writeHistory writes metrics.jsonl into a model folder.
func writeHistory(path string, h []BERTMetrics, line func(BERTMetrics) any) error {
	var buf []byte
	for _, m := range h {
		b, err := json.Marshal(line(m))
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	return data.WriteFileAtomic(path, buf)
}
