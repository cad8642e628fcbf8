package eval

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/medseq/medseq/data"
)

var reportTemplate = template.Must(template.New("report").Parse(reportTemplateText))

// Dash is how an undefined number (NaN) is shown.
const Dash = "—"

// fmtNum formats n with d decimals; NaN is Dash and infinities ∞ and −∞.
func fmtNum(n Num, d int) string {
	f := float64(n)
	switch {
	case math.IsNaN(f):
		return Dash
	case math.IsInf(f, 1):
		return "∞"
	case math.IsInf(f, -1):
		return "−∞"
	}
	s := fmt.Sprintf("%.*f", d, f)
	if strings.HasPrefix(s, "-") && strings.Trim(s, "-0.") == "" {
		s = s[1:] // no "−0.000"
	}
	return strings.Replace(s, "-", "−", 1)
}

// fmtEst is "value (lo–hi)", or the value alone without an interval.
func fmtEst(e Estimate, d int) string {
	v := fmtNum(e.Value, d)
	if math.IsNaN(float64(e.Lo)) && math.IsNaN(float64(e.Hi)) {
		return v
	}
	return fmt.Sprintf("%s (%s–%s)", v, fmtNum(e.Lo, d), fmtNum(e.Hi, d))
}

// fmtP formats a p-value.
func fmtP(p Num) string {
	f := float64(p)
	switch {
	case math.IsNaN(f):
		return Dash
	case f < 0.001:
		return "<0.001"
	}
	return fmt.Sprintf("%.3f", f)
}

// ThresholdText says which threshold m used and where it was chosen.
func ThresholdText(t ChosenThreshold) string {
	var how string
	switch t.Method {
	case ThresholdFixed:
		how = "fixed"
	case ThresholdMaxF1:
		how = "max F1"
	case ThresholdYouden:
		how = "Youden's J"
	case ThresholdSensitivity:
		how = fmt.Sprintf("sensitivity ≥ %g", t.Target)
	case ThresholdSpecificity:
		how = fmt.Sprintf("specificity ≥ %g", t.Target)
	case ThresholdDeployed:
		on := t.ChosenOn
		if on == "tuning" {
			on = fmt.Sprintf("the tuning split, %d rows", t.TuningN)
		}
		return fmt.Sprintf("%.4f calibrated, deployed (%s on %s; raw score ≥ %.4f here)", t.Value, t.Rule, on, t.Raw)
	default:
		how = t.Method
	}
	switch t.ChosenOn {
	case "tuning":
		return fmt.Sprintf("%.4f (%s on the tuning split, %d rows)", t.Value, how, t.TuningN)
	case "evaluation":
		return fmt.Sprintf("%.4f (%s on the evaluated split itself: optimistic)", t.Value, how)
	}
	return fmt.Sprintf("%.4f (%s)", t.Value, how)
}

// HeadlineRow is one row of the headline table: a metric across the models.
type HeadlineRow struct {
	Metric string
	Cells  []string
	Oracle string
}

