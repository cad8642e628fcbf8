package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
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
	// src is where the shards come from when root names a Source (SCHEME:...), nil for a folder.
	src Source
}

// Open finds the shards of the MEDS dataset at root (a folder holding data/ and optionally
// metadata/) and reads metadata/dataset.json when present. A root of the form SCHEME:...
// names a dataset held in a Source (OpenSource), such as iceberg:CATALOG/NAMESPACE.
func Open(root string) (*Dataset, error) {
	if IsSourceRef(root) {
		return OpenSource(context.Background(), root)
	}
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
		if ds.Meta, err = parseDatasetJSON(buf); err != nil {
			return nil, fmt.Errorf("read %s: %w", filepath.Join(root, DatasetJSONFile), err)
		}
	}
	return ds, nil
}

// ShardSplit returns the split a shard's path implies (data/<split>/...), or "".
func (d *Dataset) ShardSplit(shard string) string {
	if d.src != nil {
		return d.src.ShardSplit(shard)
	}
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
func (d *Dataset) ReadShard(path string) (sh *Shard, err error) {
	if d.src != nil {
		return d.readSourceShard(path)
	}
	defer recoverCorrupt(path, &err)
	rows, err := d.readColumns(path)
	if err != nil {
		return nil, err
	}
	return groupSubjects(path, rows.ids, rows.ev, rows.ord), nil
}

// A corrupt file's metadata may declare any number of rows or bytes, and arrow-go allocates
// what it is told: before anything is allocated by such a number, the reader checks it
// against the file (checkRowGroup, maxRowsPerByte), and arrow-go allocates through
// readAllocator, which refuses one allocation beyond maxReadAllocation.
const (
	// maxRowsPerByte bounds the rows a file may declare beyond maxRowsAnySize: 8 a bit. A MEDS
	// shard's time and code columns take at least a bit a row (medseq's take 4 bytes a row,
	// compressed); only data that repeats one time and one code for a long run could go beyond.
	maxRowsPerByte = 64
	maxRowsAnySize = 1 << 16
	// maxReadAllocation is far beyond one batch of one column (BatchSize rows) or a page.
	maxReadAllocation = 1 << 30
)

// checkRowGroup checks what a row group's metadata declares against the file: a row count that
// fits, and column chunks of the columns read that lie inside the file.
func checkRowGroup(rg *metadata.RowGroupMetaData, cols []int, fileSize int64) error {
	if rows := rg.NumRows(); rows < 0 || rows > math.MaxInt32 {
		return fmt.Errorf("%d rows", rows)
	}
	for _, c := range cols {
		cc, err := rg.ColumnChunk(c)
		if err != nil {
			return err
		}
		start := cc.DataPageOffset()
		if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && start > cc.DictionaryPageOffset() {
			start = cc.DictionaryPageOffset()
		}
		size := cc.TotalCompressedSize()
		if start < 0 || size < 0 || start > fileSize || size > fileSize-start {
			return fmt.Errorf("column %d at byte %d, %d bytes, in a file of %d", c, start, size, fileSize)
		}
	}
	return nil
}

// ignoreStoredSchema hides the Arrow schema a Parquet file may carry (key ARROW:schema) from
// pqarrow, which would parse it: a flatbuffer whose lengths and counts nothing checks, so that
// a corrupt one makes arrow-go allocate what it declares, outside readAllocator (FuzzReadShard
// found several). The reader needs nothing from it: the Parquet schema gives each column's
// type and time unit, and the code column is read as a dictionary whatever it was written as.
func ignoreStoredSchema(md *metadata.FileMetaData) {
	for _, kv := range md.KeyValueMetadata() {
		if kv != nil && kv.Key == "ARROW:schema" {
			kv.Key = "medseq:ignored:ARROW:schema"
		}
	}
}

// boundedAllocator is memory.DefaultAllocator refusing, by a panic that recoverCorrupt turns
// into an error, one allocation larger than max.
type boundedAllocator struct {
	memory.Allocator
	max int
}

func (a boundedAllocator) Allocate(n int) []byte {
	if n > a.max || n < 0 {
		panic(fmt.Sprintf("an allocation of %d bytes", n))
	}
	return a.Allocator.Allocate(n)
}

func (a boundedAllocator) Reallocate(n int, b []byte) []byte {
	if n > a.max || n < 0 {
		panic(fmt.Sprintf("an allocation of %d bytes", n))
	}
	return a.Allocator.Reallocate(n, b)
}

// readAllocator is the allocator of every Parquet read.
var readAllocator memory.Allocator = boundedAllocator{memory.DefaultAllocator, maxReadAllocation}

// recoverCorrupt turns a panic of the Parquet decoder on a corrupt file (arrow-go panics on
// some malformed pages and metadata) into an error naming the file. The reader decodes in
// its own goroutines only (ArrowReadProperties.Parallel is off), each of which recovers, so no
// file can crash the process (FuzzReadShard).
func recoverCorrupt(path string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("read %s: %w: corrupt Parquet file (%v)", path, ErrNotMEDS, p)
	}
}

