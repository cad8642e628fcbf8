package eval

import (
	"math"
	"slices"
	"sort"
)

// RiskGroup is one predicted-risk group: the rows whose risk lies in (RiskLo, RiskHi] (the
// first group includes RiskLo), with its Kaplan–Meier incidence.
type RiskGroup struct {
	Group    int       `json:"group"` // 1 is the lowest risk
	RiskLo   float64   `json:"risk_lo"`
	RiskHi   float64   `json:"risk_hi"`
	N        int       `json:"n"`
	Events   int       `json:"events"`
	MeanRisk Num       `json:"mean_risk"`
	KM       KMSummary `json:"km"`

	idx []int
}

// riskGroups cuts the risks at their quantiles, as R's
//
//	droplevels(cut(risk, unique(quantile(risk, seq(0, 1, length.out = groups + 1))),
//	               include.lowest = TRUE))
//
// (type-7 quantiles, right-closed intervals, the lowest one closed): tied risks share a group,
// duplicate breaks merge groups and empty ones are dropped, so there may be fewer than asked.
func riskGroups(rows []SurvivalRow, groups int) []*RiskGroup {
	x := make([]float64, len(rows))
	for i, r := range rows {
		x[i] = r.Risk
	}
	slices.Sort(x)
	breaks := []float64{x[0]}
	by := 1 / float64(groups) // seq(0, 1, length.out = groups + 1): from + k·by, the last one exactly 1
	for k := 1; k <= groups; k++ {
		p := float64(k) * by
		if k == groups {
			p = 1
		}
		if q := quantileR7(x, p); q != breaks[len(breaks)-1] {
			breaks = append(breaks, q)
		}
	}
	if len(breaks) == 1 { // one distinct risk
		breaks = append(breaks, x[0])
	}
	out := make([]*RiskGroup, len(breaks)-1)
	for g := range out {
		out[g] = &RiskGroup{Group: g + 1, RiskLo: breaks[g], RiskHi: breaks[g+1]}
	}
	inner := breaks[1 : len(breaks)-1]
	for i, r := range rows {
		g := out[sort.SearchFloat64s(inner, r.Risk)] // the first upper break >= risk
		g.idx = append(g.idx, i)
	}
	// A break between two data values can leave an interval empty: drop it (R's droplevels).
	out = slices.DeleteFunc(out, func(g *RiskGroup) bool { return len(g.idx) == 0 })
	for k, g := range out {
		g.Group = k + 1
	}
	return out
}

// quantileR7 is R's quantile(x, p, type = 7) of sorted x, computed as R does.
func quantileR7(x []float64, p float64) float64 {
	index := 1 + float64(len(x)-1)*p // 1-based, in R's arithmetic
	lo, hi := math.Floor(index), math.Ceil(index)
	qs := x[int(lo)-1]
	if index > lo && x[int(hi)-1] != qs {
		h := index - lo
		qs = (1-h)*qs + h*x[int(hi)-1]
	}
	return qs
}

// report fills the group's counts and its Kaplan–Meier incidence at the horizons.
func (g *RiskGroup) report(rows []SurvivalRow, opt SurvivalOptions) RiskGroup {
	g.N = len(g.idx)
	var sum float64
	for _, i := range g.idx {
		sum += rows[i].Risk
		if rows[i].Event {
			g.Events++
		}
	}
	g.MeanRisk = Num(sum / float64(g.N))
	g.KM = kaplanMeier(rows, g.idx).summary(opt.Horizons, opt.Curves)
	return *g
}
