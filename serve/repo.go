package serve

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
)

// Version is one loaded model version. It is immutable once published; requests hold the
// pointer they resolved, so a swap never changes the model under a request in flight.
type Version struct {
	Name, Version string
	Dir           string
	Scorer        scorer.Scorer
	Manifest      *modelrepo.Manifest
	Calibration   *modelrepo.Calibration // nil: probabilities are the raw scores
	Gap           int64                  // microseconds hidden before each prediction time
	// Threshold is the operating point the server decides at: the manifest's, or the
	// serve --threshold override (Overridden).
	Threshold  float64
	Overridden bool
	LoadedAt   time.Time
	LoadTime   time.Duration

	stamp string // stampOf the folder: any change reloads the version
}

// Calibrate maps a raw probability through the version's calibration.
func (v *Version) Calibrate(p float64) float64 {
	if v.Calibration == nil {
		return p
	}
	return v.Calibration.Apply(p)
}

// CalibrationMethod is the calibration's method, or "none".
func (v *Version) CalibrationMethod() string {
	if v.Calibration == nil {
		return "none"
	}
	return v.Calibration.Method
}

// Model is one model name: its loaded versions and the one its policy serves.
type Model struct {
	Name     string
	Versions map[string]*Version
	Serving  *Version
}

// SortedVersions lists the version names in version order.
func (m *Model) SortedVersions() []string {
	vs := make([]string, 0, len(m.Versions))
	for v := range m.Versions {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return versionLess(vs[i], vs[j]) })
	return vs
}

// versionLess orders versions by number (Scan loads only the folders whose names
// modelrepo.ParseVersion reads: positive integers).
func versionLess(a, b string) bool {
	ai, _ := modelrepo.ParseVersion(a)
	bi, _ := modelrepo.ParseVersion(b)
	if ai != bi {
		return ai < bi
	}
	return a < b
}

// Policy chooses the version served when a request names none: the latest (highest) loaded
// version unless the model is pinned.
type Policy struct {
	Pinned map[string]string // model name -> version
}

// ParsePolicy reads "latest" or "name=version,name=version" (unnamed models: latest).
func ParsePolicy(s string) (Policy, error) {
	p := Policy{Pinned: map[string]string{}}
	s = strings.TrimSpace(s)
	if s == "" || s == "latest" {
		return p, nil
	}
	for _, kv := range strings.Split(s, ",") {
		name, ver, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || name == "" || ver == "" {
			return p, fmt.Errorf("version policy %q: want latest or name=version[,name=version]", s)
		}
		if _, ok := modelrepo.ParseVersion(ver); !ok {
			return p, fmt.Errorf("version policy %q: version %q of %s is not a version folder's name (a positive integer)", s,
				ver, name)
		}
		p.Pinned[name] = ver
	}
	return p, nil
}

type snapshot struct {
	models map[string]*Model
}

// Repository is a polled model repository.
type Repository struct {
	dir    string
	policy Policy
	gap    *int64 // overrides the manifests' gap when set
	// thresholds override the manifests' operating points, by model name (serve --threshold).
	thresholds map[string]float64
	log        *slog.Logger
	onLoad     func(v *Version, err error, name, version string)
	single     singleModel // single-model mode when its name is set
	// scorers loads model kinds: XGBoost unless the server is given more (the binary
	// registers the BERT).
	scorers *scorer.Registry

	snap   atomic.Pointer[snapshot]
	mu     sync.Mutex        // serialises Scan
	failed map[string]string // dir -> stamp of a failed load, not retried until it changes
	warned map[string]bool   // folders in a model folder that are not versions, warned about once
}

// NewRepository opens dir without loading anything; call Scan.
func NewRepository(dir string, policy Policy, log *slog.Logger) *Repository {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Repository{dir: dir, policy: policy, log: log, failed: map[string]string{}, warned: map[string]bool{},
		scorers: scorer.NewRegistry()}
	r.snap.Store(&snapshot{models: map[string]*Model{}})
	return r
}

// Models returns the current models (do not modify).
func (r *Repository) Models() map[string]*Model { return r.snap.Load().models }

// Ready reports whether at least one model version is loaded and served.
func (r *Repository) Ready() bool {
	for _, m := range r.snap.Load().models {
		if m.Serving != nil {
			return true
		}
	}
	return false
}

// Errors of resolution.
var (
	ErrNoModel   = errors.New("model not found")
	ErrNoVersion = errors.New("model version not found")
)

