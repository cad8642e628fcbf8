package tokenize

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/medseq/medseq/data"
)

// ErrLeak is BuildFromCohort's error when Strict is set and the leakage guard flags tokens.
var ErrLeak = errors.New("leakage guard")

// FromCohortConfig is what `medseq tokenize build` builds a tokenizer from and where it
// writes it.
type FromCohortConfig struct {
	MEDS, Cohort, Out string
	Force             bool // replace an existing Out
	// AllowMismatch builds on a dataset the cohort was not built from, with a warning.
	AllowMismatch   bool
	Build           BuildConfig
	VisitSeparators bool // [SEP] between visits (days)
	Leak            LeakConfig
	// Strict fails with ErrLeak, writing nothing, when the leakage guard flags a token.
	Strict bool
	// Corpus is what the vocabulary is counted on: CorpusCohort ("" too) or CorpusRecords.
	Corpus string
	// Until cuts a records corpus: only events before it are counted (data.ParseUntil; "":
	// every event).
	Until string
	Log   *slog.Logger // nil: no log
}

// BuildResult is what BuildFromCohort built: the tokenizer and the reports its
// medseq_tokenizer.json holds.
type BuildResult struct {
	Out       string
	Tokenizer *Tokenizer
	Config    Config
	RunID     string // the written tokenizer's run; "" when nothing was written
}

// cohortCounts are the codes the vocabulary is counted on and measured against: a cohort's
// censored training and tuning splits, or the training and tuning subjects' whole records.
type cohortCounts struct {
	train  *Counter
	tuning []int32 // the tuning split's codes, in order, for its [UNK] rate
	// tuningCounts are the tuning records' codes (a records corpus, instead of tuning).
	tuningCounts *Counter
	// guard are the labelled sequences the leakage guard reads (nil: train's).
	guard  *Counter
	corpus *CorpusReport // a records corpus: what it read
}

