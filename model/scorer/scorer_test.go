package scorer_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
	"github.com/medseq/medseq/train"
)

// folder is a small real XGBoost model version folder with its dataset and cohort.
type folder struct {
	meds, cohort, model string
}

func buildFolder(t *testing.T) folder {
	t.Helper()
	if testing.Short() {
		t.Skip("trains a model")
	}
	ctx, log, root := context.Background(), slog.New(slog.DiscardHandler), t.TempDir()
	f := folder{meds: filepath.Join(root, "meds"), cohort: filepath.Join(root, "cohort"), model: filepath.Join(root, "models", "m", "1")}
	if _, err := synth.Generate(ctx, synth.Config{Out: f.meds, Subjects: 800, Seed: 3, Logger: log}); err != nil {
		t.Fatal(err)
	}
	cfg := data.DefaultCohortConfig()
	cfg.Targets, cfg.Seed = []string{"ICD10/E11", "SNOMED/44054006"}, 3
	ds, err := data.Open(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	res, err := data.BuildCohort(ctx, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := data.NewManifest(data.StageCohort, cfg.Params())
	if _, err := m.AddInput(data.InputMEDS, f.meds); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteCohort(f.cohort, false, res, m); err != nil {
		t.Fatal(err)
	}
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	counter := tokenize.NewCounter(ds.Codes)
	if err := c.Sequences(ctx, ds, []string{data.SplitTrain}, func(s data.Sequence) error {
		counter.Add(s.Events, map[bool]int{true: 1}[s.Label.Value])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tok, rep, err := tokenize.Build(counter, tokenize.DefaultBuildConfig())
	if err != nil {
		t.Fatal(err)
	}
	tokDir := filepath.Join(root, "tok")
	tm := data.NewManifest(tokenize.StageTokenize, nil)
	for name, p := range map[string]string{data.InputMEDS: f.meds, "cohort": f.cohort} {
		if _, err := tm.AddInput(name, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := tokenize.Save(tokDir, false, tok, tokenize.Config{Build: rep}, tm); err != nil {
		t.Fatal(err)
	}
	xcfg := train.XGBoostConfig{Inputs: train.Inputs{MEDS: f.meds, Cohort: f.cohort, Tokenizer: tokDir}, Out: f.model,
		Params: xgb.DefaultParams(), Calibration: eval.CalibrationIsotonic}
	xcfg.Params.Rounds = 40
	if _, err := train.XGBoost(ctx, xcfg, log, io.Discard); err != nil {
		t.Fatal(err)
	}
	return f
}

type key struct{ id, pt int64 }

// scoreAll scores every label of the cohort with batch labels per Score call.
func scoreAll(t *testing.T, sc scorer.Scorer, f folder, batch int) (map[key]float64, []key) {
	t.Helper()
	ds, err := data.Open(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	got, order := map[key]float64{}, []key{}
	err = scorer.ScoreCohort(context.Background(), sc, ds, c, nil, batch, func(b []scorer.Scored) error {
		if len(b) > batch {
			t.Errorf("a batch of %d, more than %d", len(b), batch)
		}
		for _, x := range b {
			k := key{x.Label.SubjectID, x.Label.PredictionTime}
			got[k] = x.Result.Probability
			order = append(order, k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, order
}

// TestScoreCohort: every label is scored once, in cohort order, with the same score whatever
// the batch size, from several goroutines at once, and equal to the model folder's own raw
// predictions (which training wrote through the same predictor).
func TestScoreCohort(t *testing.T) {
	f := buildFolder(t)
	sc, err := scorer.Load(f.model)
	if err != nil {
		t.Fatal(err)
	}
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	want, order := scoreAll(t, sc, f, 512)
	if len(want) != len(c.Labels) || len(order) != len(c.Labels) {
		t.Fatalf("%d scores, %d in order, for %d labels", len(want), len(order), len(c.Labels))
	}
	var wg sync.WaitGroup
	for _, batch := range []int{1, 7, 64} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, o := scoreAll(t, sc, f, batch)
			for i, k := range o {
				if k != order[i] || got[k] != want[k] {
					t.Errorf("batch %d, label %d: %v %v, want %v %v", batch, i, k, got[k], order[i], want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, split := range []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut} {
		stored, err := eval.ReadPredictions(modelrepo.PredictionsFile(f.model, split))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := eval.RawScores(stored)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range raw {
			if w := want[key{p.SubjectID, p.PredictionTime}]; w != p.Score {
				t.Fatalf("%s subject %d: scorer %v, folder %v", split, p.SubjectID, w, p.Score)
			}
			n++
		}
	}
	if n != len(c.Labels) {
		t.Errorf("the folder holds %d predictions for %d labels", n, len(c.Labels))
	}
}

// TestRegistry: a kind nobody registered is ErrUnsupported naming it; a registered loader is
// used for its kind; a folder without a manifest says so.
func TestRegistry(t *testing.T) {
	dir := t.TempDir()
	m := &modelrepo.Manifest{Manifest: *data.NewManifest("test", nil), Kind: "forest",
		OperatingPoint: modelrepo.OperatingPoint{Rule: "0.5", Threshold: 0.5, ChosenOn: modelrepo.PointFixed}}
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
	r := scorer.NewRegistry()
	if _, err := r.Load(dir); !errors.Is(err, scorer.ErrUnsupported) {
		t.Errorf("unknown kind: %v", err)
	}
	called := false
	r.Register("forest", func(d string, m *modelrepo.Manifest) (scorer.Scorer, error) {
		called = d == dir && m.Kind == "forest"
		return nil, errors.New("not really")
	})
	if _, err := r.Load(dir); err == nil || !called {
		t.Errorf("registered loader: called %v, %v", called, err)
	}
	empty := t.TempDir()
	if _, err := r.Load(empty); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no manifest: %v", err)
	}
}
