package bert

import (
	"encoding/json"
	"github.com/medseq/medseq/internal/testpy"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// perturbed makes initialised weights less trivial: every LayerNorm and bias moves away from
// 1 and 0, and weights grow so that the outputs depend on all of them.
func perturbed(w *Weights, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 9))
	for _, s := range w.Specs {
		v := w.Data[s.Name]
		for i := range v {
			v[i] = v[i]*5 + float32(r.NormFloat64()*0.1)
		}
	}
}

func rows[T any](flat []T, B, L int) [][]T {
	out := make([][]T, B)
	for i := range out {
		out[i] = flat[i*L : (i+1)*L]
	}
	return out
}

func TestMatchesPyTorchReference(t *testing.T) {
	python := testpy.Require(t, "python3-torch", "torch")
	for _, tc := range []struct {
		ages, time bool
		pooling    string
	}{{false, false, ""}, {true, false, PoolingCLS}, {true, true, ""}, {false, false, PoolingMean},
		{true, true, PoolingMean}} {
		ages := tc.ages
		c := toyConfig(t, ages)
		c.NumHiddenLayers, c.Pooling = 2, tc.pooling
		if tc.time {
			c.TimeEmbeddings, c.TimeBuckets = true, 6 // days beyond 31 share the last bucket
		}
		w, err := NewWeights(c, Heads{Classifier: true, MLM: true}, 5)
		if err != nil {
			t.Fatal(err)
		}
		perturbed(w, 6)
		dir := t.TempDir()
		if err := Save(dir, w); err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(7, 8))
		b := toyBatch(r, 6, 20)
		b.Days = make([]float32, len(b.IDs))
		for i := range b.Days { // 0 to ~200 days, exact powers of two minus one included
			b.Days[i] = float32(r.IntN(200)) + []float32{0, 0.5, 0.999}[r.IntN(3)]
		}
		b.Days[1], b.Days[2], b.Days[3] = 1, 3, 2.9999
		b.P = 3
		for i := 0; i < b.B; i++ {
			for j := 0; j < b.P; j++ {
				b.Positions = append(b.Positions, int32(r.IntN(b.L)))
			}
		}
		be, _ := Backend("cpu")
		e, err := NewEngine(be, w, TaskClassify, DefaultOptim(), 1)
		if err != nil {
			t.Fatal(err)
		}
		logits, err := e.Logits(b)
		if err != nil {
			t.Fatal(err)
		}
		mlm, err := e.MLMLogits(b)
		if err != nil {
			t.Fatal(err)
		}
		in := map[string]any{"ids": rows(b.IDs, b.B, b.L), "mask": rows(b.Mask, b.B, b.L),
			"ages": rows(b.Ages, b.B, b.L), "days": rows(b.Days, b.B, b.L), "positions": rows(b.Positions, b.B, b.P)}
		buf, _ := json.Marshal(in)
		inPath, outPath := filepath.Join(dir, "in.json"), filepath.Join(dir, "out.json")
		if err := os.WriteFile(inPath, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(python, filepath.Join("testdata", "reference.py"), dir, inPath, outPath)
		// The reference computes in float64: the exact answer both float32 implementations
		// approximate (float32 torch and ours each drift about 1e-4 on 20-sized MLM logits).
		cmd.Env = append(os.Environ(), "REF_FLOAT64=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("reference.py: %v\n%s", err, out)
		}
		var ref struct {
			Logits    []float64     `json:"logits"`
			MLMLogits [][][]float64 `json:"mlm_logits"`
			HFLogits  []float64     `json:"hf_logits"`
		}
		buf, err = os.ReadFile(outPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(buf, &ref); err != nil {
			t.Fatal(err)
		}
		if len(ref.Logits) != b.B || len(ref.MLMLogits) != b.B {
			t.Fatalf("reference returned %d logits and %d MLM rows", len(ref.Logits), len(ref.MLMLogits))
		}
		maxDiff, spread := 0.0, 0.0
		for i, x := range ref.Logits {
			maxDiff = math.Max(maxDiff, math.Abs(x-float64(logits[i])))
			spread = math.Max(spread, math.Abs(x-ref.Logits[0]))
		}
		if spread < 1e-3 {
			t.Fatalf("reference logits barely vary (%v): the test would prove little", ref.Logits)
		}
		// MLM logits reach tens: compare them relative to max(1, |x|).
		mlmDiff, mlmMax := 0.0, 0.0
		V := c.VocabSize
		for i := range ref.MLMLogits {
			for j := range ref.MLMLogits[i] {
				for k, x := range ref.MLMLogits[i][j] {
					mlmDiff = math.Max(mlmDiff, math.Abs(x-float64(mlm[(i*b.P+j)*V+k]))/math.Max(1, math.Abs(x)))
					mlmMax = math.Max(mlmMax, math.Abs(x))
				}
			}
		}
		for i, x := range ref.HFLogits {
			maxDiff = math.Max(maxDiff, math.Abs(x-float64(logits[i])))
		}
		t.Logf("ages=%v time=%v pooling=%q: classifier max |ours-torch| %.3g (logits %v), "+
			"MLM max relative %.3g (|logit| up to %.1f), transformers checked: %v",
			ages, tc.time, tc.pooling, maxDiff, ref.Logits, mlmDiff, mlmMax, ref.HFLogits != nil)
		if maxDiff > 1e-4 || mlmDiff > 1e-4 {
			t.Fatalf("ours and PyTorch differ: classifier %.3g, MLM %.3g (limit 1e-4)", maxDiff, mlmDiff)
		}
	}
}
