package data

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper process of TestAtomicDirKilledReplace: it replaces the folder named by
// MEDSEQ_ATOMIC_KILL_TARGET and kills itself (SIGKILL, no deferred cleanup) at the step of
// Commit named by MEDSEQ_ATOMIC_KILL_STEP, through the fallback when MEDSEQ_ATOMIC_KILL_MODE
// is "fallback".
func TestAtomicDirKillHelper(t *testing.T) {
	target := os.Getenv("MEDSEQ_ATOMIC_KILL_TARGET")
	if target == "" {
		t.Skip("helper process of TestAtomicDirKilledReplace")
	}
	step := os.Getenv("MEDSEQ_ATOMIC_KILL_STEP")
	if os.Getenv("MEDSEQ_ATOMIC_KILL_MODE") == "fallback" {
		swapPaths = func(a, b string) error { return errExchangeUnsupported }
	}
	atomicCommitHook = func(s string) {
		if s == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	d, err := CreateAtomicDir(target, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(d.Tmp, n), []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if step == "writing" {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
}

// outputAt returns "old" or "new" when dir holds one whole output (files a and b, both with
// that content), "" when nothing is there, and fails the test on anything else.
func outputAt(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		got = append(got, e.Name()+"="+string(b))
	}
	for _, v := range []string{"old", "new"} {
		if slices.Equal(got, []string{"a=" + v, "b=" + v}) {
			return v
		}
	}
	t.Fatalf("%s holds a mixed or partial output: %v", dir, got)
	return ""
}

// TestAtomicDirKilledReplace (issue 14, D8): a --force replacement is killed (SIGKILL) at
// every step of Commit, with RENAME_EXCHANGE and with the fallback. The path holds the old or
// the new output whole right after the kill (the fallback, killed between its two renames,
// keeps the old copy beside it), and the next writer's sweep leaves the path holding one of
// them and nothing else beside it: never the only copy deleted.
func TestAtomicDirKilledReplace(t *testing.T) {
	exchange := true
	{
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		os.Mkdir(a, 0o755)
		os.Mkdir(b, 0o755)
		if err := renameExchange(a, b); errors.Is(err, errExchangeUnsupported) {
			exchange = false
		} else if err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		mode, step string
		afterKill  string // what the path holds right after the kill
		afterSweep string // and after the next writer's sweep
	}{
		{"exchange", "writing", "old", "old"},
		{"exchange", "exchanged", "new", "new"},
		{"fallback", "writing", "old", "old"},
		{"fallback", "old-aside", "", "old"},
		{"fallback", "new-in", "new", "new"},
	}
	for _, tc := range cases {
		t.Run(tc.mode+"/"+tc.step, func(t *testing.T) {
			if tc.mode == "exchange" && !exchange {
				t.Skip("this file system cannot RENAME_EXCHANGE")
			}
			dir := t.TempDir()
			target := filepath.Join(dir, "out")
			os.Mkdir(target, 0o755)
			for _, n := range []string{"a", "b"} {
				os.WriteFile(filepath.Join(target, n), []byte("old"), 0o644)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestAtomicDirKillHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), "MEDSEQ_ATOMIC_KILL_TARGET="+target, "MEDSEQ_ATOMIC_KILL_STEP="+tc.step,
				"MEDSEQ_ATOMIC_KILL_MODE="+tc.mode)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper was not killed at %s: %v\n%s", tc.step, err, out)
			}
			if got := outputAt(t, target); got != tc.afterKill {
				t.Fatalf("after the kill the path holds %q, want %q (folder: %v)", got, tc.afterKill, names(t, dir))
			}
			if tc.afterKill == "" && len(names(t, dir)) == 0 {
				t.Fatal("no copy left anywhere")
			}
			// The next job writing the same path sweeps what the killed one left.
			d, err := CreateAtomicDir(target, true)
			if err != nil {
				t.Fatal(err)
			}
			d.Abort()
			if got := outputAt(t, target); got != tc.afterSweep {
				t.Fatalf("after the sweep the path holds %q, want %q", got, tc.afterSweep)
			}
			if got := names(t, dir); !slices.Equal(got, []string{"out"}) {
				t.Errorf("left beside the output: %v", got)
			}
		})
	}
}

// TestSweepKeepsOnlyCopy: a dead writer's ".old" is put back when nothing is at the path (the
// newest of several), and removed only when the path holds an output.
func TestSweepKeepsOnlyCopy(t *testing.T) {
	deadPID := deadProcess(t)
	dir := t.TempDir()
	host := hostTag()
	plant := func(name, content string, age int) {
		p := filepath.Join(dir, name)
		os.Mkdir(p, 0o755)
		os.WriteFile(filepath.Join(p, "a"), []byte(content), 0o644)
		os.WriteFile(filepath.Join(p, "b"), []byte(content), 0o644)
		tm := testTime(age)
		os.Chtimes(p, tm, tm)
	}
	plant(fmt.Sprintf(".out.tmp-%s.%d-1.old", host, deadPID), "stale", 2)
	plant(fmt.Sprintf(".out.tmp-%s.%d-2.old", host, deadPID), "old", 1)
	plant(fmt.Sprintf(".out.tmp-%s.%d-2", host, deadPID), "new", 0) // the new output, never moved in
	// A live writer's .old is its own business.
	live := fmt.Sprintf(".out.tmp-%s.%d-3.old", host, 1)
	plant(live, "live", 0)
	target := filepath.Join(dir, "out")
	sweepStale(target, host)
	if got := outputAt(t, target); got != "old" {
		t.Fatalf("path holds %q, want the newest moved-aside output", got)
	}
	got := names(t, dir)
	if !slices.Equal(got, []string{live, "out"}) {
		t.Errorf("after the sweep: %v", got)
	}
	if !strings.HasSuffix(live, oldSuffix) {
		t.Fatal("bad fixture")
	}
}

func testTime(hoursAgo int) time.Time { return time.Now().Add(-time.Duration(hoursAgo) * time.Hour) }
