package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
	"github.com/medseq/medseq/train"
)

func TestTrainClassifyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a synthetic cohort and trains a tiny BERT")
	}
	ctx := context.Background()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""), log: slog.New(slog.NewTextHandler(&stderr, nil))}
	meds := filepath.Join(out, "meds")
	if _, err := synth.Generate(ctx, synth.Config{Out: meds, Subjects: 800, Seed: 3, Logger: e.log}); err != nil {
		t.Fatal(err)
	}
	co := &cohortOptions{meds: meds, out: filepath.Join(out, "cohort"), cfg: data.DefaultCohortConfig()}
	co.cfg.Targets = []string{"ICD10/E11", "SNOMED/44054006"}
	co.cfg.Seed = 3
	if _, _, err := buildCohort(ctx, e, co); err != nil {
		t.Fatal(err)
	}
	// With value bins: lab results reach the BERT as VALUE/Qk tokens, in training, in the
	// scorer and in the served requests (checked against each other below); the demo and
	// make e2e cover a codes-only tokenizer.
	to := testTokenizerConfig(e, meds, co.out, filepath.Join(out, "tok"))
	to.Build.MaxLen, to.Build.ValueBins = 64, 5
	tr, err := tokenize.BuildFromCohort(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Config.Build.ValueCodes == 0 {
		t.Fatal("no code got value bins")
	}
	model := filepath.Join(out, "models", "bert", "1")
	args := []string{"--meds", meds, "--cohort", co.out, "--tokenizer", to.Out, "--out", model, "--config", "tiny",
		"--max-steps", "40", "--eval-every", "10", "--batch-size", "16", "--lr", "1e-3", "--time-embeddings"}
	if err := runTrainClassify(ctx, e, args); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	t.Logf("%s", stdout.String())
	for _, f := range []string{"manifest.json", "tokenizer.json", "vocab.txt", "bert/config.json", "bert/model.safetensors", "metrics.jsonl",
		"predictions_tuning.parquet", "predictions_held_out.parquet"} {
		if _, err := os.Stat(filepath.Join(model, f)); err != nil {
			t.Errorf("model folder lacks %s", f)
		}
	}
	m, err := modelrepo.ReadManifest(model)
	if err != nil || m.Kind != modelrepo.KindBERT {
		t.Fatalf("manifest: %+v %v", m, err)
	}
	if m.ValueBins != 5 {
		t.Errorf("manifest value_bins %v, want 5", m.ValueBins)
	}
	if te, _ := m.Params["time_embeddings"].(bool); !te {
		t.Errorf("manifest time_embeddings %v, want true", m.Params["time_embeddings"])
	}
	buf, _ := os.ReadFile(filepath.Join(model, "metrics.jsonl"))
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	if len(lines) != 4 {
		t.Errorf("metrics.jsonl has %d lines, want 4 evaluations", len(lines))
	}
	var first map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	for _, k := range []string{"step", "train_loss", "val_loss", "val_auroc", "lr", "tokens_per_s"} {
		if _, ok := first[k]; !ok {
			t.Errorf("metrics line lacks %s: %s", k, lines[0])
		}
	}
	// The scorer gives what training predicted for the held-out split.
	s, err := bert.LoadScorer(model, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := eval.ReadPredictions(modelrepo.PredictionsFile(model, data.SplitHeldOut))
	if err != nil {
		t.Fatal(err)
	}
	preds, err := eval.RawScores(stored) // the raw probabilities beside the calibrated ones
	if err != nil {
		t.Fatal(err)
	}
	c, _ := data.LoadCohort(co.out)
	ds, _ := data.Open(meds)
	var ins []scorer.Input
	c.Sequences(ctx, ds, []string{data.SplitHeldOut}, func(q data.Sequence) error {
		ins = append(ins, scorer.Input{Events: q.Events, Birth: q.Label.Birth, Sex: q.Label.Sex, PredictionTime: q.Label.PredictionTime})
		return nil
	})
	res, err := s.Score(ds.Codes, ins)
	if err != nil {
		t.Fatal(err)
	}
	// The model's own tokenizer encodes values: some held-out history holds a value token.
	cm, valueTokens := s.Tokenizer().NewCodeMap(ds.Codes), 0
	for _, in := range ins {
		for _, id := range cm.Encode(tokenize.Input{Events: in.Events, Birth: in.Birth, PredictionTime: in.PredictionTime}, tokenize.Options{MaxLen: 64}).IDs {
			if s.Tokenizer().IsValueToken(id) {
				valueTokens++
			}
		}
	}
	if valueTokens == 0 {
		t.Error("no value token in the held-out encodings")
	}
	if len(res) != len(preds) || len(res) == 0 {
		t.Fatalf("%d scores, %d predictions", len(res), len(preds))
	}
	maxDiff := 0.0
	for i := range res {
		maxDiff = math.Max(maxDiff, math.Abs(res[i].Probability-preds[i].Score))
	}
	if maxDiff > 1e-5 {
		t.Errorf("scorer and training predictions differ by %.3g", maxDiff)
	}
	// Served with medseq serve's defaults, the BERT answers the same, in batches.
	want := map[[2]int64]float64{}
	for _, p := range preds {
		want[[2]int64{p.SubjectID, p.PredictionTime}] = p.Score
	}
	checkServedBERT(t, filepath.Join(out, "models"), meds, co.out, want)
	// Bad flags are usage errors.
	if err := runTrainClassify(ctx, e, append(args, "--config", "huge")); err == nil || !strings.Contains(err.Error(), "huge") {
		t.Errorf("--config huge: %v", err)
	}
	if err := runTrainClassify(ctx, e, args); err == nil || !strings.Contains(err.Error(), "force") {
		t.Errorf("existing output: %v", err)
	}
}

// TestTrainClassifyOnDataset trains on an existing dataset and cohort when
// MEDSEQ_BERT_MEDS and MEDSEQ_BERT_COHORT name them (a manual check of speed and AUROC;
// MEDSEQ_BERT_ARGS adds flags).
func TestTrainClassifyOnDataset(t *testing.T) {
	meds, cohort := os.Getenv("MEDSEQ_BERT_MEDS"), os.Getenv("MEDSEQ_BERT_COHORT")
	if meds == "" || cohort == "" {
		t.Skip("set MEDSEQ_BERT_MEDS and MEDSEQ_BERT_COHORT")
	}
	ctx := context.Background()
	out := t.TempDir()
	e := &env{stdout: os.Stdout, stderr: os.Stderr, stdin: strings.NewReader(""), log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	to := testTokenizerConfig(e, meds, cohort, filepath.Join(out, "tok"))
	to.Build.MaxLen = 128
	if _, err := tokenize.BuildFromCohort(ctx, to); err != nil {
		t.Fatal(err)
	}
	args := []string{"--meds", meds, "--cohort", cohort, "--tokenizer", to.Out, "--out", filepath.Join(out, "model")}
	args = append(args, strings.Fields(os.Getenv("MEDSEQ_BERT_ARGS"))...)
	if err := runTrainClassify(ctx, e, args); err != nil {
		t.Fatal(err)
	}
}

func TestTrainPretrainThenClassifyInit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a synthetic cohort and trains two tiny BERTs")
	}
	ctx := context.Background()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""), log: slog.New(slog.NewTextHandler(&stderr, nil))}
	meds := filepath.Join(out, "meds")
	if _, err := synth.Generate(ctx, synth.Config{Out: meds, Subjects: 800, Seed: 3, Logger: e.log}); err != nil {
		t.Fatal(err)
	}
	co := &cohortOptions{meds: meds, out: filepath.Join(out, "cohort"), cfg: data.DefaultCohortConfig()}
	co.cfg.Targets = []string{"ICD10/E11", "SNOMED/44054006"}
	co.cfg.Seed = 3
	if _, _, err := buildCohort(ctx, e, co); err != nil {
		t.Fatal(err)
	}
	to := testTokenizerConfig(e, meds, co.out, filepath.Join(out, "tok"))
	to.Build.MaxLen = 64
	if _, err := tokenize.BuildFromCohort(ctx, to); err != nil {
		t.Fatal(err)
	}
	in := []string{"--meds", meds, "--cohort", co.out, "--tokenizer", to.Out}
	run := filepath.Join(out, "runs", "mlm")
	pargs := append(append([]string(nil), in...), "--out", run, "--hidden", "32", "--layers", "1", "--heads", "2",
		"--max-steps", "8", "--epochs", "100", "--eval-every", "4", "--batch-size", "8", "--checkpoint-every", "4")
	if err := runTrainPretrain(ctx, e, pargs); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "masked-token accuracy") || !strings.Contains(stdout.String(), "steps              8 ") {
		t.Errorf("pretrain summary:\n%s", stdout.String())
	}
	m, err := modelrepo.ReadManifest(run)
	if err != nil || m.Kind != "bert-mlm" {
		t.Fatalf("pretrain manifest %+v: %v", m, err)
	}
	model := filepath.Join(out, "models", "bert", "1")
	cargs := append(append([]string(nil), in...), "--out", model, "--init", run, "--max-steps", "4", "--eval-every", "4", "--batch-size", "8")
	stderr.Reset()
	if err := runTrainClassify(ctx, e, cargs); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "newly initialized: [bert.pooler.dense.bias, bert.pooler.dense.weight, classifier.bias, classifier.weight]") {
		t.Errorf("no newly-initialised list in the log:\n%s", stderr.String())
	}
	if _, err := bert.LoadScorer(model, nil); err != nil {
		t.Errorf("the fine-tuned model does not load: %v", err)
	}
	// Explicit model flags that contradict the pretrained config are refused.
	bad := append(append([]string(nil), in...), "--out", filepath.Join(out, "bad"), "--init", run, "--max-steps", "4", "--layers", "2")
	if err := runTrainClassify(ctx, e, bad); err == nil || !strings.Contains(err.Error(), "config mismatch") {
		t.Errorf("--layers 2 over a 1-layer checkpoint: %v", err)
	}
	// The demo's --pretrain stage.
	pres, cres, err := demoPretrain(ctx, e, train.Inputs{MEDS: meds, Cohort: co.out, Tokenizer: to.Out}, filepath.Join(out, "demo"), false, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	if pres.Steps != 4 || cres.Steps != 4 || cres.AUROC[data.SplitTuning] == 0 {
		t.Errorf("demo pretrain: %d and %d steps, tuning AUROC %v", pres.Steps, cres.Steps, cres.AUROC)
	}
}

