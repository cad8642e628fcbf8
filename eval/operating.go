package eval

import (
	"fmt"
	"maps"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

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
func ModelOutputs(dir string, raw map[string][]Prediction, method string, spec ThresholdSpec) (*Calibration,
	modelrepo.OperatingPoint, error) {
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

// SensitivityPoint is the operating point that reaches a target sensitivity on the evaluated
// rows: the highest probability threshold whose sensitivity is at least Target, as
// ThresholdSensitivity chooses one. Tied probabilities move together, so the sensitivity
// reached may exceed the target. Intervals are percentile bootstrap intervals over subjects
// with the threshold chosen again in every resample: they include the choice's own noise.
type SensitivityPoint struct {
	Target      float64  `json:"target"`
	Threshold   float64  `json:"threshold"`
	Sensitivity Estimate `json:"sensitivity"`
	Specificity Estimate `json:"specificity"`
	PPV         Estimate `json:"ppv"`
	NNE         Estimate `json:"nne"`     // 1/PPV
	Flagged     Estimate `json:"flagged"` // share of rows at or above the threshold
}

// Columns of a sensitivity point's values.
const (
	spThreshold = iota
	spSens
	spSpec
	spPPV
	spFlagged
	nSP
)

// AtSensitivities finds, for each target sensitivity in (0, 1], the operating point that
// reaches it on preds (see SensitivityPoint), with bootstrap intervals over subjects when
// bootstrap > 0 (resample r drawn from the PCG stream (seed, r), as Compute's).
func AtSensitivities(preds []Prediction, targets []float64, bootstrap int, seed uint64) ([]SensitivityPoint, error) {
	if err := validate(preds); err != nil {
		return nil, fmt.Errorf("sensitivity targets: %w", err)
	}
	for _, t := range targets {
		if !(t > 0 && t <= 1) {
			return nil, fmt.Errorf("sensitivity target %v outside (0, 1]", t)
		}
	}
	p := prepare(preds, 0)
	at := make([][nSP]float64, len(targets))
	p.atSensitivities(targets, nil, at)
	if len(targets) > 0 && math.IsNaN(at[0][spSens]) {
		return nil, fmt.Errorf("sensitivity targets on %d predictions: %w", len(preds), ErrOneClass)
	}
	out := make([]SensitivityPoint, len(targets))
	for k, t := range targets {
		v := at[k]
		out[k] = SensitivityPoint{Target: t, Threshold: v[spThreshold], Sensitivity: point(v[spSens]),
			Specificity: point(v[spSpec]), PPV: point(v[spPPV]), Flagged: point(v[spFlagged])}
	}
	if bootstrap > 0 {
		p.sensitivityIntervals(targets, bootstrap, seed, out)
	}
	for k := range out {
		out[k].NNE = NNE(out[k].PPV)
	}
	return out, nil
}

// atSensitivities walks the tie groups from the highest score down under row weights
// mult[subject] (nil: 1) and fills out[k] at the first group where the sensitivity reaches
// targets[k]; every value is NaN when the weights hold no positive.
func (p *prepared) atSensitivities(targets []float64, mult []float64, out [][nSP]float64) {
	weight := func(i int) float64 {
		if mult == nil {
			return 1
		}
		return mult[p.subj[i]]
	}
	var P, N float64
	for i := range p.s {
		if w := weight(i); p.y[i] {
			P += w
		} else {
			N += w
		}
	}
	for k := range out {
		for j := range out[k] {
			out[k][j] = math.NaN()
		}
	}
	if P == 0 {
		return
	}
	done := make([]bool, len(targets))
	left := len(targets)
	var tp, fp float64
	for g := len(p.groupEnd) - 1; g >= 0 && left > 0; g-- {
		start := 0
		if g > 0 {
			start = int(p.groupEnd[g-1])
		}
		for i := start; i < int(p.groupEnd[g]); i++ {
			if w := weight(i); p.y[i] {
				tp += w
			} else {
				fp += w
			}
		}
		for k, t := range targets {
			if done[k] || tp/P < t-1e-12 {
				continue
			}
			done[k], left = true, left-1
			out[k] = [nSP]float64{spThreshold: p.s[start], spSens: tp / P, spSpec: ratio(N-fp, N),
				spPPV: ratio(tp, tp+fp), spFlagged: (tp + fp) / (P + N)}
		}
	}
}

// sensitivityIntervals sets the percentile intervals of out from B resamples of subjects.
func (p *prepared) sensitivityIntervals(targets []float64, B int, seed uint64, out []SensitivityPoint) {
	res := make([][nSP][]float64, len(targets)) // res[target][column][resample]
	for k := range res {
		for j := range res[k] {
			res[k][j] = make([]float64, B)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), B)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mult := make([]float64, p.nSubj)
			v := make([][nSP]float64, len(targets))
			for r := int(next.Add(1) - 1); r < B; r = int(next.Add(1) - 1) {
				resample(seed, r, mult)
				p.atSensitivities(targets, mult, v)
				for k := range v {
					for j := range v[k] {
						res[k][j][r] = v[k][j]
					}
				}
			}
		}()
	}
	wg.Wait()
	for k := range out {
		for j, e := range map[int]*Estimate{spSens: &out[k].Sensitivity, spSpec: &out[k].Specificity,
			spPPV: &out[k].PPV, spFlagged: &out[k].Flagged} {
			e.Lo, e.Hi = percentileInterval(res[k][j], 0.95)
		}
	}
}

