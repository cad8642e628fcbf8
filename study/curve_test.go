package study

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/features"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
	"github.com/medseq/medseq/train"
)

// curveLabels is a cohort's labels for the subset tests: nTrain training subjects (every
// fifth positive, every third with a second label), and tuning and held-out subjects.
func curveLabels(nTrain int) []data.Label {
	var out []data.Label
	for id := int64(1); id <= int64(nTrain)+200; id++ {
		split := data.SplitTrain
		switch {
		case id > int64(nTrain)+100:
			split = data.SplitHeldOut
		case id > int64(nTrain):
			split = data.SplitTuning
		}
		out = append(out, data.Label{SubjectID: id, PredictionTime: 1000 * id, Value: id%5 == 0, Split: split})
		if id%3 == 0 {
			out = append(out, data.Label{SubjectID: id, PredictionTime: 1000*id + 1, Value: false, Split: split})
		}
	}
	return out
}

// trainSubjects are the training subjects of labels, by class (any positive label).
func trainSubjects(labels []data.Label) (pos, neg map[int64]bool) {
	pos, neg = map[int64]bool{}, map[int64]bool{}
	for _, l := range labels {
		if l.Split == data.SplitTrain {
			neg[l.SubjectID] = true
			if l.Value {
				pos[l.SubjectID] = true
			}
		}
	}
	for id := range pos {
		delete(neg, id)
	}
	return pos, neg
}

// notTrain are the labels outside the training split, in order.
func notTrain(labels []data.Label) []data.Label {
	var out []data.Label
	for _, l := range labels {
		if l.Split != data.SplitTrain {
			out = append(out, l)
		}
	}
	return out
}

// TestNestedSubsets: each fraction keeps round(f·n) training subjects of each class, the
// fractions are nested, every tuning and held-out label is kept unchanged, the training
// counts are those of the kept subjects' labels, and the draw depends on the seed alone.
func TestNestedSubsets(t *testing.T) {
	labels := curveLabels(1000)
	pos, neg := trainSubjects(labels)
	fractions := []float64{0.1, 0.25, 0.5, 1}
	subs, err := nestedSubsets(labels, fractions, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		t.Run(fractionName(s.fraction), func(t *testing.T) {
			np, nn := 0, 0
			for id := range s.subjects {
				switch {
				case pos[id]:
					np++
				case neg[id]:
					nn++
				default:
					t.Fatalf("subject %d kept but not in the training split", id)
				}
			}
			if want := int(math.Round(s.fraction * float64(len(pos)))); np != want {
				t.Errorf("%d positive subjects kept, want %d", np, want)
			}
			if want := int(math.Round(s.fraction * float64(len(neg)))); nn != want {
				t.Errorf("%d negative subjects kept, want %d", nn, want)
			}
			if i > 0 {
				for id := range subs[i-1].subjects {
					if !s.subjects[id] {
						t.Errorf("subject %d of fraction %g is missing from %g", id, subs[i-1].fraction, s.fraction)
					}
				}
			}
			var kept []data.Label
			for _, l := range s.labels {
				if l.Split == data.SplitTrain {
					kept = append(kept, l)
				}
			}
			if got := countLabels(kept); got != s.train || got.Subjects != len(s.subjects) {
				t.Errorf("training counts %+v, labels say %+v (%d subjects)", s.train, got, len(s.subjects))
			}
			if !slices.Equal(notTrain(s.labels), notTrain(labels)) {
				t.Error("the tuning and held-out labels differ from the cohort's")
			}
		})
	}
	if !maps.Equal(subs[3].subjects, mapOf(pos, neg)) || !slices.Equal(subs[3].labels, labels) {
		t.Error("fraction 1 is not the whole training split")
	}
	again, _ := nestedSubsets(labels, fractions, 7)
	other, _ := nestedSubsets(labels, fractions, 8)
	if !maps.Equal(again[0].subjects, subs[0].subjects) {
		t.Error("the same seed drew other subjects")
	}
	if maps.Equal(other[0].subjects, subs[0].subjects) {
		t.Error("another seed drew the same subjects")
	}
}

