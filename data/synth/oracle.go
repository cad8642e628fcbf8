package synth

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/medseq/medseq/data"
)

// Oracle files, beside the dataset's data/ and metadata/ folders.
const (
	OracleDir          = "oracle"
	OracleSubjectsFile = "oracle/subjects.parquet"
	OracleHazardFile   = "oracle/hazard.parquet"
	OracleModelFile    = "oracle/model.json"
)

// OracleTargets are the code prefixes of the outcome the oracle models: the first code with
// one of them is at the diagnosis time D (SNOMED/44054006 and/or ICD10/E11.9 or E11.65 are
// written at D, and none before it). A cohort built with other targets (one of them alone
// misses the subjects diagnosed with the other code only) has another outcome, which the
// oracle says nothing about.
var OracleTargets = []string{"ICD10/E11", "SNOMED/44054006"}

// ModelsTargets reports whether a cohort whose outcome is the first code with one of these
// prefixes is the oracle's outcome: the same set of prefixes as OracleTargets, in any order,
// or as ETLCode spells them (a dataset written with CodeStyleETL).
func ModelsTargets(targets []string) bool {
	set := map[string]bool{}
	for _, t := range targets {
		set[t] = true
	}
	if len(set) != len(OracleTargets) {
		return false
	}
	for _, spell := range []func(string) string{func(c string) string { return c }, ETLCode} {
		all := true
		for _, t := range OracleTargets {
			all = all && set[spell(t)]
		}
		if all {
			return true
		}
	}
	return false
}

// NoTime marks an absent time in an OracleSubject (no onset or no diagnosis during life).
const NoTime = int64(math.MaxInt64)

// OracleSubject is the truth about one subject.
type OracleSubject struct {
	ID    int64
	Birth int64
	Male  bool
	// Onset is the latent T2D onset O and Diagnosis the diagnosis D = O + delay, when they
	// fall before the subject's death or the data cut-off; NoTime otherwise.
	Onset, Diagnosis int64
	// Frailty is the unobserved log hazard term u.
	Frailty float64
	// RecordStart and RecordEnd bound the observed record (registration to death, transfer
	// out or cut-off); Death is NoTime unless the record ends in death.
	RecordStart, RecordEnd, Death int64
}

// DiagnosedInRecord reports whether the diagnosis falls inside the subject's record (or is
// a backdated past diagnosis of a subject registered later).
func (s *OracleSubject) DiagnosedInRecord() bool { return s.Diagnosis < s.RecordEnd }

// Oracle is the generative truth of a synthetic dataset: every subject's latent onset and
// diagnosis times and the log hazard multiplier as a step function of time.
type Oracle struct {
	Model    Model
	subjects []OracleSubject
	idx      map[int64]int
	segOff   []int // subject i's segments are segT[segOff[i]:segOff[i+1]]
	segT     []int64
	segM     []float64
}

// Len is the number of subjects.
func (o *Oracle) Len() int { return len(o.subjects) }

// Subjects returns every subject's truth, ordered by id. The caller must not modify it.
func (o *Oracle) Subjects() []OracleSubject { return o.subjects }

// Subject returns the truth about one subject.
func (o *Oracle) Subject(id int64) (OracleSubject, bool) {
	i, ok := o.idx[id]
	if !ok {
		return OracleSubject{}, false
	}
	return o.subjects[i], true
}

// LogMultiplier is the subject's log hazard multiplier (sum of betas of the true risk
// factors, plus frailty) in force at t.
func (o *Oracle) LogMultiplier(id, t int64) (float64, bool) {
	i, ok := o.idx[id]
	if !ok || t < o.subjects[i].Birth {
		return 0, false
	}
	return o.logMult(i, t), true
}

func (o *Oracle) logMult(i int, t int64) float64 {
	ts := o.segT[o.segOff[i]:o.segOff[i+1]]
	k := sort.Search(len(ts), func(j int) bool { return ts[j] > t }) - 1
	if k < 0 {
		k = 0
	}
	return o.segM[o.segOff[i]+k]
}

