package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// fixture is a small synthetic dataset, cohort and tokenizer shared by the tests.
type fixture struct {
	root, meds, cohort, tok string
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// buildTok builds a tokenizer for the fixture's cohort into out.
func buildTok(ctx context.Context, meds, cohort, out string, bc tokenize.BuildConfig) error {
	return buildTokWith(ctx, meds, cohort, out, bc, false)
}

// buildTokWith is buildTok, with visit separators or without.
func buildTokWith(ctx context.Context, meds, cohort, out string, bc tokenize.BuildConfig, visits bool) error {
	c, err := data.LoadCohort(cohort)
	if err != nil {
		return err
	}
	ds, err := data.Open(meds)
	if err != nil {
		return err
	}
	counter := tokenize.NewCounter(ds.Codes)
	err = c.Sequences(ctx, ds, []string{data.SplitTrain}, func(s data.Sequence) error {
		counter.Add(s.Events, map[bool]int{true: 1, false: 0}[s.Label.Value])
		return nil
	})
	if err != nil {
		return err
	}
	tok, rep, err := tokenize.Build(counter, bc)
	if err != nil {
		return err
	}
	tok.VisitSeparators = visits
	m := data.NewManifest(tokenize.StageTokenize, nil)
	for name, p := range map[string]string{data.InputMEDS: meds, "cohort": cohort} {
		if _, err := m.AddInput(name, p); err != nil {
			return err
		}
	}
	return tokenize.Save(out, false, tok, tokenize.Config{Build: rep}, m)
}

func getFixture(t *testing.T) fixture {
	t.Helper()
	fixOnce.Do(func() {
		ctx := context.Background()
		root, err := os.MkdirTemp("", "medseq-train-test-*")
		if err != nil {
			fixErr = err
			return
		}
		f := fixture{root: root, meds: filepath.Join(root, "meds"), cohort: filepath.Join(root, "cohort"),
			tok: filepath.Join(root, "tok")}
		if _, err := synth.Generate(ctx, synth.Config{Out: f.meds, Subjects: 600, Seed: 5,
			Logger: quietLog()}); err != nil {
			fixErr = err
			return
		}
		ds, err := data.Open(f.meds)
		if err != nil {
			fixErr = err
			return
		}
		cc := data.DefaultCohortConfig()
		cc.Targets = []string{"ICD10/E11", "SNOMED/44054006"}
		cc.Seed = 5
		res, err := data.BuildCohort(ctx, ds, cc)
		if err != nil {
			fixErr = err
			return
		}
		m := data.NewManifest(data.StageCohort, cc.Params())
		if _, err := m.AddInput(data.InputMEDS, f.meds); err != nil {
			fixErr = err
			return
		}
		if fixErr = data.WriteCohort(f.cohort, false, res, m); fixErr != nil {
			return
		}
		bc := tokenize.DefaultBuildConfig()
		bc.MaxLen = 32
		fixErr = buildTok(ctx, f.meds, f.cohort, f.tok, bc)
		fix = f
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix.root != "" {
		os.RemoveAll(fix.root)
	}
	os.Exit(code)
}

func tinyTraining() BERTTraining {
	return BERTTraining{BatchSize: 8, LR: 2e-3, Warmup: 2, WeightDecay: 0.01, Clip: 1, MaxSteps: 12, EvalEvery: 4,
		Patience: 0, OverfitK: 2, Seed: 7, Device: "cpu"}
}

func tinyModel() BERTModel {
	return BERTModel{Config: "tiny", Hidden: 16, Layers: 1, Heads: 2, Intermediate: 32, MaxLen: 32, Dropout: 0.1}
}

func pretrainCfg(f fixture, out string) BERTPretrainConfig {
	c := DefaultBERTPretrainConfig()
	c.Inputs = Inputs{MEDS: f.meds, Cohort: f.cohort, Tokenizer: f.tok}
	c.Out, c.BERTModel, c.BERTTraining = out, tinyModel(), tinyTraining()
	return c
}

func classifyCfg(f fixture, out string) BERTClassifyConfig {
	c := DefaultBERTClassifyConfig()
	c.Inputs = Inputs{MEDS: f.meds, Cohort: f.cohort, Tokenizer: f.tok}
	c.Out, c.BERTModel, c.BERTTraining = out, tinyModel(), tinyTraining()
	return c
}

// metricsWithoutTiming reads metrics.jsonl without the wall-clock fields.
func metricsWithoutTiming(t *testing.T, dir string) []map[string]any {
	t.Helper()
	buf, err := os.ReadFile(filepath.Join(dir, modelrepo.TrainLogFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(buf)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "tokens_per_s")
		delete(m, "elapsed_s")
		out = append(out, m)
	}
	return out
}

func sameModel(t *testing.T, what, a, b string) {
	t.Helper()
	wa, err := os.ReadFile(filepath.Join(modelrepo.BERTPath(a), bert.SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	wb, err := os.ReadFile(filepath.Join(modelrepo.BERTPath(b), bert.SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wa, wb) {
		t.Errorf("%s: the final weights differ", what)
	}
	ma, mb := metricsWithoutTiming(t, a), metricsWithoutTiming(t, b)
	if !reflect.DeepEqual(ma, mb) {
		t.Errorf("%s: metrics differ:\n%v\n%v", what, ma, mb)
	}
}

// killAfter returns a context cancelled right after the checkpoint at step k, as a kill
// would stop the process.
func killAfter(k int) (context.Context, func(int)) {
	ctx, cancel := context.WithCancel(context.Background())
	return ctx, func(step int) {
		if step == k {
			cancel()
		}
	}
}

func TestPretrainResumeEqualsUnbrokenRun(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	ctx := context.Background()
	log := quietLog()

	a := pretrainCfg(f, filepath.Join(dir, "a"))
	ra, err := BERTPretrain(ctx, a, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Steps != 12 || len(ra.History) != 3 {
		t.Fatalf("steps %d, evaluations %d", ra.Steps, len(ra.History))
	}
	// Two unbroken runs with one seed agree.
	c := pretrainCfg(f, filepath.Join(dir, "c"))
	if _, err := BERTPretrain(ctx, c, log, nil); err != nil {
		t.Fatal(err)
	}
	sameModel(t, "two unbroken runs", a.Out, c.Out)

	// Killed right after the checkpoint at step 6 (between evaluations), then resumed.
	b := pretrainCfg(f, filepath.Join(dir, "b"))
	b.CheckpointEvery = 3
	kctx, hook := killAfter(6)
	b.afterCheckpoint = hook
	if _, err := BERTPretrain(kctx, b, log, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run: %v", err)
	}
	if _, err := os.Stat(b.Out); !os.IsNotExist(err) {
		t.Fatalf("a killed run left its output folder: %v", err)
	}
	cks, _ := filepath.Glob(filepath.Join(WorkDir(b.Out), checkpointPrefix+"*"))
	if len(cks) != 1 || filepath.Base(cks[0]) != ckptName(6) {
		t.Fatalf("checkpoints %v, want only step 6", cks)
	}
	// Without --resume the checkpoint is not silently discarded.
	b.afterCheckpoint = nil
	if _, err := BERTPretrain(ctx, b, log, nil); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("rerun without --resume: %v", err)
	}
	b.Resume = true
	rb, err := BERTPretrain(ctx, b, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Steps != 12 || len(rb.History) != 3 {
		t.Fatalf("resumed: steps %d, evaluations %d", rb.Steps, len(rb.History))
	}
	sameModel(t, "killed and resumed vs unbroken", a.Out, b.Out)
	if _, err := os.Stat(WorkDir(b.Out)); !os.IsNotExist(err) {
		t.Errorf("the work folder outlived a finished run: %v", err)
	}

	// The run folder: kind bert-mlm, encoder and MLM head, tokenizer, metrics.
	m, err := modelrepo.ReadManifest(a.Out)
	if err != nil || m.Kind != KindBERTMLM {
		t.Fatalf("manifest %+v: %v", m, err)
	}
	w, _, err := bert.Load(modelrepo.BERTPath(a.Out))
	if err != nil {
		t.Fatal(err)
	}
	if !w.Heads.MLM || w.Heads.Classifier {
		t.Errorf("heads %+v, want the MLM head only", w.Heads)
	}
	for _, p := range []string{tokenize.HFFile, tokenize.VocabFile, modelrepo.TrainLogFile} {
		if _, err := os.Stat(filepath.Join(a.Out, p)); err != nil {
			t.Errorf("run folder lacks %s", p)
		}
	}
	for _, k := range []string{"step", "train_loss", "val_loss", "val_mlm_accuracy", "lr", "tokens_per_s"} {
		if _, ok := metricsWithoutTiming(t, c.Out)[0][k]; !ok && k != "tokens_per_s" {
			t.Errorf("metrics line lacks %s", k)
		}
	}
	if acc := ra.History[len(ra.History)-1].ValMLMAccuracy; acc <= 0 || acc > 1 {
		t.Errorf("validation MLM accuracy %v", acc)
	}
}

func TestClassifyResumeEqualsUnbrokenRunAndInit(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	ctx := context.Background()
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))

	pre := pretrainCfg(f, filepath.Join(dir, "mlm"))
	pre.MaxSteps = 4
	if _, err := BERTPretrain(ctx, pre, quietLog(), nil); err != nil {
		t.Fatal(err)
	}

	a := classifyCfg(f, filepath.Join(dir, "a"))
	a.Init, a.Config, a.Hidden, a.Layers, a.Heads, a.Intermediate = pre.Out, "", 0, 0, 0, 0
	if _, err := BERTClassify(ctx, a, log, nil); err != nil {
		t.Fatal(err)
	}
	want := "are newly initialized: [bert.pooler.dense.bias, bert.pooler.dense.weight, " +
		"classifier.bias, classifier.weight]"
	if !strings.Contains(logBuf.String(), want) ||
		!strings.Contains(logBuf.String(), "were not used when initializing") {
		t.Errorf("log lacks the newly-initialised list:\n%s", logBuf.String())
	}
	m, _ := modelrepo.ReadManifest(a.Out)
	if _, ok := m.Input("init"); !ok {
		t.Errorf("manifest records no init input")
	}

	b := classifyCfg(f, filepath.Join(dir, "b"))
	b.Init, b.Config, b.Hidden, b.Layers, b.Heads, b.Intermediate = pre.Out, "", 0, 0, 0, 0
	b.CheckpointEvery = 5
	kctx, hook := killAfter(5)
	b.afterCheckpoint = hook
	if _, err := BERTClassify(kctx, b, quietLog(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run: %v", err)
	}
	b.afterCheckpoint, b.Resume = nil, true
	if _, err := BERTClassify(ctx, b, quietLog(), nil); err != nil {
		t.Fatal(err)
	}
	sameModel(t, "classify killed and resumed vs unbroken", a.Out, b.Out)
	for _, p := range []string{"predictions_tuning.parquet", "calibration.json"} {
		pa, _ := os.ReadFile(filepath.Join(a.Out, p))
		pb, _ := os.ReadFile(filepath.Join(b.Out, p))
		if len(pa) == 0 || !bytes.Equal(pa, pb) {
			t.Errorf("%s differs between the unbroken and the resumed run", p)
		}
	}

	// A config that does not match the pretrained one is a clear error.
	bad := classifyCfg(f, filepath.Join(dir, "bad"))
	bad.Init, bad.Layers = pre.Out, 3
	if _, err := BERTClassify(ctx, bad, quietLog(), nil); err == nil ||
		!strings.Contains(err.Error(), "config mismatch") || !strings.Contains(err.Error(), "num_hidden_layers") {
		t.Errorf("layers mismatch: %v", err)
	}
	// A pretrain run from another tokenizer is refused.
	tok2 := filepath.Join(dir, "tok2")
	bc := tokenize.DefaultBuildConfig()
	bc.MaxLen, bc.MinCount = 32, 2
	if err := buildTok(ctx, f.meds, f.cohort, tok2, bc); err != nil {
		t.Fatal(err)
	}
	other := classifyCfg(f, filepath.Join(dir, "other"))
	other.Tokenizer, other.Init, other.Config, other.Hidden, other.Layers, other.Heads, other.Intermediate =
		tok2, pre.Out, "", 0, 0, 0, 0
	if _, err := BERTClassify(ctx, other, quietLog(), nil); err == nil ||
		!strings.Contains(err.Error(), "different tokenizer") {
		t.Errorf("other tokenizer: %v", err)
	}
}

func TestCorruptCheckpointIsAClearError(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	log := quietLog()
	c := classifyCfg(f, filepath.Join(dir, "m"))
	c.CheckpointEvery = 4
	kctx, hook := killAfter(4)
	c.afterCheckpoint = hook
	if _, err := BERTClassify(kctx, c, log, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run: %v", err)
	}
	c.afterCheckpoint, c.Resume = nil, true
	ck := filepath.Join(WorkDir(c.Out), ckptName(4))
	ctx := context.Background()

	// Settings that differ from the checkpoint's.
	lr := c
	lr.LR = 1e-2
	if _, err := BERTClassify(ctx, lr, log, nil); err == nil || !strings.Contains(err.Error(), "settings differ") ||
		!strings.Contains(err.Error(), "lr") {
		t.Errorf("changed --lr: %v", err)
	}
	// A truncated weights file.
	wp := filepath.Join(ck, bert.StateWeightsFile)
	buf, _ := os.ReadFile(wp)
	if err := os.WriteFile(wp, buf[:len(buf)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := BERTClassify(ctx, c, log, nil); err == nil || !strings.Contains(err.Error(), "unusable") ||
		!strings.Contains(err.Error(), bert.StateWeightsFile) {
		t.Errorf("truncated weights: %v", err)
	}
	// A checkpoint of the earlier format (the optimizer's step in state.json, no format in
	// the engine's files) is refused, not misread.
	st := filepath.Join(ck, ckptStateFile)
	sbuf, err := os.ReadFile(st)
	if err != nil {
		t.Fatal(err)
	}
	var old map[string]any
	if err := json.Unmarshal(sbuf, &old); err != nil {
		t.Fatal(err)
	}
	old["format"], old["optimizer_steps"] = 1, 4
	obuf, _ := json.Marshal(old)
	if err := os.WriteFile(st, obuf, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := BERTClassify(ctx, c, log, nil); err == nil || !strings.Contains(err.Error(), "unusable") ||
		!strings.Contains(err.Error(), "format 1, this build reads 2") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("format 1 checkpoint: %v", err)
	}
	// A garbled state.json.
	if err := os.WriteFile(filepath.Join(ck, ckptStateFile),
		[]byte("{\"format\": 1, \"loop\": [}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := BERTClassify(ctx, c, log, nil); err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Errorf("garbled state: %v", err)
	}
	// --force starts over.
	c.Resume, c.Force = false, true
	if _, err := BERTClassify(ctx, c, log, nil); err != nil {
		t.Errorf("--force over a corrupt checkpoint: %v", err)
	}
}

func TestStepsFromEpochsAndMaxSteps(t *testing.T) {
	for _, tc := range []struct {
		epochs        float64
		max, per, out int
	}{{3, 0, 10, 30}, {0, 7, 10, 7}, {3, 7, 10, 7}, {0.5, 100, 10, 5}, {1.05, 0, 10, 11}} {
		if got := totalSteps(tc.epochs, tc.max, tc.per); got != tc.out {
			t.Errorf("totalSteps(%v, %d, %d) = %d, want %d", tc.epochs, tc.max, tc.per, got, tc.out)
		}
	}
}

func TestSampleOrderIsAFunctionOfSeedAndStep(t *testing.T) {
	a := &sampleOrder{n: 10, batch: 4, seed: 3}
	var seq []int
	for s := 0; s < 5; s++ {
		seq = append(seq, a.rows(s)...)
	}
	// A fresh order asked for a later step first gives the same rows.
	b := &sampleOrder{n: 10, batch: 4, seed: 3}
	if got := b.rows(3); !reflect.DeepEqual(got, seq[12:16]) {
		t.Errorf("step 3 = %v, want %v", got, seq[12:16])
	}
	// Each epoch is a permutation.
	for e := 0; e < 2; e++ {
		seen := map[int]bool{}
		for _, i := range seq[e*10 : e*10+10] {
			seen[i] = true
		}
		if len(seen) != 10 {
			t.Errorf("epoch %d covers %d of 10 rows", e, len(seen))
		}
	}
	if c := (&sampleOrder{n: 10, batch: 4, seed: 4}); reflect.DeepEqual(c.rows(0), seq[:4]) &&
		reflect.DeepEqual(c.rows(1), seq[4:8]) {
		t.Errorf("another seed gives the same order")
	}
}
