package synth

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
)

// TestScoreLabels scores a real cohort of the fixture dataset with its oracle, and each
// reason the oracle gives no scores.
func TestScoreLabels(t *testing.T) {
	dir, _ := fixture(t)
	ds, err := data.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := data.DefaultCohortConfig()
	cfg.Targets, cfg.Seed = OracleTargets, 42
	res, err := data.BuildCohort(context.Background(), ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	labels, lead := res.Labels, cfg.Lead
	// The expected AUROCs, from the oracle's risks and the test's own rank AUROC.
	o, err := LoadOracle(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s, sh []float64
	var y, yh []bool
	for _, l := range labels {
		r, ok := o.Risk(l.SubjectID, l.PredictionTime, lead)
		if !ok {
			t.Fatalf("subject %d: the oracle cannot score a cohort label", l.SubjectID)
		}
		s, y = append(s, r), append(y, l.Value)
		if l.Split == data.SplitHeldOut {
			sh, yh = append(sh, r), append(yh, l.Value)
		}
	}
	got, err := ScoreLabels(dir, cfg.Targets, labels, lead)
	if err != nil || !got.OK() {
		t.Fatalf("scores %+v, %v", got, err)
	}
	if got.N != len(labels) || got.NHeldOut != len(sh) || len(sh) == 0 {
		t.Errorf("scored %d labels (%d held_out), want %d (%d)", got.N, got.NHeldOut, len(labels), len(sh))
	}
	if want := auroc(s, y); math.Abs(got.All-want) > 1e-9 || got.All <= 0.6 {
		t.Errorf("AUROC %v, want %v (and above 0.6)", got.All, want)
	}
	if want := auroc(sh, yh); math.Abs(got.HeldOut-want) > 1e-9 {
		t.Errorf("held_out AUROC %v, want %v", got.HeldOut, want)
	}
	etl := []string{ETLCode(OracleTargets[1]), ETLCode(OracleTargets[0])}
	if e, err := ScoreLabels(dir, etl, labels, lead); err != nil || !e.OK() || e.All != got.All {
		t.Errorf("ETL-spelled targets %v: %+v, %v; want the AUROC %v", etl, e, err, got.All)
	}
	unknown := append(append([]data.Label(nil), labels...),
		data.Label{SubjectID: -7, PredictionTime: labels[0].PredictionTime})
	noOracle := t.TempDir()
	broken := t.TempDir()
	if err := os.MkdirAll(filepath.Join(broken, OracleDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, OracleModelFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, meds string
		targets    []string
		labels     []data.Label
		why        string // a substring of Why; "" for an error
	}{
		{"no oracle", noOracle, cfg.Targets, labels, WhyNoOracle},
		{"other targets", dir, []string{"ICD10/I10"}, labels, "not ICD10/I10"},
		{"one target of two", dir, OracleTargets[:1], labels, "models --target " + strings.Join(OracleTargets, ",")},
		{"unknown targets", dir, nil, labels, "targets are unknown"},
		{"unknown subject", dir, cfg.Targets, unknown, "cannot score 1 of the"},
		{"one class", dir, cfg.Targets, oneClass(labels), "one class only"},
		{"unreadable oracle", broken, cfg.Targets, labels, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ScoreLabels(tc.meds, tc.targets, tc.labels, lead)
			if tc.why == "" {
				if err == nil || !strings.Contains(err.Error(), OracleModelFile) {
					t.Errorf("got %+v, %v; want an error naming %s", got, err, OracleModelFile)
				}
				return
			}
			if err != nil || got.OK() || !strings.Contains(got.Why, tc.why) || got.N != 0 {
				t.Errorf("got %+v, %v; want no scores because %q", got, err, tc.why)
			}
		})
	}
}

// oneClass is the negative labels only.
func oneClass(labels []data.Label) []data.Label {
	var out []data.Label
	for _, l := range labels {
		if !l.Value {
			out = append(out, l)
		}
	}
	return out
}
