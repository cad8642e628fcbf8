package icebergmeds

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/apache/iceberg-go/catalog"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/synth"
)

// fixture is a synthetic MEDS folder and a SQL catalog on SQLite in a temporary folder, with
// the config that names it (catalog "local"), set as $MEDSEQ_ICEBERG_CONFIG.
type fixture struct {
	dir, meds, cfgPath string
	cfg                *Config
}

func newFixture(t *testing.T, subjects int) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, meds: filepath.Join(dir, "meds"), cfgPath: filepath.Join(dir, "iceberg.yaml")}
	if subjects > 0 {
		_, err := synth.Generate(context.Background(), synth.Config{Out: f.meds, Subjects: subjects, Seed: 7,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf("catalogs:\n  local:\n    type: sql\n    uri: %s\n    warehouse: file://%s\n",
		filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse"))
	if err := os.WriteFile(f.cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ConfigEnv, f.cfgPath)
	var err error
	if f.cfg, err = LoadConfig(""); err != nil {
		t.Fatal(err)
	}
	return f
}

// catalog opens the fixture's SQL catalog, closed when the test ends.
func (f *fixture) catalog(t *testing.T) catalog.Catalog {
	t.Helper()
	return f.open(t, "local")
}

// open opens the configured catalog name, closed when the test ends.
func (f *fixture) open(t *testing.T, name string) catalog.Catalog {
	t.Helper()
	cat, err := f.cfg.OpenCatalog(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { CloseCatalog(cat) })
	return cat
}

// export exports folder meds to local/ns.
func (f *fixture) export(t *testing.T, meds, ns string, buckets int) *ExportResult {
	t.Helper()
	return f.exportTo(t, "local", meds, ns, buckets)
}

// exportTo exports folder meds to cat/ns.
func (f *fixture) exportTo(t *testing.T, cat, meds, ns string, buckets int) *ExportResult {
	t.Helper()
	ref, err := ParseRef(cat + "/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Export(context.Background(), meds, f.open(t, cat), ref, ExportOptions{Buckets: buckets})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// event is an event with its code's name, comparable across datasets.
type event struct {
	Time  int64
	Code  string
	Value float32
	Has   bool
}

// subjects reads every subject of ds, by id, and the number of shards that held each.
func subjects(t *testing.T, ds *data.Dataset) map[int64][]event {
	t.Helper()
	out := map[int64][]event{}
	err := ds.ForEachSubject(context.Background(), func(s data.Subject) error {
		if _, dup := out[s.ID]; dup {
			return fmt.Errorf("subject %d read twice", s.ID)
		}
		out[s.ID] = names(ds.Codes, s.Events)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func names(codes *data.Codes, evs []data.Event) []event {
	out := make([]event, len(evs))
	for i, e := range evs {
		out[i] = event{Time: e.Time, Code: codes.Name(e.Code), Has: e.HasValue()}
		if e.HasValue() {
			out[i].Value = e.Value
		}
	}
	return out
}

// sameSubjects fails unless a and b hold the same subjects with the same events.
func sameSubjects(t *testing.T, a, b map[int64][]event) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d subjects vs %d", len(a), len(b))
	}
	ids := make([]int64, 0, len(a))
	for id := range a {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if !reflect.DeepEqual(a[id], b[id]) {
			t.Fatalf("subject %d: %d events vs %d, or different events", id, len(a[id]), len(b[id]))
		}
	}
}

// shiftIDs copies the subjects of MEDS folder src to a folder dst of one shard,
// data/train/0.parquet, without subject_splits, adding off to every subject id.
func shiftIDs(t *testing.T, src, dst string, off int64) {
	t.Helper()
	ds, err := data.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	var all []data.Subject
	err = ds.ForEachSubject(context.Background(), func(s data.Subject) error {
		all = append(all, data.Subject{ID: s.ID + off, Events: append([]data.Event(nil), s.Events...)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	p := filepath.Join(dst, data.DataDir, data.SplitTrain, "0.parquet")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteShard(p, ds.Codes, all); err != nil {
		t.Fatal(err)
	}
}
