package data

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/medseq/medseq/internal/buildinfo"
)

// ManifestFile is the name of the manifest inside every artifact folder.
const ManifestFile = "manifest.json"

// ErrInputMismatch is returned when an artifact was built from different inputs than the ones
// a stage is given.
var ErrInputMismatch = errors.New("input does not match the run that built this artifact")

// Manifest records how an artifact was made.
type Manifest struct {
	RunID       string         `json:"run_id"`
	Stage       string         `json:"stage"`
	Created     time.Time      `json:"created"`
	CodeVersion string         `json:"code_version"`
	Params      map[string]any `json:"params,omitempty"`
	Inputs      []InputRef     `json:"inputs,omitempty"`
	// Fingerprint is the SHA-256 of the artifact's own files (all but manifest.json).
	Fingerprint string `json:"fingerprint"`
}

// InputRef names an input of a run: its path as given, the run that made it (empty for
// foreign data) and its content fingerprint when the run read it.
type InputRef struct {
	Name        string `json:"name"`
	Path        string `json:"path"`
	RunID       string `json:"run_id,omitempty"`
	Fingerprint string `json:"fingerprint"`
}

// NewManifest starts a manifest for a stage with a fresh run id.
func NewManifest(stage string, params map[string]any) *Manifest {
	now := time.Now().UTC()
	var b [4]byte
	rand.Read(b[:])
	return &Manifest{
		RunID:       now.Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]),
		Stage:       stage,
		Created:     now,
		CodeVersion: buildinfo.Get().String(),
		Params:      params,
	}
}

// AddInput fingerprints the artifact or dataset at path and records it as input name.
func (m *Manifest) AddInput(name, path string) (InputRef, error) {
	fp, err := Fingerprint(path)
	if err != nil {
		return InputRef{}, err
	}
	return m.AddInputFingerprint(name, path, fp), nil
}

// AddInputFingerprint records input name at path with a fingerprint the caller already
// computed (Fingerprint reads every byte: a stage that checks and records the same input
// computes it once).
func (m *Manifest) AddInputFingerprint(name, path, fp string) InputRef {
	ref := InputRef{Name: name, Path: path, Fingerprint: fp}
	if im, err := ReadManifest(path); err == nil {
		ref.RunID = im.RunID
	}
	m.Inputs = append(m.Inputs, ref)
	return ref
}

// Input returns the input recorded under name.
func (m *Manifest) Input(name string) (InputRef, bool) {
	for _, in := range m.Inputs {
		if in.Name == name {
			return in, true
		}
	}
	return InputRef{}, false
}

// WriteTo fingerprints the artifact folder root and writes root/manifest.json atomically.
func (m *Manifest) WriteTo(root string) error {
	fp, err := Fingerprint(root)
	if err != nil {
		return err
	}
	m.Fingerprint = fp
	buf, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(root, ManifestFile), append(buf, '\n'))
}

