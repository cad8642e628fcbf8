package eval

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
)

func TestExclusionFlow(t *testing.T) {
	type step struct {
		kind, class, step string
		excluded, left    int
	}
	for _, c := range []struct {
		name string
		rep  data.CohortReport
		want []step
		note string
	}{{
		name: "targets",
		rep: data.CohortReport{Source: "targets", Subjects: 1000, Labels: 250, Positives: 50, Negatives: 200,
			Exclusions: []data.ExclusionCount{
				{Class: "positive", Reason: data.ExclNoBirth, Count: 2}, {Class: "negative", Reason: data.ExclNoBirth, Count: 8},
				{Class: "negative", Reason: data.ExclNoEvents, Count: 40},
				{Class: "positive", Reason: data.ExclShortHistory, Count: 10},
				{Class: "negative", Reason: data.ExclOverNegRatio, Count: 600}, {Class: "negative", Reason: data.ExclNoPositiveBand, Count: 90},
			}},
		want: []step{
			{flowStart, "", "subjects in the dataset", 0, 1000},
			{flowExclude, "", data.ExclNoBirth, 10, 990},
			{flowExclude, "", data.ExclNoEvents, 40, 950},
			{flowStart, "positive", "with a target code", 0, 60},
			{flowExclude, "positive", data.ExclShortHistory, 10, 50},
			{flowKept, "positive", "positive labels kept", 0, 50},
			{flowStart, "negative", "without a target code", 0, 890},
			{flowExclude, "negative", data.ExclNoPositiveBand, 90, 800},
			{flowExclude, "negative", data.ExclOverNegRatio, 600, 200},
			{flowKept, "negative", "negative labels kept", 0, 200},
			{flowKept, "", "labels in the cohort", 0, 250},
		},
	}, {
		name: "labels",
		rep: data.CohortReport{Source: data.SamplingLabels, LabelRows: 120, Labels: 100, Positives: 30, Negatives: 70,
			Exclusions: []data.ExclusionCount{
				{Class: "any", Reason: data.ExclNullValue, Count: 5}, {Class: "any", Reason: data.ExclConflicting, Count: 4},
				{Class: "negative", Reason: data.ExclNotInData, Count: 6}, {Class: "positive", Reason: "a reason of a later medseq", Count: 5},
			}},
		want: []step{
			{flowStart, "", "label rows read", 0, 120},
			{flowExclude, "", data.ExclNullValue, 5, 115},
			{flowExclude, "", data.ExclConflicting, 4, 111},
			{flowStart, "positive", "positive label rows", 0, 35},
			{flowExclude, "positive", "a reason of a later medseq", 5, 30},
			{flowKept, "positive", "positive labels kept", 0, 30},
			{flowStart, "negative", "negative label rows", 0, 76},
			{flowExclude, "negative", data.ExclNotInData, 6, 70},
			{flowKept, "negative", "negative labels kept", 0, 70},
			{flowKept, "", "labels in the cohort", 0, 100},
		},
	}, {
		name: "counts that do not add up",
		rep:  data.CohortReport{Source: "targets", Subjects: 100, Labels: 20, Positives: 5, Negatives: 15},
		want: []step{
			{flowStart, "", "subjects in the dataset", 0, 100},
			{flowStart, "positive", "with a target code", 0, 5}, {flowKept, "positive", "positive labels kept", 0, 5},
			{flowStart, "negative", "without a target code", 0, 15}, {flowKept, "negative", "negative labels kept", 0, 15},
			{flowKept, "", "labels in the cohort", 0, 20},
		},
		note: "100 remain after the first rules but the classes account for 20",
	}} {
		t.Run(c.name, func(t *testing.T) {
			flow, note := exclusionFlow(&c.rep)
			var got []step
			for _, f := range flow {
				got = append(got, step{f.Kind, f.Class, f.Step, f.Excluded, f.Remaining})
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("flow\n%v\nwant\n%v", got, c.want)
			}
			if (c.note == "") != (note == "") || !strings.Contains(note, c.note) {
				t.Errorf("note %q, want %q", note, c.note)
			}
		})
	}
}

