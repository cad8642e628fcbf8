package modelrepo

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/medseq/medseq/data"
)

const secret = "root:$6$SECRET-HASH:19000:0:99999:7:::\n"

// verifiedFolder writes a small model version folder with its manifest and returns it.
func verifiedFolder(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "t2d", "1")
	c := &Calibration{Method: CalibrationIsotonic,
		Isotonic: &Isotonic{X: []float64{0.1, 0.5, 0.9}, Y: []float64{0.05, 0.3, 0.8}}}
	if err := c.Write(dir); err != nil {
		t.Fatal(err)
	}
	for rel, content := range map[string]string{"xgboost/model.json": `{"learner":{}}`, "vocab.txt": "[PAD]\n[UNK]\n",
		"predictions_tuning.parquet": "PAR1"} {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := testManifest().Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// noContent fails when an error quotes the secret file (any part of it).
func noContent(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{"root", "SECRET", "'r'", "$6$"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error quotes the file's content (%q): %v", s, err)
		}
	}
}

// TestVerify (issue 14, D13): a folder as training wrote it verifies (and its fingerprint is
// data.Fingerprint's, so the manifests written before keep verifying); an edited, added or
// removed file is refused and named; symbolic links (leaving the folder or not) and special
// files are refused without reading them; no error quotes a file's content.
func TestVerify(t *testing.T) {
	t.Run("as written", func(t *testing.T) {
		dir := verifiedFolder(t)
		m, err := Verify(dir)
		if err != nil {
			t.Fatal(err)
		}
		fp, err := data.Fingerprint(dir)
		if err != nil || fp != m.Fingerprint {
			t.Errorf("fingerprint %s, data.Fingerprint %s (%v)", m.Fingerprint, fp, err)
		}
		if len(m.Files) != 4 || m.Files["xgboost/model.json"] == "" {
			t.Errorf("files %v", m.Files)
		}
		// A writer's hidden temporary is outside the fingerprint.
		os.WriteFile(filepath.Join(dir, ".calibration.json.tmp-1"), []byte("x"), 0o644)
		if _, err := Verify(dir); err != nil {
			t.Errorf("hidden temporary: %v", err)
		}
		// The version folder itself may be a link (a symlink-swap deployment).
		link := filepath.Join(t.TempDir(), "2")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(link); err != nil {
			t.Errorf("linked version folder: %v", err)
		}
	})
	t.Run("calibration edited to answer 1.0", func(t *testing.T) {
		dir := verifiedFolder(t)
		c := &Calibration{Method: CalibrationIsotonic, Isotonic: &Isotonic{X: []float64{0.1, 0.9}, Y: []float64{1, 1}}}
		if err := c.Write(dir); err != nil {
			t.Fatal(err)
		}
		_, err := Verify(dir)
		if !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "calibration.json changed since training") {
			t.Errorf("edited calibration: %v", err)
		}
	})
	t.Run("file added, file removed", func(t *testing.T) {
		dir := verifiedFolder(t)
		os.WriteFile(filepath.Join(dir, "xgboost", "extra.bin"), []byte("x"), 0o644)
		os.Remove(filepath.Join(dir, "vocab.txt"))
		_, err := Verify(dir)
		if !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "xgboost/extra.bin added") ||
			!strings.Contains(err.Error(), "vocab.txt missing") {
			t.Errorf("added and removed: %v", err)
		}
	})
	t.Run("older manifest without per-file hashes", func(t *testing.T) {
		dir := verifiedFolder(t)
		m, _ := ReadManifest(dir)
		fp := m.Fingerprint
		m.Files = nil // as an older medseq wrote it: the fingerprint only
		writeRaw(t, dir, m)
		if got, err := Verify(dir); err != nil || got.Fingerprint != fp {
			t.Fatalf("older manifest: %v", err)
		}
		os.WriteFile(filepath.Join(dir, "vocab.txt"), []byte("[PAD]\n"), 0o644)
		if _, err := Verify(dir); !errors.Is(err, ErrUnverified) ||
			!strings.Contains(err.Error(), "differ from the fingerprint") {
			t.Errorf("older manifest, edited file: %v", err)
		}
	})
	secretFile := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, target, want string
	}{
		{"calibration.json linked to a secret", CalibrationFile, secretFile,
			"calibration.json is a symbolic link leaving the version folder"},
		{"manifest.json linked to a secret", ManifestFile, secretFile,
			"manifest.json is a symbolic link leaving the version folder"},
		{"a file linked through ..", "vocab.txt", "../../../shadow",
			"vocab.txt is a symbolic link leaving the version folder"},
		{"a link inside the folder", CalibrationFile, "vocab.txt",
			"calibration.json is a symbolic link: a version folder holds regular files only"},
		{"a folder linked outside", "bert", "/etc", "bert is a symbolic link leaving the version folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := verifiedFolder(t)
			p := filepath.Join(dir, tc.file)
			os.Remove(p)
			target := tc.target
			if tc.file == "vocab.txt" && strings.HasPrefix(target, "..") {
				// dir is TMP/t2d/1 and the secret is in another temporary folder: link to it
				// through a relative path that leaves the folder.
				rel, err := filepath.Rel(dir, secretFile)
				if err != nil {
					t.Fatal(err)
				}
				target = rel
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			_, err := Verify(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			noContent(t, err)
		})
	}
	t.Run("a named pipe", func(t *testing.T) {
		dir := verifiedFolder(t)
		p := filepath.Join(dir, "xgboost", "model.bin")
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		if _, err := Verify(dir); !errors.Is(err, ErrUnverified) ||
			!strings.Contains(err.Error(), "xgboost/model.bin is not a regular file") {
			t.Errorf("named pipe: %v", err)
		}
	})
	t.Run("no manifest", func(t *testing.T) {
		if _, err := Verify(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("no manifest: %v", err)
		}
	})
	t.Run("no fingerprint", func(t *testing.T) {
		dir := verifiedFolder(t)
		m, _ := ReadManifest(dir)
		m.Fingerprint, m.Files = "", nil
		writeRaw(t, dir, m)
		if _, err := Verify(dir); !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "no fingerprint") {
			t.Errorf("no fingerprint: %v", err)
		}
	})
}

