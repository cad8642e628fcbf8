package study

import (
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
)

// TestCensoringFileRoundTrip: a report the study builds from handRows, with every top-level
// field set, a variant with no AUROC (null in the file), no delta on the reference and
// warnings, is written by eval's writer and read back by eval's reader with every field as it
// was.
func TestCensoringFileRoundTrip(t *testing.T) {
	day := data.MicrosPerDay
	rows := append(handRows(), handRows()[4:]...) // negatives twice: every drop keeps both classes
	opts := evalOptions{threshold: 0.5, bootstrap: 50, seed: 3, followUps: []int64{0, 182 * day, 365 * day}}
	r := &eval.CensoringSensitivity{Model: "models/m/1", ModelKind: "xgboost", ModelRun: "run-1", Dataset: "meds",
		Cohort: "cohort", CohortFollowUp: "365d", Rebuilt: true, Split: data.SplitHeldOut, SplitFromCohort: 2,
		Calibration: eval.CalibrationIsotonic, Threshold: 0.5, Bootstrap: opts.bootstrap,
		Warnings: []string{"the cohort's gap differs"}}
	var err error
	if r.Variants, err = variants(rows, opts, 365*day, &r.Warnings); err != nil {
		t.Fatal(err)
	}
	oneClass, err := variants(handRows()[4:], evalOptions{threshold: 0.5, followUps: []int64{0}}, -1, &r.Warnings)
	if err != nil {
		t.Fatal(err)
	}
	r.Variants = append(r.Variants, oneClass...)
	v := reflect.ValueOf(*r)
	for i := range v.NumField() {
		if name := v.Type().Field(i).Name; name != "File" && v.Field(i).IsZero() {
			t.Fatalf("the report leaves %s unset: the round trip would not test it", name)
		}
	}
	if last := r.Variants[len(r.Variants)-1]; !math.IsNaN(float64(last.Metrics.AUROC)) || last.Delta != nil {
		t.Fatalf("the one-class variant: AUROC %v, delta %v", last.Metrics.AUROC, last.Delta)
	}
	checkFileRoundTrip(t, r)
}

// checkFileRoundTrip writes r with eval.WriteCensoringSensitivity, reads it back with
// eval.ReadCensoringSensitivity and compares every field; a changed field is seen.
func checkFileRoundTrip(t *testing.T, r *eval.CensoringSensitivity) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "censoring.json")
	if err := eval.WriteCensoringSensitivity(path, r); err != nil {
		t.Fatal(err)
	}
	back, err := eval.ReadCensoringSensitivity(path)
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.File = path
	if diffs := diffFields("report", reflect.ValueOf(want), reflect.ValueOf(*back)); len(diffs) > 0 {
		t.Errorf("censoring.json read back differs:\n%v", diffs)
	}
	// The comparison sees a change deep in a variant.
	back.Variants[len(back.Variants)-2].Delta.ECE++
	back.Variants[0].Censored["death"]++
	if diffs := diffFields("report", reflect.ValueOf(want), reflect.ValueOf(*back)); len(diffs) != 2 {
		t.Errorf("two fields changed, %d differences: %v", len(diffs), diffs)
	}
}

// diffFields lists the fields where got differs from want, by their path; NaN equals NaN (null
// in the file). A nil and an empty slice or map differ.
func diffFields(path string, want, got reflect.Value) []string {
	switch want.Kind() {
	case reflect.Float32, reflect.Float64:
		w, g := want.Float(), got.Float()
		if w == g || (math.IsNaN(w) && math.IsNaN(g)) {
			return nil
		}
	case reflect.Struct:
		var out []string
		for i := range want.NumField() {
			out = append(out, diffFields(path+"."+want.Type().Field(i).Name, want.Field(i), got.Field(i))...)
		}
		return out
	case reflect.Pointer:
		if want.IsNil() || got.IsNil() {
			if want.IsNil() == got.IsNil() {
				return nil
			}
			break
		}
		return diffFields(path, want.Elem(), got.Elem())
	case reflect.Slice:
		if want.IsNil() != got.IsNil() || want.Len() != got.Len() {
			break
		}
		var out []string
		for i := range want.Len() {
			out = append(out, diffFields(fmt.Sprintf("%s[%d]", path, i), want.Index(i), got.Index(i))...)
		}
		return out
	case reflect.Map:
		if want.IsNil() != got.IsNil() || want.Len() != got.Len() {
			break
		}
		var out []string
		for _, k := range want.MapKeys() {
			g := got.MapIndex(k)
			if !g.IsValid() {
				return append(out, fmt.Sprintf("%s[%v]: not read back", path, k))
			}
			out = append(out, diffFields(fmt.Sprintf("%s[%v]", path, k), want.MapIndex(k), g)...)
		}
		slices.Sort(out)
		return out
	default: // bool, ints, strings
		if want.Interface() == got.Interface() {
			return nil
		}
	}
	return []string{fmt.Sprintf("%s: wrote %v, read %v", path, want, got)}
}
