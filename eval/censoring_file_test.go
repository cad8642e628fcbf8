package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestCensoringFileGolden: the demo's censoring.json (testdata, as medseq eval censoring wrote
// it) reads and is written back byte for byte: the types hold every field of the file, under
// the same names, in the same order.
func TestCensoringFileGolden(t *testing.T) {
	golden := filepath.Join("testdata", "censoring.json")
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadCensoringSensitivity(golden)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != golden || c.Dataset != "demo/meds" || c.Threshold == 0 || len(c.Variants) != 7 ||
		c.Variants[1].Delta == nil || c.Variants[1].Delta.ECE == 0 {
		t.Fatalf("read %+v", c)
	}
	out := filepath.Join(t.TempDir(), "censoring.json")
	if err := WriteCensoringSensitivity(out, c); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("written back, %d bytes differ from the %d of %s:\n%s", len(got), len(want), golden, got)
	}
}

// censoringFull is a censoring sensitivity with every field set: a reference with no AUROC
// (null) and no delta, a variant with an infinite slope.
func censoringFull() *CensoringSensitivity {
	nan := Num(math.NaN())
	return &CensoringSensitivity{File: "elsewhere.json", Model: "models/m/1", ModelKind: "xgboost", ModelRun: "run-1",
		Dataset: "meds", Cohort: "cohort", CohortFollowUp: "365d", Rebuilt: true, Split: "held_out", SplitFromCohort: 3,
		Calibration: "isotonic", Threshold: 0.25, Bootstrap: 100, Warnings: []string{"one class"},
		Variants: []CensoringRow{
			{FollowUp: "0", Policy: CensoringPolicyKeep, Censored: map[string]int{},
				Metrics: CensoringMetrics{Labels: 4, Subjects: 4, Negatives: 4, AUROC: nan, AUROCLow: nan, AUROCHigh: nan,
					Prevalence: 0, MeanPredicted: 0.2, CalibrationInTheLarge: -0.2, Slope: nan, ECE: nan}},
			{FollowUp: "365d", FollowUpMicros: 365 * 86_400_000_000, Policy: CensoringPolicyDrop,
				Censored: map[string]int{"death": 1, "end_of_record": 2}, Dropped: 3, MatchesCohort: true,
				Metrics: CensoringMetrics{Labels: 5, Subjects: 4, Positives: 4, Negatives: 1, AUROC: 0.75, AUROCLow: 0.5,
					AUROCHigh: 1, Prevalence: 0.8, MeanPredicted: 0.6, CalibrationInTheLarge: 0.2,
					Slope: Num(math.Inf(1)), ECE: 0.1},
				Delta: &CensoringDelta{AUROC: 0.1, Prevalence: 0.8, CalibrationInTheLarge: 0.4, Slope: nan, ECE: 0.05}},
		}}
}

// TestCensoringFileNames: the file's JSON names, every one, as eval report and earlier files
// know them (a renamed field fails here, not in a report reading an old file), and no "file".
func TestCensoringFileNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "censoring.json")
	c := censoringFull()
	if err := WriteCensoringSensitivity(path, c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	metrics := []string{"labels", "subjects", "positives", "negatives", "auroc", "auroc_ci_low", "auroc_ci_high",
		"prevalence", "mean_predicted", "calibration_in_the_large", "calibration_slope", "ece"}
	want := []string{"model", "model_kind", "model_run_id", "dataset", "cohort", "cohort_follow_up", "rebuilt", "split",
		"split_from_cohort", "calibration", "threshold", "bootstrap", "variants", "warnings"}
	for _, k := range []string{"follow_up", "follow_up_us", "policy", "censored", "dropped", "matches_cohort",
		"metrics", "delta"} {
		want = append(want, "variants."+k)
	}
	for _, k := range metrics {
		want = append(want, "variants.metrics."+k)
	}
	for _, k := range []string{"auroc", "prevalence", "calibration_in_the_large", "calibration_slope", "ece"} {
		want = append(want, "variants.delta."+k)
	}
	want = append(want, "variants.censored.death", "variants.censored.end_of_record")
	got := jsonKeys("", doc, map[string]bool{})
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("JSON names\n got %q\nwant %q", got, want)
	}
	for _, s := range []string{`"auroc": null`, `"calibration_slope": "+Inf"`, `"censored": {}`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("the file lacks %s:\n%s", s, b)
		}
	}
	if c.File != "elsewhere.json" {
		t.Errorf("writing changed File to %q", c.File)
	}
}

// jsonKeys lists the object keys of a decoded JSON document by their dotted path (array
// elements share their array's path), sorted.
func jsonKeys(path string, v any, seen map[string]bool) []string {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := strings.TrimPrefix(path+"."+k, ".")
			seen[p] = true
			jsonKeys(p, e, seen)
		}
	case []any:
		for _, e := range x {
			jsonKeys(path, e, seen)
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestCensoringFileRefused: the writer refuses what the reader would (no variants, an unknown
// policy, a variant without follow-up) naming the file, and leaves an existing file as it was;
// the reader refuses an unknown policy naming the variant.
func TestCensoringFileRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		change func(*CensoringSensitivity)
		want   string
	}{
		{"no variants", func(c *CensoringSensitivity) { c.Variants = nil }, "no variants"},
		{"unknown policy", func(c *CensoringSensitivity) { c.Variants[1].Policy = "dropped" }, `variant 2: policy "dropped"`},
		{"no follow-up", func(c *CensoringSensitivity) { c.Variants[0].FollowUp = "" }, "variant 1 has no follow_up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte("previous\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			c := censoringFull()
			tc.change(c)
			err := WriteCensoringSensitivity(path, c)
			if !errors.Is(err, ErrCensoringFile) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), path) {
				t.Errorf("write: %v", err)
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != "previous\n" {
				t.Errorf("the previous file: %q, %v", b, err)
			}
		})
	}
	path := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(path, []byte(`{"variants":[{"follow_up":"0","policy":"kept"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCensoringSensitivity(path); !errors.Is(err, ErrCensoringFile) ||
		!strings.Contains(err.Error(), `variant 1: policy "kept"`) {
		t.Errorf("read: %v", err)
	}
}
