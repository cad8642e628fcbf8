package eval

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// The views of the survival panel and the censoring-sensitivity table.
type (
	htmlSurvival struct {
		Note     string
		Horizons string
		Unit     string
		Models   []htmlSurvModel
	}
	htmlSurvModel struct {
		Name, Color, Note        string
		N, Events, Censored      int
		Groups                   int
		MaxYears, Harrell, Uno   string
		UnoTau                   string
		Figure                   *htmlFigure
		Horizons                 []htmlHorizon
		Notes                    []string
		HarrellNote, UnoNoteText string
	}
	htmlHorizon struct {
		Horizon                                string
		AtRisk, Cases, Controls, CensoredEarly int
		Incidence, MeanRisk, OE                string
		AUC, Brier, IPA, Reason                string
		Groups                                 []htmlGroupCal
	}
	htmlGroupCal struct {
		Group                      int
		Range, Predicted, Observed string
		N, AtRisk                  int
	}
	htmlCensoring struct {
		File, Model, Cohort, CohortFollowUp, Split, Calibration string
		Rebuilt                                                 bool
		Rows                                                    []htmlCensRow
		Figures                                                 []htmlFigure
		Warnings                                                []string
	}
	htmlCensRow struct {
		FollowUp, Policy, Censored, CensoredBy  string
		Labels, Pos, Neg, Dropped               int
		AUROC, DAUROC, Prev, DPrev, MeanP, CITL string
		Slope, ECE                              string
		Matches                                 bool
	}
)

// fmtC is a concordance with its interval, or Dash with the reason.
func fmtC(c Concordance) string {
	if c.Reason != "" || math.IsNaN(float64(c.C)) {
		return Dash
	}
	return fmtEst(Estimate{Value: c.C, Lo: c.Lo, Hi: c.Hi}, 3)
}

// fmtBand is a value with its band, or Dash with the reason when it is undefined.
func fmtBand(v, lo, hi Num, reason string) string {
	if reason != "" {
		return Dash + " (" + reason + ")"
	}
	return fmtEst(Estimate{Value: v, Lo: lo, Hi: hi}, 3)
}

// survivalView is the survival panel; nil when the report has none.
func survivalView(r *Report) (*htmlSurvival, error) {
	p := r.Survival
	if p == nil {
		return nil, nil
	}
	h := &htmlSurvival{Note: p.Note, Horizons: strings.Join(p.Horizons, ", "), Unit: p.Unit}
	if p.Note != "" {
		return h, nil
	}
	for i, m := range r.Models {
		hm := htmlSurvModel{Name: m.Name, Color: hexColor(modelColor(i)), Note: m.SurvivalNote}
		if sr := m.Survival; sr != nil {
			if err := hm.fill(sr, p, m.Name); err != nil {
				return nil, err
			}
		}
		h.Models = append(h.Models, hm)
	}
	return h, nil
}

