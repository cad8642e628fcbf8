//go:build iceberg

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/medseq/medseq/data/icebergmeds"
)

// TestIcebergPipeline exports a synthetic dataset into a SQL catalog on SQLite (data export),
// then runs cohort, tokenize, train xgboost and predict on the folder and on
// --meds iceberg:local/demo: the same labels, tokenizer vocabulary and predictions.
func TestIcebergPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("trains XGBoost twice")
	}
	dir := t.TempDir()
	meds, cfg := filepath.Join(dir, "meds"), filepath.Join(dir, "iceberg.yaml")
	conf := fmt.Sprintf("catalogs:\n  local:\n    type: sql\n    uri: %s\n    warehouse: file://%s\n",
		filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse"))
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(icebergmeds.ConfigEnv, cfg)
	if code, _, stderr := runCmd(t, "data", "synth", "--out", meds, "--subjects", "1200"); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := runCmd(t, "data", "export", "--meds", meds, "--iceberg", "local/demo", "--buckets", "4")
	if code != 0 || !strings.Contains(stdout, "1200 subjects") || !strings.Contains(stdout, "--meds iceberg:local/demo") {
		t.Fatalf("data export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	run := func(src, name string) string {
		out := filepath.Join(dir, name)
		cohort, tok, model := filepath.Join(out, "cohort"), filepath.Join(out, "tok"), filepath.Join(out, "model")
		pred := filepath.Join(out, "pred.csv")
		steps := [][]string{
			{"data", "cohort", "--meds", src, "--target", "ICD10/E11,SNOMED/44054006", "--out", cohort},
			{"tokenize", "build", "--meds", src, "--cohort", cohort, "--out", tok},
			{"train", "xgboost", "--meds", src, "--cohort", cohort, "--tokenizer", tok, "--out", model, "--rounds", "30"},
			{"predict", "--model", model, "--meds", src, "--cohort", cohort, "--split", "held_out", "--out", pred},
		}
		for _, args := range steps {
			if code, stdout, stderr := runCmd(t, args...); code != 0 {
				t.Fatalf("%v: exit %d\n%s\n%s", args, code, stdout, stderr)
			}
		}
		return out
	}
	a, b := run(meds, "folder"), run("iceberg:local/demo", "iceberg")
	for _, f := range []string{"pred.csv", "cohort/labels.parquet", "tok/vocab.txt"} {
		x, errA := os.ReadFile(filepath.Join(a, f))
		y, errB := os.ReadFile(filepath.Join(b, f))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v %v", f, errA, errB)
		}
		if f == "pred.csv" { // rows come in the order the dataset's shards hold subjects
			x, y = sortedLines(x), sortedLines(y)
		}
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between the folder and Iceberg (%d and %d bytes)\n%s\n%s", f, len(x), len(y),
				head(x), head(y))
		}
	}
	// A cohort built from Iceberg is refused against the folder: another dataset.
	code, _, stderr = runCmd(t, "tokenize", "build", "--meds", meds, "--cohort", filepath.Join(b, "cohort"),
		"--out", filepath.Join(dir, "tok2"))
	if code == 0 || !strings.Contains(stderr, "iceberg:local/demo") {
		t.Errorf("folder against an Iceberg cohort: exit %d %s", code, stderr)
	}
}

func head(b []byte) string {
	lines := strings.SplitN(string(b), "\n", 6)
	return strings.Join(lines[:min(5, len(lines))], "\n")
}

func sortedLines(b []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n"))
}
