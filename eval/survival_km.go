package eval

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
)

// KMSummary is a Kaplan–Meier estimate read at the horizons, with the whole step curve when
// asked for.
type KMSummary struct {
	At    []KMAt   `json:"at"`
	Steps []KMStep `json:"steps,omitempty"`
}

// KMAt is the Kaplan–Meier estimate at one horizon, as R's summary(survfit(...), times =
// horizon): Survival S(t), Incidence 1 − S(t), SE the Greenwood standard error of S(t) (the
// same for 1 − S(t)), and the incidence's band from survfit's default conf.type = "log" (a
// symmetric interval for log S, upper end capped at S = 1, turned into 1 − S). AtRisk is the
// number still followed up at the horizon (time >= horizon), Events the events up to it.
// Past the last follow-up time everything is NaN with a Reason.
type KMAt struct {
	Horizon   float64 `json:"horizon"`
	AtRisk    int     `json:"at_risk"`
	Events    int     `json:"events"`
	Survival  Num     `json:"survival"`
	Incidence Num     `json:"incidence"`
	SE        Num     `json:"se"`
	Lo        Num     `json:"incidence_lo"`
	Hi        Num     `json:"incidence_hi"`
	Reason    string  `json:"reason,omitempty"`
}

// KMStep is one distinct time of the Kaplan–Meier curve, as a row of R's survfit: the number
// at risk, the events and censorings at that time, S(t) and its log-scale band.
type KMStep struct {
	Time     float64 `json:"time"`
	AtRisk   int     `json:"at_risk"`
	Events   int     `json:"events"`
	Censored int     `json:"censored"`
	Survival Num     `json:"survival"`
	// SELog is survfit's std.err: the Greenwood standard error of log S(t) (the cumulative
	// hazard's); +Inf once S reaches 0.
	SELog Num `json:"se_log"`
	Lo    Num `json:"survival_lo"`
	Hi    Num `json:"survival_hi"`
}

// kmCurve is a Kaplan–Meier fit: one step per distinct time, times ascending.
type kmCurve struct {
	steps   []kmStep
	n       int
	maxTime float64
}

type kmStep struct {
	time                 float64
	atRisk, events, cens int
	surv, greenwood      float64 // greenwood: Σ d / (n (n − d)), the variance of log S
	cumEvents            int
}

// kaplanMeier fits the product-limit estimate on rows[idx]. At a time with events and
// censorings the censored subjects are at risk (events first), as survfit.
func kaplanMeier(rows []SurvivalRow, idx []int) kmCurve {
	ord := slices.Clone(idx)
	slices.SortFunc(ord, func(a, b int) int { return cmp.Compare(rows[a].Time, rows[b].Time) })
	c := kmCurve{n: len(ord)}
	s, v, atRisk, cum := 1.0, 0.0, len(ord), 0
	for i := 0; i < len(ord); {
		t := rows[ord[i]].Time
		d, k := 0, 0
		for ; i+k < len(ord) && rows[ord[i+k]].Time == t; k++ {
			if rows[ord[i+k]].Event {
				d++
			}
		}
		if d > 0 {
			s *= float64(atRisk-d) / float64(atRisk)
			v += float64(d) / (float64(atRisk) * float64(atRisk-d)) // +Inf when all at risk die, as survfit
		}
		cum += d
		c.steps = append(c.steps, kmStep{time: t, atRisk: atRisk, events: d, cens: k - d, surv: s, greenwood: v,
			cumEvents: cum})
		atRisk -= k
		i += k
		c.maxTime = t
	}
	return c
}

// logBand is survfit's conf.type = "log" band of S: exp(log S ± z·se), the upper end capped
// at 1; NaN where S is 0 (R's NA).
func logBand(s, seLog float64) (lo, hi float64) {
	if !(s > 0) || math.IsInf(seLog, 1) || math.IsNaN(seLog) {
		return math.NaN(), math.NaN()
	}
	return math.Exp(math.Log(s) - zSurvival*seLog), math.Min(1, math.Exp(math.Log(s)+zSurvival*seLog))
}

// at reads the curve at horizon h: the last step at or before h.
func (c kmCurve) at(h float64) KMAt {
	nan := Num(math.NaN())
	if c.n == 0 {
		return KMAt{Horizon: h, Survival: nan, Incidence: nan, SE: nan, Lo: nan, Hi: nan, Reason: "no subjects"}
	}
	if h > c.maxTime {
		return KMAt{Horizon: h, Survival: nan, Incidence: nan, SE: nan, Lo: nan, Hi: nan,
			Reason: fmt.Sprintf("no one is followed up to %g (the last time is %g)", h, c.maxTime)}
	}
	// k: the first step after h; the step before it holds S(h).
	k := sort.Search(len(c.steps), func(i int) bool { return c.steps[i].time > h })
	out := KMAt{Horizon: h}
	s, v := 1.0, 0.0
	if k > 0 {
		st := c.steps[k-1]
		s, v, out.Events = st.surv, st.greenwood, st.cumEvents
	}
	// time >= h: from the first step at or after h on (there is one: h <= the last time)
	out.AtRisk = c.steps[sort.Search(len(c.steps), func(i int) bool { return c.steps[i].time >= h })].atRisk
	seLog := math.Sqrt(v)
	lo, hi := logBand(s, seLog)
	out.Survival, out.Incidence = Num(s), Num(1-s)
	out.SE = Num(s * seLog) // 0·Inf = NaN once S is 0, as R's summary
	out.Lo, out.Hi = Num(1-hi), Num(1-lo)
	return out
}

// summary reads the curve at the horizons, and keeps the steps when asked.
func (c kmCurve) summary(horizons []float64, curves bool) KMSummary {
	var out KMSummary
	for _, h := range horizons {
		out.At = append(out.At, c.at(h))
	}
	if curves {
		for _, st := range c.steps {
			seLog := math.Sqrt(st.greenwood)
			lo, hi := logBand(st.surv, seLog)
			out.Steps = append(out.Steps, KMStep{Time: st.time, AtRisk: st.atRisk, Events: st.events, Censored: st.cens,
				Survival: Num(st.surv), SELog: Num(seLog), Lo: Num(lo), Hi: Num(hi)})
		}
	}
	return out
}
