package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/medseq/medseq/data"
)

// runDataImport reads an events and a subjects CSV file and writes a MEDS dataset.
func runDataImport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "data import", "--events FILE --subjects FILE --out DIR")
	var cfg data.ImportConfig
	fs.StringVar(&cfg.EventsPath, "events", "", "events CSV (.csv or .csv.gz): subject_id, time or date, code, optional "+
		"value or numeric_value")
	fs.StringVar(&cfg.SubjectsPath, "subjects", "", "subjects CSV (.csv or .csv.gz): subject_id, birth_date, sex, "+
		"optional death_date and split")
	fs.StringVar(&cfg.Out, "out", "", "the MEDS dataset folder to write")
	fs.BoolVar(&cfg.Force, "force", false, "replace an existing non-empty output folder")
	fs.StringVar(&cfg.TimeLayout, "time-layout", "", "a Go time layout (e.g. 02/01/2006) tried before the built-in ISO "+
		"formats")
	fs.IntVar(&cfg.MemoryEvents, "memory-events", data.DefaultImportMemoryEvents, "events held in memory (16 bytes each) "+
		"before they are spilled to disk beside the output and merged back")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.MemoryEvents < 1 {
		return usagef("flag --memory-events: must be at least 1, got %d", cfg.MemoryEvents)
	}
	for _, f := range []struct{ name, v string }{{"events", cfg.EventsPath}, {"subjects", cfg.SubjectsPath}, {"out",
		cfg.Out}} {
		if f.v == "" {
			return usagef("missing --%s", f.name)
		}
	}
	sum, err := data.ImportCSV(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "subjects: %d\n", sum.Subjects)
	fmt.Fprintf(e.stdout, "events:   %d (%d rows from %s, %d of them static; plus birth, death and sex rows)\n",
		sum.Events, sum.CSVEvents, cfg.EventsPath, sum.Static)
	fmt.Fprintf(e.stdout, "codes:    %d\n", sum.Codes)
	if sum.SpillRuns > 0 {
		fmt.Fprintf(e.stdout, "spilled:  %d events in %d runs on disk (--memory-events %d), "+
			"merged back\n", sum.Spilled, sum.SpillRuns, cfg.MemoryEvents)
	}
	if n, ok := sum.Splits[""]; ok && len(sum.Splits) == 1 {
		fmt.Fprintf(e.stdout, "splits:   none (%d subjects without a split)\n", n)
	} else {
		var parts []string
		for _, s := range []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut} {
			parts = append(parts, fmt.Sprintf("%s %d", s, sum.Splits[s]))
		}
		fmt.Fprintf(e.stdout, "splits:   %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(e.stdout, "output:   %s (run %s)\n", sum.Out, sum.RunID)
	return nil
}
