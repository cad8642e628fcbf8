package eval

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/medseq/medseq/data"
)

func TestPredictionsRoundTrip(t *testing.T) {
	t0 := time.Date(2020, 3, 1, 12, 30, 0, 123456000, time.UTC).UnixMicro()
	preds := []Prediction{
		{SubjectID: 1, PredictionTime: t0, Label: true, Score: 0.8125, Attrs: map[string]string{"sex": "F", "age": "61.5"}},
		{SubjectID: 2, PredictionTime: t0 + 1, Label: false, Score: 0.1, Attrs: map[string]string{"sex": "M"}},
		{SubjectID: 3, PredictionTime: -86400e6, Label: false, Score: 0},
	}
	dir := t.TempDir()
	for _, name := range []string{"p.parquet", "p.csv"} {
		path := filepath.Join(dir, name)
		if err := WritePredictions(path, preds, 0.5); err != nil {
			t.Fatal(err)
		}
		got, err := ReadPredictions(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, preds) {
			t.Errorf("%s: read back\n%+v\nwant\n%+v", name, got, preds)
		}
	}
	if err := WritePredictions(filepath.Join(dir, "bad.csv"), []Prediction{{Score: math.NaN()}}, 0.5); err == nil {
		t.Error("NaN written")
	}
}

func TestReadPredictionsCSVErrors(t *testing.T) {
	dir := t.TempDir()
	head := "subject_id,prediction_time,boolean_value,predicted_boolean_value,predicted_boolean_probability,region\n"
	for _, c := range []struct{ body, want string }{
		{"1,2020-01-01,true,true,0.7,north\n2,2020-01-01,false,false,NaN,south\n", "line 3, column predicted_boolean_probability: probability is NaN"},
		{"1,2020-01-01,true,true,1.2,north\n", "line 2, column predicted_boolean_probability: probability 1.2 is outside [0, 1]"},
		{"x,2020-01-01,true,true,0.2,north\n", "line 2, column subject_id"},
		{"1,yesterday,true,true,0.2,north\n", "line 2, column prediction_time"},
		{"1,2020-01-01,maybe,true,0.2,north\n", "line 2, column boolean_value"},
	} {
		path := filepath.Join(dir, "p.csv")
		os.WriteFile(path, []byte(head+c.body), 0o644)
		_, err := ReadPredictions(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: %v; want %q", c.body, err, c.want)
		}
	}
	path := filepath.Join(dir, "nohead.csv")
	os.WriteFile(path, []byte("subject_id,boolean_value\n"), 0o644)
	if _, err := ReadPredictions(path); err == nil || !strings.Contains(err.Error(), "missing column prediction_time") {
		t.Errorf("missing column: %v", err)
	}
	// Integer microsecond times and numbers as attributes.
	path = filepath.Join(dir, "ok.csv")
	os.WriteFile(path, []byte(head+"5,1600000000000000,1,,0.25,7\n"), 0o644)
	got, err := ReadPredictions(path)
	if err != nil || len(got) != 1 || got[0].PredictionTime != 1600000000000000 || !got[0].Label || got[0].Attrs["region"] != "7" {
		t.Errorf("%+v %v", got, err)
	}
}

