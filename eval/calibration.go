package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/medseq/medseq/modelrepo"
)

// Bin strategies for reliability curves.
const (
	BinsUniform  = "uniform"  // equal-width bins over [0, 1]
	BinsQuantile = "quantile" // bins holding about equal numbers of predictions
)

// Bin is one point of a reliability curve.
type Bin struct {
	Lo            float64 `json:"lo"`
	Hi            float64 `json:"hi"`
	MeanPredicted float64 `json:"mean_predicted"`
	ObservedRate  float64 `json:"observed_rate"`
	Count         int     `json:"count"`
}

// Reliability bins scores like scikit-learn's calibration_curve: uniform edges k/bins or
// quantile edges (percentiles of the scores), a score going to the first bin whose upper edge
// is >= it; empty bins are left out.
func Reliability(labels []bool, scores []float64, bins int, strategy string) ([]Bin, error) {
	if len(labels) != len(scores) {
		return nil, fmt.Errorf("reliability: %d labels but %d scores", len(labels), len(scores))
	}
	if bins < 1 {
		return nil, fmt.Errorf("reliability: %d bins", bins)
	}
	for i, s := range scores {
		if err := CheckScore(s); err != nil {
			return nil, fmt.Errorf("reliability: score %d: %w", i+1, err)
		}
	}
	edges := make([]float64, bins+1)
	switch strategy {
	case BinsUniform, "":
		step := 1 / float64(bins)
		for k := range edges {
			edges[k] = float64(k) * step
		}
	case BinsQuantile:
		if len(scores) == 0 {
			return nil, nil
		}
		x := append([]float64(nil), scores...)
		sort.Float64s(x)
		for k := range edges {
			edges[k] = quantile(x, float64(k)/float64(bins))
		}
	default:
		return nil, fmt.Errorf("reliability: unknown strategy %q", strategy)
	}
	inner := edges[1:bins]
	sumP := make([]float64, bins)
	sumY := make([]float64, bins)
	cnt := make([]int, bins)
	for i, s := range scores {
		b := sort.SearchFloat64s(inner, s) // first inner edge >= s
		sumP[b] += s
		if labels[i] {
			sumY[b]++
		}
		cnt[b]++
	}
	var out []Bin
	for b := range cnt {
		if cnt[b] == 0 {
			continue
		}
		out = append(out, Bin{
			Lo: edges[b], Hi: edges[b+1],
			MeanPredicted: sumP[b] / float64(cnt[b]), ObservedRate: sumY[b] / float64(cnt[b]),
			Count: cnt[b],
		})
	}
	return out, nil
}

// ECE is the expected calibration error over bins: Σ count/N · |observed − mean predicted|.
func ECE(bins []Bin) float64 {
	var n, e float64
	for _, b := range bins {
		n += float64(b.Count)
		e += float64(b.Count) * math.Abs(b.ObservedRate-b.MeanPredicted)
	}
	if n == 0 {
		return math.NaN()
	}
	return e / n
}

// CalibrationSummary is the calibration part of a metrics report.
type CalibrationSummary struct {
	Bins        int   `json:"bins"`
	Uniform     []Bin `json:"uniform"`
	Quantile    []Bin `json:"quantile"`
	ECE         Num   `json:"ece"`          // over the uniform bins
	ECEQuantile Num   `json:"ece_quantile"` // over the quantile bins
	// Slope and Intercept are the coefficients of a logistic regression of the label on
	// logit(p) (p clipped to [1e-15, 1−1e-15]): 1 and 0 for a calibrated model, a slope below 1
	// for overconfident scores. Null when the fit does not converge (separable data).
	Slope     Num `json:"slope"`
	Intercept Num `json:"intercept"`
}

// Summarise computes the calibration summary (bins defaults to 10).
func Summarise(labels []bool, scores []float64, bins int) CalibrationSummary {
	if bins <= 0 {
		bins = 10
	}
	cs := CalibrationSummary{Bins: bins, ECE: Num(math.NaN()), ECEQuantile: Num(math.NaN())}
	if u, err := Reliability(labels, scores, bins, BinsUniform); err == nil {
		cs.Uniform, cs.ECE = u, Num(ECE(u))
	}
	if q, err := Reliability(labels, scores, bins, BinsQuantile); err == nil {
		cs.Quantile, cs.ECEQuantile = q, Num(ECE(q))
	}
	slope, icpt, err := CalibrationSlope(labels, scores)
	if err != nil {
		slope, icpt = math.NaN(), math.NaN()
	}
	cs.Slope, cs.Intercept = Num(slope), Num(icpt)
	return cs
}

