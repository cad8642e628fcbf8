package icebergtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	"github.com/apache/iceberg-go/table"

	"github.com/medseq/medseq/data/icebergmeds"
	"github.com/medseq/medseq/data/icebergmeds/icebergtest"
)

// flaky is a backing catalog whose commits to table failOn fail (as a storage or database
// error would).
type flaky struct {
	catalog.Catalog
	failOn string
}

func (f *flaky) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement,
	updates []table.Update) (table.Metadata, string, error) {
	if ident[len(ident)-1] == f.failOn {
		return nil, "", fmt.Errorf("backing store of %s unavailable", f.failOn)
	}
	return f.Catalog.CommitTable(ctx, ident, reqs, updates)
}

// setup starts a server over a SQL catalog on SQLite (wrapped in flaky) and opens a REST
// client on it.
func setup(t *testing.T) (*flaky, *icebergtest.Server, *rest.Catalog) {
	t.Helper()
	dir := t.TempDir()
	cfg := &icebergmeds.Config{Catalogs: map[string]map[string]string{"local": {
		icebergmeds.KeyType: icebergmeds.TypeSQL, icebergmeds.KeyURI: filepath.Join(dir, "catalog.db"),
		icebergmeds.KeyWarehouse: "file://" + filepath.Join(dir, "warehouse")}}}
	ctx := context.Background()
	backend, err := cfg.OpenCatalog(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { icebergmeds.CloseCatalog(backend) })
	fl := &flaky{Catalog: backend}
	srv := icebergtest.NewServer(t, fl, icebergtest.Options{})
	auth, _ := url.Parse(srv.TokenURL())
	cl, err := rest.NewCatalog(ctx, "polaris", srv.URL, rest.WithCredential(srv.Credential()),
		rest.WithScope(icebergtest.DefaultScope), rest.WithAuthURI(auth))
	if err != nil {
		t.Fatal(err)
	}
	return fl, srv, cl
}

var idSchema = iceberg.NewSchema(0, iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64,
	Required: true})

// stageIDs stages an append of one file holding ids to tx.
func stageIDs(t *testing.T, tx *table.Transaction, ids ...int64) {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues(ids, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	rdr, err := array.NewRecordReader(sc, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	if err := tx.Append(context.Background(), rdr, nil); err != nil {
		t.Fatal(err)
	}
}

// snapshotOf is the current snapshot id of ns.name in the backing catalog (0: none).
func snapshotOf(t *testing.T, cat catalog.Catalog, name string) int64 {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), table.Identifier{"ns", name})
	if err != nil {
		t.Fatal(err)
	}
	if s := tbl.CurrentSnapshot(); s != nil {
		return s.SnapshotID
	}
	return 0
}

// TestCommitTransaction: a multi-table commit is applied whole, or, when the backing catalog
// fails on a later table, not at all; a stale requirement is a conflict.
func TestCommitTransaction(t *testing.T) {
	fl, srv, cl := setup(t)
	ctx := context.Background()
	if err := cl.CreateNamespace(ctx, table.Identifier{"ns"}, nil); err != nil {
		t.Fatal(err)
	}
	tables := map[string]*table.Table{}
	for _, name := range []string{"a", "b"} {
		tbl, err := cl.CreateTable(ctx, table.Identifier{"ns", name}, idSchema)
		if err != nil {
			t.Fatal(err)
		}
		tables[name] = tbl
	}
	tx := tables["a"].NewTransaction()
	stageIDs(t, tx, 1, 2)
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	first := snapshotOf(t, fl.Catalog, "a")
	commitBoth := func() error {
		mt, err := catalog.NewMultiTableTransaction(cl)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a", "b"} {
			tbl, err := cl.LoadTable(ctx, table.Identifier{"ns", name})
			if err != nil {
				t.Fatal(err)
			}
			tx := tbl.NewTransaction()
			stageIDs(t, tx, 3, 4)
			if err := mt.AddTransaction(tx); err != nil {
				t.Fatal(err)
			}
		}
		return mt.Commit(ctx)
	}
	fl.failOn = "b"
	err := commitBoth()
	if err == nil || !strings.Contains(err.Error(), "nothing committed") {
		t.Fatalf("a commit failing on its second table: %v", err)
	}
	if a, b := snapshotOf(t, fl.Catalog, "a"), snapshotOf(t, fl.Catalog, "b"); a != first || b != 0 {
		t.Fatalf("after a failed multi-table commit: a at snapshot %d (want %d), b at %d (want none)", a, first, b)
	}
	fl.failOn = ""
	if err := commitBoth(); err != nil {
		t.Fatal(err)
	}
	if a, b := snapshotOf(t, fl.Catalog, "a"), snapshotOf(t, fl.Catalog, "b"); a == first || b == 0 {
		t.Fatalf("after a multi-table commit: a at snapshot %d (was %d), b at %d", a, first, b)
	}
	_, _, err = cl.CommitTable(ctx, table.Identifier{"ns", "a"},
		[]table.Requirement{table.AssertRefSnapshotID(table.MainBranch, &first)},
		[]table.Update{table.NewSetPropertiesUpdate(iceberg.Properties{"k": "v"})})
	if !errors.Is(err, table.ErrCommitFailed) {
		t.Fatalf("a commit asserting a stale snapshot: %v, want a conflict", err)
	}
	n := 0
	for _, r := range srv.Requests() {
		if strings.HasSuffix(r.Path, "/transactions/commit") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d multi-table commit requests, want 2", n)
	}
}

