package bert

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/medseq/medseq/eval"
)

// relErr is ‖got − want‖ / ‖want‖ and the largest difference over the largest |want|; a NaN
// or Inf in got, or a length mismatch, is +Inf.
func relErr(got, want []float32) (l2, maxRel float64) {
	if len(got) != len(want) {
		return math.Inf(1), math.Inf(1)
	}
	var num, den, maxDiff, maxWant float64
	for i := range want {
		if g := float64(got[i]); math.IsNaN(g) || math.IsInf(g, 0) { // never passes a tolerance
			return math.Inf(1), math.Inf(1)
		}
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
		maxDiff = max(maxDiff, math.Abs(d))
		maxWant = max(maxWant, math.Abs(float64(want[i])))
	}
	return math.Sqrt(num / den), maxDiff / maxWant
}

func newEngineFor(t testing.TB, w *Weights, task Task, dtype string) *Engine {
	t.Helper()
	be, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(be, w, task, DefaultOptim(), 1, WithDType(dtype))
	if err != nil {
		t.Fatal(err)
	}
	if e.DType() != dtype {
		t.Fatalf("engine dtype %q, want %q", e.DType(), dtype)
	}
	return e
}

// bf16Tol is the relative tolerance of bfloat16 logits against float32 ones on the same
// weights (bfloat16 keeps 8 significant bits: about 4e-3 relative per rounding).
const bf16Tol = 5e-2