func TestBERTStepFlags(t *testing.T) {
	e := &env{stdout: io.Discard, stderr: io.Discard, stdin: strings.NewReader(""), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	base := []string{"--meds", "m", "--cohort", "c", "--tokenizer", "t", "--out", "o"}
	cfg, err := trainClassifyFlags(e, append(base, "--epochs", "2", "--max-steps", "10", "--checkpoint-every", "5", "--resume"))
	if err != nil || cfg.Epochs != 2 || cfg.MaxSteps != 10 || cfg.CheckpointEvery != 5 || !cfg.Resume || cfg.Config != "tiny" {
		t.Errorf("classify flags %+v: %v", cfg, err)
	}
	if cfg, err = trainClassifyFlags(e, append(base, "--max-steps", "40")); err != nil || cfg.Epochs != 0 || cfg.MaxSteps != 40 {
		t.Errorf("--max-steps alone: %+v %v", cfg, err)
	}
	cfg, err = trainClassifyFlags(e, append(base, "--init", "runs/mlm"))
	if err != nil || cfg.Config != "" || cfg.Dropout != -1 || cfg.Init != "runs/mlm" {
		t.Errorf("--init takes the checkpoint's config and dropout: %+v %v", cfg, err)
	}
	if _, err := trainPretrainFlags(e, append(base, "--epochs", "0")); err == nil {
		t.Errorf("pretrain with no epochs and no max steps accepted")
	}
	if _, err := trainPretrainFlags(e, append(base, "--mask-rate", "1.5")); err == nil {
		t.Errorf("--mask-rate 1.5 accepted")
	}
	p, err := trainPretrainFlags(e, append(base, "--max-steps", "3", "--epochs", "0"))
	if err != nil || p.MaxSteps != 3 || p.MaskRate != 0.15 {
		t.Errorf("pretrain flags %+v: %v", p, err)
	}
}

// testTokenizerConfig is tokenize build's defaults for meds and cohort, written to out.
func testTokenizerConfig(e *env, meds, cohort, out string) tokenize.FromCohortConfig {
	return tokenize.FromCohortConfig{MEDS: meds, Cohort: cohort, Out: out, Build: tokenize.DefaultBuildConfig(),
		Leak: tokenize.LeakConfig{Threshold: 0.95}, Log: e.log}
}

// TestClassifyScheduleFlags: the schedule's flags left out are chosen by the run (and
// --max-steps alone decides the length), --pos-weight, --pooling and
// --early-stopping-metric are read or refused.
func TestClassifyScheduleFlags(t *testing.T) {
	e := &env{stdout: io.Discard, stderr: io.Discard, stdin: strings.NewReader(""), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	base := []string{"--meds", "m", "--cohort", "c", "--tokenizer", "t", "--out", "o"}
	for _, tc := range []struct {
		name      string
		args      []string
		auto      train.AutoSettings
		posWeight float64
		pooling   string
		stop      string
		err       string
	}{
		{"defaults", nil, train.AllAuto(), 0, bert.PoolingCLS, train.StopOnLoss, ""},
		{"lr and epochs given", []string{"--lr", "2e-3", "--epochs", "5"},
			train.AutoSettings{Warmup: true, Patience: true, EvalEvery: true}, 0, bert.PoolingCLS, train.StopOnLoss, ""},
		{"max steps alone", []string{"--max-steps", "30", "--eval-every", "10", "--patience", "2", "--warmup", "0"},
			train.AutoSettings{LR: true}, 0, bert.PoolingCLS, train.StopOnLoss, ""},
		{"no class weighting", []string{"--pos-weight", "none"}, train.AllAuto(), 1, bert.PoolingCLS, train.StopOnLoss, ""},
		{"a weight", []string{"--pos-weight", "2.5", "--pooling", "mean", "--early-stopping-metric", "auroc"},
			train.AllAuto(), 2.5, bert.PoolingMean, train.StopOnAUROC, ""},
		{"init keeps its pooling", []string{"--init", "runs/mlm"}, train.AllAuto(), 0, "", train.StopOnLoss, ""},
		{"bad weight", []string{"--pos-weight", "-1"}, train.AutoSettings{}, 0, "", "", "--pos-weight"},
		{"weight zero", []string{"--pos-weight", "0"}, train.AutoSettings{}, 0, "", "", "--pos-weight"},
		{"bad pooling", []string{"--pooling", "max"}, train.AutoSettings{}, 0, "", "", "--pooling"},
		{"bad metric", []string{"--early-stopping-metric", "f1"}, train.AutoSettings{}, 0, "", "", "--early-stopping-metric"},
		{"negative patience", []string{"--patience", "-1"}, train.AutoSettings{}, 0, "", "", "--patience"},
	} {
		// eval curve's BERT fits read the same flags as train classify, each fit choosing the
		// schedule from its own fraction's labels.
		for cmd, parse := range map[string]func([]string) (*train.BERTClassifyConfig, error){
			"train classify": func(args []string) (*train.BERTClassifyConfig, error) { return trainClassifyFlags(e, args) },
			"eval curve": func(args []string) (*train.BERTClassifyConfig, error) {
				o, err := curveFlags(e, args)
				if err != nil {
					return nil, err
				}
				return &o.cfg.BERT, nil
			},
		} {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				cfg, err := parse(append(append([]string(nil), base...), tc.args...))
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("err %v, want one naming %s", err, tc.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Auto != tc.auto || cfg.PosWeight != tc.posWeight || cfg.Pooling != tc.pooling ||
					cfg.EarlyStopping != tc.stop {
					t.Errorf("auto %+v, pos weight %v, pooling %q, early stopping %q", cfg.Auto, cfg.PosWeight,
						cfg.Pooling, cfg.EarlyStopping)
				}
			})
		}
	}
}
