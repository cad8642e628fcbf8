//go:build !iceberg

package main

import (
	"context"
	"errors"
)

func runDataExport(context.Context, *env, []string) error {
	return errors.New("this medseq was built without Iceberg support: build it with -tags iceberg (make build does)")
}
