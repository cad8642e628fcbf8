package eval

import (
	"encoding/json"
	"github.com/medseq/medseq/internal/testpy"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// needSklearn skips when scikit-learn is absent (fails when CI is set) and returns the
// interpreter that has it.
func needSklearn(t *testing.T) string {
	t.Helper()
	return testpy.Require(t, "python3-sklearn", "sklearn")
}

type skCase struct {
	Y []int     `json:"y"`
	P []float64 `json:"p"`
	W []float64 `json:"w"`
	Q []float64 `json:"q"`

	preds []Prediction
}

type skResult struct {
	AUROC, AUROCW     float64
	AP, APW           float64
	Brier, BrierW     float64
	LogLoss, LogLossW float64
	IsoPred, IsoPredW []float64
	IsoPredB          []float64 // bounded to IsotonicBounds(n)
	PlattA, PlattB    float64
	PlattAW, PlattBW  float64
	Slope, Intercept  float64
	CalUniform        [2][]float64
	CalQuantile       [2][]float64
}

func (r *skResult) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, dst := range map[string]any{
		"auroc": &r.AUROC, "auroc_w": &r.AUROCW, "ap": &r.AP, "ap_w": &r.APW, "brier": &r.Brier,
		"brier_w": &r.BrierW, "logloss": &r.LogLoss, "logloss_w": &r.LogLossW, "iso_pred": &r.IsoPred,
		"iso_pred_w": &r.IsoPredW, "iso_pred_b": &r.IsoPredB, "platt_a": &r.PlattA, "platt_b": &r.PlattB, "platt_a_w": &r.PlattAW,
		"platt_b_w": &r.PlattBW, "slope": &r.Slope, "intercept": &r.Intercept,
		"cal_uniform": &r.CalUniform, "cal_quantile": &r.CalQuantile,
	} {
		if err := json.Unmarshal(m[k], dst); err != nil {
			return err
		}
	}
	return nil
}

// randomCase draws n predictions for about n/3 subjects with scores rounded to digits
// decimals (ties), some exactly 0 or 1, and labels loosely following the scores.
func randomCase(rng *rand.Rand, n, digits int) skCase {
	var c skCase
	scale := math.Pow(10, float64(digits))
	nsubj := max(1, n/3)
	for i := 0; i < n; i++ {
		s := rng.Float64()
		switch rng.IntN(40) {
		case 0:
			s = 0
		case 1:
			s = 1
		default:
			s = math.Round(s*scale) / scale
		}
		y := rng.Float64() < 0.15+0.6*s
		yi := 0
		if y {
			yi = 1
		}
		c.Y = append(c.Y, yi)
		c.P = append(c.P, s)
		c.preds = append(c.preds, Prediction{SubjectID: int64(rng.IntN(nsubj)), PredictionTime: int64(i), Label: y, Score: s})
	}
	// ensure both classes
	c.Y[0], c.preds[0].Label = 1, true
	c.Y[1], c.preds[1].Label = 0, false
	// the subject weights in the input order
	w := make([]float64, n)
	cnt := map[int64]float64{}
	for _, pr := range c.preds {
		cnt[pr.SubjectID]++
	}
	for i, pr := range c.preds {
		w[i] = 1 / cnt[pr.SubjectID]
	}
	c.W = w
	c.Q = []float64{-0.5, 0, 0.005, 0.1, 0.25, 0.333, 0.5, 0.61, 0.77, 0.9, 0.999, 1, 1.5}
	for i := 0; i < 20; i++ {
		c.Q = append(c.Q, c.P[rng.IntN(n)], rng.Float64())
	}
	return c
}

