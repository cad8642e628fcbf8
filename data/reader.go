package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ErrNotMEDS is returned when a folder or file does not hold MEDS data.
var ErrNotMEDS = errors.New("not a MEDS dataset")

// Dataset is an opened MEDS dataset. Shards are read one at a time; the code table grows as
// shards are read and is shared by every Subject the dataset returns.
type Dataset struct {
	Root   string
	Shards []string // paths of data/**/*.parquet, sorted
	Codes  *Codes
	Meta   DatasetMetadata
	// BatchSize is the number of rows per Arrow batch when reading (default 64Ki).
	BatchSize int64
}

// Open finds the shards of the MEDS dataset at root (a folder holding data/ and optionally
// metadata/) and reads metadata/dataset.json when present.
func Open(root string) (*Dataset, error) {
	dataDir := filepath.Join(root, DataDir)
	st, err := os.Stat(dataDir)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("open %s: %w: no %s/ folder", root, ErrNotMEDS, DataDir)
	}
	var shards []string
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != dataDir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet") {
			shards = append(shards, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", root, err)
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("open %s: %w: no .parquet files under %s", root, ErrNotMEDS, dataDir)
	}
	sort.Strings(shards)
	ds := &Dataset{Root: root, Shards: shards, Codes: NewCodes(), BatchSize: 1 << 16}
	if buf, err := os.ReadFile(filepath.Join(root, DatasetJSONFile)); err == nil {
		if err := json.Unmarshal(buf, &ds.Meta); err != nil {
			return nil, fmt.Errorf("read %s: %w", filepath.Join(root, DatasetJSONFile), err)
		}
		var all map[string]any
		if json.Unmarshal(buf, &all) == nil {
			for _, k := range []string{"dataset_name", "dataset_version", "etl_name", "etl_version", "meds_version", "created_at"} {
				delete(all, k)
			}
			if len(all) > 0 {
				ds.Meta.Extra = all
			}
		}
	}
	return ds, nil
}

// ShardSplit returns the split a shard's path implies (data/<split>/...), or "".
func (d *Dataset) ShardSplit(shard string) string {
	rel, err := filepath.Rel(filepath.Join(d.Root, DataDir), shard)
	if err != nil {
		return ""
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[0]
}

// Shard is the content of one data file, grouped by subject. Subjects' Events slices share
// one backing array owned by the shard.
type Shard struct {
	Path     string
	Subjects []Subject
	Rows     int
}

// ForEachShard reads the shards one after another and calls fn with each; memory holds one
// shard at a time. It stops at the first error, or when ctx is done.
func (d *Dataset) ForEachShard(ctx context.Context, fn func(*Shard) error) error {
	for _, p := range d.Shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		sh, err := d.ReadShard(p)
		if err != nil {
			return err
		}
		if err := fn(sh); err != nil {
			return err
		}
	}
	return nil
}

