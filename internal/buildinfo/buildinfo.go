package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set with -ldflags "-X github.com/medseq/medseq/internal/buildinfo.Version=..." and so on.
var (
	Version   = ""
	Commit    = ""
	BuildTime = ""
)

// Info is the build metadata of the running binary.
type Info struct {
	Module    string `json:"module"`
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"`
	BuildTime string `json:"build_time"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get returns the build metadata, falling back to the VCS stamps Go embeds.
func Get() Info {
	in := Info{Version: Version, Commit: Commit, BuildTime: BuildTime, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, Module: "github.com/medseq/medseq"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path != "" {
			in.Module = bi.Main.Path
		}
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Commit == "" {
					in.Commit = s.Value
				}
			case "vcs.time":
				if in.BuildTime == "" {
					in.BuildTime = s.Value
				}
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	if in.BuildTime == "" {
		in.BuildTime = "unknown"
	}
	return in
}

// String is the one-line code version recorded in run manifests.
func (i Info) String() string {
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if i.Modified {
		c += "+dirty"
	}
	return fmt.Sprintf("medseq %s (%s, built %s, %s)", i.Version, c, i.BuildTime, i.GoVersion)
}
