package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/xgb"
)

// runCmd runs the binary's entry point in-process and returns exit code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &env{stdout: &out, stderr: &errb, stdin: strings.NewReader("")})
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, "version", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var bi map[string]any
	if err := json.Unmarshal([]byte(out), &bi); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "commit", "build_time", "go_version", "module"} {
		if s, _ := bi[k].(string); s == "" {
			t.Errorf("version --json lacks %s: %s", k, out)
		}
	}
	// The test binary is this build's: cgo exactly when libxgboost can be linked.
	build, _ := bi["build"].(map[string]any)
	if build["train_xgboost"] != xgb.Available || build["summary"] == "" || (xgb.Available && build["kind"] != "cgo") {
		t.Errorf("version --json build %v, want train_xgboost %v (and kind cgo with it)", build, xgb.Available)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"data", "cohort", "--meds", "x", "--out", "y"}, 2, "--target"},
		{[]string{"data", "cohort", "--meds", "x", "--target", "A", "--out", "y", "--lead", "1 year"}, 2, "lead"},
		{[]string{"data", "cohort", "--meds", "x", "--target", "A", "--out", "y", "--negatives", "nearest"}, 2, "--negatives"},
		{[]string{"data", "cohort", "--meds", "x", "--target", "A", "--out", "y", "--split", "0.8,0.2"}, 2, "--split"},
		{[]string{"data", "cohort", "--meds", "/nonexistent", "--target", "A", "--out", "y"}, 1, "/nonexistent"},
		{[]string{"data", "synth", "--subjects", "10"}, 2, "--out"},
		{[]string{"demo", "--subjects", "5"}, 2, "--subjects"},
		{[]string{"data", "sequences", "--meds", "x"}, 2, "--cohort"},
		{[]string{"data", "info", "stray"}, 2, "stray"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestDemoEndToEnd runs the demo on a small synthetic population and checks what it wrote.
func TestDemoEndToEnd(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCmd(t, "demo", "--out", out, "--subjects", "2000", "--force", "--bert-max-steps", "20")
	if code != 0 {
		t.Fatalf("demo exit %d: %s", code, stderr)
	}
	for _, want := range []string{"matched-age", "random-date", "oracle AUROC", "KS", "BERT (direct)", "XGBoost (codes)",
		"XGBoost (last values)", "reading the same codes"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	for _, f := range []string{"t2d-bert/1/bert/model.safetensors", "t2d-bert/1/bert/config.json", "t2d-bert/1/calibration.json", "t2d-xgboost/1/xgboost/model.bin",
		"t2d-xgboost-values/1/xgboost/model.bin"} {
		if _, err := os.Stat(filepath.Join(out, demoModels, f)); err != nil {
			t.Errorf("demo did not write %s", f)
		}
	}
	cohort := filepath.Join(out, demoCohort)
	var rep data.CohortReport
	buf, err := os.ReadFile(filepath.Join(cohort, data.CohortReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Positives < 30 || rep.Negatives < rep.Positives {
		t.Errorf("cohort %d positives, %d negatives", rep.Positives, rep.Negatives)
	}
	if ks := rep.AgeAtPrediction.KS; ks > 0.1 {
		t.Errorf("matched-age KS %.3f on synth data, want near 0", ks)
	}
	if ks := rep.Sampling.Comparison[data.NegativesRandomDate].KS; ks < 0.25 {
		t.Errorf("random-date KS %.3f: the naive method's bias should show", ks)
	}
	// The BERT scores offline through the same command as the baseline, calibrated.
	code, stdout, stderr = runCmd(t, "predict", "--model", filepath.Join(out, demoModels, "t2d-bert", "1"), "--meds", filepath.Join(out, demoMEDS),
		"--cohort", filepath.Join(out, demoCohort), "--split", "held_out", "--out", filepath.Join(out, "bert_held_out.parquet"))
	if code != 0 || !strings.Contains(stdout, "bert model") || !strings.Contains(stdout, "calibrated") {
		t.Errorf("predict with the BERT: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The sequences command reads the cohort back through censoring.
	meds := filepath.Join(out, demoMEDS)
	code, stdout, stderr = runCmd(t, "data", "sequences", "--meds", meds, "--cohort", cohort, "--split", "held_out", "--limit", "3")
	if code != 0 {
		t.Fatalf("sequences exit %d: %s", code, stderr)
	}
	if lines := strings.Count(stdout, "\n"); lines != 5 {
		t.Errorf("sequences printed %d lines, want 3 sequences and 2 summaries:\n%s", lines, stdout)
	}
	for _, leak := range []string{"ATC/A10BA02", "ICD10/E11", "SNOMED/44054006"} {
		if strings.Contains(stdout, leak) {
			t.Errorf("a censored sequence shows %s", leak)
		}
	}
}

// TestSequencesRefusesOtherDataset: a cohort read against a different dataset is refused.
func TestSequencesRefusesOtherDataset(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for i, p := range []string{a, b} {
		if code, _, stderr := runCmd(t, "data", "synth", "--out", p, "--subjects", "1500", "--seed", string(rune('1'+i))); code != 0 {
			t.Fatal(stderr)
		}
	}
	cohort := filepath.Join(dir, "cohort")
	if code, _, stderr := runCmd(t, "data", "cohort", "--meds", a, "--target", "ICD10/E11,SNOMED/44054006", "--out", cohort); code != 0 {
		t.Fatal(stderr)
	}
	code, _, stderr := runCmd(t, "data", "sequences", "--meds", b, "--cohort", cohort)
	if code != 1 || !strings.Contains(stderr, "does not match") || !strings.Contains(stderr, b) {
		t.Errorf("exit %d: %s", code, stderr)
	}
	// Same subject ids (1..1500): with --allow-mismatch it reads, and says so.
	if code, _, stderr := runCmd(t, "data", "sequences", "--meds", b, "--cohort", cohort, "--allow-mismatch"); code != 0 || !strings.Contains(stderr, "not built from") {
		t.Errorf("--allow-mismatch: exit %d: %s", code, stderr)
	}
	// Rebuilding without --force is refused, naming the flag.
	code, _, stderr = runCmd(t, "data", "cohort", "--meds", a, "--target", "ICD10/E11", "--out", cohort)
	if code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("overwrite: exit %d: %s", code, stderr)
	}
}

// TestTrainAndPredict trains the baseline on the demo's outputs through the commands and scores
// the held-out split offline: the predictions agree with what training recorded.
func TestTrainAndPredict(t *testing.T) {
	out := t.TempDir()
	if code, _, stderr := runCmd(t, "demo", "--out", out, "--subjects", "2000", "--bert=false"); code != 0 {
		t.Fatal(stderr)
	}
	meds, cohort := filepath.Join(out, demoMEDS), filepath.Join(out, demoCohort)
	model := filepath.Join(out, demoModels, "t2d-xgboost", "1")
	for _, f := range []string{"manifest.json", "calibration.json", "tokenizer.json", "xgboost/model.json", "xgboost/model.bin", "xgboost/featmap.txt", "xgboost/top_features.json", "metrics.jsonl", "predictions_held_out.parquet"} {
		if _, err := os.Stat(filepath.Join(model, f)); err != nil {
			t.Errorf("model folder lacks %s", f)
		}
	}
	pred := filepath.Join(out, "held_out.csv")
	code, stdout, stderr := runCmd(t, "predict", "--model", model, "--meds", meds, "--cohort", cohort, "--split", "held_out", "--out", pred)
	if code != 0 || !strings.Contains(stdout, "AUROC") || !strings.Contains(stdout, "isotonic") {
		t.Fatalf("predict exit %d\n%s\n%s", code, stdout, stderr)
	}
	buf, err := os.ReadFile(pred)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	if !strings.HasPrefix(lines[0], "subject_id,prediction_time,boolean_value,predicted_boolean_value,predicted_boolean_probability") || len(lines) < 20 {
		t.Errorf("predictions file: %d lines, header %q", len(lines), lines[0])
	}
	// Bad inputs name what is wrong.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"predict", "--model", model, "--meds", meds, "--cohort", cohort, "--out", "x.txt"}, 2, ".parquet or .csv"},
		{[]string{"predict", "--model", out, "--meds", meds, "--cohort", cohort, "--out", filepath.Join(out, "new.csv")}, 1, "manifest.json"},
		{[]string{"predict", "--model", model, "--meds", meds, "--cohort", cohort, "--out", pred}, 1, "--force"},
		{[]string{"train", "xgboost", "--meds", meds, "--cohort", cohort, "--tokenizer", filepath.Join(out, demoTokenizer), "--out", filepath.Join(out, "m2"), "--max-depth", "0"}, 2, "max_depth"},
		{[]string{"train", "xgboost", "--meds", meds, "--cohort", cohort, "--tokenizer", filepath.Join(out, demoTokenizer), "--out", filepath.Join(out, "m2"), "--windows", "all,soon"}, 2, "--windows"},
		{[]string{"train", "xgboost", "--meds", meds, "--cohort", cohort, "--tokenizer", filepath.Join(out, demoTokenizer), "--out", model}, 1, "--force"},
	} {
		code, _, stderr := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d %q; want %d mentioning %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	// Issue 14, D13: predict verifies the folder against its manifest before reading it.
	tampered := filepath.Join(out, "tampered")
	copyTree(t, model, tampered)
	if err := os.WriteFile(filepath.Join(tampered, "calibration.json"), []byte(`{"method":"identity"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCmd(t, "predict", "--model", tampered, "--meds", meds, "--cohort", cohort, "--out", filepath.Join(out, "tampered.csv"))
	if code != 1 || !strings.Contains(stderr, "calibration.json changed since training") {
		t.Errorf("tampered model: exit %d %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "tampered.csv")); err == nil {
		t.Error("a tampered model scored")
	}
}
