package main

import (
	"context"
	"errors"
)

// runDataImport is being written; see the data package.
func runDataImport(ctx context.Context, e *env, args []string) error {
	return errors.New("not built yet")
}
