package icebergmeds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	"github.com/apache/iceberg-go/table"

	"github.com/medseq/medseq/data"
)

// commitOrder commits the metadata tables before events, so that a reader never sees events
// whose splits are missing.
var commitOrder = []string{data.TableSubjectSplits, data.TableCodes, data.TableEvents}

// commit commits the staged appends: in one multi-table commit when the catalog supports it
// (REST), else one table after another, rolling back those already committed when one fails.
func (et *exportTables) commit(ctx context.Context, log *slog.Logger) error {
	if _, ok := et.cat.(catalog.TransactionalCatalog); ok {
		err := et.commitTogether(ctx)
		if !errors.Is(err, rest.ErrEndpointNotSupported) {
			return err
		}
		log.Info("the catalog does not offer multi-table commits: committing table by table")
	}
	var done []string
	for _, name := range commitOrder {
		if _, err := et.tx[name].Commit(ctx); err != nil {
			err = fmt.Errorf("commit table %s: %w", name, err)
			if rerr := et.rollback(ctx, done, log); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		}
		done = append(done, name)
	}
	return nil
}

// commitTogether commits the staged appends in one multi-table commit.
func (et *exportTables) commitTogether(ctx context.Context) error {
	mt, err := catalog.NewMultiTableTransaction(et.cat)
	if err != nil {
		return err
	}
	for _, name := range commitOrder {
		if err := mt.AddTransaction(et.tx[name]); err != nil {
			return fmt.Errorf("commit table %s: %w", name, err)
		}
	}
	if err := mt.Commit(ctx); err != nil {
		return fmt.Errorf("commit tables %s: %w", strings.Join(commitOrder, ", "), err)
	}
	return nil
}

// rollback sets each table of names that existed before the export back to its snapshot
// then (tables the export created are dropped by undoCreated).
func (et *exportTables) rollback(ctx context.Context, names []string, log *slog.Logger) error {
	var errs []error
	for _, name := range names {
		prev := et.prev[name]
		if prev == nil {
			continue
		}
		t, err := et.cat.LoadTable(ctx, append(append(table.Identifier{}, et.ref.Namespace...), name))
		if err == nil {
			tx := t.NewTransaction()
			if err = tx.RollbackToSnapshot(prev.SnapshotID); err == nil {
				_, err = tx.Commit(ctx)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("roll table %s back to snapshot %d: %w", name, prev.SnapshotID, err))
			continue
		}
		log.Warn("rolled back", "table", name, "snapshot", prev.SnapshotID)
	}
	return errors.Join(errs...)
}

// undoCreated drops the tables (and the namespace) a failed export created.
func (et *exportTables) undoCreated(ctx context.Context, log *slog.Logger) {
	for _, name := range et.created {
		ident := append(append(table.Identifier{}, et.ref.Namespace...), name)
		if err := et.cat.DropTable(ctx, ident); err != nil {
			log.Warn("could not drop a table the failed export created", "table", strings.Join(ident, "."),
				"err", err)
		}
	}
	if et.nsNew {
		if err := et.cat.DropNamespace(ctx, et.ref.Namespace); err != nil {
			log.Warn("could not drop the namespace the failed export created",
				"namespace", strings.Join(et.ref.Namespace, "."), "err", err)
		}
	}
}
