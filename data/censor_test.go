package data

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestDatasetEnd(t *testing.T) {
	y := func(year int) int64 { return day(year, 1, 1) }
	many := func(n int, at int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = at - int64(i)*MicrosPerDay
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		lasts []int64
		want  int64
	}{
		{"none", nil, StaticTime},
		{"one subject", []int64{y(2020)}, y(2020)},
		{"small data: the latest", []int64{y(2019), y(2021), y(2020)}, y(2021)},
		// 3000 subjects end on or before 2024-01-01, three mistype 2099: 0.1% may lie beyond.
		{"far-future outliers ignored", append(many(3000, y(2024)), y(2099), y(2099)+1, y(2099)+2), y(2024)},
		{"more than 0.1% beyond is the end", append(many(100, y(2024)), y(2030)), y(2030)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DatasetEnd(tc.lasts); got != tc.want {
				t.Errorf("DatasetEnd = %v, want %v", TimeOf(got), TimeOf(tc.want))
			}
		})
	}
}

// tteDataset: 1 a positive diagnosed 2015-03-01, records 2000-2020; 6 observed to the dataset's
// end (2020-06-01); 7 dies 2017-01-01; 8 records stop 2017-06-01, three years before the end;
// 9 records stop 2019-09-01, within a year of the end. All born 1950-1952.
func tteDataset(t *testing.T) string {
	d := func(y, m, day int) time.Time { return time.Date(y, time.Month(m), day, 0, 0, 0, 0, time.UTC) }
	type ev = struct {
		code string
		at   time.Time
	}
	visits := func(from, to int) []ev {
		var out []ev
		for y := from; y <= to; y++ {
			out = append(out, ev{"C/VISIT", d(y, 6, 1)})
		}
		return out
	}
	return handDataset(t, map[int64][]ev{
		1: append([]ev{{BirthCode, d(1950, 1, 1)}, {"ICD10/E11.9", d(2015, 3, 1)}, {"ICD10/E11.9", d(2016, 3, 1)}},
			visits(2000, 2020)...),
		6: append([]ev{{BirthCode, d(1951, 1, 1)}}, visits(2000, 2020)...),
		7: append([]ev{{BirthCode, d(1952, 1, 1)}, {DeathCode, d(2017, 1, 1)}}, visits(2000, 2016)...),
		8: append([]ev{{BirthCode, d(1951, 1, 1)}}, visits(2000, 2017)...),
		9: append([]ev{{BirthCode, d(1951, 1, 1)}, {"C/VISIT", d(2019, 9, 1)}}, visits(2000, 2018)...),
	})
}

