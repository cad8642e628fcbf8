package modelrepo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/medseq/medseq/data"
)

// ErrUnverified is wrapped by every error of Verify about the folder's content: a file that
// differs from what the manifest recorded, one added or missing, a symbolic link, a file that
// is not a regular file.
var ErrUnverified = errors.New("model folder fails verification")

// maxManifestBytes bounds the manifest Verify reads.
const maxManifestBytes = 16 << 20

// Verify checks a model version folder before anything of it is loaded, and returns its
// manifest. The folder itself may be a symbolic link; inside it:
//
//   - every file but manifest.json must match the manifest's fingerprint (the SHA-256 over
//     every file's path, size and content that Manifest.Write recorded, as data.Fingerprint
//     computes it): an edited, added or removed file is refused, named when the manifest lists
//     each file's hash (Manifest.Files);
//   - symbolic links are refused (one leaving the folder is named as such: a calibration.json
//     linked to /etc/shadow is never read), and so is anything that is not a regular file or
//     a folder; hidden names (a writer's temporaries) are outside the fingerprint and skipped;
//   - no error quotes a file's content: JSON errors give the byte offset, not the text there.
//
// The error wraps ErrUnverified for a folder whose content fails, ErrNotModel for a manifest
// that is not a servable model's, and fs.ErrNotExist when there is no manifest.json.
func Verify(dir string) (*Manifest, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	mp := filepath.Join(root, ManifestFile)
	st, err := os.Lstat(mp)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("verify %s: %w: %s", dir, ErrUnverified, describeIrregular(root, ManifestFile, st.Mode()))
	}
	buf, err := readNoFollow(mp, maxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	m, err := parseManifest(buf)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Fingerprint == "" {
		return nil, fmt.Errorf("verify %s: %w: the manifest records no fingerprint (written by an older medseq: "+
			"train the model again)", dir, ErrUnverified)
	}
	fp, files, err := hashFolder(root)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	if fp != m.Fingerprint {
		return nil, fmt.Errorf("verify %s: %w: %s", dir, ErrUnverified, describeMismatch(m.Files, files))
	}
	return m, nil
}

// describeMismatch names what differs between the files a manifest recorded and those there
// now (at most a few of each kind), or says the folder differs when the manifest lists none.
func describeMismatch(want, got map[string]string) string {
	if len(want) == 0 {
		return "its files differ from the fingerprint in its manifest (changed, added or removed since training)"
	}
	var changed, added, missing []string
	for f, h := range got {
		switch w, ok := want[f]; {
		case !ok:
			added = append(added, f)
		case w != h:
			changed = append(changed, f)
		}
	}
	for f := range want {
		if _, ok := got[f]; !ok {
			missing = append(missing, f)
		}
	}
	var parts []string
	for _, x := range []struct {
		what  string
		files []string
	}{{"changed since training", changed}, {"added", added}, {"missing", missing}} {
		if len(x.files) == 0 {
			continue
		}
		sort.Strings(x.files)
		list := x.files
		more := ""
		if len(list) > 5 {
			list, more = list[:5], fmt.Sprintf(" and %d more", len(x.files)-5)
		}
		parts = append(parts, strings.Join(list, ", ")+more+" "+x.what)
	}
	if len(parts) == 0 { // the per-file hashes agree but the fingerprint does not: sizes or names
		return "its files differ from the fingerprint in its manifest"
	}
	return strings.Join(parts, "; ")
}

// describeIrregular says why the entry rel of root is refused.
func describeIrregular(root, rel string, mode fs.FileMode) string {
	if mode&fs.ModeSymlink != 0 {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if t, err := filepath.EvalSymlinks(p); err != nil || !within(root, t) {
			return rel + " is a symbolic link leaving the version folder: refused"
		}
		return rel + " is a symbolic link: a version folder holds regular files only"
	}
	return fmt.Sprintf("%s is not a regular file (%s)", rel, mode.Type())
}

// within reports whether path p is root or inside it (both clean and absolute, or both
// relative to the same folder).
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// hashFolder is data.FingerprintFiles with its refusals said as a version folder's.
func hashFolder(root string) (string, map[string]string, error) {
	fp, files, err := data.FingerprintFiles(root)
	var irr *data.IrregularFileError
	if errors.As(err, &irr) {
		return "", nil, fmt.Errorf("%w: %s", ErrUnverified, describeIrregular(root, irr.Rel, irr.Mode))
	}
	return fp, files, err
}

// readNoFollow reads a regular file that is not a symbolic link, up to max bytes.
func readNoFollow(p string, max int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d MiB", filepath.Base(p), max>>20)
	}
	return b, nil
}

// parseManifest decodes and checks a manifest.json.
func parseManifest(buf []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(buf, &m); err != nil {
		return nil, jsonError(err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// jsonError describes a JSON decoding error without quoting the input: a syntax error says
// where, not which character (a file that is not what its name says, such as a secret linked
// into a model folder, must never reach a log). Errors of medseq's own field decoders, which
// quote at most the field's value, pass as they are.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se) && err == error(se):
		return fmt.Errorf("not valid JSON (at byte %d)", se.Offset)
	case errors.As(err, &te) && err == error(te):
		if te.Field != "" {
			return fmt.Errorf("field %s: a JSON %s where %s was expected", te.Field, jsonKind(te.Value), te.Type)
		}
		return fmt.Errorf("a JSON %s where %s was expected", jsonKind(te.Value), te.Type)
	}
	return err
}

// jsonKind is the kind of JSON value an UnmarshalTypeError names ("number 1e999" -> "number").
func jsonKind(v string) string {
	k, _, _ := strings.Cut(v, " ")
	if slices.Contains([]string{"string", "number", "object", "array", "bool"}, k) {
		return k
	}
	return "value"
}
