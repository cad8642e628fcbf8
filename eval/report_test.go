package eval

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
)

// fakeModel writes a model version folder: tuning and held-out predictions of the same
// subjects (labels shared across models through seed 1), calibration.json, manifest.json,
// metrics.jsonl and, for xgboost, top_features.json. signal sets how well scores separate.
func fakeModel(t testing.TB, root, name, kind string, seed uint64, signal float64, n int) string {
	t.Helper()
	dir := filepath.Join(root, name, "1")
	if err := os.MkdirAll(filepath.Join(dir, "xgboost"), 0o755); err != nil {
		t.Fatal(err)
	}
	labelRNG := rand.New(rand.NewPCG(1, 1))
	rng := rand.New(rand.NewPCG(seed, 7))
	mk := func(split string, offset int64) []Prediction {
		out := make([]Prediction, n)
		for i := range out {
			y := labelRNG.Float64() < 0.25
			age := 35 + 50*labelRNG.Float64()
			if y {
				age += 5
			}
			sex := "F"
			if labelRNG.IntN(2) == 0 {
				sex = "M"
			}
			z := rng.NormFloat64() - 1.5
			if y {
				z += signal
			}
			if sex == "M" && kind == "bert" {
				z += 0.3 // a little subgroup structure
			}
			out[i] = Prediction{SubjectID: offset + int64(i), PredictionTime: 1_600_000_000_000_000 + int64(i)*1e6, Label: y,
				Score: 1 / (1 + math.Exp(-z)), Attrs: map[string]string{"age": fmt.Sprintf("%.2f", age), "sex": sex, "split": split}}
		}
		return out
	}
	tun, held := mk("tuning", 10_000), mk("held_out", 20_000)
	cal, op, err := ModelOutputs(dir, map[string][]Prediction{"tuning": tun, "held_out": held}, CalibrationIsotonic, ThresholdSpec{})
	if err != nil {
		t.Fatal(err)
	}
	man := &modelrepo.Manifest{Manifest: data.Manifest{RunID: "run-" + name, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		Kind: kind, Name: name, Metrics: map[string]float64{"best_iteration": 40}, Calibration: cal.Method,
		OperatingPoint: op}
	if err := man.Write(dir); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	for i := 0; i < 60; i++ {
		tr, va := 0.6*math.Exp(-float64(i)/20)+0.2, 0.5*math.Exp(-float64(i)/25)+0.3+0.0005*float64(i)
		if kind == "xgboost" {
			fmt.Fprintf(&log, `{"round":%d,"elapsed_s":%g,"train_logloss":%g,"tuning_logloss":%g,"tuning_auc":0.8}`+"\n", i, float64(i)/10, tr, va)
		} else {
			fmt.Fprintf(&log, `{"step":%d,"epoch":%g,"train_loss":%g,"val_loss":%g,"val_auroc":0.8,"lr":0.001}`+"\n", i*50, float64(i)/20, tr, va)
		}
	}
	if err := os.WriteFile(modelrepo.TrainLogPath(dir), log.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if kind == "xgboost" {
		top := []TopFeature{{"ICD10/R73.0", 120.5, "Abnormal glucose <tolerance> & more"}, {"age", 80.25, ""}, {"LOINC/4548-4", 33, "HbA1c"}}
		b, _ := json.Marshal(top)
		if err := os.WriteFile(modelrepo.TopFeaturesPath(dir), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readPreds reads a fake model's predictions of a split with their raw scores.
func readPreds(t testing.TB, dir, split string) []Prediction {
	t.Helper()
	p, err := RawScores(readStored(t, dir, split))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readStored reads a fake model's predictions of a split as stored (calibrated).
func readStored(t testing.TB, dir, split string) []Prediction {
	t.Helper()
	p, err := ReadPredictions(modelrepo.PredictionsFile(dir, split))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// updateManifest rewrites a fake model's manifest through f.
func updateManifest(t testing.TB, dir string, f func(m *modelrepo.Manifest)) {
	t.Helper()
	m, err := modelrepo.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	f(m)
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
}

var svgRE = regexp.MustCompile(`(?s)<svg\b.*?</svg>`)

// checkHTML checks what every report must satisfy: offline, SVGs well-formed, no NaN.
func checkHTML(t *testing.T, html string) {
	t.Helper()
	rest := strings.ReplaceAll(html, `xmlns="http://www.w3.org/2000/svg"`, "")
	for _, scheme := range []string{"http://", "https://", "//fonts.", "<script", "<link", "src=\"http", "url(http"} {
		if i := strings.Index(rest, scheme); i >= 0 {
			t.Errorf("report refers to %q outside the SVG xmlns: …%s…", scheme, rest[max(0, i-60):min(len(rest), i+60)])
		}
	}
	if strings.Contains(html, "NaN") {
		i := strings.Index(html, "NaN")
		t.Errorf("report shows NaN: …%s…", html[max(0, i-80):min(len(html), i+40)])
	}
	if n := strings.Count(html, "<svg"); n == 0 || n != len(svgRE.FindAllString(html, -1)) {
		t.Errorf("%d <svg but %d complete svg elements", n, len(svgRE.FindAllString(html, -1)))
	}
	for i, s := range svgRE.FindAllString(html, -1) {
		d := xml.NewDecoder(strings.NewReader(s))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("svg %d does not parse as XML: %v", i, err)
				break
			}
		}
	}
}

func TestReport(t *testing.T) {
	root := t.TempDir()
	xdir := fakeModel(t, root, "t2d-xgboost", "xgboost", 2, 2.0, 300)
	bdir := fakeModel(t, root, "t2d-bert", "bert", 3, 1.6, 300)
	oracle := 0.8712
	start := time.Now()
	r, err := BuildReport(ReportConfig{Models: []string{xdir, bdir}, Bootstrap: 1000, OracleAUROC: &oracle, OracleNote: "held_out, 300 labels",
		Now: func() time.Time { return time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "report")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	path, err := r.Write(out)
	if err != nil {
		t.Fatal(err)
	}
	// Speed is a benchmark's business, not a test's (this machine is shared): only log it.
	t.Logf("report built and written in %v", time.Since(start))
	if path != filepath.Join(out, ReportHTMLFile) {
		t.Errorf("path %s", path)
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	html := string(buf)
	checkHTML(t, html)
	for _, want := range []string{"t2d-xgboost", "t2d-bert", "0.871", "held_out, 300 labels", "DeLong", "Simpson", "Top features",
		"train (train_logloss)", "train (train_loss)", "validation (val_loss)", "validation (tuning_logloss)",
		"Abnormal glucose &lt;tolerance&gt; &amp; more", "age_band", "on the tuning split, 300 rows", "calibrated, deployed (max-f1",
		"max-f1 (alternative)", "youden (alternative)"} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if strings.Contains(html, "<tolerance>") {
		t.Error("feature description not escaped")
	}
	// 10 plots: ROC, PR, 2 reliability, decision, 2 score histograms, age, 2 training curves.
	if n := strings.Count(html, "<svg"); n != 10 {
		t.Errorf("%d plots, want 10", n)
	}

	// The headline numbers are eval.Compute's.
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", text.String())
	for i, dir := range []string{xdir, bdir} {
		// At the deployed point: the manifest's calibrated threshold, as a raw cut on these rows.
		man, err := modelrepo.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		raw := RawThreshold(readPreds(t, dir, "held_out"), readStored(t, dir, "held_out"), man.OperatingPoint.Threshold)
		m, err := Compute(readPreds(t, dir, "held_out"), Config{Threshold: ThresholdSpec{Method: ThresholdFixed, Value: raw}, Bootstrap: 1000, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		// The deployed point decides as the stored predicted_boolean_value does, row by row.
		for j, p := range readStored(t, dir, "held_out") {
			if (p.Score >= man.OperatingPoint.Threshold) != (readPreds(t, dir, "held_out")[j].Score >= raw) {
				t.Fatalf("model %d row %d: the raw cut decides otherwise than the calibrated threshold", i, j)
			}
		}
		got := r.Models[i].Metrics
		if got.Threshold.Method != ThresholdDeployed || got.Threshold.Value != man.OperatingPoint.Threshold || got.Threshold.Raw != raw {
			t.Errorf("model %d: threshold %+v, want the deployed %v (raw %v)", i, got.Threshold, man.OperatingPoint.Threshold, raw)
		}
		if got.Sample.AUROC != m.Sample.AUROC || got.Sample.AUPRC != m.Sample.AUPRC || got.Sample.F1 != m.Sample.F1 || got.Sample.Recall != m.Sample.Recall {
			t.Errorf("model %d: report metrics differ from Compute's", i)
		}
		for _, want := range []string{fmtEst(m.Sample.AUROC, 3), fmtEst(m.Sample.AUPRC, 3), fmtNum(m.Sample.LogLoss.Value, 4),
			fmtNum(m.Sample.Brier.Value, 4), fmtNum(m.Calibration.ECE, 4), fmtEst(m.Sample.Recall, 3), fmtEst(m.Sample.Specificity, 3),
			fmtEst(m.Sample.Precision, 3), fmtEst(m.Sample.NPV, 3), fmtEst(m.Sample.LRPlus, 2), fmtEst(m.Sample.LRMinus, 2)} {
			if !strings.Contains(html, want) {
				t.Errorf("model %d: report.html lacks Compute's %q", i, want)
			}
			if !strings.Contains(text.String(), want) {
				t.Errorf("model %d: headline text lacks Compute's %q", i, want)
			}
		}
		cal, err := modelrepo.ReadCalibration(dir)
		if err != nil {
			t.Fatal(err)
		}
		cm, err := Compute(Calibrate(cal, readPreds(t, dir, "held_out")), Config{})
		if err != nil {
			t.Fatal(err)
		}
		if want := fmtNum(cm.Calibration.ECE, 4); !strings.Contains(html, want) {
			t.Errorf("model %d: calibrated ECE %s missing", i, want)
		}
	}
	d, err := CompareAUROC(readPreds(t, xdir, "held_out"), readPreds(t, bdir, "held_out"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Pairs) != 1 || r.Pairs[0].Comparison == nil || r.Pairs[0].Comparison.Aggregate != *d {
		t.Errorf("DeLong: %+v, want %+v", r.Pairs, d)
	}
	if !strings.Contains(html, fmtP(d.P)) {
		t.Errorf("DeLong p %s missing", fmtP(d.P))
	}

	// metrics.json round-trips.
	jb, err := os.ReadFile(filepath.Join(out, ReportJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(jb, &back); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := back.WriteJSON(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(jb, again.Bytes()) {
		t.Error("metrics.json does not round-trip")
	}
	if back.Oracle == nil || float64(back.Oracle.AUROC) != oracle || len(back.Models) != 2 || back.Models[0].Name != "t2d-xgboost" {
		t.Errorf("metrics.json: %+v", back.Oracle)
	}
	// The report rebuilt from metrics.json renders the same page.
	var h2 bytes.Buffer
	if err := back.WriteHTML(&h2); err != nil {
		t.Fatal(err)
	}
	if h2.String() != html {
		t.Error("report.html rendered from metrics.json differs")
	}
	if p := os.Getenv("MEDSEQ_REPORT_KEEP"); p != "" {
		if _, err := r.Write(p); err != nil {
			t.Fatal(err)
		}
	}
}

// A report of one model with odd inputs: a name needing escapes, no calibration, no log, no
// tuning split and a fixed threshold where nothing is predicted positive.
func TestReportEdgeCases(t *testing.T) {
	root := t.TempDir()
	dir := fakeModel(t, root, "m", "bert", 5, 1.0, 80)
	updateManifest(t, dir, func(m *modelrepo.Manifest) {
		m.Name = "<script>alert(1)</script> & co"
		m.OperatingPoint = modelrepo.OperatingPoint{Rule: "1", Method: ThresholdFixed, Threshold: 1, ChosenOn: modelrepo.PointFixed}
	})
	for _, f := range []string{modelrepo.CalibrationPath(dir), modelrepo.TrainLogPath(dir), modelrepo.PredictionsFile(dir, "tuning")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	r, err := BuildReport(ReportConfig{Models: []string{dir}, Bootstrap: 50, Threshold: ThresholdSpec{Method: ThresholdSensitivity, Target: 0.9}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	checkHTML(t, html)
	// Without tuning predictions the alternatives are chosen on the evaluated split, and say so.
	alts := r.Models[0].Alternatives
	if len(alts) != 3 || alts[2].Rule != "sens=0.9" || alts[2].ChosenOn != "evaluation" || float64(alts[2].Sensitivity) < 0.9 {
		t.Errorf("alternatives %+v", alts)
	}
	// The deployed point (threshold 1) predicts nothing positive.
	if c := r.Models[0].Metrics.Sample.Confusion; c.TP+c.FP != 0 {
		t.Errorf("threshold 1 gave %v positives", c.TP+c.FP)
	}
	if strings.Contains(html, "<script") {
		t.Error("model name not escaped")
	}
	if !strings.Contains(html, "&lt;script&gt;") {
		t.Error("escaped model name missing")
	}
	if !strings.Contains(html, Dash) || !strings.Contains(html, "marks an undefined value") {
		t.Error("undefined values not shown as a dash with a footnote")
	}
	if !strings.Contains(html, "no calibration.json") || !strings.Contains(html, "no training log") {
		t.Error("missing inputs not reported")
	}
	// With a threshold of 1 nothing is positive: PPV is undefined.
	if v := float64(r.Models[0].Metrics.Sample.Precision.Value); !math.IsNaN(v) {
		t.Fatalf("PPV %v, want NaN for this test", v)
	}
	var j bytes.Buffer
	if err := r.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(j.String(), "NaN") {
		t.Error("metrics.json holds NaN")
	}

	// The evaluated split missing is an error naming the model.
	if _, err := BuildReport(ReportConfig{Models: []string{dir}, Split: "nope"}); err == nil || !strings.Contains(err.Error(), "co") {
		t.Errorf("missing split: %v", err)
	}
	if _, err := BuildReport(ReportConfig{}); err == nil {
		t.Error("no models: no error")
	}
	if _, err := BuildReport(ReportConfig{Models: []string{root}}); err == nil {
		t.Error("folder without manifest: no error")
	}
}

// Models scored on different rows are reported, but not compared.
func TestReportUnpaired(t *testing.T) {
	root := t.TempDir()
	a := fakeModel(t, root, "a", "xgboost", 2, 2, 100)
	b := fakeModel(t, root, "b", "bert", 3, 2, 120)
	r, err := BuildReport(ReportConfig{Models: []string{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Pairs) != 1 || r.Pairs[0].Comparison != nil || r.Pairs[0].Error == "" {
		t.Fatalf("pairs %+v", r.Pairs)
	}
	var h bytes.Buffer
	if err := r.WriteHTML(&h); err != nil {
		t.Fatal(err)
	}
	checkHTML(t, h.String())
	if !strings.Contains(h.String(), "not compared") {
		t.Error("the failed comparison is not shown")
	}
}

func TestReadTrainingCurve(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, log, x, train, val string
		n                        int
	}{
		{"xgb", "{\"round\":0,\"train_logloss\":0.6,\"tuning_logloss\":0.65}\n{\"round\":1,\"train_logloss\":0.5,\"tuning_logloss\":0.6}\n", "round", "train_logloss", "tuning_logloss", 2},
		{"bert", "{\"step\":0,\"train_loss\":0.7,\"val_loss\":null}\n\n{\"step\":50,\"train_loss\":0.5,\"val_loss\":0.55}\n", "step", "train_loss", "val_loss", 2},
	} {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, []byte(c.log), 0o644); err != nil {
			t.Fatal(err)
		}
		tc, err := ReadTrainingCurve(p)
		if err != nil {
			t.Fatal(err)
		}
		if tc.XName != c.x || tc.TrainName != c.train || tc.ValName != c.val || len(tc.Train) != c.n {
			t.Errorf("%s: %+v", c.name, tc)
		}
	}
	p := filepath.Join(dir, "bad")
	os.WriteFile(p, []byte("{\"step\":1,\"lr\":0.1}\n"), 0o644)
	if _, err := ReadTrainingCurve(p); err == nil {
		t.Error("log without losses: no error")
	}
	os.WriteFile(p, []byte("not json\n"), 0o644)
	if _, err := ReadTrainingCurve(p); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad line: %v", err)
	}
}

func TestCurves(t *testing.T) {
	roc, pr := curves([]bool{true, false, true, false}, []float64{0.9, 0.9, 0.5, 0.1})
	wantROC := []Point{{0, 0}, {0.5, 0.5}, {0.5, 1}, {1, 1}}
	if fmt.Sprint(roc) != fmt.Sprint(wantROC) {
		t.Errorf("roc %v, want %v", roc, wantROC)
	}
	wantPR := []Point{{0, 0.5}, {0.5, 0.5}, {1, 2.0 / 3}, {1, 0.5}}
	if fmt.Sprint(pr) != fmt.Sprint(wantPR) {
		t.Errorf("pr %v, want %v", pr, wantPR)
	}
	if r, p := curves([]bool{true}, []float64{0.5}); r != nil || p != nil {
		t.Error("one class: curves")
	}
	many := make([]Point, 5000)
	if n := len(thin(many)); n > maxCurvePoints+1 {
		t.Errorf("thin kept %d", n)
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		n    Num
		d    int
		want string
	}{{Num(math.NaN()), 3, Dash}, {Num(math.Inf(1)), 2, "∞"}, {Num(-0.00001), 3, "0.000"}, {Num(-0.25), 2, "−0.25"}, {0.81234, 3, "0.812"}} {
		if got := fmtNum(c.n, c.d); got != c.want {
			t.Errorf("fmtNum(%v) = %q, want %q", float64(c.n), got, c.want)
		}
	}
	if got := fmtEst(Estimate{0.8, 0.7, 0.9}, 2); got != "0.80 (0.70–0.90)" {
		t.Error(got)
	}
	if got := fmtEst(point(0.8), 2); got != "0.80" {
		t.Error(got)
	}
	if fmtP(0.00001) != "<0.001" || fmtP(0.5) != "0.500" {
		t.Error("fmtP")
	}
}

// TestReportUnequalInputs: a model that reads numeric values (XGBoost with --last-values, a
// BERT whose tokenizer has value bins) beside one that reads codes only is flagged, in the
// report's warnings and per model.
func TestReportUnequalInputs(t *testing.T) {
	root := t.TempDir()
	xdir := fakeModel(t, root, "t2d-xgboost", "xgboost", 2, 2.0, 200)
	bdir := fakeModel(t, root, "t2d-bert", "bert", 3, 1.6, 200)
	set := func(dir string, f func(m *modelrepo.Manifest)) { updateManifest(t, dir, f) }
	for _, tc := range []struct {
		name       string
		lastValues bool
		valueBins  int // the BERT's tokenizer
		warned     bool
	}{
		{"both codes only", false, 0, false},
		{"baseline reads values", true, 0, true},
		{"both read values", true, 10, false},
		{"only the BERT reads values", false, 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(xdir, func(m *modelrepo.Manifest) { m.LastValues = tc.lastValues })
			set(bdir, func(m *modelrepo.Manifest) {
				m.ValueBins, m.Device = tc.valueBins, &modelrepo.Device{Kind: "gpu", DType: "bfloat16", GPU: "NVIDIA H200"}
			})
			r, err := BuildReport(ReportConfig{Models: []string{xdir, bdir}, Bootstrap: 20})
			if err != nil {
				t.Fatal(err)
			}
			warned := slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "not like for like") })
			if warned != tc.warned {
				t.Errorf("warned %v, want %v: %q", warned, tc.warned, r.Warnings)
			}
			want := func(values bool) string {
				if values {
					return InputsCodesValues
				}
				return InputsCodes
			}
			if r.Models[0].TrainedOn != "cpu" || r.Models[1].TrainedOn != "gpu bfloat16 (NVIDIA H200)" {
				t.Errorf("trained on %q, %q", r.Models[0].TrainedOn, r.Models[1].TrainedOn)
			}
			if r.Models[0].Inputs != want(tc.lastValues) || r.Models[1].Inputs != want(tc.valueBins > 0) {
				t.Errorf("inputs %q, %q", r.Models[0].Inputs, r.Models[1].Inputs)
			}
		})
	}
}
