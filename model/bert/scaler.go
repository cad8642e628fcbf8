package bert

import (
	"errors"
	"fmt"
	"strconv"
)

// LossScaler is dynamic loss scaling for float16 training, as PyTorch's GradScaler does it:
// the loss is multiplied by Scale before the backward pass (so that small gradients do not
// underflow float16) and the gradients divided by it in float32; a step whose gradients are not
// finite is skipped (no weight or moment changes) and the scale multiplied by Backoff; after
// GrowthInterval finite steps in a row the scale is multiplied by Growth. The defaults are
// GradScaler's: 2^16, 2, 0.5 and 2000.
type LossScaler struct {
	Scale          float64
	Growth         float64
	Backoff        float64
	GrowthInterval int
	// MaxSkipped is how many steps in a row may be skipped before TrainStep gives up (the loss
	// itself is then not finite, or the model has diverged): 40 halvings take 2^16 to 2^-24.
	MaxSkipped int

	clean   int // finite steps since the scale last changed
	skipped int // skipped steps in a row
}

// NewLossScaler is GradScaler's defaults.
func NewLossScaler() *LossScaler {
	return &LossScaler{Scale: 1 << 16, Growth: 2, Backoff: 0.5, GrowthInterval: 2000, MaxSkipped: 40}
}

// ErrLossNotFinite is the loss scaler's error when MaxSkipped steps in a row were not finite.
var ErrLossNotFinite = errors.New("the loss or gradients were not finite")

// update records a step: finite or not (skipped).
func (s *LossScaler) update(finite bool) error {
	if finite {
		s.skipped = 0
		s.clean++
		if s.clean >= s.GrowthInterval {
			s.Scale *= s.Growth
			s.clean = 0
		}
		return nil
	}
	s.Scale *= s.Backoff
	s.clean = 0
	s.skipped++
	if s.skipped > s.MaxSkipped {
		return fmt.Errorf("%w in %d steps in a row (loss scale now %g): "+
			"lower the learning rate or use bfloat16/float32", ErrLossNotFinite, s.skipped, s.Scale)
	}
	return nil
}

// CleanSteps is the number of finite steps since the scale last changed.
func (s *LossScaler) CleanSteps() int { return s.clean }

// Metadata keys of the loss scaler's state in the optimizer state file (state.go).
const (
	metaLossScale = "loss_scale"
	metaLossClean = "loss_scale_clean_steps"
	metaSkipped   = "skipped_steps"
)

// saveMeta adds the scaler's state to a state file's metadata.
func (s *LossScaler) saveMeta(meta map[string]string) {
	meta[metaLossScale] = strconv.FormatFloat(s.Scale, 'g', -1, 64)
	meta[metaLossClean] = strconv.Itoa(s.clean)
}

// restoreMeta reads the scaler's state back; a state saved without a scaler (another dtype)
// leaves the defaults.
func (s *LossScaler) restoreMeta(path string, meta map[string]string) error {
	v, ok := meta[metaLossScale]
	if !ok {
		return nil
	}
	scale, err := strconv.ParseFloat(v, 64)
	if err != nil || !(scale > 0) {
		return fmt.Errorf("%s: loss scale %q in the metadata is not a positive number", path, v)
	}
	clean, err := strconv.Atoi(meta[metaLossClean])
	if err != nil || clean < 0 {
		return fmt.Errorf("%s: loss scale clean steps %q in the metadata is not a count", path, meta[metaLossClean])
	}
	s.Scale, s.clean, s.skipped = scale, clean, 0
	return nil
}