func TestAgainstSklearn(t *testing.T) {
	sklearnPython := needSklearn(t)
	rng := rand.New(rand.NewPCG(7, 11))
	var cases []skCase
	for _, nd := range []struct{ n, digits int }{{30, 1}, {200, 2}, {1000, 2}, {3000, 3}, {500, 6}} {
		cases = append(cases, randomCase(rng, nd.n, nd.digits))
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
	b, _ := json.Marshal(cases)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sklearnPython, filepath.Join("testdata", "sklearn_check.py"), in, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sklearn_check.py: %v\n%s", err, msg)
	}
	var res struct {
		Sklearn string     `json:"sklearn"`
		Results []skResult `json:"results"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("scikit-learn %s", res.Sklearn)
	near := func(name string, got, want, tol float64) {
		t.Helper()
		if !(math.Abs(got-want) <= tol) {
			t.Errorf("%s = %.15g, scikit-learn %.15g (diff %.3g > %g)", name, got, want, math.Abs(got-want), tol)
		}
	}
	for ci, c := range cases {
		r := res.Results[ci]
		p := prepare(c.preds, 0.5)
		var v, vw [nMetrics]float64
		sc := &scratch{}
		p.compute(p.base[0], nil, sc, &v)
		p.compute(p.base[1], nil, sc, &vw)
		near("auroc", v[mAUROC], r.AUROC, 1e-9)
		near("auroc subject-weighted", vw[mAUROC], r.AUROCW, 1e-9)
		near("average precision", v[mAUPRC], r.AP, 1e-9)
		near("average precision subject-weighted", vw[mAUPRC], r.APW, 1e-9)
		near("brier", v[mBrier], r.Brier, 1e-9)
		near("brier subject-weighted", vw[mBrier], r.BrierW, 1e-9)
		near("log loss", v[mLogLoss], r.LogLoss, 1e-9)
		near("log loss subject-weighted", vw[mLogLoss], r.LogLossW, 1e-9)
		// with bootstrap multiplicities as weights too (all ones here)
		ones := make([]float64, p.nSubj)
		for i := range ones {
			ones[i] = 1
		}
		var vm [nMetrics]float64
		p.compute(p.base[0], ones, sc, &vm)
		near("auroc via multiplicities", vm[mAUROC], r.AUROC, 1e-9)

		y := make([]bool, len(c.Y))
		for i := range y {
			y[i] = c.Y[i] == 1
		}
		iso, err := FitIsotonic(c.P, y, nil)
		if err != nil {
			t.Fatal(err)
		}
		isoW, err := FitIsotonic(c.P, y, c.W)
		if err != nil {
			t.Fatal(err)
		}
		for k, q := range c.Q {
			near("isotonic", iso.Apply(q), r.IsoPred[k], 1e-6)
			near("isotonic weighted", isoW.Apply(q), r.IsoPredW[k], 1e-6)
		}
		// FitCalibration's bounded fit against IsotonicRegression(y_min, y_max).
		preds := make([]Prediction, len(c.P))
		for i := range preds {
			preds[i] = Prediction{SubjectID: int64(i), Score: c.P[i], Label: y[i]}
		}
		cal, err := FitCalibration(CalibrationIsotonic, preds)
		if err != nil {
			t.Fatal(err)
		}
		for k, q := range c.Q {
			near("isotonic bounded", cal.Apply(q), r.IsoPredB[k], 1e-6)
		}
		pl, err := FitPlatt(c.P, y, nil)
		if err != nil {
			t.Fatal(err)
		}
		plW, err := FitPlatt(c.P, y, c.W)
		if err != nil {
			t.Fatal(err)
		}
		near("platt a", pl.A, r.PlattA, 1e-6)
		near("platt b", pl.B, r.PlattB, 1e-6)
		near("platt a weighted", plW.A, r.PlattAW, 1e-6)
		near("platt b weighted", plW.B, r.PlattBW, 1e-6)
		slope, icpt, err := CalibrationSlope(y, c.P)
		if err != nil {
			t.Fatal(err)
		}
		near("calibration slope", slope, r.Slope, 1e-6)
		near("calibration intercept", icpt, r.Intercept, 1e-6)
		for _, st := range []struct {
			name string
			want [2][]float64
		}{{BinsUniform, r.CalUniform}, {BinsQuantile, r.CalQuantile}} {
			bins, err := Reliability(y, c.P, 10, st.name)
			if err != nil {
				t.Fatal(err)
			}
			if len(bins) != len(st.want[0]) {
				t.Errorf("%s reliability: %d bins, scikit-learn %d", st.name, len(bins), len(st.want[0]))
				continue
			}
			for k, b := range bins {
				near(st.name+" observed rate", b.ObservedRate, st.want[0][k], 1e-9)
				near(st.name+" mean predicted", b.MeanPredicted, st.want[1][k], 1e-9)
			}
		}
	}
}