// ReadManifest reads root/manifest.json.
func ReadManifest(root string) (*Manifest, error) {
	p := filepath.Join(root, ManifestFile)
	buf, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(buf, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return &m, nil
}

// CheckInput verifies that the artifact at path is the one m recorded as input name. It
// returns an error wrapping ErrInputMismatch that says which runs and paths disagree.
func (m *Manifest) CheckInput(name, path string) error {
	fp, err := Fingerprint(path)
	if err != nil {
		return err
	}
	return m.CheckInputFingerprint(name, path, fp)
}

// CheckInputFingerprint is CheckInput with the fingerprint of path already computed.
func (m *Manifest) CheckInputFingerprint(name, path, fp string) error {
	ref, ok := m.Input(name)
	if !ok {
		return fmt.Errorf("%w: run %s (%s) records no input %q", ErrInputMismatch, m.RunID, m.Stage, name)
	}
	if fp == ref.Fingerprint {
		return nil
	}
	got := "no manifest"
	if im, err := ReadManifest(path); err == nil {
		got = "run " + im.RunID
	}
	want := "foreign data"
	if ref.RunID != "" {
		want = "run " + ref.RunID
	}
	return fmt.Errorf("%w: the %s was built (run %s) from %s %s at %s (fingerprint %.12s), "+
		"but %s (%s) has fingerprint %.12s; rebuild the %s from this %s or pass the matching %s",
		ErrInputMismatch, m.Stage, m.RunID, name, want, ref.Path, ref.Fingerprint, path, got, fp, m.Stage, name, name)
}

// Fingerprint is the SHA-256 over the relative paths, sizes and contents of the regular
// files under root (or of root itself when it is a file), skipping manifest.json and hidden
// temp files, so it does not depend on where the artifact lives. Symbolic links and other
// entries that are not regular files are skipped.
//
// A root of the form SCHEME:... names a dataset in a Source: its fingerprint is the one the
// source gives (for Iceberg, the tables' ids and the snapshots read).
func Fingerprint(root string) (string, error) {
	if IsSourceRef(root) {
		src, err := openSource(context.Background(), root)
		if err != nil {
			return "", fmt.Errorf("fingerprint: %w", err)
		}
		if c, ok := src.(io.Closer); ok {
			defer c.Close()
		}
		return src.Fingerprint(), nil
	}
	st, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	if !st.IsDir() {
		h := sha256.New()
		if err := hashFingerprintFile(h, nil, root, filepath.Base(root), true); err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", root, err)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	fp, _, err := fingerprintFolder(root, false)
	return fp, err
}

// IrregularFileError is an entry of a folder that FingerprintFiles refuses: a symbolic link
// or anything else that is not a folder or a regular file.
type IrregularFileError struct {
	Rel  string      // slash-separated path below the folder
	Mode fs.FileMode // its type
}

func (e *IrregularFileError) Error() string {
	return fmt.Sprintf("%s is not a regular file (%s)", e.Rel, e.Mode.Type())
}

// FingerprintFiles is Fingerprint of a folder, strictly: it refuses (IrregularFileError) a
// symbolic link or any entry that is neither a folder nor a regular file, opens no file through
// a link, and also returns each file's own SHA-256 by slash-separated path.
func FingerprintFiles(root string) (string, map[string]string, error) {
	return fingerprintFolder(root, true)
}

// fingerprintFolder is the one walk behind Fingerprint and FingerprintFiles; strict refuses
// what Fingerprint skips and records each file's hash.
func fingerprintFolder(root string, strict bool) (string, map[string]string, error) {
	var rels []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		switch t := d.Type(); {
		case t.IsDir():
		case t.IsRegular():
			if rel != ManifestFile {
				rels = append(rels, rel)
			}
		case strict:
			return &IrregularFileError{Rel: rel, Mode: t}
		}
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("fingerprint %s: %w", root, err)
	}
	sort.Strings(rels)
	h := sha256.New()
	var files map[string]string
	var fh hash.Hash
	if strict {
		files, fh = make(map[string]string, len(rels)), sha256.New()
	}
	for _, rel := range rels {
		if err := hashFingerprintFile(h, fh, filepath.Join(root, filepath.FromSlash(rel)), rel, false); err != nil {
			return "", nil, fmt.Errorf("fingerprint %s: %w", root, err)
		}
		if strict {
			files[rel] = hex.EncodeToString(fh.Sum(nil))
			fh.Reset()
		}
	}
	return hex.EncodeToString(h.Sum(nil)), files, nil
}

// hashFingerprintFile adds a file's path, size (8 little-endian bytes) and content to folder,
// and its content to file when not nil. Unless follow, it opens no symbolic link; it refuses
// what is not a regular file.
func hashFingerprintFile(folder, file hash.Hash, p, rel string, follow bool) error {
	flags := os.O_RDONLY | syscall.O_NOFOLLOW
	if follow {
		flags = os.O_RDONLY
	}
	f, err := os.OpenFile(p, flags, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return &IrregularFileError{Rel: rel, Mode: fs.ModeSymlink}
		}
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return &IrregularFileError{Rel: rel, Mode: st.Mode()}
	}
	io.WriteString(folder, rel)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(st.Size()))
	folder.Write(n[:])
	w := io.Writer(folder)
	if file != nil {
		w = io.MultiWriter(folder, file)
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	return nil
}
