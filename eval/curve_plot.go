package eval

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// LearningCurve is what PlotLearningCurve draws: each model's AUROC with its interval against
// the number of training labels it learned from, and the oracle's AUROC on the same rows.
type LearningCurve struct {
	Title  string
	Series []LearningSeries
	// Oracle is the best achievable AUROC on the same rows (a synthetic dataset's true risk);
	// nil when unknown.
	Oracle *float64
}

// LearningSeries is one model's points, in ascending training labels.
type LearningSeries struct {
	Name   string
	Points []LearningPoint
}

// LearningPoint is one fit: its training labels and AUROC, with the interval's bounds (NaN:
// no interval).
type LearningPoint struct {
	Labels        int
	AUROC, Lo, Hi float64
}

// PlotLearningCurve draws the learning curve as an SVG element: the training labels on a log
// axis ticked at the fits' label counts, each model's AUROC as a line with its interval as an
// error bar (models side by side at each count, so their bars do not overlap), and the
// oracle's AUROC as a dashed line.
func PlotLearningCurve(c LearningCurve) (string, error) {
	p := newPlot(c.Title, "training labels (log scale)", "AUROC (95% interval)")
	xmin, xmax, ylo, yhi := math.Inf(1), 0.0, 1.0, 0.5
	var ticks []float64
	for i, s := range c.Series {
		pts, errs, err := learningPoints(s, i, len(c.Series))
		if err != nil {
			return "", err
		}
		for k, q := range s.Points {
			xmin, xmax = min(xmin, float64(q.Labels)), max(xmax, float64(q.Labels))
			ylo, yhi = min(ylo, pts[k].Y-errs[k].Low), max(yhi, pts[k].Y+errs[k].High)
			ticks = append(ticks, float64(q.Labels))
		}
		if err := addLearningBars(p, pts, errs, modelColor(i)); err != nil {
			return "", err
		}
		legend := fmt.Sprintf("%s (%s at %d labels)", s.Name, fmtNum(Num(s.Points[len(s.Points)-1].AUROC), 3),
			s.Points[len(s.Points)-1].Labels)
		if err := addLine(p, pts, modelColor(i), vg.Points(1.8), nil, legend, true); err != nil {
			return "", err
		}
	}
	if len(ticks) == 0 {
		return "", errors.New("learning curve: no points")
	}
	p.X.Min, p.X.Max = xmin/1.25, xmax*1.25
	if c.Oracle != nil {
		o := *c.Oracle
		ylo, yhi = min(ylo, o), max(yhi, o)
		line := plotter.XYs{{X: p.X.Min, Y: o}, {X: p.X.Max, Y: o}}
		legend := "oracle, true risk (" + fmtNum(Num(o), 3) + ")"
		if err := addLine(p, line, colGrey, vg.Points(1.2), dashed, legend, false); err != nil {
			return "", err
		}
	}
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = labelTicks(ticks)
	pad := max(0.02, 0.08*(yhi-ylo))
	p.Y.Min, p.Y.Max = math.Max(0, ylo-pad), math.Min(1, yhi+pad)
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(6), vg.Points(6)
	return svgOf(p)
}

// learningPoints are a series' points, moved apart on the log axis by model (series i of n)
// so that the models' bars at one count stand side by side, and their interval half-widths.
func learningPoints(s LearningSeries, i, n int) (plotter.XYs, plotter.YErrors, error) {
	if len(s.Points) == 0 {
		return nil, nil, fmt.Errorf("learning curve: %s has no points", s.Name)
	}
	dodge := math.Pow(1.04, float64(i)-float64(n-1)/2)
	pts := make(plotter.XYs, len(s.Points))
	errs := make(plotter.YErrors, len(s.Points))
	for k, q := range s.Points {
		if q.Labels <= 0 || math.IsNaN(q.AUROC) {
			return nil, nil, fmt.Errorf("learning curve: %s: point %d has %d labels, AUROC %v", s.Name, k+1, q.Labels, q.AUROC)
		}
		pts[k] = plotter.XY{X: float64(q.Labels) * dodge, Y: q.AUROC}
		if !math.IsNaN(q.Lo) && !math.IsNaN(q.Hi) {
			errs[k].Low, errs[k].High = max(0, q.AUROC-q.Lo), max(0, q.Hi-q.AUROC)
		}
	}
	return pts, errs, nil
}

// addLearningBars draws a series' intervals.
func addLearningBars(p *plot.Plot, pts plotter.XYs, errs plotter.YErrors, c color.Color) error {
	eb, err := plotter.NewYErrorBars(struct {
		plotter.XYs
		plotter.YErrors
	}{pts, errs})
	if err != nil {
		return err
	}
	eb.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1.2)}
	eb.CapWidth = vg.Points(5)
	p.Add(eb)
	return nil
}

// labelTicks ticks a log axis at the fits' label counts.
type labelTicks []float64

func (t labelTicks) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	seen := map[float64]bool{}
	for _, v := range t {
		if v >= lo && v <= hi && !seen[v] {
			seen[v] = true
			out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	return out
}
