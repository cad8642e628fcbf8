package bert

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// adamState is the optimizer's state beside the weights: AdamW's first and second moments
// by weight name and the number of steps taken (which sets the bias correction).
type adamState struct {
	Steps int
	M, V  map[string][]float32
}

// copyAdam copies the optimizer state to the host.
func (e *Engine) copyAdam() (*adamState, error) {
	s := &adamState{Steps: e.steps, M: make(map[string][]float32, len(e.specs)),
		V: make(map[string][]float32, len(e.specs))}
	for i, sp := range e.specs {
		m, err := tensors.CopyFlatData[float32](e.m[i])
		if err != nil {
			return nil, err
		}
		v, err := tensors.CopyFlatData[float32](e.v[i])
		if err != nil {
			return nil, err
		}
		s.M[sp.Name], s.V[sp.Name] = m, v
	}
	return s, nil
}

// setAdam replaces the optimizer state (moments and step count). Every weight needs
// both moments with its size.
func (e *Engine) setAdam(s *adamState) error {
	if s.Steps < 0 {
		return fmt.Errorf("bert optimizer state: negative step count %d", s.Steps)
	}
	ms := make([]*tensors.Tensor, len(e.specs))
	vs := make([]*tensors.Tensor, len(e.specs))
	for i, sp := range e.specs {
		m, okM := s.M[sp.Name]
		v, okV := s.V[sp.Name]
		if !okM || !okV {
			return fmt.Errorf("bert optimizer state: no moments for %s", sp.Name)
		}
		if len(m) != sp.Size() || len(v) != sp.Size() {
			return fmt.Errorf("bert optimizer state: %s moments have %d and %d values, shape %v needs %d",
				sp.Name, len(m), len(v), sp.Shape, sp.Size())
		}
		ms[i] = tensors.FromFlatDataAndDimensions(append([]float32(nil), m...), sp.Shape...)
		vs[i] = tensors.FromFlatDataAndDimensions(append([]float32(nil), v...), sp.Shape...)
	}
	finalize(e.m)
	finalize(e.v)
	e.m, e.v, e.steps = ms, vs, s.Steps
	return nil
}

// SetDropoutSeed resets the random state dropout draws from. Calling it before every step
// with a seed derived from (run seed, step) makes the dropout masks a pure function of the
// step, so a resumed run replays them exactly.
func (e *Engine) SetDropoutSeed(seed int64) error {
	rng, err := graph.RNGStateFromSeed(seed)
	if err != nil {
		return err
	}
	old := e.rng
	e.rng = rng
	if old != nil {
		_ = old.FinalizeAll()
	}
	return nil
}

// Files of an engine's training state (SaveState), and the format their metadata names.
const (
	StateWeightsFile = "weights.safetensors"
	StateOptimFile   = "optim.safetensors"
	StateBestFile    = "best.safetensors"
	// StateFormat is the state's format, in every state file's metadata ("format"); a file
	// of another format (or none: the checkpoints of earlier builds) is refused, never read.
	StateFormat = "medseq-engine-state-1"
)

// ErrStateFormat is RestoreState's error for a state file of another format.
var ErrStateFormat = errors.New("not an engine state of this build's format")

// SaveState writes the engine's training state into dir, an existing folder: the weights
// (StateWeightsFile), AdamW's moments with the step count in the metadata (StateOptimFile:
// "m."+name and "v."+name) and, when best is not nil, the best weights so far (StateBestFile),
// float32 with HuggingFace names. Each file is written atomically; it returns their names.
// The caller makes the folder as a whole appear at once (a checkpoint is written under a
// temporary name and renamed).
func (e *Engine) SaveState(dir string, best *Weights) ([]string, error) {
	w, err := e.Weights()
	if err != nil {
		return nil, err
	}
	opt, err := e.copyAdam()
	if err != nil {
		return nil, err
	}
	meta := map[string]string{"format": StateFormat, "producer": "medseq"}
	if err := writeState(filepath.Join(dir, StateWeightsFile), e.specs, meta, tensorSet{"", w.Data}); err != nil {
		return nil, err
	}
	optMeta := map[string]string{"format": StateFormat, "producer": "medseq", "steps": strconv.Itoa(opt.Steps),
		metaSkipped: strconv.Itoa(e.skipped)}
	if e.scaler != nil {
		e.scaler.saveMeta(optMeta)
	}
	if err := writeState(filepath.Join(dir, StateOptimFile), e.specs, optMeta,
		tensorSet{"m.", opt.M}, tensorSet{"v.", opt.V}); err != nil {
		return nil, err
	}
	files := []string{StateWeightsFile, StateOptimFile}
	if best != nil {
		if err := best.sameModel(e.cfg, e.heads); err != nil {
			return nil, fmt.Errorf("save state: best weights: %w", err)
		}
		if err := writeState(filepath.Join(dir, StateBestFile), e.specs, meta, tensorSet{"", best.Data}); err != nil {
			return nil, err
		}
		files = append(files, StateBestFile)
	}
	return files, nil
}