// Headline is the side-by-side table of the models' main numbers (sample-weighted, on the
// evaluated split).
func (r *Report) Headline() (models []string, rows []HeadlineRow) {
	for _, m := range r.Models {
		models = append(models, m.Name)
	}
	row := func(name string, f func(m *ModelReport) string) {
		hr := HeadlineRow{Metric: name}
		for _, m := range r.Models {
			hr.Cells = append(hr.Cells, f(m))
		}
		rows = append(rows, hr)
	}
	cal := func(f func(c *CalibratedResult) string) func(m *ModelReport) string {
		return func(m *ModelReport) string {
			if m.Calibrated == nil {
				return Dash
			}
			return f(m.Calibrated)
		}
	}
	row("rows (positives / negatives)", func(m *ModelReport) string {
		return fmt.Sprintf("%d (%d / %d)", m.Metrics.N, m.Metrics.Positives, m.Metrics.Negatives)
	})
	row("prevalence", func(m *ModelReport) string { return fmtNum(m.Metrics.Sample.Prevalence.Value, 3) })
	row("AUROC (95% CI)", func(m *ModelReport) string { return fmtEst(m.Metrics.Sample.AUROC, 3) })
	if r.Oracle != nil {
		rows[len(rows)-1].Oracle = fmtNum(r.Oracle.AUROC, 3)
	}
	row("AUPRC (95% CI)", func(m *ModelReport) string { return fmtEst(m.Metrics.Sample.AUPRC, 3) })
	row("log loss, raw", func(m *ModelReport) string { return fmtNum(m.Metrics.Sample.LogLoss.Value, 4) })
	row("log loss, calibrated", cal(func(c *CalibratedResult) string { return fmtNum(c.LogLoss, 4) }))
	row("Brier, raw", func(m *ModelReport) string { return fmtNum(m.Metrics.Sample.Brier.Value, 4) })
	row("Brier, calibrated", cal(func(c *CalibratedResult) string { return fmtNum(c.Brier, 4) }))
	row("ECE, raw", func(m *ModelReport) string { return fmtNum(m.Metrics.Calibration.ECE, 4) })
	row("ECE, calibrated", cal(func(c *CalibratedResult) string {
		return fmtNum(c.Calibration.ECE, 4) + " (" + c.Method + ")"
	}))
	row("threshold", func(m *ModelReport) string { return ThresholdText(m.Metrics.Threshold) })
	row("sensitivity", func(m *ModelReport) string { return fmtEst(m.Metrics.Sample.Recall, 3) })
	row("specificity", func(m *ModelReport) string { return fmtEst(m.Metrics.Sample.Specificity, 3) })
	row("PPV (precision)", func(m *ModelReport) string { return fmtEst(m.Metrics.Sample.Precision, 3) })
	row("NPV", func(m *ModelReport) string { return fmtEst(m.Metrics.Sample.NPV, 3) })
	row("F1", func(m *ModelReport) string { return fmtEst(m.Metrics.Sample.F1, 3) })
	row("LR+", func(m *ModelReport) string { return fmtEst(m.Metrics.Sample.LRPlus, 2) })
	row("LR−", func(m *ModelReport) string { return fmtEst(m.Metrics.Sample.LRMinus, 2) })
	row("TP / FP / TN / FN", func(m *ModelReport) string {
		c := m.Metrics.Sample.Confusion
		return fmt.Sprintf("%g / %g / %g / %g", c.TP, c.FP, c.TN, c.FN)
	})
	return models, rows
}

// WriteText writes the headline table as plain text.
func (r *Report) WriteText(w io.Writer) error {
	models, rows := r.Headline()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s split\t%s", r.Split, strings.Join(models, "\t"))
	if r.Oracle != nil {
		fmt.Fprint(tw, "\tsynth oracle")
	}
	fmt.Fprintln(tw)
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s", row.Metric, strings.Join(row.Cells, "\t"))
		if r.Oracle != nil {
			fmt.Fprintf(tw, "\t%s", row.Oracle)
		}
		fmt.Fprintln(tw)
	}
	for _, p := range r.Pairs {
		if p.Comparison == nil {
			fmt.Fprintf(tw, "DeLong %s vs %s\tnot compared: %s\n", p.A, p.B, p.Error)
			continue
		}
		a := p.Comparison.Aggregate
		fmt.Fprintf(tw, "DeLong %s − %s\tΔAUROC %s, p %s\n", p.A, p.B, fmtNum(a.Diff, 3), fmtP(a.P))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Bootstrap > 0 {
		_, err := fmt.Fprintf(w, "(95%% CIs: percentile bootstrap over subjects, %d resamples; %s: undefined)\n", r.Bootstrap, Dash)
		return err
	}
	return nil
}

// WriteJSON writes the report as indented JSON (metrics.json).
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Write writes report.html and metrics.json into dir, each atomically, and returns the
// HTML's path.
func (r *Report) Write(dir string) (string, error) {
	var h, j bytes.Buffer
	if err := r.WriteHTML(&h); err != nil {
		return "", err
	}
	if err := r.WriteJSON(&j); err != nil {
		return "", err
	}
	// Both files are written and synced under temporary names before either is renamed into
	// place, so a failure (a full disk) leaves the previous pair, not a new and an old file.
	p := filepath.Join(dir, ReportHTMLFile)
	var files []*data.AtomicFile
	defer func() {
		for _, f := range files {
			f.Abort() // a no-op after Commit
		}
	}()
	for _, x := range []struct {
		path string
		buf  []byte
	}{{filepath.Join(dir, ReportJSONFile), j.Bytes()}, {p, h.Bytes()}} {
		f, err := data.CreateAtomic(x.path)
		if err != nil {
			return "", err
		}
		files = append(files, f)
		if _, err := f.Write(x.buf); err != nil {
			return "", fmt.Errorf("write %s: %w", x.path, err)
		}
		if err := f.Sync(); err != nil {
			return "", fmt.Errorf("sync %s: %w", x.path, err)
		}
	}
	for _, f := range files {
		if err := f.Commit(); err != nil {
			return "", err
		}
	}
	return p, nil
}

