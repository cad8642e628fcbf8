package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrBadInput is wrapped by every *InputError: errors.Is(err, ErrBadInput) tells a problem in
// the user's files from a failure of the machine (disk full, permission denied).
var ErrBadInput = errors.New("bad input")

// InputError is a problem at one place of an input file.
type InputError struct {
	File   string // the path as given
	Line   int    // 1-based; the header is line 1
	Column string // the column's canonical name (subject_id, time, code, ...), or ""
	Msg    string
}

func (e *InputError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: column %s: %s", e.File, e.Line, e.Column, e.Msg)
}

// Unwrap makes errors.Is(err, ErrBadInput) hold.
func (e *InputError) Unwrap() error { return ErrBadInput }

// ImportConfig says what ImportCSV reads and writes.
type ImportConfig struct {
	EventsPath   string // events CSV (subject_id, time|date, code, [value|numeric_value]); .gz accepted
	SubjectsPath string // subjects CSV (subject_id, birth_date, sex, [death_date], [split]); .gz accepted
	Out          string // the MEDS dataset folder to write
	Force        bool   // replace an existing non-empty Out
	TimeLayout   string // optional Go time layout tried before the built-in ones
	// MemoryEvents bounds the events held in memory (default DefaultImportMemoryEvents); beyond
	// it they are spilled to disk inside the dataset's temporary folder and merged back when the
	// dataset is written, so an events file larger than memory imports.
	MemoryEvents int
}

// ImportSummary describes a finished import.
type ImportSummary struct {
	Out       string
	RunID     string
	Subjects  int
	Events    int64          // rows written, including MEDS_BIRTH, MEDS_DEATH and SEX// rows
	CSVEvents int64          // data rows read from the events file
	Static    int64          // static rows read from the events file (empty time)
	Codes     int            // distinct codes written
	Splits    map[string]int // subjects per split; the key "" when subjects.csv has no split column
	Spilled   int64          // events spilled to disk (MemoryEvents) and merged back
	SpillRuns int            // spill files written
}

// The static rows ImportCSV writes for the sex column.
const (
	importSexFemale  = SexCodePrefix + SexFemale
	importSexMale    = SexCodePrefix + SexMale
	importSexUnknown = SexCodePrefix + SexUnknown
)

// importSubject is one row of subjects.csv and the events gathered for it.
type importSubject struct {
	id     int64
	line   int
	birth  int64
	death  int64 // StaticTime when alive
	birthS string
	deathS string
	split  string
	events []Event
}

// ImportCSV reads an events and a subjects CSV file and writes them as a MEDS v0.4 dataset at
// cfg.Out. Rows are grouped by subject (in memory up to cfg.MemoryEvents events, beyond that in
// spill files on disk), then written in subject-id order.
//
// Header names are trimmed and case-insensitive, in any order; other columns are ignored.
// Every subject gets a static SEX//F, SEX//M or SEX//U row (other counts as U), a MEDS_BIRTH
// event at birth_date and, with a death_date, a MEDS_DEATH event. An event with an empty time
// is a static row. Codes are kept byte for byte (a blank code is an error). Events may fall on
// the day of birth or of death but not before or after it (compared by calendar day, UTC).
// With a split column every subject needs train, tuning or held_out; without one the dataset
// has no splits.
//
// A problem in the input returns an *InputError (wrapping ErrBadInput) that names the file,
// line and column; nothing is left at cfg.Out or beside it then (an existing dataset that
// --force would have replaced stays as it was).
func ImportCSV(ctx context.Context, cfg ImportConfig) (*ImportSummary, error) {
	if cfg.EventsPath == "" || cfg.SubjectsPath == "" || cfg.Out == "" {
		return nil, errors.New("import: events, subjects and output paths are all required")
	}
	// Fail on unreadable inputs before anything is created.
	for _, p := range []string{cfg.SubjectsPath, cfg.EventsPath} {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		if st.IsDir() {
			return nil, fmt.Errorf("import: %s is a folder, not a CSV file", p)
		}
	}
	w, err := NewDatasetWriter(cfg.Out, cfg.Force)
	if err != nil {
		return nil, err
	}
	sum, err := importInto(ctx, w, cfg)
	if err != nil {
		w.Abort()
		return nil, err
	}
	return sum, nil
}

