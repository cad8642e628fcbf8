package eval

import (
	"fmt"
	"html/template"
	"strings"
)

// The HTML view of a report: what the template shows, every number formatted. It is made
// from the Report alone (its JSON fields), so a report read back from metrics.json renders
// the same page.
type (
	htmlFigure struct {
		Caption string
		SVG     template.HTML
	}
	htmlPair struct {
		A, B              string
		Error             string
		AUROCA, AUROCB    string
		Diff, CI, Z, P, N string
		Segments          []htmlPairSegment
		Simpson           []htmlSimpson
		Warnings          []string
	}
	htmlPairSegment struct {
		Column, Value                 string
		N, Pos, Neg                   int
		AUROCA, AUROCB, Diff, P, Note string
		Reversed                      bool
	}
	htmlSimpson struct {
		Column                     string
		Evaluable, Agree, Disagree int
		Paradox                    bool
		Reversed                   string
	}
	htmlSegment struct {
		Column, Value                   string
		N, Subjects, Pos, Neg           int
		AUROC, AUPRC, Sens, Spec, Brier string
		Note                            string
	}
	htmlModel struct {
		Name, Kind, Dir, RunID, Created string
		Inputs, TrainedOn               string
		Color                           string
		Threshold                       string
		Alternatives                    []htmlAlt
		CalMethod                       string
		ECE, ECEQ, Slope, Intercept     string
		ECECal, ECEQCal, SlopeCal, ICal string
		Segments                        []htmlSegment
		ScoreHist                       *htmlFigure
		Training                        *htmlFigure
		TrainingNote                    string
		TopFeatures                     []htmlFeature
		Warnings                        []string
		Deployed                        *htmlDeployed
		Bins                            []htmlBinTable
		SegCal                          []htmlSegCal
	}
	htmlAlt struct {
		Rule, Threshold, ChosenOn string
		Sens, Spec, PPV, F1       string
	}
	htmlFeature struct {
		Rank                       int
		Feature, Description, Gain string
		Share                      string
	}
	htmlCohort struct {
		Dir       string
		AgeKS     string
		Pos, Neg  htmlClass
		Warnings  []string
		AgeFigure *htmlFigure
	}
	htmlClass struct {
		N                                int
		Mean, Min, P25, Median, P75, Max string
	}
	htmlView struct {
		R            *Report
		Task         *htmlTask
		Models       []htmlModel
		HeadModels   []string
		Headline     []HeadlineRow
		Oracle       string
		OracleNote   string
		ThresholdDoc string
		Pairs        []htmlPair
		Discrim      []htmlFigure
		Reliability  []htmlFigure
		MinBinRows   int
		Decision     *htmlDecision
		Survival     *htmlSurvival
		Censoring    *htmlCensoring
		Ages         *htmlFigure
		Cohort       *htmlCohort
		Warnings     []string
	}
)

func figure(caption string, svg string, err error) (*htmlFigure, error) {
	if err != nil {
		return nil, fmt.Errorf("plot %q: %w", caption, err)
	}
	return &htmlFigure{Caption: caption, SVG: template.HTML(svg)}, nil // our own SVG, text escaped by svgo
}

