package data

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medseq/medseq/internal/memstat"
)

const importFixtures = "testdata/csv"

// importWant is one expected row of a subject: code, time (RFC 3339 in UTC, "" for static)
// and value (NaN for none).
type importWant struct {
	code  string
	time  string
	value float64
}

var nv = math.NaN()

// importFixtureWant is what testdata/csv/events.csv with either subjects file becomes.
func importFixtureWant(sexes [4]string) map[int64][]importWant {
	return map[int64][]importWant{
		1: {
			{sexes[0], "", nv},
			{"ETHNICITY//White British", "", nv},
			{BirthCode, "1980-05-17T00:00:00Z", nv},
			{"ICD10//E11.9", "2014-01-01T00:00:00Z", nv},
			{"ICD10//E11.9", "2015-03-02T00:00:00Z", nv},
			{"LOINC//4548-4", "2015-03-02T10:15:00Z", 7.2},
			{"LOINC//4548-4", "2016-03-02T09:00:00Z", 6.8},
			{"SNOMED//44054006", "2016-04-01T14:05:00Z", nv},
			{"DRUG//metformin 500mg, tablets", "2016-04-01T14:05:00Z", nv},
		},
		2: {
			{sexes[1], "", nv},
			{"BMI", "", 27.25},
			{BirthCode, "1975-01-01T00:00:00Z", nv},
			{"ICD10//I10", "2010-07-01T09:00:00Z", nv},
			{"LOINC//2345-7", "2019-11-12T00:00:00Z", -1.5},
			{DeathCode, "2020-06-30T00:00:00Z", nv},
			{"ICD10//I21.9", "2020-06-30T23:00:00Z", nv},
		},
		3: {
			{sexes[2], "", nv},
			{BirthCode, "2001-12-31T08:30:00Z", nv},
			{"icd10//e11.9", "2021-01-01T00:00:00.25Z", nv},
		},
		4: {
			{sexes[3], "", nv},
			{BirthCode, "1990-02-28T00:00:00Z", nv},
		},
	}
}

