package icebergmeds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/data/icebergmeds/icebergtest"
	"github.com/medseq/medseq/data/synth"
)

// newRESTServer serves the fixture's SQL catalog over REST (icebergtest) and adds catalog
// name to the fixture's config, with its credential in $TEST_POLARIS_CREDENTIAL.
func newRESTServer(t *testing.T, f *fixture, name string, opt icebergtest.Options) *icebergtest.Server {
	s := icebergtest.NewServer(t, f.catalog(t), opt)
	t.Setenv("TEST_POLARIS_CREDENTIAL", s.Credential())
	f.cfg.Catalogs[name] = map[string]string{KeyType: TypeREST, KeyURI: s.URL, KeyWarehouse: "clinical",
		KeyCredential: "env:TEST_POLARIS_CREDENTIAL", KeyScope: icebergtest.DefaultScope,
		KeyOAuth2ServerURI: s.TokenURL()}
	return s
}

// TestRESTCatalog reads a dataset through a REST catalog and checks what medseq asked of it.
func TestRESTCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads Iceberg tables")
	}
	f := newFixture(t, 200)
	f.export(t, f.meds, "demo", 4)
	srv := newRESTServer(t, f, "polaris", icebergtest.Options{TokenTTL: 11 * time.Second})
	ctx := context.Background()
	viaSQL, err := Open(ctx, "iceberg:local/demo", Options{Config: f.cfg})
	if err != nil {
		t.Fatal(err)
	}
	viaREST, err := Open(ctx, "iceberg:polaris/demo", Options{Config: f.cfg})
	if err != nil {
		t.Fatal(err)
	}
	trim := func(shards []string, prefix string) []string {
		for i := range shards {
			shards[i] = strings.TrimPrefix(shards[i], prefix)
		}
		return shards
	}
	if viaREST.Fingerprint() != viaSQL.Fingerprint() ||
		!reflect.DeepEqual(trim(viaREST.Shards(), "iceberg:polaris"), trim(viaSQL.Shards(), "iceberg:local")) {
		t.Fatalf("REST and SQL read different tables, snapshots or shards")
	}
	// Through data.Open (config from $MEDSEQ_ICEBERG_CONFIG): the folder's subjects.
	writeConfig(t, f)
	ds, err := data.Open("iceberg:polaris/demo")
	if err != nil {
		t.Fatal(err)
	}
	folder, err := data.Open(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	sameSubjects(t, subjects(t, folder), subjects(t, ds))

	reqs := srv.Requests()
	var loads int
	for _, r := range reqs {
		if !r.Authorized {
			t.Errorf("%s %s without a valid token", r.Method, r.Path)
		}
		if r.Path == "/v1/config" && r.Warehouse != "clinical" {
			t.Errorf("config request for warehouse %q, want clinical", r.Warehouse)
		}
		if strings.Contains(r.Path, "/tables/") {
			loads++
			if r.Delegation != "vended-credentials" {
				t.Errorf("LoadTable %s: %s %q, want vended-credentials", r.Path, icebergtest.AccessDelegationHeader, r.Delegation)
			}
		}
	}
	if loads < 6 { // events, subject_splits, codes: twice
		t.Errorf("%d LoadTable requests, want 6 or more", loads)
	}
	t.Run("token refresh", func(t *testing.T) { tokenRefresh(t, f, srv) })
}

