package eval

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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
				{Class: "negative", Reason: data.ExclOverNegRatio, Count: 600},
				{Class: "negative", Reason: data.ExclNoPositiveBand, Count: 90},
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
				{Class: "negative", Reason: data.ExclNotInData, Count: 6},
				{Class: "positive", Reason: "a reason of a later medseq", Count: 5},
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
	if task.Cohort != cohort || task.CohortFrom != "the first model's manifest" || task.Lead != "365d" ||
		task.FollowUp != "365d" ||
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
	if r.Task.Cohort != "" || len(r.Task.Notes) != 1 || !strings.Contains(r.Task.Notes[0], "cannot be read") ||
		r.Task.Evaluated.Labels != 200 {
		t.Errorf("moved cohort: %+v", r.Task)
	}
	if _, err := BuildReport(ReportConfig{Models: []string{dir}, CohortDir: cohort}); err == nil {
		t.Error("a --cohort that cannot be read is no error")
	}
}

// fakeCohort writes a cohort folder whose labels are the tuning and held-out rows of the fake
// model at dir (same subjects, prediction times and labels), with a cohort report whose
// counts add up; each label's time to event: positives a year after the prediction,
// negatives censored after 1 to 7 years.
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
				l.EventTime = p.PredictionTime + int64(365+(13*i)%2200)*data.MicrosPerDay
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
	r, err := BuildReport(ReportConfig{Models: []string{xdir, bdir}, Bootstrap: 200, CohortDir: cohort,
		Censoring: filepath.Join("testdata", "censoring.json")})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	checkHTML(t, html)
	// Every section renders from metrics.json alone: the page read back is the same.
	var j strings.Builder
	if err := r.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal([]byte(j.String()), &back); err != nil {
		t.Fatal(err)
	}
	var again strings.Builder
	if err := back.WriteHTML(&again); err != nil {
		t.Fatal(err)
	}
	if again.String() != html {
		t.Error("the page rendered from metrics.json differs")
	}
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

// TestReportSurvival: the survival figures are eval.Survival's on the stored probabilities
// joined to the cohort's time to event (in days); without a cohort, or with labels whose time
// to event is unknown, the panel says why it is absent.
func TestReportSurvival(t *testing.T) {
	root := t.TempDir()
	dir := fakeModel(t, root, "m", "xgboost", 2, 2.0, 300)
	cohort := fakeCohort(t, root, dir)
	horizons := []int64{data.MicrosPerYear, 3 * data.MicrosPerYear}
	r, err := BuildReport(ReportConfig{Models: []string{dir}, CohortDir: cohort, Horizons: horizons})
	if err != nil {
		t.Fatal(err)
	}
	if r.Survival == nil || r.Survival.Note != "" || !reflect.DeepEqual(r.Survival.Horizons, []string{"1y", "3y"}) {
		t.Fatalf("panel %+v", r.Survival)
	}
	co, err := data.LoadCohort(cohort)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[[2]int64]data.Label{}
	for _, l := range co.Labels {
		byKey[[2]int64{l.SubjectID, l.PredictionTime}] = l
	}
	var rows []SurvivalRow
	events := 0
	for _, p := range readStored(t, dir, data.SplitHeldOut) {
		l := byKey[[2]int64{p.SubjectID, p.PredictionTime}]
		rows = append(rows, SurvivalRow{Time: float64(l.EventTime-l.PredictionTime) / float64(data.MicrosPerDay),
			Event: l.EventObserved, Risk: p.Score})
		if l.EventObserved {
			events++
		}
	}
	want, err := Survival(rows, SurvivalOptions{Horizons: []float64{365.25, 3 * 365.25}, Groups: 3, Curves: true})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Models[0].Survival
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) } // NaN as null
	if got == nil || got.N != 300 || got.Events != events || js(got.Harrell) != js(want.Harrell) ||
		js(got.Uno) != js(want.Uno) || js(got.AtHorizon) != js(want.AtHorizon) || len(got.Groups) != len(want.Groups) {
		t.Fatalf("survival differs from Survival's on the joined rows:\n%s\nwant\n%s",
			js(got.AtHorizon), js(want.AtHorizon))
	}
	// The curves keep their event steps and last step only: the same incidence at every event.
	for g, rg := range got.Groups {
		full := want.Groups[g].KM.Steps
		if last := rg.KM.Steps[len(rg.KM.Steps)-1]; last != full[len(full)-1] {
			t.Errorf("group %d: last step %+v, want %+v", g, last, full[len(full)-1])
		}
		for _, s := range rg.KM.Steps[:len(rg.KM.Steps)-1] {
			if s.Events == 0 || !slices.Contains(full, s) {
				t.Errorf("group %d: step %+v is not an event step of the curve", g, s)
			}
		}
	}
	var b strings.Builder
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	checkHTML(t, b.String())
	for _, w := range []string{`id="survival"`, `figure class="survival"`, fmtC(want.Harrell), fmtC(want.Uno),
		fmtNum(want.AtHorizon[0].AUC, 3), "Calibration at 3y"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("the page lacks %q", w)
		}
	}

	// No cohort: the panel says why.
	r, err = BuildReport(ReportConfig{Models: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Survival.Note == "" || r.Models[0].Survival != nil {
		t.Errorf("no cohort: %+v", r.Survival)
	}
	b.Reset()
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "No survival panel: no cohort") {
		t.Error("the page does not say why there is no survival panel")
	}

	// Labels whose time to event is unknown (external labels without target codes).
	for i := range co.Labels {
		co.Labels[i].EventTime, co.Labels[i].EventObserved, co.Labels[i].CensorReason = data.StaticTime, false, ""
	}
	unknown := filepath.Join(root, "unknown")
	rep, err := readCohortReport(cohort)
	if err != nil {
		t.Fatal(err)
	}
	res := &data.CohortResult{Labels: co.Labels, Report: rep}
	if err := data.WriteCohort(unknown, true, res, data.NewManifest(data.StageCohort, nil)); err != nil {
		t.Fatal(err)
	}
	r, err = BuildReport(ReportConfig{Models: []string{dir}, CohortDir: unknown})
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Models[0].SurvivalNote; r.Models[0].Survival != nil || !strings.Contains(n, "300 have no time to event") {
		t.Errorf("unknown time to event: note %q", n)
	}
}

