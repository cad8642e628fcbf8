package scorer_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
)

// TestPredictCohort: every label is predicted once, with the calibrated
// probability the model folder's own predictions hold and its raw probability beside it;
// splits narrow the labels; another dataset, a tampered folder and an empty selection are
// refused, with what to do.
func TestPredictCohort(t *testing.T) {
	f := buildFolder(t)
	ctx := context.Background()
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[key]eval.Prediction{}
	for _, split := range []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut} {
		ps, err := eval.ReadPredictions(modelrepo.PredictionsFile(f.model, split))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			stored[key{p.SubjectID, p.PredictionTime}] = p
		}
	}
	cfg := scorer.PredictConfig{Model: f.model, MEDS: f.meds, Cohort: f.cohort, Batch: 64}
	got, err := scorer.PredictCohort(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Scores) != len(c.Labels) || got.Kind != modelrepo.KindXGBoost || got.Calibration != eval.CalibrationIsotonic {
		t.Fatalf("%d predictions of %d labels, kind %q, calibration %q", len(got.Scores), len(c.Labels), got.Kind, got.Calibration)
	}
	if got.Rates.Codes == 0 || got.Rates.Whole == 0 {
		t.Errorf("code rates %+v: no codes counted", got.Rates)
	}
	labels := map[key]data.Label{}
	for _, l := range c.Labels {
		labels[key{l.SubjectID, l.PredictionTime}] = l
	}
	seen := map[key]bool{}
	for _, p := range got.Scores {
		k := key{p.Label.SubjectID, p.Label.PredictionTime}
		l, ok := labels[k]
		if !ok || seen[k] || p.Label != l {
			t.Fatalf("prediction %+v: label %+v (in the cohort %v, seen before %v)", p, l, ok, seen[k])
		}
		seen[k] = true
		want := stored[k]
		if p.Calibrated != want.Score || eval.FormatRaw(p.Raw) != want.Attrs[eval.ColRawProbability] {
			t.Fatalf("subject %d: calibrated %v raw %v; the folder holds %v raw %s", l.SubjectID, p.Calibrated,
				p.Raw, want.Score, want.Attrs[eval.ColRawProbability])
		}
	}
	t.Run("splits", func(t *testing.T) {
		cfg := cfg
		cfg.Splits = []string{data.SplitHeldOut}
		held, err := scorer.PredictCohort(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range c.Labels {
			if l.Split == data.SplitHeldOut {
				n++
			}
		}
		if len(held.Scores) != n || n == 0 {
			t.Errorf("%d held_out predictions, %d held_out labels", len(held.Scores), n)
		}
		for _, bad := range []string{"nosuch", "all"} {
			cfg.Splits = []string{data.SplitHeldOut, bad}
			_, err := scorer.PredictCohort(ctx, cfg)
			if !errors.Is(err, scorer.ErrUnknownSplit) || !strings.Contains(err.Error(), strconv.Quote(bad)) ||
				!strings.Contains(err.Error(), "held_out, train, tuning") {
				t.Errorf("split %q, which has no labels: %v", bad, err)
			}
		}
	})
	t.Run("other dataset", func(t *testing.T) { predictOtherDataset(t, cfg, len(c.Labels)) })
	t.Run("tampered model", func(t *testing.T) {
		path := modelrepo.CalibrationPath(f.model)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(path, orig, 0o644)
		if err := os.WriteFile(path, append(bytes.Clone(orig), ' '), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := scorer.PredictCohort(ctx, cfg); err == nil || !strings.Contains(err.Error(), filepath.Base(path)) {
			t.Errorf("a changed calibration.json: %v", err)
		}
	})
}

// predictOtherDataset changes the dataset (one more file, so another fingerprint): refused
// without AllowMismatch, scored with it and a warning.
func predictOtherDataset(t *testing.T, cfg scorer.PredictConfig, labels int) {
	extra := filepath.Join(cfg.MEDS, "notes.txt")
	if err := os.WriteFile(extra, []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(extra)
	_, err := scorer.PredictCohort(context.Background(), cfg)
	if !errors.Is(err, data.ErrInputMismatch) || !strings.Contains(err.Error(), "--allow-mismatch") {
		t.Fatalf("another dataset: %v", err)
	}
	var logs bytes.Buffer
	cfg.AllowMismatch, cfg.Log = true, slog.New(slog.NewTextHandler(&logs, nil))
	got, err := scorer.PredictCohort(context.Background(), cfg)
	if err != nil || len(got.Scores) != labels {
		t.Fatalf("allowed: %v", err)
	}
	if !strings.Contains(logs.String(), "not built from") {
		t.Errorf("no warning: %s", logs.String())
	}
	if r := got.Scores[0].Raw; !(r >= 0 && r <= 1) {
		t.Errorf("raw probability %v", r)
	}
}
