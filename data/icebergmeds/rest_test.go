package icebergmeds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/medseq/medseq/data"
)

// restServer is an in-process Iceberg REST catalog serving the tables of a SQL catalog: the
// config endpoint, an OAuth2 client-credentials token endpoint whose tokens expire after ttl,
// namespaces and LoadTable with vended storage config. It records the requests it gets.
type restServer struct {
	t        *testing.T
	backend  catalog.Catalog
	id, key  string
	ttl      time.Duration
	mu       sync.Mutex
	tokens   map[string]time.Time // token: expiry
	issued   int
	requests []restRequest
}

type restRequest struct {
	Method, Path, Delegation, Warehouse string
	Authorized                          bool
}

const restPrefix = "medseq-test"

func (s *restServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/auth/token" {
		s.token(w, r)
		return
	}
	s.mu.Lock()
	exp, ok := s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	authorized := ok && time.Now().Before(exp)
	s.requests = append(s.requests, restRequest{Method: r.Method, Path: r.URL.Path, Authorized: authorized,
		Delegation: r.Header.Get(accessDelegationHeader), Warehouse: r.URL.Query().Get("warehouse")})
	s.mu.Unlock()
	if !authorized {
		restError(w, http.StatusUnauthorized, "NotAuthorizedException", "missing, unknown or expired token")
		return
	}
	if r.URL.Path == "/v1/config" {
		writeJSON(w, map[string]any{"defaults": map[string]string{}, "overrides": map[string]string{"prefix": restPrefix}})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/"+restPrefix+"/namespaces/")
	if !ok || r.Method != http.MethodGet {
		restError(w, http.StatusNotFound, "NotFoundException", "no route "+r.Method+" "+r.URL.Path)
		return
	}
	ns, tbl, isTable := strings.Cut(rest, "/tables/")
	ident := table.Identifier(strings.Split(ns, "\x1f"))
	if !isTable {
		props, err := s.backend.LoadNamespaceProperties(r.Context(), ident)
		if err != nil {
			restError(w, http.StatusNotFound, "NoSuchNamespaceException", err.Error())
			return
		}
		writeJSON(w, map[string]any{"namespace": ident, "properties": props})
		return
	}
	s.loadTable(w, r, append(ident, tbl))
}

// loadTable answers LoadTable with the backend's metadata and, when asked to delegate access,
// vended storage credentials.
func (s *restServer) loadTable(w http.ResponseWriter, r *http.Request, ident table.Identifier) {
	t, err := s.backend.LoadTable(r.Context(), ident)
	if err != nil {
		restError(w, http.StatusNotFound, "NoSuchTableException", err.Error())
		return
	}
	buf, err := os.ReadFile(strings.TrimPrefix(t.MetadataLocation(), "file://"))
	if err != nil {
		s.t.Error(err)
		restError(w, http.StatusInternalServerError, "ServerError", err.Error())
		return
	}
	resp := map[string]any{"metadata-location": t.MetadataLocation(), "metadata": json.RawMessage(buf)}
	if r.Header.Get(accessDelegationHeader) == "vended-credentials" {
		resp["config"] = map[string]string{"s3.access-key-id": "ASIA-TEST", "s3.secret-access-key": "vended",
			"s3.session-token": "session", "client.region": "eu-west-1"}
	}
	writeJSON(w, resp)
}

// token is the OAuth2 client-credentials endpoint.
func (s *restServer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	if r.Form.Get("client_id") != s.id || r.Form.Get("client_secret") != s.key ||
		r.Form.Get("scope") != "PRINCIPAL_ROLE:ALL" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"unknown client or bad secret or scope"}`)
		return
	}
	s.mu.Lock()
	s.issued++
	tok := fmt.Sprintf("token-%d", s.issued)
	s.tokens[tok] = time.Now().Add(s.ttl)
	s.mu.Unlock()
	writeJSON(w, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(s.ttl.Seconds()),
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
}

func restError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// newRESTServer serves the fixture's SQL catalog over REST and adds catalog "polaris", with
// its credential in $TEST_POLARIS_CREDENTIAL, to the fixture's config.
func newRESTServer(t *testing.T, f *fixture, ttl time.Duration) *restServer {
	s := &restServer{t: t, backend: f.catalog(t), id: "medseq", key: "s3cr3t", ttl: ttl, tokens: map[string]time.Time{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Setenv("TEST_POLARIS_CREDENTIAL", s.id+":"+s.key)
	f.cfg.Catalogs["polaris"] = map[string]string{KeyType: TypeREST, KeyURI: srv.URL, KeyWarehouse: "clinical",
		KeyCredential: "env:TEST_POLARIS_CREDENTIAL", KeyScope: "PRINCIPAL_ROLE:ALL",
		KeyOAuth2ServerURI: srv.URL + "/auth/token"}
	return s
}

func (s *restServer) log() ([]restRequest, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]restRequest(nil), s.requests...), s.issued
}

// TestRESTCatalog reads a dataset through a REST catalog and checks what medseq asked of it.
func TestRESTCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads Iceberg tables")
	}
	f := newFixture(t, 200)
	f.export(t, f.meds, "demo", 4)
	srv := newRESTServer(t, f, 11*time.Second)
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

	reqs, _ := srv.log()
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
				t.Errorf("LoadTable %s: %s %q, want vended-credentials", r.Path, accessDelegationHeader, r.Delegation)
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
func tokenRefresh(t *testing.T, f *fixture, srv *restServer) {
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
	_, before := srv.log()
	if _, err := cat.LoadTable(ctx, ident); err != nil {
		t.Fatal(err)
	}
	if _, again := srv.log(); again != before {
		t.Fatalf("a fresh token was not reused: %d tokens, then %d", before, again)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := cat.LoadTable(ctx, ident); err != nil {
		t.Fatal(err)
	}
	if _, after := srv.log(); after != before+1 {
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
	newRESTServer(t, f, time.Minute)
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
