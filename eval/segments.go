package eval

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// AgeColumn is the attribute holding age in years at prediction time; when present, Segments
// adds age bands under AgeBandColumn.
const (
	AgeColumn     = "age"
	AgeBandColumn = "age_band"
	// Missing is the segment value of predictions without the attribute.
	Missing = "(missing)"
)

// DefaultAgeBands are the lower edges of the age bands (years).
var DefaultAgeBands = []float64{0, 18, 40, 50, 60, 70, 80}

// SegmentConfig controls segment analysis.
type SegmentConfig struct {
	Columns  []string  `json:"columns"`
	AgeBands []float64 `json:"age_bands,omitempty"` // ascending lower edges; default DefaultAgeBands
	// A segment with fewer positives or negatives than these is reported with its counts and
	// Small set, without metrics (default 10 each).
	MinPositives int `json:"min_positives"`
	MinNegatives int `json:"min_negatives"`
	// Metrics carries the bootstrap settings; its threshold is ignored: segments use the
	// aggregate's threshold, never one re-tuned per segment.
	Metrics Config `json:"-"`
}

func (c *SegmentConfig) defaults() {
	if len(c.AgeBands) == 0 {
		c.AgeBands = DefaultAgeBands
	}
	if c.MinPositives <= 0 {
		c.MinPositives = 10
	}
	if c.MinNegatives <= 0 {
		c.MinNegatives = 10
	}
}

// Segment is one value of one attribute column.
type Segment struct {
	Column    string `json:"column"`
	Value     string `json:"value"`
	N         int    `json:"n"`
	Subjects  int    `json:"subjects"`
	Positives int    `json:"positives"`
	Negatives int    `json:"negatives"`
	// Small marks a segment with too few positives or negatives for its numbers to mean
	// anything; Metrics is then nil and Note says why.
	Small   bool     `json:"small"`
	Note    string   `json:"note,omitempty"`
	Metrics *Metrics `json:"metrics,omitempty"`
}

// segmentValue is the segment of p under column (age bands computed from AgeColumn).
func segmentValue(p Prediction, column string, bands []float64) string {
	if column == AgeBandColumn {
		if _, ok := p.Attrs[AgeBandColumn]; !ok {
			return ageBand(p.Attrs[AgeColumn], bands)
		}
	}
	v, ok := p.Attrs[column]
	if !ok || v == "" {
		return Missing
	}
	return v
}

func ageBand(s string, bands []float64) string {
	a, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(a) || a < bands[0] {
		return Missing
	}
	for i := len(bands) - 1; i >= 0; i-- {
		if a >= bands[i] {
			if i == len(bands)-1 {
				return fmt.Sprintf("%g+", bands[i])
			}
			return fmt.Sprintf("%g-%g", bands[i], bands[i+1])
		}
	}
	return Missing
}

// segmentColumns is cfg.Columns plus age_band when any prediction has an age, checking that
// every requested column occurs somewhere.
func segmentColumns(preds []Prediction, cfg SegmentConfig) ([]string, error) {
	present := map[string]bool{}
	for _, p := range preds {
		for k := range p.Attrs {
			present[k] = true
		}
	}
	var cols []string
	seen := map[string]bool{}
	for _, c := range cfg.Columns {
		if seen[c] {
			continue
		}
		seen[c] = true
		if !present[c] && !(c == AgeBandColumn && present[AgeColumn]) {
			return nil, fmt.Errorf("segment column %q: no prediction has it", c)
		}
		cols = append(cols, c)
	}
	if present[AgeColumn] && !seen[AgeBandColumn] {
		cols = append(cols, AgeBandColumn)
	}
	return cols, nil
}

