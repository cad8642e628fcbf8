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
	"path/filepath"
	"sort"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/features"
	"github.com/medseq/medseq/model/gbt"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
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

// featureRows builds each split's feature rows from the cohort's censored sequences (the only
// way the baseline sees the data).
func featureRows(ctx context.Context, o *opened, space *features.Space) (map[string]*splitData, error) {
	cm := o.tok.NewCodeMap(o.ds.Codes)
	b := space.NewBuilder(o.tok, cm)
	splits := map[string]*splitData{data.SplitTrain: {}, data.SplitTuning: {}, data.SplitHeldOut: {}}
	err := o.forSplits(ctx, nil, func(s data.Sequence) error {
		sd, ok := splits[s.Label.Split]
		if !ok {
			return nil
		}
		cm.Refresh() // the code table grows shard by shard
		o.countTrain(cm, s)
		b.Append(&sd.x, features.Row{Events: s.Events, Birth: s.Label.Birth, Sex: s.Label.Sex, PredictionTime: s.Label.PredictionTime})
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
	}
	return splits, nil
}

// XGBoost trains the baseline: features from the cohort's censored sequences, libxgboost with
// early stopping on the tuning split, then the model version folder with the leaves predictor
// checked against libxgboost on every tuning and held-out row.
func XGBoost(ctx context.Context, cfg XGBoostConfig, log *slog.Logger, progress io.Writer) (*XGBoostResult, error) {
	start := time.Now()
	o, err := cfg.Inputs.open(log)
	if err != nil {
		return nil, err
	}
	space, err := features.NewSpace(o.tok, cfg.Features)
	if err != nil {
		return nil, err
	}
	splits, err := featureRows(ctx, o, space)
	if err != nil {
		return nil, err
	}
	res := &XGBoostResult{Out: cfg.Out, Rows: map[string]int{}, AUROC: map[string]float64{}}
	for name, sd := range splits {
		res.Rows[name] = len(sd.labels)
	}
	tr, tu := splits[data.SplitTrain], splits[data.SplitTuning]
	if len(tr.labels) == 0 || len(tu.labels) == 0 {
		return nil, fmt.Errorf("cohort %s has %d training and %d tuning labels: need both", cfg.Cohort, len(tr.labels), len(tu.labels))
	}
	log.Info("features built", "train_rows", len(tr.labels), "tuning_rows", len(tu.labels), "features", space.NumFeatures())

	dir, err := data.CreateAtomicDir(cfg.Out, cfg.Force)
	if err != nil {
		return nil, err
	}
	defer dir.Abort()
	logf, err := data.CreateAtomic(modelrepo.TrainLogPath(dir.Tmp))
	if err != nil {
		return nil, err
	}
	defer logf.Abort()
	jw := bufio.NewWriter(logf)
	enc := json.NewEncoder(jw)
	trainStart := time.Now()
	booster, _, err := xgb.Train(ctx, cfg.Params, &tr.x, tr.y(), &tu.x, tu.y(), func(r xgb.RoundLog) {
		rec := map[string]any{"round": r.Round, "elapsed_s": time.Since(trainStart).Seconds()}
		for k, v := range r.Train {
			rec["train_"+k] = v
		}
		for k, v := range r.Tune {
			rec["tuning_"+k] = v
		}
		enc.Encode(rec)
		log.Debug("round", "round", r.Round, "train_logloss", r.Train["logloss"], "tuning_logloss", r.Tune["logloss"], "tuning_auc", r.Tune["auc"])
		if progress != nil && (r.Round%progressEvery == 0 || r.Round == cfg.Params.Rounds-1) {
			rate := float64(r.Round+1) / time.Since(trainStart).Seconds()
			eta := time.Duration(float64(cfg.Params.Rounds-r.Round-1) / rate * float64(time.Second)).Round(time.Second)
			fmt.Fprintf(progress, "round %4d/%d  train logloss %.4f  tuning logloss %.4f  tuning AUROC %.4f  %.1f rounds/s  ETA %s (at most; early stopping may end sooner)\n",
				r.Round, cfg.Params.Rounds, r.Train["logloss"], r.Tune["logloss"], r.Tune["auc"], rate, eta)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("train xgboost: %w", err)
	}
	defer booster.Close()
	res.BestIteration = booster.BestIteration()
	if err := jw.Flush(); err != nil {
		return nil, err
	}
	if err := logf.Commit(); err != nil {
		return nil, err
	}

	xdir := modelrepo.XGBoostPath(dir.Tmp)
	if err := os.MkdirAll(xdir, 0o755); err != nil {
		return nil, err
	}
	if err := booster.SaveJSON(modelrepo.XGBoostPath(dir.Tmp, modelrepo.XGBoostJSON)); err != nil {
		return nil, err
	}
	legacy := modelrepo.XGBoostPath(dir.Tmp, modelrepo.XGBoostLegacy)
	if err := booster.SaveLegacyBinary(legacy); err != nil {
		return nil, err
	}
	if err := space.Save(xdir, o.tok.Vocab); err != nil {
		return nil, err
	}
	pred, err := gbt.Load(legacy)
	if err != nil {
		return nil, fmt.Errorf("leaves cannot load the model it must serve: %w", err)
	}
	// Score every split with libxgboost and leaves; they must agree.
	scores := map[string][]float64{}
	for _, name := range []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut} {
		sd := splits[name]
		if len(sd.labels) == 0 {
			continue
		}
		px, err := booster.Predict(&sd.x)
		if err != nil {
			return nil, err
		}
		pl, err := pred.PredictCSR(&sd.x)
		if err != nil {
			return nil, err
		}
		if name != data.SplitTrain {
			for i := range px {
				res.ParityMaxDiff = math.Max(res.ParityMaxDiff, math.Abs(pl[i]-float64(px[i])))
			}
		}
		scores[name] = pl
		if auc, err := eval.AUROC(sd.bools(), pl); err == nil {
			res.AUROC[name] = auc
		}
	}
	if res.ParityMaxDiff > 1e-6 {
		return nil, fmt.Errorf("leaves and libxgboost disagree by up to %.3g on this model: refusing to write a model the server would score differently", res.ParityMaxDiff)
	}
	top, err := topFeatures(booster, space, o, cfg.TopN)
	if err != nil {
		return nil, err
	}
	res.TopFeatures = top
	if err := writeJSON(modelrepo.TopFeaturesPath(dir.Tmp), top); err != nil {
		return nil, err
	}
	labels := map[string][]data.Label{}
	for name, sd := range splits {
		labels[name] = sd.labels
	}
	m := &modelrepo.Manifest{Manifest: *data.NewManifest("train xgboost", map[string]any{
		"eta": cfg.Params.Eta, "gamma": cfg.Params.Gamma, "max_depth": cfg.Params.MaxDepth,
		"min_child_weight": cfg.Params.MinChildWeight, "subsample": cfg.Params.Subsample,
		"colsample_bytree": cfg.Params.ColsampleByTree, "scale_pos_weight": cfg.Params.ScalePosWeight,
		"eval_metric": cfg.Params.EvalMetric, "rounds": cfg.Params.Rounds, "early_stopping": cfg.Params.EarlyStopping,
		"nthread": cfg.Params.NThread, "seed": cfg.Params.Seed, "windows": space.Windows,
	}), Kind: modelrepo.KindXGBoost, Name: cfg.Name, LastValues: space.LastValue,
		Metrics: map[string]float64{"best_iteration": float64(res.BestIteration), "parity_max_abs_diff": res.ParityMaxDiff}}
	for k, v := range res.AUROC {
		m.Metrics["auroc_"+k] = v
	}
	if err := o.commitModel(dir, m, scoredSplits{labels, scores}, cfg.Calibration, cfg.Threshold); err != nil {
		return nil, err
	}
	res.RunID, res.Point = m.RunID, m.OperatingPoint
	res.Elapsed = time.Since(start)
	log.Info("xgboost model written", "out", cfg.Out, "best_iteration", res.BestIteration, "seconds", res.Elapsed.Seconds())
	return res, nil
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

func writeJSON(path string, v any) error {
	buf, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return data.WriteFileAtomic(path, append(buf, '\n'))
}

// copyTokenizer puts the tokenizer's files beside the model, so the version folder serves alone.
func copyTokenizer(from, to string) error {
	for _, name := range []string{tokenize.HFFile, tokenize.VocabFile, tokenize.ConfigFile} {
		buf, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return fmt.Errorf("copy tokenizer: %w", err)
		}
		if err := data.WriteFileAtomic(filepath.Join(to, name), buf); err != nil {
			return err
		}
	}
	return nil
}
