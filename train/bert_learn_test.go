package train

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/internal/testpy"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
)

// Real small trainings on the synthetic fixture for what makes fine-tuning learn on small
// cohorts: the schedule chosen from the cohort, early stopping on the tuning AUROC or loss
// with the best weights kept, the class weighting in the loss, mean pooling, and the warning
// of a run that never left its initial loss.

// TestClassifyLRZeroNeverLeavesInitialLoss: at learning rate 0 nothing is learned; the run
// warns (log, manifest, result) that its training loss stayed at the loss of predicting the
// prevalence, and that loss shows the positives weighted as --pos-weight says.
func TestClassifyLRZeroNeverLeavesInitialLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three tiny BERTs")
	}
	f := getFixture(t)
	for _, tc := range []struct {
		name      string
		posWeight float64 // 0: auto
		rule      string
	}{{"auto", 0, "auto"}, {"none", 1, "none"}, {"given", 2.5, "given"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := classifyCfg(f, filepath.Join(t.TempDir(), tc.name))
			c.LR, c.Epochs, c.MaxSteps, c.Warmup, c.PosWeight = 0, 2, 0, 0, tc.posWeight
			var logBuf bytes.Buffer
			res, err := BERTClassify(context.Background(), c, slog.New(slog.NewTextHandler(&logBuf, nil)), nil)
			if err != nil {
				t.Fatal(err)
			}
			prev := trainingPrevalence(t, f)
			w := tc.posWeight
			if w == 0 {
				w = (1 - prev) / prev
			}
			if math.Abs(res.PosWeight-w) > 1e-9 {
				t.Fatalf("positive weight %v, want %v", res.PosWeight, w)
			}
			// Untrained logits are near 0, where each row's loss is about its weight times ln 2.
			mean := 0.0
			for _, m := range res.History {
				mean += m.TrainLoss / float64(len(res.History))
			}
			if want := math.Ln2 * (w*prev + 1 - prev); math.Abs(mean-want) > 0.1*want {
				t.Errorf("mean training loss %.4f, want about %.4f for positives weighing %.3g", mean, want, w)
			}
			if !res.Stuck || len(res.Warnings) != 1 ||
				!strings.Contains(res.Warnings[0], "training loss never left its initial value") {
				t.Fatalf("stuck %v, warnings %q", res.Stuck, res.Warnings)
			}
			if !strings.Contains(logBuf.String(), "level=WARN msg=\"training loss never left its initial value") ||
				!strings.Contains(logBuf.String(), "the calibration is fitted on the tuning split afterwards") {
				t.Errorf("log lacks the warning or the calibration note:\n%s", logBuf.String())
			}
			m, err := modelrepo.ReadManifest(c.Out)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.Warnings, res.Warnings) || m.Params["pos_weight_rule"] != tc.rule ||
				math.Abs(m.Metrics["train_loss_prevalence"]-constantLoss(prev, w)) > 1e-9 {
				t.Errorf("manifest warnings %q, rule %v, prevalence loss %v", m.Warnings, m.Params["pos_weight_rule"],
					m.Metrics["train_loss_prevalence"])
			}
		})
	}
}

// trainingPrevalence is the fixture's share of positives among its training labels.
func trainingPrevalence(t *testing.T, f fixture) float64 {
	t.Helper()
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	n, pos := 0, 0
	for _, l := range c.Labels {
		if l.Split == data.SplitTrain {
			n++
			if l.Value {
				pos++
			}
		}
	}
	return float64(pos) / float64(n)
}

// TestClassifyLearnsAndDoesNotWarn: a run that learns leaves its initial loss and gets no
// warning.
func TestClassifyLearnsAndDoesNotWarn(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny BERT")
	}
	c := classifyCfg(getFixture(t), filepath.Join(t.TempDir(), "m"))
	c.LR, c.MaxSteps, c.EvalEvery, c.Dropout, c.WeightDecay, c.Hidden, c.Intermediate = 1e-2, 120, 40, 0, 0, 32, 64
	res, err := BERTClassify(context.Background(), c, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.History {
		t.Logf("step %d: training loss %.4f, tuning AUROC %.3f", m.Step, m.TrainLoss, m.ValAUROC)
	}
	if res.Stuck || len(res.Warnings) > 0 || res.AUROC[data.SplitTrain] < 0.8 {
		t.Errorf("stuck %v, warnings %q, training AUROC %.3f", res.Stuck, res.Warnings, res.AUROC[data.SplitTrain])
	}
}