// groupBy splits row indexes by segment value, values sorted (Missing last).
func groupBy(preds []Prediction, col string, bands []float64) ([]string, map[string][]int) {
	groups := map[string][]int{}
	for i, p := range preds {
		v := segmentValue(p, col, bands)
		groups[v] = append(groups[v], i)
	}
	vals := make([]string, 0, len(groups))
	for v := range groups {
		vals = append(vals, v)
	}
	sort.Slice(vals, func(a, b int) bool {
		if (vals[a] == Missing) != (vals[b] == Missing) {
			return vals[b] == Missing
		}
		fa, ea := leadingNumber(vals[a])
		fb, eb := leadingNumber(vals[b])
		if ea && eb && fa != fb {
			return fa < fb
		}
		return vals[a] < vals[b]
	})
	return vals, groups
}

func leadingNumber(s string) (float64, bool) {
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.' || (end == 0 && s[end] == '-')) {
		end++
	}
	f, err := strconv.ParseFloat(s[:end], 64)
	return f, err == nil
}

func pick(preds []Prediction, idx []int) []Prediction {
	out := make([]Prediction, len(idx))
	for k, i := range idx {
		out[k] = preds[i]
	}
	return out
}

// Segments computes every metric per segment at the aggregate's threshold, with bootstrap
// intervals per cfg.Metrics. Segments below the size floor are listed with counts only.
func Segments(preds []Prediction, threshold float64, cfg SegmentConfig) ([]Segment, error) {
	cfg.defaults()
	if err := validate(preds); err != nil {
		return nil, err
	}
	cols, err := segmentColumns(preds, cfg)
	if err != nil {
		return nil, err
	}
	mc := cfg.Metrics
	mc.Threshold = ThresholdSpec{Method: ThresholdFixed, Value: threshold}
	mc.Tuning = nil
	var out []Segment
	for _, col := range cols {
		vals, groups := groupBy(preds, col, cfg.AgeBands)
		for _, v := range vals {
			sp := pick(preds, groups[v])
			s := Segment{Column: col, Value: v, N: len(sp)}
			subj := map[int64]bool{}
			for _, p := range sp {
				subj[p.SubjectID] = true
				if p.Label {
					s.Positives++
				} else {
					s.Negatives++
				}
			}
			s.Subjects = len(subj)
			if s.Positives < cfg.MinPositives || s.Negatives < cfg.MinNegatives {
				s.Small = true
				s.Note = fmt.Sprintf("too small: %d positives and %d negatives (need %d and %d); metrics withheld",
					s.Positives, s.Negatives, cfg.MinPositives, cfg.MinNegatives)
				out = append(out, s)
				continue
			}
			m, err := Compute(sp, mc)
			if err != nil {
				return nil, fmt.Errorf("segment %s=%s: %w", col, v, err)
			}
			s.Metrics = m
			out = append(out, s)
		}
	}
	return out, nil
}

// SegmentComparison is two models' AUROCs in one segment.
type SegmentComparison struct {
	Column    string        `json:"column"`
	Value     string        `json:"value"`
	N         int           `json:"n"`
	Positives int           `json:"positives"`
	Negatives int           `json:"negatives"`
	Small     bool          `json:"small"`
	DeLong    *DeLongResult `json:"delong,omitempty"`
	// Reversed is set when the segment orders the models opposite to the aggregate.
	Reversed bool `json:"reversed"`
}

// SimpsonCheck summarises one column's segments against the aggregate ordering.
type SimpsonCheck struct {
	Column    string `json:"column"`
	Evaluable int    `json:"evaluable"` // segments large enough to compare
	Agree     int    `json:"agree"`
	Disagree  int    `json:"disagree"`
	// AggregateDisagrees is set when most evaluable segments order the models opposite to
	// the aggregate: a Simpson's paradox, where the pooled comparison misleads.
	AggregateDisagrees bool     `json:"aggregate_disagrees"`
	Reversed           []string `json:"reversed,omitempty"` // values of the reversed segments
}

// Comparison is two models compared overall (DeLong) and per segment.
type Comparison struct {
	Aggregate DeLongResult        `json:"aggregate"`
	Segments  []SegmentComparison `json:"segments"`
	Simpson   []SimpsonCheck      `json:"simpson"`
	Warnings  []string            `json:"warnings,omitempty"`
}

