package train

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
)

// Kinds of pretraining corpus (CorpusConfig.Kind).
const (
	// CorpusRecords: the whole records of every training subject of the dataset, cut into
	// windows of the model's length (corpus_windows.go), streamed through a shuffle buffer.
	CorpusRecords = modelrepo.CorpusRecords
	// CorpusCohort: the cohort's censored training sequences, one per label.
	CorpusCohort = modelrepo.CorpusCohort
)

// CorpusConfig is what `train pretrain` learns from.
type CorpusConfig struct {
	Kind string // CorpusRecords (default) or CorpusCohort
	// Until keeps only the records' events before it (data.ParseUntil: YYYY-MM-DD or RFC
	// 3339; "": every event). Records only.
	Until string
	// Stride is the tokens consecutive windows of a record share (0: none; below max len).
	Stride int
	// ShuffleBuffer is the windows the training stream draws from at random (default 4096).
	ShuffleBuffer int
	// ValWindows caps the tuning windows of the MLM validation: a uniform sample of them when
	// there are more (default 1000).
	ValWindows int
}

// DefaultCorpusConfig is the flags' defaults.
func DefaultCorpusConfig() CorpusConfig {
	return CorpusConfig{Kind: CorpusRecords, ShuffleBuffer: 4096, ValWindows: 1000}
}

// check validates the settings for windows of maxLen tokens.
func (c *CorpusConfig) check(maxLen int) error {
	if c.Kind == "" {
		c.Kind = CorpusRecords
	}
	switch {
	case c.Kind != CorpusRecords && c.Kind != CorpusCohort:
		return fmt.Errorf("train pretrain: corpus %q: want %s or %s", c.Kind, CorpusRecords, CorpusCohort)
	case c.Kind == CorpusCohort && (c.Until != "" || c.Stride != 0):
		return fmt.Errorf("train pretrain: --until and --stride cut records: they need --corpus %s", CorpusRecords)
	case c.Stride < 0 || c.Stride >= maxLen-2:
		return fmt.Errorf("train pretrain: stride %d: from 0 to fewer than the %d tokens a window holds",
			c.Stride, maxLen-2)
	case c.ShuffleBuffer < 0 || c.ValWindows < 0:
		return fmt.Errorf("train pretrain: shuffle buffer and validation windows must not be negative")
	}
	if c.ShuffleBuffer == 0 {
		c.ShuffleBuffer = DefaultCorpusConfig().ShuffleBuffer
	}
	if c.ValWindows == 0 {
		c.ValWindows = DefaultCorpusConfig().ValWindows
	}
	_, err := data.ParseUntil(c.Until)
	if err != nil {
		return fmt.Errorf("train pretrain: --until: %w", err)
	}
	return nil
}

// pretrainCorpus is a corpus as the training loop reads it.
type pretrainCorpus struct {
	summary modelrepo.Corpus
	tuning  []bert.Encoded // the validation windows
	// batch returns the training windows of a step.
	batch func(step int) ([]bert.Encoded, error)
	// params are the settings a resumed run must share.
	params map[string]any
}

// openCorpus opens the corpus cfg names for a run of windows of b.maxLen tokens.
func openCorpus(ctx context.Context, b *bertRun, cfg CorpusConfig) (*pretrainCorpus, error) {
	if cfg.Kind == CorpusCohort {
		return cohortCorpus(ctx, b)
	}
	return recordCorpus(ctx, b, cfg)
}

