package eval

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Survival metrics: censoring-aware evaluation of a risk score against the time from the
// prediction to the event or to the end of follow-up. Every figure follows R's survival
// (survfit, concordance) and riskRegression::Score (2022.11.28) conventions, and the tests
// compare them with R to 1e-6 (testdata/survival_ref.R).
//
// Ties, as R:
//   - an event and a censoring at the same time: the event comes first. The censored subject
//     is still at risk at that time (in the Kaplan–Meier risk set, and as the longer time of
//     a concordance pair), and the subjects with the event are not at risk of censoring
//     there: the censoring distribution G falls by c/(n − d) (survfit, prodlim's reverse
//     Kaplan–Meier and survival's fastkm1 all agree);
//   - at a horizon t an event at t is a case and a censoring at t is neither case nor control
//     (controls: time > t), as Score;
//   - two events at the same time are not a comparable pair (R's tied.y);
//   - tied risk scores in a comparable pair count 1/2 in the concordance and in AUC(t);
//   - times are equal only when exactly equal (R's timefix merges times within about 1e-8
//     relative; medseq's times are whole seconds or days, where the two agree).

// ErrSurvivalInput marks input the survival metrics cannot use: no rows, a negative or
// non-finite time, a risk that is not a probability, a bad horizon or group count.
var ErrSurvivalInput = errors.New("survival input")

// SurvivalRow is one prediction: Time from the prediction to the event, or to the end of
// follow-up when the event was not observed (censored), in any unit (medseq uses days); Risk
// is the model's calibrated risk, a probability.
type SurvivalRow struct {
	Time  float64 `json:"time"`
	Event bool    `json:"event"`
	Risk  float64 `json:"risk"`
}

// SurvivalOptions says where to read the metrics.
type SurvivalOptions struct {
	// Horizons are the times (Time's unit) at which the Kaplan–Meier incidence, AUC(t),
	// Brier(t) and the calibration are read. The same calibrated risk serves as the risk at
	// every horizon (the model predicts one risk for its label window).
	Horizons []float64 `json:"horizons"`
	// Groups is the number of predicted-risk groups (quantile groups of Risk: 10 deciles, 3
	// tertiles); 0 means 10. Tied risks stay together, so there may be fewer.
	Groups int `json:"groups"`
	// Tau truncates Uno's C: only pairs whose earlier (event) time is at most Tau count. 0
	// means the largest horizon, or no truncation without horizons.
	Tau float64 `json:"tau"`
	// Curves keeps the whole Kaplan–Meier step curves (overall and per group), for plots.
	Curves bool `json:"curves"`
}

// DefaultSurvivalGroups is the number of predicted-risk groups when SurvivalOptions.Groups is 0.
const DefaultSurvivalGroups = 10

// SurvivalConfLevel is the level of every band and interval (R's default conf.int).
const SurvivalConfLevel = 0.95

// zSurvival is qnorm(0.975).
const zSurvival = 1.959963984540054

// SurvivalReport holds the censoring-aware metrics of one set of predictions.
type SurvivalReport struct {
	N         int       `json:"n"`
	Events    int       `json:"events"`
	Censored  int       `json:"censored"`
	MaxTime   float64   `json:"max_time"`
	Horizons  []float64 `json:"horizons"`
	ConfLevel float64   `json:"conf_level"`
	// Overall is the Kaplan–Meier cumulative incidence of everyone.
	Overall KMSummary `json:"overall"`
	// Groups are the predicted-risk groups, lowest risk first.
	Groups []RiskGroup `json:"groups"`
	// Harrell is Harrell's C (R: concordance, timewt = "n"), Uno Uno's C (timewt = "n/G2",
	// truncated at Tau).
	Harrell Concordance `json:"harrell_c"`
	Uno     Concordance `json:"uno_c"`
	// AtHorizon has AUC(t), Brier(t) and the calibration at each horizon.
	AtHorizon []HorizonMetrics `json:"at_horizon"`
	// Notes say what to keep in mind when reading the figures (few at risk, heavy censoring).
	Notes []string `json:"notes,omitempty"`
}

