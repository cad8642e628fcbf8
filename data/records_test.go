package data

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// recordsDataset writes a dataset whose subjects get their splits every way there is: shards
// in data/train/ and data/tuning/ and at data/'s root, and a subject_splits listing some of
// them (one with a split name MEDS tools use that medseq does not know).
func recordsDataset(t *testing.T) *Dataset {
	t.Helper()
	root := t.TempDir()
	codes := NewCodes()
	day := int64(MicrosPerDay)
	subj := func(id int64) Subject {
		var ev []Event
		for k := int64(0); k < 4; k++ {
			ev = append(ev, Event{Time: (10000 + 100*k) * day, Code: codes.ID("C/1"), Value: NoValue})
		}
		return Subject{ID: id, Events: append([]Event{{Time: StaticTime, Code: codes.ID("SEX//F"), Value: NoValue}}, ev...)}
	}
	shards := map[string][]int64{
		"train/0.parquet":  {1, 2, 3},
		"tuning/0.parquet": {4, 5},
		"0.parquet":        {6, 7, 8, 9},
	}
	for rel, ids := range shards {
		var ss []Subject
		for _, id := range ids {
			ss = append(ss, subj(id))
		}
		p := filepath.Join(root, DataDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := WriteShard(p, codes, ss); err != nil {
			t.Fatal(err)
		}
	}
	// 2 listed held_out over its train/ folder; 7 listed tuning; 8 listed with an unknown name.
	listed := map[int64]string{2: SplitHeldOut, 7: SplitTuning, 8: "held_out/extra"}
	if err := WriteSubjectSplits(root, listed); err != nil {
		t.Fatal(err)
	}
	ds, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestRecordSplits(t *testing.T) {
	ds := recordsDataset(t)
	// The cohort labels 3 (held out, over its train/ folder), 6 (train) and 1 twice (tuning).
	c := &Cohort{Dir: "cohort", Labels: []Label{{SubjectID: 3, Split: SplitHeldOut}, {SubjectID: 6, Split: SplitTrain},
		{SubjectID: 1, Split: SplitTuning}, {SubjectID: 1, Split: SplitTuning}}}
	rs, err := NewRecordSplits(ds, c)
	if err != nil {
		t.Fatal(err)
	}
	shard := func(rel string) string { return filepath.Join(ds.Root, DataDir, rel) }
	for _, tc := range []struct {
		id            int64
		shard         string
		split, source string
	}{
		{1, "train/0.parquet", SplitTuning, SplitFromCohort},
		{2, "train/0.parquet", SplitHeldOut, SplitFromList},
		{3, "train/0.parquet", SplitHeldOut, SplitFromCohort},
		{4, "tuning/0.parquet", SplitTuning, SplitFromShard},
		{6, "0.parquet", SplitTrain, SplitFromCohort},
		{7, "0.parquet", SplitTuning, SplitFromList},
		{8, "0.parquet", "", ""}, // an unknown split name is no split
		{9, "0.parquet", "", ""},
	} {
		split, source := rs.Of(shard(tc.shard), tc.id)
		if split != tc.split || source != tc.source {
			t.Errorf("subject %d: split %q from %q, want %q from %q", tc.id, split, source, tc.split, tc.source)
		}
	}

	t.Run("a cohort with a subject in two splits is refused", func(t *testing.T) {
		bad := &Cohort{Dir: "bad", Labels: []Label{{SubjectID: 1, Split: SplitTrain}, {SubjectID: 1, Split: SplitTuning}}}
		if _, err := NewRecordSplits(ds, bad); err == nil {
			t.Error("accepted")
		}
	})

	t.Run("ForEach reads the asked splits and counts every subject", func(t *testing.T) {
		recs := &Records{Dataset: ds, Splits: rs, Until: StaticTime}
		got := map[int64]string{}
		read := func(split string, s Subject) error {
			got[s.ID] = split
			return nil
		}
		counts, err := recs.ForEach(context.Background(), nil, []string{SplitTrain, SplitTuning}, read)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int64]string{1: SplitTuning, 4: SplitTuning, 5: SplitTuning, 6: SplitTrain, 7: SplitTuning}
		if len(got) != len(want) {
			t.Errorf("read %v, want %v", got, want)
		}
		for id, s := range want {
			if got[id] != s {
				t.Errorf("subject %d read as %q, want %q", id, got[id], s)
			}
		}
		if counts.Subjects[SplitHeldOut] != 2 || counts.Unassigned != 2 || counts.Subjects[SplitTrain] != 1 ||
			counts.Sources[SplitFromCohort] != 3 || counts.Sources[SplitFromShard] != 2 {
			t.Errorf("counts %+v", counts)
		}
	})
}

func TestBeforeAndUntil(t *testing.T) {
	d := int64(MicrosPerDay)
	ev := []Event{{Time: StaticTime}, {Time: 10 * d}, {Time: 20 * d}, {Time: 20 * d}, {Time: 30 * d}}
	for _, tc := range []struct {
		until int64
		n     int
	}{{StaticTime, 5}, {5 * d, 1}, {10 * d, 1}, {10*d + 1, 2}, {20 * d, 2}, {25 * d, 4}, {31 * d, 5}} {
		if got := Before(ev, tc.until); len(got) != tc.n {
			t.Errorf("Before(%d) kept %d events, want %d", tc.until, len(got), tc.n)
		}
	}
	for _, tc := range []struct {
		in, back string
		want     time.Time
		ok       bool
	}{
		{"2020-01-02", "2020-01-02", time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC), true},
		{" 2020-01-02 ", "2020-01-02", time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC), true},
		{"2020-01-02T10:30:00Z", "2020-01-02T10:30:00Z", time.Date(2020, 1, 2, 10, 30, 0, 0, time.UTC), true},
		{"2020-01-02T10:30:00+02:00", "2020-01-02T08:30:00Z", time.Date(2020, 1, 2, 8, 30, 0, 0, time.UTC), true},
		{"2020-01-02T00:00:00", "2020-01-02", time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC), true},
		{"02/01/2020", "", time.Time{}, false},
		{"2020-13-01", "", time.Time{}, false},
	} {
		got, err := ParseUntil(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseUntil(%q): %v", tc.in, err)
			continue
		}
		if !tc.ok {
			continue
		}
		if got != Micros(tc.want) {
			t.Errorf("ParseUntil(%q) = %v, want %v", tc.in, TimeOf(got), tc.want)
		}
		if back := FormatUntil(got); back != tc.back {
			t.Errorf("FormatUntil(ParseUntil(%q)) = %q, want %q", tc.in, back, tc.back)
		}
	}
	if u, err := ParseUntil(""); err != nil || u != StaticTime || FormatUntil(u) != "" {
		t.Errorf("ParseUntil(\"\") = %v, %v", u, err)
	}
}
