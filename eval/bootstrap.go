package eval

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
)

// bootstrap resamples subjects with replacement cfg.Bootstrap times and sets the percentile
// intervals of sets[k] (k = 0 sample-, 1 subject-weighted). Resample r draws from its own
// PCG stream seeded (cfg.Seed, r), so results depend on the seed and never on the number of
// workers. Each resample is one O(n) pass over the rows sorted once by score, the subjects'
// multiplicities acting as row weights.
func (p *prepared) bootstrap(cfg Config, sets []*MetricSet) *BootstrapInfo {
	B := cfg.Bootstrap
	level := cfg.Level
	if level <= 0 || level >= 1 {
		level = 0.95
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, B)
	// res[k][metric][r]
	res := make([][nMetrics][]float64, len(sets))
	for k := range res {
		for j := range res[k] {
			res[k][j] = make([]float64, B)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mult := make([]float64, p.nSubj)
			sc := &scratch{}
			var v [nMetrics]float64
			for {
				r := int(next.Add(1) - 1)
				if r >= B {
					return
				}
				resample(cfg.Seed, r, mult)
				for k := range sets {
					p.compute(p.base[k], mult, sc, &v)
					for j := range v {
						res[k][j][r] = v[j]
					}
				}
			}
		}()
	}
	wg.Wait()
	info := &BootstrapInfo{Resamples: B, Seed: cfg.Seed, Level: level,
		Method: "percentile, subjects resampled with replacement"}
	for _, a := range res[0][mAUROC] {
		if !math.IsNaN(a) {
			info.Defined++
		}
	}
	for k, set := range sets {
		for j, f := range set.fields() {
			f.Lo, f.Hi = percentileInterval(res[k][j], level)
		}
	}
	return info
}

// resample fills mult with the multiplicities of n subjects drawn with replacement by
// resample r of the stream seeded seed.
func resample(seed uint64, r int, mult []float64) {
	rng := rand.New(rand.NewPCG(seed, uint64(r)))
	clear(mult)
	n := len(mult)
	for range n {
		mult[rng.IntN(n)]++
	}
}

// percentileInterval returns the (1−level)/2 and (1+level)/2 percentiles (linear
// interpolation, as numpy's default) of the defined (non-NaN) values; NaN when fewer than
// half the values are defined. Infinite values sort to the ends.
func percentileInterval(v []float64, level float64) (Num, Num) {
	x := make([]float64, 0, len(v))
	for _, f := range v {
		if !math.IsNaN(f) {
			x = append(x, f)
		}
	}
	if len(x) == 0 || 2*len(x) < len(v) {
		return Num(math.NaN()), Num(math.NaN())
	}
	sort.Float64s(x)
	return Num(quantile(x, (1-level)/2)), Num(quantile(x, (1+level)/2))
}

// quantile of sorted x with linear interpolation.
func quantile(x []float64, q float64) float64 {
	pos := q * float64(len(x)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	if x[lo] == x[hi] {
		return x[lo]
	}
	return x[lo] + (x[hi]-x[lo])*(pos-float64(lo))
}