// order is what the readers found out about the order of rows: whether they are sorted by
// subject and time, and if so how many subjects they hold.
type order struct {
	known    bool // sorted and subjects are valid
	sorted   bool
	subjects int
}

// scan checks the order of ids[lo:hi] and ev[lo:hi], continuing from row lo-1 when lo > 0.
func (o *order) scan(ids []int64, ev []Event, lo, hi int) {
	if !o.sorted || lo >= hi {
		return
	}
	i := lo
	if i == 0 {
		o.subjects++
		i = 1
	}
	ids = ids[:hi]
	ev = ev[:hi]
	for ; i < hi; i++ {
		if ids[i] != ids[i-1] {
			if ids[i] < ids[i-1] {
				o.sorted = false
				return
			}
			o.subjects++
		} else if ev[i].Time < ev[i-1].Time {
			o.sorted = false
			return
		}
	}
}

func groupSubjects(path string, ids []int64, ev []Event, ord order) *Shard {
	if !ord.known {
		ord = order{sorted: true}
		ord.scan(ids, ev, 0, len(ids))
	}
	if !ord.sorted {
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
		ord.subjects = 0
	}
	sh := &Shard{Path: path, Rows: len(ids), Subjects: make([]Subject, 0, ord.subjects)}
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

// shardRows are the rows of one file, column by column, and what is known of their order.
type shardRows struct {
	ids []int64
	ev  []Event
	ord order
}

// readColumns reads subject_id, time, code and numeric_value (when present) of one file.
//
// Row groups are read in parallel (one goroutine per core, each taking the next row group)
// straight into their place in the output. Row group 0 interns its codes into d.Codes; the
// others intern into a table of their own that is merged into d.Codes afterwards in row
// group order, so code ids are the same as a sequential read would give.
func (d *Dataset) readColumns(path string) (shardRows, error) {
	f, err := d.openShardFile(path)
	if err != nil {
		return shardRows{}, err
	}
	defer f.pf.Close()
	nrg := len(f.offs) - 1
	n := f.offs[nrg]
	rows := shardRows{ids: make([]int64, n), ev: make([]Event, n)}
	if nrg <= 1 {
		if rows.ord, err = readRowGroups(path, f.fr, f.cols, nil, rows.ids, rows.ev, 0, d.Codes); err != nil {
			return shardRows{}, err
		}
		return rows, nil
	}
	workers := min(nrg, runtime.GOMAXPROCS(0))
	local, ords, err := d.readRowGroupsParallel(f, rows, workers)
	if err != nil {
		return shardRows{}, err
	}
	rows.ord = joinOrders(ords, f.offs, rows.ids, rows.ev)
	d.mergeCodes(local, f.offs, rows.ev, workers)
	return rows, nil
}

// shardFile is an opened MEDS data file whose metadata has been checked against its size.
type shardFile struct {
	path string
	pf   *file.Reader
	fr   *pqarrow.FileReader
	cols []int // leaf indexes of subject_id, time, code and numeric_value (when present)
	offs []int // row group g holds rows offs[g]:offs[g+1]
}

// openShardFile opens a data file, finds its columns and checks each row group's metadata
// before anything is allocated by it. The caller closes f.pf.
func (d *Dataset) openShardFile(path string) (f *shardFile, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	pf, err := file.OpenParquetFile(path, false, file.WithReadProps(parquet.NewReaderProperties(readAllocator)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			pf.Close()
		}
	}()
	md := pf.MetaData()
	sc := md.Schema
	leaf := map[string]int{}
	for _, name := range []string{ColSubjectID, ColTime, ColCode, ColNumericValue} {
		leaf[name] = sc.ColumnIndexByName(name)
	}
	for _, name := range []string{ColSubjectID, ColTime, ColCode} {
		if leaf[name] < 0 {
			return nil, fmt.Errorf("read %s: %w: missing column %s", path, ErrNotMEDS, name)
		}
	}
	f = &shardFile{path: path, pf: pf, cols: []int{leaf[ColSubjectID], leaf[ColTime], leaf[ColCode]}}
	if leaf[ColNumericValue] >= 0 {
		f.cols = append(f.cols, leaf[ColNumericValue])
	}
	ignoreStoredSchema(md)
	// Not Parallel: arrow-go would decode in goroutines of its own, where a panic on a corrupt
	// page cannot be recovered; row groups are read in parallel by readColumns instead.
	props := pqarrow.ArrowReadProperties{BatchSize: d.BatchSize}
	props.SetReadDict(leaf[ColCode], true)
	if f.fr, err = pqarrow.NewFileReader(pf, props, readAllocator); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	nrg := pf.NumRowGroups()
	f.offs = make([]int, nrg+1)
	for g := 0; g < nrg; g++ {
		if err := checkRowGroup(md.RowGroup(g), f.cols, st.Size()); err != nil {
			return nil, fmt.Errorf("read %s: %w: corrupt Parquet metadata: row group %d: %v", path, ErrNotMEDS, g, err)
		}
		f.offs[g+1] = f.offs[g] + int(md.RowGroup(g).NumRows())
	}
	if n := f.offs[nrg]; n > maxRowsAnySize && int64(n) > maxRowsPerByte*st.Size() {
		return nil, fmt.Errorf("read %s: %w: corrupt Parquet metadata: %d rows in %d bytes", path, ErrNotMEDS, n, st.Size())
	}
	return f, nil
}

// readRowGroupsParallel reads every row group of f into its place in rows on workers
// goroutines. It returns each row group's local code table (nil for row group 0, which
// interns into d.Codes) and order, or the error of the first row group that failed.
func (d *Dataset) readRowGroupsParallel(f *shardFile, rows shardRows, workers int) ([]*Codes, []order, error) {
	nrg := len(f.offs) - 1
	local := make([]*Codes, nrg)
	errs := make([]error, nrg)
	ords := make([]order, nrg)
	var next, failed atomic.Int64 // failed: the lowest row group that failed, nrg when none
	failed.Store(int64(nrg))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				g := int(next.Add(1) - 1)
				if g >= nrg || int64(g) > failed.Load() {
					return
				}
				codes := d.Codes
				if g > 0 {
					codes = NewCodes()
					local[g] = codes
				}
				lo, hi := f.offs[g], f.offs[g+1]
				var err error
				func() {
					defer recoverCorrupt(f.path, &err)
					ords[g], err = readRowGroups(f.path, f.fr, f.cols, []int{g}, rows.ids[lo:hi], rows.ev[lo:hi], lo, codes)
				}()
				if err != nil {
					errs[g] = err
					for low := failed.Load(); int64(g) < low && !failed.CompareAndSwap(low, int64(g)); low = failed.Load() {
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return local, ords, nil
}

// joinOrders is the order of the whole file from that of each row group (offs as in
// shardFile): sorted when each is and each continues or follows the previous one.
func joinOrders(ords []order, offs []int, ids []int64, ev []Event) order {
	n := offs[len(offs)-1]
	ord := order{known: true, sorted: true}
	for g := 0; g < len(ords) && ord.sorted; g++ {
		o := ords[g]
		ord.sorted = o.sorted
		ord.subjects += o.subjects
		if lo := offs[g]; g > 0 && lo > 0 && lo < n && o.subjects > 0 {
			// Row group g's first subject continues the previous one, or follows it.
			if ids[lo] < ids[lo-1] || (ids[lo] == ids[lo-1] && ev[lo].Time < ev[lo-1].Time) {
				ord.sorted = false
			} else if ids[lo] == ids[lo-1] {
				ord.subjects--
			}
		}
	}
	return ord
}

// mergeCodes merges the row groups' local code tables into d.Codes in row group order, then
// renumbers (on workers goroutines) the rows of those whose ids changed.
func (d *Dataset) mergeCodes(local []*Codes, offs []int, ev []Event, workers int) {
	nrg := len(local)
	tables := make([][]int32, nrg)
	for g := 1; g < nrg; g++ {
		names := local[g].Names()
		table := make([]int32, len(names))
		same := true
		for i, name := range names {
			table[i] = d.Codes.ID(name)
			same = same && table[i] == int32(i)
		}
		if !same {
			tables[g] = table
		}
	}
	var next atomic.Int64
	next.Store(1)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := int(next.Add(1) - 1); g < nrg; g = int(next.Add(1) - 1) {
				if table := tables[g]; table != nil {
					part := ev[offs[g]:offs[g+1]]
					for i := range part {
						part[i].Code = table[part[i].Code]
					}
				}
			}
		}()
	}
	wg.Wait()
}

// readRowGroups reads the rows of rowGroups (nil: all) into ids and ev, interning codes into
// codes; base is the index in the file of their first row (for error messages). Batches are
// converted (and their order checked) by a second goroutine while pqarrow decodes the next.
func readRowGroups(path string, fr *pqarrow.FileReader, cols, rowGroups []int, ids []int64, ev []Event, base int,
	codes *Codes) (order, error) {
	rr, err := fr.GetRecordReader(context.Background(), cols, rowGroups)
	if err != nil {
		return order{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer rr.Release()
	ord := order{known: true, sorted: true}
	tr := &codeTranslator{codes: codes}
	defer tr.release()
	codes0 := codes.Len() // codes from here on are new: checked once each (checkNewCodes)

	type batch struct {
		rec arrow.RecordBatch
		at  int
	}
	var (
		convErr error
		failed  atomic.Bool
		batches = make(chan batch, 1)
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				convErr = fmt.Errorf("read %s: %w: corrupt Parquet file (%v)", path, ErrNotMEDS, p)
				failed.Store(true)
				for b := range batches { // let the decoder finish
					b.rec.Release()
				}
			}
		}()
		for b := range batches {
			if convErr == nil {
				if convErr = convertBatch(path, b.rec, ids, ev, b.at, base, tr); convErr != nil {
					failed.Store(true)
				} else {
					ord.scan(ids, ev, b.at, b.at+int(b.rec.NumRows()))
				}
			}
			b.rec.Release()
		}
	}()
	at := 0
	for !failed.Load() && rr.Next() {
		rec := rr.RecordBatch()
		m := int(rec.NumRows())
		if at+m > len(ids) {
			err = fmt.Errorf("read %s: more rows than the metadata's %d", path, base+len(ids))
			break
		}
		rec.Retain()
		batches <- batch{rec, at}
		at += m
	}
	close(batches)
	<-done
	if convErr != nil {
		return order{}, convErr
	}
	if err != nil {
		return order{}, err
	}
	if err := rr.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return order{}, fmt.Errorf("read %s: %w", path, err)
	}
	if at != len(ids) {
		return order{}, fmt.Errorf("read %s: %d rows, metadata says %d", path, base+at, base+len(ids))
	}
	if err := checkNewCodes(path, codes, codes0, ev, base); err != nil {
		return order{}, err
	}
	return ord, nil
}