func TestReadPredictionsParquetRowError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.parquet")
	schema := arrow.NewSchema([]arrow.Field{
		{Name: ColSubjectID, Type: arrow.PrimitiveTypes.Int64},
		{Name: ColPredictionTime, Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{Name: ColLabel, Type: arrow.FixedWidthTypes.Boolean},
		{Name: ColProbability, Type: arrow.PrimitiveTypes.Float32},
		{Name: "age", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	err := data.WriteTable(path, schema, func(b *array.RecordBuilder) {
		b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2}, nil)
		b.Field(1).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{0, 0}, nil)
		b.Field(2).(*array.BooleanBuilder).AppendValues([]bool{true, false}, nil)
		b.Field(3).(*array.Float32Builder).AppendValues([]float32{0.25, float32(math.NaN())}, nil)
		b.Field(4).(*array.Float64Builder).AppendValues([]float64{61.5, 40}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ReadPredictions(path)
	if err == nil || !strings.Contains(err.Error(), "row 2, column predicted_boolean_probability: probability is NaN") {
		t.Errorf("NaN row: %v", err)
	}
	if _, err := ReadPredictions(filepath.Join(dir, "absent.parquet")); err == nil {
		t.Error("absent file read")
	}
}

func segPreds(rng *rand.Rand, n int) []Prediction {
	var out []Prediction
	for i := 0; i < n; i++ {
		region := []string{"north", "south", "east"}[i%3]
		y := rng.Float64() < 0.3
		z := rng.NormFloat64()
		if y {
			z += 1.5
		}
		s := 1 / (1 + math.Exp(-z))
		out = append(out, Prediction{SubjectID: int64(i), Label: y, Score: s, Attrs: map[string]string{
			"region": region, "age": strconv.Itoa(20 + rng.IntN(70)),
		}})
	}
	// a tiny region
	out = append(out, Prediction{SubjectID: int64(n), Label: true, Score: 0.9, Attrs: map[string]string{"region": "isles", "age": "50"}})
	return out
}

func TestSegments(t *testing.T) {
	p := segPreds(rand.New(rand.NewPCG(1, 2)), 1500)
	segs, err := Segments(p, 0.5, SegmentConfig{Columns: []string{"region"}, Metrics: Config{Bootstrap: 20}})
	if err != nil {
		t.Fatal(err)
	}
	var cols = map[string]int{}
	for _, s := range segs {
		cols[s.Column]++
		if s.Value == "isles" {
			if !s.Small || s.Metrics != nil || s.N != 1 || s.Note == "" {
				t.Errorf("tiny segment %+v", s)
			}
		} else if s.Column == "region" && (s.Small || s.Metrics == nil || s.Metrics.Threshold.Value != 0.5 || math.IsNaN(s.Metrics.Sample.AUROC.Lo.Float())) {
			t.Errorf("segment %+v", s)
		}
	}
	if cols["region"] != 4 || cols[AgeBandColumn] == 0 {
		t.Errorf("columns %v", cols)
	}
	if _, err := Segments(p, 0.5, SegmentConfig{Columns: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown column: %v", err)
	}
}

func TestSimpsonParadox(t *testing.T) {
	// Within each hospital model b ranks better, but model a's scores carry the hospital's
	// base rate (high-prevalence hospital scored high), so pooled, a looks better.
	rng := rand.New(rand.NewPCG(8, 8))
	var a, b []Prediction
	id := int64(0)
	for _, h := range []struct {
		name string
		prev float64
		off  float64
	}{{"h1", 0.1, 0}, {"h2", 0.7, 5}, {"h3", 0.3, 2.5}} {
		for i := 0; i < 800; i++ {
			y := rng.Float64() < h.prev
			sig := 0.0
			if y {
				sig = 1
			}
			za := h.off + 0.4*sig + rng.NormFloat64()
			zb := 0.9*sig + rng.NormFloat64()
			attrs := map[string]string{"hospital": h.name}
			a = append(a, Prediction{SubjectID: id, Label: y, Score: sigmoid(za - 2), Attrs: attrs})
			b = append(b, Prediction{SubjectID: id, Label: y, Score: sigmoid(zb - 2)})
			id++
		}
	}
	c, err := CompareSegments(a, b, SegmentConfig{Columns: []string{"hospital"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Aggregate.Diff <= 0 {
		t.Fatalf("setup: aggregate diff %v, want a ahead", c.Aggregate.Diff)
	}
	if len(c.Simpson) != 1 || !c.Simpson[0].AggregateDisagrees || c.Simpson[0].Disagree != 3 || len(c.Warnings) == 0 {
		t.Errorf("simpson %+v warnings %v", c.Simpson, c.Warnings)
	}
	for _, s := range c.Segments {
		if !s.Reversed {
			t.Errorf("segment %s not flagged: %+v", s.Value, s.DeLong)
		}
	}
	if _, err := CompareSegments(a, b[:10], SegmentConfig{}); err == nil {
		t.Error("mismatched rows accepted")
	}
}

func TestCheckCohort(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	var labels []data.Label
	var lens []int
	leak := map[string][]bool{"E11": nil}
	sparse := map[string][]int{"flu": nil}
	for i := 0; i < 1000; i++ {
		y := i%4 == 0
		age := 30 + rng.Float64()*50
		if y {
			age += 10
		}
		labels = append(labels, data.Label{SubjectID: int64(i), Value: y, Age: age})
		lens = append(lens, 50+rng.IntN(100))
		leak["E11"] = append(leak["E11"], y)
		if rng.Float64() < 0.2 {
			sparse["flu"] = append(sparse["flu"], i)
		}
	}
	c, err := CheckCohort(labels, lens, Features{Dense: leak, Sparse: sparse}, CohortCheckConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Leaks) != 1 || c.Leaks[0].Feature != "E11" || c.Leaks[0].AUROC != 1 {
		t.Errorf("leaks %+v", c.Leaks)
	}
	if c.Positive.N != 250 || c.Negative.N != 750 || c.AgeKS <= 0 || c.SeqLenKS >= 0.2 || len(c.Positive.AgeHistogram) != 21 {
		t.Errorf("%+v", c)
	}
	if _, err := CheckCohort(labels, lens[:3], Features{}, CohortCheckConfig{}); err == nil {
		t.Error("mismatched lengths accepted")
	}
}

// BenchmarkBootstrap is the goal of the metrics issue: 1,000 subject resamples over 100k
// predictions (about 3 per subject), every metric under both weightings.
func BenchmarkBootstrap(b *testing.B) {
	p := synthPreds(rand.New(rand.NewPCG(1, 2)), 100_000, 1.2)
	b.ResetTimer()
	for range b.N {
		if _, err := Compute(p, Config{Bootstrap: 1000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
