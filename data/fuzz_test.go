package data

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// The fuzz targets of issue 14: `data import` (CSV) and the MEDS Parquet reader. Under `go
// test` each runs on its seeds (the f.Add ones and testdata/fuzz/<target>/); `go test -fuzz
// FuzzImportCSV ./data` (or FuzzReadShard) explores further. MEDSEQ_WRITE_FUZZ_SEEDS=1 writes
// the generated Parquet seeds into testdata/fuzz/FuzzReadShard/.

// importRows is a dataset's rows as comparable strings, subject by subject, in order.
func importRows(t *testing.T, out string) ([]string, int64) {
	t.Helper()
	ds, err := Open(out)
	if err != nil {
		t.Fatalf("the import's dataset does not open: %v", err)
	}
	var rows []string
	var static int64
	err = ds.ForEachSubject(context.Background(), func(s Subject) error {
		for _, e := range s.Events {
			if e.IsStatic() {
				static++
			}
			rows = append(rows, fmt.Sprintf("%d %d %q %v", s.ID, e.Time, ds.Codes.Name(e.Code), e.Value))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the import's dataset does not read: %v", err)
	}
	return rows, static
}

// FuzzImportCSV: any events and subjects files either import or fail with a located input
// error (ErrBadInput) leaving nothing at the output or beside it; an import holding every
// event in memory and one spilling every two events agree; what imports reads back with as
// many rows as the summary says, every undated row static (one SEX row per subject besides),
// no dated event before its subject's birth day, no code empty.
func FuzzImportCSV(f *testing.F) {
	for _, pair := range [][2]string{
		{"subject_id,time,code,value\n1,,ICD10/E11,\n1,2010-01-01,ICD10/I11,\n",
			"subject_id,birth_date,sex\n1,1950-03-04,F\n"},
		{"subject_id,time,code,value\n1,,ICD10/E11,\n1,2010-01-01,ICD10/I11,\n",
			"subject_id,birth_date,sex\n1,1990-03-04,F\n"},
		{"subject_id,date,code,numeric_value\n2,2001-02-03T04:05:06.789Z,\"A,\"\"B\"\"\nC\",1.5\n1,,S,\n2,,S,-0\n",
			"Subject_ID,Birth_Date,Sex,Death_Date,Split\n1,1980-01-01,male,,train\n2,1970-01-01 00:00,U,2020-01-01,held_out\n"},
		{"\ufeffsubject_id,time,code\n1,2020-01-01 10:00,X\n", "subject_id,birth_date,sex\n1,2020-01-01,F\n"},
		{"subject_id,time,code\n1,2019-12-31,X\n", "subject_id,birth_date,sex\n1,2020-01-01,F\n"},
		{"subject_id,time,code\n1,2020-01-01,\n", "subject_id,birth_date,sex\n1,2020-01-01,F\n"},
		{"subject_id,time,code,value\n1,2020-01-01,X,NaN\n", "subject_id,birth_date,sex\n1,2000-01-01,F\n"},
		{"subject_id,time,code\n", "subject_id,birth_date,sex\n1,2000-01-01,F\n"},
		{"subject_id,time,code\n1,2020-01-01,X\n", "subject_id,birth_date,sex\n1,2000-01-01,F\n1,2000-01-01,M\n"},
		{"subject_id,time,code\n1,2020-01-01,\"X\n", "subject_id,birth_date,sex\n1,2000-01-01,F\n"},
		{"subject_id,time,code\n1,2020-01-01,X,extra\n", "subject_id,birth_date,sex\n1,2000-01-01,F\n"},
		{"", ""},
	} {
		f.Add([]byte(pair[0]), []byte(pair[1]))
	}
	if ev, err := os.ReadFile(filepath.Join(importFixtures, "events.csv")); err == nil {
		if su, err := os.ReadFile(filepath.Join(importFixtures, "subjects.csv")); err == nil {
			f.Add(ev, su)
		}
	}
	f.Fuzz(func(t *testing.T, events, subjects []byte) {
		if len(events)+len(subjects) > 1<<16 {
			t.Skip("keep each input small")
		}
		dir := t.TempDir()
		ep, sp := filepath.Join(dir, "events.csv"), filepath.Join(dir, "subjects.csv")
		if err := os.WriteFile(ep, events, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sp, subjects, 0o644); err != nil {
			t.Fatal(err)
		}
		var got [2][]string
		var errs [2]error
		for i, mem := range []int{0, 2} {
			out := filepath.Join(dir, fmt.Sprintf("out%d", i))
			sum, err := ImportCSV(context.Background(), ImportConfig{EventsPath: ep, SubjectsPath: sp, Out: out,
				MemoryEvents: mem})
			errs[i] = err
			if err != nil {
				if !errors.Is(err, ErrBadInput) {
					t.Fatalf("memory-events %d: an error that is not a located input error: %v", mem, err)
				}
				var ie *InputError
				if !errors.As(err, &ie) || ie.Line < 1 || (ie.File != ep && ie.File != sp) {
					t.Fatalf("memory-events %d: error without file and line: %v", mem, err)
				}
				if strings.Contains(ie.Msg, "event at  is") {
					t.Fatalf("an undated row was judged as dated: %v", err)
				}
				ents, _ := os.ReadDir(dir)
				for _, e := range ents {
					if e.Name() != "events.csv" && e.Name() != "subjects.csv" && !strings.HasPrefix(e.Name(), "out0") {
						t.Fatalf("a failed import left %s", e.Name())
					}
				}
				continue
			}
			rows, static := importRows(t, out)
			got[i] = rows
			if int64(len(rows)) != sum.Events {
				t.Fatalf("read %d rows, the summary says %d", len(rows), sum.Events)
			}
			if static != sum.Static+int64(sum.Subjects) {
				t.Fatalf("%d static rows; the summary says %d undated event rows and %d subjects (one sex row each)", static,
					sum.Static, sum.Subjects)
			}
			if n, ok := undatedRows(events); ok && n != sum.Static {
				t.Fatalf("the events file has %d undated rows, the import made %d static", n, sum.Static)
			}
			checkImported(t, out)
		}
		if (errs[0] == nil) != (errs[1] == nil) || (errs[0] != nil && errs[0].Error() != errs[1].Error()) {
			t.Fatalf("in memory: %v; spilling: %v", errs[0], errs[1])
		}
		if !slices.Equal(got[0], got[1]) {
			t.Fatalf("in memory and spilling differ:\n%v\n%v", got[0], got[1])
		}
	})
}

// undatedRows counts the rows of a plain (not gzip) events CSV whose time column is blank, read
// by encoding/csv independently of the importer; ok is false when it cannot tell.
func undatedRows(events []byte) (int64, bool) {
	if len(events) >= 2 && events[0] == 0x1f && events[1] == 0x8b {
		return 0, false
	}
	r := csv.NewReader(bytes.NewReader(events))
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return 0, false
	}
	col := -1
	for i, h := range head {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		if h = strings.ToLower(strings.TrimSpace(h)); h == "time" || h == "date" {
			col = i
		}
	}
	if col < 0 {
		return 0, false
	}
	var n int64
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return n, true
		}
		if err != nil || col >= len(rec) {
			return 0, false
		}
		if strings.TrimSpace(rec[col]) == "" {
			n++
		}
	}
}

