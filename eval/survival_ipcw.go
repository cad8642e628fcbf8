package eval

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
)

// HorizonMetrics are the figures at one horizon t, as riskRegression::Score(...,
// metrics = c("auc", "brier"), cens.model = "km") with the calibrated risk as the predicted
// risk of an event by t. Cases had the event at or before t, controls are still followed up
// after t (time > t, "cumulative cases / dynamic controls"); rows censored at or before t are
// neither and count through the weights: a case i weighs 1/G(Tᵢ−), a control 1/G(t), G the
// Kaplan–Meier estimate of the censoring (inverse probability of censoring weights).
type HorizonMetrics struct {
	Horizon        float64 `json:"horizon"`
	Cases          int     `json:"cases"`
	Controls       int     `json:"controls"`
	CensoredBefore int     `json:"censored_before"`
	// CensoringSurvival is G(t), the probability of still being followed up at t.
	CensoringSurvival Num `json:"censoring_survival"`
	// AUC is the IPCW time-dependent AUROC: the weighted share of case–control pairs where
	// the case has the higher risk, ties 1/2.
	AUC       Num    `json:"auc"`
	AUCReason string `json:"auc_reason,omitempty"`
	// Brier is the IPCW Brier score (1/n) Σ wᵢ (1{case} − riskᵢ)²; BrierNull the same for
	// the Kaplan–Meier incidence given to everyone (Score's null model) and IPA the index of
	// prediction accuracy 1 − Brier/BrierNull.
	Brier       Num    `json:"brier"`
	BrierNull   Num    `json:"brier_null"`
	IPA         Num    `json:"ipa"`
	BrierReason string `json:"brier_reason,omitempty"`
	// MeanRisk against the Kaplan–Meier incidence Observed (with its band): calibration in
	// the large, ObservedExpected their ratio.
	MeanRisk         Num `json:"mean_risk"`
	Observed         Num `json:"observed"`
	ObservedLo       Num `json:"observed_lo"`
	ObservedHi       Num `json:"observed_hi"`
	ObservedExpected Num `json:"observed_expected"`
	// Calibration compares each risk group's mean predicted risk with its Kaplan–Meier
	// incidence at the horizon.
	Calibration []GroupCalibration `json:"calibration"`
}

// GroupCalibration is one risk group at one horizon: mean predicted risk against the
// Kaplan–Meier observed incidence and its 95% band.
type GroupCalibration struct {
	Group      int    `json:"group"`
	N          int    `json:"n"`
	AtRisk     int    `json:"at_risk"`
	Predicted  Num    `json:"predicted"`
	Observed   Num    `json:"observed"`
	ObservedLo Num    `json:"observed_lo"`
	ObservedHi Num    `json:"observed_hi"`
	Reason     string `json:"reason,omitempty"`
}

// censCurve is the Kaplan–Meier estimate G of the censoring distribution: at a time s with
// n at risk, d events and c censorings, G falls by the factor 1 − c/(n − d) (the events
// come first, so they are not at risk of censoring at s), as prodlim(..., reverse = TRUE)
// and survival's fastkm1.
type censCurve struct {
	times   []float64 // the distinct censoring times, ascending
	g       []float64 // G just after each
	maxTime float64
}

func censoringKM(rows []SurvivalRow) censCurve {
	ord := make([]int, len(rows))
	for i := range ord {
		ord[i] = i
	}
	slices.SortFunc(ord, func(a, b int) int { return cmp.Compare(rows[a].Time, rows[b].Time) })
	var c censCurve
	g, atRisk := 1.0, len(rows)
	for i := 0; i < len(ord); {
		t := rows[ord[i]].Time
		d, k := 0, 0
		for ; i+k < len(ord) && rows[ord[i+k]].Time == t; k++ {
			if rows[ord[i+k]].Event {
				d++
			}
		}
		if cens := k - d; cens > 0 {
			g *= 1 - float64(cens)/float64(atRisk-d)
			c.times = append(c.times, t)
			c.g = append(c.g, g)
		}
		atRisk -= k
		i += k
		c.maxTime = t
	}
	return c
}

// before is G(t−): the censorings strictly before t.
func (c censCurve) before(t float64) float64 {
	k := sort.SearchFloat64s(c.times, t) // the first censoring time >= t
	if k == 0 {
		return 1
	}
	return c.g[k-1]
}

