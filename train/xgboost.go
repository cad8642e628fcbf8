package train

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/features"
	"github.com/medseq/medseq/model/gbt"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/modelrepo"
)

// XGBoostConfig is `medseq train xgboost`.
type XGBoostConfig struct {
	Inputs
	Out      string
	Force    bool
	Name     string
	Params   xgb.Params
	Features features.Config
	TopN     int // top features by gain to list (default 30)
	// Calibration fitted on the tuning split: isotonic (default), platt or identity.
	Calibration string
	// Threshold is the rule of the operating point, chosen on the calibrated tuning
	// predictions (zero: max-f1).
	Threshold eval.ThresholdSpec
	// Search, with Trials > 0, chooses eta, max_depth, min_child_weight, subsample,
	// colsample_bytree, lambda and alpha by a hyperparameter search on the tuning split
	// (Params gives the rest); its trials go to search_trials.jsonl and the manifest.
	Search xgb.SearchConfig
}

// XGBoostResult summarises a trained baseline.
type XGBoostResult struct {
	Out           string
	RunID         string
	BestIteration int
	Rows          map[string]int
	AUROC         map[string]float64 // by split
	ParityMaxDiff float64            // max |p_leaves - p_libxgboost| over tuning and held-out rows
	TopFeatures   []TopFeature
	Point         modelrepo.OperatingPoint
	Search        *modelrepo.Search // the search that chose the parameters; nil without one
	Elapsed       time.Duration
}

// TopFeature is a feature with its total gain and the code's description when known.
type TopFeature struct {
	Feature string  `json:"feature"` // as featmap.txt names it: the token in its text form (data.CodeText)
	Gain    float64 `json:"gain"`
	// Code is the feature's code as the data spells it (a whole code, or the parent code or
	// stem pieced codes count toward); empty for age, sex and [UNK].
	Code        string `json:"code,omitempty"`
	Description string `json:"description,omitempty"`
}

// progressEvery is how often (in rounds) training progress is printed.
const progressEvery = 25

// splitData is one split's feature rows and labels.
type splitData struct {
	x features.CSR
	labelled
}

// featureSplits are the feature rows of the training, tuning and held-out splits.
type featureSplits map[string]*splitData

// labels are each split's labels in row order.
func (fs featureSplits) labels() map[string][]data.Label {
	out := map[string][]data.Label{}
	for name, sd := range fs {
		out[name] = sd.labels
	}
	return out
}

// XGBoost trains the baseline: features from the cohort's censored sequences, libxgboost with
// early stopping on the tuning split, then the model version folder with the leaves predictor
// checked against libxgboost on every tuning and held-out row.
func XGBoost(ctx context.Context, cfg XGBoostConfig, log *slog.Logger, progress io.Writer) (*XGBoostResult, error) {
	if !xgb.Available {
		return nil, fmt.Errorf("train xgboost: %w", xgb.ErrUnavailable)
	}
	r, err := startRun("train xgboost", cfg.Inputs, outFolder{cfg.Out, cfg.Force, cfg.Name}, log)
	if err != nil {
		return nil, err
	}
	space, splits, err := xgbData(ctx, r, cfg)
	if err != nil {
		return nil, err
	}
	if err := r.createOut(); err != nil {
		return nil, err
	}
	defer r.abort()
	booster, params, search, err := xgbFit(ctx, r, cfg, splits, progress)
	if err != nil {
		return nil, err
	}
	defer booster.Close()
	model := &xgbModel{booster: booster, space: space, splits: splits, o: r.o, topN: cfg.TopN}
	m := r.manifest(modelrepo.KindXGBoost, xgbParams(params, space),
		map[string]float64{"best_iteration": float64(booster.BestIteration())})
	m.LastValues, m.Search = space.LastValue, search
	auroc, err := r.finish(ctx, ending{manifest: m, model: model, served: &served{score: model.score,
		labels: splits.labels(), calibration: cfg.Calibration, threshold: cfg.Threshold}})
	if err != nil {
		return nil, err
	}
	res := &XGBoostResult{Out: cfg.Out, RunID: m.RunID, BestIteration: booster.BestIteration(), Rows: map[string]int{},
		AUROC: auroc, ParityMaxDiff: model.parity, TopFeatures: model.top, Point: m.OperatingPoint, Search: search,
		Elapsed: time.Since(r.start)}
	for name, sd := range splits {
		res.Rows[name] = len(sd.labels)
	}
	log.Info("xgboost model written", "out", cfg.Out, "best_iteration", res.BestIteration,
		"seconds", res.Elapsed.Seconds())
	return res, nil
}

// xgbData builds the feature space and each split's rows, and checks there is something to
// train and stop on.
func xgbData(ctx context.Context, r *run, cfg XGBoostConfig) (*features.Space, featureSplits, error) {
	space, err := features.NewSpace(r.o.tok, cfg.Features)
	if err != nil {
		return nil, nil, err
	}
	splits, err := featureRows(ctx, r.o, space)
	if err != nil {
		return nil, nil, err
	}
	tr, tu := splits[data.SplitTrain], splits[data.SplitTuning]
	if len(tr.labels) == 0 || len(tu.labels) == 0 {
		return nil, nil, fmt.Errorf("cohort %s has %d training and %d tuning labels: need both",
			cfg.Cohort, len(tr.labels), len(tu.labels))
	}
	r.log.Info("features built", "train_rows", len(tr.labels), "tuning_rows", len(tu.labels),
		"features", space.NumFeatures())
	return space, splits, nil
}

