package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/medseq/medseq/internal/buildinfo"
)

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "[--json]")
	asJSON := fs.Bool("json", false, "print the build metadata and shared libraries as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	bi := buildinfo.Get()
	libs, libErr := sharedLibs()
	if libErr != nil {
		e.log.Warn("cannot list the shared libraries", "err", libErr)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			buildinfo.Info
			Libraries []sharedLib `json:"shared_libraries"`
		}{bi, libs})
	}
	fmt.Fprintf(e.stdout, "medseq %s\nmodule:  %s\ncommit:  %s%s\nbuilt:   %s\ngo:      %s %s\n",
		bi.Version, bi.Module, bi.Commit, map[bool]string{true: " (modified)", false: ""}[bi.Modified],
		bi.BuildTime, bi.GoVersion, bi.Platform)
	if libErr != nil {
		return nil
	}
	return printSharedLibs(e.stdout, libs)
}
