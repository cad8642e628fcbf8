package eval

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/medseq/medseq/data"
)

// The views of the report's clinical sections: the task, the deployed operating point, the
// decision curves and the calibration tables.
type (
	htmlKV   struct{ Key, Value string }
	htmlTask struct {
		What                      string
		Cohort, CohortFrom, RunID string
		Rules                     []htmlKV
		Flow                      []FlowStep
		FlowNote                  string
		Splits                    []htmlSplit
		Evaluated                 SplitSpan
		Notes                     []string
	}
	htmlSplit struct {
		SplitSpan
		Evaluated bool
	}
	htmlDeployed struct {
		Threshold, Rule, Prevalence         string
		Sens, Spec, PPV, NPV, NNE, Flagged  string
		Per1000, NetBenefit, TreatAll, Note string
		AtSens                              []htmlAtSens
		AtPrev                              []htmlAtPrev
	}
	htmlAtSens struct {
		Target, Threshold, Sens, Spec, PPV, NNE, Flagged string
	}
	htmlAtPrev   struct{ Prevalence, PPV, NPV, NNE string }
	htmlDecision struct {
		Figure     *htmlFigure
		Range      string
		Thresholds []string
		Rows       []htmlDecisionRow
		TreatAll   []string
	}
	htmlDecisionRow struct {
		Name, Color, Useful string
		Cells               []string
	}
	htmlBinTable struct {
		Title string
		Small int
		Rows  []htmlBin
	}
	htmlBin struct {
		Range, Pred, Obs, CI string
		N, Pos               int
		Small                bool
	}
	htmlSegCal struct {
		Column, Value, Pred, Obs, CI, OE, ECE, Slope string
		N, Pos                                       int
		Small                                        bool
	}
)

// fmtPct is a probability as a percentage with at most one decimal (5%, 0.5%, 12.5%).
func fmtPct(p float64) string {
	if math.IsNaN(p) {
		return Dash
	}
	return strconv.FormatFloat(math.Round(p*1000)/10, 'f', -1, 64) + "%"
}

// taskView is the task section; nil without a task.
func taskView(t *TaskSummary, split string) *htmlTask {
	if t == nil {
		return nil
	}
	h := &htmlTask{What: t.TaskText(), Cohort: t.Cohort, CohortFrom: t.CohortFrom, RunID: t.CohortRunID, Flow: t.Flow,
		FlowNote: t.FlowNote, Evaluated: t.Evaluated, Notes: t.Notes}
	add := func(k, v string) {
		if v != "" {
			h.Rules = append(h.Rules, htmlKV{k, v})
		}
	}
	if t.Lead != "" {
		add("lead time", t.Lead+" between the prediction and the first target code (positives)")
	}
	if t.Gap != "" {
		gap := t.Gap + " of records before each prediction time hidden from the model"
		if t.Gap == "0" {
			gap = "none: the model sees every record up to the prediction time"
		}
		add("gap", gap)
	}
	add("follow-up required of negatives", t.FollowUp)
	add("minimum history before prediction", t.MinHistory)
	add("minimum age at prediction", t.MinAge)
	if t.MinEvents > 0 {
		add("minimum visible events", strconv.Itoa(t.MinEvents))
	}
	add("negative sampling", negativesText(t))
	add("time to event", censoringText(t))
	add("split assignment", t.SplitSource)
	for _, s := range t.Splits {
		h.Splits = append(h.Splits, htmlSplit{SplitSpan: s, Evaluated: s.Split == split})
	}
	return h
}

func negativesText(t *TaskSummary) string {
	switch t.Negatives {
	case "":
		if t.Source == data.SamplingLabels {
			return "none: the label files give both classes"
		}
		return ""
	case data.NegativesMatchedAge:
		return fmt.Sprintf("matched-age: %g negatives per positive, drawn from subjects never diagnosed, "+
			"born in the same band and of the positive's age at prediction", t.NegativesPerPositive)
	case data.NegativesRandomDate:
		return "random-date: each never-diagnosed subject at a random positive's prediction date (ages not matched)"
	}
	return t.Negatives
}

func censoringText(t *TaskSummary) string {
	if t.DatasetEnd == "" {
		return ""
	}
	s := "from prediction to the first target code, else censored at death, the end of the record or the dataset's end (" +
		t.DatasetEnd + ")"
	if t.CensorWindow != "" {
		s += "; records ending within " + t.CensorWindow + " of it count as the dataset's end"
	}
	return s
}