func hexColor(c interface{ RGBA() (r, g, b, a uint32) }) string {
	r, g, b, _ := c.RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

func (r *Report) view() (*htmlView, error) {
	v := &htmlView{R: r, MinBinRows: MinBinRows, Task: taskView(r.Task, r.Split)}
	v.HeadModels, v.Headline = r.Headline()
	if r.Oracle != nil {
		v.Oracle, v.OracleNote = fmtNum(r.Oracle.AUROC, 3), r.Oracle.Note
	}
	v.ThresholdDoc = fmt.Sprintf("each model's deployed operating point, the calibrated probability its manifest "+
		"records and medseq predict and serve decide at, applied unchanged to %s and to every segment", r.Split)
	for i, m := range r.Models {
		hm, err := modelView(r, i, m)
		if err != nil {
			return nil, err
		}
		v.Models = append(v.Models, *hm)
	}
	for _, p := range r.Pairs {
		v.Pairs = append(v.Pairs, pairView(p))
	}
	if err := v.figures(r); err != nil {
		return nil, err
	}
	if err := v.cohort(r); err != nil {
		return nil, err
	}
	v.Warnings = r.allWarnings()
	return v, nil
}

// modelView is one model's tables and its own figures.
func modelView(r *Report, i int, m *ModelReport) (*htmlModel, error) {
	hm := &htmlModel{Name: m.Name, Kind: m.Kind, Dir: m.Dir, RunID: m.RunID, Created: m.Created, Inputs: m.Inputs,
		TrainedOn: m.TrainedOn, Color: hexColor(modelColor(i)), Threshold: ThresholdText(m.Metrics.Threshold),
		Warnings: m.Warnings, Deployed: deployedView(m), SegCal: segCalView(m.SegmentCalibration)}
	for _, a := range m.Alternatives {
		hm.Alternatives = append(hm.Alternatives, htmlAlt{Rule: a.Rule, Threshold: fmt.Sprintf("%.4f", a.Threshold),
			ChosenOn: a.ChosenOn, Sens: fmtNum(a.Sensitivity, 3), Spec: fmtNum(a.Specificity, 3), PPV: fmtNum(a.PPV, 3),
			F1: fmtNum(a.F1, 3)})
	}
	cs := m.Metrics.Calibration
	hm.ECE, hm.ECEQ = fmtNum(cs.ECE, 4), fmtNum(cs.ECEQuantile, 4)
	hm.Slope, hm.Intercept = fmtNum(cs.Slope, 3), fmtNum(cs.Intercept, 3)
	hm.CalMethod, hm.ECECal, hm.ECEQCal, hm.SlopeCal, hm.ICal = Dash, Dash, Dash, Dash, Dash
	hm.Bins = append(hm.Bins, binTable("raw scores", cs.Uniform))
	if c := m.Calibrated; c != nil {
		cc := c.Calibration
		hm.CalMethod = c.Method
		hm.ECECal, hm.ECEQCal = fmtNum(cc.ECE, 4), fmtNum(cc.ECEQuantile, 4)
		hm.SlopeCal, hm.ICal = fmtNum(cc.Slope, 3), fmtNum(cc.Intercept, 3)
		hm.Bins = append(hm.Bins, binTable("calibrated ("+c.Method+")", cc.Uniform))
	}
	hm.Segments = segmentView(m.Segments)
	var err error
	svg, perr := plotClassHist("Scores per class: "+m.Name, "raw score ("+r.Split+")", &m.Scores, false)
	if hm.ScoreHist, err = figure("Score distribution per class, "+m.Name, svg, perr); err != nil {
		return nil, err
	}
	switch {
	case m.Training == nil:
		hm.TrainingNote = "no training log (metrics.jsonl)"
	case len(m.Training.Train) == 0 && len(m.Training.Val) == 0:
		hm.TrainingNote = "the training log holds no finite losses"
	default:
		svg, perr := plotTraining(m)
		if hm.Training, err = figure("Training and validation loss, "+m.Name, svg, perr); err != nil {
			return nil, err
		}
	}
	hm.TopFeatures = featureView(m.TopFeatures)
	return hm, nil
}

func segmentView(segs []Segment) []htmlSegment {
	var out []htmlSegment
	for _, s := range segs {
		hs := htmlSegment{Column: s.Column, Value: s.Value, N: s.N, Subjects: s.Subjects, Pos: s.Positives,
			Neg: s.Negatives, Note: s.Note}
		if s.Metrics != nil {
			ms := s.Metrics.Sample
			hs.AUROC, hs.AUPRC = fmtEst(ms.AUROC, 3), fmtEst(ms.AUPRC, 3)
			hs.Sens, hs.Spec, hs.Brier = fmtEst(ms.Recall, 3), fmtEst(ms.Specificity, 3), fmtNum(ms.Brier.Value, 4)
		}
		out = append(out, hs)
	}
	return out
}

func featureView(top []TopFeature) []htmlFeature {
	var total float64
	for _, f := range top {
		total += f.Gain
	}
	var out []htmlFeature
	for k, f := range top {
		hf := htmlFeature{Rank: k + 1, Feature: f.Feature, Description: f.Description, Gain: fmt.Sprintf("%.4g", f.Gain),
			Share: Dash}
		if total > 0 {
			hf.Share = fmt.Sprintf("%.1f%%", 100*f.Gain/total)
		}
		out = append(out, hf)
	}
	return out
}

func pairView(p PairComparison) htmlPair {
	hp := htmlPair{A: p.A, B: p.B, Error: p.Error}
	c := p.Comparison
	if c == nil {
		return hp
	}
	a := c.Aggregate
	hp.AUROCA, hp.AUROCB, hp.Diff = fmtNum(a.AUROC.A, 3), fmtNum(a.AUROC.B, 3), fmtNum(a.Diff, 4)
	hp.Z, hp.P, hp.N = fmtNum(a.Z, 2), fmtP(a.P), fmt.Sprint(a.N)
	hp.CI = fmt.Sprintf("%s – %s", fmtNum(a.Diff-z95*a.SE, 4), fmtNum(a.Diff+z95*a.SE, 4))
	for _, s := range c.Segments {
		hs := htmlPairSegment{Column: s.Column, Value: s.Value, N: s.N, Pos: s.Positives, Neg: s.Negatives,
			Reversed: s.Reversed, AUROCA: Dash, AUROCB: Dash, Diff: Dash, P: Dash}
		if s.DeLong != nil {
			d := s.DeLong
			hs.AUROCA, hs.AUROCB = fmtNum(d.AUROC.A, 3), fmtNum(d.AUROC.B, 3)
			hs.Diff, hs.P = fmtNum(d.Diff, 4), fmtP(d.P)
		} else if s.Small {
			hs.Note = "too few positives or negatives to compare"
		}
		hp.Segments = append(hp.Segments, hs)
	}
	for _, s := range c.Simpson {
		hp.Simpson = append(hp.Simpson, htmlSimpson{Column: s.Column, Evaluable: s.Evaluable, Agree: s.Agree,
			Disagree: s.Disagree, Paradox: s.AggregateDisagrees, Reversed: strings.Join(s.Reversed, ", ")})
	}
	hp.Warnings = c.Warnings
	return hp
}

// figures draws the report-wide figures: discrimination, reliability, decision curves, ages.
func (v *htmlView) figures(r *Report) error {
	for _, f := range []struct {
		caption string
		fn      func(*Report) (string, error)
	}{{"ROC curves", plotROC}, {"Precision–recall curves", plotPR}} {
		svg, err := f.fn(r)
		fig, err := figure(f.caption, svg, err)
		if err != nil {
			return err
		}
		v.Discrim = append(v.Discrim, *fig)
	}
	for _, after := range []bool{false, true} {
		svg, err := plotReliability(r, after)
		caption := "Reliability before calibration"
		if after {
			caption = "Reliability after calibration"
		}
		fig, err := figure(caption, svg, err)
		if err != nil {
			return err
		}
		v.Reliability = append(v.Reliability, *fig)
	}
	var err error
	if v.Decision, err = decisionView(r); err != nil {
		return err
	}
	if v.Survival, err = survivalView(r); err != nil {
		return err
	}
	if v.Censoring, err = censoringView(r.Censoring); err != nil {
		return err
	}
	if r.Ages != nil {
		svg, perr := plotClassHist("Age at prediction per class ("+r.Split+")", "age (years)", r.Ages, true)
		if v.Ages, err = figure("Age at prediction per class, "+r.Split, svg, perr); err != nil {
			return err
		}
	}
	return nil
}

// cohort is the cohort checks' view (a report with --cohort).
func (v *htmlView) cohort(r *Report) error {
	if r.Cohort == nil || r.Cohort.Check == nil {
		return nil
	}
	c := r.Cohort.Check
	cls := func(s ClassStats) htmlClass {
		f := func(x float64) string { return fmt.Sprintf("%.1f", x) }
		return htmlClass{N: s.N, Mean: f(s.Age.Mean), Min: f(s.Age.Min), P25: f(s.Age.P25), Median: f(s.Age.Median),
			P75: f(s.Age.P75), Max: f(s.Age.Max)}
	}
	hc := &htmlCohort{Dir: r.Cohort.Dir, AgeKS: fmtNum(c.AgeKS, 3), Pos: cls(c.Positive), Neg: cls(c.Negative),
		Warnings: c.Warnings}
	svg, perr := plotClassHist("Age at prediction per class (whole cohort)", "age (years)", cohortAgeHist(c), true)
	var err error
	if hc.AgeFigure, err = figure("Age at prediction per class, whole cohort", svg, perr); err != nil {
		return err
	}
	v.Cohort = hc
	return nil
}

// allWarnings gathers the report's, the models', the comparisons' and the cohort's warnings.
func (r *Report) allWarnings() []string {
	out := append([]string(nil), r.Warnings...)
	for _, m := range r.Models {
		for _, w := range m.Warnings {
			out = append(out, m.Name+": "+w)
		}
	}
	for _, p := range r.Pairs {
		if p.Comparison != nil {
			for _, w := range p.Comparison.Warnings {
				out = append(out, p.A+" vs "+p.B+": "+w)
			}
		}
	}
	if r.Cohort != nil && r.Cohort.Check != nil {
		for _, w := range r.Cohort.Check.Warnings {
			out = append(out, "cohort: "+w)
		}
	}
	return out
}
