package eval

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Plot sizes (points); the HTML scales them to its columns.
const (
	plotW = 5 * vg.Inch
	plotH = 3.6 * vg.Inch
)

// modelColors are the models' colours, in order (Okabe-Ito, readable with colour blindness).
var modelColors = []color.NRGBA{
	{0, 114, 178, 255},   // blue
	{213, 94, 0, 255},    // vermillion
	{0, 158, 115, 255},   // green
	{204, 121, 167, 255}, // purple
	{230, 159, 0, 255},   // orange
	{86, 180, 233, 255},  // sky
}

var (
	colPositive = color.NRGBA{213, 94, 0, 255}
	colNegative = color.NRGBA{0, 114, 178, 255}
	colGrey     = color.NRGBA{120, 120, 120, 255}
)

func modelColor(i int) color.NRGBA { return modelColors[i%len(modelColors)] }

func withAlpha(c color.NRGBA, a uint8) color.NRGBA { c.A = a; return c }

var (
	dashed = []vg.Length{vg.Points(5), vg.Points(3)}
	dotted = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
)

// newPlot makes a plot in the report's style: sans-serif text, a light grid.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	for _, s := range []*plot.Axis{&p.X, &p.Y} {
		s.Label.TextStyle.Font.Variant = "Sans"
		s.Label.TextStyle.Font.Size = vg.Points(11)
		s.Tick.Label.Font.Variant = "Sans"
		s.Tick.Label.Font.Size = vg.Points(9)
	}
	p.Title.TextStyle.Font.Variant = "Sans"
	p.Title.TextStyle.Font.Size = vg.Points(12)
	p.Legend.TextStyle.Font.Variant = "Sans"
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.X.Tick.Marker, p.Y.Tick.Marker = shortTicks{}, shortTicks{}
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{225}
	g.Horizontal.Color = color.Gray{225}
	p.Add(g)
	return p
}

// shortTicks are plot's default ticks labelled without trailing zeros (2500, not 2500.00).
type shortTicks struct{}

func (shortTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 6, 64)
		}
	}
	return ts
}

// svgOf draws p as an SVG element for inlining in HTML: no XML prolog, comment or unused
// xlink namespace.
func svgOf(p *plot.Plot) (string, error) {
	c := vgsvg.New(plotW, plotH)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", err
	}
	s := b.String()
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	s = strings.Replace(s, "\n\txmlns:xlink=\"http://www.w3.org/1999/xlink\"", "", 1)
	return s, nil
}

func xys(pts []Point) plotter.XYs {
	out := make(plotter.XYs, len(pts))
	for i, p := range pts {
		out[i].X, out[i].Y = p.X, p.Y
	}
	return out
}

