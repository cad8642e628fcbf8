package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// LogLossEps is the clipping of probabilities in the log loss, as scikit-learn's
// log_loss(eps="auto") does for float64 input: p is clipped to [eps, 1-eps] with eps the
// float64 machine epsilon (2.22e-16), so a confident wrong prediction costs at most
// -log(eps) ≈ 36.04 instead of +Inf.
const LogLossEps = 2.220446049250313e-16

// Metric indexes into a flat vector of values, shared by point estimates and resamples.
const (
	mAUROC = iota
	mAUPRC
	mLogLoss
	mBrier
	mPrevalence
	mPrecision
	mRecall
	mSpecificity
	mNPV
	mF1
	mAccuracy
	mBalancedAccuracy
	mMCC
	mLRPlus
	mLRMinus
	mTP
	mFP
	mTN
	mFN
	mPositives
	mNegatives
	nMetrics
)

// Confusion is the confusion matrix at the threshold: a prediction is positive when its
// score is >= the threshold. Sample-weighted entries are counts; subject-weighted entries are
// sums of 1/n_subject weights (so they add up to the number of subjects).
type Confusion struct {
	TP float64 `json:"tp"`
	FP float64 `json:"fp"`
	TN float64 `json:"tn"`
	FN float64 `json:"fn"`
}

// MetricSet is every metric under one weighting of the rows.
//
// Undefined values are never silent NaNs: a ratio whose denominator is 0 is null in JSON (NaN
// in Go) — precision with no predicted positives, NPV with no predicted negatives, F1 and MCC
// when their denominators vanish — except the likelihood ratios, which are +Inf ("+Inf" in
// JSON) when the denominator is 0 and the numerator is not (LR+ with specificity 1 and
// sensitivity > 0; LR− with specificity 0 and sensitivity < 1), and null when both are 0.
type MetricSet struct {
	AUROC            Estimate  `json:"auroc"`
	AUPRC            Estimate  `json:"auprc"` // average precision, scikit-learn's step definition
	LogLoss          Estimate  `json:"log_loss"`
	Brier            Estimate  `json:"brier"`
	Prevalence       Estimate  `json:"prevalence"`
	Precision        Estimate  `json:"precision"` // positive predictive value
	Recall           Estimate  `json:"recall"`    // sensitivity, true positive rate
	Specificity      Estimate  `json:"specificity"`
	NPV              Estimate  `json:"npv"`
	F1               Estimate  `json:"f1"`
	Accuracy         Estimate  `json:"accuracy"`
	BalancedAccuracy Estimate  `json:"balanced_accuracy"`
	MCC              Estimate  `json:"mcc"`
	LRPlus           Estimate  `json:"lr_plus"`  // sensitivity / (1 − specificity)
	LRMinus          Estimate  `json:"lr_minus"` // (1 − sensitivity) / specificity
	Confusion        Confusion `json:"confusion"`
}

func (m *MetricSet) fields() []*Estimate {
	return []*Estimate{
		mAUROC: &m.AUROC, mAUPRC: &m.AUPRC, mLogLoss: &m.LogLoss, mBrier: &m.Brier,
		mPrevalence: &m.Prevalence, mPrecision: &m.Precision, mRecall: &m.Recall,
		mSpecificity: &m.Specificity, mNPV: &m.NPV, mF1: &m.F1, mAccuracy: &m.Accuracy,
		mBalancedAccuracy: &m.BalancedAccuracy, mMCC: &m.MCC, mLRPlus: &m.LRPlus, mLRMinus: &m.LRMinus,
	}
}

func (m *MetricSet) setPoint(v *[nMetrics]float64) {
	for i, f := range m.fields() {
		*f = point(v[i])
	}
	m.Confusion = Confusion{TP: v[mTP], FP: v[mFP], TN: v[mTN], FN: v[mFN]}
}

// Weighting names the two row weightings.
const (
	SampleWeighted  = "sample"  // every prediction counts 1
	SubjectWeighted = "subject" // each of a subject's n predictions counts 1/n (MEDS-evaluation)
)

// prepared holds predictions sorted once by score, with tie groups and per-row terms, so that
// every metric under any row weights (including bootstrap multiplicities) is one O(n) pass.
type prepared struct {
	s        []float64 // ascending
	y        []bool
	subj     []int32 // subject index of each sorted row
	groupEnd []int32 // exclusive ends of tie groups in s
	base     [2][]float64
	ll, br   []float64 // per-row log loss and squared error
	pos      []bool    // s >= threshold
	nSubj    int
	subjects []int64
}