// checkNewCodes applies CheckCode to the codes interned since the table held from codes, and
// names the first row (base is ev[0]'s index in the file) of a code it refuses.
func checkNewCodes(path string, codes *Codes, from int, ev []Event, base int) error {
	for id := from; id < codes.Len(); id++ {
		err := CheckCode(codes.Name(int32(id)))
		if err == nil {
			continue
		}
		for i := range ev {
			if ev[i].Code == int32(id) {
				return columnError(path, ColCode, "row %d: %v", base+i+1, err)
			}
		}
		return columnError(path, ColCode, "%v", err) // a dictionary entry no row uses
	}
	return nil
}

// convertBatch converts the rows of rec into ids[at:] and ev[at:].
func convertBatch(path string, rec arrow.RecordBatch, ids []int64, ev []Event, at, base int, tr *codeTranslator) error {
	m := int(rec.NumRows())
	sch := rec.Schema()
	col := func(name string) arrow.Array {
		if idx := sch.FieldIndices(name); len(idx) > 0 {
			return rec.Column(idx[0])
		}
		return nil
	}
	if err := readIDs(path, col(ColSubjectID), ids[at:at+m], base+at); err != nil {
		return err
	}
	out := ev[at : at+m]
	if err := readTimes(path, col(ColTime), out); err != nil {
		return err
	}
	for i := range out {
		if t := out[i].Time; t != StaticTime && (t < MinTime || t > MaxTime) {
			return columnError(path, ColTime, "row %d: %v", base+at+i+1, CheckTime(t))
		}
	}
	if err := tr.read(path, col(ColCode), out, base+at); err != nil {
		return err
	}
	return readValues(path, col(ColNumericValue), out)
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
	out = out[:len(vals)]
	switch {
	case mul != 1:
		for i, v := range vals {
			out[i].Time = v * mul
		}
	case div != 1:
		for i, v := range vals {
			out[i].Time = FloorDiv(v, div)
		}
	default:
		for i, v := range vals {
			out[i].Time = v
		}
	}
	if a.NullN() > 0 {
		// Null times are static rows: patch them, a bitmap byte at a time.
		bm, off := a.NullBitmapBytes(), a.Data().Offset()
		for i := 0; i < len(out); {
			j := off + i
			if j&7 == 0 && i+8 <= len(out) {
				if bm[j>>3] == 0xFF {
					i += 8
					continue
				}
			}
			if bm[j>>3]>>(j&7)&1 == 0 {
				out[i].Time = StaticTime
			}
			i++
		}
	}
	return nil
}

