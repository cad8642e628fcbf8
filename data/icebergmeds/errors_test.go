package icebergmeds

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/medseq/medseq/data"
)

// appendSubjects appends one data file holding subjects (ids, each with two events) to t.
func appendSubjects(t *testing.T, tbl *table.Table, ids ...int64) *table.Table {
	t.Helper()
	codes := data.NewCodes()
	sh := &data.Shard{}
	for _, id := range ids {
		sh.Subjects = append(sh.Subjects, data.Subject{ID: id, Events: []data.Event{
			{Time: data.StaticTime, Code: codes.ID("MEDS_BIRTH"), Value: data.NoValue},
			{Time: id * data.MicrosPerDay, Code: codes.ID("LAB//" + string(rune('A'+id%26))), Value: float32(id)},
		}})
	}
	var recs []arrow.RecordBatch
	for rec := range shardRecords(codes, sh) {
		recs = append(recs, rec)
	}
	rdr, err := array.NewRecordReader(arrowEvents, recs)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	out, err := tbl.Append(context.Background(), rdr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// createEvents creates namespace ns and an unpartitioned events table with schema sc.
func createEvents(t *testing.T, cat catalog.Catalog, ns string, sc *iceberg.Schema) *table.Table {
	t.Helper()
	ctx := context.Background()
	if err := cat.CreateNamespace(ctx, table.Identifier{ns}, nil); err != nil {
		t.Fatal(err)
	}
	tbl, err := cat.CreateTable(ctx, table.Identifier{ns, data.TableEvents}, sc)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// TestSplitSubjects: a table not bucketed by subject_id whose files' subject ranges overlap is
// read as one shard per group of overlapping files, or refused beyond the bound.
func TestSplitSubjects(t *testing.T) {
	if testing.Short() {
		t.Skip("writes Iceberg tables")
	}
	f := newFixture(t, 0)
	cat := f.catalog(t)
	tbl := createEvents(t, cat, "loose", eventsSchema)
	tbl = appendSubjects(t, tbl, 1, 2)
	tbl = appendSubjects(t, tbl, 2, 3) // subject 2 in two files
	appendSubjects(t, tbl, 10, 11)
	ctx := context.Background()
	s, err := Open(ctx, "iceberg:local/loose", Options{Config: f.cfg})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"iceberg:local/loose/events/subjects=1-3", "iceberg:local/loose/events/subjects=10-11"}
	if got := s.Shards(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("shards %v, want %v", got, want)
	}
	ds, err := data.Open("iceberg:local/loose")
	if err != nil {
		t.Fatal(err)
	}
	subj := subjects(t, ds)
	if len(subj) != 5 || len(subj[2]) != 4 {
		t.Fatalf("%d subjects, subject 2 with %d events: want 5, and 4 (from both files)", len(subj), len(subj[2]))
	}
	_, err = Open(ctx, "iceberg:local/loose", Options{Config: f.cfg, MaxShardRows: 6})
	if !errors.Is(err, ErrSplitSubject) || !strings.Contains(err.Error(), ".parquet") ||
		!strings.Contains(err.Error(), "subject_ids 1 to 3") {
		t.Fatalf("over the bound: %v, want ErrSplitSubject naming the file and the ids", err)
	}
}

// TestBadInputs: each bad catalog, reference or table is an error naming it.
func TestBadInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("writes Iceberg tables")
	}
	f := newFixture(t, 0)
	cat := f.catalog(t)
	ctx := context.Background()
	wrong := iceberg.NewSchema(0,
		iceberg.NestedField{ID: 1, Name: data.ColSubjectID, Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: 2, Name: data.ColTime, Type: iceberg.PrimitiveTypes.Timestamp},
		iceberg.NestedField{ID: 3, Name: data.ColCode, Type: iceberg.PrimitiveTypes.Int64, Required: true})
	createEvents(t, cat, "wrongtype", wrong)
	if err := cat.CreateNamespace(ctx, table.Identifier{"empty"}, nil); err != nil {
		t.Fatal(err)
	}
	createEvents(t, cat, "nodata", eventsSchema)
	badCfg := filepath.Join(f.dir, "bad.yaml")
	if err := os.WriteFile(badCfg, []byte("catalogs:\n  x:\n    type: sql\n    url: /tmp/x.db\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, ref string
		want      []string
	}{
		{"unknown catalog", "iceberg:nowhere/demo", []string{`unknown catalog "nowhere"`, "local", f.cfgPath}},
		{"missing namespace", "iceberg:local/absent", []string{"no namespace absent", "not a MEDS dataset"}},
		{"missing table", "iceberg:local/empty", []string{"no table empty.events"}},
		{"wrong column type", "iceberg:local/wrongtype", []string{"table events", "column code has type long, want string"}},
		{"no data", "iceberg:local/nodata", []string{"table events has no snapshot"}},
		{"bad reference", "iceberg:local", []string{"want iceberg:CATALOG/NAMESPACE"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := data.Open(c.ref)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("unknown config key", func(t *testing.T) {
		_, err := LoadConfig(badCfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `unknown key "url"`) ||
			!strings.Contains(err.Error(), badCfg) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("literal credential", func(t *testing.T) {
		c := &Config{Catalogs: map[string]map[string]string{"p": {KeyURI: "http://127.0.0.1:1", KeyCredential: "a:b"}}}
		_, err := c.OpenCatalog(ctx, "p")
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "env:VARIABLE or file:PATH") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("export into a table not bucketed", func(t *testing.T) {
		g := newFixture(t, 30)
		createEvents(t, g.catalog(t), "flat", eventsSchema)
		ref, _ := ParseRef("local/flat")
		_, err := Export(ctx, g.meds, g.catalog(t), ref, ExportOptions{})
		if err == nil || !strings.Contains(err.Error(), "not partitioned by bucket(N, subject_id)") {
			t.Fatalf("%v", err)
		}
		for _, name := range []string{data.TableSubjectSplits, data.TableCodes} {
			if ok, _ := g.catalog(t).CheckTableExists(ctx, table.Identifier{"flat", name}); ok {
				t.Errorf("the failed export left table %s behind", name)
			}
		}
	})
}

// TestConfigEnv: MEDSEQ_CATALOG__<NAME>__<KEY> sets keys, known ones and properties.
func TestConfigEnv(t *testing.T) {
	t.Setenv(ConfigEnv, "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("MEDSEQ_CATALOG__POLARIS__OAUTH2_SERVER_URI", "https://auth.example/token")
	t.Setenv("MEDSEQ_CATALOG__POLARIS__S3_ENDPOINT", "http://minio:9000")
	t.Setenv("MEDSEQ_CATALOG__POLARIS__URI", "https://polaris.example/api/catalog")
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Catalogs["polaris"]
	if got[KeyOAuth2ServerURI] != "https://auth.example/token" || got["s3.endpoint"] != "http://minio:9000" ||
		got[KeyURI] != "https://polaris.example/api/catalog" || len(got) != 3 {
		t.Fatalf("%v", got)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "absent.yaml")); !errors.Is(err, ErrConfig) {
		t.Fatalf("an absent explicit config file: %v", err)
	}
}