func sign(f float64) int {
	switch {
	case f > 0:
		return 1
	case f < 0:
		return -1
	}
	return 0
}

// CompareSegments compares models a and b on the same (subject, prediction time) rows:
// DeLong's test overall and per segment (attributes taken from a, else b), flagging segments
// whose AUROC ordering reverses the aggregate's and columns where the aggregate disagrees
// with most segments.
func CompareSegments(a, b []Prediction, cfg SegmentConfig) (*Comparison, error) {
	cfg.defaults()
	if err := validate(a); err != nil {
		return nil, fmt.Errorf("first model: %w", err)
	}
	if err := validate(b); err != nil {
		return nil, fmt.Errorf("second model: %w", err)
	}
	agg, err := CompareAUROC(a, b)
	if err != nil {
		return nil, err
	}
	type key struct{ s, t int64 }
	bi := make(map[key]int, len(b))
	for i, p := range b {
		bi[key{p.SubjectID, p.PredictionTime}] = i
	}
	// Paired rows: Score from a, the partner's score in scoreB, attributes merged.
	rows := make([]Prediction, len(a))
	scoreB := make([]float64, len(a))
	for i, p := range a {
		q := b[bi[key{p.SubjectID, p.PredictionTime}]]
		attrs := make(map[string]string, len(p.Attrs)+len(q.Attrs))
		for k, v := range q.Attrs {
			attrs[k] = v
		}
		for k, v := range p.Attrs {
			attrs[k] = v
		}
		p.Attrs = attrs
		rows[i] = p
		scoreB[i] = q.Score
	}
	cols, err := segmentColumns(rows, cfg)
	if err != nil {
		return nil, err
	}
	c := &Comparison{Aggregate: *agg}
	aggSign := sign(float64(agg.Diff))
	for _, col := range cols {
		vals, groups := groupBy(rows, col, cfg.AgeBands)
		sc := SimpsonCheck{Column: col}
		for _, v := range vals {
			idx := groups[v]
			s, err := compareSegment(rows, scoreB, idx, col, v, cfg)
			if err != nil {
				return nil, err
			}
			if s.Small {
				c.Segments = append(c.Segments, s)
				continue
			}
			diff := float64(s.DeLong.Diff)
			sc.Evaluable++
			switch ss := sign(diff); {
			case ss == 0 || aggSign == 0:
			case ss == aggSign:
				sc.Agree++
			default:
				sc.Disagree++
				s.Reversed = true
				sc.Reversed = append(sc.Reversed, v)
			}
			c.Segments = append(c.Segments, s)
		}
		sc.AggregateDisagrees = sc.Evaluable > 0 && 2*sc.Disagree > sc.Evaluable
		if sc.AggregateDisagrees {
			c.Warnings = append(c.Warnings, fmt.Sprintf("Simpson's paradox: overall AUROC difference %+.4f, "+
				"but %d of %d %s segments order the models the other way", float64(agg.Diff), sc.Disagree, sc.Evaluable, col))
		} else if len(sc.Reversed) > 0 {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s segments %s order the models opposite to the aggregate",
				col, strings.Join(sc.Reversed, ", ")))
		}
		c.Simpson = append(c.Simpson, sc)
	}
	return c, nil
}

// compareSegment is DeLong's test of the paired rows idx of one segment (Score of the first
// model, scoreB of the second); Small and no test when it has too few positives or negatives.
func compareSegment(rows []Prediction, scoreB []float64, idx []int, col, v string, cfg SegmentConfig,
) (SegmentComparison, error) {
	s := SegmentComparison{Column: col, Value: v, N: len(idx)}
	y := make([]bool, len(idx))
	sa := make([]float64, len(idx))
	sb := make([]float64, len(idx))
	for k, i := range idx {
		y[k], sa[k], sb[k] = rows[i].Label, rows[i].Score, scoreB[i]
		if y[k] {
			s.Positives++
		} else {
			s.Negatives++
		}
	}
	if s.Positives < cfg.MinPositives || s.Negatives < cfg.MinNegatives {
		s.Small = true
		return s, nil
	}
	d := &DeLongResult{N: len(idx)}
	diff, se, z, p, err := DeLong(y, sa, sb)
	if err != nil {
		return s, fmt.Errorf("segment %s=%s: %w", col, v, err)
	}
	d.Diff, d.SE, d.Z, d.P = Num(diff), Num(se), Num(z), Num(p)
	aa, _ := AUROC(y, sa)
	bb, _ := AUROC(y, sb)
	d.AUROC.A, d.AUROC.B = Num(aa), Num(bb)
	s.DeLong = d
	return s, nil
}

