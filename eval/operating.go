package eval

import (
	"fmt"
	"maps"
	"math"
	"strconv"

	"github.com/medseq/medseq/modelrepo"
)

// ColRawProbability is the attribute of a model's predictions that keeps the model's raw
// (uncalibrated) probability beside the calibrated predicted_boolean_probability: a float64
// column of the predictions' extras file (predictions_<split>.extra.parquet), an attribute
// holding the shortest text that reads back to the same float64 in memory.
const ColRawProbability = "raw_probability"

// FormatRaw writes a raw probability for the ColRawProbability attribute (exact round trip).
func FormatRaw(p float64) string { return strconv.FormatFloat(p, 'g', -1, 64) }

// RawScores returns copies of a model's predictions (Score calibrated, raw_probability
// beside it) with Score the raw probability: discrimination and raw calibration are measured
// on the model's own scores.
func RawScores(stored []Prediction) ([]Prediction, error) {
	out := make([]Prediction, len(stored))
	for i, p := range stored {
		v, ok := p.Attrs[ColRawProbability]
		if !ok {
			return nil, fmt.Errorf("prediction %d (subject %d): no %s (no extras file beside the predictions, or one written by an older medseq: train the model again)", i+1, p.SubjectID, ColRawProbability)
		}
		raw, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("prediction %d (subject %d): %s %q: %w", i+1, p.SubjectID, ColRawProbability, v, err)
		}
		if err := CheckScore(raw); err != nil {
			return nil, fmt.Errorf("prediction %d (subject %d): %s: %w", i+1, p.SubjectID, ColRawProbability, err)
		}
		p.Score = raw
		out[i] = p
	}
	return out, nil
}

// RawThreshold is the raw-score cut that gives, on these rows, exactly the decisions of the
// calibrated operating point t: the lowest raw score whose calibrated probability is >= t.
// Calibration never decreases, so raw >= the cut holds exactly where calibrated >= t. raw and
// calibrated are the same rows. When no row reaches t, the cut lies above every raw score.
func RawThreshold(raw, calibrated []Prediction, t float64) float64 {
	cut, top := math.Inf(1), 0.0
	for i, p := range calibrated {
		top = max(top, raw[i].Score)
		if p.Score >= t {
			cut = min(cut, raw[i].Score)
		}
	}
	if math.IsInf(cut, 1) {
		return math.Nextafter(top, math.Inf(1))
	}
	return cut
}

// alternatives are the operating points a report shows beside the deployed one: max-F1,
// Youden's J and the config's own, each chosen on the calibrated tuning predictions (on the
// evaluated ones, flagged, without them) and evaluated on the calibrated evaluated rows.
func alternatives(cfg ReportConfig, evaluated, tuning []Prediction) ([]AltPoint, error) {
	specs := []ThresholdSpec{{Method: ThresholdMaxF1}, {Method: ThresholdYouden}}
	if m := cfg.Threshold.Method; m != "" && m != ThresholdMaxF1 && m != ThresholdYouden {
		specs = append(specs, cfg.Threshold)
	}
	on, chosenOn := tuning, "tuning"
	if len(tuning) == 0 {
		on, chosenOn = evaluated, "evaluation"
	}
	var out []AltPoint
	for _, spec := range specs {
		t, err := ChooseThreshold(on, spec)
		if err != nil {
			return nil, fmt.Errorf("alternative threshold %s: %w", spec, err)
		}
		a := AltPoint{Rule: spec.String(), Threshold: t, ChosenOn: chosenOn}
		if spec.Method == ThresholdFixed {
			a.ChosenOn = ThresholdFixed
		}
		a.Sensitivity, a.Specificity, a.PPV, a.F1 = PointRates(evaluated, t)
		out = append(out, a)
	}
	return out, nil
}

// PointRates are the confusion-matrix rates of preds at threshold t (positive when Score >= t).
func PointRates(preds []Prediction, t float64) (sens, spec, ppv, f1 Num) {
	var tp, fp, tn, fn float64
	for _, p := range preds {
		switch pos := p.Score >= t; {
		case pos && p.Label:
			tp++
		case pos:
			fp++
		case p.Label:
			fn++
		default:
			tn++
		}
	}
	var out [nMetrics]float64
	fillThreshold(tp, fp, tn, fn, &out)
	return Num(out[mRecall]), Num(out[mSpecificity]), Num(out[mPrecision]), Num(out[mF1])
}

// ModelOutputs are what a training run writes into a model version folder besides the model:
// the calibration, fitted on the tuning split's raw predictions (method isotonic, platt or
// identity; "" is isotonic); the operating point, chosen by spec on the calibrated tuning
// predictions (the zero spec is max-f1); and each split's predictions, calibrated, with
// predicted_boolean_value at the operating point (modelrepo.PredictionsFile), and the raw
// probability with the other attributes beside them (modelrepo.PredictionsExtraFile). raw holds
// each split's predictions with raw scores; it must have a tuning split with both classes.
func ModelOutputs(dir string, raw map[string][]Prediction, method string, spec ThresholdSpec) (*Calibration, modelrepo.OperatingPoint, error) {
	var op modelrepo.OperatingPoint
	if method == "" {
		method = CalibrationIsotonic
	}
	tuning := raw["tuning"]
	cal, err := FitCalibration(method, tuning)
	if err != nil {
		return nil, op, fmt.Errorf("calibrate on the tuning split: %w", err)
	}
	if spec.Method == "" {
		spec = ThresholdSpec{Method: ThresholdMaxF1}
	}
	calTuning := Calibrate(cal, tuning)
	t, err := ChooseThreshold(calTuning, spec)
	if err != nil {
		return nil, op, fmt.Errorf("operating point %s on the calibrated tuning split: %w", spec, err)
	}
	if t > 1 {
		return nil, op, fmt.Errorf("operating point %s: no calibrated tuning probability reaches it", spec)
	}
	op = modelrepo.OperatingPoint{Rule: spec.String(), Method: spec.Method, Target: spec.Target, Threshold: t,
		ChosenOn: "tuning", TuningN: len(calTuning)}
	if spec.Method == ThresholdFixed {
		op.ChosenOn = modelrepo.PointFixed
	}
	sens, specificity, ppv, f1 := PointRates(calTuning, t)
	op.Tuning = &modelrepo.PointMetrics{Sensitivity: modelrepo.Rate(sens), Specificity: modelrepo.Rate(specificity),
		PPV: modelrepo.Rate(ppv), F1: modelrepo.Rate(f1)}
	for split, preds := range raw {
		stored := Calibrate(cal, preds)
		for i := range stored {
			stored[i].Attrs = maps.Clone(preds[i].Attrs)
			if stored[i].Attrs == nil {
				stored[i].Attrs = map[string]string{}
			}
			stored[i].Attrs[ColRawProbability] = FormatRaw(preds[i].Score)
		}
		if err := WritePredictions(modelrepo.PredictionsFile(dir, split), stored, t); err != nil {
			return nil, op, err
		}
	}
	if err := cal.Write(dir); err != nil {
		return nil, op, err
	}
	return cal, op, nil
}
