package data

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// AtomicFile is a file written under a temporary name in the target's folder and renamed into
// place by Commit. Until Commit nothing exists under the final name; Abort removes the temp
// file, and one a killed process left behind is removed by the next writer of the same path
// (see sweepStale): never a half-written artifact.
type AtomicFile struct {
	*os.File
	final string
	done  bool
}

// CreateAtomic starts writing path atomically, creating its folder if needed.
func CreateAtomic(path string) (*AtomicFile, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, startTemp(path))
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &AtomicFile{File: f, final: path}, nil
}

// Commit flushes the file to disk and renames it to its final name.
func (a *AtomicFile) Commit() error {
	if a.done {
		return errors.New("atomic file already closed")
	}
	a.done = true
	tmp := a.File.Name()
	if err := a.File.Sync(); err != nil {
		a.File.Close()
		os.Remove(tmp)
		return fmt.Errorf("sync %s: %w", a.final, err)
	}
	if err := a.File.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("close %s: %w", a.final, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("chmod %s: %w", a.final, err)
	}
	if err := os.Rename(tmp, a.final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename into %s: %w", a.final, err)
	}
	syncDir(filepath.Dir(a.final))
	return nil
}

// Abort discards the file. It is safe to call after Commit (it then does nothing).
func (a *AtomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	os.Remove(a.File.Name())
}

// WriteFileAtomic writes data to path atomically.
func WriteFileAtomic(path string, data []byte) error {
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// AtomicDir is an output folder built under a temporary name beside the target and renamed
// into place by Commit, so a reader never sees a partly written dataset or cohort.
type AtomicDir struct {
	Tmp   string // write everything here
	final string
	done  bool
}

// CreateAtomicDir starts an output folder. It refuses an existing non-empty target unless
// overwrite is set; the old folder is then replaced only at Commit.
func CreateAtomicDir(path string, overwrite bool) (*AtomicDir, error) {
	path = filepath.Clean(path)
	if st, err := os.Stat(path); err == nil {
		if !st.IsDir() {
			return nil, fmt.Errorf("output %s exists and is not a folder", path)
		}
		if !overwrite {
			if ents, _ := os.ReadDir(path); len(ents) > 0 {
				return nil, fmt.Errorf("output %s already exists and is not empty (pass --force to replace it)", path)
			}
		}
	}
	parent := filepath.Dir(path)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, startTemp(path))
	if err != nil {
		return nil, fmt.Errorf("create temp folder for %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it 0700
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("create temp folder for %s: %w", path, err)
	}
	return &AtomicDir{Tmp: tmp, final: path}, nil
}

// Path returns the final path of the folder.
func (d *AtomicDir) Path() string { return d.final }

// Commit moves the folder into place, replacing any previous one. The path holds the old
// output or the new one at every moment a process can be killed: a replacement swaps the two
// folders in one step (renameat2 RENAME_EXCHANGE) where the file system allows it; elsewhere
// the old folder is moved aside as ".NAME.tmp-HOST.PID-*.old" until the new one is in place,
// and a writer killed between the two renames leaves that folder for the next writer's sweep
// to put back (see sweepStale), never to delete.
func (d *AtomicDir) Commit() error {
	if d.done {
		return errors.New("atomic folder already committed or aborted")
	}
	d.done = true
	if _, err := os.Lstat(d.final); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(d.Tmp, d.final); err != nil {
			os.RemoveAll(d.Tmp)
			return fmt.Errorf("rename into %s: %w", d.final, err)
		}
		syncDir(filepath.Dir(d.final))
		return nil
	} else if err != nil {
		os.RemoveAll(d.Tmp)
		return fmt.Errorf("replace %s: %w", d.final, err)
	}
	err := swapPaths(d.Tmp, d.final)
	if err == nil {
		// d.Tmp now holds the old output; a kill from here on leaves it to the sweep.
		syncDir(filepath.Dir(d.final))
		atomicCommitStep("exchanged")
		os.RemoveAll(d.Tmp)
		return nil
	}
	if !errors.Is(err, errExchangeUnsupported) {
		os.RemoveAll(d.Tmp)
		return fmt.Errorf("replace %s: %w", d.final, err)
	}
	old := d.Tmp + oldSuffix
	if err := os.Rename(d.final, old); err != nil {
		os.RemoveAll(d.Tmp)
		return fmt.Errorf("move old %s aside: %w", d.final, err)
	}
	syncDir(filepath.Dir(d.final))
	atomicCommitStep("old-aside")
	if err := os.Rename(d.Tmp, d.final); err != nil {
		if rerr := os.Rename(old, d.final); rerr != nil {
			// Keep both: the sweep puts the old one back once this process is gone.
			return fmt.Errorf("rename into %s: %w (the old output is kept at %s: %v)", d.final, err, old, rerr)
		}
		os.RemoveAll(d.Tmp)
		return fmt.Errorf("rename into %s: %w", d.final, err)
	}
	syncDir(filepath.Dir(d.final))
	atomicCommitStep("new-in")
	os.RemoveAll(old)
	return nil
}