// cohortCorpus is the cohort's censored training and tuning sequences that have a token to
// mask, the training ones in a fresh order each epoch (sampleOrder).
func cohortCorpus(ctx context.Context, b *bertRun) (*pretrainCorpus, error) {
	tr, tu, err := maskableSplits(ctx, b, b.o.in.Cohort)
	if err != nil {
		return nil, err
	}
	sum := modelrepo.Corpus{Kind: CorpusCohort, Windows: len(tr), MaxLen: b.maxLen, TuningWindows: len(tu)}
	subjects := map[string]map[int64]bool{}
	for _, l := range b.o.cohort.Labels {
		if subjects[l.Split] == nil {
			subjects[l.Split] = map[int64]bool{}
		}
		subjects[l.Split][l.SubjectID] = true
	}
	sum.Subjects, sum.TuningSubjects = len(subjects[data.SplitTrain]), len(subjects[data.SplitTuning])
	sum.HeldOutSubjects = len(subjects[data.SplitHeldOut])
	for _, s := range tr {
		sum.Tokens += int64(len(s.IDs))
	}
	order := &sampleOrder{n: len(tr), batch: b.t.BatchSize, seed: b.t.Seed}
	batch := func(step int) ([]bert.Encoded, error) {
		idx := order.rows(step)
		seqs := make([]bert.Encoded, len(idx))
		for j, i := range idx {
			seqs[j] = tr[i]
		}
		return seqs, nil
	}
	// A cohort corpus's checkpoints hold the settings they held before corpora had a kind.
	return &pretrainCorpus{summary: sum, tuning: tu, batch: batch, params: map[string]any{}}, nil
}

// recordCorpus counts the training subjects' windows (one pass over the dataset that also
// keeps the validation windows: a uniform sample of the tuning subjects' windows) and
// returns the stream of training windows.
func recordCorpus(ctx context.Context, b *bertRun, cfg CorpusConfig) (*pretrainCorpus, error) {
	splits, err := data.NewRecordSplits(b.o.ds, b.o.cohort)
	if err != nil {
		return nil, err
	}
	until, _ := data.ParseUntil(cfg.Until) // checked
	recs := &data.Records{Dataset: b.o.ds, Splits: splits, Until: until}
	c := &recordCount{o: b.o, sum: modelrepo.Corpus{Kind: CorpusRecords, Until: data.FormatUntil(until),
		Stride: cfg.Stride, MaxLen: b.maxLen, ShuffleBuffer: cfg.ShuffleBuffer},
		win: &windower{cm: b.o.tok.NewCodeMap(b.o.ds.Codes), codes: b.o.ds.Codes, demo: b.o.cohort.Demographics,
			maxLen: b.maxLen, stride: cfg.Stride, visits: b.o.tok.VisitSeparators},
		val: &reservoir{size: cfg.ValWindows, rng: rand.New(rand.NewPCG(evalMaskSeed, 0x74756e696e67))}} // "tuning"
	counts, err := recs.ForEach(ctx, nil, []string{data.SplitTrain, data.SplitTuning}, c.add)
	if err != nil {
		return nil, err
	}
	sum := c.sum
	sum.TuningSubjects, sum.HeldOutSubjects = counts.Subjects[data.SplitTuning], counts.Subjects[data.SplitHeldOut]
	sum.TuningWindows, sum.Unassigned, sum.SplitSources = len(c.val.kept), counts.Unassigned, counts.Sources
	if sum.Windows == 0 || sum.TuningWindows == 0 {
		return nil, fmt.Errorf("dataset %s has %d training and %d tuning windows with codes (the splits of cohort %s, "+
			"else the dataset's subject_splits): need both", b.o.ds.Root, sum.Windows, sum.TuningWindows, b.o.in.Cohort)
	}
	stream := &windowStream{ctx: ctx, recs: recs, win: c.win, seed: b.t.Seed, size: cfg.ShuffleBuffer,
		perEpoch: sum.Windows}
	params := map[string]any{"corpus": CorpusRecords, "until": sum.Until, "stride": cfg.Stride,
		"shuffle_buffer": cfg.ShuffleBuffer, "val_windows": cfg.ValWindows, "corpus_windows": sum.Windows,
		"corpus_tokens": sum.Tokens}
	batch := func(step int) ([]bert.Encoded, error) { return stream.rows(step*b.t.BatchSize, b.t.BatchSize) }
	return &pretrainCorpus{summary: sum, tuning: c.val.kept, batch: batch, params: params}, nil
}

// recordCount is the pass that opens a records corpus.
type recordCount struct {
	o   *opened
	win *windower
	sum modelrepo.Corpus // the training windows and tokens so far
	val *reservoir       // the validation windows
}

