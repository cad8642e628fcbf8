//go:build cgo && !noxgboost

package xgb

import (
	"context"
	"testing"
)

// TestTrainDeterministic: the same data, parameters and seed give the same model, with row and
// column sampling on and several threads.
func TestTrainDeterministic(t *testing.T) {
	x, y := synth(3, 3000, 200, -1)
	tx, ty := synth(4, 500, 200, -1)
	p := DefaultParams()
	p.Rounds, p.EarlyStopping, p.NThread, p.Seed = 40, 0, 2, 7
	var first []float32
	for run := 0; run < 3; run++ {
		b, _, err := Train(context.Background(), p, x, y, tx, ty, nil)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := b.Predict(tx)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = pr
			continue
		}
		for i := range pr {
			if pr[i] != first[i] {
				t.Fatalf("run %d: prediction %d is %v, first run %v", run, i, pr[i], first[i])
			}
		}
	}
}
