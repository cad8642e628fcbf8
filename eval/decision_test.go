package eval

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// handRows are ten predictions whose net benefit and operating points are worked out by hand
// in the tests below: four positives (at 0.9, 0.7, 0.5, 0.2), prevalence 0.4.
func handRows() []Prediction {
	scores := []float64{0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05}
	labels := []bool{true, false, true, false, true, false, false, true, false, false}
	out := make([]Prediction, len(scores))
	for i := range scores {
		out[i] = Prediction{SubjectID: int64(i), PredictionTime: 1, Score: scores[i], Label: labels[i]}
	}
	return out
}

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if !(math.Abs(got-want) <= tol) && !(math.IsInf(got, 1) && math.IsInf(want, 1)) {
		t.Errorf("%s = %.12g, want %.12g", name, got, want)
	}
}

// TestDecisionCurveByHand checks net benefit against a hand derivation:
//
//	pt = 0.1:  9 rows ≥ 0.1, TP 4, FP 5: 4/10 − 5/10 · (0.1/0.9) = 0.344444…; all 0.4 − 0.6/9
//	pt = 0.25: 7 rows, TP 3, FP 4: 3/10 − 4/10 · (1/3) = 0.166666…; all 0.4 − 0.6/3 = 0.2
//	pt = 0.5:  5 rows (0.5 itself counts), TP 3, FP 2: 0.3 − 0.2 = 0.1; all 0.4 − 0.6 = −0.2
//
// so the model beats both strategies at 0.1 and 0.5 but not at 0.25.
func TestDecisionCurveByHand(t *testing.T) {
	dc, err := DecisionCurveOf(handRows(), []float64{0.1, 0.25, 0.5})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		tp, fp    int
		nb, all   float64
		threshold float64
	}{
		{4, 5, 0.4 - 0.5/9, 0.4 - 0.6/9, 0.1},
		{3, 4, 0.3 - 0.4/3, 0.2, 0.25},
		{3, 2, 0.1, -0.2, 0.5},
	}
	if dc.N != 10 || dc.Positives != 4 || dc.Prevalence != 0.4 || len(dc.Points) != 3 {
		t.Fatalf("curve %+v", dc)
	}
	for i, w := range want {
		p := dc.Points[i]
		if p.TP != w.tp || p.FP != w.fp || p.Threshold != w.threshold {
			t.Errorf("point %d: %+v, want TP %d FP %d", i, p, w.tp, w.fp)
		}
		near(t, "net benefit", float64(p.NetBenefit), w.nb, 1e-15)
		near(t, "treat all", float64(p.TreatAll), w.all, 1e-15)
	}
	if len(dc.Useful) != 2 || dc.Useful[0] != (ThresholdRange{0.1, 0.1}) || dc.Useful[1] != (ThresholdRange{0.5, 0.5}) {
		t.Errorf("useful ranges %+v", dc.Useful)
	}
	for _, bad := range []float64{0, 1, -0.1, math.NaN()} {
		if _, err := DecisionCurveOf(handRows(), []float64{bad}); !errors.Is(err, ErrThreshold) {
			t.Errorf("threshold %v: %v", bad, err)
		}
	}
	if _, err := DecisionCurveOf(nil, []float64{0.5}); err == nil {
		t.Error("no rows: no error")
	}
}

func TestDecisionThresholds(t *testing.T) {
	for _, c := range []struct{ prevalence, hi float64 }{
		{0.2, 0.5}, {0.05, 0.5}, {0.4, 0.5}, {0.01, 0.1}, {0.001, 0.1}, {0.03, 0.3}, {0.049, 0.5},
		{0.41, 0.55}, {0.6, 0.7}, {0.9, 0.95}, {math.NaN(), 0.5},
	} {
		ts := DecisionThresholds(c.prevalence)
		if len(ts) != 100 || math.Abs(ts[99]-c.hi) > 1e-12 || math.Abs(ts[0]-c.hi/100) > 1e-12 {
			t.Errorf("prevalence %v: %d thresholds %v … %v, want up to %v", c.prevalence, len(ts), ts[0], ts[len(ts)-1], c.hi)
		}
		for i := 1; i < len(ts); i++ {
			if !(ts[i] > ts[i-1] && ts[i] < 1) {
				t.Fatalf("prevalence %v: thresholds not increasing in (0, 1) at %d", c.prevalence, i)
			}
		}
	}
}

