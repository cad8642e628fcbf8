package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
)

// TestDataCohortTimeToEvent: data cohort prints its labels' time to event and writes it, with
// --censor-window moving the line between administrative censoring and loss to follow-up; with
// --labels, --target times the file's labels' events.
func TestDataCohortTimeToEvent(t *testing.T) {
	dir := t.TempDir()
	meds := filepath.Join(dir, "meds")
	if code, _, stderr := runCmd(t, "data", "synth", "--out", meds, "--subjects", "600"); code != 0 {
		t.Fatalf("synth: %s", stderr)
	}
	censored := map[string]int{}
	for _, window := range []string{"365d", "0"} {
		out := filepath.Join(dir, "cohort-"+window)
		code, stdout, stderr := runCmd(t, "data", "cohort", "--meds", meds, "--target", "ICD10/E11,SNOMED/44054006",
			"--follow-up", "0", "--censor-window", window, "--out", out)
		if code != 0 {
			t.Fatalf("data cohort: %s", stderr)
		}
		if !strings.Contains(stdout, "time to event") || !strings.Contains(stdout, "censored within "+window) {
			t.Errorf("summary lacks the time to event:\n%s", stdout)
		}
		c, err := data.LoadCohort(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.RequireTimeToEvent(); err != nil {
			t.Fatal(err)
		}
		for _, l := range c.Labels {
			censored[window+" "+l.CensorReason]++
		}
	}
	if censored["0 "+data.CensorDatasetEnd] >= censored["365d "+data.CensorDatasetEnd] ||
		censored["0 "+data.CensorEndOfRecord] <= censored["365d "+data.CensorEndOfRecord] {
		t.Errorf("a shorter window should move labels from dataset_end to end_of_record: %v", censored)
	}
	if code, _, stderr := runCmd(t, "data", "cohort", "--meds", meds, "--target", "ICD10/E11", "--censor-window", "-1d",
		"--out", filepath.Join(dir, "bad")); code != 2 || !strings.Contains(stderr, "censor-window") {
		t.Errorf("negative window: exit %d %s", code, stderr)
	}

	ref, err := data.LoadCohort(filepath.Join(dir, "cohort-365d"))
	if err != nil {
		t.Fatal(err)
	}
	labels := filepath.Join(dir, "labels.parquet")
	writeACESLabels(t, labels, ref.Labels)
	out := filepath.Join(dir, "from-labels")
	code, stdout, stderr := runCmd(t, "data", "cohort", "--meds", meds, "--labels", labels, "--target", "ICD10/E11,SNOMED/44054006", "--out", out)
	if code != 0 {
		t.Fatalf("data cohort --labels --target: %s", stderr)
	}
	c, err := data.LoadCohort(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RequireTimeToEvent(); err != nil || !strings.Contains(stdout, "time to event") {
		t.Errorf("%v\n%s", err, stdout)
	}
	if _, ok := c.Manifest.Params["event_targets"]; !ok {
		t.Errorf("manifest params %v", c.Manifest.Params)
	}
	// The positives of the reference cohort are its diagnoses a lead before: observed events.
	for _, l := range c.Labels {
		if l.Value && !l.EventObserved {
			t.Errorf("positive label %+v has no event", l)
		}
	}
	os.RemoveAll(out)
	if code, _, _ := runCmd(t, "data", "cohort", "--meds", meds, "--labels", labels, "--out", out); code != 0 {
		t.Fatal("data cohort --labels without --target")
	}
	if c, err = data.LoadCohort(out); err != nil || c.RequireTimeToEvent() == nil {
		t.Errorf("labels without targets: %v, %v", err, c.RequireTimeToEvent())
	}
}
