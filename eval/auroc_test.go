package eval

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// bruteAUROC counts pairs directly.
func bruteAUROC(y []bool, s []float64) float64 {
	var num, den float64
	for i := range y {
		for j := range y {
			if y[i] && !y[j] {
				den++
				switch {
				case s[i] > s[j]:
					num++
				case s[i] == s[j]:
					num += 0.5
				}
			}
		}
	}
	return num / den
}

func TestAUROC(t *testing.T) {
	for _, tc := range []struct {
		name string
		y    []bool
		s    []float64
		want float64
	}{
		{"perfect", []bool{false, false, true, true}, []float64{0.1, 0.2, 0.8, 0.9}, 1},
		{"reversed", []bool{true, true, false, false}, []float64{0.1, 0.2, 0.8, 0.9}, 0},
		{"all tied", []bool{true, false, true, false}, []float64{0.5, 0.5, 0.5, 0.5}, 0.5},
		{"sklearn doc example", []bool{false, false, true, true}, []float64{0.1, 0.4, 0.35, 0.8}, 0.75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AUROC(tc.y, tc.s)
			if err != nil || math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("AUROC = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	t.Run("matches pair counting with ties", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		y := make([]bool, 500)
		s := make([]float64, 500)
		for i := range y {
			y[i] = rng.Float64() < 0.3
			s[i] = float64(rng.IntN(20)) // many ties
			if y[i] {
				s[i] += 3
			}
		}
		got, err := AUROC(y, s)
		if want := bruteAUROC(y, s); err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("AUROC = %v, %v; pair count %v", got, err, want)
		}
	})
	t.Run("one class", func(t *testing.T) {
		if _, err := AUROC([]bool{true, true}, []float64{1, 2}); !errors.Is(err, ErrOneClass) {
			t.Errorf("err %v", err)
		}
	})
}
