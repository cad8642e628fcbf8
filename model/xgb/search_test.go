package xgb

import (
	"context"
	"errors"
	"math"
	"sort"
	"strings"
	"testing"
)

// aurocOf is the Mann-Whitney AUROC (ties count half).
func aurocOf(y []float32, p []float32) float64 {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return p[idx[a]] < p[idx[b]] })
	var rankPos, nPos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && p[idx[j]] == p[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			if y[idx[k]] == 1 {
				rankPos += mid
				nPos++
			}
		}
		i = j
	}
	nNeg := float64(len(y)) - nPos
	return (rankPos - nPos*(nPos+1)/2) / (nPos * nNeg)
}

func searchBase() Params {
	p := DefaultParams()
	p.Rounds, p.EarlyStopping, p.NThread, p.Seed = 200, 15, 2, 3
	return p
}

func inSpace(t *testing.T, s Space, tp TrialParams) {
	t.Helper()
	p := DefaultParams()
	p.Eta, p.MaxDepth, p.MinChildWeight, p.Subsample = tp.Eta, tp.MaxDepth, tp.MinChildWeight, tp.Subsample
	p.ColsampleByTree, p.Lambda, p.Alpha = tp.ColsampleByTree, tp.Lambda, tp.Alpha
	for _, d := range s.dims() {
		if v := d.get(p); v < d.Min || v > d.Max {
			t.Errorf("%s = %v outside [%v, %v]", d.name, v, d.Min, d.Max)
		}
	}
}

// TestSearch: every trial is logged, drawn from the space and stopped early on its tuning
// AUROC; the booster returned is the best trial's, cut at its best round: its tuning AUROC
// is the trial's.
func TestSearch(t *testing.T) {
	needLib(t)
	if testing.Short() {
		t.Skip("26 boosters")
	}
	d := newDataset(11)
	for _, sampler := range []string{SamplerTPE, SamplerRandom} {
		t.Run(sampler, func(t *testing.T) {
			cfg := DefaultSearchConfig(tpeStartup + 3)
			cfg.Sampler, cfg.Seed = sampler, 4
			base := searchBase()
			var seen []Trial
			b, res, err := Search(context.Background(), cfg, base, d.trX, d.trY, d.tuX, d.tuY, func(tr Trial) { seen = append(seen, tr) })
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if len(res.Trials) != cfg.Trials || len(seen) != cfg.Trials {
				t.Fatalf("%d trials, %d seen, want %d", len(res.Trials), len(seen), cfg.Trials)
			}
			depths := map[int]bool{}
			for i, tr := range res.Trials {
				if tr != seen[i] || tr.Trial != i {
					t.Fatalf("trial %d: %+v, onTrial saw %+v", i, tr, seen[i])
				}
				inSpace(t, cfg.Space, tr.Params)
				depths[tr.Params.MaxDepth] = true
				stopped := tr.Rounds == tr.BestIteration+1+base.EarlyStopping
				if !stopped && tr.Rounds != base.Rounds {
					t.Errorf("trial %d: %d rounds with best %d, patience %d and %d rounds at most", i, tr.Rounds, tr.BestIteration, base.EarlyStopping, base.Rounds)
				}
				if !(tr.TuningAUROC > 0.5 && tr.TuningAUROC <= 1 && tr.TrainAUROC > 0.5 && tr.Seconds > 0) {
					t.Errorf("trial %d: tuning AUROC %v, train AUROC %v, %vs", i, tr.TuningAUROC, tr.TrainAUROC, tr.Seconds)
				}
				if tr.TuningAUROC > res.Trials[res.Best].TuningAUROC || (i < res.Best && tr.TuningAUROC == res.Trials[res.Best].TuningAUROC) {
					t.Errorf("trial %d (tuning AUROC %v) beats the best, trial %d (%v)", i, tr.TuningAUROC, res.Best, res.Trials[res.Best].TuningAUROC)
				}
			}
			if len(depths) < 3 {
				t.Errorf("%d trials drew only depths %v", cfg.Trials, depths)
			}
			best := res.Trials[res.Best]
			if b.BestIteration() != best.BestIteration || len(res.Logs) != best.Rounds || trialParams(res.Params) != best.Params {
				t.Fatalf("booster best iteration %d, %d logs, params %+v; best trial %+v", b.BestIteration(), len(res.Logs), res.Params, best)
			}
			if res.Params.EvalMetric != "auc" || res.Params.Rounds != base.Rounds || res.Params.Seed != base.Seed {
				t.Fatalf("best params %+v do not keep the base's rounds and seed or stop on auc", res.Params)
			}
			for i, l := range res.Logs {
				if l.Tune["auc"] > best.TuningAUROC {
					t.Fatalf("round %d has tuning AUROC %v above the best round's %v", i, l.Tune["auc"], best.TuningAUROC)
				}
			}
			pr, err := b.Predict(d.tuX)
			if err != nil {
				t.Fatal(err)
			}
			if got := aurocOf(d.tuY, pr); math.Abs(got-best.TuningAUROC) > 1e-6 {
				t.Fatalf("returned booster's tuning AUROC %v, best trial's %v", got, best.TuningAUROC)
			}
		})
	}
}