// add counts a training record's windows (and its codes' rates), or offers a tuning
// record's windows to the validation sample.
func (c *recordCount) add(split string, s data.Subject) error {
	c.win.refresh()
	r := c.win.split(s.Events)
	switch split {
	case data.SplitTuning:
		c.win.cut(&r, func(lo, hi, _ int) { c.val.offer(func() bert.Encoded { return c.win.encode(&r, lo, hi) }) })
		return nil
	case data.SplitTrain:
	default:
		return fmt.Errorf("train pretrain: a %s record reached the corpus", split) // never: ForEach filters
	}
	c.win.cm.Count(&c.o.trainRates, s.Events)
	n := 0
	c.win.cut(&r, func(_, _, tokens int) { n, c.sum.Tokens = n+1, c.sum.Tokens+int64(tokens) })
	c.sum.Windows += n
	if n > 0 {
		c.sum.Subjects++
	}
	return nil
}

// reservoir keeps a uniform sample of up to size of the items offered (Algorithm R), making
// only the items it keeps.
type reservoir struct {
	size int
	rng  *rand.Rand
	seen int64
	kept []bert.Encoded
}

func (r *reservoir) offer(item func() bert.Encoded) {
	r.seen++
	if len(r.kept) < r.size {
		r.kept = append(r.kept, item())
		return
	}
	if j := r.rng.Int64N(r.seen); j < int64(r.size) {
		r.kept[j] = item()
	}
}

// logCorpus logs what a pretraining run learns from (counts only, never a code) and how
// long opening it took.
func logCorpus(log *slog.Logger, c modelrepo.Corpus, seconds float64) {
	log.Info("pretraining corpus", "seconds", seconds, "corpus", c.Kind, "subjects", c.Subjects, "windows", c.Windows,
		"tokens", c.Tokens, "max_len", c.MaxLen, "until", c.Until, "stride", c.Stride,
		"shuffle_buffer", c.ShuffleBuffer, "tuning_subjects", c.TuningSubjects, "tuning_windows", c.TuningWindows,
		"held_out_subjects_left_out", c.HeldOutSubjects, "unassigned_subjects_left_out", c.Unassigned)
}

// epochLog logs one machine-readable line per epoch of training: the windows and tokens fed,
// the mean training loss and the speed.
type epochLog struct {
	log           *slog.Logger
	stepsPerEpoch int
	total         int
	start         time.Time
	windows       int
	tokens        int64
	lossSum       float64
	steps         int
}

// fed counts a batch of n windows.
func (e *epochLog) fed(n int, b *bert.Batch) {
	e.windows += n
	for _, m := range b.Mask {
		e.tokens += int64(m)
	}
}

// stepped counts a step's loss and logs the epoch it ends.
func (e *epochLog) stepped(step int, loss float64) {
	e.lossSum += loss
	e.steps++
	done := step + 1
	if done%e.stepsPerEpoch != 0 && done != e.total {
		return
	}
	el := time.Since(e.start).Seconds()
	e.log.Info("pretrain epoch", "epoch", (done+e.stepsPerEpoch-1)/e.stepsPerEpoch, "step", done, "steps", e.total,
		"windows", e.windows, "tokens", e.tokens, "train_loss", e.lossSum/float64(e.steps), "seconds", el,
		"tokens_per_s", float64(e.tokens)/el)
	e.windows, e.tokens, e.lossSum, e.steps, e.start = 0, 0, 0, 0, time.Now()
}

// logInitCorpus logs what the pretrained model a classifier starts from (--init) learned
// from, as its manifest records it.
func logInitCorpus(log *slog.Logger, dir string, m *modelrepo.Manifest) {
	c := m.Corpus
	if c == nil {
		log.Info("pretrained corpus not recorded (a run from before corpora were recorded, "+
			"or not a train pretrain run)", "init", dir, "run", m.RunID)
		return
	}
	log.Info("pretrained corpus", "init", dir, "run", m.RunID, "corpus", c.Kind, "subjects", c.Subjects,
		"windows", c.Windows, "tokens", c.Tokens, "until", c.Until, "stride", c.Stride, "max_len", c.MaxLen,
		"steps", m.Params["steps"], "best_val_loss", m.Metrics["best_val_loss"])
}
