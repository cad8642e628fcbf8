package data

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenCohort: the cohort's own dataset opens with its fingerprint; another dataset is
// refused with an error naming it, both runs and --allow-mismatch, or opened with the
// mismatch reported when allowed; a missing cohort or dataset is an error naming it.
func TestOpenCohort(t *testing.T) {
	dir := t.TempDir()
	medsA := population(t, filepath.Join(dir, "a"), 600, 4)
	medsB := population(t, filepath.Join(dir, "b"), 600, 5)
	ds, err := Open(medsA)
	if err != nil {
		t.Fatal(err)
	}
	res, err := BuildCohort(context.Background(), ds, testCohortConfig())
	if err != nil {
		t.Fatal(err)
	}
	m := NewManifest(StageCohort, nil)
	if _, err := m.AddInput(InputMEDS, medsA); err != nil {
		t.Fatal(err)
	}
	cohort := filepath.Join(dir, "cohort")
	if err := WriteCohort(cohort, false, res, m); err != nil {
		t.Fatal(err)
	}
	fpA, err := Fingerprint(medsA)
	if err != nil {
		t.Fatal(err)
	}
	fpB, err := Fingerprint(medsB)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, meds, cohort string
		allow              bool
		wantErr            []string // substrings of the error; nil: opens
		wantMismatch       bool
		wantFP             string
	}{
		{name: "own dataset", meds: medsA, cohort: cohort, wantFP: fpA},
		{name: "own dataset, allowed", meds: medsA, cohort: cohort, allow: true, wantFP: fpA},
		{name: "other dataset", meds: medsB, cohort: cohort, wantErr: []string{medsB, m.RunID, "--allow-mismatch"}},
		{name: "other dataset, allowed", meds: medsB, cohort: cohort, allow: true, wantMismatch: true, wantFP: fpB},
		{name: "no cohort", meds: medsA, cohort: filepath.Join(dir, "nope"), wantErr: []string{"nope"}},
		{name: "no dataset", meds: filepath.Join(dir, "gone"), cohort: cohort, allow: true, wantErr: []string{"gone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oc, err := OpenCohort(tc.meds, tc.cohort, tc.allow)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("opened, want an error")
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
				if tc.name == "other dataset" && !errors.Is(err, ErrInputMismatch) {
					t.Errorf("error %v does not wrap ErrInputMismatch", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := oc.Mismatch != nil; got != tc.wantMismatch {
				t.Errorf("mismatch %v, want %v", oc.Mismatch, tc.wantMismatch)
			}
			if oc.Mismatch != nil && !errors.Is(oc.Mismatch, ErrInputMismatch) {
				t.Errorf("mismatch %v does not wrap ErrInputMismatch", oc.Mismatch)
			}
			if oc.MEDSFingerprint != tc.wantFP {
				t.Errorf("fingerprint %.12s, want %.12s", oc.MEDSFingerprint, tc.wantFP)
			}
			if oc.Dataset == nil || oc.Dataset.Root != tc.meds || oc.Cohort == nil || len(oc.Cohort.Labels) != len(res.Labels) {
				t.Fatalf("opened %+v", oc)
			}
			// The dataset is read through the cohort: every label's subject is there.
			n := 0
			err = oc.Cohort.Sequences(context.Background(), oc.Dataset, nil, func(Sequence) error { n++; return nil })
			if err != nil || n != len(res.Labels) {
				t.Errorf("sequences: %d of %d labels, %v", n, len(res.Labels), err)
			}
		})
	}
	if _, err := os.Stat(cohort); err != nil {
		t.Errorf("the cohort is gone: %v", err)
	}
}
