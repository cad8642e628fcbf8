package icebergtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// restIdent is a table identifier on the wire.
type restIdent struct {
	Namespace []string `json:"namespace"`
	Name      string   `json:"name"`
}

func (i restIdent) ident() table.Identifier {
	return append(append(table.Identifier{}, i.Namespace...), i.Name)
}

// tableChange is the body of a table commit, and one entry of a multi-table commit.
type tableChange struct {
	Identifier   *restIdent         `json:"identifier"`
	Requirements table.Requirements `json:"requirements"`
	Updates      table.Updates      `json:"updates"`
}

// decode decodes the request body into v, refusing unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body of %s %s: %w", r.Method, r.URL.Path, err)
	}
	return nil
}

// fail answers err with the status and error type the REST spec gives it.
func (s *Server) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, catalog.ErrNoSuchNamespace):
		writeError(w, http.StatusNotFound, "NoSuchNamespaceException", err.Error())
	case errors.Is(err, catalog.ErrNoSuchTable):
		writeError(w, http.StatusNotFound, "NoSuchTableException", err.Error())
	case errors.Is(err, catalog.ErrNamespaceAlreadyExists), errors.Is(err, catalog.ErrTableAlreadyExists):
		writeError(w, http.StatusConflict, "AlreadyExistsException", err.Error())
	case errors.Is(err, catalog.ErrNamespaceNotEmpty):
		writeError(w, http.StatusConflict, "NamespaceNotEmptyException", err.Error())
	case errors.Is(err, table.ErrCommitFailed):
		writeError(w, http.StatusConflict, "CommitFailedException", err.Error())
	default:
		s.tb.Logf("icebergtest: server error: %v", err)
		writeError(w, http.StatusInternalServerError, "ServerError", err.Error())
	}
}

// namespaces lists (GET) or creates (POST) namespaces.
func (s *Server) namespaces(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		var parent table.Identifier
		if p := r.URL.Query().Get("parent"); p != "" {
			parent = strings.Split(p, "\x1f")
		}
		s.state.RLock()
		defer s.state.RUnlock()
		list, err := s.backend.ListNamespaces(r.Context(), parent)
		if err != nil {
			s.fail(w, err)
			return
		}
		if list == nil {
			list = []table.Identifier{}
		}
		writeJSON(w, map[string]any{"namespaces": list})
	case http.MethodPost:
		var req struct {
			Namespace  table.Identifier   `json:"namespace"`
			Properties iceberg.Properties `json:"properties"`
		}
		if err := decode(r, &req); err != nil {
			badRequest(w, err)
			return
		}
		s.state.Lock()
		defer s.state.Unlock()
		if err := s.backend.CreateNamespace(r.Context(), req.Namespace, req.Properties); err != nil {
			s.fail(w, err)
			return
		}
		props, err := s.backend.LoadNamespaceProperties(r.Context(), req.Namespace)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, map[string]any{"namespace": req.Namespace, "properties": props})
	default:
		notFound(w, r)
	}
}

// namespace loads (GET), checks (HEAD) or drops (DELETE) a namespace.
func (s *Server) namespace(w http.ResponseWriter, r *http.Request, ns table.Identifier) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.state.RLock()
		defer s.state.RUnlock()
		props, err := s.backend.LoadNamespaceProperties(r.Context(), ns)
		switch {
		case err != nil:
			s.fail(w, err)
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, map[string]any{"namespace": ns, "properties": props})
		}
	case http.MethodDelete:
		s.state.Lock()
		defer s.state.Unlock()
		if err := s.backend.DropNamespace(r.Context(), ns); err != nil {
			s.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		notFound(w, r)
	}
}

// tables lists (GET) or creates (POST) the tables of a namespace.
func (s *Server) tables(w http.ResponseWriter, r *http.Request, ns table.Identifier) {
	switch r.Method {
	case http.MethodGet:
		s.state.RLock()
		defer s.state.RUnlock()
		ids := []restIdent{}
		for ident, err := range s.backend.ListTables(r.Context(), ns) {
			if err != nil {
				s.fail(w, err)
				return
			}
			ids = append(ids, restIdent{Namespace: catalog.NamespaceFromIdent(ident),
				Name: catalog.TableNameFromIdent(ident)})
		}
		writeJSON(w, map[string]any{"identifiers": ids})
	case http.MethodPost:
		s.createTable(w, r, ns)
	default:
		notFound(w, r)
	}
}

