package data

import (
	"context"
	"sort"
	"time"
)

// DatasetDescription is what a dataset holds, as `medseq data info` prints it.
type DatasetDescription struct {
	Shards, Subjects     int
	Rows, Static, Valued int            // rows; static rows; timed rows with a numeric value
	FirstTime, LastTime  int64          // of the timed rows; LastTime is StaticTime when there is none
	Splits               map[string]int // subjects per split of metadata/subject_splits.parquet; nil without one
	Codes                []CodeCount    // every code that occurs, most frequent first (ties in code-table order)
	Elapsed              time.Duration  // reading the rows took
}

// CodeCount is a code and the rows that carry it.
type CodeCount struct {
	Code string
	Rows int
}

// Describe reads every row of ds and counts what it holds.
func Describe(ctx context.Context, ds *Dataset) (*DatasetDescription, error) {
	start := time.Now()
	d := &DatasetDescription{Shards: len(ds.Shards), FirstTime: 1<<63 - 1, LastTime: StaticTime}
	var counts []int
	err := ds.ForEachSubject(ctx, func(s Subject) error {
		d.Subjects++
		for _, ev := range s.Events {
			d.Rows++
			for int(ev.Code) >= len(counts) {
				counts = append(counts, 0)
			}
			counts[ev.Code]++
			if ev.IsStatic() {
				d.Static++
				continue
			}
			d.FirstTime, d.LastTime = min(d.FirstTime, ev.Time), max(d.LastTime, ev.Time)
			if ev.HasValue() {
				d.Valued++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.Elapsed = time.Since(start)
	if splits, err := ds.SubjectSplits(); err == nil && len(splits) > 0 {
		d.Splits = map[string]int{}
		for _, s := range splits {
			d.Splits[s]++
		}
	}
	for id, n := range counts {
		if n > 0 {
			d.Codes = append(d.Codes, CodeCount{Code: ds.Codes.Name(int32(id)), Rows: n})
		}
	}
	sort.SliceStable(d.Codes, func(a, b int) bool { return d.Codes[a].Rows > d.Codes[b].Rows })
	return d, nil
}
