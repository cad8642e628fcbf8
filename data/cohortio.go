package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Files of a cohort folder.
const (
	LabelsFile       = "labels.parquet" // MEDS label schema, for other tools
	CohortTableFile  = "cohort.parquet" // labels with split, age and sex, for medseq stages
	CohortReportFile = "cohort_report.json"
	StageCohort      = "data cohort"
	InputMEDS        = "meds"
)

// Cohort is a loaded cohort folder.
type Cohort struct {
	Dir      string
	Labels   []Label
	Manifest *Manifest
	Gap      int64 // microseconds hidden before each prediction time, from the manifest
	// Demographics are the rules that found the labels' birth and sex (the manifest's
	// birth_codes and sex_prefixes; the defaults for a cohort that records none).
	Demographics Demographics
	// TimeToEventColumns is whether cohort.parquet has the time-to-event columns; cohorts
	// written before them do not, and every label's EventTime is then StaticTime (unknown).
	TimeToEventColumns bool
}

// ErrNoTimeToEvent is returned where a cohort's labels need a time to event and lack one.
var ErrNoTimeToEvent = errors.New("no time to event")

// RequireTimeToEvent returns nil when every label has a time to event, else an error wrapping
// ErrNoTimeToEvent that says why: a cohort written before medseq recorded it, or one built from
// external labels without --target codes.
func (c *Cohort) RequireTimeToEvent() error {
	if !c.TimeToEventColumns {
		return fmt.Errorf("cohort %s: %w: it was written before medseq recorded each label's time to event; "+
			"rebuild it with medseq data cohort",
			c.Dir, ErrNoTimeToEvent)
	}
	unknown := 0
	for _, l := range c.Labels {
		if l.EventTime == StaticTime {
			unknown++
		}
	}
	if unknown > 0 {
		return fmt.Errorf("cohort %s: %w for %d of %d labels: a cohort from --labels needs --target codes to time events",
			c.Dir, ErrNoTimeToEvent, unknown, len(c.Labels))
	}
	return nil
}

// labelSchema is labels.parquet: the MEDS 0.4 LabelSchema (meds 0.4.x, meds/schema.py) as its
// own validator applies it: subject_id int64 and prediction_time timestamp[us] (no time zone:
// Parquet TIMESTAMP(MICROS, isAdjustedToUTC=false)), required and never null; boolean_value
// bool, the one optional value column medseq fills. The other optional value columns
// (integer_value int64, float_value float32, categorical_value string) are absent rather than
// all null. Every column is marked nullable in the Parquet schema, as the reference MEDS
// writers (pyarrow, polars) do.
var labelSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: ColPredictionTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: ColBooleanValue, Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
}, nil)

var cohortSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "prediction_time", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "boolean_value", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "split", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "age", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "sex", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "birth", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	// Time to event (Label): event_time null when unknown, censor_reason null unless censored.
	{Name: colEventTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: colEventObserved, Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: colCensorReason, Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// Time-to-event columns of cohort.parquet.
const (
	colEventTime     = "event_time"
	colEventObserved = "event_observed"
	colCensorReason  = "censor_reason"
)

// WriteCohort writes a cohort folder atomically: labels.parquet (MEDS labels), cohort.parquet,
// cohort_report.json and manifest.json (m must already hold the dataset as input "meds").
func WriteCohort(out string, overwrite bool, res *CohortResult, m *Manifest) error {
	dir, err := CreateAtomicDir(out, overwrite)
	if err != nil {
		return err
	}
	defer dir.Abort()
	res.Report.RunID = m.RunID
	err = WriteTable(filepath.Join(dir.Tmp, LabelsFile), labelSchema, func(b *array.RecordBuilder) {
		for _, l := range res.Labels {
			b.Field(0).(*array.Int64Builder).Append(l.SubjectID)
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(l.PredictionTime))
			b.Field(2).(*array.BooleanBuilder).Append(l.Value)
		}
	})
	if err != nil {
		return err
	}
	err = WriteTable(filepath.Join(dir.Tmp, CohortTableFile), cohortSchema, func(b *array.RecordBuilder) {
		for _, l := range res.Labels {
			b.Field(0).(*array.Int64Builder).Append(l.SubjectID)
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(l.PredictionTime))
			b.Field(2).(*array.BooleanBuilder).Append(l.Value)
			b.Field(3).(*array.StringBuilder).Append(l.Split)
			if math.IsNaN(l.Age) { // no birth date: age unknown
				b.Field(4).AppendNull()
			} else {
				b.Field(4).(*array.Float64Builder).Append(l.Age)
			}
			b.Field(5).(*array.StringBuilder).Append(l.Sex)
			if l.Birth == StaticTime {
				b.Field(6).AppendNull()
			} else {
				b.Field(6).(*array.TimestampBuilder).Append(arrow.Timestamp(l.Birth))
			}
			appendTimeToEvent(b, 7, l)
		}
	})
	if err != nil {
		return err
	}
	buf, err := json.MarshalIndent(res.Report, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir.Tmp, CohortReportFile), append(buf, '\n')); err != nil {
		return err
	}
	if err := m.WriteTo(dir.Tmp); err != nil {
		return err
	}
	return dir.Commit()
}