// writeRaw writes m as dir's manifest.json as it is (no fingerprinting).
func writeRaw(t *testing.T, dir string, m *Manifest) {
	t.Helper()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestJSONErrorsQuoteNothing: a calibration.json or manifest.json that is not JSON (a secret's
// text) is refused with the byte offset, never a character of it.
func TestJSONErrorsQuoteNothing(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{CalibrationFile, ManifestFile} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := ReadCalibration(dir)
	if err == nil || !strings.Contains(err.Error(), "not valid JSON (at byte 1)") {
		t.Errorf("calibration: %v", err)
	}
	noContent(t, err)
	_, err = ReadManifest(dir)
	if err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("manifest: %v", err)
	}
	noContent(t, err)
	_, err = Verify(dir)
	if err == nil {
		t.Fatal("verified a secret as a manifest")
	}
	noContent(t, err)
	os.WriteFile(filepath.Join(dir, CalibrationFile), []byte(`{"method":1e999}`), 0o600)
	_, err = ReadCalibration(dir)
	if err == nil || strings.Contains(err.Error(), "1e999") {
		t.Errorf("calibration with a wrong type: %v", err)
	}
}

func TestParseVersion(t *testing.T) {
	for name, want := range map[string]int64{"1": 1, "12": 12, "9223372036854775807": 1<<63 - 1} {
		if v, ok := ParseVersion(name); !ok || v != want {
			t.Errorf("ParseVersion(%q) = %d, %v", name, v, ok)
		}
	}
	for _, name := range []string{"", "0", "007", "-1", "+1", "1.2", "old", "v2", " 1", "1 ", "9223372036854775808",
		"１"} {
		if v, ok := ParseVersion(name); ok {
			t.Errorf("ParseVersion(%q) = %d, want not a version", name, v)
		}
	}
}

// TestVersions (issue 14, D3): only positive-integer folders are versions, in numeric order;
// other folders are listed as ignored, hidden ones and files are skipped silently; a link to
// a folder counts.
func TestVersions(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"2", "10", "1", "old", "0", "007", ".3.tmp-x", "latest"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "README"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "11"), nil, 0o644) // a file, not a folder
	if err := os.Symlink(filepath.Join(dir, "10"), filepath.Join(dir, "12")); err != nil {
		t.Fatal(err)
	}
	vs, ignored, err := Versions(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
		if v.Path != filepath.Join(dir, v.Name) {
			t.Errorf("path %s", v.Path)
		}
	}
	if !slices.Equal(names, []string{"1", "2", "10", "12"}) {
		t.Errorf("versions %v", names)
	}
	if !slices.Equal(ignored, []string{"0", "007", "latest", "old"}) {
		t.Errorf("ignored %v", ignored)
	}
	if _, _, err := Versions(filepath.Join(dir, "nope")); err == nil {
		t.Error("a missing model folder listed")
	}
}
