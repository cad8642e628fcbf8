package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// realWorldCodes are codes as MEDS ETLs write them (MIMIC-IV through MEDS_transforms or
// meds_etl, eICU, EHRSHOT): spaces, trailing blanks, repeated slashes, dots, commas,
// parentheses, '%', '/' in units, non-ASCII letters, and the odd ones a careful pipeline must
// still keep whole.
var realWorldCodes = []string{
	"HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM",
	"LAB//51498// ",
	"LAB//51498//",
	"MEDICATION//START//Insulin Glargine 100 unit/mL",
	"TRANSFER_TO//ward//Med/Surg",
	"LAB//50912//mg/dL",
	"DIAGNOSIS//ICD//10//E119",
	"LAB//50820//units (pH)",
	"LAB//51221//%",
	"LAB//50811//g/dL, whole blood",
	"PROCEDURE//ICD//9//3893",
	"MEDICATION//Acetaminophen 500mg Tab//Oral",
	"NOTE//Größe//Säugling",
	"DIAGNOSIS//naïve//café",
	"LAB//HbA1c%20test",
	"LAB//100%25",
	"[MASK]",
	"[PAD]",
	"x[SEP]y",
	"[UNK]//[CLS]",
	"##.65",
	"#1",
	"LAB//\ttab",
	"LAB//nbsp\u00a0ideographic\u3000space",
	"LAB//mm[Hg]",
	"   leading",
	"a\u0085b\u2028c",
	"ctrl\x01\x7fchars",
	"日本語//コード",
}

