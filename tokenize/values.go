package tokenize

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Numeric values (a lab result, a blood pressure, a BMI) reach the BERT as value tokens: with
// value bins on, an event with a numeric value is encoded as its code's tokens followed by
// VALUE/Qk, the k-th of N quantile bins of that code's values on the training split (so
// "HbA1c in its top tenth" is one token after HbA1c's code). Codes with too few values on the
// training split get no value token. The tokens are ordinary vocabulary words: the HuggingFace
// tokenizer.json encodes a text "LOINC/4548-4 VALUE/Q10" to the same ids.

// ValuePrefix begins every value token: VALUE/Q1 ... VALUE/QN.
const ValuePrefix = "VALUE/Q"

// ValueToken is the token of bin k (1-based).
func ValueToken(k int) string { return ValuePrefix + strconv.Itoa(k) }

// MinValuesPerBin is how many training-split values a code needs per bin to get value tokens.
const MinValuesPerBin = 10

// ValueBins are the per-code quantile cut points (medseq_tokenizer.json's value_bins).
type ValueBins struct {
	N     int                  `json:"bins"`
	Edges map[string][]float32 `json:"edges"` // code -> increasing cut points (at most N-1; ties merged)

	ids []int32 // token ids of VALUE/Q1..QN
}

// Bin is the 0-based bin of x: how many cut points are at or below it.
func Bin(edges []float32, x float32) int {
	return sort.Search(len(edges), func(i int) bool { return edges[i] > x })
}

// quantileEdges returns the n-quantile cut points of vals (sorted in place), ties merged.
func quantileEdges(vals []float32, n int) []float32 {
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	var out []float32
	for k := 1; k < n; k++ {
		e := vals[k*len(vals)/n]
		if len(out) == 0 || e > out[len(out)-1] {
			out = append(out, e)
		}
	}
	// A cut point equal to the smallest value leaves the first bin empty: drop it.
	if len(out) > 0 && out[0] <= vals[0] {
		out = out[1:]
	}
	return out
}

// buildValueBins computes the cut points of every vocabulary code with enough values.
func buildValueBins(vals map[string][]float32, n int) *ValueBins {
	vb := &ValueBins{N: n, Edges: map[string][]float32{}}
	for code, vs := range vals {
		if len(vs) < n*MinValuesPerBin {
			continue
		}
		if e := quantileEdges(vs, n); len(e) > 0 {
			vb.Edges[code] = e
		}
	}
	return vb
}

// bind resolves the value tokens' ids in v and checks the bins.
func (vb *ValueBins) bind(v *Vocab) error {
	if vb.N < 2 {
		return fmt.Errorf("%w: value_bins: %d bins (need at least 2)", ErrBadVocab, vb.N)
	}
	vb.ids = make([]int32, vb.N)
	for k := 1; k <= vb.N; k++ {
		id, ok := v.ID(ValueToken(k))
		if !ok {
			return fmt.Errorf("%w: value_bins: the vocabulary has no %s", ErrBadVocab, ValueToken(k))
		}
		vb.ids[k-1] = id
	}
	for code, e := range vb.Edges {
		if len(e) == 0 || len(e) >= vb.N {
			return fmt.Errorf("%w: value_bins: code %q has %d cut points (want 1 to %d)", ErrBadVocab, code, len(e), vb.N-1)
		}
		for i, x := range e {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || i > 0 && x <= e[i-1] {
				return fmt.Errorf("%w: value_bins: code %q: cut points must be finite and increasing, got %v", ErrBadVocab, code, e)
			}
		}
	}
	return nil
}

// token is the value token of x for a code's cut points.
func (vb *ValueBins) token(edges []float32, x float32) int32 { return vb.ids[Bin(edges, x)] }

// IsValueToken says whether id is a value token of t.
func (t *Tokenizer) IsValueToken(id int32) bool {
	return t.Values != nil && len(t.Values.ids) > 0 && id >= t.Values.ids[0] && id <= t.Values.ids[len(t.Values.ids)-1]
}

// SetValueBins attaches value bins (read from medseq_tokenizer.json) to t.
func (t *Tokenizer) SetValueBins(vb *ValueBins) error {
	if vb == nil {
		t.Values = nil
		return nil
	}
	if err := vb.bind(t.Vocab); err != nil {
		return err
	}
	// bind checked each token exists; ValueToken ids must be consecutive for IsValueToken.
	for k := 1; k < len(vb.ids); k++ {
		if vb.ids[k] != vb.ids[k-1]+1 {
			return fmt.Errorf("%w: value_bins: %s..%s are not consecutive ids", ErrBadVocab, ValueToken(1), ValueToken(vb.N))
		}
	}
	t.Values = vb
	return nil
}

// checkValueNamespace refuses codes that would be mistaken for value tokens.
func checkValueNamespace(code string) error {
	if strings.HasPrefix(code, ValuePrefix) {
		return fmt.Errorf("code %q is in the %s namespace of medseq's value tokens: rename it, or build without --value-bins", code, ValuePrefix)
	}
	return nil
}
