package data

import (
	"context"
	"encoding/json"
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
}, nil)

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
		for i := 0; i < n; i++ {
			l := Label{SubjectID: ids[i], PredictionTime: int64(pt.Value(i)), Value: val.Value(i), Age: age.Value(i), Birth: int64(birth.Value(i))}
			if age.IsNull(i) {
				l.Age = math.NaN()
			}
			if birth.IsNull(i) {
				l.Birth = StaticTime
			}
			l.Split, _ = stringAt(fieldByName(rec, "split"), i)
			l.Sex, _ = stringAt(fieldByName(rec, "sex"), i)
			c.Labels = append(c.Labels, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
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
		return fmt.Errorf("%w: %d labelled subjects of cohort %s are not in dataset %s", ErrInputMismatch, len(byID)-found, c.Dir, ds.Root)
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
