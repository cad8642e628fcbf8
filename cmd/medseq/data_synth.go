package main

import (
	"context"
	"errors"
)

// runDataSynth is being written; see the data package.
func runDataSynth(ctx context.Context, e *env, args []string) error {
	return errors.New("not built yet")
}
