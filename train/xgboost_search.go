package train

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/modelrepo"
)

// searchObjective is what every trial of a search is scored by (modelrepo.Search.Objective).
const searchObjective = "tuning_auroc"

// xgbFit trains the booster with cfg.Params or, with cfg.Search.Trials > 0, searches the
// parameters first; it returns the booster, the parameters it was trained with and the
// search's record (nil without one).
func xgbFit(ctx context.Context, r *run, cfg XGBoostConfig, splits featureSplits, progress io.Writer) (*xgb.Booster,
	xgb.Params, *modelrepo.Search, error) {
	if cfg.Search.Trials == 0 {
		b, err := xgbTrain(ctx, r, cfg.Params, splits, progress)
		return b, cfg.Params, nil, err
	}
	return xgbSearch(ctx, r, cfg, splits, progress)
}

// xgbSearch runs the hyperparameter search on the training and tuning splits (never the
// held-out one): each trial is a line of search_trials.jsonl, a log line and a progress
// line; the kept trial's rounds are the folder's metrics.jsonl.
func xgbSearch(ctx context.Context, r *run, cfg XGBoostConfig, splits featureSplits, progress io.Writer) (*xgb.Booster,
	xgb.Params, *modelrepo.Search, error) {
	tf, err := data.CreateAtomic(modelrepo.SearchTrialsPath(r.dir.Tmp))
	if err != nil {
		return nil, xgb.Params{}, nil, err
	}
	defer tf.Abort()
	tw := bufio.NewWriter(tf)
	trials := &trialLog{enc: json.NewEncoder(tw), n: cfg.Search.Trials, r: r, progress: progress}
	r.log.Info("search started", "trials", cfg.Search.Trials, "sampler", cfg.Search.Sampler, "seed", cfg.Search.Seed,
		"objective", searchObjective)
	tr, tu := splits[data.SplitTrain], splits[data.SplitTuning]
	booster, res, err := xgb.Search(ctx, cfg.Search, cfg.Params, &tr.x, tr.y(), &tu.x, tu.y(), trials.trial)
	if err != nil {
		return nil, xgb.Params{}, nil, fmt.Errorf("train xgboost --search: %w", err)
	}
	rec, err := searchRecord(res)
	if err == nil {
		err = trials.err
	}
	if err == nil {
		err = commitWriter(tf, tw)
	}
	if err == nil {
		err = writeRounds(modelrepo.TrainLogPath(r.dir.Tmp), res.Logs)
	}
	if err != nil {
		booster.Close()
		return nil, xgb.Params{}, nil, err
	}
	best := res.Trials[res.Best]
	r.log.Info("search done", "best_trial", best.Trial, "tuning_auroc", best.TuningAUROC,
		"best_iteration", best.BestIteration)
	return booster, res.Params, rec, nil
}

// trialLog records a search's trials: a search_trials.jsonl line, an info log line and a
// progress line each.
type trialLog struct {
	enc      *json.Encoder
	err      error // the first write error
	n        int
	best     float64
	r        *run
	progress io.Writer
}

func (l *trialLog) trial(t xgb.Trial) {
	if err := l.enc.Encode(searchTrial(t)); err != nil && l.err == nil {
		l.err = err
	}
	l.best = max(l.best, t.TuningAUROC)
	p := t.Params
	l.r.log.Info("search trial", "trial", t.Trial, "of", l.n, "tuning_auroc", t.TuningAUROC,
		"train_auroc", t.TrainAUROC, "best_iteration", t.BestIteration, "rounds", t.Rounds,
		"seconds", t.Seconds, "eta", p.Eta, "max_depth", p.MaxDepth,
		"min_child_weight", p.MinChildWeight, "subsample", p.Subsample, "colsample_bytree", p.ColsampleByTree,
		"lambda", p.Lambda, "alpha", p.Alpha)
	if l.progress != nil {
		fmt.Fprintf(l.progress, "trial %3d/%d  tuning AUROC %.4f (best %.4f)  train AUROC %.4f  best iteration %4d  "+
			"eta %.3g depth %d min_child_weight %.3g subsample %.2f colsample %.2f lambda %.3g alpha %.3g  %.1fs\n",
			t.Trial+1, l.n, t.TuningAUROC, l.best, t.TrainAUROC, t.BestIteration, p.Eta, p.MaxDepth, p.MinChildWeight,
			p.Subsample, p.ColsampleByTree, p.Lambda, p.Alpha, t.Seconds)
	}
}

// searchRecord is the manifest's record of a search.
func searchRecord(res *xgb.SearchResult) (*modelrepo.Search, error) {
	s := &modelrepo.Search{Sampler: res.Config.Sampler, Seed: res.Config.Seed, Objective: searchObjective,
		Best: res.Best, TrialsFile: modelrepo.SearchTrialsFile}
	// The space's JSON names (eta, max_depth, ...) are XGBoost's, as the manifest's params.
	buf, err := json.Marshal(res.Config.Space)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(buf, &s.Space); err != nil {
		return nil, err
	}
	for _, t := range res.Trials {
		s.Trials = append(s.Trials, searchTrial(t))
	}
	return s, nil
}

func searchTrial(t xgb.Trial) modelrepo.SearchTrial {
	p := t.Params
	return modelrepo.SearchTrial{Trial: t.Trial, Params: map[string]float64{
		"eta": p.Eta, "max_depth": float64(p.MaxDepth), "min_child_weight": p.MinChildWeight, "subsample": p.Subsample,
		"colsample_bytree": p.ColsampleByTree, "lambda": p.Lambda, "alpha": p.Alpha,
	}, TuningAUROC: t.TuningAUROC, TrainAUROC: t.TrainAUROC, TuningLogloss: t.TuningLogloss,
		BestIteration: t.BestIteration, Rounds: t.Rounds, Seconds: t.Seconds}
}

// writeRounds writes the rounds of the kept trial as the folder's metrics.jsonl (the lines
// xgbTrain writes, without elapsed_s).
func writeRounds(path string, logs []xgb.RoundLog) error {
	f, err := data.CreateAtomic(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, l := range logs {
		if err := enc.Encode(roundRecord(l)); err != nil {
			return err
		}
	}
	return commitWriter(f, w)
}

// commitWriter flushes w and commits the atomic file under it.
func commitWriter(f *data.AtomicFile, w *bufio.Writer) error {
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Commit()
}