func TestSplitSpans(t *testing.T) {
	day := func(y, m, d int) int64 { return data.Micros(time.Date(y, time.Month(m), d, 12, 0, 0, 0, time.UTC)) }
	labels := []data.Label{
		{SubjectID: 1, PredictionTime: day(2010, 3, 1), Value: true, Split: data.SplitHeldOut},
		{SubjectID: 1, PredictionTime: day(2012, 5, 6), Split: data.SplitHeldOut},
		{SubjectID: 2, PredictionTime: day(2001, 1, 2), Split: data.SplitTrain},
		{SubjectID: 3, PredictionTime: day(2005, 7, 8), Split: "extra"},
		{SubjectID: 4, PredictionTime: day(2003, 9, 10), Value: true, Split: data.SplitTrain},
	}
	got := splitSpans(labels)
	want := []SplitSpan{
		{Split: data.SplitTrain, Labels: 2, Subjects: 2, Positives: 1, Negatives: 1, From: "2001-01-02", To: "2003-09-10"},
		{Split: data.SplitHeldOut, Labels: 2, Subjects: 1, Positives: 1, Negatives: 1, From: "2010-03-01", To: "2012-05-06"},
		{Split: "extra", Labels: 1, Subjects: 1, Negatives: 1, From: "2005-07-08", To: "2005-07-08"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("spans\n%+v\nwant\n%+v", got, want)
	}
}

// TestReportTask: the task comes from the cohort the model's manifest names when no --cohort
// is given; a cohort that moved is a note, not an error; one given with --cohort must load.
func TestReportTask(t *testing.T) {
	root := t.TempDir()
	dir := fakeModel(t, root, "m", "xgboost", 2, 2.0, 200)
	cohort := fakeCohort(t, root, dir)
	updateManifest(t, dir, func(m *modelrepo.Manifest) {
		m.Inputs = append(m.Inputs, data.InputRef{Name: "cohort", Path: cohort, RunID: "another-run"})
	})
	r, err := BuildReport(ReportConfig{Models: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	task := r.Task
	if task.Cohort != cohort || task.CohortFrom != "the first model's manifest" || task.Lead != "365d" || task.FollowUp != "365d" ||
		!reflect.DeepEqual(task.Targets, []string{"ICD10/E11"}) || task.Negatives != data.NegativesMatchedAge {
		t.Errorf("task %+v", task)
	}
	if len(task.Notes) != 1 || !strings.Contains(task.Notes[0], "another-run") {
		t.Errorf("a rebuilt cohort is not noted: %q", task.Notes)
	}
	if task.FlowNote != "" || task.Flow[len(task.Flow)-1].Remaining != 400 {
		t.Errorf("flow %+v (%s)", task.Flow, task.FlowNote)
	}
	ev := task.Evaluated
	if ev.Split != data.SplitHeldOut || ev.Labels != 200 || ev.From == "" || len(task.Splits) != 2 || task.Splits[1] != ev {
		t.Errorf("evaluated %+v, splits %+v", ev, task.Splits)
	}
	if err := os.Rename(cohort, cohort+".moved"); err != nil {
		t.Fatal(err)
	}
	r, err = BuildReport(ReportConfig{Models: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Task.Cohort != "" || len(r.Task.Notes) != 1 || !strings.Contains(r.Task.Notes[0], "cannot be read") || r.Task.Evaluated.Labels != 200 {
		t.Errorf("moved cohort: %+v", r.Task)
	}
	if _, err := BuildReport(ReportConfig{Models: []string{dir}, CohortDir: cohort}); err == nil {
		t.Error("a --cohort that cannot be read is no error")
	}
}

// fakeCohort writes a cohort folder whose labels are the tuning and held-out rows of the fake
// model at dir (same subjects, prediction times and labels), with a cohort report whose
// counts add up; each label's time to event: positives a year after the prediction,
// negatives censored after 1 to 6 years.
func fakeCohort(t testing.TB, root, dir string) string {
	t.Helper()
	var labels []data.Label
	for _, split := range []string{data.SplitTuning, data.SplitHeldOut} {
		for i, p := range readStored(t, dir, split) {
			l := data.Label{SubjectID: p.SubjectID, PredictionTime: p.PredictionTime, Value: p.Label, Split: split,
				Age: math.NaN(), Birth: data.StaticTime, Sex: p.Attrs["sex"]}
			if p.Label {
				l.EventTime, l.EventObserved = p.PredictionTime+365*data.MicrosPerDay, true
			} else {
				l.EventTime = p.PredictionTime + int64(365+i%1800)*data.MicrosPerDay
				l.CensorReason = []string{data.CensorDeath, data.CensorEndOfRecord, data.CensorDatasetEnd}[i%3]
			}
			labels = append(labels, l)
		}
	}
	rep := &data.CohortReport{Source: "targets", Targets: []string{"ICD10/E11"}, Labels: len(labels)}
	for _, l := range labels {
		if l.Value {
			rep.Positives++
		} else {
			rep.Negatives++
		}
	}
	rep.Exclusions = []data.ExclusionCount{{Class: "positive", Reason: data.ExclShortHistory, Count: 7},
		{Class: "negative", Reason: data.ExclOverNegRatio, Count: 300}, {Class: "negative", Reason: data.ExclNoBirth, Count: 3}}
	rep.Subjects = rep.Labels + 310
	rep.Params = map[string]any{"lead": "365d", "gap": "0", "follow_up": "365d", "min_history": "365d", "min_age": "18y",
		"min_events": 1.0, "targets": []any{"ICD10/E11"}}
	rep.Sampling = data.SamplingReport{Method: data.NegativesMatchedAge, NegativesPerPositive: 3}
	rep.TimeToEvent = &data.TimeToEventReport{DatasetEnd: "2030-01-01T00:00:00Z", CensorWindow: "365d"}
	out := filepath.Join(root, "cohort")
	m := data.NewManifest(data.StageCohort, map[string]any{"lead": "365d", "gap": "0", "targets": []string{"ICD10/E11"}})
	if err := data.WriteCohort(out, true, &data.CohortResult{Labels: labels, Report: rep}, m); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReportClinicalSections checks the deployed point, decision curve and calibration
// sections against the functions that compute them, on the stored (calibrated) predictions,
// and that the page shows them.
func TestReportClinicalSections(t *testing.T) {
	root := t.TempDir()
	xdir := fakeModel(t, root, "t2d-xgboost", "xgboost", 2, 2.0, 300)
	bdir := fakeModel(t, root, "t2d-bert", "bert", 3, 1.6, 300)
	cohort := fakeCohort(t, root, xdir)
	r, err := BuildReport(ReportConfig{Models: []string{xdir, bdir}, Bootstrap: 200, CohortDir: cohort})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	checkHTML(t, html)
	for i, dir := range []string{xdir, bdir} {
		m, stored := r.Models[i], readStored(t, dir, data.SplitHeldOut)
		o := m.Operating
		if o.NNE != NNE(m.Metrics.Sample.Precision) || o.Threshold != m.Metrics.Threshold.Value {
			t.Errorf("model %d: NNE %+v, threshold %v", i, o.NNE, o.Threshold)
		}
		at, err := AtSensitivities(stored, DefaultSensitivityTargets, 200, 1)
		if err != nil || !reflect.DeepEqual(at, o.AtSensitivity) {
			t.Errorf("model %d: PPV at sensitivities %+v, want %+v (%v)", i, o.AtSensitivity, at, err)
		}
		dc, err := DecisionCurveOf(stored, DecisionThresholds(float64(m.Metrics.Sample.Prevalence.Value)))
		if err != nil || !reflect.DeepEqual(dc, m.Decision) {
			t.Errorf("model %d: decision curve differs from DecisionCurveOf's (%v)", i, err)
		}
		// The deployed point's net benefit from its confusion matrix (raw cut) is the curve's
		// at its calibrated threshold: the same decisions.
		c := m.Metrics.Sample.Confusion
		at1, err := DecisionCurveOf(stored, []float64{o.Threshold})
		if err != nil || float64(at1.Points[0].TP) != c.TP || float64(at1.Points[0].FP) != c.FP {
			t.Errorf("model %d: at the deployed threshold TP/FP %+v, confusion %+v (%v)", i, at1.Points[0], c, err)
		}
		for _, want := range []string{fmtEst(o.NNE, 1), fmtEst(o.AtSensitivity[1].PPV, 3), usefulText(m.Decision),
			fmtNum(m.Decision.Points[19].NetBenefit, 4)} {
			if !strings.Contains(html, want) {
				t.Errorf("model %d: the page lacks %q", i, want)
			}
		}
		checkSegmentCalibration(t, m.SegmentCalibration, stored)
	}
	for _, want := range []string{`id="task"`, `id="flow"`, `id="operating"`, `id="decision"`, `id="bins"`,
		`id="segment-calibration"`, "subjects in the dataset", data.ExclOverNegRatio, "labels in the cohort",
		"first code starting with ICD10/E11, predicted 365d ahead", "matched-age: 3 negatives per positive"} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	small := 0
	for _, m := range r.Models {
		for _, bin := range m.Metrics.Calibration.Uniform {
			if bin.Count < MinBinRows {
				small++
			}
		}
		if m.Calibrated != nil {
			for _, bin := range m.Calibrated.Calibration.Uniform {
				if bin.Count < MinBinRows {
					small++
				}
			}
		}
	}
	if got := strings.Count(html, `class="small-bin"`); small == 0 || got != small {
		t.Errorf("%d near-empty bins marked in the tables, want %d (> 0 for this test)", got, small)
	}
}

// checkSegmentCalibration recomputes the sex segments' calibration by hand.
func checkSegmentCalibration(t *testing.T, segs []SegmentCalibration, stored []Prediction) {
	t.Helper()
	seen := 0
	for _, s := range segs {
		if s.Column != "sex" {
			continue
		}
		seen++
		var n, k, sum float64
		for _, p := range stored {
			if p.Attrs["sex"] == s.Value {
				n++
				sum += p.Score
				if p.Label {
					k++
				}
			}
		}
		lo, hi := Wilson(k, n, 1.959963984540054)
		if float64(s.N) != n || float64(s.Positives) != k || math.Abs(float64(s.MeanPredicted)-sum/n) > 1e-12 ||
			float64(s.Observed) != k/n || float64(s.OE) != k/sum || float64(s.ObservedLo) != lo || float64(s.ObservedHi) != hi {
			t.Errorf("segment sex=%s: %+v", s.Value, s)
		}
	}
	if seen != 2 {
		t.Errorf("%d sex segments, want 2", seen)
	}
}

// TestWilson checks the interval for 3 of 10 against R's prop.test(3, 10, correct = FALSE)
// (0.107791267406301–0.603221852538855), and its ends at 0 and n.
func TestWilson(t *testing.T) {
	lo, hi := Wilson(3, 10, 1.959963984540054)
	near(t, "lo", lo, 0.107791267406301, 1e-12)
	near(t, "hi", hi, 0.603221852538855, 1e-12)
	if lo, hi := Wilson(0, 5, 1.96); lo != 0 || !(hi > 0.4 && hi < 0.44) {
		t.Errorf("0 of 5: %v–%v", lo, hi)
	}
	if lo, hi := Wilson(5, 5, 1.96); hi != 1 || !(lo > 0.56 && lo < 0.6) {
		t.Errorf("5 of 5: %v–%v", lo, hi)
	}
	if lo, _ := Wilson(0, 0, 1.96); !math.IsNaN(lo) {
		t.Error("0 of 0 is not undefined")
	}
}
