package study

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
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

// fixture is a synthetic dataset, a --target cohort with a year's follow-up and an XGBoost
// model trained on it.
type fixture struct {
	meds, cohort, model string
	cfg                 data.CohortConfig
}

func buildFixture(t *testing.T, subjects int) fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("trains a model")
	}
	ctx, log, root := context.Background(), slog.New(slog.DiscardHandler), t.TempDir()
	f := fixture{model: filepath.Join(root, "models", "m", "1")}
	var ds *data.Dataset
	f.meds, f.cohort, f.cfg, ds = writeSynthCohort(t, root, subjects, 5,
		data.SplitFractions{Train: 0.6, Tuning: 0.1, HeldOut: 0.3})
	tokDir := filepath.Join(root, "tok")
	buildTokenizer(t, ds, f, tokDir)
	xcfg := train.XGBoostConfig{Inputs: train.Inputs{MEDS: f.meds, Cohort: f.cohort, Tokenizer: tokDir}, Out: f.model,
		Params: xgb.DefaultParams(), Calibration: eval.CalibrationIsotonic}
	xcfg.Params.Rounds = 60
	if _, err := train.XGBoost(ctx, xcfg, log, io.Discard); err != nil {
		t.Fatal(err)
	}
	return f
}

func buildTokenizer(t *testing.T, ds *data.Dataset, f fixture, dir string) {
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	counter := tokenize.NewCounter(ds.Codes)
	if err := c.Sequences(context.Background(), ds, []string{data.SplitTrain}, func(s data.Sequence) error {
		counter.Add(s.Events, map[bool]int{true: 1}[s.Label.Value])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tok, rep, err := tokenize.Build(counter, tokenize.DefaultBuildConfig())
	if err != nil {
		t.Fatal(err)
	}
	tm := data.NewManifest(tokenize.StageTokenize, nil)
	for name, p := range map[string]string{data.InputMEDS: f.meds, "cohort": f.cohort} {
		if _, err := tm.AddInput(name, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := tokenize.Save(dir, false, tok, tokenize.Config{Build: rep}, tm); err != nil {
		t.Fatal(err)
	}
}

func (f fixture) config(t *testing.T) CensoringConfig {
	sc, err := scorer.Load(f.model)
	if err != nil {
		t.Fatal(err)
	}
	cal, err := modelrepo.ReadCalibration(f.model)
	if err != nil {
		t.Fatal(err)
	}
	return CensoringConfig{MEDS: f.meds, Cohort: f.cohort, Model: f.model, Scorer: sc, Calibration: cal, Bootstrap: 200, Seed: 1}
}

// TestCensoringFollowUpDirections: on synthetic records whose truth is known, the study
// scores the rebuilt held-out labels once and each variant moves the numbers the way
// censoring says it must: the longer the follow-up required, the fewer negatives and the higher
// the prevalence (positives are never dropped); drop-lost keeps the deaths that drop leaves out;
// observed minus predicted risk rises as censored negatives go (they are scored above nothing:
// dropping them raises the observed rate more than the mean prediction); and against the generator's truth, no negative a
// variant keeps was diagnosed unseen within the required follow-up, while the censored
// negatives it drops hold the subjects diagnosed after their records ended.
func TestCensoringFollowUpDirections(t *testing.T) {
	f := buildFixture(t, 6000)
	r, rows, err := censoring(context.Background(), f.config(t))
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := WriteCensoringText(&text, r); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + text.String())
	o, err := synth.LoadOracle(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, r, rows, f)
	checkDirections(t, r)
	checkTruth(t, rows, o)
	t.Run("label cohorts", func(t *testing.T) { checkLabelCohorts(t, f) })
	// The file eval censoring writes reads back, through eval, with every field.
	checkFileRoundTrip(t, r)
}

// checkReport: the report's frame: rebuilt, held-out rows only, the variants in order.
func checkReport(t *testing.T, r *eval.CensoringSensitivity, rows []row, f fixture) {
	t.Helper()
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	split := map[int64]string{}
	for _, l := range c.Labels {
		split[l.SubjectID] = l.Split
	}
	for _, x := range rows {
		if s, ok := split[x.label.SubjectID]; x.label.Split != data.SplitHeldOut || (ok && s != data.SplitHeldOut) {
			t.Fatalf("row of subject %d: split %s, in the model's cohort %q", x.label.SubjectID, x.label.Split, s)
		}
	}
	if !r.Rebuilt || r.CohortFollowUp != "365d" || len(r.Variants) != 7 || r.Variants[0].Policy != eval.CensoringPolicyKeep {
		t.Fatalf("report frame: rebuilt %v, cohort follow-up %q, %d variants", r.Rebuilt, r.CohortFollowUp, len(r.Variants))
	}
	for _, v := range r.Variants {
		if v.MatchesCohort != (v.Policy == eval.CensoringPolicyDrop && v.FollowUp == "365d") {
			t.Errorf("variant %s %s: matches cohort %v", v.FollowUp, v.Policy, v.MatchesCohort)
		}
	}
}

// checkDirections: counts, prevalence and calibration-in-the-large move with the follow-up.
func checkDirections(t *testing.T, r *eval.CensoringSensitivity) {
	t.Helper()
	ref := r.Variants[0].Metrics
	prev := map[string]eval.CensoringMetrics{eval.CensoringPolicyDrop: ref, eval.CensoringPolicyDropLost: ref}
	for _, v := range r.Variants[1:] {
		m, p := v.Metrics, prev[v.Policy]
		censored := 0
		for _, n := range v.Censored {
			censored += n
		}
		switch {
		case m.Positives != ref.Positives:
			t.Errorf("%s %s: %d positives, reference %d", v.FollowUp, v.Policy, m.Positives, ref.Positives)
		case m.Negatives+v.Dropped != ref.Negatives || m.Negatives > p.Negatives || m.Prevalence < p.Prevalence:
			t.Errorf("%s %s: %d negatives (%d dropped), prevalence %.4f after %d and %.4f", v.FollowUp, v.Policy,
				m.Negatives, v.Dropped, m.Prevalence, p.Negatives, p.Prevalence)
		case v.Policy == eval.CensoringPolicyDrop && v.Dropped != censored:
			t.Errorf("%s drop: dropped %d of %d censored", v.FollowUp, v.Dropped, censored)
		case v.Policy == eval.CensoringPolicyDropLost && v.Dropped != censored-v.Censored[data.CensorDeath]:
			t.Errorf("%s drop-lost: dropped %d of %d censored, %d by death", v.FollowUp, v.Dropped, censored, v.Censored[data.CensorDeath])
		}
		prev[v.Policy] = m
	}
	last := r.Variants[len(r.Variants)-2] // drop at the longest follow-up
	if last.Dropped == 0 || last.Metrics.Prevalence <= ref.Prevalence {
		t.Errorf("two years' follow-up drops %d negatives, prevalence %.4f vs %.4f", last.Dropped, last.Metrics.Prevalence, ref.Prevalence)
	}
	if last.Metrics.CalibrationInTheLarge <= ref.CalibrationInTheLarge {
		t.Errorf("calibration in the large: %.4f with every negative, %.4f with two years' follow-up", ref.CalibrationInTheLarge,
			last.Metrics.CalibrationInTheLarge)
	}
	if d := last.Delta; d == nil || d.Prevalence <= 0 || d.CalibrationInTheLarge <= 0 {
		t.Errorf("delta %+v", d)
	}
}

// checkTruth compares the variants' rows with the generator's truth.
func checkTruth(t *testing.T, rows []row, o *synth.Oracle) {
	t.Helper()
	var dropped, kept, droppedLater, keptLater int
	for _, f := range []int64{182 * data.MicrosPerDay, 365 * data.MicrosPerDay, 730 * data.MicrosPerDay} {
		for _, x := range rows {
			l := x.label
			s, ok := o.Subject(l.SubjectID)
			if !ok {
				t.Fatalf("subject %d unknown to the oracle", l.SubjectID)
			}
			if l.Value {
				continue
			}
			unseen := s.Diagnosis != synth.NoTime && s.Diagnosis >= s.RecordEnd // diagnosed after the record ended
			if !keeps(&l, f, eval.CensoringPolicyDrop) {
				dropped++
				droppedLater += map[bool]int{true: 1}[unseen]
				continue
			}
			kept++
			keptLater += map[bool]int{true: 1}[unseen]
			if s.Diagnosis > l.PredictionTime && s.Diagnosis <= l.PredictionTime+f {
				t.Errorf("follow-up %s keeps negative %d, diagnosed unseen %s after prediction", data.FormatDuration(f),
					l.SubjectID, data.FormatDuration(s.Diagnosis-l.PredictionTime))
			}
		}
	}
	t.Logf("diagnosed after their records ended: %d of %d dropped, %d of %d kept negatives", droppedLater, dropped, keptLater, kept)
	if droppedLater == 0 || float64(droppedLater)/float64(dropped) <= float64(keptLater)/float64(kept) {
		t.Errorf("dropped negatives should hold more future diagnoses: %d of %d dropped, %d of %d kept", droppedLater, dropped,
			keptLater, kept)
	}
}

// checkLabelCohorts: a cohort from a label file is used as it is when its labels have a time to
// event, refused (ErrNoTimeToEvent) when they have none, and refused as not the model's cohort
// unless AllowOtherCohort says otherwise.
func checkLabelCohorts(t *testing.T, f fixture) {
	ctx := context.Background()
	ds, err := data.Open(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	c, err := data.LoadCohort(f.cohort)
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]data.LabelRow, len(c.Labels))
	for i, l := range c.Labels {
		rows[i] = data.LabelRow{SubjectID: l.SubjectID, PredictionTime: l.PredictionTime, Value: l.Value}
	}
	lf := &data.LabelFiles{Path: "labels", Rows: rows}
	for _, targets := range [][]string{synth.OracleTargets, nil} {
		cfg := f.cfg
		cfg.Targets = targets
		res, err := data.BuildLabelCohort(ctx, ds, lf, cfg)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "cohort")
		m := data.NewManifest(data.StageCohort, data.LabelCohortParams(cfg, "labels"))
		if _, err := m.AddInput(data.InputMEDS, f.meds); err != nil {
			t.Fatal(err)
		}
		if err := data.WriteCohort(dir, false, res, m); err != nil {
			t.Fatal(err)
		}
		sc := f.config(t)
		sc.Cohort, sc.Bootstrap = dir, 0
		if _, err := Censoring(ctx, sc); !errors.Is(err, data.ErrInputMismatch) {
			t.Errorf("not the model's cohort: %v", err)
		}
		sc.AllowOtherCohort = true
		r, err := Censoring(ctx, sc)
		switch {
		case targets == nil && !errors.Is(err, data.ErrNoTimeToEvent):
			t.Errorf("labels without a time to event: %v", err)
		case targets != nil && err != nil:
			t.Errorf("labels with their time to event: %v", err)
		case targets != nil && (r.Rebuilt || len(r.Variants) != 7 || len(r.Warnings) == 0):
			t.Errorf("label cohort: rebuilt %v, %d variants, warnings %v", r.Rebuilt, len(r.Variants), r.Warnings)
		}
	}
}
