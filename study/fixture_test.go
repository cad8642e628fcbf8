package study

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
)

// writeSynthCohort writes a synthetic dataset of subjects (seed) to root/meds and a --target
// cohort on the oracle's outcome (same seed, the given split fractions) to root/cohort, with
// its manifest; it returns the folders, the cohort's rules and the opened dataset.
func writeSynthCohort(t *testing.T, root string, subjects int, seed int64,
	fr data.SplitFractions) (meds, cohort string, cfg data.CohortConfig, ds *data.Dataset) {
	t.Helper()
	ctx := context.Background()
	meds, cohort = filepath.Join(root, "meds"), filepath.Join(root, "cohort")
	log := slog.New(slog.DiscardHandler)
	if _, err := synth.Generate(ctx, synth.Config{Out: meds, Subjects: subjects, Seed: seed, Logger: log}); err != nil {
		t.Fatal(err)
	}
	cfg = data.DefaultCohortConfig()
	cfg.Targets, cfg.Seed, cfg.Fractions = synth.OracleTargets, seed, fr
	ds, err := data.Open(meds)
	if err != nil {
		t.Fatal(err)
	}
	res, err := data.BuildCohort(ctx, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := data.NewManifest(data.StageCohort, cfg.Params())
	if _, err := m.AddInput(data.InputMEDS, meds); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteCohort(cohort, false, res, m); err != nil {
		t.Fatal(err)
	}
	return meds, cohort, cfg, ds
}
