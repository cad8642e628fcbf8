package eval

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestSurvivalBadInput(t *testing.T) {
	ok := []SurvivalRow{{Time: 1, Event: true, Risk: 0.2}, {Time: 2, Risk: 0.1}}
	for _, tc := range []struct {
		name string
		rows []SurvivalRow
		opt  SurvivalOptions
		want string
	}{
		{"no rows", nil, SurvivalOptions{}, "no rows"},
		{"negative time", []SurvivalRow{ok[0], {Time: -3, Risk: 0.1}}, SurvivalOptions{}, "row 2: negative time -3"},
		{"NaN time", []SurvivalRow{{Time: math.NaN(), Risk: 0.1}}, SurvivalOptions{}, "row 1: time NaN"},
		{"infinite time", []SurvivalRow{ok[0], {Time: math.Inf(1), Risk: 0.1}}, SurvivalOptions{}, "row 2: time +Inf"},
		{"NaN risk", []SurvivalRow{ok[0], ok[1], {Time: 4, Risk: math.NaN()}}, SurvivalOptions{},
			"row 3: risk: probability is NaN"},
		{"risk above 1", []SurvivalRow{{Time: 4, Risk: 1.5}}, SurvivalOptions{}, "row 1: risk: probability 1.5"},
		{"zero horizon", ok, SurvivalOptions{Horizons: []float64{365, 0}}, "horizon 2 is 0"},
		{"NaN horizon", ok, SurvivalOptions{Horizons: []float64{math.NaN()}}, "horizon 1 is NaN"},
		{"negative groups", ok, SurvivalOptions{Groups: -1}, "-1 risk groups"},
		{"NaN tau", ok, SurvivalOptions{Tau: math.NaN()}, "tau NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Survival(tc.rows, tc.opt)
			if !errors.Is(err, ErrSurvivalInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrSurvivalInput saying %q", err, tc.want)
			}
			if r != nil {
				t.Error("a report beside the error")
			}
		})
	}
}

// The product-limit estimate and Greenwood's variance worked out by hand on tied times.
func TestKaplanMeierByHand(t *testing.T) {
	// times 1 2 2 2 3 3 4 with events at 1, 2 (one of three), 4
	rows := []SurvivalRow{{1, true, .1}, {2, true, .1}, {2, false, .1}, {2, false, .1}, {3, false, .1},
		{3, false, .1}, {4, true, .1}}
	r, err := Survival(rows, SurvivalOptions{Horizons: []float64{0.5, 2, 3.5, 4, 5}, Curves: true})
	if err != nil {
		t.Fatal(err)
	}
	s2 := (6.0 / 7) * (5.0 / 6) // at 2: 6 at risk, one event (the censored ones stay at risk)
	v2 := 1.0/(7*6) + 1.0/(6*5) // Greenwood: Σ d / (n (n − d))
	want := []struct{ surv, seLog float64 }{{1, 0}, {s2, math.Sqrt(v2)}, {s2, math.Sqrt(v2)}, {0, math.Inf(1)}}
	for k, w := range want {
		a := r.Overall.At[k]
		nearSurv(t, "survival", float64(a.Survival), w.surv, 1e-15)
		nearSurv(t, "incidence", float64(a.Incidence), 1-w.surv, 1e-15)
		if w.surv > 0 {
			nearSurv(t, "se", float64(a.SE), w.surv*w.seLog, 1e-15)
			nearSurv(t, "incidence_lo", float64(a.Lo), 1-math.Min(1, w.surv*math.Exp(zSurvival*w.seLog)), 1e-15)
			nearSurv(t, "incidence_hi", float64(a.Hi), 1-w.surv*math.Exp(-zSurvival*w.seLog), 1e-15)
		} else if !math.IsNaN(float64(a.SE)) || !math.IsNaN(float64(a.Lo)) {
			t.Errorf("S = 0: se %v and band %v, want NaN as R's NA", a.SE, a.Lo)
		}
	}
	at := r.Overall.At
	if got := []int{at[0].AtRisk, at[1].AtRisk, at[2].AtRisk}; got[0] != 7 || got[1] != 6 || got[2] != 1 {
		t.Errorf("at risk %v, want [7 6 1]", got)
	}
	past := r.Overall.At[4]
	if !math.IsNaN(float64(past.Incidence)) || !strings.Contains(past.Reason, "no one is followed up to 5") {
		t.Errorf("past the last time: %+v", past)
	}
	if n := len(r.Overall.Steps); n != 4 || r.Overall.Steps[1].Censored != 2 || r.Overall.Steps[1].Events != 1 {
		t.Errorf("steps %+v", r.Overall.Steps)
	}
}

