package main

import (
	"context"
	"fmt"
	"io"

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
	d, err := data.Describe(ctx, ds)
	if err != nil {
		return err
	}
	printDataInfo(e.stdout, *meds, ds.Codes.Len(), d, *top)
	return nil
}

// printDataInfo prints what a dataset holds: its size, time span, read speed, splits and the
// top most frequent codes.
func printDataInfo(w io.Writer, meds string, codes int, d *data.DatasetDescription, top int) {
	fmt.Fprintf(w, "dataset %s\n  shards %d, subjects %d, rows %d (%d static, %d with a value), codes %d\n",
		meds, d.Shards, d.Subjects, d.Rows, d.Static, d.Valued, codes)
	if d.LastTime != data.StaticTime {
		fmt.Fprintf(w, "  time span %s .. "+
			"%s\n", data.TimeOf(d.FirstTime).Format("2006-01-02"), data.TimeOf(d.LastTime).Format("2006-01-02"))
	}
	el := d.Elapsed.Seconds()
	fmt.Fprintf(w, "  read in %.2fs (%.1fM rows/s)\n", el, float64(d.Rows)/el/1e6)
	if d.Splits != nil {
		fmt.Fprintf(w, "  subject_splits: train %d, tuning %d, held_out %d\n",
			d.Splits[data.SplitTrain], d.Splits[data.SplitTuning], d.Splits[data.SplitHeldOut])
	}
	if top > 0 {
		fmt.Fprintf(w, "  top codes:\n")
		for _, c := range d.Codes[:min(top, len(d.Codes))] {
			fmt.Fprintf(w, "    %8d  %s\n", c.Rows, c.Code)
		}
	}
}
