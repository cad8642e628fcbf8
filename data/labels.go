package data

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Columns of the MEDS label schema (meds 0.4, meds/schema.py LabelSchema): subject_id and
// prediction_time are required, the four value columns optional.
const (
	ColPredictionTime   = "prediction_time"
	ColBooleanValue     = "boolean_value"
	ColIntegerValue     = "integer_value"
	ColFloatValue       = "float_value"
	ColCategoricalValue = "categorical_value"
)

// InputLabels is the manifest input name of an external label file (data cohort --labels).
const InputLabels = "labels"

// LabelRow is one row of an external MEDS label file (ACES, MEDS-DEV, ...).
type LabelRow struct {
	SubjectID      int64
	PredictionTime int64 // microseconds (timestamp[s|ms|us|ns] converted, ns floored)
	Value          bool
	Null           bool // boolean_value is null: the row has no binary outcome
	File           string
	Row            int // 1-based within File
}

// LabelFiles is what ReadLabelFiles read: the files (sorted) and their rows in file order.
type LabelFiles struct {
	Path  string
	Files []string
	Rows  []LabelRow
	// ValueColumns are the optional value columns other than boolean_value present in any
	// file (integer_value, float_value, categorical_value): read, and ignored.
	ValueColumns []string
}

// ReadLabelFiles reads MEDS label Parquet files: path is one file or a folder whose *.parquet
// files (at any depth, hidden ones skipped; ACES and MEDS-DEV write <task>/<split>/<n>.parquet)
// are read in sorted order. Each file needs subject_id (an integer type), prediction_time (a
// timestamp of any unit, with or without a time zone; ns are floored to us) and
// boolean_value (bool, null allowed: such a row is kept with Null set, for the cohort to
// exclude with a reason). integer_value, float_value, categorical_value and other columns
// may be absent, all null or filled: medseq predicts boolean_value and ignores them. A null
// subject_id or prediction_time is an error naming the file, row and column.
func ReadLabelFiles(path string) (*LabelFiles, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	lf := &LabelFiles{Path: path}
	if !st.IsDir() {
		lf.Files = []string{path}
	} else {
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != path && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && strings.EqualFold(filepath.Ext(p), ".parquet") {
				lf.Files = append(lf.Files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("labels %s: %w", path, err)
		}
		sort.Strings(lf.Files)
		if len(lf.Files) == 0 {
			return nil, fmt.Errorf("labels %s: no .parquet file in the folder", path)
		}
	}
	values := map[string]bool{}
	for _, f := range lf.Files {
		if err := readLabelFile(f, lf, values); err != nil {
			return nil, err
		}
	}
	for _, c := range []string{ColIntegerValue, ColFloatValue, ColCategoricalValue} {
		if values[c] {
			lf.ValueColumns = append(lf.ValueColumns, c)
		}
	}
	return lf, nil
}

func readLabelFile(path string, lf *LabelFiles, values map[string]bool) error {
	row := 0
	return ReadTable(path, func(rec arrow.RecordBatch) error {
		ids, pts, vals := fieldByName(rec, ColSubjectID), fieldByName(rec, ColPredictionTime),
			fieldByName(rec, ColBooleanValue)
		for _, c := range []string{ColIntegerValue, ColFloatValue, ColCategoricalValue} {
			if fieldByName(rec, c) != nil {
				values[c] = true
			}
		}
		switch {
		case ids == nil || pts == nil:
			return fmt.Errorf("read %s: a MEDS label file needs columns subject_id and prediction_time (it has %s)", path,
				strings.Join(columnNames(rec), ", "))
		case vals == nil:
			var other []string
			for _, c := range []string{ColIntegerValue, ColFloatValue, ColCategoricalValue} {
				if fieldByName(rec, c) != nil {
					other = append(other, c)
				}
			}
			msg := "no boolean_value column: medseq predicts a binary outcome"
			if len(other) > 0 {
				msg += " (this task's labels are in " + strings.Join(other, ", ") + ")"
			}
			return fmt.Errorf("read %s: %s", path, msg)
		}
		bv, ok := vals.(*array.Boolean)
		if !ok {
			return fmt.Errorf("read %s: column boolean_value: type %s, want bool", path, vals.DataType())
		}
		n := int(rec.NumRows())
		idv := make([]int64, n)
		if err := readIDs(path, ids, idv, row); err != nil {
			return err
		}
		ptv, err := labelTimes(path, pts, row)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			l := LabelRow{SubjectID: idv[i], PredictionTime: ptv[i], File: path, Row: row + i + 1}
			if bv.IsNull(i) {
				l.Null = true
			} else {
				l.Value = bv.Value(i)
			}
			lf.Rows = append(lf.Rows, l)
		}
		row += n
		return nil
	})
}

