package study

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
)

// handRows: four positives (events observed) and six negatives: followed 3 years to the
// dataset's end, 0.3 years to death, 0.8 and 1.5 years to an early end of record, 5 years, and
// one whose target comes 0.1 years after its prediction (an external label's later event).
func handRows() []row {
	const pt = int64(1_500_000_000_000_000)
	y := func(v float64) int64 { return pt + int64(v*float64(data.MicrosPerYear)) }
	lab := func(id int64, value bool, end int64, observed bool, reason string) data.Label {
		return data.Label{SubjectID: id, PredictionTime: pt, Value: value, EventTime: end, EventObserved: observed, CensorReason: reason}
	}
	return []row{
		{lab(1, true, y(1), true, ""), 0.9},
		{lab(2, true, y(1), true, ""), 0.8},
		{lab(3, true, y(1), true, ""), 0.7},
		{lab(4, true, y(1), true, ""), 0.6},
		{lab(5, false, y(3), false, data.CensorDatasetEnd), 0.1},
		{lab(6, false, y(0.3), false, data.CensorDeath), 0.75},
		{lab(7, false, y(0.8), false, data.CensorEndOfRecord), 0.65},
		{lab(8, false, y(1.5), false, data.CensorEndOfRecord), 0.2},
		{lab(9, false, y(5), false, data.CensorDatasetEnd), 0.3},
		{lab(10, false, y(0.1), true, ""), 0.5},
	}
}

// TestVariantsByHand checks every variant's rows and figures against values worked out by
// hand for handRows.
func TestVariantsByHand(t *testing.T) {
	day := data.MicrosPerDay
	opts := evalOptions{threshold: 0.5, followUps: []int64{0, 182 * day, 365 * day, 730 * day}}
	var warnings []string
	vs, err := variants(handRows(), opts, 365*day, &warnings)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		followUp, policy  string
		dropped, censored int
		auroc, citl       float64
	}
	// AUROC: of the 24 pairs of the reference, the positives 0.7 and 0.6 lose to 0.75 and to
	// 0.75, 0.65 (3 pairs): 21/24. Calibration in the large: 0.4 - 5.5/10.
	wants := []want{
		{"0", eval.CensoringPolicyKeep, 0, 0, 21.0 / 24, 0.4 - 0.55},
		{"182d", eval.CensoringPolicyDrop, 1, 1, 19.0 / 20, 4.0/9 - 4.75/9},
		{"182d", eval.CensoringPolicyDropLost, 0, 1, 21.0 / 24, 0.4 - 0.55},
		{"365d", eval.CensoringPolicyDrop, 2, 2, 16.0 / 16, 4.0/8 - 4.1/8},
		{"365d", eval.CensoringPolicyDropLost, 1, 2, 18.0 / 20, 4.0/9 - 4.85/9},
		{"730d", eval.CensoringPolicyDrop, 3, 3, 12.0 / 12, 4.0/7 - 3.9/7},
		{"730d", eval.CensoringPolicyDropLost, 2, 3, 14.0 / 16, 4.0/8 - 4.65/8},
	}
	if len(vs) != len(wants) {
		t.Fatalf("%d variants, want %d", len(vs), len(wants))
	}
	for i, w := range wants {
		v := vs[i]
		t.Run(w.followUp+" "+w.policy, func(t *testing.T) {
			m := v.Metrics
			censored := 0
			for _, n := range v.Censored {
				censored += n
			}
			if v.FollowUp != w.followUp || v.Policy != w.policy || v.Dropped != w.dropped || censored != w.censored {
				t.Errorf("variant %s %s: dropped %d, censored %v", v.FollowUp, v.Policy, v.Dropped, v.Censored)
			}
			if m.Labels != 10-w.dropped || m.Positives != 4 || math.Abs(float64(m.AUROC)-w.auroc) > 1e-12 ||
				math.Abs(float64(m.CalibrationInTheLarge)-w.citl) > 1e-12 {
				t.Errorf("metrics %+v, want AUROC %.4f, O-E %.4f", m, w.auroc, w.citl)
			}
			if v.MatchesCohort != (v.FollowUp == "365d" && v.Policy == eval.CensoringPolicyDrop) {
				t.Errorf("matches cohort %v", v.MatchesCohort)
			}
			if i > 0 && math.Abs(float64(v.Delta.AUROC)-(w.auroc-wants[0].auroc)) > 1e-12 {
				t.Errorf("delta %+v", v.Delta)
			}
		})
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %v", warnings)
	}
	r := &eval.CensoringSensitivity{Model: "m", ModelKind: "xgboost", Cohort: "c", Split: data.SplitHeldOut, Rebuilt: true,
		CohortFollowUp: "365d", Variants: vs}
	var buf bytes.Buffer
	if err := WriteCensoringText(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"all kept (reference)", "drop-lost 1/2 (D 1 E 1)", "* 365d", "0.875", "+0.125"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, buf.String())
		}
	}
}

// TestVariantsOneClass: rows a policy leaves with one class give no AUROC and a warning, not
// an error; a label without a time to event is never dropped.
func TestVariantsOneClass(t *testing.T) {
	rows := handRows()[4:] // negatives only
	rows = append(rows, row{data.Label{SubjectID: 11, EventTime: data.StaticTime}, 0.4})
	var warnings []string
	vs, err := variants(rows, evalOptions{threshold: 0.5, followUps: []int64{730 * data.MicrosPerDay}}, -1, &warnings)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || !math.IsNaN(float64(vs[0].Metrics.AUROC)) || len(warnings) != 3 || vs[1].Metrics.Labels != 4 {
		t.Errorf("variants %+v, warnings %v", vs, warnings)
	}
}
