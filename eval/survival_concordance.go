package eval

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Concordance is a concordance index of the risk with the time to event, as R's
//
//	concordance(Surv(time, event) ~ risk, reverse = TRUE, timewt = ..., ymax = tau)
//
// A pair is comparable when the earlier time is an event and the other subject is still
// followed up then (a later time, or a censoring at the same time: events come first); two
// events at the same time are not comparable. Concordant: the event has the higher risk;
// tied risks count 1/2. The counts are the pairs weighted by the time weight of the earlier
// (event) time: 1 for Harrell's C, 1/G(t−)² for Uno's (G the Kaplan–Meier of the censoring),
// 0 past Tau. SE is R's infinitesimal-jackknife standard error, which takes G as known.
type Concordance struct {
	C          Num     `json:"c"`
	SE         Num     `json:"se"`
	Lo         Num     `json:"ci_low"`  // C − z·SE
	Hi         Num     `json:"ci_high"` // C + z·SE
	Concordant float64 `json:"concordant"`
	Discordant float64 `json:"discordant"`
	TiedRisk   float64 `json:"tied_risk"`
	Tau        Num     `json:"tau"` // null: no truncation
	Reason     string  `json:"reason,omitempty"`
}

// harrellC is Harrell's C: every comparable pair weighs 1 (R's timewt = "n").
func harrellC(rows []SurvivalRow) Concordance {
	c := concordanceFit(rows, func(float64) float64 { return 1 })
	c.Tau = Num(math.NaN())
	return c
}

// unoC is Uno's C truncated at tau: a pair whose event time t is at most tau weighs
// 1/G(t−)², others 0 (R's timewt = "n/G2", ymax = tau). With fewer than two events R uses
// the weight 1 (still truncated at tau); so does this.
func unoC(rows []SurvivalRow, tau float64) Concordance {
	g := censoringKM(rows)
	events := 0
	for _, r := range rows {
		if r.Event {
			events++
		}
	}
	wt := func(t float64) float64 {
		if t > tau {
			return 0
		}
		if events < 2 {
			return 1
		}
		gm := g.before(t)
		return 1 / (gm * gm)
	}
	c := concordanceFit(rows, wt)
	c.Tau = Num(tau)
	if math.IsInf(tau, 1) {
		c.Tau = Num(math.NaN())
	}
	return c
}

// concordanceFit counts the weighted concordant, discordant and risk-tied pairs, and R's
// infinitesimal-jackknife variance of C. It is survival's concordance3 (C code) with Fenwick
// trees: the rows go by decreasing time, censored before events at a tied time, into a tree of
// everyone at risk (counted against each event) and a tree of the events weighted by their
// time weight (giving each subject's share as the later member of its pairs). O(n log n).
func concordanceFit(rows []SurvivalRow, timewt func(t float64) float64) Concordance {
	n := len(rows)
	rank, m := riskRanks(rows)
	ord := make([]int, n)
	for i := range ord {
		ord[i] = i
	}
	slices.SortFunc(ord, func(a, b int) int {
		if c := cmp.Compare(rows[b].Time, rows[a].Time); c != 0 {
			return c
		}
		return cmp.Compare(b2i(rows[a].Event), b2i(rows[b].Event)) // censored first
	})
	atRisk, deaths := newFenwick(m), newFenwick(m)
	// infl[k][i]: the weighted pairs of row i that are concordant in R's orientation (k = 0:
	// the later member has the higher risk), discordant (1) and tied on risk (2).
	var infl [3][]float64
	for k := range infl {
		infl[k] = make([]float64, n)
	}
	var count [3]float64
	for i := 0; i < n; {
		ii := ord[i]
		if !rows[ii].Event {
			lt, eq, gt := deaths.split(rank[ii])
			infl[0][ii] -= lt
			infl[1][ii] -= gt
			infl[2][ii] -= eq
			atRisk.add(rank[ii], 1)
			i++
			continue
		}
		t := rows[ii].Time
		w := timewt(t)
		j := i
		for ; j < n && rows[ord[j]].Time == t; j++ { // the tied events (censored ones came first)
			jj := ord[j]
			lt, eq, gt := atRisk.split(rank[jj])
			count[0] += gt * w
			count[1] += lt * w
			count[2] += eq * w
			infl[0][jj] += gt * w
			infl[1][jj] += lt * w
			infl[2][jj] += eq * w
			deaths.add(rank[jj], w)
		}
		for k := i; k < j; k++ {
			kk := ord[k]
			lt, eq, gt := deaths.split(rank[kk])
			infl[0][kk] -= lt
			infl[1][kk] -= gt
			infl[2][kk] -= eq
			atRisk.add(rank[kk], 1)
		}
		i = j
	}
	for i := range rows {
		lt, eq, gt := deaths.split(rank[i])
		infl[0][i] += lt
		infl[1][i] += gt
		infl[2][i] += eq
	}
	return concordanceResult(count, infl)
}

// concordanceResult turns R's counts (index 0: the survivor has the higher risk) into C for a
// risk score (reverse = TRUE) and its standard error: var = Σ dfbeta² / 4 with
// dfbeta_i = ((c_i − d_i) − somer·(c_i + d_i + t_i)) / npair, as concordancefit.
func concordanceResult(count [3]float64, infl [3][]float64) Concordance {
	npair := count[0] + count[1] + count[2]
	out := Concordance{Concordant: count[1], Discordant: count[0], TiedRisk: count[2]}
	if !(npair > 0) {
		nan := Num(math.NaN())
		out.C, out.SE, out.Lo, out.Hi = nan, nan, nan, nan
		out.Reason = "no comparable pairs (no event before another subject's time, within tau)"
		return out
	}
	somer := (count[0] - count[1]) / npair
	var v float64
	for i := range infl[0] {
		d := (infl[0][i]-infl[1][i])/npair - somer/npair*(infl[0][i]+infl[1][i]+infl[2][i])
		v += d * d
	}
	c := 1 - (somer+1)/2
	se := math.Sqrt(v / 4)
	out.C, out.SE, out.Lo, out.Hi = Num(c), Num(se), Num(c-zSurvival*se), Num(c+zSurvival*se)
	return out
}

// riskRanks numbers the distinct risks 0.. in increasing order.
func riskRanks(rows []SurvivalRow) (rank []int, m int) {
	u := make([]float64, len(rows))
	for i, r := range rows {
		u[i] = r.Risk
	}
	slices.Sort(u)
	u = slices.Compact(u)
	rank = make([]int, len(rows))
	for i, r := range rows {
		rank[i] = sort.SearchFloat64s(u, r.Risk)
	}
	return rank, len(u)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fenwick holds weights by rank: prefix sums in O(log m).
type fenwick struct {
	tree, node []float64 // tree is 1-based
	total      float64
}

func newFenwick(m int) *fenwick {
	return &fenwick{tree: make([]float64, m+1), node: make([]float64, m)}
}

func (f *fenwick) add(r int, w float64) {
	f.node[r] += w
	f.total += w
	for i := r + 1; i < len(f.tree); i += i & -i {
		f.tree[i] += w
	}
}

// split returns the weight below rank r, at r, and above r.
func (f *fenwick) split(r int) (lt, eq, gt float64) {
	for i := r; i > 0; i -= i & -i {
		lt += f.tree[i]
	}
	eq = f.node[r]
	return lt, eq, f.total - lt - eq
}

// String is C with its interval, for logs and tests.
func (c Concordance) String() string {
	if c.Reason != "" {
		return "undefined: " + c.Reason
	}
	return fmt.Sprintf("%.4f (%.4f–%.4f)", float64(c.C), float64(c.Lo), float64(c.Hi))
}
