package data

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Records are subjects' whole records, for the stages that learn from everything a split may
// see rather than from a cohort's censored labels: masked-language pretraining and a
// tokenizer built on records (`--corpus records`). Which split a record belongs to is decided
// per subject, by RecordSplits; a record may be cut at a date (Until) for a corpus that must
// end before some time. A record is never censored at a prediction time: a training subject's
// whole record is training data, and a tuning or held-out subject's is never read for
// training at all.

// Where a record's split came from (RecordCounts.Sources).
const (
	SplitFromCohort = "cohort"         // the cohort labels the subject
	SplitFromList   = "subject_splits" // metadata/subject_splits.parquet lists it
	SplitFromShard  = "shard_folder"   // its shard lies under data/<split>/
)

// RecordSplits decides the split of each subject's record: the cohort's split for a subject
// it labels (the cohort decides, so a subject it tunes or holds out on is never trained on,
// whatever the dataset lists), else the dataset's metadata/subject_splits.parquet (train,
// tuning or held_out), else the folder of its shard (data/train/, data/tuning/,
// data/held_out/), else none: the subject is left out and counted. A split name other than
// the three is no split.
type RecordSplits struct {
	ds     *Dataset
	cohort map[int64]string
	listed map[int64]string
}

// NewRecordSplits reads the dataset's subject_splits and the cohort's labels' splits (c may
// be nil: the dataset's alone).
func NewRecordSplits(ds *Dataset, c *Cohort) (*RecordSplits, error) {
	listed, err := ds.SubjectSplits()
	if err != nil {
		return nil, err
	}
	r := &RecordSplits{ds: ds, cohort: map[int64]string{}, listed: listed}
	if c == nil {
		return r, nil
	}
	for _, l := range c.Labels {
		if prev, ok := r.cohort[l.SubjectID]; ok && prev != l.Split {
			return nil, fmt.Errorf("cohort %s: subject %d has labels in splits %s and %s: splits must be by subject",
				c.Dir, l.SubjectID, prev, l.Split)
		}
		r.cohort[l.SubjectID] = l.Split
	}
	return r, nil
}

// Of returns the split of subject id, whose record is read from shard, and where it came
// from; both are "" when nothing assigns it one.
func (r *RecordSplits) Of(shard string, id int64) (split, source string) {
	if s, ok := r.cohort[id]; ok {
		return knownSplit(s), SplitFromCohort
	}
	if s, ok := r.listed[id]; ok {
		if s = knownSplit(s); s != "" {
			return s, SplitFromList
		}
	}
	if s := knownSplit(r.ds.ShardSplit(shard)); s != "" {
		return s, SplitFromShard
	}
	return "", ""
}

// knownSplit is s when it is train, tuning or held_out, else "".
func knownSplit(s string) string {
	switch s {
	case SplitTrain, SplitTuning, SplitHeldOut:
		return s
	}
	return ""
}

// RecordCounts count the subjects a pass over the records met: by split, by where the split
// came from, and those left out for want of one.
type RecordCounts struct {
	Subjects   map[string]int `json:"subjects"` // by split
	Sources    map[string]int `json:"sources"`  // by SplitFrom*
	Unassigned int            `json:"unassigned"`
}

func (c *RecordCounts) add(split, source string) {
	if c.Subjects == nil {
		c.Subjects, c.Sources = map[string]int{}, map[string]int{}
	}
	if split == "" {
		c.Unassigned++
		return
	}
	c.Subjects[split]++
	c.Sources[source]++
}

// Records streams whole records by split.
type Records struct {
	Dataset *Dataset
	Splits  *RecordSplits
	// Until keeps the events before it (static rows always); StaticTime keeps every event.
	Until int64
}

// Shard calls fn with the record of every subject of sh whose split is in want (cut at
// Until), in the shard's order, and counts every subject of the shard into counts (those of
// other splits and those without one too).
func (r *Records) Shard(sh *Shard, want map[string]bool, counts *RecordCounts,
	fn func(split string, s Subject) error) error {
	for _, s := range sh.Subjects {
		split, source := r.Splits.Of(sh.Path, s.ID)
		if counts != nil {
			counts.add(split, source)
		}
		if split == "" || !want[split] {
			continue
		}
		if err := fn(split, Subject{ID: s.ID, Events: Before(s.Events, r.Until)}); err != nil {
			return err
		}
	}
	return nil
}

// ForEach reads the shards one after another (shards: the order, nil for the dataset's) and
// calls fn with the record of every subject whose split is one of splits; it returns how many
// subjects of each split it met. Memory holds one shard at a time.
func (r *Records) ForEach(ctx context.Context, shards []string, splits []string,
	fn func(split string, s Subject) error) (RecordCounts, error) {
	if shards == nil {
		shards = r.Dataset.Shards
	}
	want := map[string]bool{}
	for _, s := range splits {
		want[s] = true
	}
	counts := RecordCounts{Subjects: map[string]int{}, Sources: map[string]int{}}
	for _, p := range shards {
		if err := ctx.Err(); err != nil {
			return counts, err
		}
		sh, err := r.Dataset.ReadShard(p)
		if err != nil {
			return counts, err
		}
		if err := r.Shard(sh, want, &counts, fn); err != nil {
			return counts, err
		}
	}
	return counts, nil
}

// Before returns the static rows and the events strictly before until of time-ordered events
// (until StaticTime: all of them). The result shares memory with events.
func Before(events []Event, until int64) []Event {
	if until == StaticTime {
		return events
	}
	n := sort.Search(len(events), func(i int) bool { return events[i].Time >= until })
	return events[:n:n]
}

// ParseUntil reads a corpus's end (--until): a date YYYY-MM-DD (its midnight, UTC) or an RFC
// 3339 time; "" is StaticTime (no end).
func ParseUntil(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return StaticTime, nil
	}
	for _, layout := range []string{time.DateOnly, time.RFC3339Nano, "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return Micros(t), nil
		}
	}
	return 0, fmt.Errorf("%q is not a date (YYYY-MM-DD) or an RFC 3339 time", s)
}

// FormatUntil writes a corpus's end as ParseUntil reads it: a date when it is a midnight UTC,
// else RFC 3339; "" for StaticTime.
func FormatUntil(us int64) string {
	if us == StaticTime {
		return ""
	}
	t := TimeOf(us)
	if t.Equal(t.Truncate(24 * time.Hour)) {
		return t.Format(time.DateOnly)
	}
	return t.Format(time.RFC3339Nano)
}