func importInto(ctx context.Context, w *DatasetWriter, cfg ImportConfig) (*ImportSummary, error) {
	tp := timeParser{layout: cfg.TimeLayout}
	st, err := readSubjectsCSV(ctx, cfg.SubjectsPath, w.Codes, &tp)
	if err != nil {
		return nil, err
	}
	sum := &ImportSummary{Out: cfg.Out, Subjects: len(st.subs), Splits: map[string]int{}}
	order := make([]int, len(st.subs))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return st.subs[order[a]].id < st.subs[order[b]].id })
	memEvents := cfg.MemoryEvents
	if memEvents <= 0 {
		memEvents = DefaultImportMemoryEvents
	}
	sp := newImportSpill(filepath.Join(w.TempDir(), ".spill"), memEvents, order)
	defer sp.remove()
	if err := readEventsCSV(ctx, cfg.EventsPath, cfg.SubjectsPath, w.Codes, &tp, st, sum, sp); err != nil {
		return nil, err
	}
	sum.Spilled, sum.SpillRuns = sp.spilled, len(sp.runs)
	if err := addSubjects(ctx, w, st, order, sp, sum); err != nil {
		return nil, err
	}
	if err := sp.remove(); err != nil { // before the temporary folder becomes the dataset
		return nil, fmt.Errorf("import: remove spill files: %w", err)
	}
	sum.Events = w.Rows()
	sum.Codes = w.Codes.Len()
	if err := commitImport(w, cfg, sum); err != nil {
		return nil, err
	}
	return sum, nil
}

// addSubjects hands the subjects to the writer in order (their indexes into st.subs), each
// with its spilled events before those held in memory and its death last.
func addSubjects(ctx context.Context, w *DatasetWriter, st *subjectTable, order []int, sp *importSpill,
	sum *ImportSummary) error {
	var merge *spillMerger
	if len(sp.runs) > 0 {
		var err error
		if merge, err = sp.merger(); err != nil {
			return err
		}
		defer merge.close()
	}
	deathID := w.Codes.ID(DeathCode)
	for r, i := range order {
		s := &st.subs[i]
		if merge != nil {
			spilled, err := merge.take(int32(r), nil)
			if err != nil {
				return err
			}
			if len(spilled) > 0 {
				s.events = append(spilled, s.events...) // the runs hold the earlier rows
			}
		}
		if s.death != StaticTime {
			s.events = append(s.events, Event{Time: s.death, Code: deathID, Value: NoValue})
		}
		if !st.hasSplit {
			s.split = ""
		}
		sum.Splits[s.split]++
		if err := w.Add(s.split, Subject{ID: s.id, Events: s.events}); err != nil {
			return err
		}
		s.events = nil // the writer owns the slice now
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if merge != nil {
		merge.close()
	}
	return nil
}

// commitImport writes the dataset metadata and the manifest (with the inputs' checksums) and
// commits the dataset.
func commitImport(w *DatasetWriter, cfg ImportConfig, sum *ImportSummary) error {
	w.SetMetadata(DatasetMetadata{
		ETLName:   "medseq data import",
		CreatedAt: time.Now().UTC().Format(time.RFC3339),
	})
	params := map[string]any{
		"events":      cfg.EventsPath,
		"subjects":    cfg.SubjectsPath,
		"out":         cfg.Out,
		"force":       cfg.Force,
		"time_layout": cfg.TimeLayout,
	}
	m := NewManifest("data import", params)
	if _, err := m.AddInput("events", cfg.EventsPath); err != nil {
		return err
	}
	if _, err := m.AddInput("subjects", cfg.SubjectsPath); err != nil {
		return err
	}
	sum.RunID = m.RunID
	return w.Commit(m)
}

// csvInput is an opened (possibly gzip-compressed) CSV file with its header resolved.
type csvInput struct {
	path string
	f    *os.File
	gz   *gzip.Reader
	r    *csv.Reader
	cols []string // canonical header names, lower-cased and trimmed
	line int      // line of the last record read
}

func openCSV(path string) (*csvInput, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	in := &csvInput{path: path, f: f}
	br := bufio.NewReaderSize(f, 1<<20)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, &InputError{File: path, Line: 1, Msg: "cannot read gzip data: " + err.Error()}
		}
		in.gz = gz
		src = bufio.NewReaderSize(gz, 1<<20)
	} else if strings.HasSuffix(strings.ToLower(path), ".gz") {
		f.Close()
		return nil, &InputError{File: path, Line: 1, Msg: "file name ends in .gz but the file is not gzip-compressed"}
	}
	in.r = csv.NewReader(&lineLimiter{r: src, path: path})
	in.r.ReuseRecord = true
	in.r.FieldsPerRecord = -1 // checked here, to name the line and column
	return in, nil
}