// TestReportCensoring reads what medseq eval censoring wrote on the demo (testdata) and shows
// it; a file that is not such a result fails the report before any model is read.
func TestReportCensoring(t *testing.T) {
	c, err := ReadCensoringSensitivity(filepath.Join("testdata", "censoring.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Variants) != 7 || c.Variants[0].Policy != "keep" || !c.Variants[3].MatchesCohort ||
		c.Variants[3].FollowUp != "365d" ||
		c.Variants[3].Metrics.Labels != 253 || c.Variants[3].Delta == nil || c.CohortFollowUp != "365d" {
		t.Fatalf("read %+v", c)
	}
	root := t.TempDir()
	dir := fakeModel(t, root, "m", "xgboost", 2, 2.0, 100)
	r, err := BuildReport(ReportConfig{Models: []string{dir}, Censoring: filepath.Join("testdata", "censoring.json")})
	if err != nil {
		t.Fatal(err)
	}
	other := func(w string) bool { return strings.Contains(w, "not of a model in this report") }
	if r.Censoring == nil || !slices.ContainsFunc(r.Warnings, other) {
		t.Errorf("censoring %v, warnings %q", r.Censoring != nil, r.Warnings)
	}
	var b strings.Builder
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	checkHTML(t, page)
	if n := strings.Count(page, "<tr") - strings.Count(strings.SplitN(page, `id="censoring"`, 2)[0], "<tr"); n < 8 {
		t.Errorf("%d rows after the censoring heading", n)
	}
	for _, w := range []string{`id="censoring"`, "365d *", "0.655 (0.573–0.730)", "&#43;0.074", // html/template writes + as &#43;
		"death 18", `figure class="censoring"`} {
		if !strings.Contains(page, w) {
			t.Errorf("the page lacks %q", w)
		}
	}
	bad := filepath.Join(root, "bad.json")
	for _, c := range []struct{ content, want string }{
		{"not json", "invalid character"},
		{"{}", ErrCensoringFile.Error()},
		{`{"variants":[{"follow_up":"0"}]}`, "variant 1 has no follow_up or policy"},
	} {
		if err := os.WriteFile(bad, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := BuildReport(ReportConfig{Models: []string{filepath.Join(root, "no-such-model")}, Censoring: bad})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", c.content, err)
		}
	}
	if _, err := ReadCensoringSensitivity(filepath.Join(root, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