// featureRows builds each split's feature rows from the cohort's censored sequences (the only
// way the baseline sees the data).
func featureRows(ctx context.Context, o *opened, space *features.Space) (featureSplits, error) {
	cm := o.tok.NewCodeMap(o.ds.Codes)
	b := space.NewBuilder(o.tok, cm)
	splits := featureSplits{data.SplitTrain: {}, data.SplitTuning: {}, data.SplitHeldOut: {}}
	err := o.forSplits(ctx, nil, func(s data.Sequence) error {
		sd, ok := splits[s.Label.Split]
		if !ok {
			return nil
		}
		cm.Refresh() // the code table grows shard by shard
		o.countTrain(cm, s)
		b.Append(&sd.x, features.Row{Events: s.Events, Birth: s.Label.Birth, Sex: s.Label.Sex,
			PredictionTime: s.Label.PredictionTime})
		sd.labels = append(sd.labels, s.Label)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, sd := range splits {
		if sd.x.NumCol == 0 {
			sd.x.NumCol = space.NumFeatures()
		}
		sd.sortRows()
	}
	return splits, nil
}

// sortRows puts the rows in (subject, prediction time) order: the order the dataset's shards
// happen to hold subjects in (a folder's paths, an Iceberg table's buckets) does not change
// the booster.
func (sd *splitData) sortRows() {
	perm := make([]int, len(sd.labels))
	for i := range perm {
		perm[i] = i
	}
	less := func(a, b data.Label) bool {
		return a.SubjectID < b.SubjectID || (a.SubjectID == b.SubjectID && a.PredictionTime < b.PredictionTime)
	}
	sort.SliceStable(perm, func(a, b int) bool { return less(sd.labels[perm[a]], sd.labels[perm[b]]) })
	if sort.SliceIsSorted(perm, func(a, b int) bool { return perm[a] < perm[b] }) {
		return
	}
	x := features.CSR{NumCol: sd.x.NumCol, Indptr: make([]int64, 1, len(sd.x.Indptr))}
	labels := make([]data.Label, len(perm))
	for i, p := range perm {
		lo, hi := sd.x.Indptr[p], sd.x.Indptr[p+1]
		x.Indices = append(x.Indices, sd.x.Indices[lo:hi]...)
		x.Data = append(x.Data, sd.x.Data[lo:hi]...)
		x.Indptr = append(x.Indptr, int64(len(x.Indices)))
		labels[i] = sd.labels[p]
	}
	sd.x, sd.labels = x, labels
}

// xgbTrain trains libxgboost with early stopping on the tuning split, writing each round's
// metrics to the folder's training log and progress lines.
func xgbTrain(ctx context.Context, r *run, p xgb.Params, splits featureSplits,
	progress io.Writer) (*xgb.Booster, error) {
	logf, err := data.CreateAtomic(modelrepo.TrainLogPath(r.dir.Tmp))
	if err != nil {
		return nil, err
	}
	defer logf.Abort()
	jw := bufio.NewWriter(logf)
	rounds := &roundLog{enc: json.NewEncoder(jw), start: time.Now(), rounds: p.Rounds, log: r.log, progress: progress}
	tr, tu := splits[data.SplitTrain], splits[data.SplitTuning]
	booster, _, err := xgb.Train(ctx, p, &tr.x, tr.y(), &tu.x, tu.y(), rounds.round)
	if err != nil {
		return nil, fmt.Errorf("train xgboost: %w", err)
	}
	if err := jw.Flush(); err != nil {
		booster.Close()
		return nil, err
	}
	if err := logf.Commit(); err != nil {
		booster.Close()
		return nil, err
	}
	return booster, nil
}

// roundLog records XGBoost's rounds: a metrics.jsonl line each, a debug log line, and a
// progress line every progressEvery rounds.
type roundLog struct {
	enc      *json.Encoder
	start    time.Time
	rounds   int
	log      *slog.Logger
	progress io.Writer
}

// roundRecord is a round's metrics.jsonl line: round, train_* and tuning_* metrics.
func roundRecord(r xgb.RoundLog) map[string]any {
	rec := map[string]any{"round": r.Round}
	for k, v := range r.Train {
		rec["train_"+k] = v
	}
	for k, v := range r.Tune {
		rec["tuning_"+k] = v
	}
	return rec
}

func (l *roundLog) round(r xgb.RoundLog) {
	rec := roundRecord(r)
	rec["elapsed_s"] = time.Since(l.start).Seconds()
	l.enc.Encode(rec)
	l.log.Debug("round", "round", r.Round, "train_logloss", r.Train["logloss"], "tuning_logloss", r.Tune["logloss"],
		"tuning_auc", r.Tune["auc"])
	if l.progress != nil && (r.Round%progressEvery == 0 || r.Round == l.rounds-1) {
		rate := float64(r.Round+1) / time.Since(l.start).Seconds()
		eta := time.Duration(float64(l.rounds-r.Round-1) / rate * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(l.progress, "round %4d/%d  train logloss %.4f  tuning logloss %.4f  tuning AUROC %.4f  "+
			"%.1f rounds/s  ETA %s (at most; early stopping may end sooner)\n",
			r.Round, l.rounds, r.Train["logloss"], r.Tune["logloss"], r.Tune["auc"], rate, eta)
	}
}

// xgbParams are the settings an XGBoost run records in its manifest.
func xgbParams(p xgb.Params, space *features.Space) map[string]any {
	return map[string]any{
		"eta": p.Eta, "gamma": p.Gamma, "max_depth": p.MaxDepth,
		"min_child_weight": p.MinChildWeight, "subsample": p.Subsample,
		"colsample_bytree": p.ColsampleByTree, "lambda": p.Lambda, "alpha": p.Alpha,
		"scale_pos_weight": p.ScalePosWeight, "eval_metric": p.EvalMetric,
		"rounds": p.Rounds, "early_stopping": p.EarlyStopping,
		"nthread": p.NThread, "seed": p.Seed, "windows": space.Windows,
	}
}

// xgbModel is a trained booster with its feature space, as the finish saves and scores it.
type xgbModel struct {
	booster *xgb.Booster
	space   *features.Space
	splits  featureSplits
	o       *opened
	topN    int
	top     []TopFeature // set by save
	parity  float64      // max |p_leaves - p_libxgboost| over tuning and held-out rows, set by score
}

// save writes the booster (JSON and the legacy binary leaves serves), the feature space and
// the top features.
func (x *xgbModel) save(dir string) error {
	if err := os.MkdirAll(modelrepo.XGBoostPath(dir), 0o755); err != nil {
		return err
	}
	if err := x.booster.SaveJSON(modelrepo.XGBoostPath(dir, modelrepo.XGBoostJSON)); err != nil {
		return err
	}
	if err := x.booster.SaveLegacyBinary(modelrepo.XGBoostPath(dir, modelrepo.XGBoostLegacy)); err != nil {
		return err
	}
	if err := x.space.Save(modelrepo.XGBoostPath(dir), x.o.tok.Vocab); err != nil {
		return err
	}
	top, err := topFeatures(x.booster, x.space, x.o, x.topN)
	if err != nil {
		return err
	}
	x.top = top
	return writeJSON(modelrepo.TopFeaturesPath(dir), top)
}

// score scores every split with leaves, the predictor that serves the saved model, and with
// libxgboost: they must agree on the tuning and held-out rows (the manifest records the
// largest difference as parity_max_abs_diff).
func (x *xgbModel) score(_ context.Context, dir string, m *modelrepo.Manifest) (map[string][]float64, error) {
	pred, err := gbt.Load(modelrepo.XGBoostPath(dir, modelrepo.XGBoostLegacy))
	if err != nil {
		return nil, fmt.Errorf("leaves cannot load the model it must serve: %w", err)
	}
	scores := map[string][]float64{}
	for _, name := range []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut} {
		sd := x.splits[name]
		if len(sd.labels) == 0 {
			continue
		}
		px, err := x.booster.Predict(&sd.x)
		if err != nil {
			return nil, err
		}
		pl, err := pred.PredictCSR(&sd.x)
		if err != nil {
			return nil, err
		}
		if name != data.SplitTrain {
			for i := range px {
				x.parity = math.Max(x.parity, math.Abs(pl[i]-float64(px[i])))
			}
		}
		scores[name] = pl
	}
	m.Metrics["parity_max_abs_diff"] = x.parity
	if x.parity > 1e-6 {
		return nil, fmt.Errorf("leaves and libxgboost disagree by up to %.3g on this model: "+
			"refusing to write a model the server would score differently", x.parity)
	}
	return scores, nil
}

// topFeatures lists the features with the largest total gain, with code descriptions.
func topFeatures(b *xgb.Booster, space *features.Space, o *opened, n int) ([]TopFeature, error) {
	if n <= 0 {
		n = 30
	}
	gain, err := b.FeatureGain()
	if err != nil {
		return nil, err
	}
	desc := map[string]string{}
	if cm, err := o.ds.CodeMetadata(); err == nil {
		for _, c := range cm {
			desc[c.Code] = c.Description
		}
	}
	out := make([]TopFeature, 0, len(gain))
	for idx, g := range gain {
		tf := TopFeature{Feature: space.Name(idx, o.tok.Vocab), Gain: g}
		if tid, ok := space.Token(idx); ok && !o.tok.Vocab.IsSpecial(tid) {
			tf.Code = data.ParseCodeText(o.tok.Vocab.Token(tid))
			tf.Description = desc[tf.Code]
		}
		out = append(out, tf)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Gain != out[j].Gain {
			return out[i].Gain > out[j].Gain
		}
		return out[i].Feature < out[j].Feature
	})
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}