// fill sets a model's survival view from its report.
func (hm *htmlSurvModel) fill(sr *SurvivalReport, p *SurvivalPanel, name string) error {
	hm.N, hm.Events, hm.Censored, hm.Groups = sr.N, sr.Events, sr.Censored, len(sr.Groups)
	hm.MaxYears = fmt.Sprintf("%.1f", sr.MaxTime/daysPerYear)
	hm.Harrell, hm.Uno, hm.Notes = fmtC(sr.Harrell), fmtC(sr.Uno), sr.Notes
	hm.HarrellNote, hm.UnoNoteText = sr.Harrell.Reason, sr.Uno.Reason
	if t := float64(sr.Uno.Tau); !math.IsNaN(t) && !math.IsInf(t, 0) {
		hm.UnoTau = fmt.Sprintf("%.1f years", t/daysPerYear)
	}
	for i, hz := range sr.AtHorizon {
		km := sr.Overall.At[i]
		hh := htmlHorizon{Horizon: p.Horizons[i], AtRisk: km.AtRisk, Cases: hz.Cases, Controls: hz.Controls,
			CensoredEarly: hz.CensoredBefore, Incidence: fmtBand(km.Incidence, km.Lo, km.Hi, km.Reason),
			MeanRisk: fmtNum(hz.MeanRisk, 3), OE: fmtNum(hz.ObservedExpected, 2), AUC: fmtNum(hz.AUC, 3),
			Brier: fmtNum(hz.Brier, 4), IPA: fmtNum(hz.IPA, 3)}
		hh.Reason = strings.Join(nonEmpty(hz.AUCReason, hz.BrierReason), "; ")
		for _, g := range hz.Calibration {
			hg := htmlGroupCal{Group: g.Group, N: g.N, AtRisk: g.AtRisk, Predicted: fmtNum(g.Predicted, 3),
				Observed: fmtBand(g.Observed, g.ObservedLo, g.ObservedHi, g.Reason)}
			if g.Group >= 1 && g.Group <= len(sr.Groups) {
				rg := sr.Groups[g.Group-1]
				hg.Range = fmt.Sprintf("%.3f–%.3f", rg.RiskLo, rg.RiskHi)
			}
			hh.Groups = append(hh.Groups, hg)
		}
		hm.Horizons = append(hm.Horizons, hh)
	}
	days := make([]float64, len(sr.Horizons))
	copy(days, sr.Horizons)
	svg, err := plotSurvival(name, sr, days, p.Horizons)
	hm.Figure, err = figure("Cumulative incidence by predicted-risk group, "+name, svg, err)
	return err
}

func nonEmpty(s ...string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

// daysPerYear converts the survival figures' days to years for display.
const daysPerYear = 365.25

// censoringView is the censoring-sensitivity table and plots; nil without a result.
func censoringView(c *CensoringSensitivity) (*htmlCensoring, error) {
	if c == nil {
		return nil, nil
	}
	h := &htmlCensoring{File: c.File, Model: c.Model, Cohort: c.Cohort, CohortFollowUp: c.CohortFollowUp,
		Split: c.Split, Calibration: c.Calibration, Rebuilt: c.Rebuilt, Warnings: c.Warnings}
	for _, v := range c.Variants {
		m := v.Metrics
		total, by := censoredText(v)
		row := htmlCensRow{FollowUp: v.FollowUp, Policy: v.Policy, Censored: total, CensoredBy: by, Labels: m.Labels,
			Pos: m.Positives, Neg: m.Negatives, Dropped: v.Dropped, Prev: fmtNum(m.Prevalence, 3),
			AUROC: fmtEst(Estimate{Value: m.AUROC, Lo: m.AUROCLow, Hi: m.AUROCHigh}, 3),
			MeanP: fmtNum(m.MeanPredicted, 3),
			CITL:  fmtNum(m.CalibrationInTheLarge, 3), Slope: fmtNum(m.Slope, 2), ECE: fmtNum(m.ECE, 3),
			Matches: v.MatchesCohort, DAUROC: Dash, DPrev: Dash}
		if d := v.Delta; d != nil {
			row.DAUROC, row.DPrev = signedNum(d.AUROC, 3), signedNum(d.Prevalence, 3)
		}
		h.Rows = append(h.Rows, row)
	}
	for _, metric := range []string{"AUROC", "prevalence"} {
		svg, err := plotCensoring(c, metric)
		fig, err := figure(metric+" by follow-up required of negatives", svg, err)
		if err != nil {
			return nil, err
		}
		h.Figures = append(h.Figures, *fig)
	}
	return h, nil
}

// censoredText is the number of censored negatives and their reasons ("death 12 · end of
// record 15").
func censoredText(v CensoringRow) (total, by string) {
	n := 0
	reasons := make([]string, 0, len(v.Censored))
	for r, k := range v.Censored {
		n += k
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	var parts []string
	for _, r := range reasons {
		if v.Censored[r] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", strings.ReplaceAll(r, "_", " "), v.Censored[r]))
		}
	}
	return fmt.Sprint(n), strings.Join(parts, " · ")
}

// signedNum is n with its sign (+0.012, −0.004).
func signedNum(n Num, d int) string {
	s := fmtNum(n, d)
	if f := float64(n); f > 0 || (f == 0 && !math.Signbit(f)) {
		if s != Dash {
			return "+" + s
		}
	}
	return s
}
