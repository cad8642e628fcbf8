package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalCurve: bad flags are usage errors naming the flag; then a learning curve of XGBoost
// on a synthetic cohort: the table on stdout, curve.json and curve.svg in --out, the fits
// folder gone, a fraction too small for both classes refused naming --fractions, and an
// existing --out refused without --force.
func TestEvalCurve(t *testing.T) {
	in := []string{"eval", "curve", "--meds", "m", "--cohort", "c", "--tokenizer", "t", "--out", "o"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "curve", "--meds", "m", "--cohort", "c", "--out", "o"}, "flag --tokenizer is required"},
		{append(in, "--fractions", "0,0.5"), "flag --fractions: 0 is not in (0, 1]"},
		{append(in, "--fractions", "0.5,1.2"), "flag --fractions: 1.2 is not in (0, 1]"},
		{append(in, "--fractions", "0.5,0.25"), "flag --fractions: 0.25 after 0.5"},
		{append(in, "--fractions", "half"), `flag --fractions: "half" is not a number`},
		{append(in, "--models", "xgboost,lgbm"), `flag --models: "lgbm"`},
		{append(in, "--models", "bert,bert"), `flag --models: "bert"`},
		{append(in, "--windows", "soon"), "flag --windows"},
		{append(in, "--search", "5", "--eta", "0.1"), "--search chooses"},
		{append(in, "--lr", "0"), "flag --lr"},
		{append(in, "--bootstrap", "-1"), "flag --bootstrap"},
	} {
		if code, _, stderr := runCmd(t, tc.args...); code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d %s", tc.args[2:], code, stderr)
		}
	}
	if testing.Short() {
		t.Skip("trains models")
	}
	dir := t.TempDir()
	meds, cohort := filepath.Join(dir, "meds"), filepath.Join(dir, "cohort")
	tok, out := filepath.Join(dir, "tok"), filepath.Join(dir, "curve")
	for _, s := range [][]string{
		{"data", "synth", "--out", meds, "--subjects", "3000"},
		{"data", "cohort", "--meds", meds, "--target", "ICD10/E11,SNOMED/44054006", "--out", cohort},
		{"tokenize", "build", "--meds", meds, "--cohort", cohort, "--out", tok},
	} {
		if code, _, stderr := runCmd(t, s...); code != 0 {
			t.Fatalf("%v: %s", s[:2], stderr)
		}
	}
	args := []string{"eval", "curve", "--meds", meds, "--cohort", cohort, "--tokenizer", tok, "--out", out,
		"--models", "xgboost", "--fractions", "0.5,1", "--bootstrap", "100", "--rounds", "40", "--max-depth", "3"}
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("eval curve: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"learning curve: cohort " + cohort, "XGBoost AUROC", "     50% ", "    100% ",
		"oracle (true risk)", "written: " + filepath.Join(out, "curve.json")} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "curve fit done") || strings.Contains(stderr, "inputs from different runs") {
		t.Errorf("log:\n%s", stderr)
	}
	var r struct {
		Points []struct {
			Train struct{ Labels int } `json:"train"`
		} `json:"points"`
	}
	buf, err := os.ReadFile(filepath.Join(out, "curve.json"))
	if err != nil || json.Unmarshal(buf, &r) != nil || len(r.Points) != 2 || r.Points[0].Train.Labels >= r.Points[1].Train.Labels {
		t.Fatalf("curve.json: %v\n%s", err, buf)
	}
	if _, err := os.Stat(filepath.Join(out, "curve.svg")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(out + ".fits"); !os.IsNotExist(err) {
		t.Errorf("fits folder: %v", err)
	}
	if code, _, stderr := runCmd(t, args...); code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("existing --out: exit %d %s", code, stderr)
	}
	tiny := append(args[:len(args):len(args)], "--force", "--fractions", "0.0001,1")
	code, _, stderr = runCmd(t, tiny...)
	if code != 1 || !strings.Contains(stderr, "flag --fractions: 0.0001 of the training split keeps none") {
		t.Errorf("tiny fraction: exit %d %s", code, stderr)
	}
}
