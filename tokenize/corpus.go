package tokenize

import (
	"context"
	"fmt"

	"github.com/medseq/medseq/data"
)

// What a tokenizer's vocabulary is counted on (FromCohortConfig.Corpus).
const (
	// CorpusCohort counts the cohort's censored training sequences (the default).
	CorpusCohort = "cohort"
	// CorpusRecords counts the whole records of every training subject of the dataset
	// (data.RecordSplits decides the split: the cohort's, else the dataset's), cut at
	// FromCohortConfig.Until: the corpus `train pretrain --corpus records` learns from.
	CorpusRecords = "records"
)

// recordValueSample is the most numeric values a records corpus keeps per code for the value
// bins' quantiles (a uniform sample beyond it), so that memory does not grow with the dataset.
const recordValueSample = 1 << 13

// CorpusReport is what a records corpus read (medseq_tokenizer.json's corpus).
type CorpusReport struct {
	Kind  string `json:"kind"`
	Until string `json:"until,omitempty"`
	// TrainSubjects are the subjects whose records were counted; TuningSubjects those whose
	// records measured [UNK]; HeldOutSubjects were never read.
	TrainSubjects   int            `json:"train_subjects"`
	TuningSubjects  int            `json:"tuning_subjects"`
	HeldOutSubjects int            `json:"held_out_subjects"`
	Unassigned      int            `json:"unassigned_subjects"` // no split: left out
	Sources         map[string]int `json:"split_sources"`       // subjects by where their split came from
	// GuardSequences are the cohort's censored training sequences the leakage guard read.
	GuardSequences int `json:"guard_sequences"`
}

// EventLen is the number of tokens Encode writes for one event, without visit separators:
// its code's tokens, and a value token when it has a numeric value and the code has bins.
func (m *CodeMap) EventLen(e data.Event) int {
	n := len(m.ids[e.Code])
	if m.edges[e.Code] != nil && e.HasValue() {
		n++
	}
	return n
}

// countRecords counts the whole records of the training subjects (the vocabulary), the
// tuning subjects' records (for their [UNK] rate), and the cohort's censored training
// sequences by class (for the leakage guard, which asks what a classifier of this cohort
// would see). Held-out subjects are never counted, nor subjects without a split.
func countRecords(ctx context.Context, in *data.OpenedCohort, values bool, until int64) (*cohortCounts, error) {
	splits, err := data.NewRecordSplits(in.Dataset, in.Cohort)
	if err != nil {
		return nil, err
	}
	counts := &cohortCounts{train: NewCounter(in.Dataset.Codes), tuningCounts: NewCounter(in.Dataset.Codes)}
	if values {
		counts.train.KeepValuesSample(recordValueSample)
	}
	recs := &data.Records{Dataset: in.Dataset, Splits: splits, Until: until}
	keep := []string{data.SplitTrain, data.SplitTuning}
	rc, err := recs.ForEach(ctx, nil, keep, func(split string, s data.Subject) error {
		switch split {
		case data.SplitTrain:
			counts.train.Add(s.Events, -1)
		case data.SplitTuning:
			counts.tuningCounts.Add(s.Events, -1)
		default:
			return fmt.Errorf("tokenize build: a %s record reached the corpus", split) // never: ForEach filters
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if counts.guard, err = countGuard(ctx, in); err != nil {
		return nil, err
	}
	counts.corpus = &CorpusReport{Kind: CorpusRecords, Until: data.FormatUntil(until),
		TrainSubjects: rc.Subjects[data.SplitTrain], TuningSubjects: rc.Subjects[data.SplitTuning],
		HeldOutSubjects: rc.Subjects[data.SplitHeldOut], Unassigned: rc.Unassigned, Sources: rc.Sources,
		GuardSequences: counts.guard.Sequences()}
	if counts.corpus.TrainSubjects == 0 {
		return nil, fmt.Errorf("dataset %s has no training subject (by cohort %s or its own subject_splits): nothing to count",
			in.Dataset.Root, in.Cohort.Dir)
	}
	return counts, nil
}

// countGuard counts the cohort's censored training sequences by class, for the leakage guard.
func countGuard(ctx context.Context, in *data.OpenedCohort) (*Counter, error) {
	guard := NewCounter(in.Dataset.Codes)
	err := in.Cohort.Sequences(ctx, in.Dataset, []string{data.SplitTrain}, func(s data.Sequence) error {
		label := 0
		if s.Label.Value {
			label = 1
		}
		guard.Add(s.Events, label)
		return nil
	})
	return guard, err
}
