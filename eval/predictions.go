package eval

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
)

// Columns of a MEDS-evaluation predictions table.
const (
	ColSubjectID      = "subject_id"
	ColPredictionTime = "prediction_time"
	ColLabel          = "boolean_value"
	ColPredicted      = "predicted_boolean_value"
	ColProbability    = "predicted_boolean_probability"
)

// Prediction is one row of a predictions table: a model's probability for one subject at one
// prediction time, the true label, and free-form attributes (segment columns such as sex,
// region or age; numbers are kept as their text).
type Prediction struct {
	SubjectID      int64             `json:"subject_id"`
	PredictionTime int64             `json:"prediction_time"` // microseconds since the Unix epoch (UTC)
	Label          bool              `json:"boolean_value"`
	Score          float64           `json:"predicted_boolean_probability"` // a probability in [0, 1]
	Attrs          map[string]string `json:"attrs,omitempty"`
}

// LabelAttrs are the attributes medseq keeps beside a prediction for cohort label l: age in
// years (two decimals; left out when unknown, for a subject without a birth code), sex and
// split.
func LabelAttrs(l data.Label, split string) map[string]string {
	a := map[string]string{"sex": l.Sex, "split": split}
	if !math.IsNaN(l.Age) {
		a[AgeColumn] = strconv.FormatFloat(l.Age, 'f', 2, 64)
	}
	return a
}

// CheckScore returns an error when p is not a probability (NaN, infinite, or outside [0, 1]).
func CheckScore(p float64) error {
	if math.IsNaN(p) {
		return errors.New("probability is NaN")
	}
	if p < 0 || p > 1 {
		return fmt.Errorf("probability %v is outside [0, 1]", p)
	}
	return nil
}

