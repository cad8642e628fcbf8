package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/xgb"
)

// TestCohortFlagName: a cohort folder is --cohort in every command; --labels (kept for an
// external MEDS label file) is no longer an alias of it.
func TestCohortFlagName(t *testing.T) {
	for _, cmd := range [][]string{{"train", "xgboost"}, {"train", "classify"}, {"train", "pretrain"}} {
		args := append(append([]string(nil), cmd...), "--meds", "m", "--labels", "c", "--tokenizer", "t", "--out", "o")
		code, _, stderr := runCmd(t, args...)
		if code != 2 || !strings.Contains(stderr, "flag provided but not defined: -labels") {
			t.Errorf("%v --labels: exit %d, %s", cmd, code, stderr)
		}
		args = append(append([]string(nil), cmd...), "--meds", "m", "--tokenizer", "t", "--out", "o")
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "--cohort is required") {
			t.Errorf("%v without --cohort: exit %d, %s", cmd, code, stderr)
		}
		code, _, stderr = runCmd(t, append(append([]string(nil), cmd...), "-h")...)
		if code != 0 || !strings.Contains(stderr, "--cohort DIR") || strings.Contains(stderr, "-labels") {
			t.Errorf("%v -h: exit %d, %s", cmd, code, stderr)
		}
	}
}

// TestDurationsPrintAsWritten: help defaults, the cohort summary and the cohort manifest
// write durations in the unit they were given (18y, not 157788h); logs go to stderr and
// the summary to stdout.
func TestDurationsPrintAsWritten(t *testing.T) {
	_, _, stderr := runCmd(t, "data", "cohort", "-h")
	for _, want := range []string{"(default 18y)", "(default 365d)", "(default 0)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("data cohort -h lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "157788h") {
		t.Errorf("data cohort -h prints hours:\n%s", stderr)
	}
	if testing.Short() {
		t.Skip("the cohort part builds a dataset")
	}
	dir := t.TempDir()
	meds, cohort := filepath.Join(dir, "meds"), filepath.Join(dir, "cohort")
	if code, _, stderr := runCmd(t, "data", "synth", "--out", meds, "--subjects", "400"); code != 0 {
		t.Fatalf("synth: %s", stderr)
	}
	code, stdout, stderr := runCmd(t, "data", "cohort", "--meds", meds, "--target", "ICD10/E11,SNOMED/44054006", "--out", cohort,
		"--lead", "2y", "--gap", "36h", "--min-age", "18y", "--follow-up", "52w")
	if code != 0 {
		t.Fatalf("cohort: exit %d\n%s", code, stderr)
	}
	if want := "windows            lead 2y, gap 36h, min history 365d, min age 18y, follow-up 364d"; !strings.Contains(stdout, want) {
		t.Errorf("summary lacks %q:\n%s", want, stdout)
	}
	if strings.Contains(stdout, "level=") || !strings.Contains(stderr, "level=INFO") {
		t.Errorf("log lines belong on stderr only:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	m, err := data.ReadManifest(cohort)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"lead": "2y", "gap": "36h", "min_age": "18y", "follow_up": "364d"} {
		if m.Params[k] != want {
			t.Errorf("manifest %s = %v, want %s", k, m.Params[k], want)
		}
	}
}

func TestEvalMetricsTable(t *testing.T) {
	dir := t.TempDir()
	test := filepath.Join(dir, "test.parquet")
	writeEvalPreds(t, test, 1, 600)
	out, stderr, err := evalCmd(t, "--predictions", test, "--segments", "sex", "--bootstrap", "40", "--threshold", "max-f1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if json.Valid([]byte(out)) {
		t.Fatalf("the default output is JSON:\n%s", out)
	}
	for _, want := range []string{"600 predictions of 300 subjects", "threshold ", "chosen on these predictions (optimistic)",
		"metric", "value", "95% CI", "subject-weighted", "\nAUROC ", "\nLR+ ", "\nconfusion ", "\ncalibration ", "ECE ",
		"40 resamples", "\nsegment ", "\nsex=F ", "\nsex=M ", "--json"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// The AUROC row: value and an interval around it.
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "AUROC" {
			lo, hi, ok := strings.Cut(f[2], "–")
			if !ok || lo == "" || hi == "" {
				t.Errorf("AUROC row %q has no interval", line)
			}
		}
	}
	// The warning about the optimistic threshold is a log line, on stderr.
	if !strings.Contains(stderr, "level=WARN") || strings.Contains(out, "level=") {
		t.Errorf("warnings: stdout\n%s\nstderr\n%s", out, stderr)
	}
	out, _, err = evalCmd(t, "--predictions", test, "--bootstrap", "0")
	if err != nil || !strings.Contains(out, "no intervals") {
		t.Errorf("--bootstrap 0: %v\n%s", err, out)
	}
	// --json is the machine-readable report.
	out, _, err = evalCmd(t, "--predictions", test, "--bootstrap", "0", "--json")
	var rep evalMetricsReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Metrics == nil || rep.Metrics.N != 600 {
		t.Errorf("--json: %v\n%s", err, out)
	}
}

func TestEvalReportModelFlags(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "models")
	// model-a: versions 2 and 10 (10 is the latest: numeric order), model-b: 1, then a 3 still
	// being written (no manifest), a hidden folder, a non-numeric version and a stray file.
	mkVersion := func(name, ver string, seed uint64) string {
		t.Helper()
		tmp := filepath.Join(root, "tmp", name+ver)
		dir := reportModel(t, tmp, name, "xgboost", seed)
		dst := filepath.Join(repo, name, ver)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dir, dst); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	mkVersion("model-a", "2", 1)
	a10 := mkVersion("model-a", "10", 2)
	b1 := mkVersion("model-b", "1", 3)
	mkVersion("model-b", "final", 4)
	mkVersion("model-a", "011", 5) // numeric to ParseInt, higher than 10, but not a version name
	for _, d := range []string{filepath.Join(repo, "model-b", "3"), filepath.Join(repo, ".trash", "1")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(repo, "README"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, ignored, err := latestVersions(repo)
	if err != nil || !reflect.DeepEqual(got, []string{a10, b1}) {
		t.Fatalf("latestVersions = %v, %v; want %v", got, err, []string{a10, b1})
	}
	// Issue 14, D3: only positive-integer folders are versions (serve's rule, modelrepo.Versions);
	// "011" and "final" are named for a warning.
	if !reflect.DeepEqual(ignored, []string{"model-a/011", "model-b/final"}) {
		t.Errorf("ignored %v, want model-a/011 and model-b/final", ignored)
	}
	if _, _, err := latestVersions(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no model version folders") {
		t.Errorf("empty repository: %v", err)
	}

	// --model repeats and takes commas; --models adds the repository's latest versions.
	for _, args := range [][]string{
		{"--model", a10 + "," + b1},
		{"--model", a10, "--model", b1},
		{"--models", repo},
	} {
		o, err := evalReportFlags(&env{stderr: new(strings.Builder)}, append(args, "--out", filepath.Join(root, "r")))
		if err != nil || !reflect.DeepEqual(o.cfg.Models, []string{a10, b1}) {
			t.Errorf("%v: models %v, %v", args, o.cfg.Models, err)
		}
	}
	out := filepath.Join(root, "report")
	stdout, stderr, err := evalReportCmd(t, "--models", repo, "--out", out, "--bootstrap", "0")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, "model-a") || !strings.Contains(stdout, "model-b") {
		t.Errorf("report of --models lacks a model:\n%s", stdout)
	}
	var ue usageError
	if _, _, err := evalReportCmd(t, "--out", out); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--model") {
		t.Errorf("no model: %v", err)
	}
	if _, _, err := evalReportCmd(t, "--models", filepath.Join(root, "absent"), "--out", out); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("absent repository: %v", err)
	}
}