func prepare(preds []Prediction, thr float64) *prepared {
	n := len(preds)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return preds[order[a]].Score < preds[order[b]].Score })
	p := &prepared{
		s: make([]float64, n), y: make([]bool, n), subj: make([]int32, n),
		ll: make([]float64, n), br: make([]float64, n), pos: make([]bool, n),
	}
	p.base[0] = make([]float64, n)
	p.base[1] = make([]float64, n)
	ids := map[int64]int32{}
	var perSubj []float64
	for k, i := range order {
		pr := preds[i]
		p.s[k], p.y[k] = pr.Score, pr.Label
		si, ok := ids[pr.SubjectID]
		if !ok {
			si = int32(len(p.subjects))
			ids[pr.SubjectID] = si
			p.subjects = append(p.subjects, pr.SubjectID)
			perSubj = append(perSubj, 0)
		}
		perSubj[si]++
		p.subj[k] = si
		p.ll[k] = logLossTerm(pr.Label, pr.Score)
		y := 0.0
		if pr.Label {
			y = 1
		}
		p.br[k] = (pr.Score - y) * (pr.Score - y)
		p.pos[k] = pr.Score >= thr
		if k > 0 && p.s[k] != p.s[k-1] {
			p.groupEnd = append(p.groupEnd, int32(k))
		}
	}
	if n > 0 {
		p.groupEnd = append(p.groupEnd, int32(n))
	}
	p.nSubj = len(p.subjects)
	for k := range p.base[0] {
		p.base[0][k] = 1
		p.base[1][k] = 1 / perSubj[p.subj[k]]
	}
	return p
}

// logLossTerm is one row's log loss, clipped and renormalised exactly as scikit-learn's
// log_loss does for a binary probability.
func logLossTerm(y bool, p float64) float64 {
	p = min(max(p, LogLossEps), 1-LogLossEps)
	q0, q1 := 1-p, p
	sum := q0 + q1
	if y {
		return -math.Log(q1 / sum)
	}
	return -math.Log(q0 / sum)
}

// scratch is per-worker memory for compute.
type scratch struct{ gp, gn []float64 }

// compute fills out with every metric under row weights mult[subj]·base (mult nil = 1).
func (p *prepared) compute(base []float64, mult []float64, sc *scratch, out *[nMetrics]float64) {
	ng := len(p.groupEnd)
	if cap(sc.gp) < ng {
		sc.gp, sc.gn = make([]float64, ng), make([]float64, ng)
	}
	gp, gn := sc.gp[:ng], sc.gn[:ng]
	var P, N, num, below, ll, br, tp, fp float64
	start := int32(0)
	for g, end := range p.groupEnd {
		var pg, nn float64
		for i := start; i < end; i++ {
			w := base[i]
			if mult != nil {
				w *= mult[p.subj[i]]
				if w == 0 {
					continue
				}
			}
			if p.y[i] {
				pg += w
				if p.pos[i] {
					tp += w
				}
			} else {
				nn += w
				if p.pos[i] {
					fp += w
				}
			}
			ll += w * p.ll[i]
			br += w * p.br[i]
		}
		num += pg * (below + 0.5*nn)
		below += nn
		P += pg
		N += nn
		gp[g], gn[g] = pg, nn
		start = end
	}
	var ap, ctp, cfp float64
	for g := ng - 1; g >= 0; g-- {
		ctp += gp[g]
		cfp += gn[g]
		if gp[g] > 0 {
			ap += gp[g] * ctp / (ctp + cfp)
		}
	}
	nan := math.NaN()
	tot := P + N
	out[mPositives], out[mNegatives] = P, N
	out[mAUROC], out[mAUPRC] = nan, nan
	if P > 0 && N > 0 {
		out[mAUROC] = num / (P * N)
	}
	if P > 0 {
		out[mAUPRC] = ap / P
	}
	out[mLogLoss], out[mBrier], out[mPrevalence] = ratio(ll, tot), ratio(br, tot), ratio(P, tot)
	fillThreshold(tp, fp, N-fp, P-tp, out)
}

