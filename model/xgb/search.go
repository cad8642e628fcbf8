package xgb

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SearchConfig is a hyperparameter search: Trials boosters, each with parameters drawn from
// Space by Sampler (seeded by Seed), each stopping early on its tuning AUROC.
type SearchConfig struct {
	Trials  int
	Seed    uint64
	Sampler string // SamplerTPE or SamplerRandom
	Space   Space
}

// DefaultSearchConfig is n trials of TPE over DefaultSpace, seed 1.
func DefaultSearchConfig(n int) SearchConfig {
	return SearchConfig{Trials: n, Seed: 1, Sampler: SamplerTPE, Space: DefaultSpace()}
}

// Validate checks the trial count, the sampler and the space.
func (c SearchConfig) Validate() error {
	if c.Trials < 1 {
		return fmt.Errorf("xgb: search: trials must be >= 1, got %d", c.Trials)
	}
	if c.Sampler != SamplerTPE && c.Sampler != SamplerRandom {
		return fmt.Errorf("xgb: search: sampler must be %q or %q, got %q", SamplerTPE, SamplerRandom, c.Sampler)
	}
	return c.Space.Validate()
}

// TrialParams are the values a trial drew.
type TrialParams struct {
	Eta             float64 `json:"eta"`
	MaxDepth        int     `json:"max_depth"`
	MinChildWeight  float64 `json:"min_child_weight"`
	Subsample       float64 `json:"subsample"`
	ColsampleByTree float64 `json:"colsample_bytree"`
	Lambda          float64 `json:"lambda"`
	Alpha           float64 `json:"alpha"`
}

func trialParams(p Params) TrialParams {
	return TrialParams{Eta: p.Eta, MaxDepth: p.MaxDepth, MinChildWeight: p.MinChildWeight, Subsample: p.Subsample,
		ColsampleByTree: p.ColsampleByTree, Lambda: p.Lambda, Alpha: p.Alpha}
}

// Trial is one finished booster of a search. Its score is TuningAUROC, the tuning AUROC of
// its best round (the round early stopping kept).
type Trial struct {
	Trial         int         `json:"trial"` // 0-based, in the order they ran
	Params        TrialParams `json:"params"`
	TuningAUROC   float64     `json:"tuning_auroc"`
	TrainAUROC    float64     `json:"train_auroc"`
	TuningLogloss float64     `json:"tuning_logloss"`
	BestIteration int         `json:"best_iteration"`
	Rounds        int         `json:"rounds"` // rounds trained before early stopping ended it
	Seconds       float64     `json:"seconds"`
}

// SearchResult is what a search ran and chose.
type SearchResult struct {
	Config SearchConfig
	Trials []Trial
	// Best is the index in Trials of the trial with the highest tuning AUROC (the first of
	// equals); Params are its full parameters and Logs its rounds.
	Best   int
	Params Params
	Logs   []RoundLog
}

// ErrOneClass is a tuning split with only one class: its AUROC, which a search maximises,
// is undefined.
var ErrOneClass = errors.New("xgb: search: the tuning labels hold one class only; AUROC is undefined")

// Search runs cfg.Trials boosters on train, each with base's parameters but for those the
// space draws, and each stopping early on its tuning AUROC (base.EvalMetric is set to auc;
// base.EarlyStopping must be > 0). It keeps the booster of the trial with the highest tuning
// AUROC (cut at its best round, as Train leaves every booster) and closes the others; that
// booster is what the search returns, so no refit is needed. onTrial (if not nil) sees each
// trial as it finishes. Only train and tune are read: a held-out split never reaches a
// search. The same data, base and config give the same trials and the same booster.
func Search(ctx context.Context, cfg SearchConfig, base Params, train *CSR, trainY []float32, tune *CSR,
	tuneY []float32, onTrial func(Trial)) (*Booster, *SearchResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	base.EvalMetric = "auc"
	if base.EarlyStopping < 1 {
		return nil, nil, errors.New("xgb: search: every trial stops early on its tuning AUROC: early stopping must be >= 1")
	}
	if err := base.Validate(); err != nil {
		return nil, nil, err
	}
	if tune == nil || !bothClasses(tuneY) {
		return nil, nil, ErrOneClass
	}
	dims := cfg.Space.dims()
	smp, err := newSampler(cfg.Sampler, cfg.Seed, len(dims))
	if err != nil {
		return nil, nil, err
	}
	res := &SearchResult{Config: cfg, Best: -1}
	var best *Booster
	var hist []observation
	for i := range cfg.Trials {
		u := smp.next(hist)
		p := cfg.Space.params(base, u)
		start := time.Now()
		b, logs, err := Train(ctx, p, train, trainY, tune, tuneY, nil)
		if err != nil {
			if best != nil {
				best.Close()
			}
			return nil, nil, fmt.Errorf("xgb: search: trial %d: %w", i, err)
		}
		tr := newTrial(i, p, b.BestIteration(), logs, time.Since(start))
		res.Trials = append(res.Trials, tr)
		hist = append(hist, observation{u: unitPoint(dims, p), score: tr.TuningAUROC})
		if best == nil || tr.TuningAUROC > res.Trials[res.Best].TuningAUROC {
			if best != nil {
				best.Close()
			}
			best, res.Best, res.Params, res.Logs = b, i, p, logs
		} else {
			b.Close()
		}
		if onTrial != nil {
			onTrial(tr)
		}
	}
	return best, res, nil
}

func newTrial(i int, p Params, bestIt int, logs []RoundLog, took time.Duration) Trial {
	r := logs[bestIt]
	return Trial{Trial: i, Params: trialParams(p), TuningAUROC: r.Tune["auc"], TrainAUROC: r.Train["auc"],
		TuningLogloss: r.Tune["logloss"], BestIteration: bestIt, Rounds: len(logs), Seconds: took.Seconds()}
}

// unitPoint is where a trial's parameters lie in the unit cube (for an Int dimension, the
// middle of its slot), which is what the sampler learns from.
func unitPoint(dims []dim, p Params) []float64 {
	u := make([]float64, len(dims))
	for i, d := range dims {
		u[i] = d.unit(d.get(p))
	}
	return u
}

func bothClasses(y []float32) bool {
	var pos, neg bool
	for _, v := range y {
		pos, neg = pos || v == 1, neg || v == 0
	}
	return pos && neg
}
