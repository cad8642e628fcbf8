package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/medseq/medseq/data"
)

// runDataSequences prints the censored sequences a model sees for a cohort: what every later
// stage reads, for checking by eye or piping into other tools.
func runDataSequences(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "data sequences", "--meds DIR --cohort DIR [--split S] [--limit N] [--allow-mismatch]")
	meds := fs.String("meds", "", "MEDS dataset folder the cohort was built from")
	cohort := fs.String("cohort", "", "cohort folder (from medseq data cohort)")
	var splits []string
	listVar(fs, &splits, "split", nil, "only these splits (train,tuning,held_out); default all")
	limit := fs.Int("limit", 0, "print the first N sequences as 'subject label codes...' (0: statistics only)")
	allow := fs.Bool("allow-mismatch", false, "read even if the dataset is not the one the cohort was built from")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required("meds", *meds, "cohort", *cohort); err != nil {
		return err
	}
	in, err := data.OpenCohort(*meds, *cohort, *allow)
	if err != nil {
		return err
	}
	if in.Mismatch != nil {
		e.log.Warn("reading a dataset the cohort was not built from", "cohort_run", in.Cohort.Manifest.RunID)
	}
	ds := in.Dataset
	lengths := map[bool][]float64{}
	printed := 0
	err = in.Cohort.Sequences(ctx, ds, splits, func(s data.Sequence) error {
		lengths[s.Label.Value] = append(lengths[s.Label.Value], float64(len(s.Events)))
		if printed < *limit {
			printed++
			var b strings.Builder
			fmt.Fprintf(&b, "%d\t%v\t", s.Label.SubjectID, s.Label.Value)
			for i, ev := range s.Events {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(ds.Codes.Name(ev.Code))
			}
			fmt.Fprintln(e.stdout, b.String())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, v := range []bool{true, false} {
		s := data.Summarise(lengths[v])
		fmt.Fprintf(e.stdout, "%-8s sequences %6d  events per sequence: median %.0f, mean %.1f, p25 %.0f, p75 %.0f, max "+
			"%.0f\n",
			map[bool]string{true: "positive", false: "negative"}[v], s.N, s.Median, s.Mean, s.P25, s.P75, s.Max)
	}
	return nil
}