func TestWithDTypeRejects(t *testing.T) {
	be, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWeights(toyConfig(t, false), Heads{Classifier: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"float64", "auto", "int8"} { // auto is a device's choice (ResolveDType)
		if _, err := NewEngine(be, w, TaskClassify, DefaultOptim(), 1, WithDType(d)); err == nil {
			t.Errorf("dtype %s accepted", d)
		}
	}
}

// TestBFloat16MatchesFloat32 trains a tiny classifier in bfloat16 (mixed precision) on the toy
// task: the loss falls, the weights and optimizer state stay float32 (and so does the saved
// safetensors file), and the logits (Logits and PredictLogits) stay within bf16Tol of the
// float32 engine's on the same weights, before and after training.
func TestBFloat16MatchesFloat32(t *testing.T) {
	c := toyConfig(t, true)
	w0, err := NewWeights(c, Heads{Classifier: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	test := toyBatch(r, 64, 16)
	compare := func(stage string, w *Weights, bf *Engine) {
		t.Helper()
		f32 := newEngineFor(t, w, TaskClassify, "float32")
		defer f32.Close()
		want, err := f32.Logits(test)
		if err != nil {
			t.Fatal(err)
		}
		got, err := bf.Logits(test)
		if err != nil {
			t.Fatal(err)
		}
		l2, mx := relErr(got, want)
		t.Logf("%s: bfloat16 vs float32 logits: relative L2 error %.2e, max error / max |logit| %.2e", stage, l2, mx)
		if l2 > bf16Tol || mx > bf16Tol || math.IsNaN(l2) {
			t.Fatalf("%s: bfloat16 logits differ from float32 by %.3g (L2) and %.3g (max), want < %g",
				stage, l2, mx, bf16Tol)
		}
		if l2 == 0 {
			t.Fatalf("%s: bfloat16 logits equal float32's exactly: the engine did not compute in bfloat16", stage)
		}
		// PredictLogits (batched, reordered) agrees with the float32 engine too.
		seqs := unpadded(test)
		pw, err := f32.PredictLogits(seqs, 16, 0)
		if err != nil {
			t.Fatal(err)
		}
		pg, err := bf.PredictLogits(seqs, 16, 0)
		if err != nil {
			t.Fatal(err)
		}
		l2, mx = relErr(pg, pw)
		t.Logf("%s: PredictLogits: relative L2 error %.2e, max %.2e", stage, l2, mx)
		if l2 > bf16Tol || mx > bf16Tol || math.IsNaN(l2) {
			t.Fatalf("%s: bfloat16 PredictLogits differ from float32 by %.3g (L2) and %.3g (max)", stage, l2, mx)
		}
	}

	bf := newEngineFor(t, w0, TaskClassify, "bfloat16")
	defer bf.Close()
	compare("initial weights", w0, bf)

	const steps = 120
	var first, last float64
	for step := 0; step < steps; step++ {
		res, err := bf.TrainStep(toyBatch(r, 32, 16), 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		if step < 10 {
			first += res.Loss / 10
		}
		if step >= steps-10 {
			last += res.Loss / 10
		}
	}
	t.Logf("bfloat16 training loss %.4f (first 10 steps) -> %.4f (last 10)", first, last)
	if !(last < first*0.8) {
		t.Fatalf("bfloat16 training loss %.4f -> %.4f: not learning", first, last)
	}

	w, err := bf.Weights() // CopyFlatData[float32] fails unless the master weights are float32
	if err != nil {
		t.Fatalf("master weights: %v", err)
	}
	if _, err := bf.copyAdam(); err != nil {
		t.Fatalf("optimizer state: %v", err)
	}
	compare("after training", w, bf)

	logits, err := bf.Logits(test)
	if err != nil {
		t.Fatal(err)
	}
	y := make([]bool, len(logits))
	s := make([]float64, len(logits))
	for i := range logits {
		y[i], s[i] = test.Labels[i] == 1, float64(logits[i])
	}
	auc, _ := eval.AUROC(y, s)
	t.Logf("bfloat16 toy AUROC after %d steps: %.4f", steps, auc)

	dir := t.TempDir()
	if err := Save(dir, w); err != nil {
		t.Fatal(err)
	}
	ts, _, err := ReadSafetensors(filepath.Join(dir, SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range ts {
		if x.DType != "F32" {
			t.Errorf("saved %s as %s, want F32", name, x.DType)
		}
	}
}

// TestBFloat16MLM: the MLM head in bfloat16 matches float32 on the same weights and its
// training loss falls.
func TestBFloat16MLM(t *testing.T) {
	c := toyConfig(t, false)
	w, err := NewWeights(c, Heads{MLM: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	m := Masking{Rate: 0.15, MaskID: 4, VocabSize: c.VocabSize, Special: func(id int32) bool { return id < 5 }}
	batch := func() *Batch {
		tb := toyBatch(r, 32, 16)
		seqs := make([]Encoded, tb.B)
		for i := range seqs {
			row := tb.IDs[i*16 : (i+1)*16]
			n := 0
			for n < 16 && tb.Mask[i*16+n] == 1 {
				n++
			}
			for j := 2; j < n-1; j++ {
				row[j] = 8 + (row[j-1]-8+1)%42
			}
			seqs[i] = Encoded{IDs: row[:n], Ages: tb.Ages[i*16 : i*16+n]}
		}
		return MakeMLMBatch(r, m, seqs, 32, 16, 0)
	}
	f32 := newEngineFor(t, w, TaskMLM, "float32")
	defer f32.Close()
	bf := newEngineFor(t, w, TaskMLM, "bfloat16")
	defer bf.Close()
	b := batch()
	want, err := f32.MLMLogits(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bf.MLMLogits(b)
	if err != nil {
		t.Fatal(err)
	}
	l2, mx := relErr(got, want)
	t.Logf("MLM logits: relative L2 error %.2e, max %.2e", l2, mx)
	if l2 > bf16Tol || mx > bf16Tol || l2 == 0 {
		t.Fatalf("bfloat16 MLM logits differ from float32 by %.3g (L2), %.3g (max)", l2, mx)
	}
	var first, last float64
	for step := 0; step < 100; step++ {
		res, err := bf.TrainStep(batch(), 2e-3)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = res.Loss
		}
		last = res.Loss
	}
	t.Logf("bfloat16 MLM loss %.3f -> %.3f", first, last)
	if last > first*0.8 {
		t.Fatalf("bfloat16 MLM loss %.3f -> %.3f: not learning", first, last)
	}
}

// TestPredictLogitsRows: PredictLogits runs a part of n sequences in the smallest of
// batchSize, batchSize/2, ... that holds it; a sequence's logit must not depend on how many
// rows ran beside it.
func TestPredictLogitsRows(t *testing.T) {
	w, err := NewWeights(toyConfig(t, false), Heads{Classifier: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngineFor(t, w, TaskClassify, "float32")
	defer e.Close()
	test := toyBatch(rand.New(rand.NewPCG(5, 6)), 13, 16)
	seqs := unpadded(test)
	all, err := e.PredictLogits(seqs, 64, 0) // 13 sequences: 16 rows
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		one, err := e.PredictLogits([]Encoded{s}, 64, 0) // 1 row
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(float64(one[0] - all[i])); d > 1e-5 {
			t.Fatalf("sequence %d: alone %v, among 13 %v", i, one[0], all[i])
		}
	}
}

// unpadded returns a batch's rows without their padding, as PredictLogits takes them.
func unpadded(b *Batch) []Encoded {
	seqs := make([]Encoded, b.B)
	for i := range seqs {
		n := 0
		for n < b.L && b.Mask[i*b.L+n] == 1 {
			n++
		}
		seqs[i] = Encoded{IDs: b.IDs[i*b.L : i*b.L+n], Ages: b.Ages[i*b.L : i*b.L+n]}
	}
	return seqs
}