// LoadCohort reads a cohort folder written by WriteCohort.
func LoadCohort(dir string) (*Cohort, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("load cohort %s: %w", dir, err)
	}
	if m.Stage != StageCohort {
		return nil, fmt.Errorf("load cohort %s: manifest says it was made by %q, not %q", dir, m.Stage, StageCohort)
	}
	c := &Cohort{Dir: dir, Manifest: m, Demographics: DefaultDemographics()}
	if v, ok := stringsParam(m.Params["birth_codes"]); ok {
		c.Demographics.BirthCodes = v
	}
	if v, ok := stringsParam(m.Params["sex_prefixes"]); ok {
		c.Demographics.SexPrefixes = v
	}
	if g, ok := m.Params["gap"].(string); ok {
		if c.Gap, err = ParseDuration(g); err != nil {
			return nil, fmt.Errorf("load cohort %s: manifest gap: %w", dir, err)
		}
	}
	p := filepath.Join(dir, CohortTableFile)
	c.TimeToEventColumns = true
	row := 0
	err = ReadTable(p, func(rec arrow.RecordBatch) error {
		n := int(rec.NumRows())
		ids := make([]int64, n)
		if err := readIDs(p, fieldByName(rec, ColSubjectID), ids, 0); err != nil {
			return err
		}
		pt, ok1 := fieldByName(rec, "prediction_time").(*array.Timestamp)
		val, ok2 := fieldByName(rec, "boolean_value").(*array.Boolean)
		age, ok3 := fieldByName(rec, "age").(*array.Float64)
		birth, ok4 := fieldByName(rec, "birth").(*array.Timestamp)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return fmt.Errorf("read %s: unexpected column types", p)
		}
		tte, err := timeToEventColumns(p, rec)
		if err != nil {
			return err
		}
		c.TimeToEventColumns = c.TimeToEventColumns && tte.present
		for i := 0; i < n; i++ {
			l := Label{SubjectID: ids[i], PredictionTime: int64(pt.Value(i)), Value: val.Value(i), Age: age.Value(i),
				Birth: int64(birth.Value(i))}
			if age.IsNull(i) {
				l.Age = math.NaN()
			}
			if birth.IsNull(i) {
				l.Birth = StaticTime
			}
			l.Split, _ = stringAt(fieldByName(rec, "split"), i)
			l.Sex, _ = stringAt(fieldByName(rec, "sex"), i)
			if err := tte.read(&l, i); err != nil {
				return fmt.Errorf("read %s: row %d: %w", p, row+i+1, err)
			}
			c.Labels = append(c.Labels, l)
		}
		row += n
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// appendTimeToEvent writes l's time to event into the builder's fields from col on.
func appendTimeToEvent(b *array.RecordBuilder, col int, l Label) {
	if l.EventTime == StaticTime {
		b.Field(col).AppendNull()
		b.Field(col + 1).AppendNull()
		b.Field(col + 2).AppendNull()
		return
	}
	b.Field(col).(*array.TimestampBuilder).Append(arrow.Timestamp(l.EventTime))
	b.Field(col + 1).(*array.BooleanBuilder).Append(l.EventObserved)
	if l.CensorReason == "" {
		b.Field(col + 2).AppendNull()
	} else {
		b.Field(col + 2).(*array.StringBuilder).Append(l.CensorReason)
	}
}

// tteColumns are a cohort.parquet batch's time-to-event columns; present is false for a
// cohort written before them.
type tteColumns struct {
	present  bool
	time     *array.Timestamp
	observed *array.Boolean
	reason   arrow.Array
}

func timeToEventColumns(path string, rec arrow.RecordBatch) (tteColumns, error) {
	et, eo, cr := fieldByName(rec, colEventTime), fieldByName(rec, colEventObserved), fieldByName(rec, colCensorReason)
	if et == nil && eo == nil && cr == nil {
		return tteColumns{}, nil
	}
	t, ok1 := et.(*array.Timestamp)
	o, ok2 := eo.(*array.Boolean)
	if !ok1 || !ok2 || cr == nil {
		return tteColumns{}, fmt.Errorf("read %s: want columns %s timestamp, %s bool and %s string together",
			path, colEventTime, colEventObserved, colCensorReason)
	}
	return tteColumns{present: true, time: t, observed: o, reason: cr}, nil
}

// read fills row i's time to event into l (unknown when the columns are absent or null).
func (c tteColumns) read(l *Label, i int) error {
	l.EventTime = StaticTime
	if !c.present || c.time.IsNull(i) {
		return nil
	}
	l.EventTime = int64(c.time.Value(i))
	l.EventObserved = !c.observed.IsNull(i) && c.observed.Value(i)
	l.CensorReason, _ = stringAt(c.reason, i)
	switch {
	case l.EventObserved && l.CensorReason != "":
		return fmt.Errorf("%s %q on a label whose event was observed", colCensorReason, l.CensorReason)
	case !l.EventObserved && l.CensorReason != CensorDeath && l.CensorReason != CensorEndOfRecord &&
		l.CensorReason != CensorDatasetEnd:
		return fmt.Errorf("%s %q: want %s, %s or %s", colCensorReason, l.CensorReason, CensorDeath, CensorEndOfRecord,
			CensorDatasetEnd)
	}
	return nil
}

// CheckDataset verifies that medsDir is the dataset this cohort was built from; a stage
// that reads both refuses to go on otherwise (the error wraps ErrInputMismatch).
func (c *Cohort) CheckDataset(medsDir string) error {
	return c.Manifest.CheckInput(InputMEDS, medsDir)
}

// Sequence is one label with the subject's events that a model may see for it.
type Sequence struct {
	Label  Label
	Events []Event // censored: static rows and events at or before PredictionTime - Gap
}

// Sequences streams the censored sequence of every label whose split is in splits (all when
// splits is empty), shard by shard. It is how every later stage reads a cohort: nothing after
// a label's prediction time (minus the cohort's gap) ever reaches fn.
func (c *Cohort) Sequences(ctx context.Context, ds *Dataset, splits []string, fn func(Sequence) error) error {
	want := map[string]bool{}
	for _, s := range splits {
		want[s] = true
	}
	byID := map[int64][]int{}
	for i, l := range c.Labels {
		if len(want) == 0 || want[l.Split] {
			byID[l.SubjectID] = append(byID[l.SubjectID], i)
		}
	}
	found := 0
	err := ds.ForEachSubject(ctx, func(s Subject) error {
		idx, ok := byID[s.ID]
		if !ok {
			return nil
		}
		found++
		for _, i := range idx {
			l := c.Labels[i]
			if err := fn(Sequence{Label: l, Events: Censor(s.Events, l.PredictionTime, c.Gap)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if found != len(byID) {
		return fmt.Errorf("%w: %d labelled subjects of cohort %s are not in dataset %s", ErrInputMismatch, len(byID)-found,
			c.Dir, ds.Root)
	}
	return nil
}

// stringsParam reads a manifest parameter holding a list of strings.
func stringsParam(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// CohortConfigFromParams reads back the configuration a --target cohort's manifest records
// (CohortConfig.Params), so that the cohort can be rebuilt with one rule changed. A parameter
// the manifest lacks keeps its default (DefaultCohortConfig); one of the wrong type, and a
// cohort without targets (one built from --labels), are errors naming the parameter.
func CohortConfigFromParams(p map[string]any) (CohortConfig, error) {
	c := DefaultCohortConfig()
	targets, ok := stringsParam(p["targets"])
	if !ok || len(targets) == 0 {
		return c, errors.New("manifest params: no targets (a cohort built from --labels cannot be rebuilt from its rules)")
	}
	c.Targets = targets
	durations := map[string]*int64{"lead": &c.Lead, "gap": &c.Gap, "min_history": &c.MinHistory, "min_age": &c.MinAge,
		"follow_up": &c.FollowUp, "censor_window": &c.CensorWindow}
	for k, dst := range durations {
		if err := durationParam(p, k, dst); err != nil {
			return c, err
		}
	}
	for k, dst := range map[string]*[]string{"sex_prefixes": &c.SexPrefixes, "birth_codes": &c.BirthCodes,
		"death_codes": &c.DeathCodes} {
		if v, present := p[k]; present {
			if *dst, ok = stringsParam(v); !ok {
				return c, fmt.Errorf("manifest param %s: %v is not a list of strings", k, v)
			}
		}
	}
	if v, present := p["negatives"]; present {
		if c.Negatives, ok = v.(string); !ok {
			return c, fmt.Errorf("manifest param negatives: %v is not a string", v)
		}
	}
	minEvents, bandYears := int64(c.MinEvents), int64(c.BandYears)
	for k, dst := range map[string]*int64{"min_events": &minEvents, "band_years": &bandYears, "seed": &c.Seed} {
		if err := intParam(p, k, dst); err != nil {
			return c, err
		}
	}
	c.MinEvents, c.BandYears = int(minEvents), int(bandYears)
	if v, present := p["negatives_per_positive"]; present {
		if c.NegativesPerPositive, ok = v.(float64); !ok {
			return c, fmt.Errorf("manifest param negatives_per_positive: %v is not a number", v)
		}
	}
	if v, present := p["split_fractions"]; present {
		f, ok := v.([]any)
		var x [3]float64
		for i := 0; ok && len(f) == 3 && i < 3; i++ {
			x[i], ok = f[i].(float64)
		}
		if !ok || len(f) != 3 {
			return c, fmt.Errorf("manifest param split_fractions: %v is not three numbers", v)
		}
		c.Fractions = SplitFractions{x[0], x[1], x[2]}
	}
	return c, c.validate()
}

func durationParam(p map[string]any, k string, dst *int64) error {
	v, present := p[k]
	if !present {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("manifest param %s: %v is not a duration", k, v)
	}
	d, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("manifest param %s: %w", k, err)
	}
	*dst = d
	return nil
}

func intParam(p map[string]any, k string, dst *int64) error {
	v, present := p[k]
	if !present {
		return nil
	}
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return fmt.Errorf("manifest param %s: %v is not an integer", k, v)
	}
	*dst = int64(f)
	return nil
}