// lineLimiter fails a read that would pass a line of more than MaxCSVLineBytes bytes, so one
// huge line is an error naming it instead of a buffer the size of the line.
type lineLimiter struct {
	r    io.Reader
	path string
	line int // lines ended so far
	cur  int // bytes of the current line so far
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i := 0; i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			l.cur += n - i
			break
		}
		if l.cur += j; l.cur > MaxCSVLineBytes {
			break
		}
		l.line++
		l.cur = 0
		i += j + 1
	}
	if l.cur > MaxCSVLineBytes {
		return 0, &InputError{File: l.path, Line: l.line + 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxCSVLineBytes)}
	}
	return n, err
}

func (in *csvInput) Close() {
	if in.gz != nil {
		in.gz.Close()
	}
	in.f.Close()
}

func (in *csvInput) errorf(line int, col, format string, args ...any) error {
	return &InputError{File: in.path, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

// readErr turns an error of csv.Reader.Read into an InputError.
func (in *csvInput) readErr(err error) error {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie // lineLimiter's
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := fmt.Sprintf("%v at character %d", pe.Err, pe.Column)
		if pe.StartLine != 0 && pe.StartLine != pe.Line {
			msg += fmt.Sprintf(" (in the record that starts on line %d)", pe.StartLine)
		}
		return &InputError{File: in.path, Line: pe.Line, Msg: msg}
	}
	return &InputError{File: in.path, Line: in.line + 1, Msg: "cannot read: " + err.Error()}
}

// readHeader reads the header row. want lists the required columns, each as alternatives
// (the first is the canonical name); optional lists optional columns the same way. It
// returns the index of each (-1 for an absent optional column) and the name found.
func (in *csvInput) readHeader(want, optional [][]string) (idx []int, names []string, err error) {
	rec, err := in.r.Read()
	if err == io.EOF {
		return nil, nil, in.errorf(1, want[0][0], "empty file: want a header row with columns %s", describeCols(want))
	}
	if err != nil {
		return nil, nil, in.readErr(err)
	}
	in.line, _ = in.r.FieldPos(0)
	in.cols = make([]string, len(rec))
	for i, h := range rec {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte order mark, as spreadsheets write
		}
		in.cols[i] = strings.ToLower(strings.TrimSpace(h))
	}
	find := func(alts []string, required bool) (int, string, error) {
		at, name := -1, ""
		for _, a := range alts {
			for i, c := range in.cols {
				if c != a {
					continue
				}
				if at >= 0 {
					if name == a {
						return 0, "", in.errorf(1, a, "the header names column %s twice", a)
					}
					return 0, "", in.errorf(1, a, "the header has both %s and %s; keep one", name, a)
				}
				at, name = i, a
			}
		}
		if at < 0 && required {
			return 0, "", in.errorf(1, alts[0], "missing column %s; the header has %s", strings.Join(alts, " or "),
				strings.Join(quoteAll(in.cols), ", "))
		}
		return at, name, nil
	}
	for _, alts := range want {
		i, n, err := find(alts, true)
		if err != nil {
			return nil, nil, err
		}
		idx, names = append(idx, i), append(names, n)
	}
	for _, alts := range optional {
		i, n, err := find(alts, false)
		if err != nil {
			return nil, nil, err
		}
		idx, names = append(idx, i), append(names, n)
	}
	return idx, names, nil
}

