package icebergtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// check decides whether change may be applied, answering w when not: the table is not refused,
// exists (or the change asserts its creation), meets every requirement, and takes the updates.
// It returns the table as it is (nil: none yet). The caller holds s.state.
func (s *Server) check(ctx context.Context, w http.ResponseWriter, change tableChange) (*table.Table, bool) {
	ident := change.Identifier.ident()
	name := strings.Join(ident, ".")
	if s.refused(ident) {
		writeError(w, http.StatusForbidden, "ForbiddenException", "principal may not write table "+name)
		return nil, false
	}
	cur, err := s.backend.LoadTable(ctx, ident)
	if err != nil && !errors.Is(err, catalog.ErrNoSuchTable) {
		s.fail(w, err)
		return nil, false
	}
	var meta table.Metadata
	loc := ""
	if cur != nil {
		meta, loc = cur.Metadata(), cur.MetadataLocation()
	}
	creates := slices.ContainsFunc(change.Requirements, func(r table.Requirement) bool {
		return r.GetType() == "assert-create"
	})
	if cur == nil && !creates {
		s.fail(w, fmt.Errorf("%w: %s", catalog.ErrNoSuchTable, name))
		return nil, false
	}
	for _, req := range change.Requirements {
		if err := req.Validate(meta); err != nil {
			writeError(w, http.StatusConflict, "CommitFailedException", fmt.Sprintf("table %s: %v", name, err))
			return nil, false
		}
	}
	base := meta
	if base == nil {
		if base, err = table.NewMetadata(iceberg.NewSchema(0), nil, table.UnsortedSortOrder, "", nil); err != nil {
			s.fail(w, err)
			return nil, false
		}
	}
	if _, err := table.UpdateTableMetadata(base, change.Updates, loc); err != nil {
		badRequest(w, fmt.Errorf("table %s: %w", name, err))
		return nil, false
	}
	return cur, true
}

// commitTransaction is the multi-table commit: all tables' changes are checked before any is
// applied; should applying one fail, those applied before it are undone.
func (s *Server) commitTransaction(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TableChanges []tableChange `json:"table-changes"`
	}
	if err := decode(r, &req); err != nil {
		badRequest(w, err)
		return
	}
	if len(req.TableChanges) == 0 {
		badRequest(w, errors.New("commit transaction: no table-changes"))
		return
	}
	seen := map[string]bool{}
	for _, c := range req.TableChanges {
		if c.Identifier == nil || c.Identifier.Name == "" {
			badRequest(w, errors.New("commit transaction: a table change without an identifier"))
			return
		}
		name := strings.Join(c.Identifier.ident(), "\x1f")
		if seen[name] {
			badRequest(w, fmt.Errorf("commit transaction: table %s changed twice", strings.Join(c.Identifier.ident(), ".")))
			return
		}
		seen[name] = true
	}
	ctx := r.Context()
	s.state.Lock()
	defer s.state.Unlock()
	prev := make([]*table.Table, len(req.TableChanges))
	for i, c := range req.TableChanges {
		var ok bool
		if prev[i], ok = s.check(ctx, w, c); !ok {
			return
		}
	}
	for i, c := range req.TableChanges {
		if _, _, err := s.backend.CommitTable(ctx, c.Identifier.ident(), c.Requirements, c.Updates); err != nil {
			if uerr := s.undo(ctx, req.TableChanges[:i], prev[:i]); uerr != nil {
				s.fail(w, errors.Join(err, uerr))
				return
			}
			s.fail(w, fmt.Errorf("commit transaction: table %s (nothing committed): %w",
				strings.Join(c.Identifier.ident(), "."), err))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// undo reverts the changes applied (latest first): a table they created is dropped, one that
// existed gets its main branch back at the snapshot it had.
func (s *Server) undo(ctx context.Context, applied []tableChange, prev []*table.Table) error {
	var errs []error
	for i := len(applied) - 1; i >= 0; i-- {
		ident := applied[i].Identifier.ident()
		if prev[i] == nil {
			if err := s.backend.DropTable(ctx, ident); err != nil {
				errs = append(errs, fmt.Errorf("undo: drop table %s: %w", strings.Join(ident, "."), err))
			}
			continue
		}
		var upd table.Update = table.NewRemoveSnapshotRefUpdate(table.MainBranch)
		if snap := prev[i].CurrentSnapshot(); snap != nil {
			upd = table.NewSetSnapshotRefUpdate(table.MainBranch, snap.SnapshotID, table.BranchRef, -1, -1, -1)
		}
		if _, _, err := s.backend.CommitTable(ctx, ident, nil, []table.Update{upd}); err != nil {
			errs = append(errs, fmt.Errorf("undo: roll table %s back: %w", strings.Join(ident, "."), err))
		}
	}
	return errors.Join(errs...)
}