// at is G(t); NaN past the last time (prodlim predicts NA there).
func (c censCurve) at(t float64) float64 {
	if t > c.maxTime {
		return math.NaN()
	}
	k := sort.Search(len(c.times), func(i int) bool { return c.times[i] > t })
	if k == 0 {
		return 1
	}
	return c.g[k-1]
}

// horizonMetrics computes AUC(t), Brier(t) and the calibration at horizon h, the groups'
// hi-th horizon.
func horizonMetrics(rows []SurvivalRow, hi int, h float64, cens censCurve, overall kmCurve,
	groups []RiskGroup) HorizonMetrics {
	out := HorizonMetrics{Horizon: h, CensoringSurvival: Num(cens.at(h))}
	var caseRisk, caseW, ctrlRisk []float64
	var sumRisk float64
	for _, r := range rows {
		sumRisk += r.Risk
		switch {
		case r.Time <= h && r.Event:
			caseRisk = append(caseRisk, r.Risk)
			caseW = append(caseW, 1/cens.before(r.Time))
		case r.Time > h:
			ctrlRisk = append(ctrlRisk, r.Risk)
		default:
			out.CensoredBefore++
		}
	}
	out.Cases, out.Controls = len(caseRisk), len(ctrlRisk)
	out.AUC, out.AUCReason = ipcwAUC(caseRisk, caseW, ctrlRisk)
	km := overall.at(h)
	out.Brier, out.BrierNull, out.IPA, out.BrierReason = ipcwBrier(rows, h, cens, km)
	out.MeanRisk = Num(sumRisk / float64(len(rows)))
	out.Observed, out.ObservedLo, out.ObservedHi = km.Incidence, km.Lo, km.Hi
	out.ObservedExpected = km.Incidence / out.MeanRisk
	for _, g := range groups {
		k := g.KM.At[hi]
		out.Calibration = append(out.Calibration, GroupCalibration{Group: g.Group, N: g.N, AtRisk: k.AtRisk,
			Predicted: g.MeanRisk, Observed: k.Incidence, ObservedLo: k.Lo, ObservedHi: k.Hi, Reason: k.Reason})
	}
	return out
}

// ipcwAUC is Σᵢ Σⱼ wᵢ (1{rᵢ > rⱼ} + ½·1{rᵢ = rⱼ}) / (Σᵢ wᵢ · controls) over cases i and
// controls j (the controls' common weight 1/G(t) cancels), as Score's trapezoidal area under
// the IPCW ROC curve.
func ipcwAUC(caseRisk, caseW, ctrlRisk []float64) (Num, string) {
	if len(caseRisk) == 0 {
		return Num(math.NaN()), "no events by the horizon"
	}
	if len(ctrlRisk) == 0 {
		return Num(math.NaN()), "no one followed up event-free past the horizon"
	}
	ctrl := slices.Clone(ctrlRisk)
	slices.Sort(ctrl)
	var num, den float64
	for i, r := range caseRisk {
		lo := sort.SearchFloat64s(ctrl, r)                                    // controls below r
		hi := sort.Search(len(ctrl), func(k int) bool { return ctrl[k] > r }) // controls at or below r
		num += caseW[i] * (float64(lo) + 0.5*float64(hi-lo))
		den += caseW[i]
	}
	return Num(num / (den * float64(len(ctrl)))), ""
}

// ipcwBrier is Score's IPCW Brier score at h: (1/n)[Σ_cases (1 − rᵢ)²/G(Tᵢ−) + Σ_controls
// rᵢ²/G(h)], rows censored by h contributing 0; the null model gives everyone the
// Kaplan–Meier incidence km at h.
func ipcwBrier(rows []SurvivalRow, h float64, cens censCurve, km KMAt) (brier, null, ipa Num, reason string) {
	nan := Num(math.NaN())
	gh := cens.at(h)
	if math.IsNaN(gh) || km.Reason != "" {
		return nan, nan, nan, fmt.Sprintf("no one is followed up to %g (the last time is %g)", h, cens.maxTime)
	}
	f := float64(km.Incidence)
	var b, b0 float64
	for _, r := range rows {
		switch {
		case r.Time <= h && r.Event:
			w := 1 / cens.before(r.Time)
			b += (1 - r.Risk) * (1 - r.Risk) * w
			b0 += (1 - f) * (1 - f) * w
		case r.Time > h:
			b += r.Risk * r.Risk / gh
			b0 += f * f / gh
		}
	}
	n := float64(len(rows))
	brier, null = Num(b/n), Num(b0/n)
	return brier, null, Num(1 - b/b0), ""
}