func mapOf(ms ...map[int64]bool) map[int64]bool {
	out := map[int64]bool{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

// TestCurveFractionErrors: fractions out of (0, 1], unsorted or repeated, and one too small to
// keep both classes are refused with errors wrapping ErrFractions that say why.
func TestCurveFractionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   []float64
		want string
	}{
		{"zero", []float64{0, 0.5}, "0 is not in (0, 1]"},
		{"negative", []float64{-0.1}, "-0.1 is not in (0, 1]"},
		{"above one", []float64{0.5, 1.5}, "1.5 is not in (0, 1]"},
		{"nan", []float64{math.NaN()}, "NaN is not in (0, 1]"},
		{"unsorted", []float64{0.5, 0.25}, "0.25 after 0.5"},
		{"repeated", []float64{0.5, 0.5}, "0.5 after 0.5"},
		{"none", nil, "none given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckFractions(tc.fs)
			if !errors.Is(err, ErrFractions) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckFractions(%v) = %v, want %q", tc.fs, err, tc.want)
			}
		})
	}
	t.Run("too small", func(t *testing.T) {
		// 100 training subjects, 20 positive: 1% keeps no positive subject.
		_, err := nestedSubsets(curveLabels(100), []float64{0.01, 1}, 1)
		if !errors.Is(err, ErrFractions) || !strings.Contains(err.Error(), "keeps none of its 20 subjects with a positive label") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("config", func(t *testing.T) {
		cfg := CurveConfig{MEDS: "m", Cohort: "c", Tokenizer: "t", Out: filepath.Join(t.TempDir(), "out"),
			Fractions: []float64{1, 0.5}}
		if _, err := Curve(context.Background(), cfg); !errors.Is(err, ErrFractions) {
			t.Errorf("Curve with unsorted fractions: %v", err)
		}
		cfg.Fractions, cfg.Models = nil, []string{"lightgbm"}
		if _, err := Curve(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), `model "lightgbm"`) {
			t.Errorf("Curve with an unknown model: %v", err)
		}
	})
}

// curveFixture is a synthetic dataset, a --target cohort (60/20/20) and its tokenizer.
type curveFixture struct {
	meds, cohort, tok string
	c                 *data.Cohort
}

func buildCurveFixture(t *testing.T, subjects int) curveFixture {
	t.Helper()
	ctx, root := context.Background(), t.TempDir()
	f := curveFixture{tok: filepath.Join(root, "tok")}
	var err error
	f.meds, f.cohort, _, _ = writeSynthCohort(t, root, subjects, 3,
		data.SplitFractions{Train: 0.6, Tuning: 0.2, HeldOut: 0.2})
	_, err = tokenize.BuildFromCohort(ctx, tokenize.FromCohortConfig{MEDS: f.meds, Cohort: f.cohort, Out: f.tok,
		Build: tokenize.DefaultBuildConfig(), Leak: tokenize.LeakConfig{Threshold: 0.95}})
	if err != nil {
		t.Fatal(err)
	}
	if f.c, err = data.LoadCohort(f.cohort); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f curveFixture) config(t *testing.T, models ...string) CurveConfig {
	// The latest lab values carry most of the synthetic signal: with them the models learn
	// something from a few hundred labels.
	xc := train.XGBoostConfig{Params: xgb.DefaultParams(), Features: features.DefaultConfig()}
	xc.Features.LastValue = true
	p := &xc.Params // regularised: the cohorts are small
	p.Rounds, p.NThread, p.Eta, p.MaxDepth, p.MinChildWeight, p.ColsampleByTree = 80, 2, 0.1, 3, 5, 0.5
	p.Subsample, p.Lambda, p.Alpha, p.EvalMetric, p.EarlyStopping = 0.8, 1, 0, "auc", 20
	bc := train.DefaultBERTClassifyConfig()
	bc.MaxLen, bc.Epochs, bc.EvalEvery, bc.LR = 64, 1, 20, 1e-3
	return CurveConfig{MEDS: f.meds, Cohort: f.cohort, Tokenizer: f.tok, Fractions: []float64{0.25, 0.5, 1},
		Models: models, Seed: 5, XGBoost: xc, BERT: bc, Bootstrap: 200, Out: filepath.Join(t.TempDir(), "curve")}
}

