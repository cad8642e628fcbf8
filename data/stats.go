package data

import (
	"math"
	"sort"
)

// KSDistance is the two-sample Kolmogorov–Smirnov statistic: the largest gap between the
// empirical distribution functions of a and b (0 when identical, 1 when disjoint). It does not
// modify its inputs. It returns NaN when either sample is empty.
func KSDistance(a, b []float64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return math.NaN()
	}
	x := append([]float64(nil), a...)
	y := append([]float64(nil), b...)
	sort.Float64s(x)
	sort.Float64s(y)
	var d float64
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		v := math.Min(x[i], y[j])
		for i < len(x) && x[i] <= v {
			i++
		}
		for j < len(y) && y[j] <= v {
			j++
		}
		if g := math.Abs(float64(i)/float64(len(x)) - float64(j)/float64(len(y))); g > d {
			d = g
		}
	}
	return d
}

// Summary is a five-number-plus-mean description of a sample.
type Summary struct {
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	Min    float64 `json:"min"`
	P25    float64 `json:"p25"`
	Median float64 `json:"median"`
	P75    float64 `json:"p75"`
	Max    float64 `json:"max"`
}

// Summarise describes v (empty gives a zero Summary).
func Summarise(v []float64) Summary {
	if len(v) == 0 {
		return Summary{}
	}
	x := append([]float64(nil), v...)
	sort.Float64s(x)
	q := func(p float64) float64 {
		pos := p * float64(len(x)-1)
		lo := int(math.Floor(pos))
		hi := int(math.Ceil(pos))
		return x[lo] + (x[hi]-x[lo])*(pos-float64(lo))
	}
	sum := 0.0
	for _, f := range x {
		sum += f
	}
	return Summary{N: len(x), Mean: sum / float64(len(x)), Min: x[0], P25: q(0.25), Median: q(0.5), P75: q(0.75),
		Max: x[len(x)-1]}
}

// Histogram counts v in bins of width w starting at 0 up to the largest value; values below
// zero go to the first bin.
func Histogram(v []float64, w float64, nbins int) []int {
	out := make([]int, nbins)
	for _, f := range v {
		b := int(math.Floor(f / w))
		if b < 0 {
			b = 0
		}
		if b >= nbins {
			b = nbins - 1
		}
		out[b]++
	}
	return out
}