// DefaultSensitivityTargets are the sensitivities at which a report reads PPV.
var DefaultSensitivityTargets = []float64{0.5, 0.8, 0.9}

// DefaultPrevalences are the prevalences at which a report shows what the deployed point's
// sensitivity and specificity would give (PPVAtPrevalence).
var DefaultPrevalences = []float64{0.01, 0.02, 0.05, 0.1, 0.2}

// OperatingSummary is the deployed operating point as a clinical team reads it, beside the
// sensitivity, specificity, PPV and NPV of the model's Metrics: the share of rows flagged, the
// number needed to evaluate, PPV at fixed sensitivities, and PPV and NPV at other prevalences.
type OperatingSummary struct {
	Threshold float64  `json:"threshold"` // the calibrated probability of the model's manifest
	Flagged   Num      `json:"flagged"`   // share of rows at or above it
	NNE       Estimate `json:"nne"`       // 1/PPV
	// AtSensitivity are operating points reaching fixed sensitivities on the evaluated
	// (calibrated) probabilities; empty with Note saying why when they cannot be read.
	AtSensitivity []SensitivityPoint `json:"at_sensitivity,omitempty"`
	Note          string             `json:"note,omitempty"`
	AtPrevalence  []PrevalencePoint  `json:"at_prevalence,omitempty"`
}

// PrevalencePoint is what the deployed sensitivity and specificity give at another prevalence.
type PrevalencePoint struct {
	Prevalence float64 `json:"prevalence"`
	PPV        Num     `json:"ppv"`
	NPV        Num     `json:"npv"`
	NNE        Num     `json:"nne"`
}

// operatingSummary summarises m's deployed point from its metrics and its stored (calibrated)
// predictions.
func operatingSummary(m *Metrics, stored []Prediction, threshold float64, cfg ReportConfig) *OperatingSummary {
	s := m.Sample
	c := s.Confusion
	o := &OperatingSummary{Threshold: threshold, Flagged: Num(ratio(c.TP+c.FP, c.TP+c.FP+c.TN+c.FN)),
		NNE: NNE(s.Precision)}
	at, err := AtSensitivities(stored, DefaultSensitivityTargets, cfg.Bootstrap, cfg.Seed)
	if err != nil {
		o.Note = err.Error()
	} else {
		o.AtSensitivity = at
	}
	sens, spec := float64(s.Recall.Value), float64(s.Specificity.Value)
	for _, pi := range DefaultPrevalences {
		ppv, npv := PPVAtPrevalence(sens, spec, pi)
		o.AtPrevalence = append(o.AtPrevalence, PrevalencePoint{Prevalence: pi, PPV: Num(ppv), NPV: Num(npv),
			NNE: NNE(point(ppv)).Value})
	}
	return o
}