// TestCurveXGBoost fits XGBoost on three fractions of a synthetic cohort: one point per
// fraction with the kept subjects' label counts, intervals around the points, the same
// held-out rows for every fit, and cohorts that cut only the training split; then the output.
func TestCurveXGBoost(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three models")
	}
	f := buildCurveFixture(t, 6000)
	cfg := f.config(t, CurveXGBoost)
	cfg.KeepModels = true
	r, err := Curve(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	logCurve(t, r)
	checkPoints(t, r, f, cfg)
	checkKeptCohorts(t, r, f)
	checkOutput(t, r, cfg)
	if r.Oracle == nil || r.Oracle.Labels != r.HeldOut.Labels {
		t.Errorf("oracle %+v (why %q) on %d held-out labels", r.Oracle, r.OracleWhy, r.HeldOut.Labels)
	}
	// The output is never replaced without Force, and that is known before any fit.
	if _, err := Curve(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second run into the same folder: %v", err)
	}
}

func logCurve(t *testing.T, r *CurveResult) {
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
}

// checkPoints checks every point against the cohort: its training counts are those of the
// subjects the fraction keeps, its held-out rows are the cohort's, its interval holds it.
func checkPoints(t *testing.T, r *CurveResult, f curveFixture, cfg CurveConfig) {
	t.Helper()
	pos, neg := trainSubjects(f.c.Labels)
	var held []data.Label
	for _, l := range f.c.Labels {
		if l.Split == data.SplitHeldOut {
			held = append(held, l)
		}
	}
	if len(r.Points) != len(cfg.Fractions)*len(cfg.Models) {
		t.Fatalf("%d points for %d fractions and %d models", len(r.Points), len(cfg.Fractions), len(cfg.Models))
	}
	for i, p := range r.Points {
		wantF := cfg.Fractions[i/len(cfg.Models)]
		wantSubjects := int(math.Round(wantF*float64(len(pos)))) + int(math.Round(wantF*float64(len(neg))))
		switch {
		case p.Fraction != wantF || p.Model != cfg.Models[i%len(cfg.Models)]:
			t.Errorf("point %d: %s at %g, want %s at %g", i, p.Model, p.Fraction, cfg.Models[i%len(cfg.Models)], wantF)
		case p.Train.Subjects != wantSubjects:
			t.Errorf("point %d: %d training subjects, want %d", i, p.Train.Subjects, wantSubjects)
		case p.HeldOutRows != rowsDigest(held) || p.HeldOutRows != r.HeldOutRows:
			t.Errorf("point %d: held-out rows %s, the cohort's %s", i, p.HeldOutRows, rowsDigest(held))
		case !(p.AUROCLow <= p.AUROC && p.AUROC <= p.AUROCHigh) || p.AUROCHigh-p.AUROCLow <= 0:
			t.Errorf("point %d: AUROC %v outside its interval (%v, %v)", i, p.AUROC, p.AUROCLow, p.AUROCHigh)
		case p.AUROC < 0.55 || (p.Fraction == 1 && p.AUROC < 0.6):
			t.Errorf("point %d: held-out AUROC %v: the model learned next to nothing", i, p.AUROC)
		}
		// The model's own training predictions are the rows the point counts.
		preds, err := eval.ReadPredictions(modelrepo.PredictionsFile(p.ModelDir, data.SplitTrain))
		if err != nil {
			t.Fatal(err)
		}
		if got := countPredictions(preds); got != p.Train {
			t.Errorf("point %d: counts %+v, the model's training predictions %+v", i, p.Train, got)
		}
	}
	last := r.Points[len(r.Points)-1]
	if last.Train.Labels != r.Train.Labels || last.Train.Positives != r.Train.Positives {
		t.Errorf("fraction 1 learned from %+v, the training split is %+v", last.Train, r.Train)
	}
}

func countPredictions(ps []eval.Prediction) CurveCounts {
	ls := make([]data.Label, len(ps))
	for i, p := range ps {
		ls[i] = data.Label{SubjectID: p.SubjectID, Value: p.Label}
	}
	return countLabels(ls)
}