// bruteConcordance counts every pair, as R's concordance defines them, and R's IJ variance.
func bruteConcordance(rows []SurvivalRow, wt func(float64) float64) Concordance {
	n := len(rows)
	var count [3]float64
	var infl [3][]float64
	for k := range infl {
		infl[k] = make([]float64, n)
	}
	for i, a := range rows { // a: the earlier time, an event
		if !a.Event {
			continue
		}
		for j, b := range rows {
			if i == j || b.Time < a.Time || (b.Time == a.Time && b.Event) {
				continue
			}
			w := wt(a.Time)
			k := 2
			if b.Risk > a.Risk {
				k = 0
			} else if b.Risk < a.Risk {
				k = 1
			}
			count[k] += w
			infl[k][i] += w
			infl[k][j] += w
		}
	}
	return concordanceResult(count, infl)
}

func TestConcordanceAgainstPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for _, tc := range []struct {
		name string
		rows []SurvivalRow
		tau  float64
	}{
		{"tied times", tiedTimes(rng, 120), 6},
		{"tied risks", tiedRisks(rng, 300), 2},
		{"heavy censoring", heavyCensoring(rng, 300), math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := censoringKM(tc.rows)
			uno := func(tm float64) float64 {
				if tm > tc.tau {
					return 0
				}
				gm := g.before(tm)
				return 1 / (gm * gm)
			}
			for _, c := range []struct {
				name      string
				got, want Concordance
			}{
				{"harrell", harrellC(tc.rows), bruteConcordance(tc.rows, func(float64) float64 { return 1 })},
				{"uno", unoC(tc.rows, tc.tau), bruteConcordance(tc.rows, uno)},
			} {
				nearSurv(t, c.name+" C", float64(c.got.C), float64(c.want.C), 1e-12)
				nearSurv(t, c.name+" SE", float64(c.got.SE), float64(c.want.SE), 1e-12)
				nearSurv(t, c.name+" concordant", c.got.Concordant, c.want.Concordant, 1e-9*c.want.Concordant)
				nearSurv(t, c.name+" tied", c.got.TiedRisk, c.want.TiedRisk, 1e-9*max(1, c.want.TiedRisk))
			}
		})
	}
}

// AUC(t) counts case–control pairs with the cases' weights; Brier(t) by its definition.
func TestIPCWByPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 13))
	rows := tiedTimes(rng, 200)
	const h = 5
	r, err := Survival(rows, SurvivalOptions{Horizons: []float64{h}})
	if err != nil {
		t.Fatal(err)
	}
	g := censoringKM(rows)
	var num, den, brier float64
	for _, a := range rows {
		if a.Time > h {
			brier += a.Risk * a.Risk / g.at(h)
		}
		if !(a.Time <= h && a.Event) {
			continue
		}
		w := 1 / g.before(a.Time)
		brier += (1 - a.Risk) * (1 - a.Risk) * w
		for _, b := range rows {
			if b.Time > h {
				den += w
				switch {
				case a.Risk > b.Risk:
					num += w
				case a.Risk == b.Risk:
					num += w / 2
				}
			}
		}
	}
	m := r.AtHorizon[0]
	nearSurv(t, "AUC", float64(m.AUC), num/den, 1e-12)
	nearSurv(t, "Brier", float64(m.Brier), brier/float64(len(rows)), 1e-12)
	if m.Cases+m.Controls+m.CensoredBefore != len(rows) {
		t.Errorf("cases %d + controls %d + censored %d != %d", m.Cases, m.Controls, m.CensoredBefore, len(rows))
	}
}

