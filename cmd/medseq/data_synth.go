package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medseq/medseq/data/synth"
)

// runDataSynth writes the built-in synthetic primary-care dataset (see package data/synth).
func runDataSynth(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "data synth", "--out DIR [--subjects N] [--seed S] [--code-style plain|etl]")
	out := fs.String("out", "", "output dataset folder (required)")
	subjects := fs.Int("subjects", synth.DefaultSubjects, "number of subjects")
	seed := fs.Int64("seed", 1, "random seed: the same seed writes the same data")
	force := fs.Bool("force", false, "replace an existing non-empty output folder")
	style := fs.String("code-style", synth.CodeStylePlain, "how codes are spelt: plain (SNOMED/<id>, ICD10/E11.9, "+
		"ATC/..., LOINC/...) or etl (as MEDS ETLs spell MIMIC-IV: DIAGNOSIS//ICD 10//E11.9, codes with spaces, units, "+
		"non-ASCII letters; see synth.ETLCode)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
	}
	if *subjects < 1 {
		return usagef("--subjects must be at least 1, got %d", *subjects)
	}
	if !slices.Contains(synth.CodeStyles, *style) {
		return usagef("--code-style must be one of %s, got %q", strings.Join(synth.CodeStyles, ", "), *style)
	}
	s, err := synth.Generate(ctx, synth.Config{Out: *out, Subjects: *subjects, Seed: *seed, Force: *force,
		Logger: e.log, CodeStyle: *style})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: %d subjects, %d events, %d distinct codes, %d with a T2D diagnosis in their record "+
		"(%.1f%%), %.1fs (%.2fM events/s)\n",
		s.Out, s.Subjects, s.Events, s.DistinctCodes, s.Diagnosed, 100*float64(s.Diagnosed)/float64(s.Subjects),
		s.Elapsed.Seconds(), s.EventsPerSecond/1e6)
	if *style == synth.CodeStyleETL {
		t := make([]string, len(synth.OracleTargets))
		for i, c := range synth.OracleTargets {
			t[i] = synth.ETLCode(c)
		}
		fmt.Fprintf(e.stdout, "codes spelt as MEDS ETLs spell them; the oracle's outcome is --target %q\n",
			strings.Join(t, ","))
	}
	fmt.Fprintf(e.stdout, "oracle (true onset, diagnosis and hazard per subject): %s\n", filepath.Join(s.Out,
		synth.OracleDir))
	return nil
}