func TestCheckCode(t *testing.T) {
	for _, c := range append(realWorldCodes, strings.Repeat("é", MaxCodeBytes/2), strings.Repeat("x", MaxCodeBytes)) {
		if err := CheckCode(c); err != nil {
			t.Errorf("CheckCode(%q): %v", c, err)
		}
	}
	for _, tc := range []struct{ code, msg string }{
		{"", "empty code"},
		{" ", `code " " is blank`},
		{"\t\u3000", "is blank"},
		{"A\x00B", `code "A\x00B" holds a NUL byte`},
		{"LAB//1\n", `holds a line break`},
		{"LAB//1\r", `holds a line break`},
		{"B\xff\xfe", `code "B\xff\xfe" is not valid UTF-8 (byte 2)`},
		{strings.Repeat("x", MaxCodeBytes+1), "is 257 bytes, longer than the limit of 256"},
		{strings.Repeat("é", MaxCodeBytes/2+1), "is 258 bytes"},
	} {
		err := CheckCode(tc.code)
		var ce *CodeError
		if !errors.As(err, &ce) || !errors.Is(err, ErrBadInput) {
			t.Errorf("CheckCode(%q) = %v, want a *CodeError wrapping ErrBadInput", tc.code, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("CheckCode(%q) = %q, want %q in it", tc.code, err, tc.msg)
		}
		if tc.code != "" && len(tc.code) > 3 && strings.Contains(ce.Reason, tc.code) {
			t.Errorf("the reason %q repeats the code", ce.Reason)
		}
	}
	// A long code is quoted shortened, with its length.
	if q := QuoteCode(strings.Repeat("é", 200)); len(q) > 100 || !strings.Contains(q, "(400 bytes)") {
		t.Errorf("QuoteCode of a long code: %s", q)
	}
}

func TestCheckTime(t *testing.T) {
	at := func(y int, m time.Month, d int) int64 { return Micros(time.Date(y, m, d, 0, 0, 0, 0, time.UTC)) }
	for _, ok := range []int64{StaticTime, at(1800, 1, 1), at(2200, 12, 31) + MicrosPerDay - 1, 0, at(2150, 6, 1)} {
		if err := CheckTime(ok); err != nil {
			t.Errorf("CheckTime(%d): %v", ok, err)
		}
	}
	for _, tc := range []struct {
		us   int64
		year string
	}{{at(1799, 12, 31), "1799"}, {at(2201, 1, 1), "2201"}, {at(1700, 1, 1), "1700"}, {at(1800, 1, 1) - 1, "1799"}} {
		if err := CheckTime(tc.us); err == nil || !strings.Contains(err.Error(), "year "+tc.year+" outside 1800-2200") {
			t.Errorf("CheckTime(year %s) = %v", tc.year, err)
		}
	}
}

// checkTextForm checks the promises of CodeText on one code.
func checkTextForm(t *testing.T, code string) {
	t.Helper()
	tf := CodeText(code)
	if back := ParseCodeText(tf); back != code {
		t.Fatalf("ParseCodeText(CodeText(%q)) = %q (text form %q)", code, back, tf)
	}
	if strings.IndexFunc(tf, func(r rune) bool { return unicode.IsSpace(r) || r < 0x20 || r == 0x7f }) >= 0 {
		t.Fatalf("text form %q of %q holds whitespace or a control character", tf, code)
	}
	for _, s := range reservedTokens {
		if strings.Contains(tf, s) {
			t.Fatalf("text form %q of %q holds the special token %s", tf, code, s)
		}
	}
	if strings.HasPrefix(tf, "##") {
		t.Fatalf("text form %q of %q starts with WordPiece's continuation prefix", tf, code)
	}
	if utf8.ValidString(code) && !utf8.ValidString(tf) {
		t.Fatalf("text form %q of valid %q is not UTF-8", tf, code)
	}
	if tf == code {
		return
	}
	// Only what must be escaped is.
	needsEscape := func(r rune) bool { return unicode.IsSpace(r) || r < 0x20 || r == 0x7f || r == utf8.RuneError }
	if !strings.ContainsAny(code, "%[#") && strings.IndexFunc(code, needsEscape) < 0 {
		t.Fatalf("text form %q of %q changed a code that needs no escape", tf, code)
	}
}

func TestCodeText(t *testing.T) {
	for _, tc := range []struct{ code, text string }{
		{"ICD10/E11.9", "ICD10/E11.9"},
		{"LAB//51237//UNK", "LAB//51237//UNK"},
		{"LAB//50912//mg/dL", "LAB//50912//mg/dL"},
		{"LAB//51221//%", "LAB//51221//%"},
		{"LAB//1%//x", "LAB//1%//x"},
		{"LAB//mm[Hg]", "LAB//mm[Hg]"},
		{"NOTE//Größe", "NOTE//Größe"},
		{"#1", "#1"},
		{"LAB//51498// ", "LAB//51498//%20"},
		{"HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM", "HOSPITAL_ADMISSION//EW%20EMER.//EMERGENCY%20ROOM"},
		{"MEDICATION//START//Insulin Glargine 100 unit/mL", "MEDICATION//START//Insulin%20Glargine%20100%20unit/mL"},
		{"LAB//HbA1c%20test", "LAB//HbA1c%2520test"},
		{"LAB//100%25", "LAB//100%2525"},
		{"LAB//x%2", "LAB//x%2"},
		{"[MASK]", "%5BMASK]"},
		{"x[SEP]y", "x%5BSEP]y"},
		{"[[PAD]]", "[%5BPAD]]"},
		{"[mask]", "[mask]"},
		{"##.65", "%23#.65"},
		{"a\tb", "a%09b"},
		{"nbsp\u00a0x", "nbsp%C2%A0x"},
		{"ideo\u3000x", "ideo%E3%80%80x"},
		{"ctrl\x01\x7f", "ctrl%01%7F"},
	} {
		if got := CodeText(tc.code); got != tc.text {
			t.Errorf("CodeText(%q) = %q, want %q", tc.code, got, tc.text)
		}
		if got := ParseCodeText(tc.text); got != tc.code {
			t.Errorf("ParseCodeText(%q) = %q, want %q", tc.text, got, tc.code)
		}
		checkTextForm(t, tc.code)
	}
	for _, c := range realWorldCodes {
		checkTextForm(t, c)
	}
	// Distinct codes, distinct forms.
	seen := map[string]string{}
	for _, c := range append(realWorldCodes, "LAB//51498//%20", "LAB//51498//", "%5BMASK]", "%23#.65", "a b", "a%20b",
		"a%2520b") {
		tf := CodeText(c)
		if prev, dup := seen[tf]; dup && prev != c {
			t.Errorf("%q and %q share the text form %q", prev, c, tf)
		}
		seen[tf] = c
	}
	// Plain text reads as itself; a lone '%' stays.
	for _, s := range []string{"ICD10/E11.9", "100%", "%", "%%", "%G0", "%2"} {
		if got := ParseCodeText(s); got != s {
			t.Errorf("ParseCodeText(%q) = %q", s, got)
		}
	}
}

// TestCodeTextIsPythonUnquote: Python's urllib.parse.unquote reads every text form back to
// its code, so a Python user needs nothing of medseq's to decode vocab.txt or featmap.txt.
func TestCodeTextIsPythonUnquote(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	var in strings.Builder
	for _, c := range realWorldCodes {
		if strings.ContainsAny(c, "\n\r") {
			continue
		}
		in.WriteString(CodeText(c) + "\n")
	}
	cmd := exec.Command(py, "-c", `import sys, urllib.parse
for line in sys.stdin.buffer.read().decode("utf-8").split("\n")[:-1]:
    sys.stdout.buffer.write((urllib.parse.unquote(line) + "\0").encode("utf-8"))`)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(realWorldCodes) {
		t.Fatalf("python decoded %d codes, want %d", len(got), len(realWorldCodes))
	}
	for i, c := range realWorldCodes {
		if got[i] != c {
			t.Errorf("urllib.parse.unquote(%q) = %q, want %q", CodeText(c), got[i], c)
		}
	}
}

func FuzzCodeText(f *testing.F) {
	for _, c := range realWorldCodes {
		f.Add(c)
	}
	f.Add("%%41%4")
	f.Add("##[PAD]#")
	f.Fuzz(func(t *testing.T, code string) {
		if !utf8.ValidString(code) {
			// Invalid UTF-8 is refused by CheckCode; the form still round-trips.
			if ParseCodeText(CodeText(code)) != code {
				t.Fatalf("round trip of %q", code)
			}
			return
		}
		checkTextForm(t, code)
	})
}

// importBad runs ImportCSV on events and subjects text and returns its error; nothing may be
// left at the output.
func importBad(t *testing.T, events, subjects string) (string, string, error) {
	t.Helper()
	dir := t.TempDir()
	ev, su := filepath.Join(dir, "events.csv"), filepath.Join(dir, "subjects.csv")
	if err := os.WriteFile(ev, []byte(events), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(su, []byte(subjects), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "outs", "meds")
	_, err := ImportCSV(context.Background(), ImportConfig{EventsPath: ev, SubjectsPath: su, Out: out})
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("output exists after a failed import: %v", serr)
	}
	ents, _ := os.ReadDir(filepath.Dir(out))
	for _, e := range ents {
		t.Errorf("left behind %s", e.Name())
	}
	return ev, su, err
}

// TestImportLimits: what a later stage would refuse is refused at import, with the file, line,
// column and the code quoted (escaped), and nothing written.
func TestImportLimits(t *testing.T) {
	const (
		subjects = "subject_id,birth_date,sex\n1,1980-01-01,F\n"
		evHeader = "subject_id,time,code,value\n"
	)
	long := strings.Repeat("L", MaxCodeBytes+1)
	for _, tc := range []struct {
		name, events, subjects string
		file                   string
		line                   int
		column, msg            string
	}{
		{"NUL", evHeader + "1,2015-01-01,A,\n1,2015-01-02,B\x00C,\n", subjects, "events", 3, "code",
			`code "B\x00C" holds a NUL byte`},
		{"invalid UTF-8", evHeader + "1,2015-01-01,\"LAB// \xc3\",\n", subjects, "events", 2, "code",
			`code "LAB// \xc3" is not valid UTF-8`},
		{"line break in a quoted code", evHeader + "1,2015-01-01,\"A\nB\",\n", subjects, "events", 2, "code",
			`code "A\nB" holds a line break`},
		{"longer than serving accepts", evHeader + "1,2015-01-01," + long + ",\n", subjects, "events", 2, "code",
			"is 257 bytes, longer than the limit of 256"},
		{"blank", evHeader + "1,2015-01-01,\"  \",\n", subjects, "events", 2, "code", "is blank"},
		{"second birth", evHeader + "1,2015-01-01,A,\n1,1981-01-01,MEDS_BIRTH,\n", subjects, "events", 3, "code",
			"MEDS_BIRTH row for subject 1: the birth comes from"},
		{"same birth twice", evHeader + "1,1980-01-01,MEDS_BIRTH,\n", subjects, "events", 2, "code",
			"a second birth is refused"},
		{"event year 2201", evHeader + "1,2201-01-01,A,\n", subjects, "events", 2, "time",
			`"2201-01-01": year 2201 outside 1800-2200`},
		{"event year after a good row", evHeader + "1,2015-01-01,A,\n1,2300-05-05,A,\n1,2300-05-05,A,\n", subjects, "events",
			3, "time", "year 2300"},
		{"birth year 1700", evHeader + "1,2015-01-01,A,\n", "subject_id,birth_date,sex\n1,1700-01-01,F\n", "subjects", 2,
			"birth_date", "year 1700 outside"},
		{"death year 2250", evHeader + "1,2015-01-01,A,\n",
			"subject_id,birth_date,sex,death_date\n1,1980-01-01,F,2250-01-01\n", "subjects", 2, "death_date", "year 2250"},
		{"a 2 MiB line", evHeader + "1,2015-01-01,A,\n1,2015-01-01," + strings.Repeat("x", 2<<20) + ",\n", subjects, "events",
			3, "", "line longer than 1048576 bytes"},
		{"a 2 MiB subjects line", evHeader + "1,2015-01-01,A,\n", "subject_id,birth_date,sex\n1,1980-01-01,F" +
			strings.Repeat(" ", 2<<20) + "\n", "subjects", 2, "", "line longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, su, err := importBad(t, tc.events, tc.subjects)
			var ie *InputError
			if !errors.As(err, &ie) || !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %T %v, want an *InputError", err, err)
			}
			file := map[string]string{"events": ev, "subjects": su}[tc.file]
			if ie.File != file || ie.Line != tc.line || ie.Column != tc.column {
				t.Errorf("error at %s:%d column %q, want %s:%d column %q (%v)", ie.File, ie.Line, ie.Column, file, tc.line,
					tc.column, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.msg) || len(msg) > 400 {
				t.Errorf("message %q, want %q in it (and short)", msg, tc.msg)
			}
		})
	}
}

