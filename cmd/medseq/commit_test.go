package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseq/medseq/data/synth"
)

// TestCohortOracleOptional (issue 14, D2): a command succeeds with its output or fails with
// none. `data cohort` for a target the synthetic oracle does not model writes the cohort,
// exits 0 and says there is no oracle AUROC and why (it used to write the cohort, then fail
// on the oracle, and a rerun said "already exists"); for the oracle's own targets it prints
// the oracle AUROC; and when the oracle cannot be read, it fails and leaves no cohort.
func TestCohortOracleOptional(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a synthetic dataset")
	}
	dir := t.TempDir()
	meds := filepath.Join(dir, "meds")
	if code, _, stderr := runCmd(t, "data", "synth", "--out", meds, "--subjects", "1500"); code != 0 {
		t.Fatalf("synth: %s", stderr)
	}
	cohort := func(out string, targets string) (int, string, string) {
		return runCmd(t, "data", "cohort", "--meds", meds, "--target", targets, "--out", out)
	}

	other := filepath.Join(dir, "hypertension")
	code, stdout, stderr := cohort(other, "ICD10/I10")
	if code != 0 {
		t.Fatalf("--target ICD10/I10: exit %d\n%s", code, stderr)
	}
	if want := "oracle AUROC       none: the synthetic oracle models --target " + strings.Join(synth.OracleTargets, ",") + ", not ICD10/I10"; !strings.Contains(stdout, want) {
		t.Errorf("summary lacks %q:\n%s", want, stdout)
	}
	if _, err := os.Stat(filepath.Join(other, "manifest.json")); err != nil {
		t.Errorf("no cohort written: %v", err)
	}

	t2d := filepath.Join(dir, "t2d")
	code, stdout, stderr = cohort(t2d, strings.Join(synth.OracleTargets, ","))
	if code != 0 {
		t.Fatalf("the oracle's targets: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "oracle AUROC       0.") {
		t.Errorf("no oracle AUROC for the oracle's own targets:\n%s", stdout)
	}

	// An oracle that cannot be read: the command fails and writes nothing.
	model := filepath.Join(meds, synth.OracleModelFile)
	if err := os.WriteFile(model, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken")
	code, _, stderr = cohort(broken, strings.Join(synth.OracleTargets, ","))
	if code != 1 || !strings.Contains(stderr, "oracle") {
		t.Errorf("unreadable oracle: exit %d, want 1 naming the oracle\n%s", code, stderr)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "broken") {
			t.Errorf("a failed cohort left %s", e.Name())
		}
	}
}

// copyTree copies a folder of regular files.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