// TestErrors: requests the server refuses, with the status the REST spec gives.
func TestErrors(t *testing.T) {
	_, srv, cl := setup(t)
	ctx := context.Background()
	if err := cl.CreateNamespace(ctx, table.Identifier{"ns"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateTable(ctx, table.Identifier{"ns", "a"}, idSchema); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {icebergtest.DefaultClientID},
		"client_secret": {icebergtest.DefaultClientSecret}, "scope": {icebergtest.DefaultScope}}
	rsp, err := http.PostForm(srv.TokenURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	var grant struct {
		Token string `json:"access_token"`
	}
	err = json.NewDecoder(rsp.Body).Decode(&grant)
	rsp.Body.Close()
	if err != nil || grant.Token == "" {
		t.Fatalf("token: %v", err)
	}
	tok := grant.Token
	base := srv.URL + "/v1/" + icebergtest.DefaultPrefix
	cases := []struct {
		name, method, path, body string
		noToken                  bool
		status                   int
		says                     string
	}{
		{"no token", http.MethodGet, "/namespaces/ns", "", true, 401, "NotAuthorizedException"},
		{"unknown route", http.MethodGet, "/views", "", false, 404, "no route"},
		{"bad body", http.MethodPost, "/namespaces", "{", false, 400, "BadRequestException"},
		{"unknown field", http.MethodPost, "/namespaces", `{"namespace":["x"],"props":{}}`, false, 400, "props"},
		{"staged create", http.MethodPost, "/namespaces/ns/tables",
			`{"name":"s","schema":{"type":"struct","schema-id":0,"fields":[]},"stage-create":true}`, false, 501,
			"staged"},
		{"commit to a missing table", http.MethodPost, "/namespaces/ns/tables/nope",
			`{"requirements":[],"updates":[]}`, false, 404, "NoSuchTableException"},
		{"commit naming another table", http.MethodPost, "/namespaces/ns/tables/a",
			`{"identifier":{"namespace":["ns"],"name":"b"},"requirements":[],"updates":[]}`, false, 400, "names table"},
		{"table twice in a transaction", http.MethodPost, "/transactions/commit",
			`{"table-changes":[{"identifier":{"namespace":["ns"],"name":"a"},"requirements":[],"updates":[]},` +
				`{"identifier":{"namespace":["ns"],"name":"a"},"requirements":[],"updates":[]}]}`, false, 400,
			"changed twice"},
		{"drop a namespace with tables", http.MethodDelete, "/namespaces/ns", "", false, 409,
			"NamespaceNotEmptyException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if !c.noToken {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			rsp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer rsp.Body.Close()
			body, _ := io.ReadAll(rsp.Body)
			if rsp.StatusCode != c.status || !strings.Contains(string(body), c.says) {
				t.Fatalf("%d %s, want %d saying %q", rsp.StatusCode, body, c.status, c.says)
			}
		})
	}
	t.Run("bad scope", func(t *testing.T) {
		form.Set("scope", "PRINCIPAL_ROLE:other")
		rsp, err := http.PostForm(srv.TokenURL(), form)
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token for another scope: %d, want 401", rsp.StatusCode)
		}
	})
}
