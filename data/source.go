package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// A Source is a MEDS dataset kept somewhere other than a folder of Parquet files: the tables
// of a catalog (package data/iceberg). Open and Fingerprint hand a dataset reference of the
// form SCHEME:REST to the source registered for SCHEME, so every command that takes --meds
// reads either kind the same way.
//
// A source names its shards; each holds whole subjects (every event of a subject is in one
// shard), which the source checks or arranges when it is opened. Reading streams Arrow record
// batches with the MEDS columns (subject_id, time, code and optionally numeric_value), one
// shard at a time; Dataset.ReadShard converts them exactly as it converts a Parquet file's.
type Source interface {
	// Shards lists the shard names, in the order they are read.
	Shards() []string
	// ShardSplit is the split a shard's name implies, or "".
	ShardSplit(shard string) string
	// ScanShard calls fn with each record batch of a shard; fn must not keep the batch.
	ScanShard(ctx context.Context, shard string, fn func(arrow.RecordBatch) error) error
	// ScanTable calls fn with each record batch of a metadata table (TableSubjectSplits or
	// TableCodes); found is false, with no error, when the dataset has no such table.
	ScanTable(ctx context.Context, table string, fn func(arrow.RecordBatch) error) (found bool, err error)
	// DatasetJSON is the content of the dataset's metadata/dataset.json, or nil.
	DatasetJSON() []byte
	// Fingerprint identifies the content the source reads (for a table format: the tables'
	// ids and the snapshots read), as data.Fingerprint does a folder's.
	Fingerprint() string
}

// Names of a MEDS dataset's metadata tables in a Source.
const (
	TableEvents        = "events"
	TableSubjectSplits = "subject_splits"
	TableCodes         = "codes"
)

// SourceOpener opens the dataset named by ref (the whole reference, scheme included).
type SourceOpener func(ctx context.Context, ref string) (Source, error)

// ErrNoSource is returned for a dataset reference whose scheme this binary cannot open.
var ErrNoSource = errors.New("no such dataset source")

// sourceRegistry maps a reference's scheme to the opener of its datasets. sources is the
// package's one deliberate global, as database/sql's drivers are: it lets the binary link a
// table format's (large) client in and leaves this package and every caller of Open free of it.
type sourceRegistry struct {
	mu      sync.RWMutex
	openers map[string]SourceOpener
}

var sources = &sourceRegistry{openers: map[string]SourceOpener{}}

// knownSchemes are schemes medseq knows of, whether or not this binary links them, so that a
// binary without one says how to get it instead of looking for a folder of that name.
var knownSchemes = map[string]string{
	"iceberg": "build medseq with -tags iceberg (make build does)",
}

// RegisterSource makes Open and Fingerprint hand references SCHEME:... to open. It panics if
// the scheme is registered twice (a programming error, as in database/sql.Register).
func RegisterSource(scheme string, open SourceOpener) {
	sources.mu.Lock()
	defer sources.mu.Unlock()
	if _, dup := sources.openers[scheme]; dup {
		panic("data: RegisterSource called twice for scheme " + scheme)
	}
	sources.openers[scheme] = open
}

// sourceScheme is the scheme of ref when it names a source (a known or registered scheme
// followed by a colon), else "".
func sourceScheme(ref string) string {
	scheme, _, ok := strings.Cut(ref, ":")
	if !ok || scheme == "" {
		return ""
	}
	sources.mu.RLock()
	_, registered := sources.openers[scheme]
	sources.mu.RUnlock()
	if _, known := knownSchemes[scheme]; registered || known {
		return scheme
	}
	return ""
}

// IsSourceRef reports whether ref names a dataset in a Source rather than a folder.
func IsSourceRef(ref string) bool { return sourceScheme(ref) != "" }

// openSource opens the source ref names.
func openSource(ctx context.Context, ref string) (Source, error) {
	scheme := sourceScheme(ref)
	sources.mu.RLock()
	open := sources.openers[scheme]
	sources.mu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("open %s: %w: this medseq was built without %s support; %s", ref, ErrNoSource,
			scheme, knownSchemes[scheme])
	}
	return open(ctx, ref)
}

// OpenSource opens a dataset held in a source (ref is SCHEME:...).
func OpenSource(ctx context.Context, ref string) (*Dataset, error) {
	src, err := openSource(ctx, ref)
	if err != nil {
		return nil, err
	}
	ds := &Dataset{Root: ref, Shards: src.Shards(), Codes: NewCodes(), BatchSize: 1 << 16, src: src}
	if buf := src.DatasetJSON(); buf != nil {
		if ds.Meta, err = parseDatasetJSON(buf); err != nil {
			return nil, fmt.Errorf("read %s dataset.json: %w", ref, err)
		}
	}
	return ds, nil
}

// parseDatasetJSON reads metadata/dataset.json, keeping the fields it does not know in Extra.
func parseDatasetJSON(buf []byte) (DatasetMetadata, error) {
	var m DatasetMetadata
	if err := json.Unmarshal(buf, &m); err != nil {
		return m, err
	}
	var all map[string]any
	if json.Unmarshal(buf, &all) == nil {
		for _, k := range []string{"dataset_name", "dataset_version", "etl_name", "etl_version", "meds_version",
			"created_at"} {
			delete(all, k)
		}
		if len(all) > 0 {
			m.Extra = all
		}
	}
	return m, nil
}

// Fingerprint identifies the dataset's content: that of its folder (data.Fingerprint), or
// the one its source gives for what it reads.
func (d *Dataset) Fingerprint() (string, error) {
	if d.src != nil {
		return d.src.Fingerprint(), nil
	}
	return Fingerprint(d.Root)
}

// readSourceShard reads one shard of a source and groups its rows by subject.
func (d *Dataset) readSourceShard(shard string) (*Shard, error) {
	var (
		ids []int64
		ev  []Event
	)
	tr := &codeTranslator{codes: d.Codes}
	defer tr.release()
	codes0 := d.Codes.Len()
	err := d.src.ScanShard(context.Background(), shard, func(rec arrow.RecordBatch) error {
		at, m := len(ids), int(rec.NumRows())
		if at+m > maxShardRows {
			return fmt.Errorf("read %s: more than %d rows in one shard", shard, maxShardRows)
		}
		ids = append(ids, make([]int64, m)...)
		ev = append(ev, make([]Event, m)...)
		return convertBatch(shard, rec, ids, ev, at, 0, tr)
	})
	if err != nil {
		return nil, err
	}
	if err := checkNewCodes(shard, d.Codes, codes0, ev, 0); err != nil {
		return nil, err
	}
	return groupSubjects(shard, ids, ev, order{}), nil
}

// maxShardRows bounds the rows of one shard of a source (a Parquet shard's are bounded by its
// row groups' int32 counts).
const maxShardRows = 1 << 31

// scanSourceTable reads a metadata table of the dataset's source, as ReadTable does a file;
// found is false when the source has no such table.
func (d *Dataset) scanSourceTable(table string, fn func(rec arrow.RecordBatch) error) (bool, error) {
	return d.src.ScanTable(context.Background(), table, fn)
}