func TestNNEAndPrevalence(t *testing.T) {
	e := NNE(Estimate{Value: 0.25, Lo: 0.2, Hi: 0.5})
	if e.Value != 4 || e.Lo != 2 || e.Hi != 5 {
		t.Errorf("NNE of 0.25 (0.2–0.5) = %+v, want 4 (2–5)", e)
	}
	e = NNE(Estimate{Value: 0, Lo: 0, Hi: 0.1})
	if !math.IsInf(float64(e.Value), 1) || !math.IsInf(float64(e.Hi), 1) || e.Lo != 10 {
		t.Errorf("NNE of PPV 0 = %+v, want ∞ (10–∞)", e)
	}
	if e := NNE(point(math.NaN())); !math.IsNaN(float64(e.Value)) || !math.IsNaN(float64(e.Lo)) {
		t.Errorf("NNE of an undefined PPV = %+v", e)
	}
	// sens 0.8, spec 0.9 at 10%: PPV .08/(.08+.09), NPV .81/(.81+.02).
	ppv, npv := PPVAtPrevalence(0.8, 0.9, 0.1)
	near(t, "PPV at 10%", ppv, 0.08/0.17, 1e-15)
	near(t, "NPV at 10%", npv, 0.81/0.83, 1e-15)
	// At the rows' own prevalence Bayes' rule gives back the rows' PPV and NPV.
	rows := handRows()
	sens, spec, ppvRows, _ := PointRates(rows, 0.5)
	ppv, _ = PPVAtPrevalence(float64(sens), float64(spec), 0.4)
	near(t, "PPV at the rows' prevalence", ppv, float64(ppvRows), 1e-15)
	if ppv, _ := PPVAtPrevalence(0, 1, 0.1); !math.IsNaN(ppv) {
		t.Errorf("PPV with nothing flagged = %v, want NaN", ppv)
	}
}

