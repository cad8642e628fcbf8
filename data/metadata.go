package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// readMetadataTable reads the dataset's metadata table (TableSubjectSplits or TableCodes)
// from its source, or the Parquet file rel below its folder; found is false when there is none.
func (d *Dataset) readMetadataTable(table, rel string, fn func(rec arrow.RecordBatch) error) (bool, error) {
	if d.src != nil {
		return d.scanSourceTable(table, fn)
	}
	p := filepath.Join(d.Root, rel)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return true, ReadTable(p, fn)
}

// metadataName names a metadata table in messages: its file, or its table in the source.
func (d *Dataset) metadataName(table, rel string) string {
	if d.src != nil {
		return d.Root + " table " + table
	}
	return filepath.Join(d.Root, rel)
}

// ReadTable reads a whole (small) Parquet file and calls fn with each
// batch. Metadata files are small, so reading them whole is fine.
func ReadTable(path string, fn func(rec arrow.RecordBatch) error) error {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer rr.Release()
	for rr.Next() {
		if err := fn(rr.RecordBatch()); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

func stringAt(a arrow.Array, i int) (string, bool) {
	if a == nil || a.IsNull(i) {
		return "", false
	}
	switch c := a.(type) {
	case *array.String:
		return c.Value(i), true
	case *array.LargeString:
		return c.Value(i), true
	case *array.Dictionary:
		b, err := binaryAt(c.Dictionary(), c.GetValueIndex(i))
		return string(b), err == nil
	case *array.Binary:
		return string(c.Value(i)), true
	case *array.LargeBinary:
		return string(c.Value(i)), true
	}
	return "", false
}

func fieldByName(rec arrow.RecordBatch, name string) arrow.Array {
	if idx := rec.Schema().FieldIndices(name); len(idx) > 0 {
		return rec.Column(idx[0])
	}
	return nil
}

// SubjectSplits reads metadata/subject_splits.parquet. It returns (nil, nil) when the
// dataset has none.
func (d *Dataset) SubjectSplits() (map[int64]string, error) {
	out := map[int64]string{}
	p := d.metadataName(TableSubjectSplits, SubjectSplitsFile)
	found, err := d.readMetadataTable(TableSubjectSplits, SubjectSplitsFile, func(rec arrow.RecordBatch) error {
		idc, sc := fieldByName(rec, ColSubjectID), fieldByName(rec, "split")
		if idc == nil || sc == nil {
			return fmt.Errorf("read %s: want columns subject_id and split", p)
		}
		ids := make([]int64, idc.Len())
		if err := readIDs(p, idc, ids, 0); err != nil {
			return err
		}
		for i, id := range ids {
			s, ok := stringAt(sc, i)
			if !ok {
				return fmt.Errorf("read %s: column split: null or non-string at row %d", p, i+1)
			}
			out[id] = s
		}
		return nil
	})
	if !found && err == nil {
		return nil, nil
	}
	return out, err
}

// CodeMetadata reads metadata/codes.parquet. It returns (nil, nil) when the dataset has none.
func (d *Dataset) CodeMetadata() ([]CodeMeta, error) {
	var out []CodeMeta
	p := d.metadataName(TableCodes, CodesFile)
	_, err := d.readMetadataTable(TableCodes, CodesFile, func(rec arrow.RecordBatch) error {
		cc, dc, pc := fieldByName(rec, "code"), fieldByName(rec, "description"), fieldByName(rec, "parent_codes")
		if cc == nil {
			return fmt.Errorf("read %s: missing column code", p)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			code, ok := stringAt(cc, i)
			if !ok {
				continue
			}
			m := CodeMeta{Code: code}
			m.Description, _ = stringAt(dc, i)
			if l, ok := pc.(*array.List); ok && !l.IsNull(i) {
				start, end := l.ValueOffsets(i)
				for j := start; j < end; j++ {
					if s, ok := stringAt(l.ListValues(), int(j)); ok {
						m.ParentCodes = append(m.ParentCodes, s)
					}
				}
			} else if l, ok := pc.(*array.LargeList); ok && !l.IsNull(i) {
				start, end := l.ValueOffsets(i)
				for j := start; j < end; j++ {
					if s, ok := stringAt(l.ListValues(), int(j)); ok {
						m.ParentCodes = append(m.ParentCodes, s)
					}
				}
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}