// Resolve returns the version a request names (version "" = the policy's).
func (r *Repository) Resolve(name, version string) (*Version, error) {
	m := r.snap.Load().models[name]
	if m == nil {
		return nil, ErrNoModel
	}
	if version == "" {
		if m.Serving == nil {
			return nil, ErrNoVersion
		}
		return m.Serving, nil
	}
	v := m.Versions[version]
	if v == nil {
		return nil, ErrNoVersion
	}
	return v, nil
}

// stampOf is a version folder's stamp: a hash over where the folder is (a link's target) and
// the path, type, size and modification time of everything in it, hidden entries included.
// Any change in the folder changes it — a half-copied folder completed later, a file replaced
// by `cp -a` that keeps manifest.json's size and time — so a version that failed to load is
// retried, and a loaded one is loaded (and verified) again. It fails while there is no
// manifest.json (a version being written).
func stampOf(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, modelrepo.ManifestFile)); err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	io.WriteString(h, root)
	var buf [8]byte
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we looked: the stamp differs anyway
		}
		if err != nil {
			return err
		}
		st, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		io.WriteString(h, rel)
		h.Write([]byte{0})
		binary.LittleEndian.PutUint64(buf[:], uint64(st.Mode()))
		h.Write(buf[:])
		binary.LittleEndian.PutUint64(buf[:], uint64(st.Size()))
		h.Write(buf[:])
		binary.LittleEndian.PutUint64(buf[:], uint64(st.ModTime().UnixNano()))
		h.Write(buf[:])
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// Scan reads the repository folder, loads new or changed versions, drops vanished ones and
// publishes the result atomically. Only folders whose names are positive integers are
// versions (modelrepo.Versions); any other folder is ignored with one warning. A version is
// verified against its manifest before it loads (modelrepo.Verify); one that fails is logged
// and retried, with a log line, whenever anything in its folder changes (stampOf); the
// versions already served stay.
func (r *Repository) Scan(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snap.Load().models
	scan := r.scanRepository
	if r.single.name != "" {
		scan = r.scanSingle
	}
	next, changed, err := scan(ctx, old)
	if err != nil {
		return err
	}
	if r.unloaded(old, next) {
		changed = true
	}
	if changed || len(next) != len(old) {
		r.snap.Store(&snapshot{models: next})
	}
	return nil
}

// scanRepository scans every model folder of the repository (DIR/<name>/<version>/).
func (r *Repository) scanRepository(ctx context.Context, old map[string]*Model) (map[string]*Model, bool, error) {
	names, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, false, fmt.Errorf("model repository: %w", err)
	}
	next := map[string]*Model{}
	changed := false
	for _, n := range names {
		if !n.IsDir() || strings.HasPrefix(n.Name(), ".") {
			continue
		}
		m, loaded, err := r.scanModel(ctx, n.Name(), old[n.Name()])
		if err != nil {
			return nil, false, err
		}
		changed = changed || loaded
		if m != nil {
			next[m.Name] = m
		}
	}
	return next, changed, nil
}

// singleModel is single-model mode (serve --model-dir): the repository's folder is one model
// version's, served under name and version, as KServe's storage initializer lays a model's
// storageUri out in /mnt/models.
type singleModel struct{ name, version string }

// ErrNotVersionDir is returned in single-model mode when the folder holds no manifest.json.
var ErrNotVersionDir = errors.New("not a model version folder (no " + modelrepo.ManifestFile + ")")

// scanSingle loads the one version of single-model mode, again whenever its folder changes
// (a version that fails to load is retried, as in a repository). A folder without a manifest
// is an error naming what it holds instead: a model folder's versions (point --model-dir at
// one of them) or nothing a training command wrote.
func (r *Repository) scanSingle(ctx context.Context, old map[string]*Model) (map[string]*Model, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	name, ver := r.single.name, r.single.version
	stamp, err := stampOf(r.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, r.notVersionDir()
	}
	if err != nil {
		return nil, false, fmt.Errorf("model folder: %w", err)
	}
	if om := old[name]; om != nil {
		if ov := om.Versions[ver]; ov != nil && ov.stamp == stamp {
			return old, false, nil
		}
	}
	v := r.loadVersion(name, ver, r.dir, stamp)
	if v == nil {
		return map[string]*Model{}, false, nil
	}
	return map[string]*Model{name: {Name: name, Versions: map[string]*Version{ver: v}, Serving: v}}, true, nil
}

// notVersionDir says why single-model mode's folder is not a version folder.
func (r *Repository) notVersionDir() error {
	if _, err := os.Stat(r.dir); err != nil {
		return fmt.Errorf("model folder: %w", err)
	}
	if vs, _, err := modelrepo.Versions(r.dir); err == nil && len(vs) > 0 {
		return fmt.Errorf("model folder %s: %w: it holds version folders (%s ...): point --model-dir at one of them, "+
			"or serve them all with --models", r.dir, ErrNotVersionDir, vs[0].Name)
	}
	return fmt.Errorf("model folder %s: %w", r.dir, ErrNotVersionDir)
}

