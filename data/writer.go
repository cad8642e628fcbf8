package data

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// EventSchema is the Arrow schema medseq writes for MEDS data shards. Every column is marked
// nullable, as the reference MEDS writers do.
var EventSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: ColTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: ColCode, Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: ColNumericValue, Type: arrow.PrimitiveTypes.Float32, Nullable: true},
}, nil)

func parquetProps() *parquet.WriterProperties {
	return parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(1),
		parquet.WithDictionaryDefault(true),
		parquet.WithMaxRowGroupLength(1<<20),
		parquet.WithStats(true),
	)
}

// WriteShard writes subjects (sorted by id by the caller or not; they are sorted here) to a
// MEDS data shard at path, atomically. Event codes are resolved through codes.
func WriteShard(path string, codes *Codes, subjects []Subject) error {
	sort.SliceStable(subjects, func(i, j int) bool { return subjects[i].ID < subjects[j].ID })
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	fw, err := pqarrow.NewFileWriter(EventSchema, struct{ io.Writer }{f}, parquetProps(),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	mem := memory.DefaultAllocator
	b := array.NewRecordBuilder(mem, EventSchema)
	defer b.Release()
	rows := NewEventRows(b)
	const batch = 1 << 16
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		n = 0
		return fw.WriteBuffered(rec)
	}
	for _, s := range subjects {
		SortEvents(s.Events)
		for _, e := range s.Events {
			rows.Append(s.ID, e, codes)
			n++
			if n == batch {
				if err := flush(); err != nil {
					fw.Close()
					return fmt.Errorf("write %s: %w", path, err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		fw.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// WriteSubjectSplits writes metadata/subject_splits.parquet (subject_id, split) under root.
func WriteSubjectSplits(root string, splits map[int64]string) error {
	ids := make([]int64, 0, len(splits))
	for id, s := range splits {
		if s != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil // no split information: no subject_splits.parquet
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	schema := arrow.NewSchema([]arrow.Field{
		{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "split", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	return WriteTable(filepath.Join(root, SubjectSplitsFile), schema, func(b *array.RecordBuilder) {
		for _, id := range ids {
			b.Field(0).(*array.Int64Builder).Append(id)
			b.Field(1).(*array.StringBuilder).Append(splits[id])
		}
	})
}

// WriteCodeMetadata writes metadata/codes.parquet (code, description, parent_codes) under root.
func WriteCodeMetadata(root string, codes []CodeMeta) error {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "code", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "description", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "parent_codes", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, nil)
	return WriteTable(filepath.Join(root, CodesFile), schema, func(b *array.RecordBuilder) {
		lb := b.Field(2).(*array.ListBuilder)
		vb := lb.ValueBuilder().(*array.StringBuilder)
		for _, c := range codes {
			b.Field(0).(*array.StringBuilder).Append(c.Code)
			if c.Description == "" {
				b.Field(1).(*array.StringBuilder).AppendNull()
			} else {
				b.Field(1).(*array.StringBuilder).Append(c.Description)
			}
			lb.Append(true)
			for _, p := range c.ParentCodes {
				vb.Append(p)
			}
		}
	})
}

// WriteDatasetMetadata writes metadata/dataset.json under root.
func WriteDatasetMetadata(root string, md DatasetMetadata) error {
	m := map[string]any{}
	for k, v := range md.Extra {
		m[k] = v
	}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("dataset_name", md.DatasetName)
	set("dataset_version", md.DatasetVersion)
	set("etl_name", md.ETLName)
	set("etl_version", md.ETLVersion)
	set("meds_version", md.MEDSVersion)
	set("created_at", md.CreatedAt)
	buf, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(root, DatasetJSONFile), append(buf, '\n'))
}

// WriteTable writes a small single-batch Parquet table atomically at path, with the same
// writer settings as the dataset's own files: fill appends the rows to the builder.
func WriteTable(path string, schema *arrow.Schema, fill func(*array.RecordBuilder)) error {
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := WriteTableTo(f, schema, fill); err != nil {
		return err
	}
	return f.Commit()
}

// WriteTableTo writes the table into f without committing it: a caller that writes files in
// pairs commits them together.
func WriteTableTo(f *AtomicFile, schema *arrow.Schema, fill func(*array.RecordBuilder)) error {
	path := f.final
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	fill(b)
	rec := b.NewRecordBatch()
	defer rec.Release()
	fw, err := pqarrow.NewFileWriter(schema, struct{ io.Writer }{f}, parquetProps(),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fw.Write(rec); err != nil {
		fw.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// DatasetWriter writes a whole MEDS dataset into a temporary folder and moves it into place
// on Commit. Subjects are routed to data/<split>/<n>.parquet shards of about ShardEvents rows;
// subjects within a shard are sorted by id and events by time, as MEDS requires.
type DatasetWriter struct {
	dir         *AtomicDir
	Codes       *Codes
	ShardEvents int
	pending     map[string][]Subject
	pendingN    map[string]int
	shardNo     map[string]int
	splits      map[int64]string
	codeMeta    []CodeMeta
	meta        DatasetMetadata
	rows        int64
}

// NewDatasetWriter starts a dataset at out (see CreateAtomicDir for overwrite).
func NewDatasetWriter(out string, overwrite bool) (*DatasetWriter, error) {
	d, err := CreateAtomicDir(out, overwrite)
	if err != nil {
		return nil, err
	}
	return &DatasetWriter{
		dir: d, Codes: NewCodes(), ShardEvents: defaultShardEvents,
		pending: map[string][]Subject{}, pendingN: map[string]int{}, shardNo: map[string]int{},
		splits: map[int64]string{},
		meta:   DatasetMetadata{MEDSVersion: MEDSVersion},
	}, nil
}

// TempDir is the folder being written (for files beside the dataset, such as an oracle).
func (w *DatasetWriter) TempDir() string { return w.dir.Tmp }

// Add queues a subject for split (train, tuning, held_out, or "" for a dataset without
// splits). The events' codes must come from w.Codes. The writer keeps
// the slice until its shard is flushed.
func (w *DatasetWriter) Add(split string, s Subject) error {
	if prev, dup := w.splits[s.ID]; dup {
		return fmt.Errorf("subject %d added twice (splits %s and %s)", s.ID, prev, split)
	}
	w.splits[s.ID] = split // "" writes data/<n>.parquet and leaves the subject out of subject_splits
	w.pending[split] = append(w.pending[split], s)
	w.pendingN[split] += len(s.Events)
	w.rows += int64(len(s.Events))
	if w.pendingN[split] >= w.ShardEvents {
		return w.flush(split)
	}
	return nil
}

func (w *DatasetWriter) flush(split string) error {
	subs := w.pending[split]
	if len(subs) == 0 {
		return nil
	}
	n := w.shardNo[split]
	path := filepath.Join(w.dir.Tmp, DataDir, split, strconv.Itoa(n)+".parquet")
	if err := WriteShard(path, w.Codes, subs); err != nil {
		return err
	}
	w.shardNo[split] = n + 1
	w.pending[split] = nil
	w.pendingN[split] = 0
	return nil
}

// SetCodeMetadata sets the rows of metadata/codes.parquet.
func (w *DatasetWriter) SetCodeMetadata(c []CodeMeta) { w.codeMeta = c }

// SetMetadata sets metadata/dataset.json (meds_version defaults to 0.4).
func (w *DatasetWriter) SetMetadata(md DatasetMetadata) {
	if md.MEDSVersion == "" {
		md.MEDSVersion = MEDSVersion
	}
	w.meta = md
}

// Rows is the number of events added so far.
func (w *DatasetWriter) Rows() int64 { return w.rows }

// Commit flushes every shard, writes the metadata and the manifest (when m is not nil, with
// its fingerprint filled in) and moves the dataset into place.
func (w *DatasetWriter) Commit(m *Manifest) error {
	splits := make([]string, 0, len(w.pending))
	for s := range w.pending {
		splits = append(splits, s)
	}
	sort.Strings(splits)
	for _, s := range splits {
		if err := w.flush(s); err != nil {
			w.dir.Abort()
			return err
		}
	}
	root := w.dir.Tmp
	steps := []func() error{
		func() error { return WriteSubjectSplits(root, w.splits) },
		func() error { return WriteCodeMetadata(root, w.codeMeta) },
		func() error { return WriteDatasetMetadata(root, w.meta) },
	}
	for _, st := range steps {
		if err := st(); err != nil {
			w.dir.Abort()
			return err
		}
	}
	if m != nil {
		if err := m.WriteTo(root); err != nil {
			w.dir.Abort()
			return err
		}
	}
	return w.dir.Commit()
}

// Abort discards everything written.
func (w *DatasetWriter) Abort() { w.dir.Abort() }

// EventRows appends events as MEDS rows to a record builder whose first four fields are
// EventSchema's (subject_id int64, time timestamp, code string, numeric_value float32): a
// static event's time and a missing value become nulls. The one place an Event becomes a row,
// for the MEDS writer and for other writers of the same columns (Iceberg export).
type EventRows struct {
	ids   *array.Int64Builder
	times *array.TimestampBuilder
	codes *array.StringBuilder
	vals  *array.Float32Builder
}

// NewEventRows takes b's first four field builders; it panics if their types are not
// EventSchema's (a programming error, not bad data).
func NewEventRows(b *array.RecordBuilder) EventRows {
	return EventRows{ids: b.Field(0).(*array.Int64Builder), times: b.Field(1).(*array.TimestampBuilder),
		codes: b.Field(2).(*array.StringBuilder), vals: b.Field(3).(*array.Float32Builder)}
}

// Append appends subject id's event e, its code named by codes.
func (r EventRows) Append(id int64, e Event, codes *Codes) {
	r.ids.Append(id)
	if e.IsStatic() {
		r.times.AppendNull()
	} else {
		r.times.Append(arrow.Timestamp(e.Time))
	}
	r.codes.Append(codes.Name(e.Code))
	if e.HasValue() {
		r.vals.Append(e.Value)
	} else {
		r.vals.AppendNull()
	}
}
