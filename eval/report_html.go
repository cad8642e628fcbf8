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
		_, err := fmt.Fprintf(w, "(95%% CIs: percentile bootstrap over subjects, %d resamples; %s: undefined)\n",
			r.Bootstrap, Dash)
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