// TestClassifyEarlyStopping: early stopping follows the metric asked for, stops once
// --patience epochs bring nothing better, and the folder holds the best evaluation's weights
// (the saved model's tuning loss is that evaluation's, not the last one's).
func TestClassifyEarlyStopping(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two tiny BERTs")
	}
	f := getFixture(t)
	for _, tc := range []struct {
		metric, name string
		score        func(BERTMetrics) float64
	}{
		{StopOnAUROC, "tuning AUROC", func(m BERTMetrics) float64 { return m.ValAUROC }},
		{StopOnLoss, "validation loss", func(m BERTMetrics) float64 { return -m.ValLoss }},
	} {
		t.Run(tc.metric, func(t *testing.T) {
			c := classifyCfg(f, filepath.Join(t.TempDir(), tc.metric))
			c.EarlyStopping, c.LR, c.Epochs, c.MaxSteps, c.Patience, c.Dropout = tc.metric, 1e-2, 100, 0, 1, 0
			c.Auto = AutoSettings{EvalEvery: true}
			res, err := BERTClassify(context.Background(), c, quietLog(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(res.Stopped, "early stopping: no better "+tc.name) {
				t.Fatalf("stopped: %q after %d steps", res.Stopped, res.Steps)
			}
			checkBest(t, res, tc.score)
			m, err := modelrepo.ReadManifest(c.Out)
			if err != nil {
				t.Fatal(err)
			}
			if m.Params["early_stopping"] != tc.name || m.Params["patience_epochs"] != float64(1) {
				t.Errorf("manifest early_stopping %v, patience %v",
					m.Params["early_stopping"], m.Params["patience_epochs"])
			}
			checkSavedTuningLoss(t, c.Out, res)
		})
	}
}

// checkBest checks that the best step is the first evaluation with the best score and that
// training went on a full epoch after it.
func checkBest(t *testing.T, res *BERTClassifyResult, score func(BERTMetrics) float64) {
	t.Helper()
	var best BERTMetrics
	for _, m := range res.History {
		if m.Step == res.BestStep {
			best = m
		}
	}
	for _, m := range res.History {
		if m.Step < res.BestStep && score(m) >= score(best) || m.Step > res.BestStep && score(m) > score(best) {
			t.Errorf("step %d scores %v, the best step %d %v", m.Step, score(m), res.BestStep, score(best))
		}
	}
	perEpoch := res.History[0].Step // one evaluation per epoch
	if res.Steps-res.BestStep < perEpoch || len(res.History) < 2 {
		t.Errorf("stopped at step %d, best %d, %d steps per epoch", res.Steps, res.BestStep, perEpoch)
	}
	if res.BestAUROC != best.ValAUROC || res.BestLoss != best.ValLoss {
		t.Errorf("result's best AUROC %v and loss %v, the history's %v and %v",
			res.BestAUROC, res.BestLoss, best.ValAUROC, best.ValLoss)
	}
}

// checkSavedTuningLoss recomputes the tuning loss from the folder's raw tuning predictions:
// the best evaluation's, and when the last evaluation's differs, not that one.
func checkSavedTuningLoss(t *testing.T, dir string, res *BERTClassifyResult) {
	t.Helper()
	stored, err := eval.ReadPredictions(modelrepo.PredictionsFile(dir, data.SplitTuning))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := eval.RawScores(stored)
	if err != nil {
		t.Fatal(err)
	}
	logits, y := make([]float32, len(raw)), make([]float32, len(raw))
	for i, p := range raw {
		logits[i] = float32(math.Log(p.Score) - math.Log1p(-p.Score))
		if p.Label {
			y[i] = 1
		}
	}
	got := bceLoss(logits, y, res.PosWeight)
	last := res.History[len(res.History)-1].ValLoss
	if math.Abs(got-res.BestLoss) > 1e-4 {
		t.Errorf("the saved model's tuning loss %.6f, the best evaluation's %.6f (the last one's %.6f)",
			got, res.BestLoss, last)
	}
	if math.Abs(last-res.BestLoss) > 1e-3 && math.Abs(got-last) < 1e-4 {
		t.Errorf("the saved model is the last evaluation's (%.6f), not the best's (%.6f)", last, res.BestLoss)
	}
}

// TestClassifyAutoSchedule: the settings left to the run are chosen from its training labels,
// logged, recorded in the manifest and used (evaluation once per epoch, the rule's rate).
func TestClassifyAutoSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny BERT")
	}
	c := classifyCfg(getFixture(t), filepath.Join(t.TempDir(), "m"))
	c.Auto = AutoSettings{LR: true, Warmup: true, Patience: true, EvalEvery: true}
	c.MaxSteps, c.Epochs = 30, 0 // the length is the user's
	var logBuf bytes.Buffer
	res, err := BERTClassify(context.Background(), c, slog.New(slog.NewTextHandler(&logBuf, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Schedule
	want := AutoClassifySchedule(res.Rows[data.SplitTrain], c.BatchSize, res.Config.HiddenSize)
	if s != want {
		t.Fatalf("schedule %+v, want %+v", s, want)
	}
	line := fmt.Sprintf("auto: %s training labels → lr %g, warmup 10%%, patience %d epochs, evaluated every epoch",
		thousands(s.Labels), s.LR, s.Patience)
	if !strings.Contains(logBuf.String(), line) {
		t.Errorf("log lacks %q:\n%s", line, logBuf.String())
	}
	perEpoch := (s.Labels + c.BatchSize - 1) / c.BatchSize
	for _, m := range res.History {
		if m.Step%perEpoch != 0 && m.Step != 30 {
			t.Errorf("evaluated at step %d, not once per epoch of %d steps", m.Step, perEpoch)
		}
		if m.LR > s.LR {
			t.Errorf("step %d at lr %g above the chosen %g", m.Step, m.LR, s.LR)
		}
	}
	m, err := modelrepo.ReadManifest(c.Out)
	if err != nil {
		t.Fatal(err)
	}
	sched, _ := m.Params["schedule"].(map[string]any)
	if m.Params["lr"] != s.LR || m.Params["warmup_steps"] != float64(3) ||
		m.Params["eval_every"] != float64(perEpoch) ||
		fmt.Sprint(sched["auto"]) != "[lr warmup patience eval-every]" || sched["train_labels"] != float64(s.Labels) {
		t.Errorf("manifest lr %v, warmup %v, eval_every %v, schedule %v", m.Params["lr"], m.Params["warmup_steps"],
			m.Params["eval_every"], sched)
	}
}

// TestClassifyMeanPooling: --pooling mean is saved in config.json, the folder says that
// transformers cannot pool so, and the independent PyTorch BERT pooling the mean gives the
// served logits.
func TestClassifyMeanPooling(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny BERT and runs PyTorch")
	}
	f := getFixture(t)
	c := classifyCfg(f, filepath.Join(t.TempDir(), "m"))
	c.Pooling, c.LR, c.MaxSteps, c.EvalEvery, c.Dropout, c.WeightDecay = bert.PoolingMean, 3e-3, 60, 60, 0, 0
	if _, err := BERTClassify(context.Background(), c, quietLog(), nil); err != nil {
		t.Fatal(err)
	}
	bdir := modelrepo.BERTPath(c.Out)
	cfg := readJSONFile(t, filepath.Join(bdir, bert.ConfigFile))
	if cfg["medseq_pooling"] != bert.PoolingMean ||
		!strings.Contains(fmt.Sprint(cfg["medseq_pooling_note"]), "always pools [CLS]") {
		t.Errorf("config.json medseq_pooling %v, note %v", cfg["medseq_pooling"], cfg["medseq_pooling_note"])
	}
	if readme, err := os.ReadFile(filepath.Join(bdir, bert.ReadmeFile)); err != nil ||
		!strings.Contains(string(readme), "mean") {
		t.Errorf("README.md: %v", err)
	}
	m, err := modelrepo.ReadManifest(c.Out)
	if err != nil || m.Params["pooling"] != bert.PoolingMean {
		t.Fatalf("manifest pooling %v: %v", m.Params["pooling"], err)
	}
	python := testpy.Require(t, "python3-torch", "torch")
	h := cohortHistories(t, f, c.Out, c.MaxLen, c.MaxLen)
	ids, mask := padded(h.ours, h.pad)
	checkPyTorchLogits(t, python, c.Out, h, ids, mask, c.MaxLen)
}

// padded pads id rows on the right to the longest with pad, with their attention mask.
func padded(rows [][]int32, pad int32) (ids, mask [][]int32) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r))
	}
	for _, r := range rows {
		row, m := make([]int32, width), make([]int32, width)
		for j := range row {
			row[j] = pad
			if j < len(r) {
				row[j], m[j] = r[j], 1
			}
		}
		ids, mask = append(ids, row), append(mask, m)
	}
	return ids, mask
}