// labelTimes converts a prediction_time column to microseconds; a null is an error.
func labelTimes(path string, a arrow.Array, base int) ([]int64, error) {
	for i := 0; i < a.Len(); i++ {
		if a.IsNull(i) {
			return nil, fmt.Errorf("read %s: row %d, column prediction_time: null", path, base+i+1)
		}
	}
	if _, ok := a.(*array.Timestamp); !ok {
		if _, ok := a.(*array.Date32); !ok {
			return nil, fmt.Errorf("read %s: column prediction_time: type %s, want timestamp[us]", path, a.DataType())
		}
	}
	ev := make([]Event, a.Len())
	if err := readTimes(path, a, ev); err != nil {
		return nil, err
	}
	out := make([]int64, len(ev))
	for i, e := range ev {
		out[i] = e.Time
	}
	return out, nil
}

func columnNames(rec arrow.RecordBatch) []string {
	var out []string
	for _, f := range rec.Schema().Fields() {
		out = append(out, f.Name)
	}
	return out
}

// Exclusion reasons of a cohort built from external labels (counted per label).
const (
	ExclNullValue      = "boolean_value is null (no binary outcome)"
	ExclDuplicate      = "duplicate label (same subject and prediction time; the first is kept)"
	ExclConflicting    = "conflicting duplicates (same subject and prediction time, both outcomes): all dropped"
	ExclNotInData      = "subject not in the dataset"
	ExclAfterDeath     = "prediction time at or after death"
	ExclNoVisibleEvent = "no timed event at or before the prediction time (minus --gap)"
)

// SamplingLabels is the Sampling.Method of a cohort whose labels came from a file.
const SamplingLabels = "labels"

// LabelCohortParams are the manifest parameters of a cohort built from the labels at path:
// the ones later stages read (gap, birth_codes, sex_prefixes) and how splits were made. The
// target codes, when given, only time the labels' events: they are event_targets, not
// targets, because the label file, not the first target code, defines the outcome.
func LabelCohortParams(c CohortConfig, path string) map[string]any {
	p := map[string]any{
		"labels": path, "gap": FormatDuration(c.Gap), "seed": c.Seed,
		"split_fractions": []float64{c.Fractions.Train, c.Fractions.Tuning, c.Fractions.HeldOut},
		"sex_prefixes":    c.SexPrefixes, "birth_codes": c.BirthCodes, "death_codes": c.DeathCodes,
	}
	if len(c.Targets) > 0 {
		p["event_targets"] = c.Targets
		p["censor_window"] = FormatDuration(c.CensorWindow)
	}
	return p
}