// noValueBits is the bit pattern of NoValue.
var noValueBits = math.Float32bits(NoValue)

func readValues(path string, a arrow.Array, out []Event) error {
	if a == nil {
		for i := range out {
			out[i].Value = NoValue
		}
		return nil
	}
	// A null row gets NoValue, chosen without a branch from its validity bit.
	hasNull := a.NullN() > 0
	bm, off := a.NullBitmapBytes(), a.Data().Offset()
	switch c := a.(type) {
	case *array.Float32:
		vals := c.Float32Values()
		out = out[:len(vals)]
		if !hasNull {
			for i, v := range vals {
				out[i].Value = v
			}
			return nil
		}
		for i, v := range vals {
			j := off + i
			mask := -uint32(bm[j>>3] >> (j & 7) & 1) // all ones when valid
			out[i].Value = math.Float32frombits(math.Float32bits(v)&mask | noValueBits&^mask)
		}
	case *array.Float64:
		vals := c.Float64Values()
		out = out[:len(vals)]
		if !hasNull {
			for i, v := range vals {
				out[i].Value = float32(v)
			}
			return nil
		}
		for i, v := range vals {
			j := off + i
			mask := -uint32(bm[j>>3] >> (j & 7) & 1)
			out[i].Value = math.Float32frombits(math.Float32bits(float32(v))&mask | noValueBits&^mask)
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
			// A new dictionary: pqarrow hands out one per batch, holding the row group's
			// dictionary so far, so it usually starts with the previous one; translate only
			// the entries that are new then. The cached one is retained so its address cannot
			// be reused by a different one.
			if !dictExtends(dict, t.lastDict, len(t.table)) {
				t.table = t.table[:0]
			}
			for i := len(t.table); i < dict.Len(); i++ {
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

// dictExtends reports whether the first n entries of dict are those of prev (n = prev.Len()).
func dictExtends(dict, prev arrow.Array, n int) bool {
	if prev == nil || dict.Len() < n || prev.Len() != n {
		return false
	}
	if d, ok := dict.(*array.String); ok {
		if p, ok := prev.(*array.String); ok {
			do, po := d.ValueOffsets()[:n+1], p.ValueOffsets()
			for i := range po {
				if do[i]-do[0] != po[i]-po[0] {
					return false
				}
			}
			return bytes.Equal(d.ValueBytes()[:do[n]-do[0]], p.ValueBytes())
		}
	}
	if dict.DataType().ID() != prev.DataType().ID() {
		return false
	}
	for i := 0; i < n; i++ {
		x, err1 := binaryAt(dict, i)
		y, err2 := binaryAt(prev, i)
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			return false
		}
	}
	return true
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
