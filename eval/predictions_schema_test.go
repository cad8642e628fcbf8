package eval

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
)

// wantField is one expected column: name, Arrow type (as read back), Parquet physical type.
type wantField struct {
	name string
	typ  arrow.DataType
	phys parquet.Type
}

var tsMicros = &arrow.TimestampType{Unit: arrow.Microsecond}

// checkParquetSchema checks a Parquet file's columns field by field: names in order, Arrow
// types as pyarrow reads them back (from the stored Arrow schema), Parquet physical types,
// every column OPTIONAL (nullable, as pyarrow's pa.schema fields are by default) and without
// nulls where noNulls says, and timestamps TIMESTAMP(MICROS, isAdjustedToUTC=false), which
// pyarrow reads as timestamp[us] with no time zone. It returns the file's key-value metadata
// other than the stored Arrow schema.
func checkParquetSchema(t *testing.T, path string, want []wantField, noNulls int) map[string]string {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	sc := pf.MetaData().Schema
	if sc.NumColumns() != len(want) {
		var names []string
		for i := 0; i < sc.NumColumns(); i++ {
			names = append(names, sc.Column(i).Name())
		}
		t.Fatalf("%s: columns %v, want %d", path, names, len(want))
	}
	for i, w := range want {
		col := sc.Column(i)
		if col.Name() != w.name || col.PhysicalType() != w.phys || col.SchemaNode().RepetitionType() != parquet.Repetitions.Optional {
			t.Errorf("%s column %d: %s %s %s, want %s %s OPTIONAL", filepath.Base(path), i, col.Name(), col.PhysicalType(),
				col.SchemaNode().RepetitionType(), w.name, w.phys)
		}
		if arrow.TypeEqual(w.typ, tsMicros) {
			lt, ok := col.LogicalType().(schema.TimestampLogicalType)
			if !ok || lt.TimeUnit() != schema.TimeUnitMicros || lt.IsAdjustedToUTC() {
				t.Errorf("%s: %s is %v, want TIMESTAMP(MICROS, isAdjustedToUTC=false)", path, w.name, col.LogicalType())
			}
		}
	}
	md := map[string]string{}
	kv := pf.MetaData().KeyValueMetadata()
	for i, k := range kv.Keys() {
		if k != "ARROW:schema" {
			md[k] = kv.Values()[i]
		}
	}
	pf.Close()
	err = data.ReadTable(path, func(rec arrow.RecordBatch) error {
		s := rec.Schema()
		for i, w := range want {
			if !arrow.TypeEqual(s.Field(i).Type, w.typ) || !s.Field(i).Nullable {
				t.Errorf("%s: arrow field %s, want %s %s nullable", path, s.Field(i), w.name, w.typ)
			}
			if i < noNulls && rec.Column(i).NullN() != 0 {
				t.Errorf("%s: %s has %d nulls", path, w.name, rec.Column(i).NullN())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// predictionSchemaFields is meds-evaluation's PredictionSchema (meds-evaluation 0.0.x,
// meds_evaluation/schema.py, a pa.schema of subject_id int64, prediction_time timestamp[us],
// boolean_value bool, predicted_boolean_value bool, predicted_boolean_probability float64;
// fields nullable as pa.schema makes them), which its validator compares a predictions
// table with: no other column.
var predictionSchemaFields = []wantField{
	{"subject_id", arrow.PrimitiveTypes.Int64, parquet.Types.Int64},
	{"prediction_time", tsMicros, parquet.Types.Int64},
	{"boolean_value", arrow.FixedWidthTypes.Boolean, parquet.Types.Boolean},
	{"predicted_boolean_value", arrow.FixedWidthTypes.Boolean, parquet.Types.Boolean},
	{"predicted_boolean_probability", arrow.PrimitiveTypes.Float64, parquet.Types.Double},
}

// TestPredictionsFilesSchemas: a predictions Parquet file is meds-evaluation's
// PredictionSchema and nothing else; the attributes are in the extras file beside it, typed
// (numbers as numbers), keyed by subject_id and prediction_time, and tied to the predictions
// file by its SHA-256; ReadPredictions joins them back exactly.
func TestPredictionsFilesSchemas(t *testing.T) {
	t0 := time.Date(2020, 3, 1, 12, 30, 0, 123456000, time.UTC).UnixMicro()
	preds := []Prediction{
		{SubjectID: 1, PredictionTime: t0, Label: true, Score: 0.8125, Attrs: map[string]string{"sex": "F", "age": "61.50", "split": "held_out",
			ColRawProbability: FormatRaw(0.1 + 0.2), "region": "7"}},
		{SubjectID: 2, PredictionTime: t0, Label: false, Score: 0.1, Attrs: map[string]string{"sex": "M", "age": "40", "split": "held_out",
			ColRawProbability: "0", "region": "12"}},
		{SubjectID: 2, PredictionTime: t0, Label: false, Score: 0.2, Attrs: map[string]string{"sex": "M", "split": "held_out",
			ColRawProbability: FormatRaw(1.0 / 3), "region": "12"}}, // a repeated key, no age
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "predictions_held_out.parquet")
	if err := WritePredictions(path, preds, 0.5); err != nil {
		t.Fatal(err)
	}
	if md := checkParquetSchema(t, path, predictionSchemaFields, 5); len(md) != 0 {
		t.Errorf("predictions file metadata %v", md)
	}
	extra := modelrepo.PredictionsExtraPath(path)
	if extra != filepath.Join(dir, "predictions_held_out.extra.parquet") || extra != modelrepo.PredictionsExtraFile(dir, "held_out") {
		t.Fatalf("extras path %s", extra)
	}
	md := checkParquetSchema(t, extra, []wantField{
		{"subject_id", arrow.PrimitiveTypes.Int64, parquet.Types.Int64},
		{"prediction_time", tsMicros, parquet.Types.Int64},
		{"age", arrow.PrimitiveTypes.Float64, parquet.Types.Double},
		{"raw_probability", arrow.PrimitiveTypes.Float64, parquet.Types.Double},
		{"region", arrow.PrimitiveTypes.Int64, parquet.Types.Int64},
		{"sex", arrow.BinaryTypes.String, parquet.Types.ByteArray},
		{"split", arrow.BinaryTypes.String, parquet.Types.ByteArray},
	}, 2)
	sum, _ := fileSHA256(path)
	if v, ok := md[ExtrasHashKey]; !ok || v != sum || len(md) != 1 {
		t.Errorf("extras metadata %v, want %s=%s", md, ExtrasHashKey, sum)
	}
	got, err := ReadPredictions(path)
	if err != nil {
		t.Fatal(err)
	}
	preds[0].Attrs["age"] = "61.5" // a number now: its shortest text
	if !reflect.DeepEqual(got, preds) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, preds)
	}
	raw, err := RawScores(got)
	if err != nil || raw[0].Score != 0.1+0.2 || raw[2].Score != 1.0/3 {
		t.Errorf("raw scores %+v %v", raw, err)
	}

	// Written again without attributes: the stale extras file goes.
	plain := []Prediction{{SubjectID: 1, PredictionTime: t0, Label: true, Score: 0.5}}
	if err := WritePredictions(path, plain, 0.5); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(extra); !os.IsNotExist(err) {
		t.Errorf("stale extras left: %v", err)
	}
	got, err = ReadPredictions(path)
	if err != nil || !reflect.DeepEqual(got, plain) {
		t.Errorf("%+v %v", got, err)
	}
	if _, err := RawScores(got); err == nil || !strings.Contains(err.Error(), "no raw_probability") {
		t.Errorf("raw scores without extras: %v", err)
	}
}

// TestPredictionsExtrasMismatch: an extras file never joins a predictions file it was not
// written with.
func TestPredictionsExtrasMismatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.parquet")
	preds := []Prediction{
		{SubjectID: 1, PredictionTime: 10, Label: true, Score: 0.8, Attrs: map[string]string{"sex": "F"}},
		{SubjectID: 2, PredictionTime: 10, Label: false, Score: 0.3, Attrs: map[string]string{"sex": "M"}},
	}
	if err := WritePredictions(path, preds, 0.5); err != nil {
		t.Fatal(err)
	}
	// The predictions file replaced by another writer: the extras no longer belong to it.
	writeBare(t, path, preds[:1])
	if _, err := ReadPredictions(path); err == nil || !strings.Contains(err.Error(), "was not written with") {
		t.Errorf("stale extras: %v", err)
	}
	// Extras with a row of another subject, under the right hash.
	writeBare(t, path, preds)
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	other := []Prediction{preds[0], {SubjectID: 3, PredictionTime: 10, Attrs: map[string]string{"sex": "M"}}}
	if err := writeExtras(path, sum, other, []string{"sex"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPredictions(path); err == nil || !strings.Contains(err.Error(), "row 2 (subject 3 at") {
		t.Errorf("foreign row: %v", err)
	}
	if err := writeExtras(path, sum, preds[:1], []string{"sex"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPredictions(path); err == nil || !strings.Contains(err.Error(), "1 rows for the 2 predictions") {
		t.Errorf("short extras: %v", err)
	}
	// A write that fails after its predictions file is complete (the extras cannot be written)
	// changes neither file.
	writeBare(t, path, preds)
	before, _ := os.ReadFile(path)
	extra := modelrepo.PredictionsExtraPath(path)
	os.Remove(extra)
	if err := os.Mkdir(extra, 0o755); err != nil { // a folder where the extras file goes
		t.Fatal(err)
	}
	if err := WritePredictions(path, preds[:1], 0.5); err == nil {
		t.Fatal("a write whose extras file cannot be written succeeded")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the predictions file changed though the write failed")
	}
}

// writeBare writes a predictions file alone, as another writer would.
func writeBare(t *testing.T, path string, preds []Prediction) {
	t.Helper()
	f, err := data.CreateAtomic(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if err := writePredictionsParquet(f, preds, 0.5); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestReadPlainMEDSEvaluationFile: a predictions file written by another tool in
// meds-evaluation's PredictionSchema (no extras file, probabilities as float32, an optional
// column absent) reads as it is.
func TestReadPlainMEDSEvaluationFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "other.parquet")
	sc := arrow.NewSchema([]arrow.Field{
		{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: ColPredictionTime, Type: &arrow.TimestampType{Unit: arrow.Nanosecond}, Nullable: true},
		{Name: ColLabel, Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: ColProbability, Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	}, nil)
	err := data.WriteTable(path, sc, func(b *array.RecordBuilder) {
		for i := 0; i < 40; i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(i) * 1000))
			b.Field(2).(*array.BooleanBuilder).Append(i%3 == 0)
			b.Field(3).(*array.Float32Builder).Append(float32(math.Mod(float64(i)*0.37, 1)))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	preds, err := ReadPredictions(path)
	if err != nil || len(preds) != 40 || preds[5].PredictionTime != 5 || preds[3].Attrs != nil {
		t.Fatalf("%v %+v", err, preds[:6])
	}
	if _, err := Compute(preds, Config{Threshold: ThresholdSpec{Method: ThresholdFixed, Value: 0.5}}); err != nil {
		t.Error(err)
	}
}