// TestImportKeepsAnyCode: every representable code is imported byte for byte, read back whole,
// and special-token names stay ordinary codes.
func TestImportKeepsAnyCode(t *testing.T) {
	dir := t.TempDir()
	var ev strings.Builder
	ev.WriteString("subject_id,time,code,value\n")
	var want []string
	for i, c := range realWorldCodes {
		if CheckCode(c) != nil {
			continue
		}
		fmt.Fprintf(&ev, "1,2015-01-%02d,\"%s\",\n", 1+i%28, strings.ReplaceAll(c, `"`, `""`))
		want = append(want, c)
	}
	evPath, suPath := filepath.Join(dir, "events.csv"), filepath.Join(dir, "subjects.csv")
	os.WriteFile(evPath, []byte(ev.String()), 0o644)
	os.WriteFile(suPath, []byte("subject_id,birth_date,sex\n1,1980-01-01,F\n"), 0o644)
	out := filepath.Join(dir, "meds")
	if _, err := ImportCSV(context.Background(), ImportConfig{EventsPath: evPath, SubjectsPath: suPath,
		Out: out}); err != nil {
		t.Fatal(err)
	}
	ds, subs := readAll(t, out)
	got := map[string]bool{}
	for _, e := range subs[0].Events {
		got[ds.Codes.Name(e.Code)] = true
	}
	for _, c := range want {
		if !got[c] {
			t.Errorf("code %q did not come back", c)
		}
	}
}