// BuildFromCohort counts codes on the cohort's censored training split, builds the
// vocabulary, measures [UNK] on the tuning split, runs the leakage guard and writes the
// tokenizer with its manifest into cfg.Out (atomically). With cfg.Strict and a flagged token
// it writes nothing and returns the result (for its report) with an error wrapping ErrLeak.
func BuildFromCohort(ctx context.Context, cfg FromCohortConfig) (*BuildResult, error) {
	start := time.Now()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in, err := data.OpenCohort(cfg.MEDS, cfg.Cohort, cfg.AllowMismatch)
	if err != nil {
		return nil, err
	}
	if in.Mismatch != nil {
		log.Warn("building on a dataset the cohort was not built from", "cohort_run", in.Cohort.Manifest.RunID)
	}
	counts, err := countCorpus(ctx, in, cfg)
	if err != nil {
		return nil, err
	}
	log.Info("counted codes", "corpus", corpusKind(cfg.Corpus), "train_sequences", counts.train.Sequences(),
		"occurrences", counts.train.Occurrences())
	if c := counts.corpus; c != nil {
		log.Info("records corpus", "train_subjects", c.TrainSubjects, "tuning_subjects", c.TuningSubjects,
			"held_out_subjects_left_out", c.HeldOutSubjects, "unassigned_subjects_left_out", c.Unassigned,
			"until", c.Until, "guard_sequences", c.GuardSequences)
	}
	res, err := buildCounted(in.Dataset.Codes, counts, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Strict && len(res.Config.Leaks.Leaks) > 0 {
		return res, fmt.Errorf("%w: %d tokens separate the classes almost perfectly on the training split (--strict); nothing written",
			ErrLeak, len(res.Config.Leaks.Leaks))
	}
	m := fromCohortManifest(cfg, res.Config.Leaks.Threshold, counts.corpus)
	m.AddInputFingerprint(data.InputMEDS, cfg.MEDS, in.MEDSFingerprint)
	if _, err := m.AddInput("cohort", cfg.Cohort); err != nil {
		return nil, err
	}
	if err := Save(cfg.Out, cfg.Force, res.Tokenizer, res.Config, m); err != nil {
		return nil, err
	}
	res.RunID = m.RunID
	log.Info("tokenizer written", "vocab_size", res.Tokenizer.Vocab.Len(), "seconds", time.Since(start).Seconds(),
		"run_id", m.RunID)
	return res, nil
}

// corpusKind is the corpus a FromCohortConfig.Corpus names.
func corpusKind(c string) string {
	if c == "" {
		return CorpusCohort
	}
	return c
}

// countCorpus counts the corpus cfg names.
func countCorpus(ctx context.Context, in *data.OpenedCohort, cfg FromCohortConfig) (*cohortCounts, error) {
	values := cfg.Build.ValueBins > 0
	switch corpusKind(cfg.Corpus) {
	case CorpusCohort:
		if cfg.Until != "" {
			return nil, fmt.Errorf("until %s: only a %s corpus is cut at a date (a cohort's sequences end at their prediction times)",
				cfg.Until, CorpusRecords)
		}
		return countCohort(ctx, in, values)
	case CorpusRecords:
		until, err := data.ParseUntil(cfg.Until)
		if err != nil {
			return nil, fmt.Errorf("until: %w", err)
		}
		return countRecords(ctx, in, values, until)
	}
	return nil, fmt.Errorf("corpus %q: want %s or %s", cfg.Corpus, CorpusCohort, CorpusRecords)
}

// countCohort counts the training split's codes (and values, when the tokenizer bins them)
// by class, and collects the tuning split's codes.
func countCohort(ctx context.Context, in *data.OpenedCohort, values bool) (*cohortCounts, error) {
	counts := &cohortCounts{train: NewCounter(in.Dataset.Codes)}
	if values {
		counts.train.KeepValues()
	}
	err := in.Cohort.Sequences(ctx, in.Dataset, []string{data.SplitTrain, data.SplitTuning}, func(s data.Sequence) error {
		if s.Label.Split == data.SplitTrain {
			label := 0
			if s.Label.Value {
				label = 1
			}
			counts.train.Add(s.Events, label)
			return nil
		}
		for _, ev := range s.Events {
			counts.tuning = append(counts.tuning, ev.Code)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// buildCounted builds the vocabulary from the counts and measures it: the training split's
// whole / pieced / [UNK] rates, [UNK] on the tuning split, and the leakage guard.
func buildCounted(codes *data.Codes, counts *cohortCounts, cfg FromCohortConfig) (*BuildResult, error) {
	tok, rep, err := Build(counts.train, cfg.Build)
	if err != nil {
		return nil, fmt.Errorf("build vocabulary from %s: %w", cfg.Cohort, err)
	}
	tok.VisitSeparators = cfg.VisitSeparators
	var unk, train UnkStats
	cm := tok.NewCodeMap(codes)
	unk.Add(cm, counts.tuning)
	if counts.tuningCounts != nil {
		unk.AddCounter(cm, counts.tuningCounts)
	}
	train.AddCounter(cm, counts.train)
	guard := counts.guard
	if guard == nil {
		guard = counts.train
	}
	leaks := GuardLeaks(guard, tok, cfg.Leak)
	return &BuildResult{Out: cfg.Out, Tokenizer: tok,
		Config: Config{Build: rep, TrainRates: &train, TuningUnk: &unk, Leaks: &leaks, Corpus: counts.corpus}}, nil
}

// fromCohortManifest is the tokenizer's manifest with the build's parameters.
func fromCohortManifest(cfg FromCohortConfig, leakThreshold float64, corpus *CorpusReport) *data.Manifest {
	b := cfg.Build
	p := map[string]any{
		"vocab_size": b.VocabSize, "min_count": b.MinCount, "subwords": b.Subwords,
		"max_pieces": b.MaxPieces, "max_len": b.MaxLen, "visit_separators": cfg.VisitSeparators,
		"leak_threshold": leakThreshold, "strict": cfg.Strict, "value_bins": b.ValueBins,
	}
	if corpus != nil { // a cohort corpus's manifest stays as it was
		p["corpus"], p["until"] = corpus.Kind, corpus.Until
	}
	return data.NewManifest(StageTokenize, p)
}
