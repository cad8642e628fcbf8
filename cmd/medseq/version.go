package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/medseq/medseq/internal/buildinfo"
	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/model/xgb"
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
			Build     buildKind   `json:"build"`
			Libraries []sharedLib `json:"shared_libraries"`
		}{bi, thisBuild(), libs})
	}
	fmt.Fprintf(e.stdout, "medseq %s\nmodule:  %s\ncommit:  %s%s\nbuilt:   %s\ngo:      %s %s\nbuild:   %s\n",
		bi.Version, bi.Module, bi.Commit, map[bool]string{true: " (modified)", false: ""}[bi.Modified],
		bi.BuildTime, bi.GoVersion, bi.Platform, thisBuild().Summary)
	if libErr != nil {
		return nil
	}
	return printSharedLibs(e.stdout, libs)
}

// buildKind is which build of medseq this is: the cgo build (make build: libxgboost linked,
// trains everything) or the pure-Go serving build (CGO_ENABLED=0, static: serves, predicts and
// evaluates both model kinds; trains only the BERT), with the build tags.
type buildKind struct {
	Kind    string   `json:"kind"` // "cgo" or "pure-go"
	Static  bool     `json:"static"`
	XGBoost bool     `json:"train_xgboost"` // libxgboost linked
	XLA     bool     `json:"xla"`           // -tags xla: the GPU backend
	Tags    []string `json:"tags,omitempty"`
	Summary string   `json:"summary"`
}

// thisBuild reads the build from the settings Go records in the binary.
func thisBuild() buildKind {
	b := buildKind{Kind: "cgo", XGBoost: xgb.Available, XLA: bert.XLABuilt}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "CGO_ENABLED":
				if s.Value != "1" {
					b.Kind, b.Static = "pure-go", true
				}
			case "-tags":
				b.Tags = strings.Split(s.Value, ",")
			}
		}
	}
	switch {
	case b.Kind == "pure-go":
		b.Summary = "pure Go, static (CGO_ENABLED=0): the serving build; serve, predict and eval score both model " +
			"kinds; train xgboost needs the cgo build"
	case b.XGBoost:
		b.Summary = "cgo, libxgboost linked: every command"
	default:
		b.Summary = "cgo without libxgboost (-tags noxgboost): train xgboost needs a build with it"
	}
	if b.XLA {
		b.Summary += "; XLA GPU backend (-tags xla)"
	}
	return b
}
