package eval

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
)

func TestParseThresholdRules(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ThresholdSpec
		err  bool
	}{
		{"max-f1", ThresholdSpec{Method: ThresholdMaxF1}, false},
		{"youden", ThresholdSpec{Method: ThresholdYouden}, false},
		{"sens=0.90", ThresholdSpec{Method: ThresholdSensitivity, Target: 0.9}, false},
		{"spec=0.95", ThresholdSpec{Method: ThresholdSpecificity, Target: 0.95}, false},
		{"0.37", ThresholdSpec{Method: ThresholdFixed, Value: 0.37}, false},
		{"spec=0", ThresholdSpec{}, true},
		{"spec=1.2", ThresholdSpec{}, true},
		{"spec=x", ThresholdSpec{}, true},
		{"1.5", ThresholdSpec{}, true},
		{"best", ThresholdSpec{}, true},
	} {
		got, err := ParseThreshold(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("%q: %+v, %v", tc.in, got, err)
		}
		if !tc.err {
			back, err := ParseThreshold(got.String())
			if err != nil || back != got {
				t.Errorf("%q: String %q reads back as %+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
}

// TestChooseSpecificity: spec=X is the lowest threshold whose specificity is at least X, as
// a brute force over every candidate finds it.
func TestChooseSpecificity(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for trial := range 50 {
		preds := synthPreds(rng, 50+rng.IntN(300), 1.2)
		if trial%3 == 0 { // ties
			for i := range preds {
				preds[i].Score = math.Round(preds[i].Score*20) / 20
			}
		}
		target := []float64{0.5, 0.8, 0.9, 0.95, 0.99, 1}[trial%6]
		got, err := ChooseThreshold(preds, ThresholdSpec{Method: ThresholdSpecificity, Target: target})
		if err != nil {
			t.Fatal(err)
		}
		best := math.Inf(1)
		for _, c := range preds {
			_, spec, _, _ := PointRates(preds, c.Score)
			if float64(spec) >= target-1e-12 {
				best = math.Min(best, c.Score)
			}
		}
		if math.IsInf(best, 1) {
			// No score keeps the specificity: nothing may be positive.
			for _, p := range preds {
				if p.Score >= got {
					t.Fatalf("trial %d: threshold %v makes a positive though no threshold keeps specificity %v", trial, got, target)
				}
			}
			continue
		}
		if got != best {
			t.Fatalf("trial %d target %v: %v, brute force %v", trial, target, got, best)
		}
	}
}

// TestRawThreshold: the raw cut decides, row by row, as the calibrated probability at the
// operating point does, for isotonic (flat steps), Platt and identity calibrations.
func TestRawThreshold(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	tun, held := synthPreds(rng, 400, 1.5), synthPreds(rng, 300, 1.5)
	for _, method := range []string{CalibrationIsotonic, CalibrationPlatt, CalibrationIdentity} {
		cal, err := FitCalibration(method, tun)
		if err != nil {
			t.Fatal(err)
		}
		stored := Calibrate(cal, held)
		for _, th := range []float64{0, 0.05, 0.2, 0.31, 0.5, 0.77, 0.999, 1} {
			cut := RawThreshold(held, stored, th)
			for i := range held {
				if (held[i].Score >= cut) != (stored[i].Score >= th) {
					t.Fatalf("%s at %v: row %d raw %v cut %v, calibrated %v", method, th, i, held[i].Score, cut, stored[i].Score)
				}
			}
		}
	}
}

// TestModelOutputs: the folder's predictions are calibrated, keep the raw probability exactly
// and decide at the operating point chosen on the calibrated tuning split.
func TestModelOutputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	raw := map[string][]Prediction{"tuning": synthPreds(rng, 500, 1.4), "held_out": synthPreds(rng, 300, 1.4)}
	for _, spec := range []ThresholdSpec{{}, {Method: ThresholdSpecificity, Target: 0.9}, {Method: ThresholdFixed, Value: 0.3}} {
		dir := t.TempDir()
		cal, op, err := ModelOutputs(dir, raw, CalibrationIsotonic, spec)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ChooseThreshold(Calibrate(cal, raw["tuning"]), map[bool]ThresholdSpec{true: {Method: ThresholdMaxF1}, false: spec}[spec.Method == ""])
		if err != nil || op.Threshold != want {
			t.Fatalf("%+v: threshold %v, want %v (%v)", spec, op.Threshold, want, err)
		}
		if spec.Method == ThresholdSpecificity && op.Tuning.Specificity < 0.9 {
			t.Errorf("spec=0.9 gives tuning specificity %v", op.Tuning.Specificity)
		}
		for split, preds := range raw {
			path := modelrepo.PredictionsFile(dir, split)
			stored, err := ReadPredictions(path)
			if err != nil {
				t.Fatal(err)
			}
			back, err := RawScores(stored)
			if err != nil {
				t.Fatal(err)
			}
			decided := predictedColumn(t, path)
			for i := range preds {
				if back[i].Score != preds[i].Score || stored[i].Score != cal.Apply(preds[i].Score) || decided[i] != (stored[i].Score >= op.Threshold) {
					t.Fatalf("%s row %d: raw %v→%v, calibrated %v, decided %v at %v", split, i, preds[i].Score, back[i].Score, stored[i].Score, decided[i], op.Threshold)
				}
			}
		}
	}
	if _, _, err := ModelOutputs(t.TempDir(), map[string][]Prediction{"held_out": raw["held_out"]}, "", ThresholdSpec{}); err == nil {
		t.Error("no tuning split accepted")
	}
}

// predictedColumn reads predicted_boolean_value of a Parquet predictions file.
func predictedColumn(t *testing.T, path string) []bool {
	t.Helper()
	var out []bool
	err := data.ReadTable(path, func(rec arrow.RecordBatch) error {
		col := rec.Column(rec.Schema().FieldIndices(ColPredicted)[0]).(*array.Boolean)
		for i := range col.Len() {
			out = append(out, col.Value(i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