// Wilson is the Wilson score interval of a proportion k/n at normal quantile z (1.96 for
// 95%): unlike k/n ± z·SE it stays inside [0, 1] and is honest for small n and k near 0 or n.
// NaN for n = 0.
func Wilson(k, n, z float64) (lo, hi float64) {
	if n <= 0 {
		return math.NaN(), math.NaN()
	}
	p := k / n
	z2 := z * z
	centre := (p + z2/(2*n)) / (1 + z2/n)
	half := z / (1 + z2/n) * math.Sqrt(p*(1-p)/n+z2/(4*n*n))
	return max(0, centre-half), min(1, centre+half)
}

// z95 is the normal quantile of two-sided 95% intervals.
const z95 = 1.959963984540054

// SegmentCalibration is the calibration of one segment's probabilities: the mean predicted
// against the observed rate (with its Wilson 95% interval) and their ratio, and, for segments
// with enough of both classes, ECE and the calibration slope and intercept.
type SegmentCalibration struct {
	Column        string `json:"column"`
	Value         string `json:"value"`
	N             int    `json:"n"`
	Positives     int    `json:"positives"`
	MeanPredicted Num    `json:"mean_predicted"`
	Observed      Num    `json:"observed"`
	ObservedLo    Num    `json:"observed_lo"`
	ObservedHi    Num    `json:"observed_hi"`
	// OE is observed over expected events (Σ labels / Σ probabilities): above 1 the model
	// under-predicts in the segment.
	OE        Num  `json:"oe"`
	Small     bool `json:"small"`
	ECE       Num  `json:"ece"`
	Slope     Num  `json:"slope"`
	Intercept Num  `json:"intercept"`
}

// SegmentCalibrations computes the calibration of preds (probabilities as acted on) per
// segment of cfg's columns (age bands added when there is an age). ECE and slope are withheld
// (NaN, Small set) from segments below cfg's minimum positives or negatives.
func SegmentCalibrations(preds []Prediction, cfg SegmentConfig) ([]SegmentCalibration, error) {
	cfg.defaults()
	if err := validate(preds); err != nil {
		return nil, err
	}
	cols, err := segmentColumns(preds, cfg)
	if err != nil {
		return nil, err
	}
	nan := Num(math.NaN())
	var out []SegmentCalibration
	for _, col := range cols {
		vals, groups := groupBy(preds, col, cfg.AgeBands)
		for _, v := range vals {
			y, s := split(pick(preds, groups[v]))
			sc := SegmentCalibration{Column: col, Value: v, N: len(y), ECE: nan, Slope: nan, Intercept: nan}
			var sum float64
			for i := range y {
				sum += s[i]
				if y[i] {
					sc.Positives++
				}
			}
			n, k := float64(sc.N), float64(sc.Positives)
			sc.MeanPredicted, sc.Observed, sc.OE = Num(sum/n), Num(k/n), Num(ratio(k, sum))
			lo, hi := Wilson(k, n, z95)
			sc.ObservedLo, sc.ObservedHi = Num(lo), Num(hi)
			sc.Small = sc.Positives < cfg.MinPositives || sc.N-sc.Positives < cfg.MinNegatives
			if !sc.Small {
				cs := Summarise(y, s, cfg.Metrics.Bins)
				sc.ECE, sc.Slope, sc.Intercept = cs.ECE, cs.Slope, cs.Intercept
			}
			out = append(out, sc)
		}
	}
	return out, nil
}
