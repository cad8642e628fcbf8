package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/bert"
)

// Checkpoints of `train classify` and `train pretrain` live in a work folder beside the output
// folder: OUT.work/ (for --out models/t2d-bert/1, models/t2d-bert/1.work/). It holds
// checkpoint-NNNNNNNN/ folders (each written under a temporary name and renamed into place, so
// one either exists whole or not at all; only the newest is kept) and metrics.jsonl, the
// evaluations so far. A checkpoint folder holds the engine's state as bert.Engine.SaveState
// writes it and state.json: the loop's state, the settings a resumed run must share and the
// SHA-256 of every other file. `--resume` continues from the newest checkpoint there; a run that ends
// well removes the work folder, since the model folder then holds everything.
const (
	WorkSuffix       = ".work"
	checkpointPrefix = "checkpoint-"
	ckptStateFile    = "state.json"
	// ckptFormat is state.json's format. 2: the engine's state is bert.Engine.SaveState's
	// (the optimizer's step count in its files); format 1 checkpoints are refused.
	ckptFormat = 2
)

// WorkDir is the work folder of an output folder.
func WorkDir(out string) string { return filepath.Clean(out) + WorkSuffix }

// loopState is what a training loop carries from step to step beside the engine: enough to
// continue a run exactly where it stopped.
type loopState struct {
	Step      int           `json:"step"` // steps taken
	HaveBest  bool          `json:"have_best"`
	BestStep  int           `json:"best_step"`
	BestLoss  float64       `json:"best_loss"`
	Bad       int           `json:"bad"`    // evaluations since the best
	Rising    int           `json:"rising"` // evaluations of falling train and rising validation loss
	HavePrev  bool          `json:"have_prev"`
	PrevTrain float64       `json:"prev_train"`
	PrevVal   float64       `json:"prev_val"`
	LossSum   float64       `json:"loss_sum"` // training loss since the last evaluation
	LossN     int           `json:"loss_n"`
	Overfit   bool          `json:"overfit"`
	Stopped   string        `json:"stopped,omitempty"`
	History   []BERTMetrics `json:"history"`
}

// ckptState is a checkpoint's state.json; the engine's state (weights, optimizer moments and
// step count, best weights) is in the files bert.Engine.SaveState writes beside it.
type ckptState struct {
	Format int               `json:"format"`
	Task   string            `json:"task"`
	Params map[string]any    `json:"params"` // the settings a resumed run must share
	Loop   loopState         `json:"loop"`
	Files  map[string]string `json:"files"` // SHA-256 of each other file
}

// checkpoint is one checkpoint, verified.
type checkpoint struct {
	Dir   string
	State ckptState
}

// checkpointer writes and finds a run's checkpoints.
type checkpointer struct {
	work   string
	task   string
	params map[string]any
	log    *slog.Logger
}

func ckptName(step int) string { return fmt.Sprintf("%s%08d", checkpointPrefix, step) }

// list returns the checkpoint folders in the work folder, newest first.
func (c *checkpointer) list() ([]string, error) {
	ents, err := os.ReadDir(c.work)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type ck struct {
		name string
		step int
	}
	var cks []ck
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || !strings.HasPrefix(n, checkpointPrefix) {
			continue
		}
		s, err := strconv.Atoi(strings.TrimPrefix(n, checkpointPrefix))
		if err != nil {
			continue
		}
		cks = append(cks, ck{n, s})
	}
	sort.Slice(cks, func(i, j int) bool { return cks[i].step > cks[j].step })
	out := make([]string, len(cks))
	for i, x := range cks {
		out[i] = filepath.Join(c.work, x.name)
	}
	return out, nil
}