// deployedView is a model's deployed operating point as a clinical team reads it.
func deployedView(m *ModelReport) *htmlDeployed {
	o := m.Operating
	if o == nil {
		return nil
	}
	s := m.Metrics.Sample
	c := s.Confusion
	n := c.TP + c.FP + c.TN + c.FN
	d := &htmlDeployed{Threshold: fmt.Sprintf("%.4f", o.Threshold), Rule: ThresholdText(m.Metrics.Threshold),
		Prevalence: fmtNum(s.Prevalence.Value, 3), Sens: fmtEst(s.Recall, 3), Spec: fmtEst(s.Specificity, 3),
		PPV: fmtEst(s.Precision, 3), NPV: fmtEst(s.NPV, 3), NNE: fmtEst(o.NNE, 1), Flagged: fmtNum(o.Flagged, 3),
		Per1000: fmtNum(1000*o.Flagged, 0), Note: o.Note,
		NetBenefit: fmtNum(Num(NetBenefit(c.TP, c.FP, n, o.Threshold)), 4),
		TreatAll:   fmtNum(Num(TreatAllNetBenefit(float64(s.Prevalence.Value), o.Threshold)), 4)}
	for _, a := range o.AtSensitivity {
		d.AtSens = append(d.AtSens, htmlAtSens{Target: fmtPct(a.Target), Threshold: fmt.Sprintf("%.4f", a.Threshold),
			Sens: fmtEst(a.Sensitivity, 3), Spec: fmtEst(a.Specificity, 3), PPV: fmtEst(a.PPV, 3),
			NNE: fmtEst(a.NNE, 1), Flagged: fmtEst(a.Flagged, 3)})
	}
	for _, p := range o.AtPrevalence {
		d.AtPrev = append(d.AtPrev, htmlAtPrev{Prevalence: fmtPct(p.Prevalence), PPV: fmtNum(p.PPV, 3),
			NPV: fmtNum(p.NPV, 3), NNE: fmtNum(p.NNE, 1)})
	}
	return d
}

// decisionColumns are the fractions of the threshold range shown in the decision table.
var decisionColumns = []float64{0.1, 0.2, 0.4, 0.6, 1}

// decisionView is the decision-curve figure and table; nil when no model has a curve.
func decisionView(r *Report) (*htmlDecision, error) {
	var first *DecisionCurve
	for _, m := range r.Models {
		if m.Decision != nil && len(m.Decision.Points) > 0 {
			first = m.Decision
			break
		}
	}
	if first == nil {
		return nil, nil
	}
	svg, err := plotDecision(r)
	fig, err := figure("Decision curves", svg, err)
	if err != nil {
		return nil, err
	}
	pts := first.Points
	h := &htmlDecision{Figure: fig, Range: fmtPct(pts[0].Threshold) + "–" + fmtPct(pts[len(pts)-1].Threshold)}
	var cols []float64
	for _, f := range decisionColumns {
		t := pts[max(0, int(math.Round(f*float64(len(pts))))-1)].Threshold
		cols = append(cols, t)
		h.Thresholds = append(h.Thresholds, fmtPct(t))
		h.TreatAll = append(h.TreatAll, fmtNum(Num(TreatAllNetBenefit(first.Prevalence, t)), 4))
	}
	for i, m := range r.Models {
		row := htmlDecisionRow{Name: m.Name, Color: hexColor(modelColor(i)), Useful: usefulText(m.Decision)}
		for _, t := range cols {
			row.Cells = append(row.Cells, decisionAt(m.Decision, t))
		}
		h.Rows = append(h.Rows, row)
	}
	return h, nil
}

// decisionAt is the net benefit of dc at threshold t, or Dash when t is not on its grid.
func decisionAt(dc *DecisionCurve, t float64) string {
	if dc == nil {
		return Dash
	}
	for _, p := range dc.Points {
		if p.Threshold == t {
			return fmtNum(p.NetBenefit, 4)
		}
	}
	return Dash
}

// usefulText says at which thresholds a model beats treating everyone and no one.
func usefulText(dc *DecisionCurve) string {
	if dc == nil || len(dc.Points) == 0 {
		return Dash
	}
	if len(dc.Useful) == 0 {
		return "no threshold of the range"
	}
	var parts []string
	for _, u := range dc.Useful {
		if u.Lo == u.Hi {
			parts = append(parts, fmtPct(u.Lo))
		} else {
			parts = append(parts, fmtPct(u.Lo)+"–"+fmtPct(u.Hi))
		}
	}
	return strings.Join(parts, ", ")
}

// binTable lists a reliability curve's bins with their counts and Wilson 95% intervals.
func binTable(title string, bins []Bin) htmlBinTable {
	t := htmlBinTable{Title: title}
	for _, b := range bins {
		n := float64(b.Count)
		k := math.Round(b.ObservedRate * n)
		lo, hi := Wilson(k, n, z95)
		hb := htmlBin{Range: fmt.Sprintf("%.2f–%.2f", b.Lo, b.Hi), N: b.Count, Pos: int(k),
			Pred: fmt.Sprintf("%.3f", b.MeanPredicted), Obs: fmt.Sprintf("%.3f", b.ObservedRate),
			CI: fmt.Sprintf("%.3f–%.3f", lo, hi), Small: b.Count < MinBinRows}
		if hb.Small {
			t.Small++
		}
		t.Rows = append(t.Rows, hb)
	}
	return t
}

func segCalView(segs []SegmentCalibration) []htmlSegCal {
	var out []htmlSegCal
	for _, s := range segs {
		out = append(out, htmlSegCal{Column: s.Column, Value: s.Value, N: s.N, Pos: s.Positives,
			Pred: fmtNum(s.MeanPredicted, 3), Obs: fmtNum(s.Observed, 3),
			CI: fmtNum(s.ObservedLo, 3) + "–" + fmtNum(s.ObservedHi, 3), OE: fmtNum(s.OE, 2),
			ECE: fmtNum(s.ECE, 3), Slope: fmtNum(s.Slope, 2), Small: s.Small})
	}
	return out
}
