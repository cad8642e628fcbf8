package icebergmeds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/medseq/medseq/data"

	// File IO for the object stores a catalog's tables live on (the local file system is built in).
	_ "github.com/apache/iceberg-go/io/gocloud/azure"
	_ "github.com/apache/iceberg-go/io/gocloud/gcs"
	_ "github.com/apache/iceberg-go/io/gocloud/s3"
	// The SQLite driver of SQL catalogs (pure Go).
	_ "modernc.org/sqlite"
)

func init() {
	data.RegisterSource(Scheme, func(ctx context.Context, ref string) (data.Source, error) {
		return Open(ctx, ref, Options{})
	})
}

// DatasetJSONProperty is the namespace property holding the dataset's metadata/dataset.json.
const DatasetJSONProperty = "meds.dataset-json"

// Options tunes Open.
type Options struct {
	// Config is the catalog configuration; nil reads it with LoadConfig("").
	Config *Config
	// MaxShardRows bounds the rows of a shard made of data files whose subject_id ranges
	// overlap (a table not bucketed by subject_id); 0 means DefaultMaxShardRows.
	MaxShardRows int64
}

// DefaultMaxShardRows is the default bound on a regrouped shard's rows (about 1.5 GB read).
const DefaultMaxShardRows = 64 << 20

// Source is a MEDS dataset in an Iceberg namespace, pinned to the snapshots current when it
// was opened. It implements data.Source.
type Source struct {
	ref         Ref
	cat         catalog.Catalog
	events      *table.Table
	scan        *table.Scan
	shards      []string
	tasks       map[string][]table.FileScanTask
	meta        map[string]*pinnedTable // subject_splits and codes, when present
	datasetJSON []byte
	fingerprint string
}

// pinnedTable is a table and the snapshot read from it (nil: the table has none yet).
type pinnedTable struct {
	tbl  *table.Table
	snap *table.Snapshot
}

// Open opens the MEDS dataset ref (iceberg:CATALOG/NAMESPACE).
func Open(ctx context.Context, ref string, opt Options) (*Source, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	cfg := opt.Config
	if cfg == nil {
		if cfg, err = LoadConfig(""); err != nil {
			return nil, err
		}
	}
	cat, err := cfg.OpenCatalog(ctx, r.Catalog)
	if err != nil {
		return nil, err
	}
	s, err := openSource(ctx, r, cat, opt)
	if err != nil {
		CloseCatalog(cat)
		return nil, fmt.Errorf("open %s: %w", r, err)
	}
	return s, nil
}

func openSource(ctx context.Context, r Ref, cat catalog.Catalog, opt Options) (*Source, error) {
	s := &Source{ref: r, cat: cat, meta: map[string]*pinnedTable{}}
	nsProps, err := loadNamespace(ctx, cat, r)
	if err != nil {
		return nil, err
	}
	s.datasetJSON = []byte(nsProps[DatasetJSONProperty])
	if len(s.datasetJSON) == 0 {
		s.datasetJSON = nil
	}
	ev, err := loadTable(ctx, cat, r, data.TableEvents, true)
	if err != nil {
		return nil, err
	}
	s.events = ev.tbl
	if err := checkEventsSchema(ev.tbl.Schema()); err != nil {
		return nil, fmt.Errorf("table %s: %w", data.TableEvents, err)
	}
	if ev.snap == nil {
		return nil, fmt.Errorf("%w: table %s has no snapshot (no data)", data.ErrNotMEDS, data.TableEvents)
	}
	for _, name := range []string{data.TableSubjectSplits, data.TableCodes} {
		pt, err := loadTable(ctx, cat, r, name, false)
		if err != nil {
			return nil, err
		}
		if pt != nil {
			if err := checkMetaSchema(name, pt.tbl.Schema()); err != nil {
				return nil, fmt.Errorf("table %s: %w", name, err)
			}
			s.meta[name] = pt
		}
	}
	if err := s.planShards(ctx, ev.snap, opt.maxShardRows()); err != nil {
		return nil, err
	}
	s.fingerprint = fingerprint(s.datasetJSON, ev, s.meta)
	return s, nil
}

func (o Options) maxShardRows() int64 {
	if o.MaxShardRows > 0 {
		return o.MaxShardRows
	}
	return DefaultMaxShardRows
}