// TestCohortTimeToEvent: a --target cohort's positive has its diagnosis as an observed event;
// each negative is censored at its end of observation with the reason, the dataset's end
// decided by the censor window; the report counts them.
func TestCohortTimeToEvent(t *testing.T) {
	ds, err := Open(tteDataset(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		window int64
		want   map[int64]TimeToEvent
	}{
		{"default window", DefaultCensorWindow, map[int64]TimeToEvent{
			1: {day(2015, 3, 1), true, ""},
			6: {day(2020, 6, 1), false, CensorDatasetEnd},
			7: {day(2017, 1, 1), false, CensorDeath},
			8: {day(2017, 6, 1), false, CensorEndOfRecord},
			9: {day(2019, 9, 1), false, CensorDatasetEnd},
		}},
		{"no window", 0, map[int64]TimeToEvent{
			9: {day(2019, 9, 1), false, CensorEndOfRecord},
			6: {day(2020, 6, 1), false, CensorDatasetEnd},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCohortConfig()
			cfg.NegativesPerPositive, cfg.CensorWindow, cfg.FollowUp = 5, tc.window, 0
			res, err := BuildCohort(context.Background(), ds, cfg)
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			for _, l := range res.Labels {
				got := TimeToEvent{l.EventTime, l.EventObserved, l.CensorReason}
				if want, ok := tc.want[l.SubjectID]; ok {
					seen++
					if got != want {
						t.Errorf("subject %d: %+v, want %+v", l.SubjectID, got, want)
					}
				}
				if d, ok := l.FollowUp(); !ok || d < 0 || l.EventTime < l.PredictionTime {
					t.Errorf("subject %d: follow-up %d %v", l.SubjectID, d, ok)
				}
			}
			if seen != len(tc.want) {
				t.Fatalf("%d of the %d subjects checked are labelled: %+v", seen, len(tc.want), res.Labels)
			}
			r := res.Report.TimeToEvent
			if r == nil || r.Known != len(res.Labels) || r.Events.Positives != 1 || r.Events.Negatives != 0 ||
				r.Censored[CensorDeath].Negatives != 1 || r.DatasetEnd != "2020-06-01T00:00:00Z" {
				t.Errorf("report %+v", r)
			}
			if tc.window == 0 && r.Censored[CensorEndOfRecord].Negatives != 2 {
				t.Errorf("no window: censored %+v", r.Censored)
			}
		})
	}
}

// TestLabelCohortTimeToEvent: labels from a file get their time to event from --target codes:
// a negative whose target comes later has an observed event (at the prediction time counts),
// a positive without a later target is censored and warned about; without targets the time
// to event is unknown and the report says nothing of it.
func TestLabelCohortTimeToEvent(t *testing.T) {
	dir := t.TempDir()
	ds, err := Open(edgeDataset(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "labels.parquet")
	type row struct {
		id, pt int64
		v      bool
		want   TimeToEvent
	}
	rows := []row{
		{1, day(2010, 6, 1), true, TimeToEvent{day(2012, 1, 1), true, ""}},
		{1, day(2011, 6, 1), false, TimeToEvent{day(2012, 1, 1), true, ""}}, // target after the window
		{1, day(2012, 6, 1), false, TimeToEvent{day(2013, 1, 1), false, CensorDeath}},
		{2, day(2016, 1, 1), false, TimeToEvent{day(2016, 1, 1), true, ""}}, // at the prediction time
		// 3 ends 2017-01-01, more than a year before the dataset's end (2019-01-01): lost, and
		// observed no longer than its prediction time.
		{3, day(2017, 6, 1), true, TimeToEvent{day(2017, 6, 1), false, CensorEndOfRecord}},
		{4, day(2019, 1, 1), false, TimeToEvent{day(2019, 1, 1), false, CensorDatasetEnd}},
	}
	var ids, pts []int64
	var vals []any
	want := map[[2]int64]TimeToEvent{}
	for _, r := range rows {
		ids, pts, vals = append(ids, r.id), append(pts, r.pt), append(vals, r.v)
		want[[2]int64{r.id, r.pt}] = r.want
	}
	acesLabels(t, p, ids, pts, vals)
	lf, err := ReadLabelFiles(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, targets := range [][]string{{"LATE"}, nil} {
		t.Run(strings.Join(targets, ","), func(t *testing.T) {
			cfg := DefaultCohortConfig()
			cfg.Targets = targets
			res, err := BuildLabelCohort(context.Background(), ds, lf, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Labels) != len(rows) {
				t.Fatalf("%d labels, want %d: %+v", len(res.Labels), len(rows), res.Report.Exclusions)
			}
			for _, l := range res.Labels {
				got := TimeToEvent{l.EventTime, l.EventObserved, l.CensorReason}
				w := want[[2]int64{l.SubjectID, l.PredictionTime}]
				if targets == nil {
					w = TimeToEvent{EventTime: StaticTime}
				}
				if got != w {
					t.Errorf("subject %d at %v: %+v, want %+v", l.SubjectID, TimeOf(l.PredictionTime), got, w)
				}
			}
			r := res.Report.TimeToEvent
			warned := strings.Contains(strings.Join(res.Report.Warnings, "\n"), "1 of 2 positive labels have no code")
			switch {
			case targets == nil && (r != nil || warned):
				t.Errorf("no targets: report %+v, warnings %v", r, res.Report.Warnings)
			case targets != nil && (r == nil || r.PositivesWithoutEvent != 1 || r.Events.Negatives != 2 || !warned):
				t.Errorf("report %+v, warnings %v", r, res.Report.Warnings)
			}
			params := LabelCohortParams(cfg, p)
			if _, ok := params["targets"]; ok {
				t.Errorf("a label cohort's params name targets (its outcome is the file's): %v", params)
			}
			if _, ok := params["event_targets"]; ok != (targets != nil) {
				t.Errorf("params %v", params)
			}
		})
	}
}

// TestCohortTimeToEventRoundTrip: the time to event survives WriteCohort and LoadCohort; a
// cohort.parquet written before the columns existed still loads, with every time unknown and
// RequireTimeToEvent saying why; a censor reason medseq does not write is an error naming the
// row.
func TestCohortTimeToEventRoundTrip(t *testing.T) {
	ds, err := Open(tteDataset(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testCohortConfig()
	cfg.NegativesPerPositive, cfg.FollowUp = 5, 0
	res, err := BuildCohort(context.Background(), ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "cohort")
	m := NewManifest(StageCohort, cfg.Params())
	if _, err := m.AddInput(InputMEDS, ds.Root); err != nil {
		t.Fatal(err)
	}
	if err := WriteCohort(out, false, res, m); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCohort(out)
	if err != nil {
		t.Fatal(err)
	}
	if !c.TimeToEventColumns || c.RequireTimeToEvent() != nil || len(c.Labels) != len(res.Labels) {
		t.Fatalf("loaded: columns %v, %v, %d labels", c.TimeToEventColumns, c.RequireTimeToEvent(), len(c.Labels))
	}
	for i, l := range c.Labels {
		w := res.Labels[i]
		if l.EventTime != w.EventTime || l.EventObserved != w.EventObserved || l.CensorReason != w.CensorReason {
			t.Errorf("label %d: %+v, wrote %+v", i, l, w)
		}
	}

	table := filepath.Join(out, CohortTableFile)
	old := arrow.NewSchema(cohortSchema.Fields()[:7], nil)
	if err := WriteTable(table, old, func(b *array.RecordBuilder) {
		for _, l := range res.Labels {
			appendOldRow(b, l)
		}
	}); err != nil {
		t.Fatal(err)
	}
	c, err = LoadCohort(out)
	if err != nil {
		t.Fatalf("a cohort without the time-to-event columns: %v", err)
	}
	if c.TimeToEventColumns || len(c.Labels) != len(res.Labels) || c.Labels[0].EventTime != StaticTime {
		t.Errorf("old cohort: columns %v, %d labels, first %+v", c.TimeToEventColumns, len(c.Labels), c.Labels[0])
	}
	if err := c.RequireTimeToEvent(); !errors.Is(err, ErrNoTimeToEvent) || !strings.Contains(err.Error(), "rebuild") {
		t.Errorf("old cohort: %v", err)
	}

	bad := res.Labels[len(res.Labels)-1]
	bad.EventObserved, bad.CensorReason = false, "moved away"
	if err := WriteTable(table, cohortSchema, func(b *array.RecordBuilder) {
		for _, l := range append(res.Labels[:len(res.Labels)-1:len(res.Labels)-1], bad) {
			appendOldRow(b, l)
			appendTimeToEvent(b, 7, l)
		}
	}); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf("row %d:", len(res.Labels))
	if _, err := LoadCohort(out); err == nil || !strings.Contains(err.Error(), row) ||
		!strings.Contains(err.Error(), "moved away") {
		t.Errorf("unknown censor reason: %v (want %s)", err, row)
	}
}

// appendOldRow writes a label's first seven cohort.parquet columns.
func appendOldRow(b *array.RecordBuilder, l Label) {
	b.Field(0).(*array.Int64Builder).Append(l.SubjectID)
	b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(l.PredictionTime))
	b.Field(2).(*array.BooleanBuilder).Append(l.Value)
	b.Field(3).(*array.StringBuilder).Append(l.Split)
	if math.IsNaN(l.Age) {
		b.Field(4).AppendNull()
	} else {
		b.Field(4).(*array.Float64Builder).Append(l.Age)
	}
	b.Field(5).(*array.StringBuilder).Append(l.Sex)
	b.Field(6).(*array.TimestampBuilder).Append(arrow.Timestamp(l.Birth))
}

// TestCohortConfigFromParams: a cohort's manifest params read back to the configuration that
// built it, through JSON as a manifest stores them; a label cohort's and a mistyped one's are
// errors naming why.
func TestCohortConfigFromParams(t *testing.T) {
	cfg := testCohortConfig()
	cfg.Lead, cfg.Gap, cfg.FollowUp = 2*MicrosPerYear, 30*MicrosPerDay, 0
	cfg.CensorWindow, cfg.MinEvents = 90*MicrosPerDay, 3
	cfg.Negatives, cfg.NegativesPerPositive, cfg.BandYears, cfg.Seed = NegativesRandomDate, 2.5, 10, 42
	cfg.Fractions, cfg.DeathCodes = SplitFractions{0.6, 0.2, 0.2}, []string{"DEATH", "MEDS_DEATH"}
	dir := t.TempDir()
	if err := NewManifest(StageCohort, cfg.Params()).WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := CohortConfigFromParams(m.Params)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cfg) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, cfg)
	}
	for _, tc := range []struct {
		name, key string
		value     any
		want      string
	}{
		{"label cohort", "targets", nil, "no targets"},
		{"bad duration", "lead", "soon", "lead"},
		{"bad integer", "seed", 1.5, "seed"},
		{"bad fractions", "split_fractions", []any{0.5, 0.5}, "split_fractions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := maps.Clone(m.Params)
			p[tc.key] = tc.value
			if _, err := CohortConfigFromParams(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v", err)
			}
		})
	}
}
