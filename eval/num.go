package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Num is a float64 for JSON reports: an undefined value (NaN, e.g. a ratio whose numerator
// and denominator are both 0) is written as null, and an infinite one (e.g. LR+ when the
// specificity is 1) as the string "+Inf" or "-Inf". Finite values are plain JSON numbers.
// Unmarshalling accepts all three forms, null giving NaN.
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	switch {
	case math.IsNaN(f):
		return []byte("null"), nil
	case math.IsInf(f, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *Num) UnmarshalJSON(b []byte) error {
	switch s := string(b); s {
	case "null":
		*n = Num(math.NaN())
		return nil
	case `"+Inf"`, `"Inf"`:
		*n = Num(math.Inf(1))
		return nil
	case `"-Inf"`:
		*n = Num(math.Inf(-1))
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("number, null, \"+Inf\" or \"-Inf\": %w", err)
	}
	*n = Num(f)
	return nil
}

// Float returns n as a float64.
func (n Num) Float() float64 { return float64(n) }

// Estimate is a point estimate with its percentile bootstrap interval (null bounds when no
// bootstrap ran or too few resamples defined the metric).
type Estimate struct {
	Value Num `json:"value"`
	Lo    Num `json:"ci_low"`
	Hi    Num `json:"ci_high"`
}

func point(v float64) Estimate { return Estimate{Num(v), Num(math.NaN()), Num(math.NaN())} }