// tokenRefresh checks that one catalog renews its token once it nears expiry (the server
// refuses expired tokens, and golang.org/x/oauth2 renews 10s before expiry: with an 11s token,
// after a second).
func tokenRefresh(t *testing.T, f *fixture, srv *icebergtest.Server) {
	ctx := context.Background()
	cat, err := f.cfg.OpenCatalog(ctx, "polaris")
	if err != nil {
		t.Fatal(err)
	}
	defer CloseCatalog(cat)
	ident := table.Identifier{"demo", data.TableEvents}
	if _, err := cat.LoadTable(ctx, ident); err != nil {
		t.Fatal(err)
	}
	before := srv.TokensIssued()
	if _, err := cat.LoadTable(ctx, ident); err != nil {
		t.Fatal(err)
	}
	if again := srv.TokensIssued(); again != before {
		t.Fatalf("a fresh token was not reused: %d tokens, then %d", before, again)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := cat.LoadTable(ctx, ident); err != nil {
		t.Fatal(err)
	}
	if after := srv.TokensIssued(); after != before+1 {
		t.Fatalf("%d tokens issued before the token neared expiry, %d after: want one refresh", before, after)
	}
}

// writeConfig writes the fixture's config, REST catalog included, to its config file.
func writeConfig(t *testing.T, f *fixture) {
	var b strings.Builder
	b.WriteString("catalogs:\n")
	for name, c := range f.cfg.Catalogs {
		fmt.Fprintf(&b, "  %s:\n", name)
		for k, v := range c {
			fmt.Fprintf(&b, "    %s: %q\n", k, v)
		}
	}
	if err := os.WriteFile(f.cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRESTBadCredential: a refused client credential is an error naming the catalog.
func TestRESTBadCredential(t *testing.T) {
	f := newFixture(t, 0)
	newRESTServer(t, f, "polaris", icebergtest.Options{})
	t.Setenv("TEST_POLARIS_CREDENTIAL", "medseq:wrong")
	_, err := Open(context.Background(), "iceberg:polaris/demo", Options{Config: f.cfg})
	if err == nil || !strings.Contains(err.Error(), "catalog polaris") || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("bad credential: %v", err)
	}
	t.Setenv("TEST_POLARIS_CREDENTIAL", "")
	_, err = Open(context.Background(), "iceberg:polaris/demo", Options{Config: f.cfg})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "TEST_POLARIS_CREDENTIAL") {
		t.Fatalf("unset credential: %v", err)
	}
}

// TestRESTExport exports a MEDS folder through a REST catalog, committing the three tables in
// one multi-table commit or, where the server does not offer one, table by table; reads it back
// through REST and through the SQL catalog underneath, identical to the folder; and checks that
// a refused commit leaves nothing committed.
func TestRESTExport(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads Iceberg tables")
	}
	f := newFixture(t, 150)
	src, more := filepath.Join(f.dir, "more-src"), filepath.Join(f.dir, "more")
	if _, err := synth.Generate(context.Background(), synth.Config{Out: src, Subjects: 40, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	shiftIDs(t, src, more, 1_000_000)
	folder, err := data.Open(f.meds)
	if err != nil {
		t.Fatal(err)
	}
	want := subjects(t, folder)
	cases := []struct {
		name      string
		endpoints []string
		together  bool // one multi-table commit, else one commit per table
	}{
		{"multi-table commit", nil, true},
		{"table by table", icebergtest.EndpointsWithoutTransactions, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cat, ns := fmt.Sprintf("polaris%d", i), fmt.Sprintf("viarest%d", i)
			srv := newRESTServer(t, f, cat, icebergtest.Options{Endpoints: c.endpoints})
			writeConfig(t, f)
			if res := f.exportTo(t, cat, f.meds, ns, 4); res.Subjects != len(want) || len(res.Created) != 3 {
				t.Fatalf("export: %+v", res)
			}
			reqs := srv.Requests()
			txs, commits := countCommits(reqs)
			if c.together && (txs != 1 || commits != 0) || !c.together && (txs != 0 || commits != 3) {
				t.Fatalf("%d multi-table commits and %d table commits, want %v", txs, commits, c.together)
			}
			checkRequests(t, reqs)
			for _, ref := range []string{"iceberg:" + cat + "/" + ns, "iceberg:local/" + ns} {
				ds, err := data.Open(ref)
				if err != nil {
					t.Fatal(err)
				}
				sameSubjects(t, want, subjects(t, ds))
				sameMetadata(t, folder, ds)
				if !reflect.DeepEqual(ds.Meta, folder.Meta) {
					t.Errorf("%s: dataset.json %+v, want %+v", ref, ds.Meta, folder.Meta)
				}
			}
			t.Run("refused commit", func(t *testing.T) {
				from := len(srv.Requests())
				refusedCommit(t, f, srv, cat, ns, more, len(want))
				// Table by table: subject_splits is committed (more has no code metadata: codes is
				// left alone), events refused, and subject_splits rolled back on the append; its
				// tables dropped on the new namespace.
				txs, commits := countCommits(srv.Requests()[from:])
				if c.together && (txs != 2 || commits != 0) || !c.together && (txs != 0 || commits != 5) {
					t.Fatalf("%d multi-table commits and %d table commits, want %v", txs, commits, c.together)
				}
			})
		})
	}
}

// refusedCommit has the server refuse commits to the events table, then exports folder more
// to namespace ns (appending to its n subjects) and to a new namespace: both fail, and leave
// the tables as they were and no new namespace.
func refusedCommit(t *testing.T, f *fixture, srv *icebergtest.Server, cat, ns, more string, n int) {
	ctx := context.Background()
	before, err := data.Fingerprint("iceberg:local/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	srv.RefuseCommits(func(id table.Identifier) bool { return id[len(id)-1] == data.TableEvents })
	defer srv.RefuseCommits(nil)
	for _, dest := range []string{ns, ns + "_new"} {
		ref, err := ParseRef(cat + "/" + dest)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Export(ctx, more, f.open(t, cat), ref, ExportOptions{Buckets: 4})
		if err == nil || !strings.Contains(err.Error(), "ForbiddenException") {
			t.Fatalf("export to %s with commits to events refused: %v", dest, err)
		}
	}
	if after, err := data.Fingerprint("iceberg:local/" + ns); err != nil || after != before {
		t.Fatalf("a refused append changed the tables (%v)", err)
	}
	ds, err := data.Open("iceberg:" + cat + "/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(subjects(t, ds)); got != n {
		t.Fatalf("%d subjects after a refused append, want %d", got, n)
	}
	ok, err := f.catalog(t).CheckNamespaceExists(ctx, table.Identifier{ns + "_new"})
	if ok || err != nil {
		t.Fatalf("a refused export to a new namespace left it behind (exists %v, %v)", ok, err)
	}
}

// countCommits counts the multi-table commits and the single-table commits in reqs.
func countCommits(reqs []icebergtest.Request) (txs, commits int) {
	for _, r := range reqs {
		switch {
		case r.Method != http.MethodPost:
		case strings.HasSuffix(r.Path, "/transactions/commit"):
			txs++
		case strings.Contains(r.Path, "/tables/"):
			commits++
		}
	}
	return txs, commits
}

// checkRequests checks that every request carried a valid token and that every table load
// and creation asked for vended credentials.
func checkRequests(t *testing.T, reqs []icebergtest.Request) {
	t.Helper()
	for _, r := range reqs {
		if !r.Authorized {
			t.Errorf("%s %s without a valid token", r.Method, r.Path)
		}
		loadOrCreate := r.Method == http.MethodGet && strings.Contains(r.Path, "/tables/") ||
			r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/tables")
		if loadOrCreate && r.Delegation != "vended-credentials" {
			t.Errorf("%s %s: %s %q, want vended-credentials", r.Method, r.Path, icebergtest.AccessDelegationHeader,
				r.Delegation)
		}
	}
}