// CalibrationSlope fits label ~ sigmoid(slope·logit(p) + intercept).
func CalibrationSlope(labels []bool, scores []float64) (slope, intercept float64, err error) {
	x := make([]float64, len(scores))
	for i, s := range scores {
		if err := CheckScore(s); err != nil {
			return 0, 0, fmt.Errorf("score %d: %w", i+1, err)
		}
		s = min(max(s, 1e-15), 1-1e-15)
		x[i] = math.Log(s / (1 - s))
	}
	return fitLogistic(x, labels, nil)
}

// ErrSeparated is returned by logistic fits when the score separates the classes perfectly,
// so the maximum-likelihood coefficients are infinite.
var ErrSeparated = errors.New("the classes are (almost) perfectly separated by the score: the logistic fit diverges")

// fitLogistic minimises the weighted log loss of y ~ sigmoid(a·x + b) by Newton's method with
// step halving (IRLS); no penalty, as scikit-learn's LogisticRegression(penalty=None).
func fitLogistic(x []float64, y []bool, w []float64) (a, b float64, err error) {
	if len(x) != len(y) || (w != nil && len(w) != len(x)) {
		return 0, 0, errors.New("logistic fit: inputs differ in length")
	}
	f := &logisticFit{x: x, y: y, w: w}
	np, nn := f.classWeights()
	if np == 0 || nn == 0 {
		return 0, 0, fmt.Errorf("logistic fit: %w", ErrOneClass)
	}
	if f.separated() {
		return 0, 0, ErrSeparated
	}
	a, b = 0, math.Log(np/nn)
	cur := f.loss(a, b)
	for iter := 0; iter < 200; iter++ {
		d := f.derivatives(a, b)
		det := d.haa*d.hbb - d.hab*d.hab
		if det <= 0 || math.IsNaN(det) {
			if math.Abs(d.ga)+math.Abs(d.gb) < 1e-12*(np+nn) {
				return a, b, nil
			}
			return 0, 0, ErrSeparated
		}
		da := (d.hbb*d.ga - d.hab*d.gb) / det
		db := (d.haa*d.gb - d.hab*d.ga) / det
		t, na, nb, nl := f.halvingStep(a, b, da, db, cur)
		a, b = na, nb
		done := math.Abs(t*da) <= 1e-13*(1+math.Abs(a)) && math.Abs(t*db) <= 1e-13*(1+math.Abs(b))
		cur = nl
		if math.Abs(a) > 1e8 || math.Abs(b) > 1e8 {
			return 0, 0, ErrSeparated
		}
		if done {
			return a, b, nil
		}
	}
	// Newton converges quadratically; 200 iterations without convergence means the
	// coefficients are running away.
	return 0, 0, ErrSeparated
}

// logisticFit is the data of a weighted one-feature logistic regression: x, the labels y
// and the weights w (nil: all 1), of equal lengths.
type logisticFit struct {
	x []float64
	y []bool
	w []float64
}

// weight is the weight of row i.
func (f *logisticFit) weight(i int) float64 {
	if f.w != nil {
		return f.w[i]
	}
	return 1.0
}

// classWeights are the total weights of the positive (np) and the negative (nn) rows.
func (f *logisticFit) classWeights() (np, nn float64) {
	for i := range f.y {
		if f.y[i] {
			np += f.weight(i)
		} else {
			nn += f.weight(i)
		}
	}
	return np, nn
}

// separated reports whether the maximum-likelihood slope is infinite: with one feature,
// exactly when the classes' ranges of x (rows of weight 0 left out) meet at most at one
// point (complete or quasi-complete separation).
func (f *logisticFit) separated() bool {
	minP, maxP, minN, maxN := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for i, xi := range f.x {
		if f.w != nil && f.w[i] == 0 {
			continue
		}
		if f.y[i] {
			minP, maxP = min(minP, xi), max(maxP, xi)
		} else {
			minN, maxN = min(minN, xi), max(maxN, xi)
		}
	}
	allEqual := minP == maxP && minN == maxN && minP == minN
	return !allEqual && (maxN <= minP || maxP <= minN)
}

