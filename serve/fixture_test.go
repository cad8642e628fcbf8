package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/features"
	"github.com/medseq/medseq/model/xgb"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
	"github.com/medseq/medseq/train"
)

// fixture is a small real model repository built once per test binary: synthetic EHR,
// cohort, tokenizer and an XGBoost model (~1500 subjects), as medseq demo builds them.
type fixture struct {
	root, meds, cohort, models string
	modelDir                   string // models/t2d-xgboost/1
	valuesDir                  string // models/t2d-xgboost-values/1: trained with last values
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = buildFixture() })
	if fixErr != nil {
		t.Fatalf("fixture: %v", fixErr)
	}
	return fix
}

var fixtureRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "medseq-serve-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	fixtureModel = "t2d-xgboost"
	valuesModel  = "t2d-xgboost-values"
)

func buildFixture() (*fixture, error) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	f := &fixture{root: fixtureRoot, meds: filepath.Join(fixtureRoot, "meds"),
		cohort: filepath.Join(fixtureRoot, "cohort"),
		models: filepath.Join(fixtureRoot, "models")}
	f.modelDir = filepath.Join(f.models, fixtureModel, "1")
	f.valuesDir = filepath.Join(f.models, valuesModel, "1")
	if _, err := synth.Generate(ctx, synth.Config{Out: f.meds, Subjects: 1500, Seed: 7, Force: true,
		Logger: log}); err != nil {
		return nil, err
	}
	cfg := data.DefaultCohortConfig()
	cfg.Targets = []string{"ICD10/E11", "SNOMED/44054006"}
	cfg.Seed = 7
	ds, err := data.Open(f.meds)
	if err != nil {
		return nil, err
	}
	m := data.NewManifest(data.StageCohort, cfg.Params())
	if _, err := m.AddInput(data.InputMEDS, f.meds); err != nil {
		return nil, err
	}
	res, err := data.BuildCohort(ctx, ds, cfg)
	if err != nil {
		return nil, err
	}
	if err := data.WriteCohort(f.cohort, true, res, m); err != nil {
		return nil, err
	}
	tokDir := filepath.Join(fixtureRoot, "tokenizer")
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		return nil, err
	}
	counter := tokenize.NewCounter(ds.Codes)
	err = c.Sequences(ctx, ds, []string{data.SplitTrain}, func(s data.Sequence) error {
		counter.Add(s.Events, map[bool]int{true: 1, false: 0}[s.Label.Value])
		return nil
	})
	if err != nil {
		return nil, err
	}
	bc := tokenize.DefaultBuildConfig()
	tok, rep, err := tokenize.Build(counter, bc)
	if err != nil {
		return nil, err
	}
	tm := data.NewManifest(tokenize.StageTokenize, map[string]any{"vocab_size": bc.VocabSize})
	for name, p := range map[string]string{data.InputMEDS: f.meds, "cohort": f.cohort} {
		if _, err := tm.AddInput(name, p); err != nil {
			return nil, err
		}
	}
	if err := tokenize.Save(tokDir, true, tok, tokenize.Config{Build: rep}, tm); err != nil {
		return nil, err
	}
	xcfg := train.XGBoostConfig{
		Inputs: train.Inputs{MEDS: f.meds, Cohort: f.cohort, Tokenizer: tokDir},
		Out:    f.modelDir, Force: true, Name: fixtureModel,
		Params: xgb.DefaultParams(), Calibration: eval.CalibrationIsotonic,
	}
	xcfg.Params.Seed = 7
	if _, err := train.XGBoost(ctx, xcfg, log, io.Discard); err != nil {
		return nil, err
	}
	// The same baseline with each code's last numeric value as a feature.
	xcfg.Out, xcfg.Name = f.valuesDir, valuesModel
	xcfg.Features = features.DefaultConfig()
	xcfg.Features.LastValue = true
	if _, err := train.XGBoost(ctx, xcfg, log, io.Discard); err != nil {
		return nil, err
	}
	return f, nil
}

// testDemographics are a model's birth and sex rules as training records them for a dataset
// written by medseq data synth or data import.
func testDemographics() *modelrepo.Demographics {
	return &modelrepo.Demographics{Demographics: data.DefaultDemographics(), BirthCode: data.BirthCode,
		SexCodes: map[string]string{data.SexFemale: data.SexCodePrefix + "F", data.SexMale: data.SexCodePrefix + "M"}}
}