// scanModel scans one model's folder: the versions of old (the model as served, nil when
// not) whose folders have not changed, and those that load now. loaded reports whether any
// version was loaded; m is nil when the model has no version to serve.
func (r *Repository) scanModel(ctx context.Context, name string, old *Model) (m *Model, loaded bool, err error) {
	vdirs, ignored, err := modelrepo.Versions(filepath.Join(r.dir, name))
	if err != nil {
		return nil, false, nil
	}
	for _, ig := range ignored {
		if p := filepath.Join(r.dir, name, ig); !r.warned[p] {
			r.warned[p] = true
			r.log.Warn("folder ignored: not a model version (version folders are named 1, 2, 3, ...)",
				"model", name, "folder", ig)
		}
	}
	m = &Model{Name: name, Versions: map[string]*Version{}}
	for _, vd := range vdirs {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		ver, dir := vd.Name, vd.Path
		stamp, err := stampOf(dir)
		if err != nil {
			continue // no manifest yet: a version being written
		}
		if old != nil {
			if ov := old.Versions[ver]; ov != nil && ov.stamp == stamp {
				m.Versions[ver] = ov
				continue
			}
		}
		if v := r.loadVersion(name, ver, dir, stamp); v != nil {
			m.Versions[ver] = v
			loaded = true
		}
	}
	if len(m.Versions) == 0 {
		return nil, loaded, nil
	}
	m.Serving = r.pick(m)
	return m, loaded, nil
}

// loadVersion verifies and loads a version folder, logging the outcome; nil when it failed.
// A version that failed is not retried until its stamp changes.
func (r *Repository) loadVersion(name, ver, dir string, stamp string) *Version {
	if failed, ok := r.failed[dir]; ok {
		if failed == stamp {
			return nil
		}
		r.log.Info("model version changed since it failed to load: retrying", "model", name, "version", ver)
	}
	v, err := r.load(name, ver, dir, stamp)
	if r.onLoad != nil {
		r.onLoad(v, err, name, ver)
	}
	if err != nil {
		r.failed[dir] = stamp
		r.log.Warn("model version not loaded", "model", name, "version", ver, "err", err)
		return nil
	}
	delete(r.failed, dir)
	r.log.Info("model version loaded", "model", name, "version", ver, "kind", v.Manifest.Kind,
		"seconds", v.LoadTime.Seconds())
	return v
}

// unloaded logs the versions of old that next no longer serves, and reports whether any
// was, or whether a model serves another version.
func (r *Repository) unloaded(old, next map[string]*Model) bool {
	changed := false
	for name, om := range old {
		nm := next[name]
		for ver := range om.Versions {
			if nm == nil || nm.Versions[ver] == nil {
				changed = true
				r.log.Info("model version unloaded", "model", name, "version", ver)
			}
		}
		if nm != nil && om.Serving != nm.Serving {
			changed = true
		}
	}
	return changed
}

func (r *Repository) pick(m *Model) *Version {
	if want, ok := r.policy.Pinned[m.Name]; ok {
		return m.Versions[want] // nil until the pinned version is there
	}
	vs := m.SortedVersions()
	return m.Versions[vs[len(vs)-1]]
}

func (r *Repository) load(name, ver, dir, stamp string) (v *Version, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("load %s: panic: %v", dir, p)
		}
	}()
	start := time.Now()
	if _, err := modelrepo.Verify(dir); err != nil {
		return nil, err
	}
	sc, err := r.scorers.Load(dir)
	if err != nil {
		return nil, err
	}
	m := sc.Manifest()
	cal, err := modelrepo.ReadCalibration(dir)
	if errors.Is(err, fs.ErrNotExist) && m.Calibration == "" {
		cal, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	v = &Version{Name: name, Version: ver, Dir: dir, Scorer: sc, Manifest: m, Calibration: cal, Gap: m.Gap.Micros(),
		Threshold: m.OperatingPoint.Threshold, LoadedAt: time.Now(), LoadTime: time.Since(start), stamp: stamp}
	if r.gap != nil {
		v.Gap = *r.gap
	}
	if t, ok := r.thresholds[name]; ok {
		v.Threshold, v.Overridden = t, true
	}
	return v, nil
}

// Poll scans every interval until ctx ends.
func (r *Repository) Poll(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Scan(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("model repository scan", "err", err)
			}
		}
	}
}