// loss is the weighted log loss at coefficients (a, b).
func (f *logisticFit) loss(a, b float64) float64 {
	var l float64
	for i, xi := range f.x {
		wi := f.weight(i)
		z := a*xi + b
		// log(1+e^z) − y·z, stably
		sp := math.Max(z, 0) + math.Log1p(math.Exp(-math.Abs(z)))
		if f.y[i] {
			l += wi * (sp - z)
		} else {
			l += wi * sp
		}
	}
	return l
}

// logisticDerivatives are the gradient (ga, gb) and the Hessian (haa, hab, hbb) of the loss
// with respect to (a, b).
type logisticDerivatives struct {
	ga, gb, haa, hab, hbb float64
}

// derivatives are the loss's gradient and Hessian at coefficients (a, b).
func (f *logisticFit) derivatives(a, b float64) logisticDerivatives {
	var d logisticDerivatives
	for i, xi := range f.x {
		wi := f.weight(i)
		p := sigmoid(a*xi + b)
		r := p
		if f.y[i] {
			r = p - 1
		}
		d.ga += wi * r * xi
		d.gb += wi * r
		h := wi * p * (1 - p)
		d.haa += h * xi * xi
		d.hab += h * xi
		d.hbb += h
	}
	return d
}

// halvingStep goes from (a, b) against the Newton step (da, db) scaled by t = 1, ½, ¼, … (60
// tries at most) until the loss is no more than cur (up to rounding). It returns the last t,
// the point it reached and the loss there.
func (f *logisticFit) halvingStep(a, b, da, db, cur float64) (t, na, nb, nl float64) {
	t = 1.0
	for k := 0; k < 60; k++ {
		na, nb = a-t*da, b-t*db
		nl = f.loss(na, nb)
		if nl <= cur+1e-12*math.Abs(cur) {
			break
		}
		t /= 2
	}
	return t, na, nb, nl
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// pava replaces y by its weighted least-squares non-decreasing fit.
func pava(y, w []float64) {
	n := len(y)
	// blocks as a stack of (value, weight, end)
	val := make([]float64, 0, n)
	wt := make([]float64, 0, n)
	end := make([]int, 0, n)
	for i := 0; i < n; i++ {
		v, ww := y[i], w[i]
		for len(val) > 0 && val[len(val)-1] >= v {
			k := len(val) - 1
			tw := wt[k] + ww
			if tw > 0 {
				v = (val[k]*wt[k] + v*ww) / tw
			} else {
				v = (val[k] + v) / 2
			}
			ww = tw
			val, wt, end = val[:k], wt[:k], end[:k]
		}
		val = append(val, v)
		wt = append(wt, ww)
		end = append(end, i+1)
	}
	start := 0
	for k := range val {
		for i := start; i < end[k]; i++ {
			y[i] = val[k]
		}
		start = end[k]
	}
}

// IsotonicBounds are the bounds FitCalibration puts on an isotonic fit over n predictions:
// 1/(n+2) and (n+1)/(n+2), the least and most Laplace's rule of succession allows n
// observations to support. An unbounded fit answers exactly 0 for every score below the
// lowest-scored positive of the tuning split (and 1 above the highest negative), a certainty
// no finite sample supports and an infinite log loss on the first case it is wrong about.
func IsotonicBounds(n int) (lo, hi float64) {
	return 1 / float64(n+2), float64(n+1) / float64(n+2)
}

// The fitted calibrations; package modelrepo owns their file, calibration.json.
type (
	Calibration = modelrepo.Calibration
	Platt       = modelrepo.Platt
	Isotonic    = modelrepo.Isotonic
	FitCounts   = modelrepo.FitCounts
)

// Calibration methods.
const (
	CalibrationPlatt    = modelrepo.CalibrationPlatt
	CalibrationIsotonic = modelrepo.CalibrationIsotonic
	CalibrationIdentity = modelrepo.CalibrationIdentity
)

// FitPlatt fits a Platt recalibration on the tuning scores and labels (weights optional, nil
// for 1). It matches scikit-learn's LogisticRegression(penalty=None) on the single feature s
// (not CalibratedClassifierCV's Platt target smoothing).
func FitPlatt(scores []float64, labels []bool, weights []float64) (*Platt, error) {
	for i, s := range scores {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("platt: score %d is %v", i+1, s)
		}
	}
	a, b, err := fitLogistic(scores, labels, weights)
	if err != nil {
		return nil, fmt.Errorf("platt: %w", err)
	}
	return &Platt{A: a, B: b}, nil
}

