package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/medseq/medseq/data"
)

// targetOnlyFlags are data cohort's flags that make labels from --target: with --labels the
// label file gives the prediction times and the outcomes, so none of them applies. --target
// does: with --labels it times each label's event (data.BuildLabelCohort).
var targetOnlyFlags = []string{"lead", "min-history", "min-events", "min-age", "follow-up",
	"negatives", "negatives-per-positive", "band-years"}

// labelsFlagsOnly refuses, with --labels, the flags that only build labels from --target.
func labelsFlagsOnly(fs *flag.FlagSet) error {
	var bad []string
	fs.Visit(func(f *flag.Flag) {
		for _, n := range targetOnlyFlags {
			if f.Name == n {
				bad = append(bad, "--"+n)
			}
		}
	})
	if len(bad) > 0 {
		return usagef("flag %s does not apply with --labels: the label file gives the prediction times and the "+
			"outcomes", strings.Join(bad, ", "))
	}
	return nil
}

// runLabelCohort is data cohort --labels: a cohort folder from an external MEDS label file
// (ACES, MEDS-DEV), with the same files as one built from --target, so every later stage reads
// it unchanged. No synth oracle is shown: a label file's task is not the oracle's outcome.
func runLabelCohort(ctx context.Context, e *env, o *cohortOptions) error {
	start := time.Now()
	ds, err := data.Open(o.meds)
	if err != nil {
		return err
	}
	lf, err := data.ReadLabelFiles(o.labels)
	if err != nil {
		return err
	}
	m := data.NewManifest(data.StageCohort, data.LabelCohortParams(o.cfg, o.labels))
	if _, err := m.AddInput(data.InputMEDS, o.meds); err != nil {
		return err
	}
	if _, err := m.AddInput(data.InputLabels, o.labels); err != nil {
		return err
	}
	e.log.Info("building cohort from labels", "shards", len(ds.Shards), "label_files", len(lf.Files),
		"label_rows", len(lf.Rows))
	res, err := data.BuildLabelCohort(ctx, ds, lf, o.cfg)
	if err != nil {
		return fmt.Errorf("cohort from %s and labels %s: %w", o.meds, o.labels, err)
	}
	if err := data.WriteCohort(o.out, o.force, res, m); err != nil {
		return err
	}
	e.log.Info("cohort written", "labels", len(res.Labels), "positives", res.Report.Positives,
		"seconds", time.Since(start).Seconds(), "run_id", m.RunID)
	r := res.Report
	printCohortSummary(e.stdout, r, o.out)
	files := fmt.Sprintf("%d files", len(r.LabelFiles))
	if len(r.LabelFiles) == 1 {
		files = r.LabelFiles[0]
	}
	fmt.Fprintf(e.stdout, "  label file         %s: %d rows, %d kept for %d subjects\n", files, r.LabelRows, r.Labels,
		r.LabelSubjects)
	if len(r.IgnoredColumns) > 0 {
		fmt.Fprintf(e.stdout, "  ignored columns    %s (medseq predicts boolean_value)\n",
			strings.Join(r.IgnoredColumns, ", "))
	}
	return nil
}
