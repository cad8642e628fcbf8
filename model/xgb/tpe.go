package xgb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Samplers of a search.
const (
	// SamplerTPE is a multivariate tree-structured Parzen estimator (Bergstra et al. 2011;
	// Falkner et al. 2018's joint kernels, as Optuna's TPESampler(multivariate=True)): the
	// first trials are uniform, then each trial is the best of 24 candidates drawn from the
	// density of the best trials so far, by the ratio of that density to the density of the
	// others.
	SamplerTPE = "tpe"
	// SamplerRandom draws every trial uniformly from the space (log-uniformly on log scales).
	SamplerRandom = "random"
)

// TPE's settings, Optuna's defaults.
const (
	tpeStartup    = 10   // uniform trials before the estimator is used
	tpeCandidates = 24   // candidates drawn from the good density per trial
	tpeGoodFrac   = 0.1  // the best ceil(0.1·n) trials are the good ones ...
	tpeGoodMax    = 25   // ... at most 25 of them
	tpeBandwidth  = 0.2  // kernel width: 0.2·n^(-1/(d+4)) of the range (Scott-like)
	tpePrior      = 1.0  // weight of the prior kernel (centre, the whole range wide)
	tpeMaxWidth   = 1.0  // a kernel is at most the whole range wide ...
	tpeMinWidth   = 100. // ... and at least 1/min(100, kernels) of it (Optuna's magic clip)
)

// observation is a finished trial as the sampler sees it: its point of the unit cube and its
// score (higher is better).
type observation struct {
	u     []float64
	score float64
}

// sampler proposes the next point of the unit cube [0, 1]^d from the finished trials.
type sampler struct {
	kind string
	r    *rand.Rand
	d    int
}

func newSampler(kind string, seed uint64, d int) (*sampler, error) {
	if kind != SamplerTPE && kind != SamplerRandom {
		return nil, fmt.Errorf("xgb: search: sampler must be %q or %q, got %q", SamplerTPE, SamplerRandom, kind)
	}
	return &sampler{kind: kind, r: rand.New(rand.NewPCG(seed, 0x5ea4c4)), d: d}, nil
}

// next is the point of the next trial.
func (s *sampler) next(hist []observation) []float64 {
	if s.kind == SamplerRandom || len(hist) < tpeStartup {
		u := make([]float64, s.d)
		for i := range u {
			u[i] = s.r.Float64()
		}
		return u
	}
	good, bad := splitGood(hist)
	l, g := newParzen(good, s.d), newParzen(bad, s.d)
	var best []float64
	bestScore := math.Inf(-1)
	for range tpeCandidates {
		x := l.sample(s.r)
		if sc := l.logPDF(x) - g.logPDF(x); best == nil || sc > bestScore {
			best, bestScore = x, sc
		}
	}
	return best
}

// splitGood returns the points of the best ceil(0.1·n) trials (at most 25; ties: the earlier
// trial) and those of the others.
func splitGood(hist []observation) (good, bad [][]float64) {
	order := make([]int, len(hist))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return hist[order[a]].score > hist[order[b]].score })
	n := min(int(math.Ceil(tpeGoodFrac*float64(len(hist)))), tpeGoodMax)
	n = max(n, 1)
	for k, i := range order {
		if k < n {
			good = append(good, hist[i].u)
		} else {
			bad = append(bad, hist[i].u)
		}
	}
	return good, bad
}

// parzen is a mixture of product kernels on [0, 1]^d: a truncated normal around each point,
// all of one width, and a prior kernel centred, the whole cube wide.
type parzen struct {
	mu    [][]float64 // kernel centres; the last is the prior's
	sigma []float64   // each kernel's width (the same in every dimension)
	logW  []float64   // log weights, summing to 1
}

func newParzen(points [][]float64, d int) *parzen {
	n := len(points)
	width := tpeBandwidth * math.Pow(float64(max(n, 1)), -1/float64(d+4))
	width = math.Min(tpeMaxWidth, math.Max(width, 1/math.Min(tpeMinWidth, float64(n+1))))
	p := &parzen{}
	total := float64(n) + tpePrior
	for _, x := range points {
		p.mu = append(p.mu, x)
		p.sigma = append(p.sigma, width)
		p.logW = append(p.logW, math.Log(1/total))
	}
	prior := make([]float64, d)
	for i := range prior {
		prior[i] = 0.5
	}
	p.mu = append(p.mu, prior)
	p.sigma = append(p.sigma, tpeMaxWidth)
	p.logW = append(p.logW, math.Log(tpePrior/total))
	return p
}

// sample draws a kernel by weight, then each coordinate from its truncated normal.
func (p *parzen) sample(r *rand.Rand) []float64 {
	k, acc, v := len(p.logW)-1, 0.0, r.Float64()
	for j, lw := range p.logW {
		if acc += math.Exp(lw); v < acc {
			k = j
			break
		}
	}
	x := make([]float64, len(p.mu[k]))
	for i, m := range p.mu[k] {
		x[i] = truncNormalSample(r, m, p.sigma[k])
	}
	return x
}

// logPDF is the log density of the mixture at x.
func (p *parzen) logPDF(x []float64) float64 {
	terms := make([]float64, len(p.mu))
	for j, m := range p.mu {
		t := p.logW[j]
		for i := range x {
			t += truncNormalLogPDF(x[i], m[i], p.sigma[j])
		}
		terms[j] = t
	}
	return logSumExp(terms)
}

func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// truncNormalLogPDF is the log density at x of a normal (mu, sigma) truncated to [0, 1].
func truncNormalLogPDF(x, mu, sigma float64) float64 {
	z := (x - mu) / sigma
	mass := normCDF((1-mu)/sigma) - normCDF(-mu/sigma)
	return -0.5*z*z - math.Log(sigma*math.Sqrt(2*math.Pi)) - math.Log(mass)
}

// truncNormalSample draws from a normal (mu, sigma) truncated to [0, 1] by its inverse CDF.
func truncNormalSample(r *rand.Rand, mu, sigma float64) float64 {
	a, b := normCDF(-mu/sigma), normCDF((1-mu)/sigma)
	q := a + r.Float64()*(b-a)
	x := mu + sigma*math.Sqrt2*math.Erfinv(2*q-1)
	if math.IsNaN(x) {
		return mu
	}
	return math.Min(1, math.Max(0, x))
}

func logSumExp(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	if math.IsInf(m, -1) {
		return m
	}
	var s float64
	for _, x := range v {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}