// loadNamespace checks that the namespace exists and returns its properties.
func loadNamespace(ctx context.Context, cat catalog.Catalog, r Ref) (iceberg.Properties, error) {
	props, err := cat.LoadNamespaceProperties(ctx, r.Namespace)
	if errors.Is(err, catalog.ErrNoSuchNamespace) {
		return nil, fmt.Errorf("%w: catalog %s has no namespace %s", data.ErrNotMEDS, r.Catalog,
			strings.Join(r.Namespace, "."))
	}
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", strings.Join(r.Namespace, "."), err)
	}
	return props, nil
}

// loadTable loads table name of the namespace and its current snapshot; a missing table is an
// error when required, else (nil, nil).
func loadTable(ctx context.Context, cat catalog.Catalog, r Ref, name string, required bool) (*pinnedTable, error) {
	ident := append(append(table.Identifier{}, r.Namespace...), name)
	tbl, err := cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		if !required {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: catalog %s has no table %s", data.ErrNotMEDS, r.Catalog, strings.Join(ident, "."))
	}
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", strings.Join(ident, "."), err)
	}
	return &pinnedTable{tbl: tbl, snap: tbl.CurrentSnapshot()}, nil
}

// fingerprint identifies what the source reads: each table's UUID and the snapshot read, and
// the dataset's dataset.json.
func fingerprint(datasetJSON []byte, ev *pinnedTable, meta map[string]*pinnedTable) string {
	h := sha256.New()
	fmt.Fprintf(h, "medseq iceberg dataset v1\n")
	add := func(name string, pt *pinnedTable) {
		switch {
		case pt == nil:
			fmt.Fprintf(h, "%s absent\n", name)
		case pt.snap == nil:
			fmt.Fprintf(h, "%s %s no-snapshot\n", name, pt.tbl.Metadata().TableUUID())
		default:
			fmt.Fprintf(h, "%s %s %d\n", name, pt.tbl.Metadata().TableUUID(), pt.snap.SnapshotID)
		}
	}
	add(data.TableEvents, ev)
	add(data.TableSubjectSplits, meta[data.TableSubjectSplits])
	add(data.TableCodes, meta[data.TableCodes])
	fmt.Fprintf(h, "dataset.json %d\n", len(datasetJSON))
	h.Write(datasetJSON)
	return hex.EncodeToString(h.Sum(nil))
}

// Ref is the dataset's reference.
func (s *Source) Ref() Ref { return s.ref }

// Shards lists the shard names (see shards.go).
func (s *Source) Shards() []string { return append([]string(nil), s.shards...) }

// ShardSplit is "": an Iceberg dataset's splits are in its subject_splits table.
func (s *Source) ShardSplit(string) string { return "" }

// DatasetJSON is the dataset.json the namespace holds, or nil.
func (s *Source) DatasetJSON() []byte { return s.datasetJSON }

// Fingerprint identifies the tables and snapshots read.
func (s *Source) Fingerprint() string { return s.fingerprint }

// Close releases the catalog.
func (s *Source) Close() error { return CloseCatalog(s.cat) }

// ScanShard streams the MEDS columns of one shard's data files.
func (s *Source) ScanShard(ctx context.Context, shard string, fn func(arrow.RecordBatch) error) error {
	tasks, ok := s.tasks[shard]
	if !ok {
		return fmt.Errorf("%s: no such shard of %s", shard, s.ref)
	}
	_, itr, err := s.scan.ReadTasks(ctx, tasks)
	if err != nil {
		return fmt.Errorf("read %s: %w", shard, err)
	}
	return drain(shard, itr, fn)
}

// drain calls fn with each batch of itr, releasing each, and stops at the first error.
func drain(what string, itr func(func(arrow.RecordBatch, error) bool), fn func(arrow.RecordBatch) error) error {
	var ferr error
	itr(func(rec arrow.RecordBatch, err error) bool {
		if err != nil {
			ferr = fmt.Errorf("read %s: %w", what, err)
			return false
		}
		defer rec.Release()
		if err := fn(rec); err != nil {
			ferr = err
			return false
		}
		return true
	})
	return ferr
}

// ScanTable streams a metadata table (subject_splits or codes) at the snapshot pinned.
func (s *Source) ScanTable(ctx context.Context, name string, fn func(arrow.RecordBatch) error) (bool, error) {
	pt := s.meta[name]
	if pt == nil {
		return false, nil
	}
	if pt.snap == nil {
		return true, nil // created, never written: empty
	}
	scan := pt.tbl.Scan(table.WithSnapshotID(pt.snap.SnapshotID))
	_, itr, err := scan.ToArrowRecords(ctx)
	if err != nil {
		return true, fmt.Errorf("read %s table %s: %w", s.ref, name, err)
	}
	return true, drain(s.ref.String()+" table "+name, itr, fn)
}
