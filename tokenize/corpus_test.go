package tokenize

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
)

// TestBuildOnRecords: a records corpus counts the training subjects' whole records (so a code
// seen only after the diagnosis is in the vocabulary: pretraining may read it), while the
// leakage guard still reads the cohort's censored training split, which hides it; an --until
// before the diagnoses keeps it out.
func TestBuildOnRecords(t *testing.T) {
	dir := t.TempDir()
	meds := artefactMEDS(t, filepath.Join(dir, "meds"), 400, 0)
	cohortDir := filepath.Join(dir, "cohort")
	writeTestCohort(t, meds, cohortDir)
	build := func(out, corpus, until string) (*BuildResult, error) {
		b := DefaultBuildConfig()
		b.MinCount = 1
		return BuildFromCohort(context.Background(), FromCohortConfig{MEDS: meds, Cohort: cohortDir, Out: filepath.Join(dir, out),
			Build: b, Leak: LeakConfig{Threshold: 0.95}, Corpus: corpus, Until: until})
	}
	cohort, err := build("cohort-tok", CorpusCohort, "")
	if err != nil {
		t.Fatal(err)
	}
	records, err := build("records-tok", CorpusRecords, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := records.Tokenizer.WholeCode("LEAK/METFORMIN"); !ok {
		t.Error("a records corpus lacks a code of the training subjects' records after their diagnosis")
	}
	c := records.Config.Corpus
	if c == nil || c.Kind != CorpusRecords || c.TrainSubjects+c.TuningSubjects+c.HeldOutSubjects+c.Unassigned != 400 ||
		records.Config.Build.Sequences != c.TrainSubjects || c.GuardSequences != cohort.Config.Build.Sequences {
		t.Errorf("corpus report %+v (build %+v)", c, records.Config.Build)
	}
	if records.Config.Build.Occurrences <= cohort.Config.Build.Occurrences {
		t.Errorf("records counted %d codes, the censored cohort %d", records.Config.Build.Occurrences,
			cohort.Config.Build.Occurrences)
	}
	// The guard reads the same censored sequences either way: READ/ flagged, LEAK/ not.
	tokens := func(r *BuildResult) []string {
		var out []string
		for _, l := range r.Config.Leaks.Leaks {
			out = append(out, l.Token)
		}
		return out
	}
	if got, want := tokens(records), tokens(cohort); !slices.Equal(got, want) || !slices.Contains(got, "READ/") {
		t.Errorf("guard on records %v, on the cohort %v", got, want)
	}
	m, err := data.ReadManifest(filepath.Join(dir, "records-tok"))
	if err != nil || m.Params["corpus"] != CorpusRecords {
		t.Errorf("manifest params %v: %v", m.Params, err)
	}
	early, err := build("early-tok", CorpusRecords, "2016-01-01")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := early.Tokenizer.WholeCode("LEAK/METFORMIN"); ok || early.Config.Corpus.Until != "2016-01-01" {
		t.Errorf("--until 2016-01-01 counted LEAK/METFORMIN (from 2017) or lost its date %+v", early.Config.Corpus)
	}
	for _, bad := range []struct{ corpus, until, says string }{
		{"notes", "", "corpus"}, {CorpusCohort, "2016-01-01", "records"}, {CorpusRecords, "soon", "until"}} {
		if _, err := build("bad", bad.corpus, bad.until); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("corpus %q until %q: %v", bad.corpus, bad.until, err)
		}
	}
}

// TestKeepValuesSample: a bounded sample of a code's values gives nearly the quantiles of all
// of them, the same sample for the same values.
func TestKeepValuesSample(t *testing.T) {
	codes := data.NewCodes()
	id := codes.ID("LAB/1")
	full, a, b := NewCounter(codes), NewCounter(codes), NewCounter(codes)
	full.KeepValues()
	a.KeepValuesSample(recordValueSample)
	b.KeepValuesSample(recordValueSample)
	for i := range 100_000 {
		v := float32(math.Mod(float64(i)*0.6180339887, 1)) * 100 // spread over [0, 100)
		ev := []data.Event{{Time: int64(i), Code: id, Value: v}}
		full.Add(ev, -1)
		a.Add(ev, -1)
		b.Add(ev, -1)
	}
	if len(a.values[id]) != recordValueSample || !slices.Equal(a.values[id], b.values[id]) {
		t.Fatalf("kept %d values; two samples equal: %v", len(a.values[id]), slices.Equal(a.values[id], b.values[id]))
	}
	want, got := quantileEdges(slices.Clone(full.values[id]), 10), quantileEdges(slices.Clone(a.values[id]), 10)
	if len(want) != len(got) {
		t.Fatalf("edges %v, from all values %v", got, want)
	}
	for i := range want {
		// A quantile of a sample of 8192 has a standard error of at most 0.55 points of the range.
		if math.Abs(float64(got[i]-want[i])) > 2 {
			t.Errorf("edge %d: %v from the sample, %v from all values", i, got[i], want[i])
		}
	}
}
