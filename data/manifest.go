package data

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
	return fmt.Errorf("%w: the %s was built (run %s) from %s %s at %s (fingerprint %.12s), but %s (%s) has fingerprint %.12s; rebuild the %s from this %s or pass the matching %s",
		ErrInputMismatch, m.Stage, m.RunID, name, want, ref.Path, ref.Fingerprint, path, got, fp, m.Stage, name, name)
}

// Fingerprint is the SHA-256 over the relative paths, sizes and contents of the regular
// files under root (or of root itself when it is a file), skipping manifest.json and hidden
// temp files, so it does not depend on where the artifact lives.
func Fingerprint(root string) (string, error) {
	st, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	h := sha256.New()
	hashFile := func(rel, p string, size int64) error {
		io.WriteString(h, rel)
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(size))
		h.Write(n[:])
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("fingerprint %s: %w", p, err)
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("fingerprint %s: %w", p, err)
		}
		return nil
	}
	if !st.IsDir() {
		if err := hashFile(filepath.Base(root), root, st.Size()); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != root {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			if rel != ManifestFile {
				files = append(files, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", root, err)
	}
	sort.Strings(files)
	for _, rel := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", p, err)
		}
		if err := hashFile(rel, p, fi.Size()); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