func addLine(p *plot.Plot, pts plotter.XYs, c color.Color, width vg.Length, dash []vg.Length, legend string,
	points bool) error {
	if len(pts) == 0 {
		return nil
	}
	if points {
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width, l.Dashes = c, width, dash
		s.Color, s.Shape, s.Radius = c, draw.CircleGlyph{}, vg.Points(2.5)
		p.Add(l, s)
		if legend != "" {
			p.Legend.Add(legend, l, s)
		}
		return nil
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color, l.Width, l.Dashes = c, width, dash
	p.Add(l)
	if legend != "" {
		p.Legend.Add(legend, l)
	}
	return nil
}

func diagonal(p *plot.Plot, legend string) error {
	return addLine(p, plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, colGrey, vg.Points(1), dashed, legend, false)
}

func unitSquare(p *plot.Plot) {
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
}

// plotROC draws every model's ROC curve.
func plotROC(r *Report) (string, error) {
	p := newPlot("ROC curves ("+r.Split+")", "1 − specificity (false positive rate)", "sensitivity (true positive rate)")
	unitSquare(p)
	for i, m := range r.Models {
		if err := addLine(p, xys(m.ROC), modelColor(i), vg.Points(1.8), nil, fmt.Sprintf("%s (AUROC %s)", m.Name,
			fmtNum(m.Metrics.Sample.AUROC.Value, 3)), false); err != nil {
			return "", err
		}
	}
	if err := diagonal(p, "chance"); err != nil {
		return "", err
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(6), vg.Points(6)
	return svgOf(p)
}

// plotPR draws every model's precision-recall curve with the prevalence as the chance line.
func plotPR(r *Report) (string, error) {
	p := newPlot("Precision–recall curves ("+r.Split+")", "recall (sensitivity)", "precision (PPV)")
	unitSquare(p)
	for i, m := range r.Models {
		// A step curve: precision holds until recall moves.
		var pts plotter.XYs
		for k, q := range m.PR {
			if k > 0 {
				pts = append(pts, plotter.XY{X: m.PR[k-1].X, Y: q.Y})
			}
			pts = append(pts, plotter.XY{X: q.X, Y: q.Y})
		}
		if err := addLine(p, pts, modelColor(i), vg.Points(1.8), nil, fmt.Sprintf("%s (AUPRC %s)", m.Name,
			fmtNum(m.Metrics.Sample.AUPRC.Value, 3)), false); err != nil {
			return "", err
		}
	}
	if len(r.Models) > 0 {
		prev := float64(r.Models[0].Metrics.Sample.Prevalence.Value)
		if err := addLine(p, plotter.XYs{{X: 0, Y: prev}, {X: 1, Y: prev}}, colGrey, vg.Points(1), dashed,
			fmt.Sprintf("chance (prevalence %.3f)", prev), false); err != nil {
			return "", err
		}
	}
	// Curves hug the top at low recall: the legend goes bottom left, above the axis.
	p.Legend.Top, p.Legend.Left = false, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), vg.Points(6)
	return svgOf(p)
}

// MinBinRows is the fewest rows a reliability bin needs to be drawn as a plain point: a bin
// with fewer is drawn hollow, its interval dashed, and labelled with its count.
const MinBinRows = 10

// binPoints are a reliability curve's bins as plot points with Wilson 95% intervals, split
// into the bins with at least MinBinRows rows and the near-empty ones.
type binPoints struct {
	xys    plotter.XYs
	errs   plotter.YErrors
	labels []string
}

func (b *binPoints) add(bin Bin) {
	n := float64(bin.Count)
	lo, hi := Wilson(math.Round(bin.ObservedRate*n), n, z95)
	b.xys = append(b.xys, plotter.XY{X: bin.MeanPredicted, Y: bin.ObservedRate})
	b.errs = append(b.errs, struct{ Low, High float64 }{bin.ObservedRate - lo, hi - bin.ObservedRate})
	b.labels = append(b.labels, fmt.Sprintf("n=%d", bin.Count))
}

func splitBins(bins []Bin) (full, small binPoints) {
	for _, b := range bins {
		switch {
		case b.Count >= MinBinRows:
			full.add(b)
		case b.Count > 0:
			small.add(b)
		}
	}
	return full, small
}

// addErrorBars draws the Wilson intervals of pts.
func addErrorBars(p *plot.Plot, pts binPoints, c color.Color, dash []vg.Length) error {
	if len(pts.xys) == 0 {
		return nil
	}
	eb, err := plotter.NewYErrorBars(struct {
		plotter.XYs
		plotter.YErrors
	}{pts.xys, pts.errs})
	if err != nil {
		return err
	}
	eb.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1), Dashes: dash}
	eb.CapWidth = vg.Points(4)
	p.Add(eb)
	return nil
}

