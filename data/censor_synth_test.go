package data_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
)

// TestTimeToEventMatchesSynthTruth builds a cohort on synthetic records and checks every label's
// time to event against the generator's truth (its oracle): a positive's event is its
// diagnosis; a negative is never diagnosed inside its record, is censored by death exactly when
// its record ends in death (at the death), and its censoring end is its records' end; the
// administrative reason goes, nearly always, with a record that runs to the data cut-off.
func TestTimeToEventMatchesSynthTruth(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a dataset")
	}
	ctx := context.Background()
	meds := filepath.Join(t.TempDir(), "meds")
	if _, err := synth.Generate(ctx, synth.Config{Out: meds, Subjects: 3000, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	o, err := synth.LoadOracle(meds)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(meds)
	if err != nil {
		t.Fatal(err)
	}
	cfg := data.DefaultCohortConfig()
	cfg.Targets, cfg.FollowUp = synth.OracleTargets, 0
	res, err := data.BuildCohort(ctx, ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	agree, admin := 0, 0
	for _, l := range res.Labels {
		s, ok := o.Subject(l.SubjectID)
		if !ok {
			t.Fatalf("subject %d unknown to the oracle", l.SubjectID)
		}
		reasons[l.CensorReason]++
		if l.Value {
			if !l.EventObserved || l.EventTime != s.Diagnosis {
				t.Errorf("positive %d: event %v at %v, diagnosis %v", l.SubjectID, l.EventObserved, l.EventTime, s.Diagnosis)
			}
			continue
		}
		died := s.Death != synth.NoTime
		switch {
		case l.EventObserved || s.DiagnosedInRecord():
			t.Errorf("negative %d: event observed %v, diagnosed in record %v", l.SubjectID, l.EventObserved,
				s.DiagnosedInRecord())
		case (l.CensorReason == data.CensorDeath) != died || (died && l.EventTime != s.Death):
			t.Errorf("negative %d: censored %s at %v, death %v", l.SubjectID, l.CensorReason, l.EventTime, s.Death)
		case l.EventTime > s.RecordEnd || l.EventTime < l.PredictionTime:
			t.Errorf("negative %d: censored at %v, outside [prediction %v, record end %v]", l.SubjectID, l.EventTime,
				l.PredictionTime, s.RecordEnd)
		}
		if l.CensorReason == data.CensorDatasetEnd {
			admin++
			if s.RecordEnd == synth.CutoffTime {
				agree++
			}
		}
	}
	t.Logf("%d labels, censor reasons %v; %d of %d administratively censored run to the cut-off", len(res.Labels), reasons,
		agree, admin)
	if reasons[data.CensorDeath] == 0 || reasons[data.CensorEndOfRecord] == 0 || admin == 0 {
		t.Errorf("every censoring reason should occur among %d labels: %v", len(res.Labels), reasons)
	}
	if float64(agree) < 0.9*float64(admin) {
		t.Errorf("only %d of %d labels censored at the dataset's end have records to the cut-off", agree, admin)
	}
	if end := res.Report.TimeToEvent.DatasetEnd; !strings.HasPrefix(end, "2025-0") {
		t.Errorf("dataset end %s, the cut-off is 2025-06-30", end)
	}
}

// TestTimeToEventOnSharedMEDS times events on MEDS written by other tools
// (../shared/data/meds): ACES' sample (no birth or death codes; labels: a creatinine result
// within two days of 24 h and 48 h into each admission, timed by --target LAB//creatinine) and
// MEDS_transforms' example (a --target ADMISSION cohort's labels from its own prediction
// times).
func TestTimeToEventOnSharedMEDS(t *testing.T) {
	root := filepath.Join("..", "..", "shared", "data", "meds")
	if _, err := os.Stat(root); err != nil {
		t.Skip("no ../shared/data/meds")
	}
	t.Run("aces_sample", func(t *testing.T) { acesTimeToEvent(t, filepath.Join(root, "aces_sample")) })
	t.Run("meds_transforms_example", func(t *testing.T) {
		transformsTimeToEvent(t, filepath.Join(root, "meds_transforms_example"))
	})
}

func acesTimeToEvent(t *testing.T, root string) {
	ds, err := data.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	const hour, window = 3600 * 1_000_000, 2 * data.MicrosPerDay
	var rows []data.LabelRow
	err = ds.ForEachSubject(context.Background(), func(s data.Subject) error {
		for _, e := range s.Events {
			if !strings.HasPrefix(ds.Codes.Name(e.Code), "ADMISSION//") {
				continue
			}
			for _, h := range []int64{24, 48} {
				pt := e.Time + h*hour
				y := false
				for _, f := range s.Events {
					y = y || (ds.Codes.Name(f.Code) == "LAB//creatinine" && f.Time >= pt && f.Time <= pt+window)
				}
				rows = append(rows, data.LabelRow{SubjectID: s.ID, PredictionTime: pt, Value: y})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := data.DefaultCohortConfig()
	cfg.Targets = []string{"LAB//creatinine"}
	res, err := data.BuildLabelCohort(context.Background(), ds, &data.LabelFiles{Path: root, Rows: rows}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	later := 0
	for _, l := range res.Labels {
		d, ok := l.FollowUp()
		switch {
		case !ok || d < 0:
			t.Errorf("subject %d: follow-up %d %v", l.SubjectID, d, ok)
		case l.Value && (!l.EventObserved || d > window):
			t.Errorf("positive of subject %d: event %v after %d us, within the window by its label", l.SubjectID,
				l.EventObserved, d)
		case !l.Value && l.EventObserved && d <= window:
			t.Errorf("negative of subject %d: a creatinine %d us after prediction, inside its window", l.SubjectID, d)
		case !l.Value && l.EventObserved:
			later++
		case !l.Value && l.CensorReason == data.CensorDeath:
			t.Errorf("subject %d censored by death in data without death codes", l.SubjectID)
		}
	}
	r := res.Report.TimeToEvent
	t.Logf("%d labels: events %+v, censored %+v, negatives with a later event %d", len(res.Labels), r.Events, r.Censored,
		later)
	if later == 0 || r.Known != len(res.Labels) || r.PositivesWithoutEvent != 0 {
		t.Errorf("report %+v, %d negatives with a later event", r, later)
	}
}

func transformsTimeToEvent(t *testing.T, root string) {
	ds, err := data.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	var rows []data.LabelRow
	err = ds.ForEachSubject(context.Background(), func(s data.Subject) error {
		for _, e := range s.Events {
			if e.Time != data.StaticTime && ds.Codes.Name(e.Code) == "HR" {
				rows = append(rows, data.LabelRow{SubjectID: s.ID, PredictionTime: e.Time, Value: len(rows)%2 == 0})
				break
			}
		}
		return nil
	})
	if err != nil || len(rows) == 0 {
		t.Fatalf("%d prediction times: %v", len(rows), err)
	}
	cfg := data.DefaultCohortConfig()
	cfg.Targets, cfg.BirthCodes = []string{"DISCHARGE"}, []string{"DOB"}
	res, err := data.BuildLabelCohort(context.Background(), ds, &data.LabelFiles{Path: root, Rows: rows}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res.Labels {
		// Every subject's first HR is taken inside an admission that ends in a discharge.
		if !l.EventObserved || l.EventTime < l.PredictionTime || l.CensorReason != "" {
			t.Errorf("subject %d: event %v at %v, reason %q", l.SubjectID, l.EventObserved, data.TimeOf(l.EventTime),
				l.CensorReason)
		}
	}
	if len(res.Labels) != len(rows) {
		t.Errorf("%d labels of %d rows: %+v", len(res.Labels), len(rows), res.Report.Exclusions)
	}
}