// prepare readies the work folder for a run: with resume it returns the newest checkpoint
// (nil when there is none); without, it refuses earlier checkpoints unless force (which
// clears them).
func (c *checkpointer) prepare(resume, force bool) (*checkpoint, error) {
	cks, err := c.list()
	if err != nil {
		return nil, err
	}
	if resume {
		if len(cks) == 0 {
			c.log.Info("no checkpoint to resume from: starting at step 0", "work", c.work)
			return nil, nil
		}
		ck, err := c.load(cks[0])
		if err != nil {
			return nil, err
		}
		return ck, nil
	}
	if len(cks) > 0 {
		if !force {
			return nil, fmt.Errorf("%s holds checkpoints of an earlier run (newest %s): "+
				"pass --resume to continue it or --force to start over", c.work, filepath.Base(cks[0]))
		}
		if err := os.RemoveAll(c.work); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func sha256File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// save writes a checkpoint after st.Step steps and removes the older ones.
func (c *checkpointer) save(eng *bert.Engine, st *loopState, best *bert.Weights) (string, error) {
	final := filepath.Join(c.work, ckptName(st.Step))
	dir, err := data.CreateAtomicDir(final, true)
	if err != nil {
		return "", err
	}
	defer dir.Abort()
	files, err := eng.SaveState(dir.Tmp, best)
	if err != nil {
		return "", err
	}
	state := ckptState{Format: ckptFormat, Task: c.task, Params: c.params, Loop: *st, Files: map[string]string{}}
	for _, f := range files {
		if state.Files[f], err = sha256File(filepath.Join(dir.Tmp, f)); err != nil {
			return "", err
		}
	}
	buf, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return "", err
	}
	if err := data.WriteFileAtomic(filepath.Join(dir.Tmp, ckptStateFile), append(buf, '\n')); err != nil {
		return "", err
	}
	if err := dir.Commit(); err != nil {
		return "", err
	}
	// Only the newest checkpoint is kept.
	cks, err := c.list()
	if err == nil {
		for _, old := range cks {
			if old != final {
				os.RemoveAll(old)
			}
		}
	}
	return final, nil
}

// corrupt wraps a checkpoint problem in a message that says what to do.
func corrupt(dir string, format string, args ...any) error {
	return fmt.Errorf("checkpoint %s is unusable: %s (rerun with --force instead of --resume to start over)",
		dir, fmt.Sprintf(format, args...))
}

// load reads and verifies a checkpoint: state.json parses, the files' checksums match, the
// settings match this run's and the tensors have the shapes the model needs.
func (c *checkpointer) load(dir string) (*checkpoint, error) {
	buf, err := os.ReadFile(filepath.Join(dir, ckptStateFile))
	if err != nil {
		return nil, corrupt(dir, "%v", err)
	}
	var st ckptState
	if err := json.Unmarshal(buf, &st); err != nil {
		return nil, corrupt(dir, "%s: %v", ckptStateFile, err)
	}
	if st.Format != ckptFormat {
		return nil, corrupt(dir, "format %d, this build reads %d", st.Format, ckptFormat)
	}
	if st.Task != c.task {
		return nil, fmt.Errorf("checkpoint %s is from %q, not %q", dir, st.Task, c.task)
	}
	if err := sameParams(st.Params, c.params); err != nil {
		return nil, fmt.Errorf("cannot resume from %s: %w", dir, err)
	}
	if err := everyFileListed(dir, st.Files); err != nil {
		return nil, err
	}
	for f, want := range st.Files {
		if f != filepath.Base(f) {
			return nil, corrupt(dir, "bad file name %q in state.json", f)
		}
		got, err := sha256File(filepath.Join(dir, f))
		if err != nil {
			return nil, corrupt(dir, "%v", err)
		}
		if got != want {
			return nil, corrupt(dir, "%s does not match its checksum (truncated or damaged)", f)
		}
	}
	return &checkpoint{Dir: dir, State: st}, nil
}

// everyFileListed checks that state.json lists a checksum for every other file of the
// checkpoint, so that each file the engine reads back has been verified.
func everyFileListed(dir string, files map[string]string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return corrupt(dir, "%v", err)
	}
	for _, e := range ents {
		if e.Name() == ckptStateFile {
			continue
		}
		if _, ok := files[e.Name()]; !ok {
			return corrupt(dir, "state.json lists no checksum of %s", e.Name())
		}
	}
	return nil
}

// restore puts a checkpoint's engine state into the engine (whose configuration and heads
// the checkpoint must have) and returns the loop state and the best weights.
func (ck *checkpoint) restore(eng *bert.Engine) (*loopState, *bert.Weights, error) {
	best, err := eng.RestoreState(ck.Dir)
	if err != nil {
		return nil, nil, corrupt(ck.Dir, "%v", err)
	}
	st := ck.State.Loop
	if st.Step != eng.Steps() || st.Step < 0 {
		return nil, nil, corrupt(ck.Dir, "loop step %d and optimizer step %d disagree", st.Step, eng.Steps())
	}
	if st.HaveBest != (best != nil) {
		return nil, nil, corrupt(ck.Dir, "best weights missing or unexpected")
	}
	return &st, best, nil
}

// sameParams compares two settings maps through their JSON form (what a checkpoint stores).
func sameParams(saved, now map[string]any) error {
	norm := func(m map[string]any) map[string]string {
		// Through JSON first, so structs compare as the objects a checkpoint holds.
		var rt map[string]any
		buf, _ := json.Marshal(m)
		_ = json.Unmarshal(buf, &rt)
		out := map[string]string{}
		for k, v := range rt {
			b, _ := json.Marshal(v)
			out[k] = string(b)
		}
		return out
	}
	a, b := norm(saved), norm(now)
	var diffs []string
	for k, v := range b {
		if a[k] != v {
			old := a[k]
			if old == "" {
				old = "(none)"
			}
			diffs = append(diffs, fmt.Sprintf("%s %s (checkpoint %s)", k, v, old))
		}
	}
	for k, v := range a {
		if _, ok := b[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s (none) (checkpoint %s)", k, v))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		return fmt.Errorf("this run's settings differ from the checkpoint's: %s", strings.Join(diffs, "; "))
	}
	return nil
}
