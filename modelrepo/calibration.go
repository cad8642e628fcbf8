package modelrepo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/medseq/medseq/data"
)

// Platt is a logistic recalibration sigmoid(A·s + B) of a score s (eval.FitPlatt fits it).
type Platt struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

// Apply returns the calibrated probability of s.
func (p *Platt) Apply(s float64) float64 { return sigmoid(p.A*s + p.B) }

// Isotonic is a non-decreasing piecewise-linear map fitted by pool adjacent violators, with
// scikit-learn's IsotonicRegression(increasing=True, out_of_bounds="clip") semantics: tied
// scores (within 1e-15) are first merged into one point with their weighted mean label;
// Apply interpolates linearly between the fitted points and clips outside them (eval.FitIsotonic
// fits it).
type Isotonic struct {
	X []float64 `json:"x"` // breakpoints, strictly increasing
	Y []float64 `json:"y"` // fitted values, non-decreasing
}

// Clip bounds the fitted values to [lo, hi], as scikit-learn's IsotonicRegression(y_min=lo,
// y_max=hi) does after the fit.
func (iso *Isotonic) Clip(lo, hi float64) {
	for i, y := range iso.Y {
		iso.Y[i] = min(max(y, lo), hi)
	}
}

// Apply returns the calibrated probability of s.
func (iso *Isotonic) Apply(s float64) float64 {
	x, y := iso.X, iso.Y
	if len(x) == 0 {
		return math.NaN()
	}
	if s <= x[0] {
		return y[0]
	}
	if s >= x[len(x)-1] {
		return y[len(y)-1]
	}
	j := sort.SearchFloat64s(x, s) // x[j-1] < s <= x[j]
	if x[j] == s {
		return y[j]
	}
	t := (s - x[j-1]) / (x[j] - x[j-1])
	return y[j-1] + t*(y[j]-y[j-1])
}

// Calibration methods.
const (
	CalibrationPlatt    = "platt"
	CalibrationIsotonic = "isotonic"
	CalibrationIdentity = "identity"
)

// FitCounts says what a calibration was fitted on.
type FitCounts struct {
	N         int `json:"n"`
	Positives int `json:"positives"`
	Negatives int `json:"negatives"`
	Subjects  int `json:"subjects"`
}

// Calibration is a fitted score recalibration, saved as calibration.json beside a model.
type Calibration struct {
	Method   string    `json:"method"`
	Platt    *Platt    `json:"platt,omitempty"`
	Isotonic *Isotonic `json:"isotonic,omitempty"`
	FittedOn FitCounts `json:"fitted_on"`
}

// Apply maps a raw score to a calibrated probability.
func (c *Calibration) Apply(s float64) float64 {
	switch {
	case c.Platt != nil:
		return c.Platt.Apply(s)
	case c.Isotonic != nil:
		return c.Isotonic.Apply(s)
	}
	return s
}

func (c *Calibration) check() error {
	switch c.Method {
	case CalibrationPlatt:
		if c.Platt == nil || math.IsNaN(c.Platt.A) || math.IsNaN(c.Platt.B) {
			return errors.New("platt calibration without finite parameters a and b")
		}
	case CalibrationIsotonic:
		iso := c.Isotonic
		if iso == nil || len(iso.X) == 0 || len(iso.X) != len(iso.Y) {
			return errors.New("isotonic calibration needs x and y of the same non-zero length")
		}
		for i := range iso.X {
			if i > 0 && (!(iso.X[i] > iso.X[i-1]) || iso.Y[i] < iso.Y[i-1]) {
				return fmt.Errorf("isotonic breakpoint %d: x must increase and y must not decrease", i+1)
			}
		}
	case CalibrationIdentity:
	default:
		return fmt.Errorf("unknown calibration method %q", c.Method)
	}
	return nil
}

// Write writes c atomically as dir/calibration.json.
func (c *Calibration) Write(dir string) error {
	path := CalibrationPath(dir)
	if err := c.check(); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return data.WriteFileAtomic(path, append(b, '\n'))
}

// ReadCalibration reads dir/calibration.json; the error wraps fs.ErrNotExist when the folder
// has none.
func ReadCalibration(dir string) (*Calibration, error) {
	path := CalibrationPath(dir)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Calibration
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, jsonError(err)) // never the content
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &c, nil
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}