// checkImported: no dated event before its subject's birth day, no empty code.
func checkImported(t *testing.T, out string) {
	t.Helper()
	ds, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	ds.ForEachSubject(context.Background(), func(s Subject) error {
		birth := StaticTime
		for _, e := range s.Events {
			if ds.Codes.Name(e.Code) == BirthCode && !e.IsStatic() {
				birth = e.Time
			}
			if strings.TrimSpace(ds.Codes.Name(e.Code)) == "" {
				t.Fatalf("subject %d: an empty code", s.ID)
			}
		}
		for _, e := range s.Events {
			if !e.IsStatic() && birth != StaticTime && FloorDiv(e.Time, MicrosPerDay) < FloorDiv(birth, MicrosPerDay) {
				t.Fatalf("subject %d: %s at %v before the birth at %v", s.ID, ds.Codes.Name(e.Code), TimeOf(e.Time), TimeOf(birth))
			}
		}
		return nil
	})
}

// readShardSeeds are small MEDS shards as medseq writes them and as other tools do
// (dictionary and large_string codes, float64 values, millisecond times, several row groups,
// rows out of order, nulls).
func readShardSeeds(tb testing.TB) map[string][]byte {
	tb.Helper()
	dir := tb.TempDir()
	seeds := map[string][]byte{}
	// medseq's own writer.
	codes := NewCodes()
	subs := []Subject{
		{ID: 1, Events: []Event{{Time: StaticTime, Code: codes.ID("SEX//F"), Value: NoValue},
			{Time: 0, Code: codes.ID(BirthCode), Value: NoValue},
			{Time: 86_400_000_000, Code: codes.ID("LOINC/4548-4"), Value: 48.5}}},
		{ID: 3, Events: []Event{{Time: -5, Code: codes.ID(BirthCode), Value: NoValue},
			{Time: 7, Code: codes.ID("ICD10/E11.9"), Value: NoValue}}},
	}
	p := filepath.Join(dir, "medseq.parquet")
	if err := WriteShard(p, codes, subs); err != nil {
		tb.Fatal(err)
	}
	if b, err := os.ReadFile(p); err == nil {
		seeds["medseq"] = b
	}
	type col struct {
		field arrow.Field
		fill  func(b array.Builder)
	}
	var meta *arrow.Metadata // key-value metadata of the next file written
	foreign := func(name string, rowGroup int64, dict bool, cols ...col) {
		fields := make([]arrow.Field, len(cols))
		for i, c := range cols {
			fields[i] = c.field
		}
		schema := arrow.NewSchema(fields, meta)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		for i, c := range cols {
			c.fill(b.Field(i))
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		p := filepath.Join(dir, name+".parquet")
		f, err := os.Create(p)
		if err != nil {
			tb.Fatal(err)
		}
		props := parquet.NewWriterProperties(parquet.WithDictionaryDefault(dict), parquet.WithMaxRowGroupLength(rowGroup))
		wprops := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
		if meta != nil {
			wprops = pqarrow.NewArrowWriterProperties()
		}
		fw, err := pqarrow.NewFileWriter(schema, f, props, wprops)
		if err != nil {
			tb.Fatal(err)
		}
		if err := fw.Write(rec); err != nil {
			tb.Fatal(err)
		}
		if err := fw.Close(); err != nil {
			tb.Fatal(err)
		}
		f.Close()
		b2, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		seeds[name] = b2
	}
	ids := col{arrow.Field{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64}, func(b array.Builder) {
		b.(*array.Int64Builder).AppendValues([]int64{7, 3, 7, 3, 9}, nil)
	}}
	msTimes := col{arrow.Field{Name: ColTime, Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
		func(b array.Builder) {
			b.(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{0, 86_400_000, 5, 1, 2},
				[]bool{false, true, true, true, true})
		}}
	largeCodes := col{arrow.Field{Name: ColCode, Type: arrow.BinaryTypes.LargeString}, func(b array.Builder) {
		b.(*array.LargeStringBuilder).AppendValues([]string{"SEX//F", "ICD10/E11.9", "LOINC/4548-4", "", "X"}, nil)
	}}
	f64Values := col{arrow.Field{Name: ColNumericValue, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		func(b array.Builder) {
			b.(*array.Float64Builder).AppendValues([]float64{0, 1.5, math.Inf(1), math.NaN(), -2},
				[]bool{false, true, true, true, true})
		}}
	extra := col{arrow.Field{Name: "text_value", Type: arrow.BinaryTypes.String, Nullable: true}, func(b array.Builder) {
		b.(*array.StringBuilder).AppendValues([]string{"", "a", "", "", ""}, []bool{false, true, false, false, false})
	}}
	foreign("foreign-large-string-ms-f64", 1<<20, false, extra, f64Values, largeCodes, msTimes, ids)
	foreign("foreign-dictionary-row-groups", 2, true, ids, msTimes, largeCodes, f64Values)
	foreign("foreign-no-value-column", 3, true, ids, msTimes, largeCodes)
	foreign("not-meds", 1<<20, false, extra)
	// A stored Arrow schema (an IPC message) whose flatbuffer declares a body of 1 TiB: arrow-go
	// allocated it, the process died out of memory (the reader now ignores the stored schema).
	msg := []byte{0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0, // continuation, metadata length
		16, 0, 0, 0, // root table at 16
		12, 0, 16, 0, 0, 0, 0, 0, 0, 0, 4, 0, // vtable: 12 bytes, table 16, field 3 (bodyLength) at +4
		12, 0, 0, 0, // the table: its vtable 12 bytes back
		0, 0, 0, 0, 0, 1, 0, 0} // bodyLength 1 << 40
	md := arrow.NewMetadata([]string{"ARROW:schema"}, []string{base64.StdEncoding.EncodeToString(msg)})
	meta = &md
	foreign("stored-arrow-schema-1TiB-body", 1<<20, false, ids, msTimes, largeCodes)
	meta = nil
	return seeds
}

// FuzzReadShard: any bytes as a MEDS shard either read or fail with an error naming the file;
// what reads groups every row under one subject, in subject order, with codes of the table.
func FuzzReadShard(f *testing.F) {
	seeds := readShardSeeds(f)
	names := make([]string, 0, len(seeds))
	for n := range seeds {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f.Add(seeds[n])
	}
	if os.Getenv("MEDSEQ_WRITE_FUZZ_SEEDS") != "" {
		dir := filepath.Join("testdata", "fuzz", "FuzzReadShard")
		os.MkdirAll(dir, 0o755)
		for _, n := range names {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seeds[n])
			if err := os.WriteFile(filepath.Join(dir, n), []byte(content), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, shard []byte) {
		if len(shard) > 1<<16 {
			t.Skip("keep each input small")
		}
		// A reader that hangs on a corrupt file is a defect: crash, so the fuzzer keeps the input.
		watchdog := time.AfterFunc(20*time.Second, func() { panic("FuzzReadShard: still running after 20s") })
		defer watchdog.Stop()
		dir := t.TempDir()
		p := filepath.Join(dir, DataDir, "0.parquet")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, shard, 0o644); err != nil {
			t.Fatal(err)
		}
		ds, err := Open(dir)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		sh, err := ds.ReadShard(p)
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		rows := 0
		for i, s := range sh.Subjects {
			if i > 0 && s.ID <= sh.Subjects[i-1].ID {
				t.Fatalf("subject %d after %d", s.ID, sh.Subjects[i-1].ID)
			}
			for _, e := range s.Events {
				if e.Code < 0 || int(e.Code) >= ds.Codes.Len() {
					t.Fatalf("code id %d outside the table of %d", e.Code, ds.Codes.Len())
				}
			}
			rows += len(s.Events)
		}
		if rows != sh.Rows {
			t.Fatalf("%d rows under subjects, the shard says %d", rows, sh.Rows)
		}
	})
}