// TestReaderLimits: a MEDS file another tool wrote with a code or a time no stage accepts is
// refused by the reader, naming the file, the row and the code.
func TestReaderLimits(t *testing.T) {
	born := Micros(time.Date(1950, 3, 1, 0, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name string
		code string
		time int64
		msg  string
	}{
		{"NUL", "LAB//1\x00", born + MicrosPerYear, `column code: row 5: code "LAB//1\x00" holds a NUL byte`},
		{"invalid UTF-8", "ICD9/250.\xff", born + MicrosPerYear, `row 5: code "ICD9/250.\xff" is not valid UTF-8`},
		{"too long", strings.Repeat("Z", 300), born + MicrosPerYear, "row 5: code \"ZZZZ"},
		{"year 2300", "A", Micros(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)),
			"column time: row 5: year 2300 outside 1800-2200"},
		{"year 1500", "A", Micros(time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)), "column time: row 4: year 1500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "ds")
			w, err := NewDatasetWriter(out, false)
			if err != nil {
				t.Fatal(err)
			}
			for id := int64(1); id <= 2; id++ {
				s := Subject{ID: id, Events: []Event{
					{Time: StaticTime, Code: w.Codes.ID("SEX//F"), Value: NoValue},
					{Time: born, Code: w.Codes.ID(BirthCode), Value: NoValue},
				}}
				if id == 2 {
					s.Events = append(s.Events, Event{Time: tc.time, Code: w.Codes.ID(tc.code), Value: NoValue})
				}
				if err := w.Add(SplitTrain, s); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Commit(NewManifest("test", nil)); err != nil {
				t.Fatal(err)
			}
			ds, err := Open(out)
			if err != nil {
				t.Fatal(err)
			}
			err = ds.ForEachShard(context.Background(), func(*Shard) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), ds.Shards[0]) {
				t.Errorf("read: %v, want the shard and %q", err, tc.msg)
			}
		})
	}
}