// TestSearchDeterministic: the same seed gives the same trials and the same model; another
// seed draws other parameters.
func TestSearchDeterministic(t *testing.T) {
	needLib(t)
	d := newDataset(12)
	run := func(seed uint64) ([]Trial, []float32) {
		cfg := DefaultSearchConfig(tpeStartup + 2)
		cfg.Seed = seed
		b, res, err := Search(context.Background(), cfg, searchBase(), d.trX, d.trY, d.tuX, d.tuY, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		pr, err := b.Predict(d.teX)
		if err != nil {
			t.Fatal(err)
		}
		for i := range res.Trials {
			res.Trials[i].Seconds = 0
		}
		return res.Trials, pr
	}
	t1, p1 := run(8)
	t2, p2 := run(8)
	for i := range t1 {
		if t1[i] != t2[i] {
			t.Fatalf("trial %d: %+v, then %+v", i, t1[i], t2[i])
		}
	}
	for i := range p1 {
		if p1[i] != p2[i] {
			t.Fatalf("row %d: %v, then %v", i, p1[i], p2[i])
		}
	}
	if t3, _ := run(9); t3[0].Params == t1[0].Params {
		t.Fatalf("seeds 8 and 9 drew the same first trial %+v", t1[0].Params)
	}
}

func TestSearchErrors(t *testing.T) {
	needLib(t)
	d := newDataset(13)
	oneClass := make([]float32, len(d.tuY))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		cfg  func(*SearchConfig, *Params)
		tuY  []float32
		ctx  context.Context
		want string
		is   error
	}{
		{name: "no trials", cfg: func(c *SearchConfig, _ *Params) { c.Trials = 0 }, want: "trials must be >= 1"},
		{name: "sampler", cfg: func(c *SearchConfig, _ *Params) { c.Sampler = "grid" }, want: `sampler must be "tpe" or "random"`},
		{name: "space", cfg: func(c *SearchConfig, _ *Params) { c.Space.Subsample.Max = 1.5 }, want: "subsample must be in (0, 1]"},
		{name: "no early stopping", cfg: func(_ *SearchConfig, p *Params) { p.EarlyStopping = 0 }, want: "early stopping must be >= 1"},
		{name: "bad base", cfg: func(_ *SearchConfig, p *Params) { p.Rounds = 0 }, want: "rounds must be >= 1"},
		{name: "one class", tuY: oneClass, is: ErrOneClass},
		{name: "cancelled", ctx: cancelled, is: context.Canceled, want: "trial 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, base := DefaultSearchConfig(3), searchBase()
			if tc.cfg != nil {
				tc.cfg(&cfg, &base)
			}
			tuY, ctx := d.tuY, context.Background()
			if tc.tuY != nil {
				tuY = tc.tuY
			}
			if tc.ctx != nil {
				ctx = tc.ctx
			}
			b, res, err := Search(ctx, cfg, base, d.trX, d.trY, d.tuX, tuY, nil)
			if err == nil || b != nil || res != nil {
				t.Fatalf("err %v, booster %v, result %v", err, b, res)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLambdaAlphaReachLibxgboost: L1 (alpha) and L2 (lambda) regularisation of the leaf
// weights shrink the predictions toward the base score; an alpha beyond every gradient sum
// leaves every tree a single zero leaf.
func TestLambdaAlphaReachLibxgboost(t *testing.T) {
	needLib(t)
	d := newDataset(14)
	spread := func(lambda, alpha float64) float64 {
		p := testParams()
		p.EarlyStopping, p.Rounds, p.Lambda, p.Alpha = 0, 30, lambda, alpha
		b, _, err := Train(context.Background(), p, d.trX, d.trY, d.tuX, d.tuY, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		pr, err := b.Predict(d.teX)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := pr[0], pr[0]
		for _, v := range pr {
			lo, hi = min(lo, v), max(hi, v)
		}
		return float64(hi - lo)
	}
	base, l2, l1 := spread(1, 0), spread(1000, 0), spread(1, 1e6)
	t.Logf("prediction range: lambda 1 %.4f, lambda 1000 %.4f, alpha 1e6 %.4f", base, l2, l1)
	if !(l2 < base/2) {
		t.Errorf("lambda 1000 leaves a prediction range of %v, lambda 1 %v", l2, base)
	}
	if l1 != 0 {
		t.Errorf("alpha 1e6 leaves a prediction range of %v, want 0", l1)
	}
}
