package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalCensoring runs eval censoring on a model trained by the binary: the table on stdout,
// the JSON at --out (refused as an existing file without --force), and usage errors for bad
// flags.
func TestEvalCensoring(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--meds", "m", "--cohort", "c"}, "--model"},
		{[]string{"--meds", "m", "--cohort", "c", "--model", "x", "--follow-ups", "0,soon"}, "--follow-ups"},
		{[]string{"--meds", "m", "--cohort", "c", "--model", "x", "--out", "table.txt"}, ".json"},
	} {
		if code, _, stderr := runCmd(t, append([]string{"eval", "censoring"}, tc.args...)...); code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d %s", tc.args, code, stderr)
		}
	}
	if testing.Short() {
		t.Skip("trains a model")
	}
	dir := t.TempDir()
	meds, cohort, tok := filepath.Join(dir, "meds"), filepath.Join(dir, "cohort"), filepath.Join(dir, "tok")
	model := filepath.Join(dir, "models", "m", "1")
	steps := [][]string{
		{"data", "synth", "--out", meds, "--subjects", "2500"},
		{"data", "cohort", "--meds", meds, "--target", "ICD10/E11,SNOMED/44054006", "--out", cohort, "--split", "0.6,0.1,0.3"},
		{"tokenize", "build", "--meds", meds, "--cohort", cohort, "--out", tok},
		{"train", "xgboost", "--meds", meds, "--cohort", cohort, "--tokenizer", tok, "--out", model, "--rounds", "30"},
	}
	for _, s := range steps {
		if code, _, stderr := runCmd(t, s...); code != 0 {
			t.Fatalf("%v: %s", s[:2], stderr)
		}
	}
	out := filepath.Join(dir, "censoring.json")
	args := []string{"eval", "censoring", "--meds", meds, "--cohort", cohort, "--model", model, "--out", out, "--bootstrap", "50"}
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("eval censoring: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"rebuilt from the cohort's rules with follow-up 0 (the cohort required 365d)",
		"all kept (reference)", "* 365d      drop ", "730d      drop-lost", "written: " + out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	var r struct {
		Variants []struct {
			FollowUp string `json:"follow_up"`
			Policy   string `json:"policy"`
			Metrics  struct {
				Labels int      `json:"labels"`
				AUROC  *float64 `json:"auroc"`
			} `json:"metrics"`
		} `json:"variants"`
	}
	buf, err := os.ReadFile(out)
	if err != nil || json.Unmarshal(buf, &r) != nil || len(r.Variants) != 7 || r.Variants[0].Metrics.AUROC == nil {
		t.Fatalf("censoring.json: %v\n%s", err, buf)
	}
	if code, _, stderr := runCmd(t, args...); code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("existing --out: exit %d %s", code, stderr)
	}
}
