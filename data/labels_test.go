package data

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// labelCol is one column of a test label file: values per row, nil for null.
type labelCol struct {
	name string
	typ  arrow.DataType
	vals []any
}

// writeLabelParquet writes a label file with exactly the given columns and types, as other
// tools write them (every column nullable).
func writeLabelParquet(t testing.TB, path string, cols []labelCol) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	err := WriteTable(path, arrow.NewSchema(fields, nil), func(b *array.RecordBuilder) {
		for row := range cols[0].vals {
			for j, c := range cols {
				v := c.vals[row]
				if v == nil {
					b.Field(j).AppendNull()
					continue
				}
				switch fb := b.Field(j).(type) {
				case *array.Int64Builder:
					fb.Append(v.(int64))
				case *array.TimestampBuilder:
					fb.Append(arrow.Timestamp(v.(int64)))
				case *array.BooleanBuilder:
					fb.Append(v.(bool))
				case *array.Float32Builder:
					fb.Append(v.(float32))
				case *array.Float64Builder:
					fb.Append(v.(float64))
				case *array.StringBuilder:
					fb.Append(v.(string))
				case *array.LargeStringBuilder:
					fb.Append(v.(string))
				default:
					t.Fatalf("column %s: no builder for %T", c.name, fb)
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

var (
	tsUS    = &arrow.TimestampType{Unit: arrow.Microsecond}
	tsNSUTC = &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
)

func day(y int, m time.Month, d int) int64 { return Micros(time.Date(y, m, d, 0, 0, 0, 0, time.UTC)) }

// acesLabels writes rows in the layout ACES writes (ACES 0.6/0.7 get_and_validate_label_schema,
// MEDS label schema of meds 0.3.3): all six columns, the value columns other than
// boolean_value all null, float_value float64, prediction_time timestamp[us].
func acesLabels(t testing.TB, path string, ids []int64, times []int64, values []any) {
	n := len(ids)
	idv, tv, nulls := make([]any, n), make([]any, n), make([]any, n)
	for i := range ids {
		idv[i], tv[i] = ids[i], times[i]
	}
	writeLabelParquet(t, path, []labelCol{
		{ColSubjectID, arrow.PrimitiveTypes.Int64, idv},
		{ColPredictionTime, tsUS, tv},
		{ColBooleanValue, arrow.FixedWidthTypes.Boolean, values},
		{ColIntegerValue, arrow.PrimitiveTypes.Int64, nulls},
		{ColFloatValue, arrow.PrimitiveTypes.Float64, nulls},
		{ColCategoricalValue, arrow.BinaryTypes.String, nulls},
	})
}

// TestReadLabelFilesLayouts: one file in the ACES layout, and a folder of <split>/<n>.parquet
// files as MEDS-DEV ships them, with prediction_time in ns (time zone UTC, a sub-microsecond
// part floored), the value columns absent in one file and filled (float_value float32,
// categorical_value large_string, as polars writes) in another.
func TestReadLabelFilesLayouts(t *testing.T) {
	dir := t.TempDir()
	aces := filepath.Join(dir, "aces.parquet")
	t0 := day(2015, 3, 1)
	acesLabels(t, aces, []int64{1, 1, 2}, []int64{t0, t0 + MicrosPerDay, t0}, []any{true, false, nil})
	lf, err := ReadLabelFiles(aces)
	if err != nil {
		t.Fatal(err)
	}
	second := LabelRow{SubjectID: 1, PredictionTime: t0 + MicrosPerDay, File: aces, Row: 2}
	if len(lf.Rows) != 3 || lf.Rows[1] != second || !lf.Rows[0].Value || !lf.Rows[2].Null {
		t.Errorf("ACES rows: %+v", lf.Rows)
	}
	if strings.Join(lf.ValueColumns, ",") != "integer_value,float_value,categorical_value" {
		t.Errorf("value columns %v", lf.ValueColumns)
	}

	task := filepath.Join(dir, "task")
	ns := t0*1000 + 999 // 999 ns past t0
	writeLabelParquet(t, filepath.Join(task, "held_out", "0.parquet"), []labelCol{
		{ColSubjectID, arrow.PrimitiveTypes.Int64, []any{int64(7), int64(8)}},
		{ColPredictionTime, tsNSUTC, []any{ns, ns - 1000}},
		{ColBooleanValue, arrow.FixedWidthTypes.Boolean, []any{true, false}},
	})
	writeLabelParquet(t, filepath.Join(task, "train", "0.parquet"), []labelCol{
		{ColSubjectID, arrow.PrimitiveTypes.Int64, []any{int64(9)}},
		{ColPredictionTime, tsUS, []any{t0}},
		{ColBooleanValue, arrow.FixedWidthTypes.Boolean, []any{false}},
		{ColIntegerValue, arrow.PrimitiveTypes.Int64, []any{int64(3)}},
		{ColFloatValue, arrow.PrimitiveTypes.Float32, []any{float32(0.5)}},
		{ColCategoricalValue, arrow.BinaryTypes.LargeString, []any{"x"}},
		{"index_timestamp", tsUS, []any{t0 - MicrosPerDay}},
	})
	writeLabelParquet(t, filepath.Join(task, ".hidden", "0.parquet"), []labelCol{
		{ColSubjectID, arrow.PrimitiveTypes.Int64, []any{int64(666)}},
		{ColPredictionTime, tsUS, []any{t0}},
		{ColBooleanValue, arrow.FixedWidthTypes.Boolean, []any{true}},
	})
	lf, err = ReadLabelFiles(task)
	if err != nil {
		t.Fatal(err)
	}
	if len(lf.Files) != 2 || !strings.HasSuffix(lf.Files[0], "held_out/0.parquet") {
		t.Fatalf("files %v", lf.Files)
	}
	if len(lf.Rows) != 3 || lf.Rows[0].PredictionTime != t0 || lf.Rows[1].PredictionTime != t0-1 ||
		lf.Rows[2].SubjectID != 9 {
		t.Errorf("folder rows: %+v", lf.Rows)
	}
}

func TestReadLabelFilesErrors(t *testing.T) {
	dir := t.TempDir()
	t0 := day(2015, 3, 1)
	for _, tc := range []struct {
		name string
		cols []labelCol
		want string
	}{
		{"regression", []labelCol{
			{ColSubjectID, arrow.PrimitiveTypes.Int64, []any{int64(1)}},
			{ColPredictionTime, tsUS, []any{t0}},
			{ColFloatValue, arrow.PrimitiveTypes.Float32, []any{float32(1)}},
		}, "no boolean_value column: medseq predicts a binary outcome (this task's labels are in float_value)"},
		{"nullid", []labelCol{
			{ColSubjectID, arrow.PrimitiveTypes.Int64, []any{int64(1), nil}},
			{ColPredictionTime, tsUS, []any{t0, t0}},
			{ColBooleanValue, arrow.FixedWidthTypes.Boolean, []any{true, false}},
		}, "null subject_id at row 2"},
		{"nulltime", []labelCol{
			{ColSubjectID, arrow.PrimitiveTypes.Int64, []any{int64(1), int64(2)}},
			{ColPredictionTime, tsUS, []any{t0, nil}},
			{ColBooleanValue, arrow.FixedWidthTypes.Boolean, []any{true, false}},
		}, "row 2, column prediction_time: null"},
		{"texttime", []labelCol{
			{ColSubjectID, arrow.PrimitiveTypes.Int64, []any{int64(1)}},
			{ColPredictionTime, arrow.BinaryTypes.String, []any{"2015-03-01"}},
			{ColBooleanValue, arrow.FixedWidthTypes.Boolean, []any{true}},
		}, "column prediction_time: type utf8, want timestamp[us]"},
		{"intvalue", []labelCol{
			{ColSubjectID, arrow.PrimitiveTypes.Int64, []any{int64(1)}},
			{ColPredictionTime, tsUS, []any{t0}},
			{ColBooleanValue, arrow.PrimitiveTypes.Int64, []any{int64(1)}},
		}, "column boolean_value: type int64, want bool"},
		{"noid", []labelCol{
			{"patient_id", arrow.PrimitiveTypes.Int64, []any{int64(1)}},
			{ColPredictionTime, tsUS, []any{t0}},
			{ColBooleanValue, arrow.FixedWidthTypes.Boolean, []any{true}},
		}, "needs columns subject_id and prediction_time (it has patient_id, prediction_time, boolean_value)"},
	} {
		p := filepath.Join(dir, tc.name+".parquet")
		writeLabelParquet(t, p, tc.cols)
		_, err := ReadLabelFiles(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want %q naming the file", tc.name, err, tc.want)
		}
	}
	if _, err := ReadLabelFiles(filepath.Join(dir, "absent.parquet")); err == nil {
		t.Error("absent file read")
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	if _, err := ReadLabelFiles(empty); err == nil || !strings.Contains(err.Error(), "no .parquet file") {
		t.Errorf("empty folder: %v", err)
	}
}

// edgeDataset writes four subjects: 1 (born 1960, female, dies 2013), 2 (born 1970, male,
// records from 2015), 3 (no birth code, SEX//female), 4 (born 1980, one event in 2019).
func edgeDataset(t testing.TB, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "meds")
	w, err := NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(tm int64, code string) Event { return Event{Time: tm, Code: w.Codes.ID(code), Value: NoValue} }
	subjects := map[int64][]Event{
		1: {ev(StaticTime, "SEX//F"), ev(day(1960, 1, 1), BirthCode), ev(day(2010, 1, 1), "A"), ev(day(2011, 1, 1), "B"),
			ev(day(2012, 1, 1), "LATE"), ev(day(2013, 1, 1), DeathCode)},
		2: {ev(StaticTime, "GENDER//M"), ev(day(1970, 1, 1), BirthCode), ev(day(2015, 1, 1), "A"),
			ev(day(2016, 1, 1), "LATE")},
		3: {ev(StaticTime, "SEX//female"), ev(day(2015, 1, 1), "A"), ev(day(2016, 1, 1), "B"), ev(day(2017, 1, 1), "LATE")},
		4: {ev(day(1980, 1, 1), BirthCode), ev(day(2019, 1, 1), "A")},
	}
	split := map[int64]string{1: SplitTrain, 2: SplitTuning, 3: SplitHeldOut, 4: SplitTrain}
	for id := int64(1); id <= 4; id++ {
		if err := w.Add(split[id], Subject{ID: id, Events: subjects[id]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(NewManifest("test edge", nil)); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBuildLabelCohortExclusions: every kind of label a foreign file may hold lands in the
// cohort or in the report's exclusions with its reason; ages, sex, splits and censoring are
// those of a --target cohort.
func TestBuildLabelCohortExclusions(t *testing.T) {
	dir := t.TempDir()
	ds, err := Open(edgeDataset(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id int64
		t  int64
		v  any
	}
	rows := []row{
		{1, day(2010, 6, 1), true},  // kept, age ~50.4, F
		{1, day(2011, 6, 1), false}, // kept: a second prediction time of the same subject
		{1, day(2013, 6, 1), true},  // after death
		{1, day(2013, 1, 1), false}, // at death
		{2, day(1969, 1, 1), false}, // before birth
		{2, day(2014, 1, 1), false}, // no event before it
		{2, day(2015, 6, 1), true},  // kept
		{2, day(2015, 6, 1), true},  // duplicate
		{4, day(2019, 6, 1), false}, // conflicting
		{4, day(2019, 6, 1), true},  // conflicting
		{99, day(2015, 1, 1), true}, // not in the data
		{3, day(2016, 6, 1), nil},   // null boolean_value
		{3, day(2016, 6, 1), false}, // kept, age unknown
		{3, day(2015, 6, 1), true},  // kept
	}
	var ids, times []int64
	var vals []any
	for _, r := range rows {
		ids, times, vals = append(ids, r.id), append(times, r.t), append(vals, r.v)
	}
	lpath := filepath.Join(dir, "labels.parquet")
	acesLabels(t, lpath, ids, times, vals)
	lf, err := ReadLabelFiles(lpath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultCohortConfig()
	res, err := BuildLabelCohort(context.Background(), ds, lf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		id  int64
		t   int64
		v   bool
		sex string
	}
	want := []got{{1, day(2010, 6, 1), true, SexFemale}, {1, day(2011, 6, 1), false, SexFemale},
		{2, day(2015, 6, 1), true, SexMale},
		{3, day(2015, 6, 1), true, SexFemale}, {3, day(2016, 6, 1), false, SexFemale}}
	if len(res.Labels) != len(want) {
		t.Fatalf("labels %+v", res.Labels)
	}
	for i, w := range want {
		l := res.Labels[i]
		if (got{l.SubjectID, l.PredictionTime, l.Value, l.Sex}) != w {
			t.Errorf("label %d: %+v, want %+v", i, l, w)
		}
	}
	if a := res.Labels[0].Age; math.Abs(a-float64(day(2010, 6, 1)-day(1960, 1, 1))/float64(MicrosPerYear)) > 1e-9 ||
		res.Labels[0].Birth != day(1960, 1, 1) {
		t.Errorf("age %v birth %v", a, res.Labels[0].Birth)
	}
	if !math.IsNaN(res.Labels[3].Age) || res.Labels[3].Birth != StaticTime {
		t.Errorf("subject 3 has no birth code: age %v birth %v", res.Labels[3].Age, res.Labels[3].Birth)
	}
	// Splits come from the dataset, by subject.
	for _, l := range res.Labels {
		if wantSplit := map[int64]string{1: SplitTrain, 2: SplitTuning, 3: SplitHeldOut}[l.SubjectID]; l.Split != wantSplit {
			t.Errorf("subject %d split %s, want %s", l.SubjectID, l.Split, wantSplit)
		}
	}
	rep := res.Report
	wantExcl := map[[2]string]int{
		{"any", ExclNullValue}: 1, {"any", ExclConflicting}: 2, {"positive", ExclDuplicate}: 1,
		{"positive", ExclAfterDeath}: 1, {"negative", ExclAfterDeath}: 1, {"negative", ExclBeforeBirth}: 1,
		{"negative", ExclNoVisibleEvent}: 1, {"positive", ExclNotInData}: 1,
	}
	gotExcl := map[[2]string]int{}
	total := 0
	for _, x := range rep.Exclusions {
		gotExcl[[2]string{x.Class, x.Reason}] = x.Count
		total += x.Count
	}
	for k, n := range wantExcl {
		if gotExcl[k] != n {
			t.Errorf("exclusion %v: %d, want %d (all: %+v)", k, gotExcl[k], n, rep.Exclusions)
		}
	}
	if total+len(res.Labels) != len(rows) {
		t.Errorf("%d excluded + %d kept != %d rows", total, len(res.Labels), len(rows))
	}
	if rep.Source != SamplingLabels || rep.LabelRows != len(rows) || rep.LabelSubjects != 3 || rep.UnknownAge != 2 ||
		rep.Subjects != 4 || rep.Positives != 3 || rep.Negatives != 2 ||
		!strings.Contains(rep.SplitSource, "subject_splits") {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "2 labels have no birth date") {
		t.Errorf("warnings %v", rep.Warnings)
	}

	// --gap: subject 2's label at 2015-06-01 sees nothing once 200 days are hidden.
	cfg.Gap = 200 * MicrosPerDay
	gapped, err := BuildLabelCohort(context.Background(), ds, lf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range gapped.Labels {
		if l.SubjectID == 2 {
			t.Errorf("subject 2 kept with nothing visible before its prediction time - gap: %+v", l)
		}
	}

	// Written and loaded back: unknown ages stay unknown, censoring hides LATE from every
	// sequence, and the gap recorded in the manifest applies.
	out := filepath.Join(dir, "cohort")
	m := NewManifest(StageCohort, LabelCohortParams(cfg, lpath))
	if _, err := m.AddInput(InputMEDS, ds.Root); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddInput(InputLabels, lpath); err != nil {
		t.Fatal(err)
	}
	if err := WriteCohort(out, false, gapped, m); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCohort(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gap != cfg.Gap || len(c.Labels) != len(gapped.Labels) {
		t.Fatalf("loaded gap %d, %d labels", c.Gap, len(c.Labels))
	}
	for i, l := range c.Labels {
		w := gapped.Labels[i]
		if l.SubjectID != w.SubjectID || l.PredictionTime != w.PredictionTime || l.Value != w.Value || l.Sex != w.Sex ||
			l.Birth != w.Birth || l.Split != w.Split || (math.IsNaN(w.Age) != math.IsNaN(l.Age)) ||
			(!math.IsNaN(w.Age) && l.Age != w.Age) {
			t.Errorf("loaded label %d: %+v, want %+v", i, l, w)
		}
	}
	in, ok := c.Manifest.Input(InputLabels)
	if fp, _ := Fingerprint(lpath); !ok || in.Fingerprint != fp {
		t.Errorf("manifest labels input %+v, want fingerprint %s", in, fp)
	}
	n := 0
	err = c.Sequences(context.Background(), ds, nil, func(s Sequence) error {
		n++
		for _, e := range s.Events {
			if e.Time != StaticTime && e.Time > s.Label.PredictionTime-cfg.Gap {
				t.Errorf("subject %d at %v sees an event at %v", s.Label.SubjectID, TimeOf(s.Label.PredictionTime), TimeOf(e.Time))
			}
			if ds.Codes.Name(e.Code) == "LATE" {
				t.Errorf("subject %d: LATE reached a sequence", s.Label.SubjectID)
			}
		}
		return nil
	})
	if err != nil || n != len(c.Labels) {
		t.Errorf("sequences: %d of %d, %v", n, len(c.Labels), err)
	}
	var rj map[string]any
	buf, err := os.ReadFile(filepath.Join(out, CohortReportFile))
	if err != nil || json.Unmarshal(buf, &rj) != nil {
		t.Fatalf("cohort_report.json: %v\n%s", err, buf)
	}
	if rj["source"] != "labels" {
		t.Errorf("report source %v", rj["source"])
	}

	// Nothing usable: an empty-cohort error that says why.
	p := filepath.Join(dir, "none.parquet")
	acesLabels(t, p, []int64{99}, []int64{day(2015, 1, 1)}, []any{true})
	lf, _ = ReadLabelFiles(p)
	if _, err := BuildLabelCohort(context.Background(), ds, lf, DefaultCohortConfig()); !errors.Is(err, ErrEmptyCohort) ||
		!strings.Contains(err.Error(), ExclNotInData) {
		t.Errorf("no usable label: %v", err)
	}
}

// TestLabelCohortACESSample builds a cohort from a label file in the ACES layout on ACES' own
// sample MEDS data (../shared/data/meds/aces_sample: no birth codes, SEX//female|male static
// rows, data/<split>/ shard folders): two prediction times per admission, 24 h and 48 h in,
// the label whether a creatinine result follows within the next two days.
func TestLabelCohortACESSample(t *testing.T) {
	root := filepath.Join("..", "..", "shared", "data", "meds", "aces_sample")
	if _, err := os.Stat(root); err != nil {
		t.Skip("no ../shared/data/meds/aces_sample")
	}
	ds, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	var ids, times []int64
	var vals []any
	err = ds.ForEachSubject(context.Background(), func(s Subject) error {
		for _, e := range s.Events {
			if !strings.HasPrefix(ds.Codes.Name(e.Code), "ADMISSION//") {
				continue
			}
			for _, h := range []int64{24, 48} {
				pt := e.Time + h*3600*1_000_000
				y := false
				for _, f := range s.Events {
					y = y || (ds.Codes.Name(f.Code) == "LAB//creatinine" && f.Time > pt && f.Time <= pt+2*MicrosPerDay)
				}
				ids, times, vals = append(ids, s.ID), append(times, pt), append(vals, y)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lpath := filepath.Join(dir, "task.parquet")
	acesLabels(t, lpath, ids, times, vals)
	lf, err := ReadLabelFiles(lpath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := BuildLabelCohort(context.Background(), ds, lf, DefaultCohortConfig())
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report
	t.Logf("%d rows, %d labels (%d+), %d subjects, splits %v, exclusions %+v", rep.LabelRows, rep.Labels, rep.Positives,
		rep.LabelSubjects, rep.Splits, rep.Exclusions)
	if rep.Labels < 100 || rep.Positives == 0 || rep.Negatives == 0 || rep.UnknownAge != rep.Labels {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(rep.SplitSource, "shard folders") {
		t.Errorf("split source %q", rep.SplitSource)
	}
	shardOf := map[int64]string{}
	ds.ForEachShard(context.Background(), func(sh *Shard) error {
		for _, s := range sh.Subjects {
			shardOf[s.ID] = ds.ShardSplit(sh.Path)
		}
		return nil
	})
	sexes := map[string]int{}
	for _, l := range res.Labels {
		sexes[l.Sex]++
		if l.Split != shardOf[l.SubjectID] {
			t.Errorf("subject %d: split %s, shard folder %s", l.SubjectID, l.Split, shardOf[l.SubjectID])
		}
	}
	if sexes[SexFemale] == 0 || sexes[SexMale] == 0 || sexes[SexUnknown] != 0 {
		t.Errorf("sexes %v", sexes)
	}
	out := filepath.Join(dir, "cohort")
	m := NewManifest(StageCohort, LabelCohortParams(DefaultCohortConfig(), lpath))
	if err := WriteCohort(out, false, res, m); err != nil {
		t.Fatal(err)
	}
	checkLabelSchema(t, filepath.Join(out, LabelsFile), len(res.Labels))
}

// checkLabelSchema checks labels.parquet field by field against the MEDS label schema of
// meds 0.4 (meds/schema.py LabelSchema: subject_id int64 and prediction_time timestamp[us]
// required; boolean_value bool, integer_value int64, float_value float32, categorical_value
// string optional) as its validator applies it: no column outside the schema, optional value
// columns absent rather than all null, no null in a required column; as the MEDS writers do,
// every column is nullable in the Parquet schema. prediction_time must be
// TIMESTAMP(MICROS, isAdjustedToUTC=false), which pyarrow reads as timestamp[us] with no
// time zone.
func checkLabelSchema(t *testing.T, path string, rows int) {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	sc := pf.MetaData().Schema
	want := []struct {
		name string
		phys parquet.Type
	}{{"subject_id", parquet.Types.Int64}, {"prediction_time", parquet.Types.Int64},
		{"boolean_value", parquet.Types.Boolean}}
	if sc.NumColumns() != len(want) {
		t.Fatalf("%s: %d columns, want %d (optional value columns absent, not all null)", path, sc.NumColumns(), len(want))
	}
	for i, w := range want {
		col := sc.Column(i)
		if col.Name() != w.name || col.PhysicalType() != w.phys ||
			col.SchemaNode().RepetitionType() != parquet.Repetitions.Optional {
			t.Errorf("column %d: %s %s %s, want %s %s optional", i, col.Name(), col.PhysicalType(),
				col.SchemaNode().RepetitionType(), w.name, w.phys)
		}
	}
	lt, ok := sc.Column(1).LogicalType().(schema.TimestampLogicalType)
	if !ok || lt.TimeUnit() != schema.TimeUnitMicros || lt.IsAdjustedToUTC() {
		t.Errorf("prediction_time logical type %v, want TIMESTAMP(MICROS, isAdjustedToUTC=false)", sc.Column(1).LogicalType())
	}
	n := 0
	err = ReadTable(path, func(rec arrow.RecordBatch) error {
		s := rec.Schema()
		if !arrow.TypeEqual(s.Field(0).Type, arrow.PrimitiveTypes.Int64) ||
			!arrow.TypeEqual(s.Field(1).Type, &arrow.TimestampType{Unit: arrow.Microsecond}) ||
			!arrow.TypeEqual(s.Field(2).Type, arrow.FixedWidthTypes.Boolean) {
			t.Errorf("arrow schema %s", s)
		}
		for i := 0; i < 3; i++ {
			if rec.Column(i).NullN() != 0 {
				t.Errorf("column %s has %d nulls", s.Field(i).Name, rec.Column(i).NullN())
			}
		}
		n += int(rec.NumRows())
		return nil
	})
	if err != nil || n != rows {
		t.Errorf("%s: %d rows (want %d), %v", path, n, rows, err)
	}
}

// TestLabelsFileSchema: the labels.parquet of a --target cohort passes the MEDS 0.4 label
// schema too.
func TestLabelsFileSchema(t *testing.T) {
	dir := t.TempDir()
	ds, err := Open(population(t, dir, 600, 3))
	if err != nil {
		t.Fatal(err)
	}
	res, err := BuildCohort(context.Background(), ds, testCohortConfig())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cohort")
	if err := WriteCohort(out, false, res, NewManifest(StageCohort, nil)); err != nil {
		t.Fatal(err)
	}
	checkLabelSchema(t, filepath.Join(out, LabelsFile), len(res.Labels))
	// A cohort's own labels.parquet reads back as external labels: the same rows.
	lf, err := ReadLabelFiles(filepath.Join(out, LabelsFile))
	if err != nil || len(lf.Rows) != len(res.Labels) {
		t.Fatalf("%v, %d rows", err, len(lf.Rows))
	}
	for i, r := range lf.Rows {
		l := res.Labels[i]
		if r.SubjectID != l.SubjectID || r.PredictionTime != l.PredictionTime || r.Value != l.Value || r.Null {
			t.Fatalf("row %d: %+v, label %+v", i, r, l)
		}
	}
}