// next reads a data row; it returns (nil, nil) at the end of the file.
func (in *csvInput) next() ([]string, error) {
	rec, err := in.r.Read()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, in.readErr(err)
	}
	in.line, _ = in.r.FieldPos(0)
	if len(rec) != len(in.cols) {
		col := ""
		if len(rec) < len(in.cols) {
			col = in.cols[len(rec)]
		} else {
			col = fmt.Sprintf("%d (beyond the header)", len(in.cols)+1)
		}
		return nil, in.errorf(in.line, col, "the line has %d fields, the header %d", len(rec), len(in.cols))
	}
	return rec, nil
}

// fieldLine is the line of field i of the last record (a quoted field may span lines).
func (in *csvInput) fieldLine(i int) int {
	l, _ := in.r.FieldPos(i)
	return l
}

func describeCols(want [][]string) string {
	parts := make([]string, len(want))
	for i, alts := range want {
		parts[i] = strings.Join(alts, " or ")
	}
	return strings.Join(parts, ", ")
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strconv.Quote(x)
	}
	return out
}

// subjectTable is subjects.csv read: the subjects in file order, their indexes by id, and
// whether the file has a split column.
type subjectTable struct {
	subs     []importSubject
	byID     map[int64]int32
	hasSplit bool
}

// subjectColumns are the indexes of subjects.csv's columns (-1 for an absent optional one).
type subjectColumns struct {
	id, birth, sex, death, split int
}

func readSubjectsCSV(ctx context.Context, path string, codes *Codes, tp *timeParser) (*subjectTable, error) {
	in, err := openCSV(path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	idx, _, err := in.readHeader(
		[][]string{{"subject_id"}, {"birth_date"}, {"sex"}},
		[][]string{{"death_date"}, {"split"}},
	)
	if err != nil {
		return nil, err
	}
	cols := subjectColumns{id: idx[0], birth: idx[1], sex: idx[2], death: idx[3], split: idx[4]}
	st := &subjectTable{byID: map[int64]int32{}, hasSplit: cols.split >= 0}
	birthID := codes.ID(BirthCode)
	sexIDs := map[string]int32{}
	for n := 0; ; n++ {
		if n&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		rec, err := in.next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			break
		}
		s, sex, err := cols.parse(in, rec, tp)
		if err != nil {
			return nil, err
		}
		if prev, dup := st.byID[s.id]; dup {
			return nil, in.errorf(in.fieldLine(cols.id), "subject_id", "subject %d is listed twice (first on line %d)",
				s.id, st.subs[prev].line)
		}
		sexID, seen := sexIDs[sex]
		if !seen {
			sexID = codes.ID(sex)
			sexIDs[sex] = sexID
		}
		s.events = make([]Event, 2, 8)
		s.events[0] = Event{Time: StaticTime, Code: sexID, Value: NoValue}
		s.events[1] = Event{Time: s.birth, Code: birthID, Value: NoValue}
		st.byID[s.id] = int32(len(st.subs))
		st.subs = append(st.subs, s)
	}
	if len(st.subs) == 0 {
		return nil, in.errorf(in.line+1, "subject_id", "no subjects: the file has a header but no data rows")
	}
	return st, nil
}