// fillThreshold computes the confusion-matrix metrics.
func fillThreshold(tp, fp, tn, fn float64, out *[nMetrics]float64) {
	// Guard against -0 and rounding below zero in N-fp, P-tp.
	tn, fn = max(tn, 0), max(fn, 0)
	out[mTP], out[mFP], out[mTN], out[mFN] = tp, fp, tn, fn
	P, N := tp+fn, tn+fp
	sens, spec := ratio(tp, P), ratio(tn, N)
	out[mRecall], out[mSpecificity] = sens, spec
	out[mPrecision], out[mNPV] = ratio(tp, tp+fp), ratio(tn, tn+fn)
	out[mF1] = ratio(2*tp, 2*tp+fp+fn)
	out[mAccuracy] = ratio(tp+tn, P+N)
	out[mBalancedAccuracy] = (sens + spec) / 2
	out[mMCC] = ratio(tp*tn-fp*fn, math.Sqrt((tp+fp)*(tp+fn)*(tn+fp)*(tn+fn)))
	out[mLRPlus] = lr(sens, 1-spec)
	out[mLRMinus] = lr(1-sens, spec)
}

// ratio is a/b, NaN when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// lr is a likelihood ratio: +Inf when only the denominator is 0, NaN when both are (or either is NaN).
func lr(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	if b <= 0 {
		if a > 0 {
			return math.Inf(1)
		}
		return math.NaN()
	}
	return a / b
}

// ThresholdSpec says how the decision threshold is chosen.
type ThresholdSpec struct {
	// Method is "fixed" (Value), "max-f1" (maximise F1), "youden" (maximise sensitivity +
	// specificity − 1), "sensitivity" (the highest threshold reaching Target sensitivity) or
	// "specificity" (the lowest threshold keeping Target specificity).
	Method string  `json:"method"`
	Value  float64 `json:"value,omitempty"`
	Target float64 `json:"target,omitempty"`
}

// String is the spec as ParseThreshold reads it: "0.37", "max-f1", "youden", "sens=0.9",
// "spec=0.95".
func (t ThresholdSpec) String() string {
	switch t.Method {
	case ThresholdFixed, "":
		return strconv.FormatFloat(t.Value, 'g', -1, 64)
	case ThresholdSensitivity:
		return "sens=" + strconv.FormatFloat(t.Target, 'g', -1, 64)
	case ThresholdSpecificity:
		return "spec=" + strconv.FormatFloat(t.Target, 'g', -1, 64)
	}
	return t.Method
}

// Threshold methods.
const (
	ThresholdFixed       = "fixed"
	ThresholdMaxF1       = "max-f1"
	ThresholdYouden      = "youden"
	ThresholdSensitivity = "sensitivity"
	ThresholdSpecificity = "specificity"
	// ThresholdDeployed is a model's own operating point (its manifest's), as a report uses it.
	ThresholdDeployed = "deployed"
)

