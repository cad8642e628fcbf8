package icebergtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// AccessDelegationHeader asks a REST catalog to vend storage credentials with a table.
const AccessDelegationHeader = "X-Iceberg-Access-Delegation"

// Defaults of Options.
const (
	DefaultClientID     = "medseq"
	DefaultClientSecret = "s3cr3t"
	DefaultScope        = "PRINCIPAL_ROLE:ALL"
	DefaultPrefix       = "medseq-test"
	DefaultTokenTTL     = time.Hour
	// TokenPath is the path of the OAuth2 token endpoint (Server.TokenURL).
	TokenPath = "/auth/token"
)

// EndpointsWithoutTransactions is the REST spec's default endpoint set less the multi-table
// commit: a server advertising it makes clients commit table by table.
var EndpointsWithoutTransactions = []string{
	"GET /v1/{prefix}/namespaces", "GET /v1/{prefix}/namespaces/{namespace}",
	"POST /v1/{prefix}/namespaces", "DELETE /v1/{prefix}/namespaces/{namespace}",
	"GET /v1/{prefix}/namespaces/{namespace}/tables", "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
	"POST /v1/{prefix}/namespaces/{namespace}/tables", "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
	"DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
}

// Options configures a Server; zero fields take the defaults above.
type Options struct {
	ClientID, ClientSecret string
	// Scope is the scope a token request must ask for.
	Scope string
	// TokenTTL is how long a token is valid (expires_in); the server refuses it after.
	TokenTTL time.Duration
	// Prefix is the prefix /v1/config hands out: paths are /v1/{prefix}/...
	Prefix string
	// Endpoints are advertised by /v1/config; nil advertises none (clients then assume the
	// spec's default set, the multi-table commit included).
	Endpoints []string
	// VendedConfig is the storage config LoadTable returns when asked to vend credentials;
	// nil returns a made-up S3 session.
	VendedConfig map[string]string
}

// Request is one request the server received (token requests are not recorded).
type Request struct {
	Method, Path string
	// Delegation is the X-Iceberg-Access-Delegation header; Warehouse the warehouse parameter.
	Delegation, Warehouse string
	// Authorized: the request carried a bearer token the server issued and that had not expired.
	Authorized bool
}

// Server is an in-process Iceberg REST catalog serving a backing catalog's tables.
type Server struct {
	// URL is the catalog's base URI (http://127.0.0.1:port).
	URL     string
	tb      testing.TB
	backend catalog.Catalog
	opt     Options

	mu       sync.Mutex // guards the fields below
	tokens   map[string]time.Time
	issued   int
	requests []Request
	refuse   func(table.Identifier) bool

	// state orders writes (exclusive) against reads (shared), so a multi-table commit is seen
	// whole or not at all.
	state sync.RWMutex
}

// NewServer starts a REST catalog serving backend's tables; it stops when the test ends.
func NewServer(tb testing.TB, backend catalog.Catalog, opt Options) *Server {
	tb.Helper()
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&opt.ClientID, DefaultClientID)
	def(&opt.ClientSecret, DefaultClientSecret)
	def(&opt.Scope, DefaultScope)
	def(&opt.Prefix, DefaultPrefix)
	if opt.TokenTTL <= 0 {
		opt.TokenTTL = DefaultTokenTTL
	}
	if opt.VendedConfig == nil {
		opt.VendedConfig = map[string]string{"s3.access-key-id": "ASIA-TEST", "s3.secret-access-key": "vended",
			"s3.session-token": "session", "client.region": "eu-west-1"}
	}
	s := &Server{tb: tb, backend: backend, opt: opt, tokens: map[string]time.Time{}}
	srv := httptest.NewServer(s)
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// TokenURL is the OAuth2 token endpoint (a client's oauth2-server-uri).
func (s *Server) TokenURL() string { return s.URL + TokenPath }

// Credential is the client credential the token endpoint accepts: id:secret.
func (s *Server) Credential() string { return s.opt.ClientID + ":" + s.opt.ClientSecret }

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// TokensIssued is the number of tokens the token endpoint has issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// RefuseCommits makes the server refuse, with 403 Forbidden and before writing anything, every
// commit (single or multi-table) that changes a table for which refuse is true; nil accepts
// them all again.
func (s *Server) RefuseCommits(refuse func(table.Identifier) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = refuse
}

func (s *Server) refused(ident table.Identifier) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refuse != nil && s.refuse(ident)
}

// ServeHTTP answers the token endpoint, then, for requests with a valid token, the catalog.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == TokenPath {
		s.token(w, r)
		return
	}
	if !s.record(r) {
		writeError(w, http.StatusUnauthorized, "NotAuthorizedException", "missing, unknown or expired token")
		return
	}
	if r.URL.Path == "/v1/config" && r.Method == http.MethodGet {
		writeJSON(w, map[string]any{"defaults": map[string]string{},
			"overrides": map[string]string{"prefix": s.opt.Prefix}, "endpoints": s.opt.Endpoints})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/"+s.opt.Prefix+"/")
	if !ok {
		notFound(w, r)
		return
	}
	s.route(w, r, strings.Split(rest, "/"))
}

// record logs r and says whether it carries a valid token.
func (s *Server) record(r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	authorized := ok && time.Now().Before(exp)
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Authorized: authorized,
		Delegation: r.Header.Get(AccessDelegationHeader), Warehouse: r.URL.Query().Get("warehouse")})
	return authorized
}

// route dispatches the path below /v1/{prefix}/, split at '/' (a namespace's levels are
// joined by the unit separator, %1F on the wire).
func (s *Server) route(w http.ResponseWriter, r *http.Request, seg []string) {
	switch {
	case len(seg) == 2 && seg[0] == "transactions" && seg[1] == "commit" && r.Method == http.MethodPost:
		s.commitTransaction(w, r)
	case len(seg) == 1 && seg[0] == "namespaces":
		s.namespaces(w, r)
	case len(seg) >= 2 && seg[0] == "namespaces" && seg[1] != "":
		ns := table.Identifier(strings.Split(seg[1], "\x1f"))
		switch {
		case len(seg) == 2:
			s.namespace(w, r, ns)
		case len(seg) == 3 && seg[2] == "tables":
			s.tables(w, r, ns)
		case len(seg) == 4 && seg[2] == "tables" && seg[3] != "":
			s.table(w, r, append(ns, seg[3]))
		default:
			notFound(w, r)
		}
	default:
		notFound(w, r)
	}
}

// token is the OAuth2 client-credentials endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost ||
		r.Form.Get("grant_type") != "client_credentials" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_request"}`)
		return
	}
	if r.Form.Get("client_id") != s.opt.ClientID || r.Form.Get("client_secret") != s.opt.ClientSecret ||
		r.Form.Get("scope") != s.opt.Scope {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"unknown client or bad secret or scope"}`)
		return
	}
	s.mu.Lock()
	s.issued++
	tok := fmt.Sprintf("token-%d", s.issued)
	s.tokens[tok] = time.Now().Add(s.opt.TokenTTL)
	s.mu.Unlock()
	writeJSON(w, map[string]any{"access_token": tok, "token_type": "bearer",
		"expires_in": int(s.opt.TokenTTL.Seconds()), "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// writeError writes an error in the REST spec's ErrorModel.
func writeError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "NotFoundException", "no route "+r.Method+" "+r.URL.Path)
}

func badRequest(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, "BadRequestException", err.Error())
}