// parse reads and checks one row of subjects.csv; it returns the subject and its sex code.
func (c subjectColumns) parse(in *csvInput, rec []string, tp *timeParser) (importSubject, string, error) {
	s := importSubject{line: in.line, death: StaticTime}
	var err error
	if s.id, err = parseSubjectID(in, rec, c.id); err != nil {
		return s, "", err
	}
	s.birthS = strings.TrimSpace(rec[c.birth])
	if s.birthS == "" {
		return s, "", in.errorf(in.fieldLine(c.birth), "birth_date", "empty birth_date for subject %d", s.id)
	}
	if s.birth, err = parseDateField(in, tp, c.birth, "birth_date", s.birthS); err != nil {
		return s, "", err
	}
	sex, ok := sexCode(rec[c.sex])
	if !ok {
		return s, "", in.errorf(in.fieldLine(c.sex), "sex",
			"unknown sex %q for subject %d; want F, M, female, male, U, unknown or other", rec[c.sex], s.id)
	}
	if c.death >= 0 {
		if s.deathS = strings.TrimSpace(rec[c.death]); s.deathS != "" {
			if s.death, err = parseDateField(in, tp, c.death, "death_date", s.deathS); err != nil {
				return s, "", err
			}
			if s.death < s.birth {
				return s, "", in.errorf(in.fieldLine(c.death), "death_date", "subject %d dies (%s) before birth (%s)",
					s.id, s.deathS, s.birthS)
			}
		}
	}
	if c.split >= 0 {
		switch v := strings.ToLower(strings.TrimSpace(rec[c.split])); v {
		case SplitTrain, SplitTuning, SplitHeldOut:
			s.split = v
		default:
			return s, "", in.errorf(in.fieldLine(c.split), "split",
				"unknown split %q for subject %d; want train, tuning or held_out", rec[c.split], s.id)
		}
	}
	return s, sex, nil
}

// parseDateField parses v, the trimmed field i (column col) of the current row, as a date or
// time in MEDS' range.
func parseDateField(in *csvInput, tp *timeParser, i int, col, v string) (int64, error) {
	t, ok := tp.parse(v)
	if !ok {
		return 0, in.errorf(in.fieldLine(i), col, "cannot parse %q as a date or time%s", v, tp.hint())
	}
	if err := CheckTime(t); err != nil {
		return 0, in.errorf(in.fieldLine(i), col, "%q: %v", v, err)
	}
	return t, nil
}

func parseSubjectID(in *csvInput, rec []string, i int) (int64, error) {
	v := strings.TrimSpace(rec[i])
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		if v == "" {
			return 0, in.errorf(in.fieldLine(i), "subject_id", "empty subject_id")
		}
		return 0, in.errorf(in.fieldLine(i), "subject_id", "%q is not an integer subject id", rec[i])
	}
	return id, nil
}

func sexCode(v string) (string, bool) {
	v = strings.TrimSpace(v)
	switch {
	case strings.EqualFold(v, "F"), strings.EqualFold(v, "female"):
		return importSexFemale, true
	case strings.EqualFold(v, "M"), strings.EqualFold(v, "male"):
		return importSexMale, true
	case strings.EqualFold(v, "U"), strings.EqualFold(v, "unknown"), strings.EqualFold(v, "other"):
		return importSexUnknown, true
	}
	return "", false
}

func readEventsCSV(ctx context.Context, path, subjectsPath string, codes *Codes, tp *timeParser, st *subjectTable,
	sum *ImportSummary, sp *importSpill) error {
	in, err := openCSV(path)
	if err != nil {
		return err
	}
	defer in.Close()
	idx, names, err := in.readHeader(
		[][]string{{"subject_id"}, {"time", "date"}, {"code"}},
		[][]string{{"value", "numeric_value"}},
	)
	if err != nil {
		return err
	}
	r := &eventRows{in: in, tp: tp, codes: codes, st: st, subjectsPath: subjectsPath,
		iID: idx[0], iTime: idx[1], iCode: idx[2], iVal: idx[3], timeCol: names[1], valCol: names[3],
		birthID:   codes.ID(BirthCode), // readSubjectsCSV wrote each subject's birth
		lastIDStr: "\x00", lastTime: StaticTime}
	for n := 0; ; n++ {
		if n&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := in.next()
		if err != nil {
			return err
		}
		if rec == nil {
			break
		}
		ev, err := r.event(rec)
		if err != nil {
			return err
		}
		if ev.Time == StaticTime {
			sum.Static++
		}
		r.cur.events = append(r.cur.events, ev)
		sum.CSVEvents++
		if err := sp.added(st.subs); err != nil {
			return err
		}
	}
	if sum.CSVEvents == 0 {
		return in.errorf(in.line+1, "subject_id", "no events: the file has a header but no data rows")
	}
	return nil
}