// ParseThreshold reads "0.5" (fixed), "max-f1", "youden", "sens=0.9" or "spec=0.95".
func ParseThreshold(s string) (ThresholdSpec, error) {
	switch s {
	case "max-f1", "maxf1", "f1":
		return ThresholdSpec{Method: ThresholdMaxF1}, nil
	case "youden":
		return ThresholdSpec{Method: ThresholdYouden}, nil
	}
	if rest, ok := cutPrefix(s, "sens="); ok {
		t, err := strconv.ParseFloat(rest, 64)
		if err != nil || !(t > 0 && t <= 1) {
			return ThresholdSpec{}, fmt.Errorf("threshold %q: target sensitivity must be in (0, 1]", s)
		}
		return ThresholdSpec{Method: ThresholdSensitivity, Target: t}, nil
	}
	if rest, ok := cutPrefix(s, "spec="); ok {
		t, err := strconv.ParseFloat(rest, 64)
		if err != nil || !(t > 0 && t <= 1) {
			return ThresholdSpec{}, fmt.Errorf("threshold %q: target specificity must be in (0, 1]", s)
		}
		return ThresholdSpec{Method: ThresholdSpecificity, Target: t}, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return ThresholdSpec{}, fmt.Errorf("threshold %q: want a probability in [0, 1], max-f1, youden, sens=X or spec=X", s)
	}
	return ThresholdSpec{Method: ThresholdFixed, Value: v}, nil
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

// ChosenThreshold is the threshold a result used and where it came from.
type ChosenThreshold struct {
	Method string  `json:"method"`
	Value  float64 `json:"value"`
	Target float64 `json:"target,omitempty"`
	// ChosenOn is "fixed", "tuning" (chosen on the tuning predictions: honest) or
	// "evaluation" (chosen on the very predictions evaluated: optimistic, flagged in Warnings).
	ChosenOn string `json:"chosen_on"`
	TuningN  int    `json:"tuning_n,omitempty"`
	// For the deployed point (Method "deployed"): Value is the calibrated probability of the
	// model's manifest, Rule how it was chosen, and Raw the raw score at and above which the
	// calibrated probability reaches Value on the evaluated rows (the cut the metrics use).
	Rule string  `json:"rule,omitempty"`
	Raw  float64 `json:"raw_threshold,omitempty"`
}

// ChooseThreshold picks a threshold on preds (sample-weighted): a prediction is positive when
// its score is >= the threshold, and candidates are the distinct scores. Ties in the
// criterion go to the highest threshold.
func ChooseThreshold(preds []Prediction, spec ThresholdSpec) (float64, error) {
	switch spec.Method {
	case ThresholdFixed, "":
		// Above 1 is allowed: no prediction is positive.
		if math.IsNaN(spec.Value) || spec.Value < 0 {
			return 0, fmt.Errorf("fixed threshold %v below 0", spec.Value)
		}
		return spec.Value, nil
	case ThresholdMaxF1, ThresholdYouden, ThresholdSensitivity, ThresholdSpecificity:
	default:
		return 0, fmt.Errorf("unknown threshold method %q", spec.Method)
	}
	byTarget := spec.Method == ThresholdSensitivity || spec.Method == ThresholdSpecificity
	if byTarget && !(spec.Target > 0 && spec.Target <= 1) {
		return 0, fmt.Errorf("target %s %v outside (0, 1]", spec.Method, spec.Target)
	}
	if err := validate(preds); err != nil {
		return 0, err
	}
	s := make([]float64, len(preds))
	y := make([]bool, len(preds))
	order := make([]int, len(preds))
	var P, N float64
	for i, p := range preds {
		order[i] = i
		if p.Label {
			P++
		} else {
			N++
		}
	}
	if P == 0 || N == 0 {
		return 0, fmt.Errorf("choose %s threshold: %w", spec.Method, ErrOneClass)
	}
	sort.Slice(order, func(a, b int) bool { return preds[order[a]].Score > preds[order[b]].Score })
	for k, i := range order {
		s[k], y[k] = preds[i].Score, preds[i].Label
	}
	best, bestT := math.Inf(-1), s[0]
	var tp, fp float64
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			if y[j] {
				tp++
			} else {
				fp++
			}
			j++
		}
		var crit float64
		switch spec.Method {
		case ThresholdMaxF1:
			crit = 2 * tp / (2*tp + fp + (P - tp))
		case ThresholdYouden:
			crit = tp/P - fp/N
		case ThresholdSensitivity:
			if tp/P >= spec.Target-1e-12 {
				return s[i], nil
			}
			i = j
			continue
		case ThresholdSpecificity:
			// Lowering the threshold only loses specificity: keep the last one that holds it.
			if 1-fp/N < spec.Target-1e-12 {
				if i == 0 {
					// Even the highest score costs too much specificity: nothing is positive.
					return math.Nextafter(s[0], math.Inf(1)), nil
				}
				return bestT, nil
			}
			bestT = s[i]
			i = j
			continue
		}
		if crit > best {
			best, bestT = crit, s[i]
		}
		i = j
	}
	return bestT, nil
}

// Config controls Compute.
type Config struct {
	Threshold ThresholdSpec `json:"threshold"`
	// Tuning predictions choose a tuned threshold (max-f1, youden, sensitivity). Without them
	// the threshold is chosen on the evaluated predictions and a warning says so.
	Tuning    []Prediction `json:"-"`
	Bootstrap int          `json:"bootstrap"` // resamples of subjects; 0 for no intervals
	Seed      uint64       `json:"seed"`
	Workers   int          `json:"-"`     // 0: GOMAXPROCS
	Level     float64      `json:"level"` // interval coverage, default 0.95
	Bins      int          `json:"bins"`  // reliability bins, default 10
}

// BootstrapInfo describes the intervals.
type BootstrapInfo struct {
	Resamples int     `json:"resamples"`
	Seed      uint64  `json:"seed"`
	Level     float64 `json:"level"`
	// Defined counts resamples with both classes (where AUROC is defined); percentiles of each
	// metric use the resamples where that metric is defined, and are null when fewer than
	// half are.
	Defined int    `json:"defined"`
	Method  string `json:"method"`
}

