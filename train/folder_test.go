package train

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
)

// TestClassifyFolderIsTheServedAnswer: a BERT's model folder records its operating point
// (chosen by --threshold on the calibrated tuning split), gap, length and demographics, and
// its split predictions are exactly what the scorer medseq predict and serve use gives for
// the same labels, decided at that point.
func TestClassifyFolderIsTheServedAnswer(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	cfg := classifyCfg(f, filepath.Join(t.TempDir(), "m"))
	cfg.Threshold = eval.ThresholdSpec{Method: eval.ThresholdSpecificity, Target: 0.8}
	res, err := BERTClassify(ctx, cfg, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := modelrepo.ReadManifest(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	op := m.OperatingPoint
	if op.Rule != "spec=0.8" || op.ChosenOn != "tuning" || op.Tuning == nil || op.Tuning.Specificity < 0.8 ||
		op.Threshold != res.Point.Threshold {
		t.Errorf("operating point %+v (result %+v)", op, res.Point)
	}
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	if m.Gap.Micros() != c.Gap || m.MaxLen != cfg.MaxLen || m.Calibration != eval.CalibrationIsotonic ||
		m.Device.String() == "" {
		t.Errorf("manifest gap %v max_len %d calibration %q device %v", m.Gap, m.MaxLen, m.Calibration, m.Device)
	}
	if m.Demographics.BirthCode != data.BirthCode || m.Demographics.SexCodes[data.SexFemale] != "SEX//F" ||
		m.Demographics.SexCodes[data.SexMale] != "SEX//M" || len(m.Demographics.SexPrefixes) == 0 {
		t.Errorf("demographics %+v", m.Demographics)
	}
	cal, err := modelrepo.ReadCalibration(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := bert.LoadScorer(cfg.Out, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ id, pt int64 }
	served := map[key]float64{}
	// Odd batches: what a history is scored with must not change its score.
	err = scorer.ScoreCohort(ctx, sc, ds, c, nil, 7, func(b []scorer.Scored) error {
		for _, x := range b {
			served[key{x.Label.SubjectID, x.Label.PredictionTime}] = x.Result.Probability
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, split := range []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut} {
		stored, err := eval.ReadPredictions(modelrepo.PredictionsFile(cfg.Out, split))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := eval.RawScores(stored)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range raw {
			want, ok := served[key{p.SubjectID, p.PredictionTime}]
			if !ok || p.Score != want || stored[i].Score != cal.Apply(want) {
				t.Fatalf("%s subject %d: folder raw %v calibrated %v, scorer %v (%v)",
					split, p.SubjectID, p.Score, stored[i].Score, want, ok)
			}
			n++
		}
	}
	if n != len(c.Labels) {
		t.Errorf("%d predictions for %d labels", n, len(c.Labels))
	}
}