func gzipFile(t testing.TB, src, dst string) {
	t.Helper()
	buf, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write(buf); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestImportCSVRoundTrip(t *testing.T) {
	fix := func(name string) string { return filepath.Join(importFixtures, name) }
	withSplits := map[int64]string{1: SplitTrain, 2: SplitTuning, 3: SplitHeldOut, 4: SplitTrain}
	cases := []struct {
		name     string
		events   func(dir string) string
		subjects func(dir string) string
		splits   map[int64]string // nil: no subject_splits file
		sexes    [4]string
	}{
		{
			name:     "with splits",
			events:   func(string) string { return fix("events.csv") },
			subjects: func(string) string { return fix("subjects.csv") },
			splits:   withSplits,
			sexes:    [4]string{"SEX//F", "SEX//M", "SEX//U", "SEX//U"},
		},
		{
			name:     "without splits",
			events:   func(string) string { return fix("events.csv") },
			subjects: func(string) string { return fix("subjects_nosplit.csv") },
			sexes:    [4]string{"SEX//F", "SEX//M", "SEX//U", "SEX//F"},
		},
		{
			name: "gzip",
			events: func(dir string) string {
				p := filepath.Join(dir, "events.csv.gz")
				gzipFile(t, fix("events.csv"), p)
				return p
			},
			subjects: func(dir string) string {
				p := filepath.Join(dir, "subjects.csv.gz")
				gzipFile(t, fix("subjects.csv"), p)
				return p
			},
			splits: withSplits,
			sexes:  [4]string{"SEX//F", "SEX//M", "SEX//U", "SEX//U"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "meds")
			cfg := ImportConfig{EventsPath: tc.events(dir), SubjectsPath: tc.subjects(dir), Out: out}
			sum, err := ImportCSV(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := importFixtureWant(tc.sexes)
			wantRows := 0
			for _, w := range want {
				wantRows += len(w)
			}
			if sum.Subjects != 4 || sum.Events != int64(wantRows) || sum.CSVEvents != 12 || sum.Static != 2 || sum.Out != out {
				t.Errorf("summary %+v, want 4 subjects, %d events, 12 CSV events, 2 static", sum, wantRows)
			}

			ds, err := Open(out)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int64]bool{}
			var lastID int64 = math.MinInt64
			err = ds.ForEachSubject(context.Background(), func(s Subject) error {
				if tc.splits == nil && s.ID < lastID {
					t.Errorf("subject %d after %d", s.ID, lastID)
				}
				lastID = s.ID
				seen[s.ID] = true
				w, ok := want[s.ID]
				if !ok {
					t.Errorf("unexpected subject %d", s.ID)
					return nil
				}
				if len(s.Events) != len(w) {
					t.Errorf("subject %d: %d events, want %d", s.ID, len(s.Events), len(w))
				}
				for i := 0; i < min(len(w), len(s.Events)); i++ {
					e := s.Events[i]
					got := importWant{code: ds.Codes.Name(e.Code), value: float64(e.Value)}
					if !e.IsStatic() {
						got.time = TimeOf(e.Time).Format(time.RFC3339Nano)
					}
					valOK := math.IsNaN(w[i].value) && !e.HasValue() || float32(w[i].value) == e.Value
					if got.code != w[i].code || got.time != w[i].time || !valOK {
						t.Errorf("subject %d event %d: got %v, want %v", s.ID, i, got, w[i])
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != len(want) {
				t.Errorf("read %d subjects, want %d", len(seen), len(want))
			}
			distinct := map[string]bool{}
			for _, w := range want {
				for _, r := range w {
					distinct[r.code] = true
				}
			}
			if sum.Codes != len(distinct) {
				t.Errorf("summary says %d codes, want %d", sum.Codes, len(distinct))
			}

			splits, err := ds.SubjectSplits()
			if err != nil {
				t.Fatal(err)
			}
			if tc.splits == nil {
				if splits != nil {
					t.Errorf("subject_splits written without a split column: %v", splits)
				}
				if len(ds.Shards) != 1 || ds.Shards[0] != filepath.Join(out, "data", "0.parquet") {
					t.Errorf("shards %v, want data/0.parquet", ds.Shards)
				}
				if sum.Splits[""] != 4 {
					t.Errorf("summary splits %v", sum.Splits)
				}
			} else {
				if fmt.Sprint(splits) != fmt.Sprint(tc.splits) {
					t.Errorf("subject_splits %v, want %v", splits, tc.splits)
				}
				for _, sh := range ds.Shards {
					s, err := ds.ReadShard(sh)
					if err != nil {
						t.Fatal(err)
					}
					for _, sub := range s.Subjects {
						if got := ds.ShardSplit(sh); got != tc.splits[sub.ID] {
							t.Errorf("subject %d in shard %s, want split %s", sub.ID, sh, tc.splits[sub.ID])
						}
					}
				}
				if sum.Splits[SplitTrain] != 2 || sum.Splits[SplitTuning] != 1 || sum.Splits[SplitHeldOut] != 1 {
					t.Errorf("summary splits %v", sum.Splits)
				}
			}

			m, err := ReadManifest(out)
			if err != nil {
				t.Fatal(err)
			}
			if m.Stage != "data import" || m.RunID != sum.RunID {
				t.Errorf("manifest stage %q run %q, summary run %q", m.Stage, m.RunID, sum.RunID)
			}
			for name, p := range map[string]string{"events": cfg.EventsPath, "subjects": cfg.SubjectsPath} {
				if err := m.CheckInput(name, p); err != nil {
					t.Errorf("manifest input %s: %v", name, err)
				}
			}
			if m.Params["events"] != cfg.EventsPath || m.Params["out"] != out {
				t.Errorf("manifest params %v", m.Params)
			}
			if ds.Meta.MEDSVersion != MEDSVersion {
				t.Errorf("meds_version %q", ds.Meta.MEDSVersion)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("left behind %s", e.Name())
				}
			}
		})
	}
}

func TestImportCSVTimeLayout(t *testing.T) {
	dir := t.TempDir()
	ev := filepath.Join(dir, "events.csv")
	su := filepath.Join(dir, "subjects.csv")
	os.WriteFile(su, []byte("subject_id,birth_date,sex\n7,17/05/1980,F\n"), 0o644)
	os.WriteFile(ev, []byte("subject_id,date,code\n7,02/03/2015,A\n7,2016-01-01,B\n"), 0o644)
	out := filepath.Join(dir, "out")
	if _, err := ImportCSV(context.Background(), ImportConfig{EventsPath: ev, SubjectsPath: su, Out: out,
		TimeLayout: "02/01/2006"}); err != nil {
		t.Fatal(err)
	}
	ds, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	ds.ForEachSubject(context.Background(), func(s Subject) error {
		for _, e := range s.Events {
			if !e.IsStatic() {
				got = append(got, ds.Codes.Name(e.Code)+"@"+TimeOf(e.Time).Format("2006-01-02"))
			}
		}
		return nil
	})
	if want := "MEDS_BIRTH@1980-05-17 A@2015-03-02 B@2016-01-01"; strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	// Without the layout the same file is an error in the subjects file.
	_, err = ImportCSV(context.Background(), ImportConfig{EventsPath: ev, SubjectsPath: su,
		Out: filepath.Join(dir, "out2")})
	var ie *InputError
	if !errors.As(err, &ie) || ie.File != su || ie.Line != 2 || ie.Column != "birth_date" {
		t.Errorf("without layout: %v", err)
	}
}

func TestImportCSVExistingOutput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "old.txt"), []byte("x"), 0o644)
	cfg := ImportConfig{EventsPath: filepath.Join(importFixtures, "events.csv"),
		SubjectsPath: filepath.Join(importFixtures, "subjects.csv"), Out: out}
	if _, err := ImportCSV(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("non-empty output without force: %v", err)
	}
	cfg.Force = true
	if _, err := ImportCSV(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "old.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old content kept: %v", err)
	}
	// A bad input with --force leaves the existing dataset as it was.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("subject_id,time,code\n1,2015-13-01,A\n"), 0o644)
	cfg.EventsPath = bad
	if _, err := ImportCSV(context.Background(), cfg); !errors.Is(err, ErrBadInput) {
		t.Fatalf("bad input: %v", err)
	}
	if _, err := Open(out); err != nil {
		t.Errorf("existing dataset damaged: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func TestImportCSVBadInput(t *testing.T) {
	const (
		subjects = "subject_id,birth_date,sex,death_date\n1,1980-01-01,F,\n2,1970-01-01,M,2020-01-01\n"
		evHeader = "subject_id,time,code,value\n"
		events   = evHeader + "1,2015-01-01,A,1\n"
	)
	cases := []struct {
		name     string
		events   string
		subjects string
		file     string // "events" or "subjects"
		line     int
		column   string
		msg      string // a part of the message
	}{
		{"events missing column", "subject_id,time,value\n1,2015-01-01,1\n", subjects, "events", 1, "code",
			`missing column code; the header has "subject_id", "time", "value"`},
		{"events missing time", "subject_id,code\n1,A\n", subjects, "events", 1, "time", "missing column time or date"},
		{"subjects missing sex", events, "subject_id,birth_date\n1,1980-01-01\n", "subjects", 1, "sex", "missing column sex"},
		{"both time and date", "subject_id,time,date,code\n1,2015-01-01,2015-01-01,A\n", subjects, "events", 1, "date",
			"both time and date"},
		{"bad month", evHeader + "1,2015-01-01,A,\n1,2021-13-01,B,\n", subjects, "events", 3, "time",
			`cannot parse "2021-13-01" as a date or time`},
		{"bad day", evHeader + "1,2021-02-29,B,\n", subjects, "events", 2, "time", `"2021-02-29"`},
		{"bad date column", "subject_id,date,code\n1,yesterday,A\n", subjects, "events", 2, "date", `"yesterday"`},
		{"bad birth date", events, "subject_id,birth_date,sex\n1,1980-01-32,F\n", "subjects", 2, "birth_date",
			`"1980-01-32"`},
		{"empty birth date", events, "subject_id,birth_date,sex\n1,,F\n", "subjects", 2, "birth_date", "empty birth_date"},
		{"bad death date", events, "subject_id,birth_date,sex,death_date\n1,1980-01-01,F,never\n", "subjects", 2,
			"death_date", `"never"`},
		{"death before birth", events, "subject_id,birth_date,sex,death_date\n1,1980-01-01,F,1979-01-01\n", "subjects", 2,
			"death_date", "before birth"},
		{"events subject id", evHeader + "1,2015-01-01,A,\nP1,2015-01-01,A,\n", subjects, "events", 3, "subject_id",
			`"P1" is not an integer`},
		{"subjects subject id", events, "subject_id,birth_date,sex\n1.5,1980-01-01,F\n", "subjects", 2, "subject_id",
			`"1.5"`},
		{"value", evHeader + "1,2015-01-01,A,abc\n", subjects, "events", 2, "value", `"abc" is not a finite number`},
		{"numeric_value", "subject_id,time,code,numeric_value\n1,2015-01-01,A,NaN\n", subjects, "events", 2, "numeric_value",
			`"NaN"`},
		{"empty code", evHeader + "1,2015-01-01,A,\n1,2015-01-02,,3\n", subjects, "events", 3, "code", "empty code"},
		{"before birth", evHeader + "1,1979-12-31,A,\n", subjects, "events", 2, "time",
			"before the birth of subject 1 (1980-01-01)"},
		{"after death", evHeader + "2,2020-01-02 00:00:01,A,\n", subjects, "events", 2, "time",
			"2020-01-02 00:00:01 is after the death of subject 2 (2020-01-01)"},
		{"unknown subject", evHeader + "1,2015-01-01,A,\n3,2015-01-01,A,\n", subjects, "events", 3, "subject_id",
			"subject 3 is not in"},
		{"duplicate subject", events, "subject_id,birth_date,sex\n1,1980-01-01,F\n2,1980-01-01,F\n1,1980-01-01,F\n",
			"subjects", 4, "subject_id", "subject 1 is listed twice (first on line 2)"},
		{"unknown sex", events, "subject_id,birth_date,sex\n1,1980-01-01,X\n", "subjects", 2, "sex", `unknown sex "X"`},
		{"empty sex", events, "subject_id,birth_date,sex\n1,1980-01-01,\n", "subjects", 2, "sex", `unknown sex ""`},
		{"unknown split", events, "subject_id,birth_date,sex,split\n1,1980-01-01,F,test\n", "subjects", 2, "split",
			`unknown split "test"`},
		{"empty events", "", subjects, "events", 1, "subject_id", "empty file"},
		{"empty subjects", events, "", "subjects", 1, "subject_id", "empty file"},
		{"header-only events", evHeader, subjects, "events", 2, "subject_id", "no data rows"},
		{"header-only subjects", events, "subject_id,birth_date,sex\n", "subjects", 2, "subject_id", "no data rows"},
		{"too few fields", evHeader + "1,2015-01-01,A,\n1,2015-01-01\n", subjects, "events", 3, "code",
			"the line has 2 fields, the header 4"},
		{"too many fields", evHeader + "1,2015-01-01,A,,x\n", subjects, "events", 2, "5 (beyond the header)",
			"the line has 5 fields"},
		{"invalid utf-8", evHeader + "1,2015-01-01,A,\n1,2015-01-01,B\xff\xfe,\n", subjects, "events", 3, "code",
			"not valid UTF-8"},
		{"line after quoted newline", "subject_id,time,code,value,note\n1,2015-01-01,A,,\"two\nlines\"\n1,2015-01-01,A,x,\n",
			subjects, "events", 4, "value", `"x"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			inDir := filepath.Join(dir, "in")
			outParent := filepath.Join(dir, "outs")
			os.MkdirAll(inDir, 0o755)
			ev := filepath.Join(inDir, "events.csv")
			su := filepath.Join(inDir, "subjects.csv")
			if err := os.WriteFile(ev, []byte(tc.events), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(su, []byte(tc.subjects), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(outParent, "meds")
			_, err := ImportCSV(context.Background(), ImportConfig{EventsPath: ev, SubjectsPath: su, Out: out})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("error does not wrap ErrBadInput: %v", err)
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error is %T, not *InputError: %v", err, err)
			}
			file := map[string]string{"events": ev, "subjects": su}[tc.file]
			if ie.File != file || ie.Line != tc.line || ie.Column != tc.column {
				t.Errorf("error at %s:%d column %q, want %s:%d column %q (%v)", ie.File, ie.Line, ie.Column, file, tc.line,
					tc.column, err)
			}
			prefix := fmt.Sprintf("%s:%d: column %s: ", file, tc.line, tc.column)
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q, want prefix %q and %q", msg, prefix, tc.msg)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output exists after a failed import: %v", err)
			}
			ents, _ := os.ReadDir(outParent)
			for _, e := range ents {
				t.Errorf("left behind %s", e.Name())
			}
		})
	}
}

func TestImportCSVManyShards(t *testing.T) {
	// Small shards: the writer flushes mid-import, and every row comes back once.
	dir := t.TempDir()
	ev, su, rows := writeImportBenchCSV(t, dir, 20_000, 500)
	out := filepath.Join(dir, "out")
	w, err := NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	w.ShardEvents = 1000
	sum, err := importInto(context.Background(), w, ImportConfig{EventsPath: ev, SubjectsPath: su, Out: out})
	if err != nil {
		w.Abort()
		t.Fatal(err)
	}
	if sum.CSVEvents != int64(rows) || sum.Subjects != 500 || sum.Events != int64(rows+2*500) {
		t.Errorf("summary %+v, want %d CSV rows and 500 subjects", sum, rows)
	}
	ds, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Shards) < 10 {
		t.Errorf("%d shards, want many", len(ds.Shards))
	}
	n, subjects := int64(0), map[int64]bool{}
	ds.ForEachSubject(context.Background(), func(s Subject) error {
		n += int64(len(s.Events))
		if subjects[s.ID] {
			t.Errorf("subject %d in two shards", s.ID)
		}
		subjects[s.ID] = true
		return nil
	})
	if n != sum.Events || len(subjects) != 500 {
		t.Errorf("read %d rows of %d subjects, wrote %d rows", n, len(subjects), sum.Events)
	}
}

func TestImportCSVGzipErrors(t *testing.T) {
	dir := t.TempDir()
	su := filepath.Join(importFixtures, "subjects.csv")
	full := filepath.Join(dir, "events.csv.gz")
	gzipFile(t, filepath.Join(importFixtures, "events.csv"), full)
	buf, _ := os.ReadFile(full)
	truncated := filepath.Join(dir, "truncated.csv.gz")
	os.WriteFile(truncated, buf[:len(buf)-12], 0o644)
	plain := filepath.Join(dir, "plain.csv.gz")
	os.WriteFile(plain, []byte("subject_id,time,code\n1,2015-01-01,A\n"), 0o644)
	for _, ev := range []string{truncated, plain} {
		t.Run(filepath.Base(ev), func(t *testing.T) {
			out := filepath.Join(dir, "outs", "meds")
			_, err := ImportCSV(context.Background(), ImportConfig{EventsPath: ev, SubjectsPath: su, Out: out})
			var ie *InputError
			if !errors.As(err, &ie) || ie.File != ev {
				t.Fatalf("got %v, want an InputError naming %s", err, ev)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output exists after a failed import: %v", err)
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) > 0 {
				t.Errorf("left behind %s", ents[0].Name())
			}
		})
	}
}

func TestParseISOTime(t *testing.T) {
	layouts := []string{time.RFC3339Nano, "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05.999999999",
		"2006-01-02T15:04:05.999999999", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"}
	reference := func(s string) (int64, bool) {
		for _, l := range layouts {
			if t, err := time.Parse(l, s); err == nil {
				return t.UnixMicro(), true
			}
		}
		return 0, false
	}
	cases := []string{
		"2021-01-01", "1970-01-01", "1969-12-31", "0001-01-01", "9999-12-31", "1600-02-29", "1900-02-28",
		"2024-02-29", "2021-02-29", "1900-02-29", "2021-13-01", "2021-00-10", "2021-04-31", "2021-04-00",
		"2021-1-01", "21-01-01", "2021/01/01", "2021-01-01x", "",
		"2021-06-15 10:20:30", "2021-06-15T10:20:30", "2021-06-15 10:20", "2021-06-15T10:20",
		"2021-06-15 24:00:00", "2021-06-15 23:60:00", "2021-06-15 23:59:60", "2021-06-15 23:59:59",
		"2021-06-15T10:20:30Z", "2021-06-15T10:20:30+02:00", "2021-06-15T10:20:30-05:30", "2021-06-15 10:20:30+01:00",
		"2021-06-15T10:20:30.5Z", "2021-06-15T10:20:30.123456Z", "2021-06-15T10:20:30.123456789Z", "2021-06-15 10:20:30.25",
		"2021-06-15T10:20:30.Z", "2021-06-15T10:20:30+0200", "2021-06-15T10:20:30 +02:00",
		"2021-06-15T10:20:3", "2021-06-15 10", "2021-06-15T", "1969-12-31T23:59:59.999999Z",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		ts := time.Unix(rng.Int64N(400*365*86400)-200*365*86400, rng.Int64N(1e9)).UTC()
		cases = append(cases, ts.Format("2006-01-02"), ts.Format("2006-01-02 15:04:05"), ts.Format(time.RFC3339Nano))
	}
	// Stricter than time.Parse: one-digit hours, a lower-case t.
	for _, s := range []string{"2021-06-15T1:20:30", "2021-06-15t10:20:30", "2021-06-15 1:20"} {
		if got, ok := parseISOTime(s); ok {
			t.Errorf("parseISOTime(%q) = %d, want an error", s, got)
		}
	}
	for _, s := range cases {
		got, ok := parseISOTime(s)
		want, wok := reference(s)
		if ok != wok || got != want {
			t.Errorf("parseISOTime(%q) = %d, %v; time.Parse says %d, %v", s, got, ok, want, wok)
		}
	}
}

// writeImportBenchCSV writes a synthetic events file of about rows rows over n subjects,
// ordered by subject as extracts usually are, and returns the paths and the exact row count.
func writeImportBenchCSV(t testing.TB, dir string, rows, n int) (events, subjects string, written int) {
	t.Helper()
	events = filepath.Join(dir, "events.csv")
	subjects = filepath.Join(dir, "subjects.csv")
	sf, err := os.Create(subjects)
	if err != nil {
		t.Fatal(err)
	}
	sw := bufio.NewWriter(sf)
	fmt.Fprintln(sw, "subject_id,birth_date,sex,split")
	splits := []string{"train", "train", "train", "tuning", "held_out"}
	for i := range n {
		fmt.Fprintf(sw, "%d,19%02d-%02d-%02d,%s,%s\n", 1000+i, 40+i%50, 1+i%12, 1+i%28, []string{"F", "M"}[i%2], splits[i%5])
	}
	sw.Flush()
	sf.Close()
	ef, err := os.Create(events)
	if err != nil {
		t.Fatal(err)
	}
	ew := bufio.NewWriter(ef)
	fmt.Fprintln(ew, "subject_id,time,code,numeric_value")
	rng := rand.New(rand.NewPCG(3, 4))
	per := rows / n
	for i := range n {
		for j := range per {
			year := 1990 + i%50 + j%30
			code := fmt.Sprintf("SNOMED//%d", 100000+rng.IntN(5000))
			switch {
			case j%10 == 0:
				fmt.Fprintf(ew, "%d,%d-%02d-%02d %02d:%02d:00,LOINC//4548-4,%.1f\n", 1000+i, year, 1+j%12, 1+j%28, j%24, j%60,
					4+rng.Float64()*6)
			case j%3 == 0:
				fmt.Fprintf(ew, "%d,%d-%02d-%02d,%s,\n", 1000+i, year, 1+j%12, 1+j%28, code)
			default:
				fmt.Fprintf(ew, "%d,%d-%02d-%02dT%02d:%02d:%02d,%s,\n", 1000+i, year, 1+j%12, 1+j%28, j%24, j%60, j%60, code)
			}
			written++
		}
	}
	ew.Flush()
	ef.Close()
	return events, subjects, written
}

// BenchmarkImportCSV imports 4M rows of 40k subjects (MEDSEQ_BENCH_IMPORT_ROWS rows, 100 per
// subject), in memory and with a budget of 250k events, reporting rows/s and the process's
// peak RSS: the spilling import's peak stays put as the file grows.
func BenchmarkImportCSV(b *testing.B) {
	dir := b.TempDir()
	n := 4_000_000
	if v, err := strconv.Atoi(os.Getenv("MEDSEQ_BENCH_IMPORT_ROWS")); err == nil && v >= 100 {
		n = v
	}
	ev, su, rows := writeImportBenchCSV(b, dir, n, n/100)
	out := filepath.Join(dir, "out")
	for _, mem := range []int{0, 250_000} {
		name := "memory=all"
		if mem > 0 {
			name = fmt.Sprintf("memory=%d", mem)
		}
		b.Run(name, func(b *testing.B) {
			debug.FreeOSMemory()
			memstat.ResetPeakRSS()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := ImportCSV(context.Background(), ImportConfig{EventsPath: ev, SubjectsPath: su, Out: out, Force: true,
					MemoryEvents: mem}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(float64(memstat.PeakRSS())/(1<<20), "peak-RSS-MB")
		})
	}
}

// TestImportCSVSpill: with a memory budget of a few hundred events, the import spills to disk
// many times (subjects interleaved, so each run holds pieces of most subjects) and writes the
// same dataset as an import that holds everything in memory: the same subjects, events in the
// same order (ties in time kept in file order), codes and values; no spill file is left.
func TestImportCSVSpill(t *testing.T) {
	dir := t.TempDir()
	ev, su, rows := writeImportBenchCSV(t, dir, 20_000, 300)
	// Interleave the subjects: shuffle the data rows.
	buf, err := os.ReadFile(ev)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	body := lines[1:]
	rng := rand.New(rand.NewPCG(9, 9))
	rng.Shuffle(len(body), func(i, j int) { body[i], body[j] = body[j], body[i] })
	// Same-time rows of one subject: their order must survive the spill.
	body = append(body, "1000,2001-01-01,TIE/A,", "1001,2001-01-01,TIE/A,", "1000,2001-01-01,TIE/B,",
		"1000,2001-01-01,TIE/C,1.5")
	shuffled := filepath.Join(dir, "shuffled.csv")
	if err := os.WriteFile(shuffled, []byte(lines[0]+"\n"+strings.Join(body, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(out string) map[int64][]string {
		ds, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64][]string{}
		ds.ForEachSubject(context.Background(), func(s Subject) error {
			for _, e := range s.Events {
				got[s.ID] = append(got[s.ID], fmt.Sprintf("%d %s %v", e.Time, ds.Codes.Name(e.Code), e.Value))
			}
			return nil
		})
		return got
	}
	inMem := filepath.Join(dir, "mem")
	sm, err := ImportCSV(context.Background(), ImportConfig{EventsPath: shuffled, SubjectsPath: su, Out: inMem})
	if err != nil {
		t.Fatal(err)
	}
	if sm.SpillRuns != 0 {
		t.Fatalf("the default budget spilled %d runs for %d rows", sm.SpillRuns, rows)
	}
	spilled := filepath.Join(dir, "spilled")
	ss, err := ImportCSV(context.Background(), ImportConfig{EventsPath: shuffled, SubjectsPath: su, Out: spilled,
		MemoryEvents: 700})
	if err != nil {
		t.Fatal(err)
	}
	if ss.SpillRuns < 20 || ss.Spilled < int64(rows)/2 {
		t.Fatalf("spilled %d events in %d runs: want many runs", ss.Spilled, ss.SpillRuns)
	}
	if ss.Events != sm.Events || ss.CSVEvents != sm.CSVEvents || ss.Codes != sm.Codes {
		t.Fatalf("summaries differ: %+v vs %+v", ss, sm)
	}
	want, got := read(inMem), read(spilled)
	if len(got) != len(want) {
		t.Fatalf("%d subjects, want %d", len(got), len(want))
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Fatalf("subject %d: %d events differ from the in-memory import's %d:\n%v\n%v",
				id, len(got[id]), len(w), got[id], w)
		}
	}
	tie := strings.Join(got[1000], "|")
	a, b, c := strings.Index(tie, "TIE/A"), strings.Index(tie, "TIE/B"), strings.Index(tie, "TIE/C")
	if !(a >= 0 && a < b && b < c) {
		t.Errorf("same-time events out of file order: %s", tie)
	}
	// A bad row after many spills: an error naming it, and nothing written.
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte(lines[0]+"\n"+strings.Join(body, "\n")+"\n1000,2001-13-01,X/1,\n"),
		0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ImportCSV(context.Background(), ImportConfig{EventsPath: bad, SubjectsPath: su,
		Out: filepath.Join(dir, "bad"), MemoryEvents: 700})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("bad.csv:%d", len(body)+2)) {
		t.Fatalf("bad row after spills: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "bad") && e.Name() != "bad.csv" {
			t.Errorf("left behind after a failed import: %s", e.Name())
		}
	}
	// Nothing of the spill is left in or beside the dataset.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && (d.Name() == ".spill" || strings.HasPrefix(d.Name(), "run-")) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}
