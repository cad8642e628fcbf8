package bert

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/medseq/medseq/eval"
)

// toyConfig is a tiny model over a vocabulary of 50 tokens (0 pad, 1 [CLS], 2 [SEP]).
func toyConfig(t testing.TB, ages bool) Config {
	c, err := Named("tiny", 50, 32)
	if err != nil {
		t.Fatal(err)
	}
	c.AgeEmbeddings = ages
	return c
}

// toyBatch draws B sequences of length L: [CLS] codes [SEP] padding; label = token 7 present.
func toyBatch(r *rand.Rand, B, L int) *Batch {
	b := &Batch{B: B, L: L, IDs: make([]int32, B*L), Mask: make([]int32, B*L), Ages: make([]float32, B*L),
		Labels: make([]float32, B)}
	for i := 0; i < B; i++ {
		n := 3 + r.IntN(L-4)
		row := b.IDs[i*L : (i+1)*L]
		row[0] = 1
		pos := r.IntN(2) == 0
		for j := 1; j <= n; j++ {
			tok := int32(8 + r.IntN(42))
			row[j] = tok
			b.Ages[i*L+j] = float32(20 + r.IntN(60))
		}
		if pos {
			row[1+r.IntN(n)] = 7
			b.Labels[i] = 1
		}
		row[n+1] = 2
		for j := 0; j <= n+1; j++ {
			b.Mask[i*L+j] = 1
		}
	}
	return b
}

func newToyEngine(t testing.TB, c Config, h Heads, task Task) *Engine {
	be, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWeights(c, h, 1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(be, w, task, DefaultOptim(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEvaluationSeesNewWeights guards gomlx's frozen-evaluation trap: an evaluation after a
// training step must reflect the step.
func TestEvaluationSeesNewWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	e := newToyEngine(t, toyConfig(t, true), Heads{Classifier: true}, TaskClassify)
	b := toyBatch(r, 8, 16)
	before, err := e.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := e.Logits(b)
	for i := range before {
		if before[i] != again[i] {
			t.Fatalf("evaluation is not deterministic: %v vs %v", before[i], again[i])
		}
	}
	for step := 0; step < 2; step++ {
		if _, err := e.TrainStep(b, 1e-2); err != nil {
			t.Fatal(err)
		}
		after, err := e.Logits(b)
		if err != nil {
			t.Fatal(err)
		}
		same := 0
		for i := range before {
			if before[i] == after[i] {
				same++
			}
		}
		if same == len(before) {
			t.Fatalf("step %d: evaluation repeats the previous logits %v: weights were frozen into the graph",
				step+1, after)
		}
		before = after
	}
}

func TestLearnsToyTask(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for seconds")
	}
	r := rand.New(rand.NewPCG(3, 4))
	c := toyConfig(t, false)
	e := newToyEngine(t, c, Heads{Classifier: true}, TaskClassify)
	start := time.Now()
	steps := 0
	for ; steps < 300; steps++ { // a fixed number of steps: the result must not depend on machine load
		if _, err := e.TrainStep(toyBatch(r, 32, 16), 1e-3); err != nil {
			t.Fatal(err)
		}
	}
	el := time.Since(start)
	test := toyBatch(r, 256, 16)
	logits, err := e.Logits(test)
	if err != nil {
		t.Fatal(err)
	}
	y := make([]bool, len(logits))
	s := make([]float64, len(logits))
	for i := range logits {
		y[i], s[i] = test.Labels[i] == 1, float64(logits[i])
	}
	auc, err := eval.AUROC(y, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("toy task: %d steps in %v (%.1f steps/s, %.0f tokens/s), AUROC %.4f", steps, el,
		float64(steps)/el.Seconds(), float64(steps*32*16)/el.Seconds(), auc)
	if auc < 0.9 || math.IsNaN(auc) {
		t.Fatalf("AUROC %.3f after %d steps, want > 0.9", auc, steps)
	}
}

// TestDeviceOptionsStaticOnGPU: an engine for a GPU takes static shapes, one for the CPU does
// not (checked on the CPU backend, which runs either).
func TestDeviceOptionsStaticOnGPU(t *testing.T) {
	c := toyConfig(t, false)
	w, err := NewWeights(c, Heads{MLM: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	be, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"cpu", "gpu"} {
		t.Run(kind, func(t *testing.T) {
			dev := Device{Kind: kind}.WithDType("float32")
			e, err := NewEngine(be, w.Clone(), TaskMLM, DefaultOptim(), 1, deviceOptions(dev, 16)...)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if e.Static() != (kind == "gpu") || e.DType() != "float32" {
				t.Errorf("Static() = %v, DType() = %s", e.Static(), e.DType())
			}
		})
	}
}