// checkKeptCohorts reads each fraction's cohort back: nested training subjects, the parent's
// tuning and held-out labels, a manifest naming the dataset and the fraction.
func checkKeptCohorts(t *testing.T, r *CurveResult, f curveFixture) {
	t.Helper()
	if r.FitsDir == "" {
		t.Fatal("KeepModels kept no fits folder")
	}
	prev := map[int64]bool{}
	for _, fr := range r.Fractions {
		dir := filepath.Join(r.FitsDir, "cohorts", fractionName(fr))
		c, err := data.LoadCohort(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckDataset(f.meds); err != nil {
			t.Errorf("cohort %s: %v", dir, err)
		}
		if !slices.Equal(notTrain(c.Labels), notTrain(f.c.Labels)) {
			t.Errorf("cohort %s: tuning and held-out labels differ from the parent's", dir)
		}
		pos, neg := trainSubjects(c.Labels)
		cur := mapOf(pos, neg)
		for id := range prev {
			if !cur[id] {
				t.Errorf("cohort %s lacks subject %d of the smaller fraction", dir, id)
			}
		}
		prev = cur
		lc, _ := c.Manifest.Params["learning_curve"].(map[string]any)
		if lc["fraction"] != fr {
			t.Errorf("cohort %s: manifest learning_curve %v", dir, lc)
		}
	}
}

// checkOutput reads curve.json and curve.svg back.
func checkOutput(t *testing.T, r *CurveResult, cfg CurveConfig) {
	t.Helper()
	buf, err := os.ReadFile(filepath.Join(cfg.Out, CurveJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var back CurveResult
	err = json.Unmarshal(buf, &back)
	if err != nil || len(back.Points) != len(r.Points) || back.Points[0].AUROC != r.Points[0].AUROC {
		t.Errorf("curve.json: %v, %d points", err, len(back.Points))
	}
	svg, err := os.ReadFile(filepath.Join(cfg.Out, CurveSVGFile))
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("curve.svg is not XML: %v", err)
		}
	}
	for _, want := range []string{"<svg", "XGBoost", "oracle", "training labels"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("curve.svg lacks %q", want)
		}
	}
}

// TestCurveBERT fits the tiny BERT and XGBoost on two fractions and compares them; the fits
// folder is removed afterwards.
func TestCurveBERT(t *testing.T) {
	if testing.Short() {
		t.Skip("trains four models, two of them BERTs")
	}
	f := buildCurveFixture(t, 2000)
	cfg := f.config(t, CurveBERT, CurveXGBoost)
	cfg.Fractions = []float64{0.5, 1}
	r, err := Curve(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	logCurve(t, r)
	for _, p := range r.Points {
		if p.ModelDir != "" || (p.Model == CurveBERT && p.Steps == 0) {
			t.Errorf("point %s@%g: model dir %q, %d steps", p.Model, p.Fraction, p.ModelDir, p.Steps)
		}
		if !(p.AUROCLow <= p.AUROC && p.AUROC <= p.AUROCHigh) || p.HeldOutRows != r.HeldOutRows {
			t.Errorf("point %s@%g: AUROC %v (%v, %v), rows %s", p.Model, p.Fraction, p.AUROC, p.AUROCLow, p.AUROCHigh, p.HeldOutRows)
		}
	}
	if _, err := os.Stat(cfg.Out + FitsSuffix); !os.IsNotExist(err) {
		t.Errorf("fits folder left behind: %v", err)
	}
	if len(r.Comparisons) != 2 {
		t.Fatalf("%d comparisons", len(r.Comparisons))
	}
	for i, c := range r.Comparisons {
		b, _ := r.point(CurveXGBoost, c.Fraction)
		a, _ := r.point(CurveBERT, c.Fraction)
		diff := float64(b.AUROC - a.AUROC)
		if c.A != CurveBERT || c.B != CurveXGBoost || math.Abs(float64(c.Diff)-diff) > 1e-9 || !(c.P >= 0 && c.P <= 1) {
			t.Errorf("comparison %d: %+v against AUROCs %v and %v", i, c, a.AUROC, b.AUROC)
		}
	}
}