// addSmallBins draws near-empty bins hollow with their counts beside them.
func addSmallBins(p *plot.Plot, pts binPoints, c color.Color) error {
	if len(pts.xys) == 0 {
		return nil
	}
	if err := addErrorBars(p, pts, withAlpha(toNRGBA(c), 160), dashed); err != nil {
		return err
	}
	sc, err := plotter.NewScatter(pts.xys)
	if err != nil {
		return err
	}
	sc.Color, sc.Shape, sc.Radius = c, draw.RingGlyph{}, vg.Points(3.5)
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts.xys, Labels: pts.labels})
	if err != nil {
		return err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].Font.Variant = "Sans"
		lb.TextStyle[i].Font.Size = vg.Points(8)
		lb.TextStyle[i].Color = c
	}
	lb.Offset = vg.Point{X: vg.Points(5), Y: vg.Points(2)}
	p.Add(sc, lb)
	return nil
}

func toNRGBA(c color.Color) color.NRGBA {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
}

// plotReliability draws the models' uniform-bin reliability curves before (raw scores) or
// after calibration, each bin with its Wilson 95% interval; bins with fewer than MinBinRows
// rows are drawn hollow, off the line, with their counts.
func plotReliability(r *Report, after bool) (string, error) {
	title := "Reliability before calibration (raw scores)"
	if after {
		title = "Reliability after calibration (calibration.json)"
	}
	p := newPlot(title, "mean predicted probability", "observed rate (Wilson 95% interval)")
	unitSquare(p)
	anySmall := false
	for i, m := range r.Models {
		cs := m.Metrics.Calibration
		if after {
			if m.Calibrated == nil {
				continue
			}
			cs = m.Calibrated.Calibration
		}
		full, small := splitBins(cs.Uniform)
		anySmall = anySmall || len(small.xys) > 0
		if err := addErrorBars(p, full, modelColor(i), nil); err != nil {
			return "", err
		}
		legend := fmt.Sprintf("%s (ECE %s)", m.Name, fmtNum(cs.ECE, 3))
		if err := addLine(p, full.xys, modelColor(i), vg.Points(1.5), nil, legend, true); err != nil {
			return "", err
		}
		if err := addSmallBins(p, small, modelColor(i)); err != nil {
			return "", err
		}
	}
	if err := diagonal(p, "perfect calibration"); err != nil {
		return "", err
	}
	if anySmall {
		sc, err := plotter.NewScatter(plotter.XYs{{}})
		if err != nil {
			return "", err
		}
		sc.Color, sc.Shape, sc.Radius = colGrey, draw.RingGlyph{}, vg.Points(3.5)
		p.Legend.Add(fmt.Sprintf("bin with < %d rows (count shown)", MinBinRows), sc)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(4)
	return svgOf(p)
}

// plotDecision draws every model's net benefit over its threshold range against treating
// everyone and no one, with each model's deployed threshold marked.
func plotDecision(r *Report) (string, error) {
	p := newPlot("Decision curves ("+r.Split+", calibrated probabilities)", "threshold probability", "net benefit")
	hi, top := 0.0, 0.0
	var prevs []float64
	for i, m := range r.Models {
		dc := m.Decision
		if dc == nil || len(dc.Points) == 0 {
			continue
		}
		hi = max(hi, dc.Points[len(dc.Points)-1].Threshold)
		top = max(top, dc.Prevalence)
		nb := make(plotter.XYs, len(dc.Points))
		for k, q := range dc.Points {
			nb[k] = plotter.XY{X: q.Threshold, Y: float64(q.NetBenefit)}
		}
		if err := addLine(p, nb, modelColor(i), vg.Points(1.8), nil, m.Name, false); err != nil {
			return "", err
		}
		if !slices.Contains(prevs, dc.Prevalence) {
			prevs = append(prevs, dc.Prevalence)
			if err := addTreatAll(p, dc, len(prevs) > 1, m.Name); err != nil {
				return "", err
			}
		}
	}
	if hi == 0 {
		return "", errors.New("no decision curve")
	}
	none := plotter.XYs{{X: 0, Y: 0}, {X: hi, Y: 0}}
	if err := addLine(p, none, color.Black, vg.Points(1), nil, "treat none", false); err != nil {
		return "", err
	}
	p.X.Min, p.X.Max = 0, hi
	p.Y.Max = 1.1 * top
	p.Y.Min = -max(0.02, 0.25*top)
	for i, m := range r.Models {
		if t := m.Metrics.Threshold.Value; m.Decision != nil && t > 0 && t <= hi {
			legend := ""
			if i == 0 {
				legend = "deployed threshold (dotted)"
			}
			pts := plotter.XYs{{X: t, Y: p.Y.Min}, {X: t, Y: p.Y.Max}}
			if err := addLine(p, pts, modelColor(i), vg.Points(1), dotted, legend, false); err != nil {
				return "", err
			}
		}
	}
	p.Legend.Top, p.Legend.Left = true, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(6), -vg.Points(4)
	return svgOf(p)
}

// addTreatAll draws the net benefit of treating everyone at dc's prevalence.
func addTreatAll(p *plot.Plot, dc *DecisionCurve, named bool, model string) error {
	all := make(plotter.XYs, 0, len(dc.Points)+1)
	all = append(all, plotter.XY{X: 0, Y: dc.Prevalence})
	for _, q := range dc.Points {
		all = append(all, plotter.XY{X: q.Threshold, Y: float64(q.TreatAll)})
	}
	legend := fmt.Sprintf("treat all (prevalence %.3f)", dc.Prevalence)
	if named {
		legend = fmt.Sprintf("treat all, %s's rows (prevalence %.3f)", model, dc.Prevalence)
	}
	return addLine(p, all, colGrey, vg.Points(1.2), dashed, legend, false)
}

// plotClassHist overlays the per-class histograms as shares of each class.
// With trim, the x axis spans only the bins holding rows.
func plotClassHist(title, xlabel string, h *ClassHistograms, trim bool) (string, error) {
	p := newPlot(title, xlabel, "share of class")
	add := func(bins []HistBin, c color.NRGBA, name string) {
		if len(bins) == 0 {
			return
		}
		hb := make([]plotter.HistogramBin, len(bins))
		for i, b := range bins {
			hb[i] = plotter.HistogramBin{Min: b.Lo, Max: b.Hi, Weight: b.Share}
		}
		hist := &plotter.Histogram{Bins: hb, Width: bins[0].Hi - bins[0].Lo, FillColor: withAlpha(c, 90)}
		hist.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1)}
		p.Add(hist)
		p.Legend.Add(name, hist)
	}
	var np, nn int
	for i := range h.Positive {
		np += h.Positive[i].Count
		nn += h.Negative[i].Count
	}
	add(h.Negative, colNegative, fmt.Sprintf("negatives (n=%d)", nn))
	add(h.Positive, colPositive, fmt.Sprintf("positives (n=%d)", np))
	if k := len(h.Positive); k > 0 {
		lo, hi := 0, k-1
		if trim {
			for lo < hi && h.Positive[lo].Count+h.Negative[lo].Count == 0 {
				lo++
			}
			for hi > lo && h.Positive[hi].Count+h.Negative[hi].Count == 0 {
				hi--
			}
		}
		p.X.Min, p.X.Max = h.Positive[lo].Lo, h.Positive[hi].Hi
	}
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.XOffs = -vg.Points(6)
	return svgOf(p)
}