// oldSuffix marks a replaced output moved aside during a Commit without RENAME_EXCHANGE.
const oldSuffix = ".old"

// errExchangeUnsupported is renameExchange's answer where the system or the file system
// cannot swap two paths in one step.
var errExchangeUnsupported = errors.New("rename exchange not supported")

// swapPaths is renameExchange; tests replace it to take the fallback.
var swapPaths = renameExchange

// atomicCommitHook, when set (tests only), is called at each step of a replacing Commit:
// "exchanged" (the folders swapped, the old one not yet removed), "old-aside" (the old folder
// moved aside, the new one not yet in place), "new-in" (the new one in place, the old one not
// yet removed). A test kills the process there.
var atomicCommitHook func(step string)

func atomicCommitStep(step string) {
	if atomicCommitHook != nil {
		atomicCommitHook(step)
	}
}

// Abort removes everything written so far. It is safe after Commit.
func (d *AtomicDir) Abort() {
	if d.done {
		return
	}
	d.done = true
	os.RemoveAll(d.Tmp)
}

// startTemp sweeps what killed writers of path left and returns the pattern of this
// writer's temp name: ".NAME.tmp-HOST.PID-RANDOM", HOST a hash of the host name, so that a
// later writer can tell a temp whose process is gone from one still being written.
func startTemp(path string) string {
	host := hostTag()
	sweepStale(path, host)
	return fmt.Sprintf(".%s.tmp-%s.%d-*", filepath.Base(path), host, os.Getpid())
}

// hostTag is 8 hex digits of the host name's FNV-1a hash ("0" when it cannot be read).
func hostTag() string {
	h, err := os.Hostname()
	if err != nil {
		return "0"
	}
	f := fnv.New32a()
	f.Write([]byte(h))
	return fmt.Sprintf("%08x", f.Sum32())
}

// sweepStale removes what killed writers of path left behind (SIGKILL, a crash, a power cut):
// hidden temps of this host whose process no longer runs. Temps of live processes (this one
// included), of other hosts (a shared drive) and of older medseq versions (no process id in
// the name) are left alone. An old output moved aside by a replacement that was killed before
// the new output was in place (".old", see AtomicDir.Commit) is the only copy when nothing is
// at path: it is put back, never removed; it is removed only once path holds an output.
func sweepStale(path, host string) {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := "." + filepath.Base(path) + ".tmp-" + host + "."
	var olds []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if strings.HasSuffix(e.Name(), oldSuffix) {
			olds = append(olds, filepath.Join(dir, e.Name()))
			continue
		}
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
	if len(olds) == 0 {
		return
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		// The newest is the output that was at path last.
		newest, newestTime := -1, time.Time{}
		for i, p := range olds {
			if st, err := os.Lstat(p); err == nil && (newest < 0 || st.ModTime().After(newestTime)) {
				newest, newestTime = i, st.ModTime()
			}
		}
		if newest >= 0 && os.Rename(olds[newest], path) == nil {
			syncDir(dir)
			slog.Warn("restored an output a killed replacement had moved aside", "path", path, "from",
				filepath.Base(olds[newest]))
			olds = slices.Delete(olds, newest, newest+1)
		}
	}
	if _, err := os.Lstat(path); err != nil {
		return // keep every copy while nothing is at path
	}
	for _, p := range olds {
		os.RemoveAll(p)
	}
}

// processAlive reports whether a process with this id exists (signal 0 checks without
// sending; EPERM means it exists under another user).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
