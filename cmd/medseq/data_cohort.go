package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/medseq/medseq/data"
)

// cohortOptions are the flags of `medseq data cohort`.
type cohortOptions struct {
	meds, out string
	labels    string // --labels: an external MEDS label file or folder instead of --target
	force     bool
	split     string
	cfg       data.CohortConfig
}

func cohortFlags(e *env, args []string) (*cohortOptions, error) {
	fs := newFlags(e, "data cohort", "--meds DIR (--target PREFIX[,PREFIX...] | --labels FILE|DIR) --out DIR [flags]")
	o := &cohortOptions{cfg: data.DefaultCohortConfig()}
	c := &o.cfg
	fs.StringVar(&o.meds, "meds", "", "MEDS dataset folder (holding data/ and metadata/)")
	fs.StringVar(&o.out, "out", "", "output cohort folder (labels.parquet, cohort.parquet, cohort_report.json, "+
		"manifest.json)")
	fs.BoolVar(&o.force, "force", false, "replace an existing output folder")
	listVar(fs, &c.Targets, "target", nil, "code prefixes of the outcome, comma-separated (e.g. "+
		"ICD10/E11,SNOMED/44054006); "+
		"with --labels they only time each label's event")
	fs.StringVar(&o.labels, "labels", "", "instead of --target: a MEDS label file, or a folder of them (ACES, MEDS-DEV: "+
		"subject_id, prediction_time, boolean_value)")
	durationVar(fs, &c.Lead, "lead", c.Lead, "how long before the diagnosis the prediction is made")
	durationVar(fs, &c.Gap, "gap", c.Gap, "events in this window before the prediction time are hidden too")
	durationVar(fs, &c.MinHistory, "min-history", c.MinHistory, "records must start at least this long before the "+
		"prediction time")
	fs.IntVar(&c.MinEvents, "min-events", c.MinEvents, "at least this many visible timed events (distinct times)")
	durationVar(fs, &c.MinAge, "min-age", c.MinAge, "minimum age at prediction time")
	durationVar(fs, &c.FollowUp, "follow-up", c.FollowUp, "negatives must be observed this long after their prediction "+
		"time")
	durationVar(fs, &c.CensorWindow, "censor-window", c.CensorWindow,
		"a label censored this close to the dataset's end is censored at the dataset end, not lost to follow-up")
	fs.StringVar(&c.Negatives, "negatives", c.Negatives, "negatives' prediction times: matched-age or random-date "+
		"(naive, biased)")
	fs.Float64Var(&c.NegativesPerPositive, "negatives-per-positive", 0, "matched-age: negatives per positive in each "+
		"birth band (0: from the data)")
	fs.IntVar(&c.BandYears, "band-years", c.BandYears, "matched-age: width of the birth-year bands")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed for sampling and splits")
	fs.StringVar(&o.split, "split", "0.8,0.1,0.1", "train,tuning,held_out fractions for subjects without a dataset split")
	listVar(fs, &c.SexPrefixes, "sex-prefix", c.SexPrefixes, "code prefixes carrying sex (SEX//F, GENDER//M, ...)")
	listVar(fs, &c.BirthCodes, "birth-code", c.BirthCodes, "codes marking birth")
	listVar(fs, &c.DeathCodes, "death-code", c.DeathCodes, "codes marking death")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if err := required("meds", o.meds, "out", o.out); err != nil {
		return nil, err
	}
	if o.labels != "" {
		if err := labelsFlagsOnly(fs); err != nil {
			return nil, err
		}
	} else if len(c.Targets) == 0 {
		return nil, usagef("flag --target is required (code prefixes of the outcome), or --labels (a MEDS label file)")
	}
	if c.Negatives != data.NegativesMatchedAge && c.Negatives != data.NegativesRandomDate {
		return nil, usagef("flag --negatives: %q is not matched-age or random-date", c.Negatives)
	}
	if c.MinEvents < 0 {
		return nil, usagef("flag --min-events: must not be negative")
	}
	if c.NegativesPerPositive < 0 {
		return nil, usagef("flag --negatives-per-positive: must not be negative")
	}
	if c.BandYears <= 0 {
		return nil, usagef("flag --band-years: must be at least 1")
	}
	f, err := data.ParseSplitFractions(o.split)
	if err != nil {
		return nil, usagef("flag --split: %v", err)
	}
	c.Fractions = f
	return o, nil
}

func runDataCohort(ctx context.Context, e *env, args []string) error {
	o, err := cohortFlags(e, args)
	if err != nil {
		return err
	}
	if o.labels != "" {
		return runLabelCohort(ctx, e, o)
	}
	res, oracle, err := buildCohort(ctx, e, o)
	if err != nil {
		return err
	}
	printCohortSummary(e.stdout, res.Report, o.out)
	printOracle(e.stdout, oracle)
	return nil
}