// RestoreState puts a state SaveState wrote into dir back into the engine, which must have the
// configuration and heads it was saved with: every tensor must be there with its shape (the
// error names the file and tensor), and every file must be of StateFormat. It returns the best
// weights, nil when none were saved.
func (e *Engine) RestoreState(dir string) (best *Weights, err error) {
	wd, _, err := readState(filepath.Join(dir, StateWeightsFile), e.specs, "")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, StateOptimFile)
	m, meta, err := readState(p, e.specs, "m.")
	if err != nil {
		return nil, err
	}
	v, _, err := readState(p, e.specs, "v.")
	if err != nil {
		return nil, err
	}
	steps, err := strconv.Atoi(meta["steps"])
	if err != nil || steps < 0 {
		return nil, fmt.Errorf("%s: step count %q in the metadata is not a count", p, meta["steps"])
	}
	skipped := 0
	if v, ok := meta[metaSkipped]; ok { // absent in states saved before the loss scaler
		if skipped, err = strconv.Atoi(v); err != nil || skipped < 0 || skipped > steps {
			return nil, fmt.Errorf("%s: skipped steps %q in the metadata is not a count up to %d", p, v, steps)
		}
	}
	if e.scaler != nil {
		if err := e.scaler.restoreMeta(p, meta); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, StateBestFile)); err == nil {
		bd, _, err := readState(filepath.Join(dir, StateBestFile), e.specs, "")
		if err != nil {
			return nil, err
		}
		best = &Weights{Config: e.cfg, Heads: e.heads, Specs: append([]TensorSpec(nil), e.specs...), Data: bd}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := e.setAdam(&adamState{Steps: steps, M: m, V: v}); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	e.skipped = skipped
	e.SetWeights(&Weights{Data: wd})
	return best, nil
}

// tensorSet is one group of a state file's tensors: the weights' names with a prefix.
type tensorSet struct {
	prefix string
	data   map[string][]float32
}

// writeState writes sets of tensors, each with specs' names and shapes, to one file.
func writeState(path string, specs []TensorSpec, meta map[string]string, sets ...tensorSet) error {
	names := make([]string, 0, len(specs)*len(sets))
	ts := make(map[string]Tensor, len(specs)*len(sets))
	for _, s := range specs {
		for _, set := range sets {
			v, ok := set.data[s.Name]
			if !ok || len(v) != s.Size() {
				return fmt.Errorf("save state %s: %s%s has %d values, shape %v needs %d",
					path, set.prefix, s.Name, len(v), s.Shape, s.Size())
			}
			names = append(names, set.prefix+s.Name)
			ts[set.prefix+s.Name] = Tensor{DType: "F32", Shape: s.Shape, F32: v}
		}
	}
	return WriteSafetensors(path, names, ts, meta)
}

// readState reads the tensors prefix+name of specs from a state file.
func readState(path string, specs []TensorSpec, prefix string) (map[string][]float32, map[string]string, error) {
	ts, meta, err := ReadSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	if f := meta["format"]; f != StateFormat {
		return nil, nil, fmt.Errorf("%s: format %q: %w (%s)", path, f, ErrStateFormat, StateFormat)
	}
	out := make(map[string][]float32, len(specs))
	for _, s := range specs {
		t, ok := ts[prefix+s.Name]
		if !ok {
			return nil, nil, fmt.Errorf("%s has no tensor %s: the state does not match this model's config",
				path, prefix+s.Name)
		}
		if t.DType != "F32" || !slices.Equal(t.Shape, s.Shape) {
			return nil, nil, fmt.Errorf("%s: tensor %s is %s %s, the model needs F32 %s", path, prefix+s.Name, t.DType,
				shapeString(t.Shape), shapeString(s.Shape))
		}
		out[s.Name] = t.F32
	}
	return out, meta, nil
}

// sameModel checks that w has configuration c and heads h.
func (w *Weights) sameModel(c Config, h Heads) error {
	if w.Config != c || w.Heads != h {
		return errors.New("another configuration or heads than the engine's")
	}
	return w.check()
}
