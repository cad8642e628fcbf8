package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// DefaultImportMemoryEvents is how many events an import holds in memory before it spills them
// to disk: 64M events, about 1 GiB.
const DefaultImportMemoryEvents = 64 << 20

// importSpill bounds an import's memory: when the events held exceed max, all of them are
// written to a run file, subject by subject in subject-id order, and memory is freed. Writing
// the dataset then merges, for each subject in id order, its events from every run (in run
// order, so each subject's events keep the order of the CSV file) with those still in memory.
// The runs live in a folder inside the dataset's temporary folder and are removed before it
// is committed (or with it, when the import fails).
type importSpill struct {
	dir     string
	max     int
	held    int
	runs    []string
	spilled int64
	order   []int // position in id order -> subject index
}

// spillRecord is one spilled event: subject rank, time, code, value.
const spillRecord = 4 + 8 + 4 + 4

func newImportSpill(dir string, max int, order []int) *importSpill {
	return &importSpill{dir: dir, max: max, order: order}
}

// added counts one event held in memory and spills when the budget is reached.
func (s *importSpill) added(subs []importSubject) error {
	s.held++
	if s.held < s.max {
		return nil
	}
	return s.spill(subs)
}

// spill writes every event held in memory to a new run and frees them.
func (s *importSpill) spill(subs []importSubject) (err error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("import: spill folder: %w", err)
	}
	path := filepath.Join(s.dir, "run-"+strconv.Itoa(len(s.runs)))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("import: spill: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("import: spill %s: %w", path, cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	var rec [spillRecord]byte
	for r, i := range s.order {
		for _, e := range subs[i].events {
			binary.LittleEndian.PutUint32(rec[0:], uint32(r))
			binary.LittleEndian.PutUint64(rec[4:], uint64(e.Time))
			binary.LittleEndian.PutUint32(rec[12:], uint32(e.Code))
			binary.LittleEndian.PutUint32(rec[16:], math.Float32bits(e.Value))
			if _, err := w.Write(rec[:]); err != nil {
				return fmt.Errorf("import: spill %s: %w", path, err)
			}
		}
		s.spilled += int64(len(subs[i].events))
		subs[i].events = nil
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("import: spill %s: %w", path, err)
	}
	s.runs = append(s.runs, path)
	s.held = 0
	return nil
}

// spillRun reads one run back in order.
type spillRun struct {
	path string
	f    *os.File
	r    *bufio.Reader
	rec  [spillRecord]byte
	next int32 // rank of the buffered record; -1 at the end
}

func (u *spillRun) advance() error {
	if _, err := io.ReadFull(u.r, u.rec[:]); err != nil {
		if errors.Is(err, io.EOF) {
			u.next = -1
			return nil
		}
		return fmt.Errorf("import: read spill %s: %w", u.path, err)
	}
	u.next = int32(binary.LittleEndian.Uint32(u.rec[0:]))
	return nil
}

// spillMerger hands out each subject's spilled events, subjects in rank order.
type spillMerger struct{ runs []*spillRun }

func (s *importSpill) merger() (*spillMerger, error) {
	m := &spillMerger{}
	for _, p := range s.runs {
		f, err := os.Open(p)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("import: %w", err)
		}
		u := &spillRun{path: p, f: f, r: bufio.NewReaderSize(f, 1<<20)}
		m.runs = append(m.runs, u)
		if err := u.advance(); err != nil {
			m.close()
			return nil, err
		}
	}
	return m, nil
}

// take appends the spilled events of the subject at rank to dst, run by run.
func (m *spillMerger) take(rank int32, dst []Event) ([]Event, error) {
	for _, u := range m.runs {
		for u.next == rank {
			dst = append(dst, Event{
				Time:  int64(binary.LittleEndian.Uint64(u.rec[4:])),
				Code:  int32(binary.LittleEndian.Uint32(u.rec[12:])),
				Value: math.Float32frombits(binary.LittleEndian.Uint32(u.rec[16:])),
			})
			if err := u.advance(); err != nil {
				return dst, err
			}
		}
	}
	return dst, nil
}

// close closes the runs (again: a no-op).
func (m *spillMerger) close() {
	for _, u := range m.runs {
		u.f.Close()
	}
	m.runs = nil
}

// remove deletes the runs.
func (s *importSpill) remove() error { return os.RemoveAll(s.dir) }
