package bert

import (
	"fmt"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// OptimState is the optimizer's state beside the weights: AdamW's first and second moments
// by weight name and the number of steps taken (which sets the bias correction).
type OptimState struct {
	Steps int
	M, V  map[string][]float32
}

// OptimState copies the optimizer state to the host.
func (e *Engine) OptimState() (*OptimState, error) {
	s := &OptimState{Steps: e.steps, M: make(map[string][]float32, len(e.specs)), V: make(map[string][]float32, len(e.specs))}
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

// SetOptimState replaces the optimizer state (moments and step count). Every weight needs
// both moments with its size.
func (e *Engine) SetOptimState(s *OptimState) error {
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
			return fmt.Errorf("bert optimizer state: %s moments have %d and %d values, shape %v needs %d", sp.Name, len(m), len(v), sp.Shape, sp.Size())
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