// plotTraining draws a model's train and validation loss.
func plotTraining(m *ModelReport) (string, error) {
	t := m.Training
	p := newPlot("Training: "+m.Name, t.XName, "loss")
	if err := addLine(p, xys(t.Train), modelColor(0), vg.Points(1.5), nil, "train ("+t.TrainName+")", false); err != nil {
		return "", err
	}
	if err := addLine(p, xys(t.Val), modelColor(1), vg.Points(1.5), dashed, "validation ("+t.ValName+")",
		false); err != nil {
		return "", err
	}
	p.Legend.Top = true
	p.Legend.XOffs = -vg.Points(6)
	return svgOf(p)
}

// cohortAgeHist turns a cohort check's age histograms into ClassHistograms.
func cohortAgeHist(c *CohortCheck) *ClassHistograms {
	mk := func(counts []int, n int) []HistBin {
		out := make([]HistBin, len(counts))
		for i, k := range counts {
			out[i] = HistBin{Lo: float64(i) * c.AgeBinWidth, Hi: float64(i+1) * c.AgeBinWidth, Count: k}
			if n > 0 {
				out[i].Share = float64(k) / float64(n)
			}
		}
		return out
	}
	return &ClassHistograms{Positive: mk(c.Positive.AgeHistogram, c.Positive.N), Negative: mk(c.Negative.AgeHistogram,
		c.Negative.N)}
}

