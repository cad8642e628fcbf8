package xgb

import (
	"fmt"
	"math"
)

// Dim is one searched parameter: values in [Min, Max], drawn uniformly, or uniformly in
// log space with Log; Int rounds to whole numbers (max_depth).
type Dim struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	Log bool    `json:"log,omitempty"`
	Int bool    `json:"int,omitempty"`
}

// Space is what a search draws: one Dim per parameter. The parameters it does not name
// (gamma, scale_pos_weight, rounds, early stopping, threads, seed) come from the base
// Params.
type Space struct {
	Eta             Dim `json:"eta"`
	MaxDepth        Dim `json:"max_depth"`
	MinChildWeight  Dim `json:"min_child_weight"`
	Subsample       Dim `json:"subsample"`
	ColsampleByTree Dim `json:"colsample_bytree"`
	Lambda          Dim `json:"lambda"`
	Alpha           Dim `json:"alpha"`
}

// DefaultSpace is MEDS-Tab's XGBoost sweep (MEDS_tabular_automl configs/model_launcher/
// xgboost.yaml: eta, lambda and alpha log-uniform in [0.001, 1], subsample in [0.5, 1],
// min_child_weight in [0.01, 100], max_depth 2..16), adapted to a one-machine baseline:
//   - eta log-uniform in [0.005, 0.5]: below 0.005 a few hundred rounds cannot fit, above
//     0.5 one tree overshoots;
//   - max_depth 2..10: deeper trees only overfit a cohort of thousands of labels, and cost
//     time per round;
//   - min_child_weight log-uniform in [0.01, 100] (MEDS-Tab draws it uniformly, which puts
//     nine draws in ten above 10);
//   - colsample_bytree in [0.2, 1], which MEDS-Tab leaves at 1: with thousands of sparse
//     count columns, sampling them is the strongest regulariser;
//   - lambda log-uniform in [0.001, 10] (XGBoost's default, 1, inside rather than at the
//     edge), alpha log-uniform in [0.001, 1].
//
// MEDS-Tab's rounds (100..1000) and early-stopping patience (1..10) are not searched: every
// trial runs up to the base rounds and stops on its tuning AUROC with the base patience.
func DefaultSpace() Space {
	return Space{
		Eta:             Dim{Min: 0.005, Max: 0.5, Log: true},
		MaxDepth:        Dim{Min: 2, Max: 10, Int: true},
		MinChildWeight:  Dim{Min: 0.01, Max: 100, Log: true},
		Subsample:       Dim{Min: 0.5, Max: 1},
		ColsampleByTree: Dim{Min: 0.2, Max: 1},
		Lambda:          Dim{Min: 0.001, Max: 10, Log: true},
		Alpha:           Dim{Min: 0.001, Max: 1, Log: true},
	}
}

// dim is a Space's dimension with its name and where its value goes in Params.
type dim struct {
	name string
	Dim
	set func(*Params, float64)
	get func(Params) float64
}

// dims lists the space's dimensions in a fixed order (the order the sampler draws them).
func (s Space) dims() []dim {
	return []dim{
		{"eta", s.Eta, func(p *Params, v float64) { p.Eta = v }, func(p Params) float64 { return p.Eta }},
		{"max_depth", s.MaxDepth, func(p *Params, v float64) { p.MaxDepth = int(v) },
			func(p Params) float64 { return float64(p.MaxDepth) }},
		{"min_child_weight", s.MinChildWeight, func(p *Params, v float64) { p.MinChildWeight = v },
			func(p Params) float64 { return p.MinChildWeight }},
		{"subsample", s.Subsample, func(p *Params, v float64) { p.Subsample = v },
			func(p Params) float64 { return p.Subsample }},
		{"colsample_bytree", s.ColsampleByTree, func(p *Params, v float64) { p.ColsampleByTree = v },
			func(p Params) float64 { return p.ColsampleByTree }},
		{"lambda", s.Lambda, func(p *Params, v float64) { p.Lambda = v }, func(p Params) float64 { return p.Lambda }},
		{"alpha", s.Alpha, func(p *Params, v float64) { p.Alpha = v }, func(p Params) float64 { return p.Alpha }},
	}
}

// Validate checks every dimension (finite bounds, Min <= Max, Log only above zero, Int only
// on max_depth and with whole bounds) and that both corners of the space are valid Params.
func (s Space) Validate() error {
	lo, hi := DefaultParams(), DefaultParams()
	for _, d := range s.dims() {
		if err := d.check(); err != nil {
			return err
		}
		d.set(&lo, d.Min)
		d.set(&hi, d.Max)
	}
	if err := lo.Validate(); err != nil {
		return fmt.Errorf("xgb: search space's lower corner: %w", err)
	}
	if err := hi.Validate(); err != nil {
		return fmt.Errorf("xgb: search space's upper corner: %w", err)
	}
	return nil
}

func (d dim) check() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !finite(d.Min) || !finite(d.Max):
		return fmt.Errorf("xgb: search space: %s: bounds [%v, %v] must be finite", d.name, d.Min, d.Max)
	case d.Min > d.Max:
		return fmt.Errorf("xgb: search space: %s: min %v is above max %v", d.name, d.Min, d.Max)
	case d.Log && d.Min <= 0:
		return fmt.Errorf("xgb: search space: %s: a log scale needs min > 0, got %v", d.name, d.Min)
	case d.Int != (d.name == "max_depth"):
		return fmt.Errorf("xgb: search space: %s: int is %v, want %v", d.name, d.Int, d.name == "max_depth")
	case d.Int && (d.Min != math.Trunc(d.Min) || d.Max != math.Trunc(d.Max)):
		return fmt.Errorf("xgb: search space: %s: bounds [%v, %v] must be whole numbers", d.name, d.Min, d.Max)
	}
	return nil
}

// The sampler works on a unit cube: u in [0, 1] per dimension, mapped linearly to [Min, Max]
// (in log space with Log; for Int, onto Max-Min+1 equal slots, one per whole number).

// value maps u in [0, 1] to the dimension's value.
func (d dim) value(u float64) float64 {
	switch {
	case u <= 0:
		return d.Min
	case u >= 1 && !d.Int:
		return d.Max
	case d.Int:
		n := d.Max - d.Min + 1
		return d.Min + math.Min(math.Floor(math.Min(u, 1)*n), n-1)
	case d.Log: // clamped: exp(log(x)) may differ from x in the last bit
		return math.Min(d.Max, math.Max(d.Min, math.Exp(math.Log(d.Min)+u*(math.Log(d.Max)-math.Log(d.Min)))))
	}
	return math.Min(d.Max, d.Min+u*(d.Max-d.Min))
}

// unit maps a value back to the middle of its place in [0, 1] (the inverse of value, up to
// rounding; the middle of its slot for Int).
func (d dim) unit(v float64) float64 {
	if d.Min == d.Max {
		return 0.5
	}
	switch {
	case d.Int:
		n := d.Max - d.Min + 1
		return (math.Round(v) - d.Min + 0.5) / n
	case d.Log:
		return (math.Log(v) - math.Log(d.Min)) / (math.Log(d.Max) - math.Log(d.Min))
	}
	return (v - d.Min) / (d.Max - d.Min)
}

// params returns base with the dimensions set from a point of the unit cube.
func (s Space) params(base Params, u []float64) Params {
	p := base
	for i, d := range s.dims() {
		d.set(&p, d.value(u[i]))
	}
	return p
}