// BuildLabelCohort makes a cohort from external labels (a MEDS label file written by ACES or
// taken from MEDS-DEV) instead of target codes: the labels set the prediction times and the
// outcomes; medseq adds each label's age and sex at the prediction time (cfg's birth codes and
// sex prefixes, as BuildCohort finds them), a split by subject, and the same report.
//
// A label is excluded, with its reason counted in the report, when its boolean_value is null,
// when it repeats an earlier label of the same subject and time (conflicting repeats are all
// dropped), when its subject is not in the dataset, when its prediction time is at or before
// birth or at or after death, or when no timed event is visible at it (prediction time -
// cfg.Gap). A subject without a birth code keeps its labels with an unknown age (NaN, Birth =
// StaticTime; counted in UnknownAge and left out of the age checks).
//
// With cfg.Targets, every label gets its time to event (see TimeToEvent): the first target
// code at or after its prediction time, whatever its value (a negative whose target comes
// after the task's window has an observed event), else its censoring at the end of
// observation. Without them the time to event is unknown (EventTime = StaticTime). Only cfg's
// Gap, Seed, Fractions, SexPrefixes, BirthCodes, DeathCodes, Targets and CensorWindow are used.
func BuildLabelCohort(ctx context.Context, ds *Dataset, lf *LabelFiles, cfg CohortConfig) (*CohortResult, error) {
	if cfg.Gap < 0 || cfg.CensorWindow < 0 {
		return nil, errors.New("gap and censor window must not be negative")
	}
	for _, t := range cfg.Targets {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("empty target code prefix")
		}
	}
	if cfg.Fractions == (SplitFractions{}) {
		cfg.Fractions = DefaultSplitFractions
	}
	excl := exclusions{}
	kept := dedupeLabelRows(lf.Rows, excl)
	want := make(map[int64]bool, len(kept))
	for _, r := range kept {
		want[r.SubjectID] = true
	}
	pop, err := summarise(ctx, ds, &cfg, func(id int64) bool { return want[id] })
	if err != nil {
		return nil, err
	}
	c := &labelCohort{cfg: &cfg, pop: pop, lf: lf, excl: excl, byID: make(map[int64]*subjectInfo, len(pop.infos))}
	for i := range pop.infos {
		c.byID[pop.infos[i].id] = &pop.infos[i]
	}
	labels := c.labels(kept)
	if len(labels) == 0 {
		return nil, fmt.Errorf("%w: none of the %d labels of %s is usable (see the exclusions: %s)",
			ErrEmptyCohort, len(lf.Rows), lf.Path, excl.summary())
	}
	source, err := assignSplits(ds, pop.shardSplit, labels, cfg.Seed, cfg.Fractions)
	if err != nil {
		return nil, err
	}
	return &CohortResult{Labels: labels, Report: c.report(ds.Root, labels, source)}, nil
}

