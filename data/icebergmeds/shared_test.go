package icebergmeds

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
)

// TestSharedMEDS exports the MEDS datasets other tools wrote (../shared/data/meds: ACES'
// sample, MEDS_transforms' example) and reads them back: the same subjects and events, the same
// splits (the folder's subject_splits, or the data/<split>/ folders when it has none), codes and
// dataset.json.
func TestSharedMEDS(t *testing.T) {
	if testing.Short() {
		t.Skip("writes Iceberg tables")
	}
	root := filepath.Join("..", "..", "..", "shared", "data", "meds")
	for _, name := range []string{"aces_sample", "meds_transforms_example"} {
		t.Run(name, func(t *testing.T) {
			meds := filepath.Join(root, name)
			if _, err := os.Stat(meds); err != nil {
				t.Skipf("shared MEDS sample %s absent: %v", name, err)
			}
			f := newFixture(t, 0)
			res := f.export(t, meds, "real", 4)
			folder, err := data.Open(meds)
			if err != nil {
				t.Fatal(err)
			}
			ice, err := data.Open("iceberg:local/real")
			if err != nil {
				t.Fatal(err)
			}
			want := subjects(t, folder)
			if res.Subjects != len(want) || len(want) == 0 {
				t.Fatalf("exported %d subjects, the folder has %d", res.Subjects, len(want))
			}
			sameSubjects(t, want, subjects(t, ice))
			if !reflect.DeepEqual(folder.Meta, ice.Meta) {
				t.Errorf("dataset.json %+v, want %+v", ice.Meta, folder.Meta)
			}
			sameSplits(t, folder, ice)
			fc, _ := folder.CodeMetadata()
			ic, err := ice.CodeMetadata()
			if err != nil || !reflect.DeepEqual(fc, ic) {
				t.Errorf("codes: %d rows from the folder, %d from Iceberg (%v)", len(fc), len(ic), err)
			}
		})
	}
}

// sameSplits checks that every subject has the split the folder gives it: its subject_splits
// row, else its shard folder's.
func sameSplits(t *testing.T, folder, ice *data.Dataset) {
	t.Helper()
	listed, err := folder.SubjectSplits()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]string{}
	for id, s := range listed {
		want[id] = s
	}
	for _, p := range folder.Shards {
		sh, err := folder.ReadShard(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sh.Subjects {
			if _, ok := want[s.ID]; !ok && folder.ShardSplit(p) != "" {
				want[s.ID] = folder.ShardSplit(p)
			}
		}
	}
	got, err := ice.SubjectSplits()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("splits of %d subjects from Iceberg, want %d", len(got), len(want))
	}
}

// TestETLCodes exports a synthetic dataset whose codes are spelled as MEDS ETLs write real data
// (synth's etl style: spaces, units, slashes, parentheses, non-ASCII letters) and reads it back
// through the SQL catalog: every subject's events with their codes byte for byte.
func TestETLCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("writes Iceberg tables")
	}
	f := newFixture(t, 0)
	meds := filepath.Join(f.dir, "etl")
	_, err := synth.Generate(context.Background(), synth.Config{Out: meds, Subjects: 150, Seed: 3,
		CodeStyle: synth.CodeStyleETL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.export(t, meds, "etl", 4)
	folder, err := data.Open(meds)
	if err != nil {
		t.Fatal(err)
	}
	ice, err := data.Open("iceberg:local/etl")
	if err != nil {
		t.Fatal(err)
	}
	want := subjects(t, folder)
	var spaced, nonASCII int
	for _, evs := range want {
		for _, e := range evs {
			if strings.Contains(e.Code, " ") {
				spaced++
			}
			if strings.IndexFunc(e.Code, func(r rune) bool { return r > unicode.MaxASCII }) >= 0 {
				nonASCII++
			}
		}
	}
	if spaced == 0 || nonASCII == 0 {
		t.Fatalf("the etl-style data has %d codes with spaces and %d with non-ASCII letters: want both", spaced,
			nonASCII)
	}
	sameSubjects(t, want, subjects(t, ice))
}
