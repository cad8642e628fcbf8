package study

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
)

// write renders curve.json and curve.svg, then writes them into out atomically (replacing an
// existing folder with force).
func (r *CurveResult) write(out string, force bool) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	svg, err := r.SVG()
	if err != nil {
		return fmt.Errorf("curve: plot: %w", err)
	}
	dir, err := data.CreateAtomicDir(out, force)
	if err != nil {
		return err
	}
	defer dir.Abort()
	files := map[string][]byte{CurveJSONFile: append(js, '\n'), CurveSVGFile: []byte(svg + "\n")}
	for name, b := range files {
		if err := data.WriteFileAtomic(filepath.Join(dir.Tmp, name), b); err != nil {
			return err
		}
	}
	return dir.Commit()
}

// modelTitle is a model's name in the table and the plot.
func (r *CurveResult) modelTitle(model string) string {
	switch {
	case model == CurveXGBoost:
		return "XGBoost"
	case r.BERTInit != "":
		return "BERT (pretrained)"
	}
	return "BERT"
}

// SVG draws the curve (eval.PlotLearningCurve): held-out AUROC against training labels.
func (r *CurveResult) SVG() (string, error) {
	c := eval.LearningCurve{Title: fmt.Sprintf("Learning curve (held_out, %d labels)", r.HeldOut.Labels)}
	for _, m := range r.Models {
		s := eval.LearningSeries{Name: r.modelTitle(m)}
		for _, p := range r.Points {
			if p.Model == m {
				s.Points = append(s.Points, eval.LearningPoint{Labels: p.Train.Labels, AUROC: float64(p.AUROC),
					Lo: float64(p.AUROCLow), Hi: float64(p.AUROCHigh)})
			}
		}
		c.Series = append(c.Series, s)
	}
	if r.Oracle != nil {
		o := float64(r.Oracle.AUROC)
		c.Oracle = &o
	}
	return eval.PlotLearningCurve(c)
}

// point returns the fit of model at fraction f.
func (r *CurveResult) point(model string, f float64) (CurvePoint, bool) {
	for _, p := range r.Points {
		if p.Model == model && p.Fraction == f {
			return p, true
		}
	}
	return CurvePoint{}, false
}

// WriteText writes the curve as a table: a line per fraction with its training rows, each
// model's held-out AUROC with its interval, and DeLong's comparison of the two; then the
// oracle.
func (r *CurveResult) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("learning curve: cohort %s (run %s), seed %d\n", r.Cohort, r.CohortRun, r.Seed)
	ew.printf("  training split %d subjects, %d labels, %d positive; every fit stops on the same tuning rows "+
		"(%d labels, %d positive) and is measured on the same held_out rows (%d labels, %d positive)\n",
		r.Train.Subjects, r.Train.Labels, r.Train.Positives, r.Tuning.Labels, r.Tuning.Positives, r.HeldOut.Labels,
		r.HeldOut.Positives)
	ew.printf("  held_out AUROC on the models' raw scores, %s\n", r.intervalText())
	head := fmt.Sprintf("  %-8s %8s %7s %9s", "fraction", "subjects", "labels", "positives")
	for _, m := range r.Models {
		head += fmt.Sprintf("  %-21s", r.modelTitle(m)+" AUROC")
	}
	if len(r.Comparisons) > 0 {
		c := r.Comparisons[0]
		head += fmt.Sprintf("  %s − %s (DeLong p)", r.modelTitle(c.B), r.modelTitle(c.A))
	}
	ew.printf("%s\n", strings.TrimRight(head, " "))
	for i, f := range r.Fractions {
		ew.printf("%s\n", strings.TrimRight(r.row(i, f), " "))
	}
	switch {
	case r.Oracle != nil:
		ew.printf("  oracle (true risk) on the same held_out rows: %s, the best any model can do (lead %s)\n",
			num(r.Oracle.AUROC, 3), r.Oracle.Lead)
	case r.OracleWhy != "":
		ew.printf("  no oracle: %s\n", r.OracleWhy)
	}
	for _, x := range r.Warnings {
		ew.printf("  WARNING: %s\n", x)
	}
	return ew.err
}

// row is the table's line for fraction i.
func (r *CurveResult) row(i int, f float64) string {
	var counts CurveCounts
	cells := ""
	for _, m := range r.Models {
		p, ok := r.point(m, f)
		if !ok {
			cells += fmt.Sprintf("  %-21s", "-")
			continue
		}
		counts = p.Train
		cells += fmt.Sprintf("  %-21s", aurocInterval(p.AUROC, p.AUROCLow, p.AUROCHigh))
	}
	if i < len(r.Comparisons) {
		c := r.Comparisons[i]
		cells += fmt.Sprintf("  %s (p %s)", signed(c.Diff, 3), pValue(c.P))
	}
	return fmt.Sprintf("  %7s%% %8d %7d %9d", strings.TrimSuffix(fmt.Sprintf("%.1f", 100*f), ".0"), counts.Subjects,
		counts.Labels, counts.Positives) + cells
}

func (r *CurveResult) intervalText() string {
	if r.Bootstrap == 0 {
		return "no intervals (bootstrap 0)"
	}
	return fmt.Sprintf("%g%% percentile bootstrap intervals over subjects (%d resamples)", 100*r.Level, r.Bootstrap)
}

func aurocInterval(v, lo, hi eval.Num) string {
	if math.IsNaN(float64(lo)) || math.IsNaN(float64(hi)) {
		return num(v, 3)
	}
	return fmt.Sprintf("%s (%s-%s)", num(v, 3), num(lo, 3), num(hi, 3))
}

func pValue(p eval.Num) string {
	switch {
	case math.IsNaN(float64(p)):
		return "-"
	case p < 0.001:
		return "<0.001"
	}
	return fmt.Sprintf("%.3f", float64(p))
}
