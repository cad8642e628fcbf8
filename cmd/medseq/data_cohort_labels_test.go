package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/modelrepo"
)

// writeACESLabels writes labels in the layout ACES writes (all six columns of the MEDS label
// schema, the value columns other than boolean_value all null), plus for each positive a
// second, earlier prediction time, a repeated row, a row with a null boolean_value and one
// of a subject the dataset does not hold.
func writeACESLabels(t *testing.T, path string, labels []data.Label) (rows int) {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "subject_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "prediction_time", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: "boolean_value", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "integer_value", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "float_value", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "categorical_value", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	err := data.WriteTable(path, sc, func(b *array.RecordBuilder) {
		add := func(id, pt int64, v *bool) {
			b.Field(0).(*array.Int64Builder).Append(id)
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(pt))
			if v == nil {
				b.Field(2).AppendNull()
			} else {
				b.Field(2).(*array.BooleanBuilder).Append(*v)
			}
			for j := 3; j < 6; j++ {
				b.Field(j).AppendNull()
			}
			rows++
		}
		for _, l := range labels {
			v := l.Value
			add(l.SubjectID, l.PredictionTime, &v)
			if v {
				add(l.SubjectID, l.PredictionTime-180*data.MicrosPerDay, &v)
			}
		}
		add(labels[0].SubjectID, labels[0].PredictionTime, &labels[0].Value) // repeated
		add(labels[1].SubjectID, labels[1].PredictionTime+data.MicrosPerDay, nil)
		yes := true
		add(987654321, labels[0].PredictionTime, &yes)
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestDataCohortLabels: data cohort --labels builds a cohort folder from an ACES-layout label
// file that every later stage reads unchanged (tokenizer, XGBoost, predict, eval metrics),
// censoring at the labels' prediction times minus --gap; the predictions pass
// meds-evaluation's schema with medseq's columns beside them.
func TestDataCohortLabels(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	dir := t.TempDir()
	meds, ref := filepath.Join(dir, "meds"), filepath.Join(dir, "ref")
	if code, _, stderr := runCmd(t, "data", "synth", "--out", meds, "--subjects", "1500"); code != 0 {
		t.Fatalf("synth: %s", stderr)
	}
	if code, _, stderr := runCmd(t, "data", "cohort", "--meds", meds, "--target", "ICD10/E11,SNOMED/44054006", "--out", ref); code != 0 {
		t.Fatalf("reference cohort: %s", stderr)
	}
	rc, err := data.LoadCohort(ref)
	if err != nil {
		t.Fatal(err)
	}
	labels := filepath.Join(dir, "task", "labels.parquet")
	os.MkdirAll(filepath.Dir(labels), 0o755)
	rows := writeACESLabels(t, labels, rc.Labels)

	// The flags that build labels from target codes do not apply.
	cohort := filepath.Join(dir, "cohort")
	for _, extra := range [][]string{{"--follow-up", "2y"}, {"--lead", "2y"}, {"--negatives", "random-date"}} {
		args := append([]string{"data", "cohort", "--meds", meds, "--labels", labels, "--out", cohort}, extra...)
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "does not apply with --labels") {
			t.Errorf("%v: exit %d %s", extra, code, stderr)
		}
	}
	if code, _, stderr := runCmd(t, "data", "cohort", "--meds", meds, "--out", cohort); code != 2 || !strings.Contains(stderr, "--labels") {
		t.Errorf("neither --target nor --labels: exit %d %s", code, stderr)
	}

	code, stdout, stderr := runCmd(t, "data", "cohort", "--meds", meds, "--labels", filepath.Dir(labels), "--out", cohort, "--gap", "30d")
	if code != 0 {
		t.Fatalf("data cohort --labels: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"label file         " + labels, "ignored columns    integer_value, float_value, categorical_value",
		data.ExclNullValue, data.ExclDuplicate, data.ExclNotInData, "KS distance"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "oracle") {
		t.Errorf("the synth oracle scores its own outcome, not a label file's:\n%s", stdout)
	}
	c, err := data.LoadCohort(cohort)
	if err != nil {
		t.Fatal(err)
	}
	var rep data.CohortReport
	buf, _ := os.ReadFile(filepath.Join(cohort, data.CohortReportFile))
	if err := json.Unmarshal(buf, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Source != "labels" || rep.LabelRows != rows || rep.Labels != len(c.Labels) || rep.Labels < len(rc.Labels) || c.Gap != 30*data.MicrosPerDay {
		t.Errorf("report: source %s, %d rows (want %d), %d labels (reference %d), gap %d", rep.Source, rep.LabelRows, rows, rep.Labels, len(rc.Labels), c.Gap)
	}
	// Splits by subject, from the dataset's subject_splits: every label of a subject in one.
	split := map[int64]string{}
	for _, l := range c.Labels {
		if s, ok := split[l.SubjectID]; ok && s != l.Split {
			t.Fatalf("subject %d in %s and %s", l.SubjectID, s, l.Split)
		}
		split[l.SubjectID] = l.Split
	}
	in, ok := c.Manifest.Input(data.InputLabels)
	if fp, _ := data.Fingerprint(filepath.Dir(labels)); !ok || in.Fingerprint != fp {
		t.Errorf("manifest input %+v, want the label folder's fingerprint %s", in, fp)
	}

	tok, model := filepath.Join(dir, "tok"), filepath.Join(dir, "models", "task", "1")
	if code, _, stderr := runCmd(t, "tokenize", "build", "--meds", meds, "--cohort", cohort, "--out", tok); code != 0 {
		t.Fatalf("tokenize build: %s", stderr)
	}
	if code, _, stderr := runCmd(t, "train", "xgboost", "--meds", meds, "--cohort", cohort, "--tokenizer", tok, "--out", model, "--rounds", "40"); code != 0 {
		t.Fatalf("train xgboost: %s", stderr)
	}
	man, err := modelrepo.ReadManifest(model)
	if err != nil || man.Gap.Micros() != c.Gap {
		t.Errorf("model manifest gap %v (%v), want the cohort's", man, err)
	}
	pred := filepath.Join(dir, "held_out.parquet")
	code, stdout, stderr = runCmd(t, "predict", "--model", model, "--meds", meds, "--cohort", cohort, "--split", "held_out", "--out", pred)
	if code != 0 || !strings.Contains(stdout, modelrepo.PredictionsExtraPath(pred)) {
		t.Fatalf("predict: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, p := range []string{pred, modelrepo.PredictionsFile(model, "held_out")} {
		checkPredictionColumns(t, p)
		got, err := eval.ReadPredictions(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eval.RawScores(got); err != nil || got[0].Attrs["sex"] == "" || got[0].Attrs["age"] == "" {
			t.Errorf("%s: attributes %v, raw scores: %v", p, got[0].Attrs, err)
		}
	}
	out, stderr, err := evalCmd(t, "--predictions", pred, "--segments", "sex", "--bootstrap", "20")
	if err != nil || !strings.Contains(out, "\nAUROC ") || !strings.Contains(out, "sex=F") {
		t.Errorf("eval metrics: %v\n%s\n%s", err, out, stderr)
	}
}

// checkPredictionColumns: the predictions file has meds-evaluation's five columns only; the
// extras file beside it has age and raw_probability as numbers.
func checkPredictionColumns(t *testing.T, path string) {
	t.Helper()
	cols := func(p string) map[string]arrow.DataType {
		out := map[string]arrow.DataType{}
		err := data.ReadTable(p, func(rec arrow.RecordBatch) error {
			for _, f := range rec.Schema().Fields() {
				out[f.Name] = f.Type
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	main := cols(path)
	if len(main) != 5 || main[eval.ColProbability].ID() != arrow.FLOAT64 || main[eval.ColPredicted].ID() != arrow.BOOL {
		t.Errorf("%s: columns %v", path, main)
	}
	extra := cols(modelrepo.PredictionsExtraPath(path))
	if extra["age"].ID() != arrow.FLOAT64 || extra[eval.ColRawProbability].ID() != arrow.FLOAT64 || extra["sex"].ID() != arrow.STRING {
		t.Errorf("%s extras: columns %v", path, extra)
	}
}

// TestDataCohortLabelsACESSample: the same on ACES' own sample MEDS data
// (../shared/data/meds/aces_sample: no birth codes, so every age is unknown), with a task in
// the ACES layout (a prediction 24 h and 48 h into each admission: is a creatinine result
// coming within two days?), through to eval report with the cohort check.
func TestDataCohortLabelsACESSample(t *testing.T) {
	meds := filepath.Join("..", "..", "..", "shared", "data", "meds", "aces_sample")
	if _, err := os.Stat(meds); err != nil {
		t.Skip("no ../shared/data/meds/aces_sample")
	}
	task := acesCreatinineTask(t, meds)
	dir := t.TempDir()
	labels, cohort := filepath.Join(dir, "creatinine.parquet"), filepath.Join(dir, "cohort")
	writeACESLabels(t, labels, task)
	code, stdout, stderr := runCmd(t, "data", "cohort", "--meds", meds, "--labels", labels, "--out", cohort)
	if code != 0 || !strings.Contains(stdout, "age at prediction  unknown") || !strings.Contains(stdout, "shard folders") {
		t.Fatalf("data cohort: exit %d\n%s\n%s", code, stdout, stderr)
	}
	tok, model := filepath.Join(dir, "tok"), filepath.Join(dir, "models", "creatinine", "1")
	steps := [][]string{
		{"tokenize", "build", "--meds", meds, "--cohort", cohort, "--out", tok, "--min-count", "1"},
		{"train", "xgboost", "--meds", meds, "--cohort", cohort, "--tokenizer", tok, "--out", model, "--rounds", "30"},
		{"predict", "--model", model, "--meds", meds, "--cohort", cohort, "--out", filepath.Join(dir, "p.parquet")},
		{"eval", "report", "--model", model, "--cohort", cohort, "--out", filepath.Join(dir, "report"), "--bootstrap", "20"},
	}
	for _, args := range steps {
		if code, stdout, stderr := runCmd(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args[:2], code, stdout, stderr)
		}
	}
	preds, err := eval.ReadPredictions(filepath.Join(dir, "p.parquet"))
	if err != nil || len(preds) == 0 {
		t.Fatal(err)
	}
	if _, ok := preds[0].Attrs["age"]; ok || preds[0].Attrs["sex"] == "" {
		t.Errorf("attributes %v: no age without a birth code, sex from SEX//female|male", preds[0].Attrs)
	}
}

// acesCreatinineTask labels ACES' sample as an ACES task would: 24 and 48 hours after each
// admission, whether a creatinine result follows within two days.
func acesCreatinineTask(t *testing.T, meds string) []data.Label {
	t.Helper()
	ds, err := data.Open(meds)
	if err != nil {
		t.Fatal(err)
	}
	var task []data.Label
	err = ds.ForEachSubject(context.Background(), func(s data.Subject) error {
		for _, e := range s.Events {
			if !strings.HasPrefix(ds.Codes.Name(e.Code), "ADMISSION//") {
				continue
			}
			for _, h := range []int64{24, 48} {
				pt := e.Time + h*3600*1_000_000
				y := false
				for _, f := range s.Events {
					y = y || (ds.Codes.Name(f.Code) == "LAB//creatinine" && f.Time > pt && f.Time <= pt+2*data.MicrosPerDay)
				}
				task = append(task, data.Label{SubjectID: s.ID, PredictionTime: pt, Value: y})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return task
}
