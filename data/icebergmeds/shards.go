package icebergmeds

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/medseq/medseq/data"
)

// ErrSplitSubject is wrapped when a table's data files cannot be grouped into shards that
// each hold whole subjects.
var ErrSplitSubject = errors.New("subject split across data files")

// checkEventsSchema checks the MEDS columns of the events table.
func checkEventsSchema(sc *iceberg.Schema) error {
	checks := []struct {
		col      string
		required bool
		ok       func(iceberg.Type) bool
		want     string
	}{
		{data.ColSubjectID, true, isInteger, "long"},
		{data.ColTime, true, isTime, "timestamp"},
		{data.ColCode, true, isString, "string"},
		{data.ColNumericValue, false, isFloat, "float"},
	}
	for _, c := range checks {
		f, ok := sc.FindFieldByName(c.col)
		if !ok {
			if c.required {
				return fmt.Errorf("%w: no column %s", data.ErrNotMEDS, c.col)
			}
			continue
		}
		if !c.ok(f.Type) {
			return fmt.Errorf("%w: column %s has type %s, want %s", data.ErrNotMEDS, c.col, f.Type, c.want)
		}
	}
	return nil
}

// checkMetaSchema checks the columns medseq reads of subject_splits and codes.
func checkMetaSchema(name string, sc *iceberg.Schema) error {
	type col struct {
		name string
		ok   func(iceberg.Type) bool
		want string
	}
	var cols []col
	switch name {
	case data.TableSubjectSplits:
		cols = []col{{data.ColSubjectID, isInteger, "long"}, {"split", isString, "string"}}
	case data.TableCodes:
		cols = []col{{"code", isString, "string"}}
	}
	for _, c := range cols {
		f, ok := sc.FindFieldByName(c.name)
		if !ok {
			return fmt.Errorf("no column %s", c.name)
		}
		if !c.ok(f.Type) {
			return fmt.Errorf("column %s has type %s, want %s", c.name, f.Type, c.want)
		}
	}
	return nil
}

func isInteger(t iceberg.Type) bool {
	switch t.(type) {
	case iceberg.Int64Type, iceberg.Int32Type:
		return true
	}
	return false
}

func isTime(t iceberg.Type) bool {
	switch t.(type) {
	case iceberg.TimestampType, iceberg.TimestampTzType, iceberg.TimestampNsType, iceberg.TimestampTzNsType,
		iceberg.DateType:
		return true
	}
	return false
}

func isString(t iceberg.Type) bool {
	_, ok := t.(iceberg.StringType)
	return ok
}

func isFloat(t iceberg.Type) bool {
	switch t.(type) {
	case iceberg.Float32Type, iceberg.Float64Type:
		return true
	}
	return false
}

// planShards plans the events table's files at snap and groups them into shards that each hold
// whole subjects: by the bucket of subject_id when every file was written under one
// bucket(N, subject_id) partition, else by overlapping subject_id ranges (bounds from the
// manifests), refusing a group of more than maxRows rows.
func (s *Source) planShards(ctx context.Context, snap *table.Snapshot, maxRows int64) error {
	cols := []string{data.ColSubjectID, data.ColTime, data.ColCode}
	if _, ok := s.events.Schema().FindFieldByName(data.ColNumericValue); ok {
		cols = append(cols, data.ColNumericValue)
	}
	s.scan = s.events.Scan(table.WithSnapshotID(snap.SnapshotID), table.WithSelectedFields(cols...),
		table.WithArrowBatchSize(1<<16))
	tasks, err := s.scan.PlanFiles(ctx)
	if err != nil {
		return fmt.Errorf("plan table %s: %w", data.TableEvents, err)
	}
	if len(tasks) == 0 {
		return fmt.Errorf("%w: table %s has no data files", data.ErrNotMEDS, data.TableEvents)
	}
	idField, _ := s.events.Schema().FindFieldByName(data.ColSubjectID)
	var groups [][]table.FileScanTask
	var names []string
	if fieldID, n, ok := subjectBucket(s.events.Metadata(), tasks, idField.ID); ok {
		groups, names = byBucket(tasks, fieldID, n)
	} else if groups, names, err = byRange(tasks, idField, maxRows); err != nil {
		return err
	}
	s.tasks = map[string][]table.FileScanTask{}
	prefix := s.ref.String() + "/" + data.TableEvents + "/"
	for i, g := range groups {
		name := prefix + names[i]
		s.shards = append(s.shards, name)
		s.tasks[name] = g
	}
	return nil
}