// TestVersionLibraries: `medseq version` names the shared libraries the binary links (the
// test binary links the same ones) and the ones it opens at run time.
func TestVersionLibraries(t *testing.T) {
	code, out, stderr := runCmd(t, "version")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"shared libraries, linked", "opened at run time", "CUDA PJRT plugin", "libnvidia-ml.so.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("version lacks %q:\n%s", want, out)
		}
	}
	_, js, _ := runCmd(t, "version", "--json")
	var v struct {
		Version string      `json:"version"`
		Libs    []sharedLib `json:"shared_libraries"`
	}
	if err := json.Unmarshal([]byte(js), &v); err != nil || v.Version == "" {
		t.Fatalf("%v\n%s", err, js)
	}
	var xg *sharedLib
	for i, l := range v.Libs {
		if strings.HasPrefix(l.Name, "libxgboost") {
			xg = &v.Libs[i]
		}
	}
	switch {
	case xg == nil:
		t.Fatalf("no libxgboost entry: %+v", v.Libs)
	case xgb.Available && (!xg.Linked || xg.Path == "" || xg.Version == ""):
		t.Errorf("libxgboost is linked: %+v", *xg)
	case !xgb.Available && (xg.Linked || xg.Status != "not linked" || !strings.Contains(xg.Note, "train xgboost")):
		t.Errorf("libxgboost is not in this build: %+v", *xg)
	}
}

func TestLoadedPath(t *testing.T) {
	files := []string{"/usr/lib/x86_64-linux-gnu/libcrypt.so.1", "/usr/lib/x86_64-linux-gnu/libxgboost.so.1.6.0", "/usr/lib/x86_64-linux-gnu/libc.so.6"}
	for name, want := range map[string]string{
		"libxgboost.so.0": files[1], "libc.so.6": files[2], "libm.so.6": "", "libcrypt.so.1": files[0],
	} {
		if got := loadedPath(name, files); got != want {
			t.Errorf("loadedPath(%s) = %q, want %q", name, got, want)
		}
	}
}