// FitIsotonic fits an isotonic map by pool adjacent violators on the tuning scores and labels
// (weights optional, nil for 1), with scikit-learn's IsotonicRegression(increasing=True,
// out_of_bounds="clip") semantics: tied scores (within 1e-15) are first merged into one point
// with their weighted mean label.
func FitIsotonic(scores []float64, labels []bool, weights []float64) (*Isotonic, error) {
	n := len(scores)
	if len(labels) != n || (weights != nil && len(weights) != n) {
		return nil, errors.New("isotonic: inputs differ in length")
	}
	if n == 0 {
		return nil, errors.New("isotonic: no data")
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
		if math.IsNaN(scores[i]) || math.IsInf(scores[i], 0) {
			return nil, fmt.Errorf("isotonic: score %d is %v", i+1, scores[i])
		}
		if weights != nil && !(weights[i] >= 0) {
			return nil, fmt.Errorf("isotonic: weight %d is %v", i+1, weights[i])
		}
	}
	yv := func(i int) float64 {
		if labels[i] {
			return 1
		}
		return 0
	}
	wv := func(i int) float64 {
		if weights == nil {
			return 1
		}
		return weights[i]
	}
	sort.SliceStable(order, func(a, b int) bool {
		if scores[order[a]] != scores[order[b]] {
			return scores[order[a]] < scores[order[b]]
		}
		return yv(order[a]) < yv(order[b])
	})
	// Merge ties as scikit-learn's _make_unique: a new point starts when x moves by at least
	// the float64 resolution (1e-15) from the current point's first x.
	const eps = 1e-15
	var xs, ys, ws []float64
	cur := math.Inf(-1)
	var sy, sw float64
	for _, i := range order {
		x := scores[i]
		if x-cur >= eps {
			if len(xs) > 0 {
				ys = append(ys, sy/sw)
				ws = append(ws, sw)
			}
			xs = append(xs, x)
			cur = x
			sy, sw = 0, 0
		}
		sy += wv(i) * yv(i)
		sw += wv(i)
	}
	ys = append(ys, sy/sw)
	ws = append(ws, sw)
	pava(ys, ws)
	// Keep only the ends of each constant run: interpolation is unchanged.
	var kx, ky []float64
	for i := range xs {
		if i == 0 || i == len(xs)-1 || ys[i] != ys[i-1] || ys[i] != ys[i+1] {
			kx = append(kx, xs[i])
			ky = append(ky, ys[i])
		}
	}
	return &Isotonic{X: kx, Y: ky}, nil
}

// FitCalibration fits method (platt, isotonic or identity) on tuning predictions, each
// prediction weighted 1.
func FitCalibration(method string, tuning []Prediction) (*Calibration, error) {
	if err := validate(tuning); err != nil {
		return nil, fmt.Errorf("fit calibration: %w", err)
	}
	c := &Calibration{Method: method}
	subj := map[int64]bool{}
	for _, p := range tuning {
		subj[p.SubjectID] = true
		if p.Label {
			c.FittedOn.Positives++
		} else {
			c.FittedOn.Negatives++
		}
	}
	c.FittedOn.N, c.FittedOn.Subjects = len(tuning), len(subj)
	if c.FittedOn.Positives == 0 || c.FittedOn.Negatives == 0 {
		return nil, fmt.Errorf("fit %s calibration on %d predictions: %w", method, len(tuning), ErrOneClass)
	}
	y, s := split(tuning)
	switch method {
	case CalibrationPlatt:
		p, err := FitPlatt(s, y, nil)
		if err != nil {
			return nil, err
		}
		c.Platt = p
	case CalibrationIsotonic:
		iso, err := FitIsotonic(s, y, nil)
		if err != nil {
			return nil, err
		}
		iso.Clip(IsotonicBounds(len(s)))
		c.Isotonic = iso
	case CalibrationIdentity:
	default:
		return nil, fmt.Errorf("unknown calibration method %q (want platt, isotonic or identity)", method)
	}
	return c, nil
}

// Calibrate returns copies of preds with scores calibrated by c.
func Calibrate(c *Calibration, preds []Prediction) []Prediction {
	out := make([]Prediction, len(preds))
	for i, p := range preds {
		p.Score = c.Apply(p.Score)
		out[i] = p
	}
	return out
}
