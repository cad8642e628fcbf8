package main

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/model/xgb"
)

// sharedLib is a shared library the binary needs: linked ones (the dynamic loader refuses
// to start the binary without them) and the ones it opens at run time when a flag asks.
type sharedLib struct {
	Name    string `json:"name"`              // soname, or what is looked for
	Linked  bool   `json:"linked"`            // in the executable's DT_NEEDED
	Path    string `json:"path,omitempty"`    // the file loaded (linked) or found (run time)
	Version string `json:"version,omitempty"` // where the library reports one
	Use     string `json:"use,omitempty"`     // what needs it
	Status  string `json:"status,omitempty"`  // without a path: not linked, not found, ...
	Note    string `json:"note,omitempty"`    // why it is missing, or how to get it
}

// libUses says what each linked library is there for, by soname prefix.
var libUses = []struct{ prefix, use string }{
	{"libxgboost.so", "train xgboost (Debian: libxgboost0, with libgomp and libdmlc; scripts/install-deps.sh build)"},
	{"libc.so", "the C library (cgo)"},
	{"libm.so", "the C math library (cgo)"},
	{"libdl.so", "dlopen (cgo)"},
	{"libpthread.so", "threads (cgo)"},
	{"libstdc++.so", "the C++ runtime"},
}

// sharedLibs lists the executable's linked libraries with the files this process loaded, then
// the ones it opens at run time: NVML for GPU discovery and, in a -tags xla build, the CUDA
// PJRT plugin (found by the same search --device gpu uses, or why none is).
func sharedLibs() ([]sharedLib, error) {
	var libs []sharedLib
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := elf.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", exe, err)
	}
	needed, err := f.ImportedLibraries()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", exe, err)
	}
	loaded := loadedFiles()
	for _, n := range needed {
		l := sharedLib{Name: n, Linked: true, Path: loadedPath(n, loaded)}
		for _, u := range libUses {
			if strings.HasPrefix(n, u.prefix) {
				l.Use = u.use
				break
			}
		}
		if strings.HasPrefix(n, "libxgboost.so") {
			l.Version = xgb.LibraryVersion()
		}
		libs = append(libs, l)
	}
	if !xgb.Available {
		libs = append(libs, sharedLib{Name: "libxgboost.so", Status: "not linked", Use: "train xgboost",
			Note: "this build has none (-tags noxgboost or CGO_ENABLED=0): train xgboost and demo fail; predict, serve and " +
				"eval score XGBoost models without it"})
	}
	libs = append(libs, sharedLib{Name: "libnvidia-ml.so.1", Status: "looked up when used", Use: "GPU discovery for " +
		"--device gpu|auto (the NVIDIA driver's NVML; optional)"})
	plugin := sharedLib{Name: "CUDA PJRT plugin", Use: "--device gpu|auto (XLA)"}
	if !bert.XLABuilt {
		plugin.Status, plugin.Note = "not in this build", "go build -tags xla ./cmd/medseq to train and score on a GPU"
	} else if p, err := bert.FindPJRTPlugin(""); err != nil {
		plugin.Status, plugin.Note = "not found", err.Error()
	} else {
		plugin.Path = p
	}
	return append(libs, plugin), nil
}

// loadedFiles lists the files mapped into this process (/proc/self/maps; none elsewhere).
func loadedFiles() []string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasPrefix(fields[5], "/") || seen[fields[5]] {
			continue
		}
		seen[fields[5]] = true
		out = append(out, fields[5])
	}
	return out
}

// loadedPath is the mapped file of the library with soname name: maps show the file the
// loader opened after resolving links (libxgboost.so.0 may be libxgboost.so.1.6.0), so match
// on the name up to ".so".
func loadedPath(name string, files []string) string {
	stem, _, ok := strings.Cut(name, ".so")
	if !ok {
		return ""
	}
	stem += ".so"
	for _, p := range files {
		if b := filepath.Base(p); b == name {
			return p
		}
	}
	for _, p := range files {
		if b := filepath.Base(p); b == stem || strings.HasPrefix(b, stem+".") {
			return p
		}
	}
	return ""
}

// printSharedLibs writes the libraries as `medseq version` shows them: name, the file (or
// its state), what needs it and, for a missing one, why.
func printSharedLibs(w io.Writer, libs []sharedLib) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(l sharedLib) {
		state := l.Path
		switch {
		case state != "" && l.Version != "":
			state += " (" + l.Version + ")"
		case state == "" && l.Linked:
			state = "(not loaded)"
		case state == "" && l.Status != "":
			state = l.Status
		}
		use := l.Use
		if l.Note != "" {
			use += ": " + l.Note
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", l.Name, state, use)
	}
	fmt.Fprintln(tw, "shared libraries, linked (the binary does not start without them):")
	for _, l := range libs {
		if l.Linked || strings.HasPrefix(l.Name, "libxgboost") {
			line(l)
		}
	}
	fmt.Fprintln(tw, "opened at run time, when a flag asks for them:")
	for _, l := range libs {
		if !l.Linked && !strings.HasPrefix(l.Name, "libxgboost") {
			line(l)
		}
	}
	return tw.Flush()
}
