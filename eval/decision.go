package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Decision curve analysis (Vickers and Elkin, 2006): at a threshold probability pt a
// clinician who would act on a patient with risk ≥ pt values a true positive at 1 and a false
// positive at pt/(1−pt) (the odds of the threshold), so a strategy's net benefit is
//
//	NB(pt) = TP/n − FP/n · pt/(1−pt),
//
// with a prediction positive when its probability is ≥ pt, as everywhere in eval. Treating
// everyone gives π − (1−π)·pt/(1−pt) (π the prevalence), treating no one 0. A model is worth
// using at pt only where its net benefit exceeds both.

// DecisionPoint is the net benefit of a model and of treating everyone at one threshold
// probability (treating no one is 0 at every threshold).
type DecisionPoint struct {
	Threshold  float64 `json:"threshold"`
	NetBenefit Num     `json:"net_benefit"`
	TreatAll   Num     `json:"treat_all"`
	TP         int     `json:"tp"` // rows with probability ≥ Threshold that are positive
	FP         int     `json:"fp"`
}

// ThresholdRange is a closed range of threshold probabilities.
type ThresholdRange struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// DecisionCurve is a model's net benefit over a range of threshold probabilities.
type DecisionCurve struct {
	N          int             `json:"n"`
	Positives  int             `json:"positives"`
	Prevalence float64         `json:"prevalence"`
	Points     []DecisionPoint `json:"points"`
	// Useful are the runs of consecutive thresholds of Points where the model's net benefit
	// is above both treating everyone and treating no one.
	Useful []ThresholdRange `json:"useful,omitempty"`
}

// ErrThreshold marks a threshold probability outside (0, 1), where net benefit is undefined.
var ErrThreshold = errors.New("threshold probability must be in (0, 1)")

// NetBenefit is TP/n − FP/n · pt/(1−pt): the net benefit of acting on tp true and fp false
// positives among n rows at threshold probability pt. It is NaN for n = 0 or pt outside (0, 1).
func NetBenefit(tp, fp, n, pt float64) float64 {
	if n <= 0 || !(pt > 0 && pt < 1) {
		return math.NaN()
	}
	return tp/n - fp/n*pt/(1-pt)
}

// TreatAllNetBenefit is the net benefit of acting on everyone when a share prevalence is
// positive: prevalence − (1 − prevalence) · pt/(1−pt).
func TreatAllNetBenefit(prevalence, pt float64) float64 {
	return NetBenefit(prevalence, 1-prevalence, 1, pt)
}

// DecisionThresholds are the threshold probabilities a report's decision curve spans: 100
// steps up to a maximum that suits the prevalence π, since net benefit only matters where
// thresholds are plausible for the outcome: up to 50% for 5% ≤ π ≤ 40%; for a rarer outcome
// up to 10π (at least 10%), where treating everyone stops paying long before 50%; for a
// commoner one up to π + 10% (at most 95%), past the point where treating everyone stops
// paying. Each is rounded up to a multiple of 5%.
func DecisionThresholds(prevalence float64) []float64 {
	hi := 0.5
	switch {
	case math.IsNaN(prevalence):
	case prevalence < 0.05:
		hi = max(0.1, math.Ceil(10*prevalence*20-1e-9)/20)
	case prevalence > 0.4:
		hi = min(0.95, math.Ceil((prevalence+0.1)*20-1e-9)/20)
	}
	const steps = 100
	out := make([]float64, steps)
	for k := range out {
		out[k] = hi * float64(k+1) / steps
	}
	return out
}

// DecisionCurveOf computes preds' net benefit at each threshold (each in (0, 1)), with
// treating everyone beside it. preds' scores are the probabilities acted on: the calibrated
// ones a deployed model reports.
func DecisionCurveOf(preds []Prediction, thresholds []float64) (*DecisionCurve, error) {
	if err := validate(preds); err != nil {
		return nil, fmt.Errorf("decision curve: %w", err)
	}
	for _, t := range thresholds {
		if !(t > 0 && t < 1) {
			return nil, fmt.Errorf("decision curve: threshold %v: %w", t, ErrThreshold)
		}
	}
	n := len(preds)
	scores := make([]float64, n)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return preds[order[a]].Score < preds[order[b]].Score })
	// posFrom[k] counts positives among the rows sorted from k on.
	posFrom := make([]int, n+1)
	for k, i := range order {
		scores[k] = preds[i].Score
	}
	for k := n - 1; k >= 0; k-- {
		posFrom[k] = posFrom[k+1]
		if preds[order[k]].Label {
			posFrom[k]++
		}
	}
	dc := &DecisionCurve{N: n, Positives: posFrom[0]}
	dc.Prevalence = float64(dc.Positives) / float64(n)
	for _, t := range thresholds {
		k := sort.SearchFloat64s(scores, t) // the first row with score ≥ t
		tp := posFrom[k]
		fp := n - k - tp
		dc.Points = append(dc.Points, DecisionPoint{Threshold: t, TP: tp, FP: fp,
			NetBenefit: Num(NetBenefit(float64(tp), float64(fp), float64(n), t)),
			TreatAll:   Num(TreatAllNetBenefit(dc.Prevalence, t))})
	}
	dc.Useful = usefulRanges(dc.Points)
	return dc, nil
}

// usefulRanges are the runs of points where the model beats treating everyone and no one.
func usefulRanges(pts []DecisionPoint) []ThresholdRange {
	var out []ThresholdRange
	open := false
	for _, p := range pts {
		better := float64(p.NetBenefit) > max(float64(p.TreatAll), 0)
		switch {
		case better && !open:
			out = append(out, ThresholdRange{Lo: p.Threshold, Hi: p.Threshold})
			open = true
		case better:
			out[len(out)-1].Hi = p.Threshold
		default:
			open = false
		}
	}
	return out
}

// NNE is the number needed to evaluate, 1/PPV: how many flagged patients are worked up for
// each true case found. Its interval is PPV's turned over (a percentile interval maps through
// a decreasing function with its ends swapped). A PPV of 0 gives +Inf, an undefined one NaN.
func NNE(ppv Estimate) Estimate {
	inv := func(x Num) Num {
		f := float64(x)
		switch {
		case math.IsNaN(f):
			return Num(math.NaN())
		case f <= 0:
			return Num(math.Inf(1))
		}
		return Num(1 / f)
	}
	return Estimate{Value: inv(ppv.Value), Lo: inv(ppv.Hi), Hi: inv(ppv.Lo)}
}

// PPVAtPrevalence is the PPV and NPV that a sensitivity and specificity give at another
// prevalence (Bayes' rule): what the operating point would yield in a population where the
// outcome is commoner or rarer than in the evaluated rows. NaN where undefined.
func PPVAtPrevalence(sens, spec, prevalence float64) (ppv, npv float64) {
	tp, fp := sens*prevalence, (1-spec)*(1-prevalence)
	tn, fn := spec*(1-prevalence), (1-sens)*prevalence
	return ratio(tp, tp+fp), ratio(tn, tn+fn)
}
