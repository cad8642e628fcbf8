//go:build iceberg

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/medseq/medseq/data/icebergmeds"
	"github.com/medseq/medseq/data/icebergmeds/icebergtest"
)

// TestIcebergPipeline exports a synthetic dataset into a SQL catalog on SQLite and, through an
// in-process REST catalog (icebergtest, serving that SQL catalog the way Polaris would: OAuth2
// client credentials from an environment variable, vended credentials), into another namespace
// (data export both times); then runs cohort, tokenize, train xgboost and predict on the folder,
// on --meds iceberg:local/demo and on --meds iceberg:polaris/viarest: the same labels, tokenizer
// vocabulary and predictions, and only authorized requests with the delegation header.
func TestIcebergPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("trains XGBoost three times")
	}
	dir := t.TempDir()
	meds, cfg := filepath.Join(dir, "meds"), filepath.Join(dir, "iceberg.yaml")
	srv := startREST(t, dir, cfg)
	if code, _, stderr := runCmd(t, "data", "synth", "--out", meds, "--subjects", "1200"); code != 0 {
		t.Fatal(stderr)
	}
	for _, dest := range []string{"local/demo", "polaris/viarest"} {
		code, stdout, stderr := runCmd(t, "data", "export", "--meds", meds, "--iceberg", dest, "--buckets", "4")
		if code != 0 || !strings.Contains(stdout, "1200 subjects") || !strings.Contains(stdout, "--meds iceberg:"+dest) {
			t.Fatalf("data export to %s: exit %d\n%s\n%s", dest, code, stdout, stderr)
		}
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
	a := run(meds, "folder")
	for _, src := range []string{"iceberg:local/demo", "iceberg:polaris/viarest"} {
		b := run(src, strings.NewReplacer(":", "-", "/", "-").Replace(src))
		samePipelineOutputs(t, src, a, b)
	}
	checkRESTRequests(t, srv, 5) // export, cohort, tokenize, train, predict: one process each
	// A cohort built from Iceberg is refused against the folder: another dataset.
	code, _, stderr := runCmd(t, "tokenize", "build", "--meds", meds, "--cohort",
		filepath.Join(dir, "iceberg-local-demo", "cohort"), "--out", filepath.Join(dir, "tok2"))
	if code == 0 || !strings.Contains(stderr, "iceberg:local/demo") {
		t.Errorf("folder against an Iceberg cohort: exit %d %s", code, stderr)
	}
}

// startREST writes the catalog config file cfg, with catalog local (a SQL catalog on SQLite
// in dir) and catalog polaris (an icebergtest REST catalog serving local, its client credential
// in an environment variable), and points $MEDSEQ_ICEBERG_CONFIG at it.
func startREST(t *testing.T, dir, cfg string) *icebergtest.Server {
	t.Helper()
	local := fmt.Sprintf("catalogs:\n  local:\n    type: sql\n    uri: %s\n    warehouse: file://%s\n",
		filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse"))
	if err := os.WriteFile(cfg, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	conf, err := icebergmeds.LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	backend, err := conf.OpenCatalog(context.Background(), "local")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { icebergmeds.CloseCatalog(backend) })
	srv := icebergtest.NewServer(t, backend, icebergtest.Options{TokenTTL: 15 * time.Second})
	t.Setenv("MEDSEQ_TEST_POLARIS_CREDENTIAL", srv.Credential())
	rest := fmt.Sprintf("  polaris:\n    type: rest\n    uri: %s\n    warehouse: clinical\n"+
		"    credential: env:MEDSEQ_TEST_POLARIS_CREDENTIAL\n    scope: %s\n    oauth2-server-uri: %s\n",
		srv.URL, icebergtest.DefaultScope, srv.TokenURL())
	if err := os.WriteFile(cfg, []byte(local+rest), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(icebergmeds.ConfigEnv, cfg)
	return srv
}

// TestIcebergACESLabels: labels an ACES task wrote build the same cohort from ACES' sample
// (../shared/data/meds, written by another tool) as a folder and exported to Iceberg tables.
func TestIcebergACESLabels(t *testing.T) {
	meds := filepath.Join("..", "..", "..", "shared", "data", "meds", "aces_sample")
	if _, err := os.Stat(meds); err != nil {
		t.Skip("no ../shared/data/meds/aces_sample")
	}
	dir := t.TempDir()
	startREST(t, dir, filepath.Join(dir, "iceberg.yaml"))
	if code, stdout, stderr := runCmd(t, "data", "export", "--meds", meds, "--iceberg", "local/aces"); code != 0 {
		t.Fatalf("data export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	labels := filepath.Join(dir, "creatinine.parquet")
	writeACESLabels(t, labels, acesCreatinineTask(t, meds))
	var files [][]byte
	for i, src := range []string{meds, "iceberg:local/aces"} {
		cohort := filepath.Join(dir, fmt.Sprint("cohort", i))
		if code, stdout, stderr := runCmd(t, "data", "cohort", "--meds", src, "--labels", labels, "--out", cohort); code != 0 {
			t.Fatalf("data cohort --meds %s: exit %d\n%s\n%s", src, code, stdout, stderr)
		}
		b, err := os.ReadFile(filepath.Join(cohort, "labels.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if len(files[0]) == 0 || !bytes.Equal(files[0], files[1]) {
		t.Errorf("cohort labels differ between the folder and Iceberg (%d and %d bytes)", len(files[0]), len(files[1]))
	}
}

// samePipelineOutputs compares the labels, vocabulary and predictions of two pipeline runs.
func samePipelineOutputs(t *testing.T, src, a, b string) {
	t.Helper()
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
			t.Errorf("%s differs between the folder and %s (%d and %d bytes)\n%s\n%s", f, src, len(x), len(y),
				head(x), head(y))
		}
	}
}

// checkRESTRequests checks what the medseq processes asked of the REST catalog: a token each
// (at least runs), every request with a valid bearer token, the warehouse named in the config
// request, vended credentials asked with every table load, and the export's one multi-table
// commit.
func checkRESTRequests(t *testing.T, srv *icebergtest.Server, runs int) {
	t.Helper()
	if n := srv.TokensIssued(); n < runs {
		t.Errorf("%d tokens issued to %d processes", n, runs)
	}
	var configs, loads, commits int
	for _, r := range srv.Requests() {
		if !r.Authorized {
			t.Errorf("%s %s without a valid bearer token", r.Method, r.Path)
		}
		switch {
		case r.Path == "/v1/config":
			configs++
			if r.Warehouse != "clinical" {
				t.Errorf("config request for warehouse %q, want clinical", r.Warehouse)
			}
		case r.Method == http.MethodGet && strings.Contains(r.Path, "/tables/"):
			loads++
			if r.Delegation != "vended-credentials" {
				t.Errorf("LoadTable %s: %s %q, want vended-credentials", r.Path, icebergtest.AccessDelegationHeader,
					r.Delegation)
			}
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/transactions/commit"):
			commits++
		}
	}
	t.Logf("REST catalog: %d tokens, %d requests: %d config, %d table loads, %d multi-table commits",
		srv.TokensIssued(), len(srv.Requests()), configs, loads, commits)
	if configs < runs || loads < 3*runs || commits != 1 {
		t.Errorf("%d config requests, %d table loads, %d multi-table commits: want %d, %d or more, and 1",
			configs, loads, commits, runs, 3*runs)
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
