package data

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestAtomicDir(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out")
	t.Run("abort leaves nothing", func(t *testing.T) {
		d, err := CreateAtomicDir(target, false)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d.Tmp, "a"), []byte("x"), 0o644)
		d.Abort()
		if got := names(t, dir); len(got) != 0 {
			t.Fatalf("left %v", got)
		}
	})
	t.Run("commit, then refuse without overwrite, replace with it", func(t *testing.T) {
		for i, overwrite := range []bool{false, true} {
			d, err := CreateAtomicDir(target, overwrite)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(d.Tmp, "a"), []byte{byte('0' + i)}, 0o644)
			if err := d.Commit(); err != nil {
				t.Fatal(err)
			}
			if _, err := CreateAtomicDir(target, false); err == nil {
				t.Fatal("a non-empty target was accepted without overwrite")
			}
		}
		if b, _ := os.ReadFile(filepath.Join(target, "a")); string(b) != "1" {
			t.Fatalf("content %q, want the second commit's", b)
		}
		if got := names(t, dir); !slices.Equal(got, []string{"out"}) {
			t.Fatalf("left %v", got)
		}
	})
}

// TestSweepStale plants the temps a killed writer leaves (a folder, a file, a folder moved
// aside during a replace) beside temps that must survive, then starts a new writer.
func TestSweepStale(t *testing.T) {
	deadPID := deadProcess(t)
	dir := t.TempDir()
	host := hostTag()
	stale := []string{
		fmt.Sprintf(".out.tmp-%s.%d-123", host, deadPID),
		fmt.Sprintf(".out.tmp-%s.%d-456.old", host, deadPID),
		fmt.Sprintf(".f.json.tmp-%s.%d-789", host, deadPID),
	}
	keep := []string{
		fmt.Sprintf(".out.tmp-%s.%d-1", host, os.Getpid()),   // this process: maybe still writing
		fmt.Sprintf(".out.tmp-%s.%d-2", host, 1),             // a live process
		fmt.Sprintf(".out.tmp-%s.%d-3", "0badc0de", deadPID), // another host on a shared drive
		".out.tmp-4242", // an older medseq: no process id
		fmt.Sprintf(".other.tmp-%s.%d-5", host, deadPID), // another target
	}
	for i, n := range append(slices.Clone(stale), keep...) {
		p := filepath.Join(dir, n)
		if i%2 == 0 {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(p, "part"), []byte("half"), 0o644)
		} else if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An (empty) output is in place, so the stale ".old" is not its only copy (see
	// TestSweepKeepsOnlyCopy for that case).
	if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := CreateAtomicDir(filepath.Join(dir, "out"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "f.json"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	got := names(t, dir)
	for _, n := range stale {
		if slices.Contains(got, n) {
			t.Errorf("stale %s survived", n)
		}
	}
	for _, n := range append(keep, "out", "f.json") {
		if !slices.Contains(got, n) {
			t.Errorf("%s was removed", n)
		}
	}
}

// deadProcess is the id of a process that has ended (the test skips when it was reused).
func deadProcess(t *testing.T) int {
	t.Helper()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	if processAlive(dead.Process.Pid) {
		t.Skip("the finished process's id was reused")
	}
	return dead.Process.Pid
}
