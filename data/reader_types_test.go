package data

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// writeForeign writes one shard with the given Arrow schema, as another tool might.
func writeForeign(t *testing.T, root string, schema *arrow.Schema, fill func(b *array.RecordBuilder), dict bool) {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	fill(b)
	rec := b.NewRecordBatch()
	defer rec.Release()
	p := filepath.Join(root, DataDir, "train", "0.parquet")
	os.MkdirAll(filepath.Dir(p), 0o755)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	props := parquet.NewWriterProperties(parquet.WithDictionaryDefault(dict))
	fw, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReadColumnVariants reads the column types other MEDS writers produce: large_string or
// dictionary codes, float64 values, other timestamp units, extra columns, columns in any order.
func TestReadColumnVariants(t *testing.T) {
	const day = int64(86_400)
	type want struct {
		id    int64
		time  int64 // microseconds or StaticTime
		code  string
		value float32 // NaN when none
	}
	rows := []want{
		{7, StaticTime, "SEX//F", NoValue},
		{7, 1000 * day * 1_000_000, "ICD10/E11.9", NoValue},
		{7, 1001 * day * 1_000_000, "LOINC/4548-4", 48.5},
		{3, 5 * day * 1_000_000, "SNOMED/44054006", NoValue},
	}
	for _, tc := range []struct {
		name     string
		codeType arrow.DataType
		timeUnit arrow.TimeUnit
		valType  arrow.DataType
		dict     bool
	}{
		{"string us float32", arrow.BinaryTypes.String, arrow.Microsecond, arrow.PrimitiveTypes.Float32, true},
		{"large_string ns float64 plain", arrow.BinaryTypes.LargeString, arrow.Nanosecond, arrow.PrimitiveTypes.Float64,
			false},
		{"dictionary ms", &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String},
			arrow.Millisecond, arrow.PrimitiveTypes.Float32, true},
		{"large_string seconds", arrow.BinaryTypes.LargeString, arrow.Second, arrow.PrimitiveTypes.Float64, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			schema := arrow.NewSchema([]arrow.Field{
				{Name: "extra_text", Type: arrow.BinaryTypes.String, Nullable: true},
				{Name: ColCode, Type: tc.codeType, Nullable: true},
				{Name: ColNumericValue, Type: tc.valType, Nullable: true},
				{Name: ColTime, Type: &arrow.TimestampType{Unit: tc.timeUnit}, Nullable: true},
				{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
			}, nil)
			div := map[arrow.TimeUnit]int64{arrow.Second: 1_000_000, arrow.Millisecond: 1000, arrow.Microsecond: 1,
				arrow.Nanosecond: 1}[tc.timeUnit]
			mul := int64(1)
			if tc.timeUnit == arrow.Nanosecond {
				mul = 1000
			}
			writeForeign(t, root, schema, func(b *array.RecordBuilder) {
				for _, r := range rows {
					b.Field(0).(*array.StringBuilder).Append("ignored")
					switch cb := b.Field(1).(type) {
					case *array.StringBuilder:
						cb.Append(r.code)
					case *array.LargeStringBuilder:
						cb.Append(r.code)
					case *array.BinaryDictionaryBuilder:
						cb.AppendString(r.code)
					}
					switch vb := b.Field(2).(type) {
					case *array.Float32Builder:
						if math.IsNaN(float64(r.value)) {
							vb.AppendNull()
						} else {
							vb.Append(r.value)
						}
					case *array.Float64Builder:
						if math.IsNaN(float64(r.value)) {
							vb.AppendNull()
						} else {
							vb.Append(float64(r.value))
						}
					}
					if r.time == StaticTime {
						b.Field(3).AppendNull()
					} else {
						b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(r.time / div * mul))
					}
					b.Field(4).(*array.Int64Builder).Append(r.id)
				}
			}, tc.dict)
			ds, subs := readAll(t, root)
			if len(subs) != 2 || subs[0].ID != 3 || subs[1].ID != 7 {
				t.Fatalf("subjects %+v", subs)
			}
			got := append(append([]Event(nil), subs[1].Events...), subs[0].Events...)
			for i, r := range rows {
				e := got[i]
				if ds.Codes.Name(e.Code) != r.code || e.Time != r.time {
					t.Errorf("row %d: %s at %d, want %s at %d", i, ds.Codes.Name(e.Code), e.Time, r.code, r.time)
				}
				if e.HasValue() != !math.IsNaN(float64(r.value)) || (e.HasValue() && e.Value != r.value) {
					t.Errorf("row %d: value %v, want %v", i, e.Value, r.value)
				}
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	t.Run("missing code column", func(t *testing.T) {
		root := t.TempDir()
		schema := arrow.NewSchema([]arrow.Field{
			{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64},
			{Name: ColTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		}, nil)
		writeForeign(t, root, schema, func(b *array.RecordBuilder) {
			b.Field(0).(*array.Int64Builder).Append(1)
			b.Field(1).AppendNull()
		}, true)
		ds, err := Open(root)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ds.ReadShard(ds.Shards[0])
		if err == nil || !containsAll(err.Error(), "0.parquet", "code") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("null subject id", func(t *testing.T) {
		root := t.TempDir()
		writeForeign(t, root, EventSchema, func(b *array.RecordBuilder) {
			b.Field(0).AppendNull()
			b.Field(1).AppendNull()
			b.Field(2).(*array.StringBuilder).Append("X")
			b.Field(3).AppendNull()
		}, true)
		ds, _ := Open(root)
		_, err := ds.ReadShard(ds.Shards[0])
		if err == nil || !containsAll(err.Error(), "0.parquet", "subject_id", "row 1") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("not a parquet file", func(t *testing.T) {
		root := t.TempDir()
		p := filepath.Join(root, DataDir, "0.parquet")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("subject_id,time,code\n1,,X\n"), 0o644)
		ds, _ := Open(root)
		if _, err := ds.ReadShard(p); err == nil || !containsAll(err.Error(), "0.parquet") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("no data folder", func(t *testing.T) {
		if _, err := Open(t.TempDir()); err == nil || !containsAll(err.Error(), "data/") {
			t.Errorf("err %v", err)
		}
	})
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