// Metrics is Compute's result.
type Metrics struct {
	N         int             `json:"n"`
	Subjects  int             `json:"subjects"`
	Positives int             `json:"positives"`
	Negatives int             `json:"negatives"`
	Threshold ChosenThreshold `json:"threshold"`
	// Sample weights every prediction 1; Subject weights each subject's predictions 1/n.
	Sample      MetricSet          `json:"sample_weighted"`
	Subject     MetricSet          `json:"subject_weighted"`
	Calibration CalibrationSummary `json:"calibration"`
	Bootstrap   *BootstrapInfo     `json:"bootstrap,omitempty"`
	Warnings    []string           `json:"warnings,omitempty"`
}

// validate checks predictions for Compute: non-empty, probabilities in [0, 1].
func validate(preds []Prediction) error {
	if len(preds) == 0 {
		return errors.New("no predictions")
	}
	for i, p := range preds {
		if err := CheckScore(p.Score); err != nil {
			return fmt.Errorf("prediction %d (subject %d): %w", i+1, p.SubjectID, err)
		}
	}
	return nil
}

// Compute evaluates preds: every metric sample- and subject-weighted at the configured
// threshold, with percentile bootstrap intervals over subjects, and a calibration summary.
// It returns an error wrapping ErrOneClass when preds hold only one class, and an error
// naming the row for a NaN or out-of-range probability.
func Compute(preds []Prediction, cfg Config) (*Metrics, error) {
	if err := validate(preds); err != nil {
		return nil, err
	}
	m := &Metrics{N: len(preds)}
	for _, p := range preds {
		if p.Label {
			m.Positives++
		} else {
			m.Negatives++
		}
	}
	if m.Positives == 0 || m.Negatives == 0 {
		return nil, fmt.Errorf("%d predictions, %d positive and %d negative: %w", m.N, m.Positives, m.Negatives, ErrOneClass)
	}
	ct := ChosenThreshold{Method: cfg.Threshold.Method, Target: cfg.Threshold.Target, ChosenOn: "fixed"}
	if ct.Method == "" {
		ct.Method = ThresholdFixed
		if cfg.Threshold.Value == 0 && cfg.Threshold.Target == 0 {
			cfg.Threshold.Value = 0.5
		}
	}
	var err error
	switch {
	case ct.Method == ThresholdFixed:
		ct.Value, err = ChooseThreshold(nil, cfg.Threshold)
	case len(cfg.Tuning) > 0:
		ct.ChosenOn, ct.TuningN = "tuning", len(cfg.Tuning)
		ct.Value, err = ChooseThreshold(cfg.Tuning, cfg.Threshold)
	default:
		ct.ChosenOn = "evaluation"
		ct.Value, err = ChooseThreshold(preds, cfg.Threshold)
		m.Warnings = append(m.Warnings,
			fmt.Sprintf("the %s threshold was chosen on the evaluated predictions themselves: threshold metrics are optimistic; pass tuning predictions", ct.Method))
	}
	if err != nil {
		return nil, fmt.Errorf("threshold: %w", err)
	}
	m.Threshold = ct
	p := prepare(preds, ct.Value)
	m.Subjects = p.nSubj
	if len(p.groupEnd) == 1 {
		m.Warnings = append(m.Warnings, "all scores are equal: AUROC is 0.5 and AUPRC equals the prevalence")
	}
	var v [nMetrics]float64
	sc := &scratch{}
	p.compute(p.base[0], nil, sc, &v)
	m.Sample.setPoint(&v)
	p.compute(p.base[1], nil, sc, &v)
	m.Subject.setPoint(&v)
	if cfg.Bootstrap > 0 {
		info := p.bootstrap(cfg, []*MetricSet{&m.Sample, &m.Subject})
		m.Bootstrap = info
		if info.Defined < cfg.Bootstrap {
			m.Warnings = append(m.Warnings,
				fmt.Sprintf("%d of %d bootstrap resamples had one class only and were left out of the AUROC/AUPRC intervals", cfg.Bootstrap-info.Defined, cfg.Bootstrap))
		}
	}
	labels, scores := split(preds)
	m.Calibration = Summarise(labels, scores, cfg.Bins)
	return m, nil
}

func split(preds []Prediction) ([]bool, []float64) {
	y := make([]bool, len(preds))
	s := make([]float64, len(preds))
	for i, p := range preds {
		y[i], s[i] = p.Label, p.Score
	}
	return y, s
}