// groupColor is risk group g of n on a scale from green (lowest risk) through orange to
// vermillion (highest).
func groupColor(g, n int) color.NRGBA {
	stops := []color.NRGBA{{0, 158, 115, 255}, {230, 159, 0, 255}, {213, 94, 0, 255}}
	if n <= 1 {
		return stops[0]
	}
	x := float64(g) / float64(n-1) * float64(len(stops)-1)
	k := min(int(x), len(stops)-2)
	f := x - float64(k)
	mix := func(a, b uint8) uint8 { return uint8(math.Round(float64(a)*(1-f) + float64(b)*f)) }
	a, b := stops[k], stops[k+1]
	return color.NRGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 255}
}

// kmIncidence turns Kaplan–Meier steps (times in days) into the cumulative incidence as a
// step curve and its band as a closed polygon, in years.
func kmIncidence(steps []KMStep) (curve, band plotter.XYs) {
	curve = plotter.XYs{{X: 0, Y: 0}}
	var lower, upper plotter.XYs // incidence band: 1 − S_hi below, 1 − S_lo above
	lower, upper = plotter.XYs{{X: 0, Y: 0}}, plotter.XYs{{X: 0, Y: 0}}
	prev, prevLo, prevHi := 0.0, 0.0, 0.0
	for _, s := range steps {
		x := s.Time / daysPerYear
		y := 1 - float64(s.Survival)
		lo, hi := 1-float64(s.Hi), 1-float64(s.Lo)
		if math.IsNaN(lo) || math.IsNaN(hi) {
			lo, hi = y, y
		}
		curve = append(curve, plotter.XY{X: x, Y: prev}, plotter.XY{X: x, Y: y})
		lower = append(lower, plotter.XY{X: x, Y: prevLo}, plotter.XY{X: x, Y: lo})
		upper = append(upper, plotter.XY{X: x, Y: prevHi}, plotter.XY{X: x, Y: hi})
		prev, prevLo, prevHi = y, lo, hi
	}
	band = append(band, lower...)
	for i := len(upper) - 1; i >= 0; i-- {
		band = append(band, upper[i])
	}
	return curve, band
}

