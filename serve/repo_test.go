package serve

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medseq/medseq/modelrepo"
)

// rewriteManifest edits a copied version's manifest and writes it again as training does
// (fingerprinting the folder), for a test that changes a folder on purpose.
func rewriteManifest(t testing.TB, dir string, edit func(*modelrepo.Manifest)) {
	t.Helper()
	m, err := modelrepo.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	if err := m.Write(dir); err != nil {
		t.Fatal(err)
	}
}

func scanned(t *testing.T, dir string, policy Policy) (*Repository, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	r := NewRepository(dir, policy, slog.New(slog.NewTextHandler(logs, nil)))
	if err := r.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, logs
}

// TestLatestIsNumeric (issue 14, D3): "latest" is the highest positive-integer folder; a
// folder named old, 0 or 007 (a complete, loadable model folder) is never a version, and each
// is warned about once however often the repository is scanned; a pinned policy names a
// version number.
func TestLatestIsNumeric(t *testing.T) {
	f := getFixture(t)
	repo := t.TempDir()
	for _, v := range []string{"1", "2", "old", "0", "007"} {
		copyDir(t, f.modelDir, filepath.Join(repo, fixtureModel, v))
	}
	r, logs := scanned(t, repo, Policy{})
	m := r.Models()[fixtureModel]
	if m == nil || m.Serving == nil || m.Serving.Version != "2" {
		t.Fatalf("serving %+v, want version 2", m)
	}
	if got := m.SortedVersions(); strings.Join(got, ",") != "1,2" {
		t.Errorf("versions %v, want 1,2", got)
	}
	for i := 0; i < 3; i++ {
		if err := r.Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, ig := range []string{"old", "0", "007"} {
		if n := strings.Count(logs.String(), "folder="+ig+"\n"); n != 1 {
			t.Errorf("folder %s warned about %d times, want once:\n%s", ig, n, logs)
		}
	}
	if _, err := ParsePolicy(fixtureModel + "=old"); err == nil {
		t.Error("a policy pinning version old was accepted")
	}
}

// TestFailedVersionRetried (issue 14, D4): a version that failed to load because it was
// half-copied (manifest.json first) is retried once the copy completes, although
// manifest.json keeps its size and time (cp -a); each retry is logged; a folder that does not
// change is not retried.
func TestFailedVersionRetried(t *testing.T) {
	f := getFixture(t)
	repo := t.TempDir()
	dir := filepath.Join(repo, fixtureModel, "1")
	copyDir(t, f.modelDir, dir)
	model := modelrepo.XGBoostPath(dir, modelrepo.XGBoostJSON)
	saved, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(model) // the copy has not got there yet
	r, logs := scanned(t, repo, Policy{})
	if r.Ready() {
		t.Fatal("a half-copied version loaded")
	}
	if !strings.Contains(logs.String(), "model version not loaded") {
		t.Fatalf("the failure is not logged:\n%s", logs)
	}
	r.Scan(context.Background())
	if strings.Contains(logs.String(), "retrying") {
		t.Fatalf("retried a folder that did not change:\n%s", logs)
	}
	st, _ := os.Stat(filepath.Join(dir, modelrepo.ManifestFile))
	if err := os.WriteFile(model, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(filepath.Join(dir, modelrepo.ManifestFile)); st2.Size() != st.Size() ||
		!st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("the manifest changed")
	}
	if err := r.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !r.Ready() {
		t.Fatalf("the completed version was not retried:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("the retry is not logged:\n%s", logs)
	}
}

// TestVersionVerifiedAtLoad (issue 14, D13): a calibration.json edited after training (to
// answer 1.0 for everyone) or linked to a secret outside the folder is refused at load, named
// in the log, and no byte of the secret reaches the log.
func TestVersionVerifiedAtLoad(t *testing.T) {
	f := getFixture(t)
	secretFile := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secretFile, []byte("root:$6$SECRET:19000:0:99999:7:::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tamper func(dir string)
		want   string
	}{
		{"calibration edited", func(dir string) {
			c := &modelrepo.Calibration{Method: modelrepo.CalibrationIsotonic,
				Isotonic: &modelrepo.Isotonic{X: []float64{0, 1}, Y: []float64{1, 1}}}
			if err := c.Write(dir); err != nil {
				t.Fatal(err)
			}
		}, "calibration.json changed since training"},
		{"calibration linked to a secret", func(dir string) {
			os.Remove(modelrepo.CalibrationPath(dir))
			if err := os.Symlink(secretFile, modelrepo.CalibrationPath(dir)); err != nil {
				t.Fatal(err)
			}
		}, "calibration.json is a symbolic link leaving the version folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := t.TempDir()
			dir := filepath.Join(repo, fixtureModel, "1")
			copyDir(t, f.modelDir, dir)
			tc.tamper(dir)
			r, logs := scanned(t, repo, Policy{})
			if r.Ready() {
				t.Fatal("a tampered version loaded")
			}
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("log lacks %q:\n%s", tc.want, logs)
			}
			for _, s := range []string{"root", "SECRET", "'r'"} {
				if strings.Contains(logs.String(), s) {
					t.Errorf("the log quotes the secret (%q):\n%s", s, logs)
				}
			}
		})
	}
}
