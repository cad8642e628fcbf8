package eval

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/medseq/medseq/modelrepo"
)

func synthPreds(rng *rand.Rand, n int, sep float64) []Prediction {
	out := make([]Prediction, n)
	for i := range out {
		y := rng.Float64() < 0.2
		z := rng.NormFloat64()
		if y {
			z += sep
		}
		s := 1 / (1 + math.Exp(-(z - 1.5)))
		out[i] = Prediction{SubjectID: int64(i / 3), PredictionTime: int64(i % 3), Label: y, Score: math.Round(s*1000) / 1000}
	}
	return out
}

func TestComputeThresholdMetrics(t *testing.T) {
	// 4 positives, 6 negatives; threshold 0.5 gives TP 3, FN 1, FP 1, TN 5.
	s := []float64{0.9, 0.8, 0.6, 0.2, 0.7, 0.4, 0.3, 0.2, 0.1, 0.05}
	y := []bool{true, true, true, true, false, false, false, false, false, false}
	var preds []Prediction
	for i := range s {
		preds = append(preds, Prediction{SubjectID: int64(i), Label: y[i], Score: s[i]})
	}
	m, err := Compute(preds, Config{})
	if err != nil {
		t.Fatal(err)
	}
	g := m.Sample
	if g.Confusion != (Confusion{TP: 3, FP: 1, TN: 5, FN: 1}) {
		t.Fatalf("confusion %+v", g.Confusion)
	}
	sens, spec := 0.75, 5.0/6
	for name, c := range map[string][2]float64{
		"recall":      {g.Recall.Value.Float(), sens},
		"specificity": {g.Specificity.Value.Float(), spec},
		"precision":   {g.Precision.Value.Float(), 0.75},
		"npv":         {g.NPV.Value.Float(), 5.0 / 6},
		"f1":          {g.F1.Value.Float(), 0.75},
		"accuracy":    {g.Accuracy.Value.Float(), 0.8},
		"balanced":    {g.BalancedAccuracy.Value.Float(), (sens + spec) / 2},
		"mcc":         {g.MCC.Value.Float(), (3*5 - 1*1) / math.Sqrt(4*4*6*6)},
		"lr+":         {g.LRPlus.Value.Float(), sens / (1 - spec)},
		"lr-":         {g.LRMinus.Value.Float(), (1 - sens) / spec},
		"prevalence":  {g.Prevalence.Value.Float(), 0.4},
	} {
		if math.Abs(c[0]-c[1]) > 1e-12 {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	// one subject per row: both weightings agree
	js, _ := json.Marshal(m.Sample)
	jj, _ := json.Marshal(m.Subject)
	if string(js) != string(jj) {
		t.Errorf("sample and subject weighting differ with one row per subject")
	}
}

func TestUndefinedValuesAreDocumented(t *testing.T) {
	// Threshold above every score: no predicted positives. Specificity 1, sensitivity 0.
	preds := []Prediction{{SubjectID: 1, Label: true, Score: 0.3}, {SubjectID: 2, Label: false, Score: 0.2}}
	m, err := Compute(preds, Config{Threshold: ThresholdSpec{Method: ThresholdFixed, Value: 0.9}})
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(m.Sample.Precision.Value.Float()) || !math.IsNaN(m.Sample.LRPlus.Value.Float()) || !math.IsNaN(m.Sample.MCC.Value.Float()) {
		t.Errorf("precision %v, LR+ %v, MCC %v: want NaN (null)", m.Sample.Precision.Value, m.Sample.LRPlus.Value, m.Sample.MCC.Value)
	}
	// Perfect separation at 0.25: specificity 1 and sensitivity 1 → LR+ = +Inf, LR− = 0.
	m, err = Compute(preds, Config{Threshold: ThresholdSpec{Method: ThresholdFixed, Value: 0.25}})
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(m.Sample.LRPlus.Value.Float(), 1) || m.Sample.LRMinus.Value != 0 {
		t.Errorf("LR+ %v LR- %v", m.Sample.LRPlus.Value, m.Sample.LRMinus.Value)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"lr_plus":{"value":"+Inf","ci_low":null,"ci_high":null}`) {
		t.Errorf("JSON: %s", b)
	}
	var back Metrics
	if err := json.Unmarshal(b, &back); err != nil || !math.IsInf(back.Sample.LRPlus.Value.Float(), 1) {
		t.Errorf("round trip: %v %v", err, back.Sample.LRPlus.Value)
	}
}

func TestComputeEdgeCases(t *testing.T) {
	one := []Prediction{{SubjectID: 1, Label: true, Score: 0.3}, {SubjectID: 2, Label: true, Score: 0.2}}
	if _, err := Compute(one, Config{}); !errors.Is(err, ErrOneClass) {
		t.Errorf("one class: %v", err)
	}
	if _, err := Compute(nil, Config{}); err == nil {
		t.Error("empty: no error")
	}
	for _, bad := range []float64{math.NaN(), -0.1, 1.5, math.Inf(1)} {
		p := []Prediction{{SubjectID: 1, Label: true, Score: 0.3}, {SubjectID: 7, Label: false, Score: bad}}
		_, err := Compute(p, Config{})
		if err == nil || !strings.Contains(err.Error(), "prediction 2 (subject 7)") {
			t.Errorf("score %v: %v", bad, err)
		}
	}
	tied := []Prediction{{SubjectID: 1, Label: true, Score: 0.4}, {SubjectID: 2, Label: false, Score: 0.4}, {SubjectID: 3, Label: false, Score: 0.4}}
	m, err := Compute(tied, Config{Bootstrap: 50})
	if err != nil {
		t.Fatal(err)
	}
	if m.Sample.AUROC.Value != 0.5 || math.Abs(m.Sample.AUPRC.Value.Float()-1.0/3) > 1e-15 || len(m.Warnings) == 0 {
		t.Errorf("all tied: AUROC %v AUPRC %v warnings %v", m.Sample.AUROC.Value, m.Sample.AUPRC.Value, m.Warnings)
	}
	if _, _, _, _, err := DeLong([]bool{true, false}, []float64{1, 2}, []float64{1}); err == nil {
		t.Error("DeLong mismatched lengths: no error")
	}
	if _, err := ParseThreshold("sens=1.2"); err == nil {
		t.Error("sens=1.2 accepted")
	}
	if _, err := ParseThreshold("nan"); err == nil {
		t.Error("nan accepted")
	}
}

func TestThresholdChoice(t *testing.T) {
	// Scores descending with labels: thresholds at each distinct score.
	s := []float64{0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2}
	y := []bool{true, true, false, true, false, false, true, false}
	var p []Prediction
	for i := range s {
		p = append(p, Prediction{SubjectID: int64(i), Label: y[i], Score: s[i]})
	}
	// F1 at 0.6: tp 3, fp 1, fn 1 → 0.75; at 0.3: tp 4 fp 3 → 8/11; at 0.8: 2/3.
	if th, err := ChooseThreshold(p, ThresholdSpec{Method: ThresholdMaxF1}); err != nil || th != 0.6 {
		t.Errorf("max-f1 %v %v", th, err)
	}
	// Youden at 0.6: 0.75 − 0.25 = 0.5; at 0.8: 0.5 − 0 = 0.5 (tie → higher threshold 0.8).
	if th, err := ChooseThreshold(p, ThresholdSpec{Method: ThresholdYouden}); err != nil || th != 0.8 {
		t.Errorf("youden %v %v", th, err)
	}
	if th, err := ChooseThreshold(p, ThresholdSpec{Method: ThresholdSensitivity, Target: 0.9}); err != nil || th != 0.3 {
		t.Errorf("sens=0.9 %v %v", th, err)
	}
	m, err := Compute(p, Config{Threshold: ThresholdSpec{Method: ThresholdMaxF1}, Tuning: p})
	if err != nil || m.Threshold.Value != 0.6 || m.Threshold.ChosenOn != "tuning" || len(m.Warnings) != 0 {
		t.Errorf("%+v %v %v", m.Threshold, m.Warnings, err)
	}
	m, err = Compute(p, Config{Threshold: ThresholdSpec{Method: ThresholdYouden}})
	if err != nil || m.Threshold.ChosenOn != "evaluation" || len(m.Warnings) == 0 {
		t.Errorf("%+v %v %v", m.Threshold, m.Warnings, err)
	}
}

func TestSubjectWeighting(t *testing.T) {
	// Subject 1 has 3 negatives scored high; subject 2 one positive; subject 3 one negative.
	p := []Prediction{
		{SubjectID: 1, PredictionTime: 1, Score: 0.9}, {SubjectID: 1, PredictionTime: 2, Score: 0.9}, {SubjectID: 1, PredictionTime: 3, Score: 0.9},
		{SubjectID: 2, Label: true, Score: 0.5}, {SubjectID: 3, Score: 0.1},
	}
	m, err := Compute(p, Config{})
	if err != nil {
		t.Fatal(err)
	}
	// sample: positive beats 1 of 4 negatives → 0.25; subject: negative weight 1 (subject 1)
	// above and 1 below → 0.5.
	if m.Sample.AUROC.Value != 0.25 || m.Subject.AUROC.Value != 0.5 {
		t.Errorf("AUROC sample %v subject %v", m.Sample.AUROC.Value, m.Subject.AUROC.Value)
	}
	if m.Subject.Confusion.FP != 1 || m.Sample.Confusion.FP != 3 {
		t.Errorf("FP sample %v subject %v", m.Sample.Confusion.FP, m.Subject.Confusion.FP)
	}
}

func TestBootstrapDeterministic(t *testing.T) {
	p := synthPreds(rand.New(rand.NewPCG(3, 4)), 3000, 1.2)
	a, err := Compute(p, Config{Bootstrap: 200, Seed: 9, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compute(p, Config{Bootstrap: 200, Seed: 9, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compute(p, Config{Bootstrap: 200, Seed: 10})
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	jc, _ := json.Marshal(c)
	if string(ja) != string(jb) {
		t.Error("same seed, different worker counts: different results")
	}
	if string(ja) == string(jc) {
		t.Error("different seeds: identical intervals")
	}
	au := a.Sample.AUROC
	if !(au.Lo < au.Value && au.Value < au.Hi) || au.Hi-au.Lo > 0.1 {
		t.Errorf("AUROC interval %v [%v, %v]", au.Value, au.Lo, au.Hi)
	}
	// Bootstrap AUROC from weights equals AUROC of the explicitly resampled rows.
	pp := prepare(p, 0.5)
	mult := make([]float64, pp.nSubj)
	resample(9, 17, mult)
	var v [nMetrics]float64
	pp.compute(pp.base[0], mult, &scratch{}, &v)
	var y []bool
	var s []float64
	for i := range pp.s {
		for k := 0; k < int(mult[pp.subj[i]]); k++ {
			y = append(y, pp.y[i])
			s = append(s, pp.s[i])
		}
	}
	want, _ := AUROC(y, s)
	if math.Abs(v[mAUROC]-want) > 1e-12 {
		t.Errorf("resample AUROC %v, explicit %v", v[mAUROC], want)
	}
}

// delongByHand computes DeLong's statistic from the pairwise kernel directly, O(m·n).
func delongByHand(y []bool, a, b []float64) (diff, se float64) {
	psi := func(x, z float64) float64 {
		switch {
		case x > z:
			return 1
		case x == z:
			return 0.5
		}
		return 0
	}
	var pos, neg []int
	for i := range y {
		if y[i] {
			pos = append(pos, i)
		} else {
			neg = append(neg, i)
		}
	}
	m, n := float64(len(pos)), float64(len(neg))
	comp := func(s []float64) (auc float64, v10, v01 []float64) {
		for _, i := range pos {
			var t float64
			for _, j := range neg {
				t += psi(s[i], s[j])
			}
			v10 = append(v10, t/n)
			auc += t
		}
		for _, j := range neg {
			var t float64
			for _, i := range pos {
				t += psi(s[i], s[j])
			}
			v01 = append(v01, t/m)
		}
		return auc / (m * n), v10, v01
	}
	aa, a10, a01 := comp(a)
	ba, b10, b01 := comp(b)
	cov := func(x, z []float64, mx, mz float64) float64 {
		var c float64
		for i := range x {
			c += (x[i] - mx) * (z[i] - mz)
		}
		return c / float64(len(x)-1)
	}
	s10 := cov(a10, a10, aa, aa) + cov(b10, b10, ba, ba) - 2*cov(a10, b10, aa, ba)
	s01 := cov(a01, a01, aa, aa) + cov(b01, b01, ba, ba) - 2*cov(a01, b01, aa, ba)
	return aa - ba, math.Sqrt(s10/m + s01/n)
}

func TestDeLong(t *testing.T) {
	// A small hand-checkable example: positives (0.9, 0.6, 0.4), negatives (0.5, 0.3, 0.1)
	// for model a: AUROC 8/9; model b ranks two more pairs wrong: 6/9.
	y := []bool{true, true, true, false, false, false}
	a := []float64{0.9, 0.6, 0.4, 0.5, 0.3, 0.1}
	b := []float64{0.9, 0.2, 0.4, 0.5, 0.3, 0.1}
	diff, se, z, p, err := DeLong(y, a, b)
	if err != nil {
		t.Fatal(err)
	}
	// By hand: V10(a) = (1, 1, 2/3), V10(b) = (1, 1/3, 2/3); V01(a) = (2/3, 1, 1),
	// V01(b) = (1/3, 2/3, 1). The differences V10(a)−V10(b) = (0, 2/3, 0) have variance 4/27,
	// V01 differences (1/3, 1/3, 0) variance 1/27: var = (4/27)/3 + (1/27)/3 = 5/81.
	if math.Abs(diff-2.0/9) > 1e-12 || math.Abs(se-math.Sqrt(5.0/81)) > 1e-12 {
		t.Errorf("diff %v se %v; want 2/9 and sqrt(5/81)=%v", diff, se, math.Sqrt(5.0/81))
	}
	wantZ := (2.0 / 9) / math.Sqrt(5.0/81)
	if math.Abs(z-wantZ) > 1e-12 || math.Abs(p-2*(1-distuv.UnitNormal.CDF(wantZ))) > 1e-12 {
		t.Errorf("z %v p %v", z, p)
	}
	// Random data with ties against the O(mn) kernel computation.
	rng := rand.New(rand.NewPCG(5, 6))
	n := 400
	y = make([]bool, n)
	a = make([]float64, n)
	b = make([]float64, n)
	for i := range y {
		y[i] = rng.Float64() < 0.3
		a[i] = float64(rng.IntN(30))
		b[i] = float64(rng.IntN(30))
		if y[i] {
			a[i] += 8
			b[i] += 4
		}
	}
	diff, se, _, _, err = DeLong(y, a, b)
	wd, ws := delongByHand(y, a, b)
	if err != nil || math.Abs(diff-wd) > 1e-12 || math.Abs(se-ws) > 1e-12 {
		t.Errorf("DeLong diff %v se %v; by hand %v %v (%v)", diff, se, wd, ws, err)
	}
	// Identical models: p = 1.
	if _, _, z, p, err := DeLong(y, a, a); err != nil || z != 0 || p != 1 {
		t.Errorf("identical: z %v p %v %v", z, p, err)
	}
	if _, _, _, _, err := DeLong([]bool{true, true}, []float64{1, 2}, []float64{1, 2}); !errors.Is(err, ErrOneClass) {
		t.Errorf("one class: %v", err)
	}
}

func TestCalibrationFile(t *testing.T) {
	p := synthPreds(rand.New(rand.NewPCG(1, 1)), 2000, 1.5)
	dir := t.TempDir()
	for _, method := range []string{CalibrationPlatt, CalibrationIsotonic, CalibrationIdentity} {
		c, err := FitCalibration(method, p)
		if err != nil {
			t.Fatal(err)
		}
		if c.FittedOn.N != 2000 || c.FittedOn.Subjects != 667 {
			t.Errorf("fitted on %+v", c.FittedOn)
		}
		path := filepath.Join(dir, method)
		if err := os.MkdirAll(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := c.Write(path); err != nil {
			t.Fatal(err)
		}
		back, err := modelrepo.ReadCalibration(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []float64{0, 0.01, 0.2, 0.37, 0.5, 0.9, 1} {
			if got, want := back.Apply(s), c.Apply(s); got != want || got < 0 || got > 1 {
				t.Errorf("%s Apply(%v) = %v after load, %v before", method, s, got, want)
			}
		}
	}
	// A calibrated model's Platt fit on logit scores is near identity; calibration slope of
	// the calibrated isotonic output is near 1.
	if _, err := FitCalibration("magic", p); err == nil {
		t.Error("unknown method accepted")
	}
	if _, err := FitCalibration(CalibrationPlatt, p[:1]); !errors.Is(err, ErrOneClass) {
		t.Errorf("one class: %v", err)
	}
	sep := []Prediction{{Label: false, Score: 0.1}, {Label: false, Score: 0.2}, {Label: true, Score: 0.8}, {Label: true, Score: 0.9}}
	if _, err := FitCalibration(CalibrationPlatt, sep); !errors.Is(err, ErrSeparated) {
		t.Errorf("separated: %v", err)
	}
}

func TestIsotonicTies(t *testing.T) {
	// Ties at x=0.5 with labels 1,0,0 merge to one point of mean 1/3 before pooling.
	iso, err := FitIsotonic([]float64{0.2, 0.5, 0.5, 0.5, 0.8}, []bool{true, true, false, false, true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Pooled: (1 + 1/3·3)/4 = 0.5 over x 0.2 and 0.5, then 1 at 0.8.
	for _, c := range [][2]float64{{0, 0.5}, {0.2, 0.5}, {0.5, 0.5}, {0.65, 0.75}, {0.8, 1}, {2, 1}} {
		if got := iso.Apply(c[0]); math.Abs(got-c[1]) > 1e-12 {
			t.Errorf("Apply(%v) = %v, want %v", c[0], got, c[1])
		}
	}
}