// dedupeLabelRows drops null and repeated rows, counting them in excl: they need no data.
// Rows of one subject and time form a group: the first is kept when they agree, none when
// they conflict.
func dedupeLabelRows(rows []LabelRow, excl exclusions) []LabelRow {
	type key struct{ id, t int64 }
	groups := map[key][]int{}
	var order []key
	for i, r := range rows {
		if r.Null {
			excl.add("any", ExclNullValue)
			continue
		}
		k := key{r.SubjectID, r.PredictionTime}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	var kept []LabelRow
	for _, k := range order {
		g := groups[k]
		r := rows[g[0]]
		agree := true
		for _, i := range g[1:] {
			agree = agree && rows[i].Value == r.Value
		}
		if !agree {
			for range g {
				excl.add("any", ExclConflicting)
			}
			continue
		}
		for range g[1:] {
			excl.add(className(r.Value), ExclDuplicate)
		}
		kept = append(kept, r)
	}
	return kept
}

// labelCohort is BuildLabelCohort's state from step to step.
type labelCohort struct {
	cfg        *CohortConfig
	pop        *firstPass
	lf         *LabelFiles
	excl       exclusions
	byID       map[int64]*subjectInfo
	unknownAge int // labels whose subject has no birth
}

// labels checks the kept rows against the data (subject known, time inside life, something
// visible) and makes the usable ones labels, ordered by subject and time.
func (c *labelCohort) labels(kept []LabelRow) []Label {
	cfg := c.cfg
	var labels []Label
	for _, r := range kept {
		class := className(r.Value)
		s, ok := c.byID[r.SubjectID]
		if !ok {
			c.excl.add(class, ExclNotInData)
			continue
		}
		pt := r.PredictionTime
		switch {
		case s.birth != StaticTime && pt <= s.birth:
			c.excl.add(class, ExclBeforeBirth)
			continue
		case s.death != StaticTime && pt >= s.death:
			c.excl.add(class, ExclAfterDeath)
			continue
		case s.visibleCount(pt-cfg.Gap) == 0:
			c.excl.add(class, ExclNoVisibleEvent)
			continue
		}
		l := Label{SubjectID: s.id, PredictionTime: pt, Value: r.Value, Age: math.NaN(), Sex: s.sex, Birth: s.birth,
			EventTime: StaticTime}
		if len(cfg.Targets) > 0 {
			l.setTimeToEvent(s.timeToEvent(pt, c.pop.end, cfg.CensorWindow))
		}
		if s.birth != StaticTime {
			l.Age = ageYears(s, pt)
		} else {
			c.unknownAge++
		}
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool {
		if labels[i].SubjectID != labels[j].SubjectID {
			return labels[i].SubjectID < labels[j].SubjectID
		}
		return labels[i].PredictionTime < labels[j].PredictionTime
	})
	return labels
}

// report is the cohort report of labels, split from source.
func (c *labelCohort) report(dataset string, labels []Label, source string) *CohortReport {
	cfg := c.cfg
	lab := map[int64]bool{}
	for _, l := range labels {
		lab[l.SubjectID] = true
	}
	rep := &CohortReport{
		Dataset: dataset, Subjects: c.pop.subjects, Labels: len(labels),
		Params: LabelCohortParams(*cfg, c.lf.Path), SplitSource: source, Splits: map[string]ClassCounts{},
		VisibleEvents: map[string]Summary{}, Source: SamplingLabels, LabelFiles: c.lf.Files, LabelRows: len(c.lf.Rows),
		LabelSubjects: len(lab), IgnoredColumns: c.lf.ValueColumns, UnknownAge: c.unknownAge,
		Exclusions: c.excl.list(),
	}
	var posAges, negAges []float64
	visible := map[string][]float64{}
	for _, l := range labels {
		cc := rep.Splits[l.Split]
		if l.Value {
			cc.Positives++
			rep.Positives++
		} else {
			cc.Negatives++
			rep.Negatives++
		}
		if !math.IsNaN(l.Age) {
			if l.Value {
				posAges = append(posAges, l.Age)
			} else {
				negAges = append(negAges, l.Age)
			}
		}
		rep.Splits[l.Split] = cc
		n := c.byID[l.SubjectID].visibleCount(l.PredictionTime - cfg.Gap)
		visible[className(l.Value)] = append(visible[className(l.Value)], float64(n))
	}
	rep.Prevalence = float64(rep.Positives) / float64(len(labels))
	rep.setDistributions(visible, posAges, negAges)
	rep.Sampling = SamplingReport{Method: SamplingLabels, Comparison: map[string]SamplingOutcome{}}
	if len(cfg.Targets) > 0 {
		rep.TimeToEvent = newTimeToEventReport(labels, c.pop.end, cfg.CensorWindow)
	}
	rep.Warnings = c.warnings(rep)
	return rep
}

// warnings are the report's warnings: positives without an event, unknown ages, classes of
// different ages, a single class, splits without positives.
func (c *labelCohort) warnings(rep *CohortReport) []string {
	var w []string
	if tte := rep.TimeToEvent; tte != nil && tte.PositivesWithoutEvent > 0 {
		w = append(w, fmt.Sprintf("%d of %d positive labels have no code starting with %v at or after their "+
			"prediction time: the target codes time no event for them (censored)",
			tte.PositivesWithoutEvent, rep.Positives, c.cfg.Targets))
	}
	if c.unknownAge > 0 {
		w = append(w, fmt.Sprintf("%d labels have no birth date (no code in %v): "+
			"their age is unknown and left out of the age checks", c.unknownAge, c.cfg.BirthCodes))
	}
	if ks := rep.AgeAtPrediction.KS; ks > 0.1 {
		w = append(w, fmt.Sprintf("the classes' ages at prediction differ (KS distance %.2f): "+
			"a model can score well on age alone", ks))
	}
	if rep.Positives == 0 || rep.Negatives == 0 {
		w = append(w, fmt.Sprintf("only one class (%d positive, %d negative labels)", rep.Positives, rep.Negatives))
	}
	if rep.Splits[SplitTuning].Positives == 0 || rep.Splits[SplitHeldOut].Positives == 0 {
		w = append(w, "a tuning or held_out split has no positives")
	}
	return w
}

// list is the exclusions in report order: any, positive, negative; reasons sorted.
func (x exclusions) list() []ExclusionCount {
	var out []ExclusionCount
	for _, class := range []string{"any", "positive", "negative"} {
		reasons := make([]string, 0, len(x[class]))
		for r := range x[class] {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			out = append(out, ExclusionCount{Class: class, Reason: r, Count: x[class][r]})
		}
	}
	return out
}

func (x exclusions) summary() string {
	var parts []string
	for _, e := range x.list() {
		parts = append(parts, fmt.Sprintf("%s %d: %s", e.Class, e.Count, e.Reason))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}