// eventRows reads the rows of an events CSV file. Events files are usually grouped by
// subject and time, so it remembers the last subject and the last time field parsed.
type eventRows struct {
	in                      *csvInput
	tp                      *timeParser
	codes                   *Codes
	st                      *subjectTable
	subjectsPath            string
	iID, iTime, iCode, iVal int    // column indexes; iVal -1 when absent
	timeCol, valCol         string // the header's names for them
	birthID                 int32
	lastIDStr               string // the last subject_id field; "\x00" (no field equals it) at first
	lastID                  int64
	cur                     *importSubject // its subject
	lastTimeS               string         // the last time field parsed, as written
	lastTime                int64          // its time: "" (the initial value) is a static row
}

// event reads and checks one row, setting r.cur to its subject.
func (r *eventRows) event(rec []string) (Event, error) {
	ev := Event{Value: NoValue}
	if err := r.subject(rec); err != nil {
		return ev, err
	}
	var err error
	if ev.Time, err = r.time(rec); err != nil {
		return ev, err
	}
	if ev.Code, err = r.code(rec); err != nil {
		return ev, err
	}
	if r.iVal >= 0 {
		if v := strings.TrimSpace(rec[r.iVal]); v != "" {
			f, err := strconv.ParseFloat(v, 32)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return ev, r.in.errorf(r.in.fieldLine(r.iVal), r.valCol, "%q is not a finite number", rec[r.iVal])
			}
			ev.Value = float32(f)
		}
	}
	return ev, nil
}

// subject sets r.cur to the row's subject, which subjects.csv must list.
func (r *eventRows) subject(rec []string) error {
	if rec[r.iID] == r.lastIDStr {
		return nil
	}
	id, err := parseSubjectID(r.in, rec, r.iID)
	if err != nil {
		return err
	}
	k, ok := r.st.byID[id]
	if !ok {
		return r.in.errorf(r.in.fieldLine(r.iID), "subject_id", "subject %d is not in %s", id, r.subjectsPath)
	}
	r.lastIDStr, r.lastID, r.cur = rec[r.iID], id, &r.st.subs[k]
	return nil
}

// time is the row's time (StaticTime for an empty field), which must fall between the
// subject's birth and death days.
func (r *eventRows) time(rec []string) (int64, error) {
	in := r.in
	if ts := rec[r.iTime]; ts != r.lastTimeS {
		t := strings.TrimSpace(ts)
		if t == "" {
			r.lastTime = StaticTime
		} else {
			var ok bool
			if r.lastTime, ok = r.tp.parse(t); !ok {
				return 0, in.errorf(in.fieldLine(r.iTime), r.timeCol, "cannot parse %q as a date or time%s", ts, r.tp.hint())
			}
			if err := CheckTime(r.lastTime); err != nil {
				r.lastTimeS = "\x00" // not cached: the next row with this time fails too
				return 0, in.errorf(in.fieldLine(r.iTime), r.timeCol, "%q: %v", ts, err)
			}
		}
		r.lastTimeS = ts
	}
	t, cur := r.lastTime, r.cur
	if t == StaticTime {
		return t, nil
	}
	if FloorDiv(t, MicrosPerDay) < FloorDiv(cur.birth, MicrosPerDay) {
		return 0, in.errorf(in.fieldLine(r.iTime), r.timeCol, "event at %s is before the birth of subject %d (%s)",
			strings.TrimSpace(rec[r.iTime]), r.lastID, cur.birthS)
	}
	if cur.death != StaticTime && FloorDiv(t, MicrosPerDay) > FloorDiv(cur.death, MicrosPerDay) {
		return 0, in.errorf(in.fieldLine(r.iTime), r.timeCol, "event at %s is after the death of subject %d (%s)",
			strings.TrimSpace(rec[r.iTime]), r.lastID, cur.deathS)
	}
	return t, nil
}