// The censoring distribution: events come before censorings at a tied time.
func TestCensoringKMTies(t *testing.T) {
	rows := []SurvivalRow{{1, true, 0}, {2, true, 0}, {2, false, 0}, {2, false, 0}, {3, false, 0}, {3, false, 0},
		{4, true, 0}}
	g := censoringKM(rows)
	g2 := 1 - 2.0/5 // at 2: 6 at risk, one event first, so 5 at risk of censoring, 2 censored
	g3 := g2 * (1 - 2.0/3)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"G(2-)", g.before(2), 1}, {"G(2)", g.at(2), g2}, {"G(3-)", g.before(3), g2},
		{"G(3)", g.at(3), g3}, {"G(4)", g.at(4), g3},
	} {
		nearSurv(t, c.name, c.got, c.want, 1e-15)
	}
	if !math.IsNaN(g.at(4.5)) {
		t.Error("G past the last time should be NaN (prodlim's NA)")
	}
}

func TestSurvivalDegenerate(t *testing.T) {
	noEvents := []SurvivalRow{{1, false, .1}, {2, false, .3}, {3, false, .2}}
	t.Run("no events", func(t *testing.T) {
		r, err := Survival(noEvents, SurvivalOptions{Horizons: []float64{2}})
		if err != nil {
			t.Fatal(err)
		}
		a := r.Overall.At[0]
		if a.Incidence != 0 || a.Lo != 0 || a.Hi != 0 {
			t.Errorf("incidence %v (%v–%v), want 0 (0–0)", a.Incidence, a.Lo, a.Hi)
		}
		for _, c := range []Concordance{r.Harrell, r.Uno} {
			if !math.IsNaN(float64(c.C)) || c.Reason == "" {
				t.Errorf("C = %v without events (%q)", c.C, c.Reason)
			}
		}
		m := r.AtHorizon[0]
		if !math.IsNaN(float64(m.AUC)) || m.AUCReason != "no events by the horizon" {
			t.Errorf("AUC %v %q", m.AUC, m.AUCReason)
		}
		g2 := (1 - 1.0/3) * (1 - 1.0/2)                           // censorings at 1 and 2
		nearSurv(t, "Brier", float64(m.Brier), .2*.2/g2/3, 1e-15) // one control: time 3, risk 0.2
		if len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "no events") {
			t.Errorf("notes %q", r.Notes)
		}
	})
	t.Run("everyone censored before the horizon", func(t *testing.T) {
		rows := append(noEvents, SurvivalRow{Time: 1.5, Event: true, Risk: .4})
		r, err := Survival(rows, SurvivalOptions{Horizons: []float64{10}})
		if err != nil {
			t.Fatal(err)
		}
		m := r.AtHorizon[0]
		for name, v := range map[string]Num{"incidence": r.Overall.At[0].Incidence, "AUC": m.AUC, "Brier": m.Brier,
			"observed": m.Observed, "group observed": m.Calibration[0].Observed} {
			if !math.IsNaN(float64(v)) {
				t.Errorf("%s = %v past the last follow-up, want NaN", name, v)
			}
		}
		if m.AUCReason == "" || m.BrierReason == "" || m.Calibration[0].Reason == "" {
			t.Errorf("no reasons: %q %q %q", m.AUCReason, m.BrierReason, m.Calibration[0].Reason)
		}
		if !math.IsNaN(float64(r.Uno.Tau)) && float64(r.Uno.Tau) != 10 {
			t.Errorf("tau %v, want the horizon 10", r.Uno.Tau)
		}
	})
	t.Run("one risk", func(t *testing.T) {
		rows := []SurvivalRow{{1, true, .3}, {2, false, .3}, {3, true, .3}, {4, false, .3}}
		r, err := Survival(rows, SurvivalOptions{Horizons: []float64{2}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Groups) != 1 || r.Groups[0].N != 4 {
			t.Errorf("groups %+v", r.Groups)
		}
		nearSurv(t, "Harrell C", float64(r.Harrell.C), 0.5, 0)
		nearSurv(t, "AUC", float64(r.AtHorizon[0].AUC), 0.5, 0)
		if b, err := json.Marshal(r); err != nil || !strings.Contains(string(b), `"harrell_c":{"c":0.5`) {
			t.Errorf("JSON %s, %v", b, err)
		}
	})
}

