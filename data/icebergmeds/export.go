package icebergmeds

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/medseq/medseq/data"
)

// ExportOptions tunes Export.
type ExportOptions struct {
	// Buckets is N of the bucket(N, subject_id) partition of a new events table (default 16);
	// an existing table keeps its own.
	Buckets int
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// DefaultBuckets is the default N of bucket(N, subject_id).
const DefaultBuckets = 16

// ExportResult is what Export wrote.
type ExportResult struct {
	Subjects, Rows, Codes, Splits int
	Created                       []string         // tables this export created
	Snapshots                     map[string]int64 // the snapshot committed per table
}

// ErrSubjectExists is wrapped when an export would append a subject the tables already hold.
var ErrSubjectExists = errors.New("subject already in the tables")

// Iceberg schemas of the tables Export creates (ids are reassigned by the catalog).
var (
	eventsSchema = iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: data.ColSubjectID, Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: 2, Name: data.ColTime, Type: iceberg.PrimitiveTypes.Timestamp},
		iceberg.NestedField{ID: 3, Name: data.ColCode, Type: iceberg.PrimitiveTypes.String, Required: true},
		iceberg.NestedField{ID: 4, Name: data.ColNumericValue, Type: iceberg.PrimitiveTypes.Float32})
	splitsSchema = iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: data.ColSubjectID, Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: 2, Name: "split", Type: iceberg.PrimitiveTypes.String, Required: true})
	codesSchema = iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: "code", Type: iceberg.PrimitiveTypes.String, Required: true},
		iceberg.NestedField{ID: 2, Name: "description", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 3, Name: "parent_codes", Type: &iceberg.ListType{ElementID: 4,
			Element: iceberg.PrimitiveTypes.String, ElementRequired: true}})
)

