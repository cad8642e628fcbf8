package icebergmeds

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
)

// TestSQLCatalogRoundTrip exports a synthetic MEDS folder into a SQL catalog on SQLite and
// reads it back through data.Open: the same subjects and events, splits and code metadata,
// and the same cohort labels and censored sequences as from the folder.
func TestSQLCatalogRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads Iceberg tables")
	}
	f := newFixture(t, 400)
	res := f.export(t, f.meds, "demo", 8)
	if res.Subjects != 400 || len(res.Created) != 3 {
		t.Fatalf("export: %+v", res)
	}
	folder, err := data.Open(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	ice, err := data.Open("iceberg:local/demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(ice.Shards) < 2 || len(ice.Shards) > 8 || !strings.Contains(ice.Shards[0], "/events/bucket=") {
		t.Fatalf("shards %v: want one per bucket of 8", ice.Shards)
	}
	if folder.Meta.DatasetName == "" || !reflect.DeepEqual(ice.Meta, folder.Meta) {
		t.Errorf("dataset.json %+v, want %+v", ice.Meta, folder.Meta)
	}
	sameSubjects(t, subjects(t, folder), subjects(t, ice))
	t.Run("metadata", func(t *testing.T) { sameMetadata(t, folder, ice) })
	t.Run("cohort", func(t *testing.T) { sameCohort(t, f, folder, ice) })
	t.Run("fingerprint", func(t *testing.T) {
		fp, err := data.Fingerprint("iceberg:local/demo")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := ice.Fingerprint(); got != fp || len(fp) != 64 {
			t.Fatalf("fingerprint %q, dataset's %q", fp, got)
		}
		// A second export of the same subjects is refused and changes nothing.
		ref, _ := ParseRef("iceberg:local/demo")
		_, err = Export(context.Background(), f.meds, f.catalog(t), ref, ExportOptions{})
		if !errors.Is(err, ErrSubjectExists) {
			t.Fatalf("second export: %v, want ErrSubjectExists", err)
		}
		if again, _ := data.Fingerprint("iceberg:local/demo"); again != fp {
			t.Fatal("a refused export changed the tables")
		}
		// Appending other subjects commits new snapshots: another fingerprint.
		src, more := filepath.Join(f.dir, "more-src"), filepath.Join(f.dir, "more")
		if _, err := synth.Generate(context.Background(), synth.Config{Out: src, Subjects: 50, Seed: 8}); err != nil {
			t.Fatal(err)
		}
		shiftIDs(t, src, more, 1_000_000)
		if res := f.export(t, more, "demo", 8); len(res.Created) != 0 || res.Subjects != 50 {
			t.Fatalf("append: %+v", res)
		}
		after, _ := data.Fingerprint("iceberg:local/demo")
		if after == fp {
			t.Fatal("fingerprint unchanged by an append")
		}
		grown, err := data.Open("iceberg:local/demo")
		if err != nil {
			t.Fatal(err)
		}
		if n := len(subjects(t, grown)); n != 450 {
			t.Fatalf("%d subjects after the append, want 450", n)
		}
	})
}

func sameMetadata(t *testing.T, folder, ice *data.Dataset) {
	fs, err := folder.SubjectSplits()
	if err != nil {
		t.Fatal(err)
	}
	is, err := ice.SubjectSplits()
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) == 0 || !reflect.DeepEqual(fs, is) {
		t.Fatalf("subject_splits: %d rows from the folder, %d from Iceberg, or different", len(fs), len(is))
	}
	fc, err := folder.CodeMetadata()
	if err != nil {
		t.Fatal(err)
	}
	ic, err := ice.CodeMetadata()
	if err != nil {
		t.Fatal(err)
	}
	if len(fc) == 0 || !reflect.DeepEqual(fc, ic) {
		t.Fatalf("codes: %d rows from the folder, %d from Iceberg, or different", len(fc), len(ic))
	}
}

// sameCohort builds the cohort from both datasets and compares labels, then the censored
// sequences of the folder's cohort read from each.
func sameCohort(t *testing.T, f *fixture, folder, ice *data.Dataset) {
	ctx := context.Background()
	cfg := data.DefaultCohortConfig()
	cfg.Targets, cfg.Seed = synth.OracleTargets, 7
	a, err := data.BuildCohort(ctx, folder, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := data.BuildCohort(ctx, ice, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Labels) == 0 || !reflect.DeepEqual(a.Labels, b.Labels) {
		t.Fatalf("labels: %d from the folder, %d from Iceberg, or different", len(a.Labels), len(b.Labels))
	}
	dir := filepath.Join(f.dir, "cohort")
	m := data.NewManifest(data.StageCohort, cfg.Params())
	if _, err := m.AddInput(data.InputMEDS, "iceberg:local/demo"); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteCohort(dir, false, b, m); err != nil {
		t.Fatal(err)
	}
	oc, err := data.OpenCohort("iceberg:local/demo", dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := data.OpenCohort(f.meds, dir, false); !errors.Is(err, data.ErrInputMismatch) {
		t.Fatalf("the folder against a cohort built from Iceberg: %v, want ErrInputMismatch", err)
	}
	seqs := func(ds *data.Dataset) map[int64][][]event {
		out := map[int64][][]event{}
		err := oc.Cohort.Sequences(ctx, ds, nil, func(s data.Sequence) error {
			out[s.Label.SubjectID] = append(out[s.Label.SubjectID], names(ds.Codes, s.Events))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	sa, sb := seqs(folder), seqs(oc.Dataset)
	if len(sa) == 0 || !reflect.DeepEqual(sa, sb) {
		t.Fatalf("sequences of %d subjects from the folder, %d from Iceberg, or different", len(sa), len(sb))
	}
}