// Groups cut at quantiles, as R's cut(…, include.lowest = TRUE): ties stay together.
func TestRiskGroups(t *testing.T) {
	var rows []SurvivalRow
	for _, r := range []float64{.1, .1, .1, .1, .2, .3, .4, .5, .5, .9} {
		rows = append(rows, SurvivalRow{Time: 1, Risk: r})
	}
	groups := riskGroups(rows, 3)
	var sizes []int
	for _, g := range groups {
		sizes = append(sizes, len(g.idx))
		for _, i := range g.idx {
			if rows[i].Risk > g.RiskHi || (rows[i].Risk <= g.RiskLo && g.Group > 1) {
				t.Errorf("risk %v in group %d (%v, %v]", rows[i].Risk, g.Group, g.RiskLo, g.RiskHi)
			}
		}
	}
	// type-7 quantiles at 0, 1/3, 2/3, 1 are x[1], x[4], x[7], x[10] = 0.1, 0.1, 0.4, 0.9: the
	// first two merge, leaving [0.1, 0.4] and (0.4, 0.9].
	if len(groups) != 2 || sizes[0] != 7 || sizes[1] != 3 {
		t.Errorf("group sizes %v, want [7 3]", sizes)
	}
}

// Row order changes nothing.
func TestSurvivalOrderInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rows := tiedRisks(rng, 300)
	opt := SurvivalOptions{Horizons: []float64{1, 3}, Groups: 4}
	a, err := Survival(rows, opt)
	if err != nil {
		t.Fatal(err)
	}
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	b, err := Survival(rows, opt)
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("shuffled rows give another report:\n%s\n%s", ja, jb)
	}
}

func nearSurv(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if !(math.Abs(got-want) <= tol) && !(math.IsInf(got, 0) && got == want) {
		t.Errorf("%s = %.17g, want %.17g", name, got, want)
	}
}

// Small random datasets (one row, all tied, all censored, all events...): no error, no panic,
// every figure in range or NaN with a reason, and the concordance as counted pair by pair.
func TestSurvivalSmallRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 34))
	for it := 0; it < 3000; it++ {
		n := 1 + rng.IntN(7)
		rows := make([]SurvivalRow, n)
		for i := range rows {
			rows[i] = SurvivalRow{Time: float64(rng.IntN(4)), Event: rng.IntN(2) == 0, Risk: float64(rng.IntN(3)) / 2}
		}
		horizons := []float64{0.5 + float64(rng.IntN(4))}
		r, err := Survival(rows, SurvivalOptions{Horizons: horizons, Groups: 1 + rng.IntN(4)})
		if err != nil {
			t.Fatalf("%v: %v", rows, err)
		}
		inUnit := func(name string, v Num, reason string) {
			f := float64(v)
			if math.IsNaN(f) && reason == "" || !math.IsNaN(f) && (f < 0 || f > 1) {
				t.Fatalf("%v: %s = %v (reason %q)", rows, name, f, reason)
			}
		}
		a := r.Overall.At[0]
		inUnit("incidence", a.Incidence, a.Reason)
		if a.Reason == "" && !math.IsNaN(float64(a.Lo)) && !(a.Lo <= a.Incidence && a.Incidence <= a.Hi) {
			t.Fatalf("%v: incidence %v outside its band %v–%v", rows, a.Incidence, a.Lo, a.Hi)
		}
		inUnit("Harrell C", r.Harrell.C, r.Harrell.Reason)
		inUnit("Uno C", r.Uno.C, r.Uno.Reason)
		inUnit("AUC", r.AtHorizon[0].AUC, r.AtHorizon[0].AUCReason)
		// IPCW can lift the Brier score above 1 on tiny data (weights 1/G > 1); never below 0.
		if b := r.AtHorizon[0]; math.IsNaN(float64(b.Brier)) && b.BrierReason == "" || b.Brier < 0 {
			t.Fatalf("%v: Brier = %v (reason %q)", rows, b.Brier, b.BrierReason)
		}
		want := bruteConcordance(rows, func(float64) float64 { return 1 })
		if got := r.Harrell; !(got.C == want.C || math.IsNaN(float64(got.C)) && math.IsNaN(float64(want.C))) ||
			math.Abs(float64(got.SE-want.SE)) > 1e-12 {
			t.Fatalf("%v: Harrell %+v, pairs give %+v", rows, got, want)
		}
		groupN := 0
		for _, g := range r.Groups {
			groupN += g.N
		}
		if groupN != n {
			t.Fatalf("%v: the groups hold %d rows", rows, groupN)
		}
	}
}