// code is the row's code, kept exactly as written; checked (CheckCode) the first time it is
// met. A birth code is refused: the birth comes from subjects.csv.
func (r *eventRows) code(rec []string) (int32, error) {
	code := rec[r.iCode]
	id, known := r.codes.Lookup(code)
	if !known {
		if err := CheckCode(code); err != nil {
			return 0, r.in.errorf(r.in.fieldLine(r.iCode), "code", "%v", err)
		}
		id = r.codes.ID(code)
	}
	if id == r.birthID {
		return 0, r.in.errorf(r.in.fieldLine(r.iCode), "code",
			"%s row for subject %d: the birth comes from %s's birth_date (%s); a second birth is refused",
			BirthCode, r.lastID, r.subjectsPath, r.cur.birthS)
	}
	return id, nil
}

// timeParser parses the time formats the importer accepts: RFC 3339, "2006-01-02 15:04:05",
// "2006-01-02T15:04:05", "2006-01-02 15:04" and "2006-01-02" (fractions of a second and a
// zone allowed after the seconds; no zone means UTC), plus an optional custom Go layout.
type timeParser struct {
	layout string
}

func (p *timeParser) hint() string {
	if p.layout != "" {
		return fmt.Sprintf(" (with --time-layout %q or a built-in layout)", p.layout)
	}
	return ""
}

// parse returns MEDS microseconds.
func (p *timeParser) parse(s string) (int64, bool) {
	if p.layout != "" {
		if t, err := time.Parse(p.layout, s); err == nil {
			return t.UnixMicro(), true
		}
	}
	return parseISOTime(s)
}

// parseISOTime parses YYYY-MM-DD, optionally followed by [T ]hh:mm, :ss, .fraction and
// Z or ±hh:mm, without allocating. It is as strict as time.Parse on ranges.
func parseISOTime(s string) (int64, bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) {
		return 0, false
	}
	us := daysFromCivil(year, month, day) * MicrosPerDay
	rest := s[10:]
	if rest == "" {
		return us, true
	}
	if rest[0] != 'T' && rest[0] != ' ' || len(rest) < 6 || rest[3] != ':' {
		return 0, false
	}
	hh, ok1 := digits(rest[1:3])
	mm, ok2 := digits(rest[4:6])
	if !ok1 || !ok2 || hh > 23 || mm > 59 {
		return 0, false
	}
	us += (int64(hh)*3600 + int64(mm)*60) * microsPerSecond
	rest = rest[6:]
	if len(rest) >= 3 && rest[0] == ':' {
		ss, ok := digits(rest[1:3])
		if !ok || ss > 59 {
			return 0, false
		}
		us += int64(ss) * microsPerSecond
		rest = rest[3:]
		if len(rest) >= 2 && (rest[0] == '.' || rest[0] == ',') {
			i := 1
			frac, scale := int64(0), int64(100_000)
			for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
				frac += int64(rest[i]-'0') * scale
				scale /= 10
				i++
			}
			if i == 1 || i > 10 { // 1 to 9 digits; beyond microseconds they are truncated
				return 0, false
			}
			us += frac
			rest = rest[i:]
		}
	}
	switch {
	case rest == "":
		return us, true
	case rest == "Z":
		return us, true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		off := (int64(oh)*3600 + int64(om)*60) * microsPerSecond
		if rest[0] == '+' {
			return us - off, true
		}
		return us + off, true
	}
	return 0, false
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the proleptic Gregorian
// calendar (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