// createTable creates a table in the backing catalog and answers as LoadTable does.
func (s *Server) createTable(w http.ResponseWriter, r *http.Request, ns table.Identifier) {
	var req struct {
		Name          string                 `json:"name"`
		Schema        *iceberg.Schema        `json:"schema"`
		Location      string                 `json:"location"`
		PartitionSpec *iceberg.PartitionSpec `json:"partition-spec"`
		WriteOrder    *table.SortOrder       `json:"write-order"`
		StageCreate   bool                   `json:"stage-create"`
		Properties    iceberg.Properties     `json:"properties"`
	}
	if err := decode(r, &req); err != nil {
		badRequest(w, err)
		return
	}
	switch {
	case req.Name == "" || req.Schema == nil:
		badRequest(w, errors.New("create table: name and schema are required"))
		return
	case req.StageCreate:
		writeError(w, http.StatusNotImplemented, "NotImplementedException",
			"staged table creation is not offered by this test server")
		return
	}
	opts := []catalog.CreateTableOpt{catalog.WithProperties(req.Properties)}
	if req.PartitionSpec != nil {
		opts = append(opts, catalog.WithPartitionSpec(req.PartitionSpec))
	}
	if req.WriteOrder != nil {
		opts = append(opts, catalog.WithSortOrder(*req.WriteOrder))
	}
	if req.Location != "" {
		opts = append(opts, catalog.WithLocation(req.Location))
	}
	s.state.Lock()
	defer s.state.Unlock()
	t, err := s.backend.CreateTable(r.Context(), append(append(table.Identifier{}, ns...), req.Name), req.Schema,
		opts...)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.writeTable(w, r, t)
}

// table loads (GET), checks (HEAD), commits to (POST) or drops (DELETE) a table.
func (s *Server) table(w http.ResponseWriter, r *http.Request, ident table.Identifier) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.state.RLock()
		defer s.state.RUnlock()
		t, err := s.backend.LoadTable(r.Context(), ident)
		switch {
		case err != nil:
			s.fail(w, err)
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusNoContent)
		default:
			s.writeTable(w, r, t)
		}
	case http.MethodPost:
		s.commitTable(w, r, ident)
	case http.MethodDelete:
		s.state.Lock()
		defer s.state.Unlock()
		drop := s.backend.DropTable
		if p, ok := s.backend.(catalog.PurgeableTable); ok && r.URL.Query().Get("purgeRequested") == "true" {
			drop = p.PurgeTable
		}
		if err := drop(r.Context(), ident); err != nil {
			s.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		notFound(w, r)
	}
}

// writeTable answers with a LoadTableResult: the metadata and, when the request asks for
// vended credentials, the storage config.
func (s *Server) writeTable(w http.ResponseWriter, r *http.Request, t *table.Table) {
	meta, err := json.Marshal(t.Metadata())
	if err != nil {
		s.fail(w, fmt.Errorf("encode the metadata of %s: %w", strings.Join(t.Identifier(), "."), err))
		return
	}
	resp := map[string]any{"metadata-location": t.MetadataLocation(), "metadata": json.RawMessage(meta)}
	if strings.Contains(r.Header.Get(AccessDelegationHeader), "vended-credentials") {
		resp["config"] = s.opt.VendedConfig
	}
	writeJSON(w, resp)
}

// commitTable applies one table's requirements and updates.
func (s *Server) commitTable(w http.ResponseWriter, r *http.Request, ident table.Identifier) {
	var req tableChange
	if err := decode(r, &req); err != nil {
		badRequest(w, err)
		return
	}
	if req.Identifier != nil && !slices.Equal(req.Identifier.ident(), ident) {
		badRequest(w, fmt.Errorf("commit to %s names table %s", strings.Join(ident, "."),
			strings.Join(req.Identifier.ident(), ".")))
		return
	}
	req.Identifier = &restIdent{Namespace: catalog.NamespaceFromIdent(ident), Name: catalog.TableNameFromIdent(ident)}
	s.state.Lock()
	defer s.state.Unlock()
	if _, ok := s.check(r.Context(), w, req); !ok {
		return
	}
	meta, loc, err := s.backend.CommitTable(r.Context(), ident, req.Requirements, req.Updates)
	if err != nil {
		s.fail(w, err)
		return
	}
	buf, err := json.Marshal(meta)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"metadata-location": loc, "metadata": json.RawMessage(buf)})
}