// Risk is the true probability that the subject's diagnosis D falls in (t, t+horizon]
// (microseconds), given the subject's true state at t. When the onset has happened
// (O <= t < D) it is 1-exp(-horizon/delay mean); before the onset it integrates the onset
// hazard with the risk factors frozen at their state at t (age advancing) against the delay
// distribution, in monthly steps. Death is ignored. It reports false for an unknown subject,
// a time before birth, a non-positive horizon, or t at or after the diagnosis.
func (o *Oracle) Risk(subjectID, t, horizon int64) (float64, bool) {
	i, ok := o.idx[subjectID]
	if !ok || horizon <= 0 {
		return 0, false
	}
	s := &o.subjects[i]
	if t < s.Birth || s.Diagnosis <= t {
		return 0, false
	}
	m := &o.Model
	mu := m.DelayMeanYears * float64(year)
	h := float64(horizon)
	if s.Onset <= t {
		return -math.Expm1(-h / mu), true
	}
	lm := o.logMult(i, t)
	n := max(1, int(math.Ceil(h/float64(month))))
	dt := h / float64(n)
	dty := dt / float64(year)
	a := float64(t-s.Birth) / float64(year)
	surv, p := 1.0, 0.0
	for k := 0; k < n; k++ {
		a1 := a + float64(k)*dty
		next := surv * math.Exp(-m.cumHazard(a1, a1+dty, lm))
		mid := (float64(k) + 0.5) * dt
		p += (surv - next) * -math.Expm1(-(h-mid)/mu)
		surv = next
	}
	return p, true
}

