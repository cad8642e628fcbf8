package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/medseq/medseq/internal/buildinfo"
)

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "[--json]")
	asJSON := fs.Bool("json", false, "print the build metadata as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	bi := buildinfo.Get()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(bi)
	}
	fmt.Fprintf(e.stdout, "medseq %s\nmodule:  %s\ncommit:  %s%s\nbuilt:   %s\ngo:      %s %s\n",
		bi.Version, bi.Module, bi.Commit, map[bool]string{true: " (modified)", false: ""}[bi.Modified],
		bi.BuildTime, bi.GoVersion, bi.Platform)
	return nil
}