// Arrow schemas of the rows Export appends.
var (
	arrowEvents = arrow.NewSchema([]arrow.Field{
		{Name: data.ColSubjectID, Type: arrow.PrimitiveTypes.Int64},
		{Name: data.ColTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: data.ColCode, Type: arrow.BinaryTypes.String},
		{Name: data.ColNumericValue, Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	}, nil)
	arrowSplits = arrow.NewSchema([]arrow.Field{
		{Name: data.ColSubjectID, Type: arrow.PrimitiveTypes.Int64},
		{Name: "split", Type: arrow.BinaryTypes.String},
	}, nil)
	arrowCodes = arrow.NewSchema([]arrow.Field{
		{Name: "code", Type: arrow.BinaryTypes.String},
		{Name: "description", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "parent_codes", Type: arrow.ListOfNonNullable(arrow.BinaryTypes.String), Nullable: true},
	}, nil)
)

// exportTables is the tables of one export and their transactions.
type exportTables struct {
	cat     catalog.Catalog
	ref     Ref
	tbl     map[string]*table.Table
	prev    map[string]*table.Snapshot // snapshot before the export (nil: none)
	tx      map[string]*table.Transaction
	created []string
	nsNew   bool
}

// Export writes the MEDS folder medsDir into the namespace r of cat: the events table
// (bucket(N, subject_id)), subject_splits (the folder's, completed by the split its shard
// folders give a subject it does not list) and codes, creating what does not exist or
// appending to what does. Each table gets one snapshot; the snapshots are committed together
// by a catalog that supports multi-table commits, else one after another, rolling the earlier
// ones back (or dropping tables this export created) when a later one fails. A subject that
// the tables already hold is refused before anything is committed.
func Export(ctx context.Context, medsDir string, cat catalog.Catalog, r Ref, opt ExportOptions) (*ExportResult, error) {
	if data.IsSourceRef(medsDir) {
		return nil, fmt.Errorf("export: --meds %s: want a MEDS folder", medsDir)
	}
	if opt.Buckets <= 0 {
		opt.Buckets = DefaultBuckets
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ds, err := data.Open(medsDir)
	if err != nil {
		return nil, err
	}
	splits, err := ds.SubjectSplits()
	if err != nil {
		return nil, err
	}
	codes, err := ds.CodeMetadata()
	if err != nil {
		return nil, err
	}
	datasetJSON, err := os.ReadFile(filepath.Join(medsDir, data.DatasetJSONFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	et := &exportTables{cat: cat, ref: r, tbl: map[string]*table.Table{}, prev: map[string]*table.Snapshot{},
		tx: map[string]*table.Transaction{}}
	res, err := et.run(ctx, ds, splits, codes, datasetJSON, opt.Buckets, log)
	if err != nil {
		et.undoCreated(ctx, log)
		return nil, fmt.Errorf("export %s to %s: %w", medsDir, r, err)
	}
	return res, nil
}

// run stages the three appends and commits them.
func (et *exportTables) run(ctx context.Context, ds *data.Dataset, splits map[int64]string, codes []data.CodeMeta,
	datasetJSON []byte, buckets int, log *slog.Logger) (*ExportResult, error) {
	if err := et.prepare(ctx, datasetJSON, buckets); err != nil {
		return nil, err
	}
	existing, err := et.existingSubjects(ctx)
	if err != nil {
		return nil, err
	}
	res := &ExportResult{Created: et.created, Snapshots: map[string]int64{}}
	shardSplit := map[int64]string{}
	props := iceberg.Properties{"medseq.source": "medseq data export"}
	log.Info("exporting events", "shards", len(ds.Shards), "buckets", buckets)
	rdr := array.ReaderFromIter(arrowEvents, eventBatches(ds, existing, shardSplit, res))
	err = et.tx[data.TableEvents].Append(ctx, rdr, props)
	rdr.Release()
	if err != nil {
		return nil, fmt.Errorf("write table %s: %w", data.TableEvents, err)
	}
	splitRows := mergeSplits(splits, shardSplit, existing)
	res.Splits = len(splitRows)
	if err := et.appendRows(ctx, data.TableSubjectSplits, splitsRecord(splitRows), props); err != nil {
		return nil, err
	}
	newCodes, err := et.newCodes(ctx, codes)
	if err != nil {
		return nil, err
	}
	res.Codes = len(newCodes)
	if err := et.appendRows(ctx, data.TableCodes, codesRecord(newCodes), props); err != nil {
		return nil, err
	}
	if err := et.commit(ctx, log); err != nil {
		return nil, err
	}
	for name, t := range et.tbl {
		if err := t.Refresh(ctx); err == nil && t.CurrentSnapshot() != nil {
			res.Snapshots[name] = t.CurrentSnapshot().SnapshotID
		}
	}
	return res, nil
}

// prepare creates the namespace and tables that do not exist, checks those that do, and
// opens a transaction on each.
func (et *exportTables) prepare(ctx context.Context, datasetJSON []byte, buckets int) error {
	exists, err := et.cat.CheckNamespaceExists(ctx, et.ref.Namespace)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", strings.Join(et.ref.Namespace, "."), err)
	}
	if !exists {
		props := iceberg.Properties{}
		if len(datasetJSON) > 0 {
			props[DatasetJSONProperty] = string(datasetJSON)
		}
		if err := et.cat.CreateNamespace(ctx, et.ref.Namespace, props); err != nil {
			return fmt.Errorf("create namespace %s: %w", strings.Join(et.ref.Namespace, "."), err)
		}
		et.nsNew = true
	}
	spec := iceberg.NewPartitionSpec(iceberg.PartitionField{SourceIDs: []int{1}, FieldID: 1000,
		Name: data.ColSubjectID + "_bucket", Transform: iceberg.BucketTransform{NumBuckets: buckets}})
	tables := []struct {
		name   string
		schema *iceberg.Schema
		opts   []catalog.CreateTableOpt
	}{
		{data.TableEvents, eventsSchema, []catalog.CreateTableOpt{catalog.WithPartitionSpec(&spec)}},
		{data.TableSubjectSplits, splitsSchema, nil},
		{data.TableCodes, codesSchema, nil},
	}
	for _, t := range tables {
		if err := et.openTable(ctx, t.name, t.schema, t.opts); err != nil {
			return err
		}
	}
	return et.checkEventsTable()
}

// tableProps are the properties of the tables Export creates: one data file per bucket and
// append (so a subject's rows are read back in the order written), format version 2.
var tableProps = iceberg.Properties{
	table.WriteTargetFileSizeBytesKey: strconv.FormatInt(1<<40, 10),
	table.PropertyFormatVersion:       "2",
}

// openTable loads table name, or creates it, and opens a transaction on it.
func (et *exportTables) openTable(ctx context.Context, name string, schema *iceberg.Schema,
	opts []catalog.CreateTableOpt) error {
	ident := append(append(table.Identifier{}, et.ref.Namespace...), name)
	t, err := et.cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		opts = append(opts, catalog.WithProperties(tableProps))
		if t, err = et.cat.CreateTable(ctx, ident, schema, opts...); err != nil {
			return fmt.Errorf("create table %s: %w", strings.Join(ident, "."), err)
		}
		et.created = append(et.created, name)
	} else if err != nil {
		return fmt.Errorf("load table %s: %w", strings.Join(ident, "."), err)
	}
	et.tbl[name] = t
	et.prev[name] = t.CurrentSnapshot()
	et.tx[name] = t.NewTransaction()
	return nil
}

// checkEventsTable checks an existing events table: MEDS columns, bucketed by subject_id.
func (et *exportTables) checkEventsTable() error {
	t := et.tbl[data.TableEvents]
	if err := checkEventsSchema(t.Schema()); err != nil {
		return fmt.Errorf("table %s: %w", data.TableEvents, err)
	}
	for _, name := range []string{data.TableSubjectSplits, data.TableCodes} {
		if err := checkMetaSchema(name, et.tbl[name].Schema()); err != nil {
			return fmt.Errorf("table %s: %w", name, err)
		}
	}
	id, _ := t.Schema().FindFieldByName(data.ColSubjectID)
	spec := t.Spec()
	for _, f := range spec.FieldsBySourceID(id.ID) {
		if _, ok := f.Transform.(iceberg.BucketTransform); ok {
			return nil
		}
	}
	return fmt.Errorf("table %s is not partitioned by bucket(N, %s) (spec %s): appending would leave subjects "+
		"split across files", data.TableEvents, data.ColSubjectID, spec.String())
}

// existingSubjects reads the subject ids the events and subject_splits tables already hold.
func (et *exportTables) existingSubjects(ctx context.Context) (map[int64]bool, error) {
	out := map[int64]bool{}
	for _, name := range []string{data.TableEvents, data.TableSubjectSplits} {
		t := et.tbl[name]
		if t.CurrentSnapshot() == nil {
			continue
		}
		scan := t.Scan(table.WithSelectedFields(data.ColSubjectID))
		_, itr, err := scan.ToArrowRecords(ctx)
		if err != nil {
			return nil, fmt.Errorf("read table %s: %w", name, err)
		}
		err = drain("table "+name, itr, func(rec arrow.RecordBatch) error {
			col, ok := rec.Column(0).(*array.Int64)
			if !ok {
				return fmt.Errorf("table %s: column %s is %s", name, data.ColSubjectID, rec.Column(0).DataType())
			}
			for _, v := range col.Int64Values() {
				out[v] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// eventBatches streams the folder's shards as record batches of the events table, refusing a
// subject the tables already hold or one the folder has in two shards, and recording the split
// each subject's shard folder gives it.
func eventBatches(ds *data.Dataset, existing map[int64]bool, shardSplit map[int64]string,
	res *ExportResult) iter.Seq2[arrow.RecordBatch, error] {
	return func(yield func(arrow.RecordBatch, error) bool) {
		seen := map[int64]bool{}
		for _, p := range ds.Shards {
			sh, err := ds.ReadShard(p)
			if err != nil {
				yield(nil, err)
				return
			}
			split := ds.ShardSplit(p)
			for _, s := range sh.Subjects {
				switch {
				case existing[s.ID]:
					yield(nil, fmt.Errorf("%s: subject %d: %w (export appends new subjects only)", p, s.ID,
						ErrSubjectExists))
					return
				case seen[s.ID]:
					yield(nil, fmt.Errorf("%s: subject %d appears in more than one shard", p, s.ID))
					return
				}
				seen[s.ID] = true
				if split != "" {
					shardSplit[s.ID] = split
				}
			}
			res.Subjects += len(sh.Subjects)
			res.Rows += sh.Rows
			for rec := range shardRecords(ds.Codes, sh) {
				if !yield(rec, nil) { // the reader owns rec (array.ReaderFromIter releases it)
					return
				}
			}
		}
	}
}

// shardRecords converts a shard's events to record batches of at most 1<<16 rows, in the
// shard's order (by subject, then time, ties as the file had them).
func shardRecords(codes *data.Codes, sh *data.Shard) iter.Seq[arrow.RecordBatch] {
	const batch = 1 << 16
	return func(yield func(arrow.RecordBatch) bool) {
		b := array.NewRecordBuilder(memory.DefaultAllocator, arrowEvents)
		defer b.Release()
		rows := data.NewEventRows(b)
		n := 0
		for _, s := range sh.Subjects {
			for _, e := range s.Events {
				rows.Append(s.ID, e, codes)
				if n++; n == batch {
					if !yield(b.NewRecordBatch()) {
						return
					}
					n = 0
				}
			}
		}
		if n > 0 {
			yield(b.NewRecordBatch())
		}
	}
}

// splitRow is one row of subject_splits.
type splitRow struct {
	id    int64
	split string
}

// mergeSplits is subject_splits for the export: the folder's rows, and the shard folder's
// split of each subject the folder does not list; subjects the tables hold are left out.
func mergeSplits(listed, shardSplit map[int64]string, existing map[int64]bool) []splitRow {
	var out []splitRow
	for id, s := range listed {
		if !existing[id] {
			out = append(out, splitRow{id, s})
		}
	}
	for id, s := range shardSplit {
		if _, ok := listed[id]; !ok {
			out = append(out, splitRow{id, s})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].id < out[b].id })
	return out
}

func splitsRecord(rows []splitRow) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrowSplits)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(r.id)
		b.Field(1).(*array.StringBuilder).Append(r.split)
	}
	return b.NewRecordBatch()
}

// newCodes is the folder's code metadata less the codes the codes table already holds.
func (et *exportTables) newCodes(ctx context.Context, codes []data.CodeMeta) ([]data.CodeMeta, error) {
	t := et.tbl[data.TableCodes]
	if t.CurrentSnapshot() == nil {
		return codes, nil
	}
	have := map[string]bool{}
	_, itr, err := t.Scan(table.WithSelectedFields("code")).ToArrowRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("read table %s: %w", data.TableCodes, err)
	}
	err = drain("table "+data.TableCodes, itr, func(rec arrow.RecordBatch) error {
		col, ok := rec.Column(0).(interface{ ValueStr(int) string })
		if !ok {
			return fmt.Errorf("table %s: column code is %s", data.TableCodes, rec.Column(0).DataType())
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			have[col.ValueStr(i)] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []data.CodeMeta
	for _, c := range codes {
		if !have[c.Code] {
			out = append(out, c)
		}
	}
	return out, nil
}

func codesRecord(codes []data.CodeMeta) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrowCodes)
	defer b.Release()
	pc := b.Field(2).(*array.ListBuilder)
	pv := pc.ValueBuilder().(*array.StringBuilder)
	for _, c := range codes {
		b.Field(0).(*array.StringBuilder).Append(c.Code)
		if c.Description == "" {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append(c.Description)
		}
		if c.ParentCodes == nil {
			pc.AppendNull()
			continue
		}
		pc.Append(true)
		for _, p := range c.ParentCodes {
			pv.Append(p)
		}
	}
	return b.NewRecordBatch()
}

// appendRows stages rec (released here) as the append of table name; no rows stage nothing.
func (et *exportTables) appendRows(ctx context.Context, name string, rec arrow.RecordBatch,
	props iceberg.Properties) error {
	defer rec.Release()
	if rec.NumRows() == 0 {
		return nil
	}
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		return err
	}
	defer rdr.Release()
	if err := et.tx[name].Append(ctx, rdr, props); err != nil {
		return fmt.Errorf("write table %s: %w", name, err)
	}
	return nil
}