// subjectBucket reports whether every task's file was written under a spec with one
// bucket(N, subject_id) field of the same N, and returns that field's id and N.
func subjectBucket(md table.Metadata, tasks []table.FileScanTask, idFieldID int) (fieldID, n int, ok bool) {
	fieldID, n = -1, -1
	for _, t := range tasks {
		spec := md.PartitionSpecByID(int(t.File.SpecID()))
		if spec == nil {
			return 0, 0, false
		}
		found := false
		for _, f := range spec.FieldsBySourceID(idFieldID) {
			b, isBucket := f.Transform.(iceberg.BucketTransform)
			if !isBucket {
				continue
			}
			if (fieldID >= 0 && f.FieldID != fieldID) || (n >= 0 && b.NumBuckets != n) {
				return 0, 0, false
			}
			fieldID, n, found = f.FieldID, b.NumBuckets, true
		}
		if !found {
			return 0, 0, false
		}
		if _, has := t.File.Partition()[fieldID]; !has {
			return 0, 0, false
		}
	}
	return fieldID, n, true
}

// byBucket groups tasks by their subject_id bucket, in bucket order; within a bucket, files
// keep the order they were planned in.
func byBucket(tasks []table.FileScanTask, fieldID, n int) ([][]table.FileScanTask, []string) {
	byValue := map[int64][]table.FileScanTask{}
	for _, t := range tasks {
		v := toInt64(t.File.Partition()[fieldID])
		byValue[v] = append(byValue[v], t)
	}
	values := make([]int64, 0, len(byValue))
	for v := range byValue {
		values = append(values, v)
	}
	sort.Slice(values, func(a, b int) bool { return values[a] < values[b] })
	groups := make([][]table.FileScanTask, len(values))
	names := make([]string, len(values))
	for i, v := range values {
		groups[i] = byValue[v]
		names[i] = fmt.Sprintf("bucket=%d-of-%d", v, n)
	}
	return groups, names
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int64:
		return x
	case int:
		return int64(x)
	}
	return -1
}

// fileRange is a data file's subject_id bounds from its manifest entry.
type fileRange struct {
	task   table.FileScanTask
	lo, hi int64
}

// byRange groups data files whose subject_id ranges overlap, so that a subject split across
// files is read as one shard; a group of more than maxRows rows is refused.
func byRange(tasks []table.FileScanTask, idField iceberg.NestedField, maxRows int64) ([][]table.FileScanTask,
	[]string, error) {
	ranges := make([]fileRange, 0, len(tasks))
	for _, t := range tasks {
		lo, okLo := decodeBound(t.File.LowerBoundValues()[idField.ID], idField.Type)
		hi, okHi := decodeBound(t.File.UpperBoundValues()[idField.ID], idField.Type)
		if !okLo || !okHi {
			return nil, nil, fmt.Errorf("%w: data file %s records no subject_id bounds and the table is not "+
				"partitioned by bucket(N, subject_id), so whether it splits a subject cannot be known; rewrite "+
				"the table bucketed by subject_id (medseq data export does)", ErrSplitSubject, t.File.FilePath())
		}
		ranges = append(ranges, fileRange{t, lo, hi})
	}
	sort.SliceStable(ranges, func(a, b int) bool { return ranges[a].lo < ranges[b].lo })
	var groups [][]table.FileScanTask
	var names []string
	for i := 0; i < len(ranges); {
		j, hi, rows := i+1, ranges[i].hi, ranges[i].task.File.Count()
		for j < len(ranges) && ranges[j].lo <= hi {
			hi = max(hi, ranges[j].hi)
			rows += ranges[j].task.File.Count()
			j++
		}
		if rows > maxRows {
			return nil, nil, fmt.Errorf("%w: data files %s and %d more hold subject_ids %d to %d in overlapping "+
				"ranges, %d rows together, more than the %d one shard may read; rewrite the table partitioned by "+
				"bucket(N, subject_id) (medseq data export does)", ErrSplitSubject, path.Base(ranges[i].task.File.FilePath()),
				j-i-1, ranges[i].lo, hi, rows, maxRows)
		}
		g := make([]table.FileScanTask, 0, j-i)
		for _, r := range ranges[i:j] {
			g = append(g, r.task)
		}
		groups = append(groups, g)
		names = append(names, fmt.Sprintf("subjects=%d-%d", ranges[i].lo, hi))
		i = j
	}
	return groups, names, nil
}

// decodeBound decodes an Iceberg single-value serialisation of an int or long bound.
func decodeBound(b []byte, t iceberg.Type) (int64, bool) {
	switch t.(type) {
	case iceberg.Int64Type:
		if len(b) == 8 {
			return int64(binary.LittleEndian.Uint64(b)), true
		}
	case iceberg.Int32Type:
		if len(b) == 4 {
			return int64(int32(binary.LittleEndian.Uint32(b))), true
		}
	}
	return 0, false
}
