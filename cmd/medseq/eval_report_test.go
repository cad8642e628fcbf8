package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/eval"
	"github.com/medseq/medseq/modelrepo"
)

// evalReportCmd calls runEvalReport directly (the command is registered in main.go by the lead).
func evalReportCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), log: slog.New(slog.NewTextHandler(&errb, nil))}
	err := runEvalReport(context.Background(), e, args)
	return out.String(), errb.String(), err
}

// reportModel writes a small model version folder with tuning and held-out predictions of
// the same subjects for every seed.
func reportModel(t *testing.T, root, name, kind string, seed uint64) string {
	t.Helper()
	dir := filepath.Join(root, name, "1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lr := rand.New(rand.NewPCG(9, 9))
	sr := rand.New(rand.NewPCG(seed, 2))
	raw := map[string][]eval.Prediction{}
	for _, split := range []string{"tuning", "held_out"} {
		var preds []eval.Prediction
		for i := 0; i < 200; i++ {
			y := lr.Float64() < 0.3
			z := sr.NormFloat64() - 1
			if y {
				z += 1.8
			}
			preds = append(preds, eval.Prediction{SubjectID: int64(len(split)*1000 + i), PredictionTime: 1e15, Label: y, Score: 1 / (1 + math.Exp(-z)),
				Attrs: map[string]string{"age": fmt.Sprint(30 + lr.IntN(55)), "sex": []string{"F", "M"}[lr.IntN(2)], "split": split}})
		}
		raw[split] = preds
	}
	cal, op, err := eval.ModelOutputs(dir, raw, eval.CalibrationPlatt, eval.ThresholdSpec{})
	if err != nil {
		t.Fatal(err)
	}
	man := &modelrepo.Manifest{Manifest: data.Manifest{RunID: "r1"}, Kind: kind, Name: name, Calibration: cal.Method, OperatingPoint: op}
	if err := man.Write(dir); err != nil {
		t.Fatal(err)
	}
	log := "{\"step\":0,\"train_loss\":0.7,\"val_loss\":0.69}\n{\"step\":10,\"train_loss\":0.5,\"val_loss\":0.6}\n"
	if err := os.WriteFile(modelrepo.TrainLogPath(dir), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEvalReportCommand(t *testing.T) {
	root := t.TempDir()
	a := reportModel(t, root, "model-a", "xgboost", 1)
	b := reportModel(t, root, "model-b", "bert", 2)
	out := filepath.Join(root, "out", "report")
	stdout, stderr, err := evalReportCmd(t, "--model", a, "--model", b, "--out", out, "--bootstrap", "100", "--oracle", t.TempDir())
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	html := filepath.Join(out, eval.ReportHTMLFile)
	for _, want := range []string{"report: " + html, "model-a", "model-b", "AUROC (95% CI)", "threshold", "DeLong"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "no synth oracle") {
		t.Errorf("a MEDS folder without an oracle is not reported: %s", stderr)
	}
	for _, f := range []string{eval.ReportHTMLFile, eval.ReportJSONFile} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var r eval.Report
	buf, _ := os.ReadFile(filepath.Join(out, eval.ReportJSONFile))
	if err := json.Unmarshal(buf, &r); err != nil || len(r.Models) != 2 || r.Bootstrap != 100 {
		t.Errorf("metrics.json: %v", err)
	}
	// No temp files left beside the outputs.
	ents, _ := os.ReadDir(out)
	if len(ents) != 2 {
		t.Errorf("out holds %d entries", len(ents))
	}
}

func TestEvalReportUsage(t *testing.T) {
	root := t.TempDir()
	a := reportModel(t, root, "m", "bert", 1)
	var ue usageError
	for _, args := range [][]string{
		{"--out", root},
		{"--model", a},
		{"--model", a, "--out", root, "--threshold", "2"},
		{"--model", a, "--out", root, "--bootstrap", "-1"},
	} {
		if _, _, err := evalReportCmd(t, args...); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if _, _, err := evalReportCmd(t, "--model", a, "--out", filepath.Join(root, "o"), "--split", "nope"); err == nil {
		t.Error("missing split: no error")
	}
}