// plotSurvival draws the Kaplan–Meier cumulative incidence of each predicted-risk group with
// its 95% band, and the horizons.
func plotSurvival(name string, sr *SurvivalReport, horizonDays []float64, horizons []string) (string, error) {
	p := newPlot("Cumulative incidence by risk group: "+name, "years since prediction",
		"cumulative incidence (95% band)")
	top := 0.0
	for g, rg := range sr.Groups {
		c := groupColor(g, len(sr.Groups))
		curve, band := kmIncidence(rg.KM.Steps)
		poly, err := plotter.NewPolygon(band)
		if err != nil {
			return "", err
		}
		poly.Color, poly.LineStyle.Width = withAlpha(c, 45), 0
		p.Add(poly)
		legend := fmt.Sprintf("group %d: risk %.3f–%.3f (n=%d, %d events)", rg.Group, rg.RiskLo, rg.RiskHi,
			rg.N, rg.Events)
		if err := addLine(p, curve, c, vg.Points(1.6), nil, legend, false); err != nil {
			return "", err
		}
		for _, q := range band {
			top = max(top, q.Y)
		}
	}
	p.X.Min, p.Y.Min = 0, 0
	p.Y.Max = max(0.05, math.Min(1, 1.35*top)) // room above the curves for the legend
	// Past the last horizon the curves matter little: show a quarter more, up to the last time.
	if len(horizonDays) > 0 {
		p.X.Max = math.Min(sr.MaxTime, 1.25*slices.Max(horizonDays)) / daysPerYear
	}
	for i, d := range horizonDays {
		x := d / daysPerYear
		legend := ""
		if i == 0 {
			legend = "horizons (" + strings.Join(horizons, ", ") + ")"
		}
		line := plotter.XYs{{X: x, Y: 0}, {X: x, Y: p.Y.Max}}
		if err := addLine(p, line, colGrey, vg.Points(1), dotted, legend, false); err != nil {
			return "", err
		}
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(4)
	return svgOf(p)
}

// plotCensoring draws a censoring-sensitivity metric ("AUROC", with its interval, or
// "prevalence") against the follow-up required of negatives, one series per policy, the
// reference (every negative kept) as a dashed line.
func plotCensoring(c *CensoringSensitivity, metric string) (string, error) {
	p := newPlot(metric+" by required follow-up ("+c.Split+")", "follow-up required of negatives (years)", metric)
	policies := []string{"drop", "drop-lost"}
	ref, hi := math.NaN(), 0.0
	for _, v := range c.Variants {
		hi = max(hi, float64(v.FollowUpMicros)/float64(survivalUnitUs)/daysPerYear)
		if v.Policy == "keep" {
			ref = censoringValue(v, metric)
		}
	}
	for k, policy := range policies {
		var pts binPoints
		for _, v := range c.Variants {
			if v.Policy != policy && !(v.Policy == "keep" && v.FollowUpMicros == 0) {
				continue
			}
			x := float64(v.FollowUpMicros)/float64(survivalUnitUs)/daysPerYear + (float64(k)-0.5)*0.02*max(hi, 1)
			y := censoringValue(v, metric)
			if math.IsNaN(y) {
				continue
			}
			lo, up := y, y
			if metric == "AUROC" && !math.IsNaN(float64(v.Metrics.AUROCLow)) {
				lo, up = float64(v.Metrics.AUROCLow), float64(v.Metrics.AUROCHigh)
			}
			pts.xys = append(pts.xys, plotter.XY{X: x, Y: y})
			pts.errs = append(pts.errs, struct{ Low, High float64 }{y - lo, up - y})
		}
		if err := addErrorBars(p, pts, modelColor(k), nil); err != nil {
			return "", err
		}
		legend := "censored negatives dropped"
		if policy == "drop-lost" {
			legend = "only those lost to follow-up dropped"
		}
		if err := addLine(p, pts.xys, modelColor(k), vg.Points(1.5), nil, legend, true); err != nil {
			return "", err
		}
	}
	lo, up := p.Y.Min, p.Y.Max // room above the points for the legend
	p.Y.Max = up + 0.35*(up-lo)
	p.X.Min, p.X.Max = -0.08*max(hi, 1), hi+0.08*max(hi, 1)
	if !math.IsNaN(ref) {
		refLine := plotter.XYs{{X: 0, Y: ref}, {X: max(hi, 0.1), Y: ref}}
		legend := "every negative kept (follow-up 0)"
		if err := addLine(p, refLine, colGrey, vg.Points(1), dashed, legend, false); err != nil {
			return "", err
		}
	}
	p.Legend.Top, p.Legend.Left = true, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(6), -vg.Points(4)
	return svgOf(p)
}

func censoringValue(v CensoringRow, metric string) float64 {
	if metric == "AUROC" {
		return float64(v.Metrics.AUROC)
	}
	return float64(v.Metrics.Prevalence)
}