// Survival computes the censoring-aware metrics of rows: Kaplan–Meier incidence overall and
// per predicted-risk group, Harrell's and Uno's C, and at each horizon AUC(t), Brier(t) and
// the calibration. Bad input is an error wrapping ErrSurvivalInput; a figure the data cannot
// define (no events, no one followed up to a horizon) is NaN with a reason beside it.
func Survival(rows []SurvivalRow, opt SurvivalOptions) (*SurvivalReport, error) {
	if err := checkSurvivalInput(rows, opt); err != nil {
		return nil, err
	}
	if opt.Groups == 0 {
		opt.Groups = DefaultSurvivalGroups
	}
	// One canonical order: the sums, and so the figures to the last bit, do not depend on the
	// order of the rows.
	rows, perm := canonicalOrder(rows)
	r := &SurvivalReport{N: len(rows), Horizons: slices.Clone(opt.Horizons), ConfLevel: SurvivalConfLevel}
	for _, x := range rows {
		if x.Event {
			r.Events++
		}
		r.MaxTime = max(r.MaxTime, x.Time)
	}
	r.Censored = r.N - r.Events
	all := make([]int, len(rows))
	for i := range all {
		all[i] = i
	}
	overall := kaplanMeier(rows, all)
	r.Overall = overall.summary(opt.Horizons, opt.Curves)
	groups := riskGroups(rows, opt.Groups)
	for _, g := range groups {
		r.Groups = append(r.Groups, g.report(rows, opt))
		for k, i := range g.idx {
			g.idx[k] = perm[i] // back to the caller's row numbers
		}
	}
	r.Harrell = harrellC(rows)
	r.Uno = unoC(rows, unoTau(opt))
	cens := censoringKM(rows)
	for hi, h := range opt.Horizons {
		r.AtHorizon = append(r.AtHorizon, horizonMetrics(rows, hi, h, cens, overall, r.Groups))
	}
	r.Notes = survivalNotes(r)
	return r, nil
}

// checkSurvivalInput names the first row or option the metrics cannot use.
func checkSurvivalInput(rows []SurvivalRow, opt SurvivalOptions) error {
	if len(rows) == 0 {
		return fmt.Errorf("survival: no rows: %w", ErrSurvivalInput)
	}
	for i, x := range rows {
		switch {
		case math.IsNaN(x.Time) || math.IsInf(x.Time, 0):
			return fmt.Errorf("survival: row %d: time %v is not a finite number: %w", i+1, x.Time, ErrSurvivalInput)
		case x.Time < 0:
			return fmt.Errorf("survival: row %d: negative time %v (the event or censoring precedes the prediction): %w",
				i+1, x.Time, ErrSurvivalInput)
		}
		if err := CheckScore(x.Risk); err != nil {
			return fmt.Errorf("survival: row %d: risk: %v: %w", i+1, err, ErrSurvivalInput)
		}
	}
	for i, h := range opt.Horizons {
		if !(h > 0) || math.IsInf(h, 0) {
			return fmt.Errorf("survival: horizon %d is %v, want a positive finite time: %w", i+1, h, ErrSurvivalInput)
		}
	}
	if opt.Groups < 0 {
		return fmt.Errorf("survival: %d risk groups: %w", opt.Groups, ErrSurvivalInput)
	}
	if opt.Tau < 0 || math.IsNaN(opt.Tau) {
		return fmt.Errorf("survival: tau %v, want a positive time or 0 for the largest horizon: %w",
			opt.Tau, ErrSurvivalInput)
	}
	return nil
}

// canonicalOrder sorts a copy of rows by time, event, risk; perm[i] is the caller's index of
// sorted row i.
func canonicalOrder(rows []SurvivalRow) (sorted []SurvivalRow, perm []int) {
	perm = make([]int, len(rows))
	for i := range perm {
		perm[i] = i
	}
	slices.SortStableFunc(perm, func(a, b int) int {
		x, y := rows[a], rows[b]
		if c := cmp.Compare(x.Time, y.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(b2i(x.Event), b2i(y.Event)); c != 0 {
			return c
		}
		return cmp.Compare(x.Risk, y.Risk)
	})
	sorted = make([]SurvivalRow, len(rows))
	for i, p := range perm {
		sorted[i] = rows[p]
	}
	return sorted, perm
}

// unoTau is the truncation time of Uno's C: Tau, else the largest horizon, else none (+Inf).
func unoTau(opt SurvivalOptions) float64 {
	if opt.Tau > 0 {
		return opt.Tau
	}
	if len(opt.Horizons) > 0 {
		return slices.Max(opt.Horizons)
	}
	return math.Inf(1)
}

// minAtRisk is the number at risk at a horizon below which a note says the estimate is thin.
const minAtRisk = 10

// survivalNotes says where the figures stand on little data.
func survivalNotes(r *SurvivalReport) []string {
	var notes []string
	if r.Events == 0 {
		notes = append(notes, "no events: the incidence is 0 and the concordance and AUC(t) are undefined")
	}
	for _, k := range r.Overall.At {
		if k.Reason == "" && k.AtRisk < minAtRisk {
			notes = append(notes, fmt.Sprintf("only %d still followed up at horizon %g: the estimates there are imprecise",
				k.AtRisk, k.Horizon))
		}
	}
	if len(r.Groups) == 1 {
		notes = append(notes, "every risk is the same: one risk group, no discrimination to measure")
	}
	return notes
}
