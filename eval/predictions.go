package eval

import (
	"bytes"
	"encoding/csv"
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

	"github.com/medseq/medseq/data"
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
func ReadPredictions(path string) ([]Prediction, error) {
	if strings.EqualFold(filepath.Ext(path), ".parquet") {
		return readPredictionsParquet(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readPredictionsCSV(path, f)
}

// WritePredictions writes preds atomically as Parquet (.parquet) or CSV (any other
// extension), attributes as string columns in sorted name order after the five standard
// columns. predicted_boolean_value is Score >= threshold: a model's operating point on its
// calibrated probability (metrics at other thresholds come from Compute, never from that
// column).
func WritePredictions(path string, preds []Prediction, threshold float64) error {
	for i, p := range preds {
		if err := CheckScore(p.Score); err != nil {
			return fmt.Errorf("write %s: prediction %d (subject %d): %w", path, i+1, p.SubjectID, err)
		}
	}
	attrs := attrNames(preds)
	if strings.EqualFold(filepath.Ext(path), ".parquet") {
		return writePredictionsParquet(path, preds, attrs, threshold)
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

func writePredictionsParquet(path string, preds []Prediction, attrs []string, threshold float64) error {
	fields := []arrow.Field{
		{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: ColPredictionTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: ColLabel, Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: ColPredicted, Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: ColProbability, Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}
	for _, a := range attrs {
		fields = append(fields, arrow.Field{Name: a, Type: arrow.BinaryTypes.String, Nullable: true})
	}
	return data.WriteTable(path, arrow.NewSchema(fields, nil), func(b *array.RecordBuilder) {
		for _, p := range preds {
			b.Field(0).(*array.Int64Builder).Append(p.SubjectID)
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(p.PredictionTime))
			b.Field(2).(*array.BooleanBuilder).Append(p.Label)
			b.Field(3).(*array.BooleanBuilder).Append(p.Score >= threshold)
			b.Field(4).(*array.Float64Builder).Append(p.Score)
			for j, a := range attrs {
				if v, ok := p.Attrs[a]; ok {
					b.Field(5 + j).(*array.StringBuilder).Append(v)
				} else {
					b.Field(5 + j).(*array.StringBuilder).AppendNull()
				}
			}
		}
	})
}

func readPredictionsParquet(path string) ([]Prediction, error) {
	var out []Prediction
	row := 0
	err := data.ReadTable(path, func(rec arrow.RecordBatch) error {
		col := func(name string) (arrow.Array, error) {
			if idx := rec.Schema().FieldIndices(name); len(idx) > 0 {
				return rec.Column(idx[0]), nil
			}
			return nil, fmt.Errorf("read %s: missing column %s (want %s)", path, name, strings.Join(standardCols, ", "))
		}
		ids, err := col(ColSubjectID)
		if err != nil {
			return err
		}
		times, err := col(ColPredictionTime)
		if err != nil {
			return err
		}
		labels, err := col(ColLabel)
		if err != nil {
			return err
		}
		probs, err := col(ColProbability)
		if err != nil {
			return err
		}
		var attrCols []int
		for i, f := range rec.Schema().Fields() {
			switch f.Name {
			case ColSubjectID, ColPredictionTime, ColLabel, ColPredicted, ColProbability:
			default:
				attrCols = append(attrCols, i)
			}
		}
		bad := func(i int, c, format string, args ...any) error {
			return fmt.Errorf("read %s: row %d, column %s: %s", path, row+i+1, c, fmt.Sprintf(format, args...))
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			var p Prediction
			if ids.IsNull(i) {
				return bad(i, ColSubjectID, "null")
			}
			switch c := ids.(type) {
			case *array.Int64:
				p.SubjectID = c.Value(i)
			case *array.Int32:
				p.SubjectID = int64(c.Value(i))
			case *array.Uint32:
				p.SubjectID = int64(c.Value(i))
			case *array.Uint64:
				p.SubjectID = int64(c.Value(i))
			default:
				return bad(i, ColSubjectID, "type %s, want an integer", ids.DataType())
			}
			if times.IsNull(i) {
				return bad(i, ColPredictionTime, "null")
			}
			switch c := times.(type) {
			case *array.Timestamp:
				unit := c.DataType().(*arrow.TimestampType).Unit
				p.PredictionTime = c.Value(i).ToTime(unit).UnixMicro()
			case *array.Int64:
				p.PredictionTime = c.Value(i)
			case *array.Date32:
				p.PredictionTime = c.Value(i).ToTime().UnixMicro()
			default:
				return bad(i, ColPredictionTime, "type %s, want a timestamp", times.DataType())
			}
			if labels.IsNull(i) {
				return bad(i, ColLabel, "null")
			}
			switch c := labels.(type) {
			case *array.Boolean:
				p.Label = c.Value(i)
			case *array.Int64:
				if v := c.Value(i); v == 0 || v == 1 {
					p.Label = v == 1
				} else {
					return bad(i, ColLabel, "%d is not 0 or 1", v)
				}
			default:
				return bad(i, ColLabel, "type %s, want boolean", labels.DataType())
			}
			if probs.IsNull(i) {
				return bad(i, ColProbability, "null")
			}
			switch c := probs.(type) {
			case *array.Float64:
				p.Score = c.Value(i)
			case *array.Float32:
				p.Score = float64(c.Value(i))
			default:
				return bad(i, ColProbability, "type %s, want a floating-point probability", probs.DataType())
			}
			if err := CheckScore(p.Score); err != nil {
				return bad(i, ColProbability, "%v", err)
			}
			for _, j := range attrCols {
				a := rec.Column(j)
				if a.IsNull(i) {
					continue
				}
				if p.Attrs == nil {
					p.Attrs = make(map[string]string, len(attrCols))
				}
				p.Attrs[rec.Schema().Field(j).Name] = cellText(a, i)
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
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("read %s: empty file (want a header with %s)", path, strings.Join(standardCols, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	idx := map[string]int{}
	for i, h := range header {
		idx[strings.TrimSpace(h)] = i
	}
	for _, c := range []string{ColSubjectID, ColPredictionTime, ColLabel, ColProbability} {
		if _, ok := idx[c]; !ok {
			return nil, fmt.Errorf("read %s: line 1: missing column %s (want %s)", path, c, strings.Join(standardCols, ", "))
		}
	}
	var attrCols []int
	for i, h := range header {
		switch strings.TrimSpace(h) {
		case ColSubjectID, ColPredictionTime, ColLabel, ColPredicted, ColProbability:
		default:
			attrCols = append(attrCols, i)
		}
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
		bad := func(c, format string, args ...any) error {
			return fmt.Errorf("read %s: line %d, column %s: %s", path, line, c, fmt.Sprintf(format, args...))
		}
		var p Prediction
		v := strings.TrimSpace(rec[idx[ColSubjectID]])
		if p.SubjectID, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, bad(ColSubjectID, "%q is not an integer", v)
		}
		v = strings.TrimSpace(rec[idx[ColPredictionTime]])
		t, ok := parseTime(v)
		if !ok {
			return nil, bad(ColPredictionTime, "%q is not a date/time (YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH:MM]) or integer microseconds", v)
		}
		p.PredictionTime = t
		v = strings.TrimSpace(rec[idx[ColLabel]])
		switch strings.ToLower(v) {
		case "true", "1", "t", "yes":
			p.Label = true
		case "false", "0", "f", "no":
		default:
			return nil, bad(ColLabel, "%q is not a boolean", v)
		}
		v = strings.TrimSpace(rec[idx[ColProbability]])
		if p.Score, err = strconv.ParseFloat(v, 64); err != nil {
			return nil, bad(ColProbability, "%q is not a number", v)
		}
		if err := CheckScore(p.Score); err != nil {
			return nil, bad(ColProbability, "%v", err)
		}
		for _, j := range attrCols {
			if rec[j] == "" {
				continue
			}
			if p.Attrs == nil {
				p.Attrs = make(map[string]string, len(attrCols))
			}
			p.Attrs[strings.TrimSpace(header[j])] = rec[j]
		}
		out = append(out, p)
	}
	return out, nil
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