var (
	tsType            = &arrow.TimestampType{Unit: arrow.Microsecond}
	oracleSubjectsSch = arrow.NewSchema([]arrow.Field{
		{Name: "subject_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "birth", Type: tsType},
		{Name: "sex", Type: arrow.BinaryTypes.String},
		{Name: "onset_time", Type: tsType, Nullable: true},
		{Name: "diagnosis_time", Type: tsType, Nullable: true},
		{Name: "frailty", Type: arrow.PrimitiveTypes.Float64},
		{Name: "record_start", Type: tsType},
		{Name: "record_end", Type: tsType},
		{Name: "death_time", Type: tsType, Nullable: true},
	}, nil)
	oracleHazardSch = arrow.NewSchema([]arrow.Field{
		{Name: "subject_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "time", Type: tsType},
		{Name: "log_multiplier", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
)

// writeOracle writes the oracle under root (the dataset's temporary folder).
func (o *Oracle) write(root string) error {
	appendTime := func(b *array.TimestampBuilder, t int64) {
		if t == NoTime {
			b.AppendNull()
		} else {
			b.Append(arrow.Timestamp(t))
		}
	}
	err := data.WriteTable(filepath.Join(root, OracleSubjectsFile), oracleSubjectsSch, func(b *array.RecordBuilder) {
		for _, s := range o.subjects {
			b.Field(0).(*array.Int64Builder).Append(s.ID)
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(s.Birth))
			sex := "F"
			if s.Male {
				sex = "M"
			}
			b.Field(2).(*array.StringBuilder).Append(sex)
			appendTime(b.Field(3).(*array.TimestampBuilder), s.Onset)
			appendTime(b.Field(4).(*array.TimestampBuilder), s.Diagnosis)
			b.Field(5).(*array.Float64Builder).Append(s.Frailty)
			b.Field(6).(*array.TimestampBuilder).Append(arrow.Timestamp(s.RecordStart))
			b.Field(7).(*array.TimestampBuilder).Append(arrow.Timestamp(s.RecordEnd))
			appendTime(b.Field(8).(*array.TimestampBuilder), s.Death)
		}
	})
	if err != nil {
		return err
	}
	err = data.WriteTable(filepath.Join(root, OracleHazardFile), oracleHazardSch, func(b *array.RecordBuilder) {
		for i, s := range o.subjects {
			for k := o.segOff[i]; k < o.segOff[i+1]; k++ {
				b.Field(0).(*array.Int64Builder).Append(s.ID)
				b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(o.segT[k]))
				b.Field(2).(*array.Float64Builder).Append(o.segM[k])
			}
		}
	})
	if err != nil {
		return err
	}
	buf, err := json.MarshalIndent(o.Model, "", "  ")
	if err != nil {
		return err
	}
	return data.WriteFileAtomic(filepath.Join(root, OracleModelFile), append(buf, '\n'))
}

// LoadOracle reads the oracle of a synthetic dataset. The error wraps os.ErrNotExist when
// the dataset has none.
func LoadOracle(datasetDir string) (*Oracle, error) {
	o := &Oracle{idx: map[int64]int{}}
	mp := filepath.Join(datasetDir, OracleModelFile)
	buf, err := os.ReadFile(mp)
	if err != nil {
		return nil, fmt.Errorf("load oracle: %w", err)
	}
	if err := json.Unmarshal(buf, &o.Model); err != nil {
		return nil, fmt.Errorf("load oracle %s: %w", mp, err)
	}
	if o.subjects, err = readOracleSubjects(filepath.Join(datasetDir, OracleSubjectsFile)); err != nil {
		return nil, err
	}
	sort.Slice(o.subjects, func(i, j int) bool { return o.subjects[i].ID < o.subjects[j].ID })
	for i, s := range o.subjects {
		o.idx[s.ID] = i
	}
	hp := filepath.Join(datasetDir, OracleHazardFile)
	rows, err := readHazardRows(hp)
	if err != nil {
		return nil, err
	}
	if err := o.setSegments(rows); err != nil {
		return nil, fmt.Errorf("load oracle %s: %w", hp, err)
	}
	return o, nil
}

// readOracleSubjects reads oracle/subjects.parquet.
func readOracleSubjects(path string) ([]OracleSubject, error) {
	var subs []OracleSubject
	err := data.ReadTable(path, func(rec arrow.RecordBatch) error {
		if rec.NumCols() < 9 {
			return fmt.Errorf("load oracle %s: want 9 columns, got %d", path, rec.NumCols())
		}
		ids, ok := rec.Column(0).(*array.Int64)
		if !ok {
			return fmt.Errorf("load oracle %s: subject_id is %s", path, rec.Column(0).DataType())
		}
		sex, ok := rec.Column(2).(*array.String)
		if !ok {
			return fmt.Errorf("load oracle %s: sex is %s", path, rec.Column(2).DataType())
		}
		fr, ok := rec.Column(5).(*array.Float64)
		if !ok {
			return fmt.Errorf("load oracle %s: frailty is %s", path, rec.Column(5).DataType())
		}
		var times [9]*array.Timestamp // by column; the time columns are 1, 3, 4, 6, 7, 8
		for _, c := range []int{1, 3, 4, 6, 7, 8} {
			if times[c], ok = rec.Column(c).(*array.Timestamp); !ok {
				return fmt.Errorf("load oracle %s: %s is %s", path, rec.Schema().Field(c).Name, rec.Column(c).DataType())
			}
		}
		timeAt := func(c, i int) int64 {
			if times[c].IsNull(i) {
				return NoTime
			}
			return int64(times[c].Value(i))
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			subs = append(subs, OracleSubject{
				ID: ids.Value(i), Birth: timeAt(1, i), Male: sex.Value(i) == "M",
				Onset: timeAt(3, i), Diagnosis: timeAt(4, i), Frailty: fr.Value(i),
				RecordStart: timeAt(6, i), RecordEnd: timeAt(7, i), Death: timeAt(8, i),
			})
		}
		return nil
	})
	return subs, err
}

// hazardRow is one row of oracle/hazard.parquet.
type hazardRow struct {
	id int64
	t  int64
	m  float64
}

// readHazardRows reads oracle/hazard.parquet, ordered by subject and time.
func readHazardRows(path string) ([]hazardRow, error) {
	var rows []hazardRow
	err := data.ReadTable(path, func(rec arrow.RecordBatch) error {
		if rec.NumCols() < 3 {
			return fmt.Errorf("load oracle %s: want 3 columns, got %d", path, rec.NumCols())
		}
		ids, ok1 := rec.Column(0).(*array.Int64)
		ts, ok2 := rec.Column(1).(*array.Timestamp)
		ms, ok3 := rec.Column(2).(*array.Float64)
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("load oracle %s: want columns subject_id int64, time timestamp, log_multiplier double", path)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			rows = append(rows, hazardRow{ids.Value(i), int64(ts.Value(i)), ms.Value(i)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].id != rows[j].id {
			return rows[i].id < rows[j].id
		}
		return rows[i].t < rows[j].t
	})
	return rows, nil
}

// setSegments gives each subject (o.subjects, ordered by id) its hazard rows (ordered by
// subject and time); rows of unknown subjects are skipped, a subject without rows is an error.
func (o *Oracle) setSegments(rows []hazardRow) error {
	o.segOff = make([]int, len(o.subjects)+1)
	o.segT = make([]int64, 0, len(rows))
	o.segM = make([]float64, 0, len(rows))
	r := 0
	for i, s := range o.subjects {
		o.segOff[i] = len(o.segT)
		for ; r < len(rows) && rows[r].id < s.ID; r++ {
		}
		for ; r < len(rows) && rows[r].id == s.ID; r++ {
			o.segT = append(o.segT, rows[r].t)
			o.segM = append(o.segM, rows[r].m)
		}
		if o.segOff[i] == len(o.segT) {
			return fmt.Errorf("subject %d has no hazard rows", s.ID)
		}
	}
	o.segOff[len(o.subjects)] = len(o.segT)
	return nil
}
