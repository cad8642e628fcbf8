package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/medseq/medseq/data"
)

func runDataInfo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "data info", "--meds DIR [--top N]")
	meds := fs.String("meds", "", "MEDS dataset folder")
	top := fs.Int("top", 10, "show the N most frequent codes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required("meds", *meds); err != nil {
		return err
	}
	ds, err := data.Open(*meds)
	if err != nil {
		return err
	}
	start := time.Now()
	var subjects, rows, static, withValue int
	var minT, maxT int64 = 1<<63 - 1, data.StaticTime
	counts := []int{}
	err = ds.ForEachSubject(ctx, func(s data.Subject) error {
		subjects++
		for _, ev := range s.Events {
			rows++
			for int(ev.Code) >= len(counts) {
				counts = append(counts, 0)
			}
			counts[ev.Code]++
			if ev.IsStatic() {
				static++
				continue
			}
			minT, maxT = min(minT, ev.Time), max(maxT, ev.Time)
			if ev.HasValue() {
				withValue++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(e.stdout, "dataset %s\n  shards %d, subjects %d, rows %d (%d static, %d with a value), codes %d\n",
		*meds, len(ds.Shards), subjects, rows, static, withValue, ds.Codes.Len())
	if maxT != data.StaticTime {
		fmt.Fprintf(e.stdout, "  time span %s .. %s\n", data.TimeOf(minT).Format("2006-01-02"), data.TimeOf(maxT).Format("2006-01-02"))
	}
	fmt.Fprintf(e.stdout, "  read in %.2fs (%.1fM rows/s)\n", el.Seconds(), float64(rows)/el.Seconds()/1e6)
	if splits, err := ds.SubjectSplits(); err == nil && len(splits) > 0 {
		n := map[string]int{}
		for _, s := range splits {
			n[s]++
		}
		fmt.Fprintf(e.stdout, "  subject_splits: train %d, tuning %d, held_out %d\n", n[data.SplitTrain], n[data.SplitTuning], n[data.SplitHeldOut])
	}
	ids := make([]int, len(counts))
	for i := range ids {
		ids[i] = i
	}
	sort.Slice(ids, func(a, b int) bool { return counts[ids[a]] > counts[ids[b]] })
	if *top > 0 {
		fmt.Fprintf(e.stdout, "  top codes:\n")
		for _, id := range ids[:min(*top, len(ids))] {
			fmt.Fprintf(e.stdout, "    %8d  %s\n", counts[id], ds.Codes.Name(int32(id)))
		}
	}
	return nil
}
