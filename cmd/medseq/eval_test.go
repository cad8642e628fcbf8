package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/medseq/medseq/eval"
)

// evalCmd calls runEvalMetrics directly (the command is registered in main.go by the lead).
func evalCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), log: slog.New(slog.NewTextHandler(&errb, nil))}
	err := runEvalMetrics(context.Background(), e, args)
	return out.String(), errb.String(), err
}

func writeEvalPreds(t *testing.T, path string, seed uint64, n int) []eval.Prediction {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var preds []eval.Prediction
	for i := 0; i < n; i++ {
		y := rng.Float64() < 0.3
		z := rng.NormFloat64()
		if y {
			z += 1.5
		}
		preds = append(preds, eval.Prediction{SubjectID: int64(i / 2), PredictionTime: int64(i % 2), Label: y,
			Score: 1 / (1 + math.Exp(-z+1)), Attrs: map[string]string{"sex": []string{"F", "M"}[i%2], "age": strconv.Itoa(30 + i%50)}})
	}
	if err := eval.WritePredictions(path, preds, 0.5); err != nil {
		t.Fatal(err)
	}
	return preds
}

func TestEvalMetrics(t *testing.T) {
	dir := t.TempDir()
	test := filepath.Join(dir, "test.parquet")
	tune := filepath.Join(dir, "tune.csv")
	writeEvalPreds(t, test, 1, 600)
	writeEvalPreds(t, tune, 2, 400)
	out, stderr, err := evalCmd(t, "--predictions", test, "--tuning", tune, "--threshold", "youden", "--segments", "sex", "--bootstrap", "50", "--seed", "3", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var rep evalMetricsReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	m := rep.Metrics
	if m.N != 600 || m.Subjects != 300 || m.Threshold.ChosenOn != "tuning" || m.Threshold.Method != eval.ThresholdYouden || m.Bootstrap == nil || m.Bootstrap.Resamples != 50 {
		t.Errorf("metrics %+v", m)
	}
	if a := m.Sample.AUROC; !(a.Lo < a.Value && a.Value < a.Hi) {
		t.Errorf("AUROC %+v", a)
	}
	cols := map[string]int{}
	for _, s := range rep.Segments {
		cols[s.Column]++
	}
	if cols["sex"] != 2 || cols[eval.AgeBandColumn] == 0 {
		t.Errorf("segments %v", cols)
	}
	// Same seed, same output.
	again, _, _ := evalCmd(t, "--predictions", test, "--tuning", tune, "--threshold", "youden", "--segments", "sex", "--bootstrap", "50", "--seed", "3", "--json")
	if again != out {
		t.Error("same seed gave different output")
	}
}

func TestEvalMetricsErrors(t *testing.T) {
	dir := t.TempDir()
	test := filepath.Join(dir, "test.csv")
	writeEvalPreds(t, test, 1, 50)
	for _, c := range []struct {
		args  []string
		want  string
		usage bool
	}{
		{nil, "--predictions is required", true},
		{[]string{"--predictions", test, "--threshold", "sens=2"}, "target sensitivity", true},
		{[]string{"--predictions", test, "--tuning", test}, "--tuning", true},
		{[]string{"--predictions", test, "--segments", "nope", "--bootstrap", "0"}, `"nope"`, false},
		{[]string{"--predictions", filepath.Join(dir, "absent.csv")}, "absent.csv", false},
	} {
		_, _, err := evalCmd(t, c.args...)
		var ue usageError
		isUsage := err != nil && errorsAs(err, &ue)
		if err == nil || !strings.Contains(err.Error(), c.want) || isUsage != c.usage {
			t.Errorf("%v: %v (usage %v); want %q", c.args, err, isUsage, c.want)
		}
	}
}

func errorsAs(err error, ue *usageError) bool {
	u, ok := err.(usageError)
	if ok {
		*ue = u
	}
	return ok
}