// ForEachSubject calls fn for every subject of the dataset, shard by shard.
func (d *Dataset) ForEachSubject(ctx context.Context, fn func(Subject) error) error {
	return d.ForEachShard(ctx, func(sh *Shard) error {
		for _, s := range sh.Subjects {
			if err := fn(s); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReadShard reads one MEDS data file and groups its rows by subject (sorting them when the
// file is not already ordered by subject and time).
func (d *Dataset) ReadShard(path string) (*Shard, error) {
	ids, ev, err := d.readColumns(path)
	if err != nil {
		return nil, err
	}
	return groupSubjects(path, ids, ev), nil
}

func groupSubjects(path string, ids []int64, ev []Event) *Shard {
	sorted := true
	for i := 1; i < len(ids); i++ {
		if ids[i] < ids[i-1] || (ids[i] == ids[i-1] && ev[i].Time < ev[i-1].Time) {
			sorted = false
			break
		}
	}
	if !sorted {
		perm := make([]int32, len(ids))
		for i := range perm {
			perm[i] = int32(i)
		}
		sort.SliceStable(perm, func(a, b int) bool {
			ia, ib := perm[a], perm[b]
			if ids[ia] != ids[ib] {
				return ids[ia] < ids[ib]
			}
			return ev[ia].Time < ev[ib].Time
		})
		ids2 := make([]int64, len(ids))
		ev2 := make([]Event, len(ev))
		for i, p := range perm {
			ids2[i], ev2[i] = ids[p], ev[p]
		}
		ids, ev = ids2, ev2
	}
	sh := &Shard{Path: path, Rows: len(ids)}
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j] == ids[i] {
			j++
		}
		sh.Subjects = append(sh.Subjects, Subject{ID: ids[i], Events: ev[i:j:j]})
		i = j
	}
	return sh
}

// columnError names the file and column of a schema problem.
func columnError(path, col, format string, args ...any) error {
	return fmt.Errorf("read %s: column %s: %s", path, col, fmt.Sprintf(format, args...))
}

// readColumns reads subject_id, time, code and numeric_value (when present) of one file.
func (d *Dataset) readColumns(path string) ([]int64, []Event, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer pf.Close()
	sc := pf.MetaData().Schema
	leaf := map[string]int{}
	for _, name := range []string{ColSubjectID, ColTime, ColCode, ColNumericValue} {
		leaf[name] = sc.ColumnIndexByName(name)
	}
	for _, name := range []string{ColSubjectID, ColTime, ColCode} {
		if leaf[name] < 0 {
			return nil, nil, fmt.Errorf("read %s: %w: missing column %s", path, ErrNotMEDS, name)
		}
	}
	cols := []int{leaf[ColSubjectID], leaf[ColTime], leaf[ColCode]}
	if leaf[ColNumericValue] >= 0 {
		cols = append(cols, leaf[ColNumericValue])
	}
	props := pqarrow.ArrowReadProperties{Parallel: true, BatchSize: d.BatchSize}
	props.SetReadDict(leaf[ColCode], true)
	fr, err := pqarrow.NewFileReader(pf, props, memory.DefaultAllocator)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), cols, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer rr.Release()
	n := pf.NumRows()
	ids := make([]int64, 0, n)
	ev := make([]Event, 0, n)
	tr := &codeTranslator{codes: d.Codes}
	defer tr.release()
	for rr.Next() {
		rec := rr.RecordBatch()
		base := len(ids)
		m := int(rec.NumRows())
		ids = ids[:base+m]
		ev = ev[:base+m]
		sch := rec.Schema()
		col := func(name string) arrow.Array {
			if idx := sch.FieldIndices(name); len(idx) > 0 {
				return rec.Column(idx[0])
			}
			return nil
		}
		if err := readIDs(path, col(ColSubjectID), ids[base:], base); err != nil {
			return nil, nil, err
		}
		if err := readTimes(path, col(ColTime), ev[base:]); err != nil {
			return nil, nil, err
		}
		if err := tr.read(path, col(ColCode), ev[base:], base); err != nil {
			return nil, nil, err
		}
		if err := readValues(path, col(ColNumericValue), ev[base:]); err != nil {
			return nil, nil, err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return ids, ev, nil
}

func readIDs(path string, a arrow.Array, out []int64, base int) error {
	if a.NullN() > 0 {
		for i := 0; i < a.Len(); i++ {
			if a.IsNull(i) {
				return columnError(path, ColSubjectID, "null subject_id at row %d", base+i+1)
			}
		}
	}
	switch c := a.(type) {
	case *array.Int64:
		copy(out, c.Int64Values())
	case *array.Int32:
		for i, v := range c.Int32Values() {
			out[i] = int64(v)
		}
	case *array.Uint32:
		for i, v := range c.Uint32Values() {
			out[i] = int64(v)
		}
	case *array.Uint64:
		for i, v := range c.Uint64Values() {
			if v > math.MaxInt64 {
				return columnError(path, ColSubjectID, "value %d at row %d does not fit int64", v, base+i+1)
			}
			out[i] = int64(v)
		}
	default:
		return columnError(path, ColSubjectID, "type %s, want int64", a.DataType())
	}
	return nil
}

func readTimes(path string, a arrow.Array, out []Event) error {
	var mul, div int64 = 1, 1
	var vals []int64
	switch c := a.(type) {
	case *array.Timestamp:
		switch c.DataType().(*arrow.TimestampType).Unit {
		case arrow.Second:
			mul = 1_000_000
		case arrow.Millisecond:
			mul = 1000
		case arrow.Microsecond:
		case arrow.Nanosecond:
			div = 1000
		}
		ts := c.TimestampValues()
		vals = unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(ts))), len(ts))
	case *array.Date32:
		mul = MicrosPerDay
		d := c.Date32Values()
		vals = make([]int64, len(d))
		for i, v := range d {
			vals[i] = int64(v)
		}
	case *array.Int64:
		vals = c.Int64Values()
	default:
		return columnError(path, ColTime, "type %s, want timestamp[us]", a.DataType())
	}
	hasNull := a.NullN() > 0
	for i, v := range vals {
		if hasNull && a.IsNull(i) {
			out[i].Time = StaticTime
			continue
		}
		if mul != 1 {
			v *= mul
		} else if div != 1 {
			v = floorDiv(v, div)
		}
		out[i].Time = v
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func readValues(path string, a arrow.Array, out []Event) error {
	if a == nil {
		for i := range out {
			out[i].Value = NoValue
		}
		return nil
	}
	hasNull := a.NullN() > 0
	switch c := a.(type) {
	case *array.Float32:
		for i, v := range c.Float32Values() {
			if hasNull && c.IsNull(i) {
				v = NoValue
			}
			out[i].Value = v
		}
	case *array.Float64:
		for i, v := range c.Float64Values() {
			if hasNull && c.IsNull(i) {
				out[i].Value = NoValue
			} else {
				out[i].Value = float32(v)
			}
		}
	case *array.Null:
		for i := range out {
			out[i].Value = NoValue
		}
	default:
		return columnError(path, ColNumericValue, "type %s, want float32", a.DataType())
	}
	return nil
}

// codeTranslator maps a code column (string, large_string, or dictionary of either) to ids,
// translating each dictionary once.
type codeTranslator struct {
	codes    *Codes
	lastDict arrow.Array
	table    []int32
}

func (t *codeTranslator) read(path string, a arrow.Array, out []Event, base int) error {
	if a.NullN() > 0 {
		for i := 0; i < a.Len(); i++ {
			if a.IsNull(i) {
				return columnError(path, ColCode, "null code at row %d", base+i+1)
			}
		}
	}
	switch c := a.(type) {
	case *array.Dictionary:
		dict := c.Dictionary()
		if dict != t.lastDict {
			// A new dictionary (pqarrow starts one per row group): translate it once. The
			// cached one is retained so its address cannot be reused by a different one.
			t.table = t.table[:0]
			for i := 0; i < dict.Len(); i++ {
				b, err := binaryAt(dict, i)
				if err != nil {
					return columnError(path, ColCode, "%v", err)
				}
				t.table = append(t.table, t.codes.idBytes(b))
			}
			if t.lastDict != nil {
				t.lastDict.Release()
			}
			dict.Retain()
			t.lastDict = dict
		}
		switch idx := c.Indices().(type) {
		case *array.Int32:
			for i, v := range idx.Int32Values() {
				out[i].Code = t.table[v]
			}
		default:
			for i := 0; i < c.Len(); i++ {
				out[i].Code = t.table[c.GetValueIndex(i)]
			}
		}
	case *array.String:
		for i := 0; i < c.Len(); i++ {
			out[i].Code = t.codes.ID(c.Value(i))
		}
	case *array.LargeString:
		for i := 0; i < c.Len(); i++ {
			out[i].Code = t.codes.ID(c.Value(i))
		}
	case *array.Binary:
		for i := 0; i < c.Len(); i++ {
			out[i].Code = t.codes.idBytes(c.Value(i))
		}
	case *array.LargeBinary:
		for i := 0; i < c.Len(); i++ {
			out[i].Code = t.codes.idBytes(c.Value(i))
		}
	default:
		return columnError(path, ColCode, "type %s, want string", a.DataType())
	}
	return nil
}

func (t *codeTranslator) release() {
	if t.lastDict != nil {
		t.lastDict.Release()
		t.lastDict = nil
	}
}

func binaryAt(a arrow.Array, i int) ([]byte, error) {
	switch d := a.(type) {
	case *array.String:
		return unsafe.Slice(unsafe.StringData(d.Value(i)), len(d.Value(i))), nil
	case *array.LargeString:
		return unsafe.Slice(unsafe.StringData(d.Value(i)), len(d.Value(i))), nil
	case *array.Binary:
		return d.Value(i), nil
	case *array.LargeBinary:
		return d.Value(i), nil
	}
	return nil, fmt.Errorf("dictionary of %s, want string", a.DataType())
}