// buildCohort reads the dataset, builds the cohort, scores it with the dataset's synth oracle
// when there is one for its targets, and writes it. Writing is the last step that can fail: a
// failure leaves no cohort behind (issue 14, D2).
func buildCohort(ctx context.Context, e *env, o *cohortOptions) (*data.CohortResult, oracleResult, error) {
	start := time.Now()
	ds, err := data.Open(o.meds)
	if err != nil {
		return nil, oracleResult{}, err
	}
	m := data.NewManifest(data.StageCohort, o.cfg.Params())
	if _, err := m.AddInput(data.InputMEDS, o.meds); err != nil {
		return nil, oracleResult{}, err
	}
	e.log.Info("building cohort", "shards", len(ds.Shards), "negatives", o.cfg.Negatives)
	res, err := data.BuildCohort(ctx, ds, o.cfg)
	if err != nil {
		return nil, oracleResult{}, fmt.Errorf("cohort from %s: %w", o.meds, err)
	}
	oracle, err := cohortOracle(o.meds, o.cfg.Targets, res.Labels, o.cfg.Lead)
	if err != nil {
		return nil, oracleResult{}, err
	}
	if err := data.WriteCohort(o.out, o.force, res, m); err != nil {
		return nil, oracleResult{}, err
	}
	e.log.Info("cohort written", "labels", len(res.Labels), "positives", res.Report.Positives,
		"seconds", time.Since(start).Seconds(), "run_id", m.RunID)
	return res, oracle, nil
}

func printCohortSummary(w io.Writer, r *data.CohortReport, out string) {
	fmt.Fprintf(w, "cohort %s (run %s)\n", out, r.RunID)
	fmt.Fprintf(w, "  subjects read      %d\n", r.Subjects)
	if d := cohortDurations(r.Params); d != "" {
		fmt.Fprintf(w, "  windows            %s\n", d)
	}
	fmt.Fprintf(w, "  labels             %d: %d positive, %d negative (prevalence %.1f%%)\n",
		r.Labels, r.Positives, r.Negatives, 100*r.Prevalence)
	if r.UnknownAge > 0 && r.UnknownAge == r.Labels {
		fmt.Fprintf(w, "  age at prediction  unknown: no subject has a birth code\n")
	} else {
		fmt.Fprintf(w, "  age at prediction  positives mean %.1f (median %.1f), negatives mean %.1f (median %.1f), KS "+
			"distance %.3f\n",
			r.AgeAtPrediction.PositiveSummary.Mean, r.AgeAtPrediction.PositiveSummary.Median,
			r.AgeAtPrediction.NegativeSummary.Mean, r.AgeAtPrediction.NegativeSummary.Median, r.AgeAtPrediction.KS)
	}
	methods := make([]string, 0, len(r.Sampling.Comparison))
	for m := range r.Sampling.Comparison {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	if r.Source == data.SamplingLabels {
		fmt.Fprintf(w, "  prediction times   and outcomes from the label file\n")
	} else {
		fmt.Fprintf(w, "  negative sampling  %s", r.Sampling.Method)
		if r.Sampling.NegativesPerPositive > 0 {
			fmt.Fprintf(w, " (%.0f per positive per birth band)", r.Sampling.NegativesPerPositive)
		}
		fmt.Fprintln(w)
	}
	for _, m := range methods {
		c := r.Sampling.Comparison[m]
		mark := " "
		if m == r.Sampling.Method {
			mark = "*"
		}
		fmt.Fprintf(w, "    %s %-12s negatives %6d  mean age %.1f vs "+
			"positives %.1f  KS %.3f\n", mark, m, c.Negatives, c.NegativeMeanAge, c.PositiveMeanAge, c.KS)
	}
	splits := []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut}
	var parts []string
	for _, s := range splits {
		c := r.Splits[s]
		parts = append(parts, fmt.Sprintf("%s %d+/%d-", s, c.Positives, c.Negatives))
	}
	fmt.Fprintf(w, "  splits             %s (%s)\n", strings.Join(parts, ", "), r.SplitSource)
	printTimeToEvent(w, r.TimeToEvent)
	for _, w0 := range r.Warnings {
		fmt.Fprintf(w, "  WARNING: %s\n", w0)
	}
	if len(r.Exclusions) > 0 {
		fmt.Fprintln(w, "  exclusions")
		for _, x := range r.Exclusions {
			fmt.Fprintf(w, "    %-8s %7d  %s\n", x.Class, x.Count, x.Reason)
		}
	}
}

// cohortDurations is the cohort's time windows as its manifest records them (written as
// given: 18y, 365d), e.g. "lead 365d, gap 0, min history 365d, min age 18y, follow-up 365d".
func cohortDurations(params map[string]any) string {
	var parts []string
	for _, k := range [][2]string{{"lead", "lead"}, {"gap", "gap"}, {"min_history", "min history"}, {"min_age",
		"min age"}, {"follow_up", "follow-up"}} {
		if v, ok := params[k[0]].(string); ok {
			parts = append(parts, k[1]+" "+v)
		}
	}
	return strings.Join(parts, ", ")
}

// printTimeToEvent is the summary's line on the labels' time to event.
func printTimeToEvent(w io.Writer, t *data.TimeToEventReport) {
	if t == nil {
		return
	}
	var parts []string
	for _, r := range []string{data.CensorDatasetEnd, data.CensorEndOfRecord, data.CensorDeath} {
		c := t.Censored[r]
		parts = append(parts, fmt.Sprintf("%s %d+/%d-", r, c.Positives, c.Negatives))
	}
	fmt.Fprintf(w, "  time to event      %d labels: event seen %d+/%d-; censored at %s\n",
		t.Known, t.Events.Positives, t.Events.Negatives, strings.Join(parts, ", "))
	fmt.Fprintf(w, "    dataset end %s; censored within %s of it counts as dataset_end\n", t.DatasetEnd, t.CensorWindow)
	for _, c := range []string{"positive", "negative"} {
		if s, ok := t.FollowUpYears[c]; ok && s.N > 0 {
			fmt.Fprintf(w, "    %-8s followed %.1f years (median; %.1f-%.1f)\n", c, s.Median, s.P25, s.P75)
		}
	}
}