// ReadPredictions reads a predictions table in the MEDS-evaluation layout: Parquet when path
// ends in .parquet, CSV otherwise (.csv). Required columns are subject_id, prediction_time,
// boolean_value and predicted_boolean_probability; predicted_boolean_value is optional and
// ignored (thresholds are Compute's business); every other column becomes an attribute, read
// as text (numbers as their shortest decimal text; nulls and empty cells are left out of
// Attrs). In CSV, prediction_time is an ISO-8601 date/time (UTC unless it carries an offset)
// or an integer count of microseconds. Errors name the file, the line (CSV) or row (Parquet,
// 1-based) and the column.
//
// Beside a Parquet file, the extras file that WritePredictions writes
// (modelrepo.PredictionsExtraPath: NAME.extra.parquet), when there is one, adds its columns
// as attributes, each row to the prediction of the same subject_id and prediction_time (the
// k-th repeat of a key to the k-th). It must have been written with this very predictions
// file (its recorded SHA-256 of it matches) and hold exactly one row per prediction, or
// ReadPredictions fails. A file from another tool, with no extras beside it, reads as is.
func ReadPredictions(path string) ([]Prediction, error) {
	if strings.EqualFold(filepath.Ext(path), ".parquet") {
		preds, err := readPredictionsParquet(path)
		if err != nil {
			return nil, err
		}
		return joinExtras(path, preds)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readPredictionsCSV(path, f)
}

// WritePredictions writes preds atomically as Parquet (.parquet) or CSV (any other
// extension). predicted_boolean_value is Score >= threshold: a model's operating point on its
// calibrated probability (metrics at other thresholds come from Compute, never from that
// column).
//
// Parquet is a pair of files. path holds meds-evaluation's PredictionSchema and nothing else
// (PredictionSchema: subject_id int64, prediction_time timestamp[us], boolean_value bool,
// predicted_boolean_value bool, predicted_boolean_probability float64), so the MEDS tools
// read it as it is. The attributes go to the extras file beside it
// (modelrepo.PredictionsExtraPath: NAME.extra.parquet): subject_id, prediction_time, then
// one column per attribute in sorted name order, typed from its values (int64 when every
// value is an integer, float64 when every value is a finite number, age and raw_probability
// always float64 then; string otherwise; null where a prediction lacks it), with the SHA-256
// of path in its schema metadata so that a reader never pairs it with another predictions
// file. Without attributes no extras file is written, and a stale one is removed. CSV is one
// file: the five columns, then the attributes.
func WritePredictions(path string, preds []Prediction, threshold float64) error {
	for i, p := range preds {
		if err := CheckScore(p.Score); err != nil {
			return fmt.Errorf("write %s: prediction %d (subject %d): %w", path, i+1, p.SubjectID, err)
		}
	}
	attrs := attrNames(preds)
	if strings.EqualFold(filepath.Ext(path), ".parquet") {
		// The pair is written in full before either lands: the extras file (which names the
		// predictions file's hash), then the predictions file. A failure before the first
		// rename leaves both as they were; between the two renames, the old predictions file
		// beside the new extras file is refused by ReadPredictions, never joined silently.
		f, err := data.CreateAtomic(path)
		if err != nil {
			return err
		}
		defer f.Abort()
		if err := writePredictionsParquet(f, preds, threshold); err != nil {
			return err
		}
		sum, err := fileSHA256(f.Name())
		if err != nil {
			return err
		}
		if err := writeExtras(path, sum, preds, attrs); err != nil {
			return err
		}
		return f.Commit()
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(append([]string{ColSubjectID, ColPredictionTime, ColLabel, ColPredicted, ColProbability}, attrs...))
	rec := make([]string, 5+len(attrs))
	for _, p := range preds {
		rec[0] = strconv.FormatInt(p.SubjectID, 10)
		rec[1] = time.UnixMicro(p.PredictionTime).UTC().Format("2006-01-02T15:04:05.999999Z")
		rec[2] = strconv.FormatBool(p.Label)
		rec[3] = strconv.FormatBool(p.Score >= threshold)
		rec[4] = strconv.FormatFloat(p.Score, 'g', -1, 64)
		for j, a := range attrs {
			rec[5+j] = p.Attrs[a]
		}
		w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return data.WriteFileAtomic(path, buf.Bytes())
}

func attrNames(preds []Prediction) []string {
	set := map[string]bool{}
	for _, p := range preds {
		for k := range p.Attrs {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		switch k {
		case ColSubjectID, ColPredictionTime, ColLabel, ColPredicted, ColProbability:
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var standardCols = []string{ColSubjectID, ColPredictionTime, ColLabel, ColPredicted, ColProbability}

// PredictionSchema is the Arrow schema of a predictions Parquet file: meds-evaluation's
// PredictionSchema (meds-evaluation 0.0.x, meds_evaluation/schema.py), every field nullable as
// pyarrow's pa.schema makes them, prediction_time without a time zone (Parquet
// TIMESTAMP(MICROS, isAdjustedToUTC=false)).
var PredictionSchema = arrow.NewSchema([]arrow.Field{
	{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: ColPredictionTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: ColLabel, Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: ColPredicted, Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: ColProbability, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
}, nil)

func writePredictionsParquet(f *data.AtomicFile, preds []Prediction, threshold float64) error {
	return data.WriteTableTo(f, PredictionSchema, func(b *array.RecordBuilder) {
		for _, p := range preds {
			b.Field(0).(*array.Int64Builder).Append(p.SubjectID)
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(p.PredictionTime))
			b.Field(2).(*array.BooleanBuilder).Append(p.Label)
			b.Field(3).(*array.BooleanBuilder).Append(p.Score >= threshold)
			b.Field(4).(*array.Float64Builder).Append(p.Score)
		}
	})
}

// ExtrasHashKey is the schema metadata key of an extras file that holds the SHA-256 (hex) of
// the predictions file it belongs to.
const ExtrasHashKey = "medseq.predictions_sha256"

// floatAttrs are the attributes an extras file always stores as float64 when numeric.
var floatAttrs = map[string]bool{AgeColumn: true, ColRawProbability: true}

// attrType is the Arrow type of an attribute column: int64 when every value is an integer,
// float64 when every value is a finite number, string otherwise.
func attrType(preds []Prediction, name string) arrow.DataType {
	isInt := !floatAttrs[name]
	for _, p := range preds {
		v, ok := p.Attrs[name]
		if !ok {
			continue
		}
		if isInt {
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				isInt = false
			}
		}
		if f, err := strconv.ParseFloat(v, 64); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return arrow.BinaryTypes.String
		}
	}
	if isInt {
		return arrow.PrimitiveTypes.Int64
	}
	return arrow.PrimitiveTypes.Float64
}

// writeExtras writes the attributes of preds beside the predictions file path (see
// WritePredictions), or removes a stale extras file when there are none.
func writeExtras(path, sum string, preds []Prediction, attrs []string) error {
	extra := modelrepo.PredictionsExtraPath(path)
	if len(attrs) == 0 {
		if err := os.Remove(extra); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", extra, err)
		}
		return nil
	}
	fields := []arrow.Field{
		{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: ColPredictionTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	}
	for _, a := range attrs {
		fields = append(fields, arrow.Field{Name: a, Type: attrType(preds, a), Nullable: true})
	}
	md := arrow.NewMetadata([]string{ExtrasHashKey}, []string{sum})
	return data.WriteTable(extra, arrow.NewSchema(fields, &md), func(b *array.RecordBuilder) {
		for _, p := range preds {
			b.Field(0).(*array.Int64Builder).Append(p.SubjectID)
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(p.PredictionTime))
			for j, a := range attrs {
				v, ok := p.Attrs[a]
				if !ok {
					b.Field(2 + j).AppendNull()
					continue
				}
				// The values parse: attrType chose the type from them.
				switch fb := b.Field(2 + j).(type) {
				case *array.Int64Builder:
					n, _ := strconv.ParseInt(v, 10, 64)
					fb.Append(n)
				case *array.Float64Builder:
					f, _ := strconv.ParseFloat(v, 64)
					fb.Append(f)
				case *array.StringBuilder:
					fb.Append(v)
				}
			}
		}
	})
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// joinExtras adds the attributes of the extras file beside path, if any, to preds.
func joinExtras(path string, preds []Prediction) ([]Prediction, error) {
	extra := modelrepo.PredictionsExtraPath(path)
	if _, err := os.Stat(extra); errors.Is(err, os.ErrNotExist) {
		return preds, nil
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return nil, err
	}
	type key struct{ id, t int64 }
	rows := make(map[key][]int, len(preds))
	for i, p := range preds {
		k := key{p.SubjectID, p.PredictionTime}
		rows[k] = append(rows[k], i)
	}
	got, err := extrasHash(extra)
	if err != nil {
		return nil, err
	}
	if got != sum {
		return nil, fmt.Errorf("read %s: it was not written with %s as it is now (its %s does not match): "+
			"write the predictions again, or remove it", extra, path, ExtrasHashKey)
	}
	n := 0
	err = data.ReadTable(extra, func(rec arrow.RecordBatch) error {
		ids, ok1 := fieldByName(rec, ColSubjectID).(*array.Int64)
		times, ok2 := fieldByName(rec, ColPredictionTime).(*array.Timestamp)
		if !ok1 || !ok2 {
			return fmt.Errorf("read %s: want subject_id int64 and prediction_time timestamp columns", extra)
		}
		unit := times.DataType().(*arrow.TimestampType).Unit
		for i := 0; i < int(rec.NumRows()); i++ {
			k := key{ids.Value(i), times.Value(i).ToTime(unit).UnixMicro()}
			idx := rows[k]
			if len(idx) == 0 {
				return fmt.Errorf("read %s: row %d (subject %d at %s) has no prediction in %s",
					extra, n+i+1, k.id, data.TimeOf(k.t).Format(time.RFC3339Nano), path)
			}
			p := &preds[idx[0]]
			rows[k] = idx[1:]
			for j, f := range rec.Schema().Fields() {
				if f.Name == ColSubjectID || f.Name == ColPredictionTime || rec.Column(j).IsNull(i) {
					continue
				}
				if p.Attrs == nil {
					p.Attrs = make(map[string]string, len(rec.Schema().Fields())-2)
				}
				p.Attrs[f.Name] = cellText(rec.Column(j), i)
			}
		}
		n += int(rec.NumRows())
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n != len(preds) {
		return nil, fmt.Errorf("read %s: %d rows for the %d predictions of %s", extra, n, len(preds), path)
	}
	return preds, nil
}

// extrasHash is the ExtrasHashKey value in the Parquet key-value metadata of an extras file
// ("" when absent).
func extrasHash(path string) (string, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	defer pf.Close()
	if v := pf.MetaData().KeyValueMetadata().FindValue(ExtrasHashKey); v != nil {
		return *v, nil
	}
	return "", nil
}

func fieldByName(rec arrow.RecordBatch, name string) arrow.Array {
	if idx := rec.Schema().FieldIndices(name); len(idx) > 0 {
		return rec.Column(idx[0])
	}
	return nil
}

func readPredictionsParquet(path string) ([]Prediction, error) {
	var out []Prediction
	row := 0
	err := data.ReadTable(path, func(rec arrow.RecordBatch) error {
		b, err := parquetBatchOf(path, rec, row)
		if err != nil {
			return err
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			p, err := b.prediction(i)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		row += int(rec.NumRows())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// isStandardColumn reports whether name is one of the five MEDS-evaluation columns; every
// other column of a predictions table is an attribute.
func isStandardColumn(name string) bool {
	switch name {
	case ColSubjectID, ColPredictionTime, ColLabel, ColPredicted, ColProbability:
		return true
	}
	return false
}

// parquetBatch is one record batch of a predictions Parquet file with its columns found.
type parquetBatch struct {
	path                      string
	rec                       arrow.RecordBatch
	row                       int // rows of the file before this batch
	ids, times, labels, probs arrow.Array
	attrCols                  []int // indexes of the attribute columns
}

// parquetBatchOf finds the required and attribute columns of rec, the batch of path that
// follows row rows.
func parquetBatchOf(path string, rec arrow.RecordBatch, row int) (*parquetBatch, error) {
	b := &parquetBatch{path: path, rec: rec, row: row}
	for _, c := range []struct {
		name string
		dst  *arrow.Array
	}{{ColSubjectID, &b.ids}, {ColPredictionTime, &b.times}, {ColLabel, &b.labels}, {ColProbability, &b.probs}} {
		idx := rec.Schema().FieldIndices(c.name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("read %s: missing column %s (want %s)",
				path, c.name, strings.Join(standardCols, ", "))
		}
		*c.dst = rec.Column(idx[0])
	}
	for i, f := range rec.Schema().Fields() {
		if !isStandardColumn(f.Name) {
			b.attrCols = append(b.attrCols, i)
		}
	}
	return b, nil
}

// bad is the error for the cell of row i (in this batch) and column c.
func (b *parquetBatch) bad(i int, c string, err error) error {
	return fmt.Errorf("read %s: row %d, column %s: %s", b.path, b.row+i+1, c, err.Error())
}

// prediction reads row i of the batch.
func (b *parquetBatch) prediction(i int) (Prediction, error) {
	var p Prediction
	var err error
	if p.SubjectID, err = subjectIDAt(b.ids, i); err != nil {
		return p, b.bad(i, ColSubjectID, err)
	}
	if p.PredictionTime, err = predictionTimeAt(b.times, i); err != nil {
		return p, b.bad(i, ColPredictionTime, err)
	}
	if p.Label, err = labelAt(b.labels, i); err != nil {
		return p, b.bad(i, ColLabel, err)
	}
	if p.Score, err = probabilityAt(b.probs, i); err != nil {
		return p, b.bad(i, ColProbability, err)
	}
	for _, j := range b.attrCols {
		a := b.rec.Column(j)
		if a.IsNull(i) {
			continue
		}
		if p.Attrs == nil {
			p.Attrs = make(map[string]string, len(b.attrCols))
		}
		p.Attrs[b.rec.Schema().Field(j).Name] = cellText(a, i)
	}
	return p, nil
}

var errNull = errors.New("null")

// subjectIDAt is the subject ID in cell i of a, an integer column.
func subjectIDAt(a arrow.Array, i int) (int64, error) {
	if a.IsNull(i) {
		return 0, errNull
	}
	switch c := a.(type) {
	case *array.Int64:
		return c.Value(i), nil
	case *array.Int32:
		return int64(c.Value(i)), nil
	case *array.Uint32:
		return int64(c.Value(i)), nil
	case *array.Uint64:
		return int64(c.Value(i)), nil
	}
	return 0, fmt.Errorf("type %s, want an integer", a.DataType())
}

// predictionTimeAt is the time in cell i of a, in microseconds since the Unix epoch: a
// timestamp, a date, or an integer count of microseconds.
func predictionTimeAt(a arrow.Array, i int) (int64, error) {
	if a.IsNull(i) {
		return 0, errNull
	}
	switch c := a.(type) {
	case *array.Timestamp:
		unit := c.DataType().(*arrow.TimestampType).Unit
		return c.Value(i).ToTime(unit).UnixMicro(), nil
	case *array.Int64:
		return c.Value(i), nil
	case *array.Date32:
		return c.Value(i).ToTime().UnixMicro(), nil
	}
	return 0, fmt.Errorf("type %s, want a timestamp", a.DataType())
}

// labelAt is the label in cell i of a: a boolean, or an integer 0 or 1.
func labelAt(a arrow.Array, i int) (bool, error) {
	if a.IsNull(i) {
		return false, errNull
	}
	switch c := a.(type) {
	case *array.Boolean:
		return c.Value(i), nil
	case *array.Int64:
		v := c.Value(i)
		if v != 0 && v != 1 {
			return false, fmt.Errorf("%d is not 0 or 1", v)
		}
		return v == 1, nil
	}
	return false, fmt.Errorf("type %s, want boolean", a.DataType())
}

// probabilityAt is the probability in cell i of a, a floating-point column; CheckScore
// must accept it.
func probabilityAt(a arrow.Array, i int) (float64, error) {
	if a.IsNull(i) {
		return 0, errNull
	}
	var p float64
	switch c := a.(type) {
	case *array.Float64:
		p = c.Value(i)
	case *array.Float32:
		p = float64(c.Value(i))
	default:
		return 0, fmt.Errorf("type %s, want a floating-point probability", a.DataType())
	}
	return p, CheckScore(p)
}

// cellText renders one non-null Arrow cell as text: numbers as their shortest decimal text.
func cellText(a arrow.Array, i int) string {
	switch c := a.(type) {
	case *array.String:
		return c.Value(i)
	case *array.LargeString:
		return c.Value(i)
	case *array.Float64:
		return strconv.FormatFloat(c.Value(i), 'g', -1, 64)
	case *array.Float32:
		return strconv.FormatFloat(float64(c.Value(i)), 'g', -1, 32)
	case *array.Int64:
		return strconv.FormatInt(c.Value(i), 10)
	case *array.Int32:
		return strconv.FormatInt(int64(c.Value(i)), 10)
	case *array.Boolean:
		return strconv.FormatBool(c.Value(i))
	}
	return a.ValueStr(i)
}

func readPredictionsCSV(path string, r io.Reader) ([]Prediction, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	h, err := readCSVHeader(path, cr)
	if err != nil {
		return nil, err
	}
	var out []Prediction
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		p, err := h.prediction(rec, line)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// csvHeader is the header of a predictions CSV file: its column names, where each is, and
// which are attributes.
type csvHeader struct {
	path     string
	names    []string
	idx      map[string]int // by name, trimmed of spaces
	attrCols []int
}

// readCSVHeader reads the header line of path and checks that it names the required columns.
func readCSVHeader(path string, cr *csv.Reader) (*csvHeader, error) {
	names, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("read %s: empty file (want a header with %s)", path, strings.Join(standardCols, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	h := &csvHeader{path: path, names: append([]string(nil), names...), idx: map[string]int{}}
	if len(h.names) > 0 {
		h.names[0] = strings.TrimPrefix(h.names[0], "\ufeff")
	}
	for i, n := range h.names {
		h.idx[strings.TrimSpace(n)] = i
	}
	for _, c := range []string{ColSubjectID, ColPredictionTime, ColLabel, ColProbability} {
		if _, ok := h.idx[c]; !ok {
			return nil, fmt.Errorf("read %s: line 1: missing column %s (want %s)",
				path, c, strings.Join(standardCols, ", "))
		}
	}
	for i, n := range h.names {
		if !isStandardColumn(strings.TrimSpace(n)) {
			h.attrCols = append(h.attrCols, i)
		}
	}
	return h, nil
}

// timeFormats describes the prediction times a CSV file may hold.
const timeFormats = "a date/time (YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH:MM]) or integer microseconds"

// prediction reads rec, the record on the given line.
func (h *csvHeader) prediction(rec []string, line int) (Prediction, error) {
	bad := func(c, format string, args ...any) error {
		return fmt.Errorf("read %s: line %d, column %s: %s", h.path, line, c, fmt.Sprintf(format, args...))
	}
	field := func(c string) string { return strings.TrimSpace(rec[h.idx[c]]) }
	var p Prediction
	var err error
	v := field(ColSubjectID)
	if p.SubjectID, err = strconv.ParseInt(v, 10, 64); err != nil {
		return p, bad(ColSubjectID, "%q is not an integer", v)
	}
	v = field(ColPredictionTime)
	t, ok := parseTime(v)
	if !ok {
		return p, bad(ColPredictionTime, "%q is not %s", v, timeFormats)
	}
	p.PredictionTime = t
	v = field(ColLabel)
	if p.Label, ok = parseLabel(v); !ok {
		return p, bad(ColLabel, "%q is not a boolean", v)
	}
	v = field(ColProbability)
	if p.Score, err = strconv.ParseFloat(v, 64); err != nil {
		return p, bad(ColProbability, "%q is not a number", v)
	}
	if err := CheckScore(p.Score); err != nil {
		return p, bad(ColProbability, "%v", err)
	}
	for _, j := range h.attrCols {
		if rec[j] == "" {
			continue
		}
		if p.Attrs == nil {
			p.Attrs = make(map[string]string, len(h.attrCols))
		}
		p.Attrs[strings.TrimSpace(h.names[j])] = rec[j]
	}
	return p, nil
}

// parseLabel reads a CSV label: true, 1, t or yes; false, 0, f or no (any case).
func parseLabel(v string) (label, ok bool) {
	switch strings.ToLower(v) {
	case "true", "1", "t", "yes":
		return true, true
	case "false", "0", "f", "no":
		return false, true
	}
	return false, false
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

func parseTime(s string) (int64, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMicro(), true
		}
	}
	return 0, false
}
