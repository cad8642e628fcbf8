package modelrepo

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ParseVersion reads the name of a version folder (models/<name>/<version>/): a positive
// integer in decimal, without sign, spaces or leading zeros ("1", "12"). Anything else ("old",
// "0", "007", "1.2", "-1", "v2") is not a version: "latest" is the highest number, so a folder
// named otherwise must never be served as the latest.
func ParseVersion(name string) (int64, bool) {
	if name == "" || name[0] < '1' || name[0] > '9' {
		return 0, false
	}
	for i := 1; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(name, 10, 64)
	return v, err == nil
}

// VersionDir is one version folder of a model.
type VersionDir struct {
	Number int64
	Name   string // the folder's name: the number in decimal
	Path   string
}

// Versions lists the version folders of a model folder (models/<name>/), lowest first: its
// sub-folders (or links to folders) whose names ParseVersion reads. Hidden entries (the
// temporary folders of a writer) and files are skipped silently; ignored lists the other
// folders, whose names are not versions, for the caller to warn about. Whether a version is
// complete (has its manifest) is the caller's business.
func Versions(modelDir string) (versions []VersionDir, ignored []string, err error) {
	ents, err := os.ReadDir(modelDir)
	if err != nil {
		return nil, nil, fmt.Errorf("model folder: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(modelDir, name)
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			st, err := os.Stat(p)
			isDir = err == nil && st.IsDir()
		}
		if !isDir {
			continue
		}
		v, ok := ParseVersion(name)
		if !ok {
			ignored = append(ignored, name)
			continue
		}
		versions = append(versions, VersionDir{Number: v, Name: name, Path: p})
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i].Number < versions[j].Number })
	return versions, ignored, nil
}