// The HTML view of a report.
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
		Models       []htmlModel
		HeadModels   []string
		Headline     []HeadlineRow
		Oracle       string
		OracleNote   string
		ThresholdDoc string
		Pairs        []htmlPair
		Discrim      []htmlFigure
		Reliability  []htmlFigure
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
	v := &htmlView{R: r}
	v.HeadModels, v.Headline = r.Headline()
	if r.Oracle != nil {
		v.Oracle, v.OracleNote = fmtNum(r.Oracle.AUROC, 3), r.Oracle.Note
	}
	v.ThresholdDoc = fmt.Sprintf("each model's deployed operating point, the calibrated probability its manifest records and medseq predict and serve decide at, applied unchanged to %s and to every segment", r.Split)
	for i, m := range r.Models {
		hm := htmlModel{Name: m.Name, Kind: m.Kind, Dir: m.Dir, RunID: m.RunID, Created: m.Created, Inputs: m.Inputs, TrainedOn: m.TrainedOn, Color: hexColor(modelColor(i)),
			Threshold: ThresholdText(m.Metrics.Threshold), Warnings: m.Warnings}
		for _, a := range m.Alternatives {
			hm.Alternatives = append(hm.Alternatives, htmlAlt{Rule: a.Rule, Threshold: fmt.Sprintf("%.4f", a.Threshold), ChosenOn: a.ChosenOn,
				Sens: fmtNum(a.Sensitivity, 3), Spec: fmtNum(a.Specificity, 3), PPV: fmtNum(a.PPV, 3), F1: fmtNum(a.F1, 3)})
		}
		cs := m.Metrics.Calibration
		hm.ECE, hm.ECEQ, hm.Slope, hm.Intercept = fmtNum(cs.ECE, 4), fmtNum(cs.ECEQuantile, 4), fmtNum(cs.Slope, 3), fmtNum(cs.Intercept, 3)
		hm.CalMethod, hm.ECECal, hm.ECEQCal, hm.SlopeCal, hm.ICal = Dash, Dash, Dash, Dash, Dash
		if c := m.Calibrated; c != nil {
			cc := c.Calibration
			hm.CalMethod = c.Method
			hm.ECECal, hm.ECEQCal, hm.SlopeCal, hm.ICal = fmtNum(cc.ECE, 4), fmtNum(cc.ECEQuantile, 4), fmtNum(cc.Slope, 3), fmtNum(cc.Intercept, 3)
		}
		for _, s := range m.Segments {
			hs := htmlSegment{Column: s.Column, Value: s.Value, N: s.N, Subjects: s.Subjects, Pos: s.Positives, Neg: s.Negatives, Note: s.Note}
			if s.Metrics != nil {
				ms := s.Metrics.Sample
				hs.AUROC, hs.AUPRC, hs.Sens, hs.Spec, hs.Brier = fmtEst(ms.AUROC, 3), fmtEst(ms.AUPRC, 3), fmtEst(ms.Recall, 3), fmtEst(ms.Specificity, 3), fmtNum(ms.Brier.Value, 4)
			}
			hm.Segments = append(hm.Segments, hs)
		}
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
		var total float64
		for _, f := range m.TopFeatures {
			total += f.Gain
		}
		for k, f := range m.TopFeatures {
			hf := htmlFeature{Rank: k + 1, Feature: f.Feature, Description: f.Description, Gain: fmt.Sprintf("%.4g", f.Gain), Share: Dash}
			if total > 0 {
				hf.Share = fmt.Sprintf("%.1f%%", 100*f.Gain/total)
			}
			hm.TopFeatures = append(hm.TopFeatures, hf)
		}
		v.Models = append(v.Models, hm)
	}
	for _, p := range r.Pairs {
		hp := htmlPair{A: p.A, B: p.B, Error: p.Error}
		if c := p.Comparison; c != nil {
			a := c.Aggregate
			hp.AUROCA, hp.AUROCB, hp.Diff, hp.Z, hp.P, hp.N = fmtNum(a.AUROC.A, 3), fmtNum(a.AUROC.B, 3), fmtNum(a.Diff, 4), fmtNum(a.Z, 2), fmtP(a.P), fmt.Sprint(a.N)
			hp.CI = fmt.Sprintf("%s – %s", fmtNum(a.Diff-1.959963984540054*a.SE, 4), fmtNum(a.Diff+1.959963984540054*a.SE, 4))
			for _, s := range c.Segments {
				hs := htmlPairSegment{Column: s.Column, Value: s.Value, N: s.N, Pos: s.Positives, Neg: s.Negatives, Reversed: s.Reversed,
					AUROCA: Dash, AUROCB: Dash, Diff: Dash, P: Dash}
				if s.DeLong != nil {
					d := s.DeLong
					hs.AUROCA, hs.AUROCB, hs.Diff, hs.P = fmtNum(d.AUROC.A, 3), fmtNum(d.AUROC.B, 3), fmtNum(d.Diff, 4), fmtP(d.P)
				} else if s.Small {
					hs.Note = "too few positives or negatives to compare"
				}
				hp.Segments = append(hp.Segments, hs)
			}
			for _, s := range c.Simpson {
				hp.Simpson = append(hp.Simpson, htmlSimpson{Column: s.Column, Evaluable: s.Evaluable, Agree: s.Agree, Disagree: s.Disagree,
					Paradox: s.AggregateDisagrees, Reversed: strings.Join(s.Reversed, ", ")})
			}
			hp.Warnings = c.Warnings
		}
		v.Pairs = append(v.Pairs, hp)
	}
	for _, f := range []struct {
		caption string
		fn      func(*Report) (string, error)
	}{{"ROC curves", plotROC}, {"Precision–recall curves", plotPR}} {
		svg, err := f.fn(r)
		fig, err := figure(f.caption, svg, err)
		if err != nil {
			return nil, err
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
			return nil, err
		}
		v.Reliability = append(v.Reliability, *fig)
	}
	var err error
	if r.Ages != nil {
		svg, perr := plotClassHist("Age at prediction per class ("+r.Split+")", "age (years)", r.Ages, true)
		if v.Ages, err = figure("Age at prediction per class, "+r.Split, svg, perr); err != nil {
			return nil, err
		}
	}
	if r.Cohort != nil && r.Cohort.Check != nil {
		c := r.Cohort.Check
		cls := func(s ClassStats) htmlClass {
			return htmlClass{N: s.N, Mean: fmt.Sprintf("%.1f", s.Age.Mean), Min: fmt.Sprintf("%.1f", s.Age.Min), P25: fmt.Sprintf("%.1f", s.Age.P25),
				Median: fmt.Sprintf("%.1f", s.Age.Median), P75: fmt.Sprintf("%.1f", s.Age.P75), Max: fmt.Sprintf("%.1f", s.Age.Max)}
		}
		hc := &htmlCohort{Dir: r.Cohort.Dir, AgeKS: fmtNum(c.AgeKS, 3), Pos: cls(c.Positive), Neg: cls(c.Negative), Warnings: c.Warnings}
		svg, perr := plotClassHist("Age at prediction per class (whole cohort)", "age (years)", cohortAgeHist(c), true)
		if hc.AgeFigure, err = figure("Age at prediction per class, whole cohort", svg, perr); err != nil {
			return nil, err
		}
		v.Cohort = hc
	}
	v.Warnings = append(v.Warnings, r.Warnings...)
	for _, m := range r.Models {
		for _, w := range m.Warnings {
			v.Warnings = append(v.Warnings, m.Name+": "+w)
		}
	}
	for _, p := range r.Pairs {
		if p.Comparison != nil {
			for _, w := range p.Comparison.Warnings {
				v.Warnings = append(v.Warnings, p.A+" vs "+p.B+": "+w)
			}
		}
	}
	if r.Cohort != nil && r.Cohort.Check != nil {
		for _, w := range r.Cohort.Check.Warnings {
			v.Warnings = append(v.Warnings, "cohort: "+w)
		}
	}
	return v, nil
}

// WriteHTML writes the report as one self-contained HTML page: inline CSS, plots as inline
// SVG, no scripts and nothing fetched from the network.
func (r *Report) WriteHTML(w io.Writer) error {
	v, err := r.view()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, v); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}
