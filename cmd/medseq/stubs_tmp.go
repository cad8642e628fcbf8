package main

import (
	"context"
	"errors"
)

func runDataCohort(ctx context.Context, e *env, args []string) error {
	return errors.New("not built yet")
}
func runDataInfo(ctx context.Context, e *env, args []string) error {
	return errors.New("not built yet")
}
func runDemo(ctx context.Context, e *env, args []string) error { return errors.New("not built yet") }