// TestAtSensitivitiesByHand: walking handRows from the top, sensitivity reaches 0.5 at 0.7
// (TP 2, FP 1), 0.75 at 0.5 (TP 3, FP 2) and 1 at 0.2 (TP 4, FP 4).
func TestAtSensitivitiesByHand(t *testing.T) {
	rows := handRows()
	got, err := AtSensitivities(rows, []float64{0.5, 0.75, 1}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ thr, sens, spec, ppv, flagged float64 }{
		{0.7, 0.5, 5.0 / 6, 2.0 / 3, 0.3},
		{0.5, 0.75, 4.0 / 6, 3.0 / 5, 0.5},
		{0.2, 1, 2.0 / 6, 0.5, 0.8},
	}
	for i, w := range want {
		g := got[i]
		if g.Threshold != w.thr {
			t.Errorf("target %v: threshold %v, want %v", g.Target, g.Threshold, w.thr)
		}
		near(t, "sensitivity", float64(g.Sensitivity.Value), w.sens, 1e-15)
		near(t, "specificity", float64(g.Specificity.Value), w.spec, 1e-15)
		near(t, "PPV", float64(g.PPV.Value), w.ppv, 1e-15)
		near(t, "NNE", float64(g.NNE.Value), 1/w.ppv, 1e-12)
		near(t, "flagged", float64(g.Flagged.Value), w.flagged, 1e-15)
		if !math.IsNaN(float64(g.PPV.Lo)) {
			t.Errorf("an interval without bootstrap: %+v", g.PPV)
		}
		// The same threshold as training's sens= rule, and the same rates as PointRates.
		ct, err := ChooseThreshold(rows, ThresholdSpec{Method: ThresholdSensitivity, Target: g.Target})
		if err != nil || ct != g.Threshold {
			t.Errorf("target %v: ChooseThreshold gives %v (%v)", g.Target, ct, err)
		}
	}
	// Ties overshoot: three rows tied at 0.6 hold two of the four positives.
	tied := handRows()
	tied[1].Score, tied[2].Score, tied[3].Score = 0.6, 0.6, 0.6
	got, err = AtSensitivities(tied, []float64{0.3}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	// 0.9 alone reaches 0.25 < 0.3; the tie group at 0.6 takes it to 0.5 at once.
	if g := got[0]; g.Threshold != 0.6 || g.Sensitivity.Value != 0.5 || g.PPV.Value != 0.5 {
		t.Errorf("tied: %+v, want threshold 0.6 at sensitivity 0.5, PPV 0.5", g)
	}
	for _, bad := range []float64{0, 1.1, math.NaN()} {
		if _, err := AtSensitivities(rows, []float64{bad}, 0, 1); err == nil {
			t.Errorf("target %v: no error", bad)
		}
	}
	neg := handRows()
	for i := range neg {
		neg[i].Label = false
	}
	if _, err := AtSensitivities(neg, []float64{0.5}, 0, 1); !errors.Is(err, ErrOneClass) {
		t.Errorf("no positives: %v", err)
	}
}

// The intervals depend on the seed only, not on the number of workers, and hold the point.
func TestAtSensitivitiesBootstrap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := randomCase(rng, 600, 3)
	targets := []float64{0.5, 0.8, 0.9}
	run := func(procs int) []SensitivityPoint {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		got, err := AtSensitivities(c.preds, targets, 300, 9)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	one, many := run(1), run(4)
	for k := range one {
		a, b := one[k], many[k]
		if a.PPV != b.PPV || a.Specificity != b.Specificity || a.Sensitivity != b.Sensitivity || a.NNE != b.NNE {
			t.Errorf("target %v: 1 worker %+v, 4 workers %+v", a.Target, a.PPV, b.PPV)
		}
		for name, e := range map[string]Estimate{"PPV": a.PPV, "specificity": a.Specificity, "sensitivity": a.Sensitivity} {
			if !(e.Lo <= e.Value && e.Value <= e.Hi && e.Lo < e.Hi) {
				t.Errorf("target %v: %s %+v: the interval does not hold the point", a.Target, name, e)
			}
		}
		if a.NNE.Lo != 1/a.PPV.Hi || a.NNE.Hi != 1/a.PPV.Lo {
			t.Errorf("target %v: NNE %+v from PPV %+v", a.Target, a.NNE, a.PPV)
		}
	}
	if other, _ := AtSensitivities(c.preds, targets, 300, 10); other[1].PPV == one[1].PPV {
		t.Error("another seed gives the same interval")
	}
}

// TestDecisionAgainstSklearn compares net benefit, treat-all and the operating points at
// target sensitivities with scikit-learn's confusion_matrix, precision_recall_curve and
// roc_curve on random predictions with ties and scores of exactly 0 and 1.
func TestDecisionAgainstSklearn(t *testing.T) {
	python := needSklearn(t)
	type skDecisionCase struct {
		Y []int     `json:"y"`
		P []float64 `json:"p"`
		T []float64 `json:"t"`
		S []float64 `json:"s"`
	}
	rng := rand.New(rand.NewPCG(17, 5))
	var cases []skDecisionCase
	var preds [][]Prediction
	for _, nd := range []struct{ n, digits int }{{40, 1}, {300, 2}, {2000, 3}, {700, 6}} {
		c := randomCase(rng, nd.n, nd.digits)
		ts := DecisionThresholds(0.3)
		for _, p := range c.P[:20] { // thresholds equal to scores: the ≥ convention matters
			if p > 0 && p < 1 {
				ts = append(ts, p)
			}
		}
		cases = append(cases, skDecisionCase{Y: c.Y, P: c.P, T: ts, S: []float64{0.5, 0.8, 0.9, 1, 0.123}})
		preds = append(preds, c.preds)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	b, _ := json.Marshal(cases)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command(python, filepath.Join("testdata", "sklearn_decision.py"), in, out).CombinedOutput(); err != nil {
		t.Fatalf("sklearn_decision.py: %v\n%s", err, msg)
	}
	var res struct {
		Sklearn string `json:"sklearn"`
		Results []struct {
			NetBenefit []float64 `json:"net_benefit"`
			TP         []int     `json:"tp"`
			FP         []int     `json:"fp"`
			TreatAll   []float64 `json:"treat_all"`
			AtSens     []struct {
				Threshold, Sensitivity, PPV, Specificity float64
			} `json:"at_sensitivity"`
		} `json:"results"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("scikit-learn %s", res.Sklearn)
	for ci, c := range cases {
		r := res.Results[ci]
		dc, err := DecisionCurveOf(preds[ci], c.T)
		if err != nil {
			t.Fatal(err)
		}
		for k, p := range dc.Points {
			if p.TP != r.TP[k] || p.FP != r.FP[k] {
				t.Errorf("case %d threshold %v: TP/FP %d/%d, scikit-learn %d/%d", ci, p.Threshold, p.TP, p.FP, r.TP[k], r.FP[k])
			}
			near(t, "net benefit", float64(p.NetBenefit), r.NetBenefit[k], 1e-12)
			near(t, "treat all", float64(p.TreatAll), r.TreatAll[k], 1e-12)
		}
		at, err := AtSensitivities(preds[ci], c.S, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		for k, a := range at {
			w := r.AtSens[k]
			near(t, "threshold at sensitivity", a.Threshold, w.Threshold, 0)
			near(t, "sensitivity reached", float64(a.Sensitivity.Value), w.Sensitivity, 1e-12)
			near(t, "PPV at sensitivity", float64(a.PPV.Value), w.PPV, 1e-12)
			near(t, "specificity at sensitivity", float64(a.Specificity.Value), w.Specificity, 1e-12)
		}
	}
}
