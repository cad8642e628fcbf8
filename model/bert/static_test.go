package bert

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMaxPredictions(t *testing.T) {
	for _, c := range []struct {
		n    int
		rate float64
		want int
	}{{128, 0.15, 36}, {512, 0.15, 110}, {8, 0.15, 6}, {1, 0.01, 1}} { // ceil(n·p + 4·sqrt(n·p·(1−p)))
		if got := MaxPredictions(c.n, c.rate); got != c.want {
			t.Errorf("MaxPredictions(%d, %g) = %d, want %d", c.n, c.rate, got, c.want)
		}
	}
	if StaticPositions(36) != 40 || StaticPositions(40) != 40 || StaticPositions(0) != 8 {
		t.Errorf("StaticPositions: %d %d %d", StaticPositions(36), StaticPositions(40), StaticPositions(0))
	}
}

// TestMaskCap: a cap keeps a uniform, sorted subset of the chosen positions, and the
// corruption and targets follow the kept ones only.
func TestMaskCap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ids := make([]int32, 22)
	for i := range ids {
		ids[i] = int32(10 + i)
	}
	ids[0], ids[21] = 2, 3 // [CLS] ... [SEP]
	m := Masking{Rate: 1, MaskID: 4, VocabSize: 100, Special: func(id int32) bool { return id < 5 }, MaxPerRow: 3}
	seen := map[int32]int{}
	for k := 0; k < 2000; k++ {
		out, pos, tgt := m.Mask(r, ids)
		if len(pos) != 3 || !slices.IsSorted(pos) || pos[0] == pos[1] || pos[1] == pos[2] {
			t.Fatalf("positions %v: want 3 distinct, sorted", pos)
		}
		for j, p := range pos {
			if p == 0 || p == 21 || tgt[j] != ids[p] {
				t.Fatalf("position %d (target %d) is special or wrong", p, tgt[j])
			}
			seen[p]++
		}
		for i := range ids {
			if out[i] != ids[i] && !slices.Contains(pos, int32(i)) {
				t.Fatalf("token %d changed but not chosen", i)
			}
		}
	}
	// 20 eligible positions, 3 of them each time: each near 2000·3/20 = 300.
	for p := int32(1); p <= 20; p++ {
		if seen[p] < 220 || seen[p] > 380 {
			t.Errorf("position %d chosen %d times of 2000 (want ~300: uniform)", p, seen[p])
		}
	}
	b := MakeMLMBatch(r, m, []Encoded{{IDs: ids, Ages: make([]float32, len(ids))}}, 1, 64, 0)
	if b.P != 8 {
		t.Errorf("P = %d, want 8", b.P)
	}
}

// TestStaticShapes: an engine with static shapes pads every batch to one shape and computes
// the same as one without (logits, MLM training losses, PredictLogits).
func TestStaticShapes(t *testing.T) {
	c, err := Named("tiny", 60, 64)
	if err != nil {
		t.Fatal(err)
	}
	c.HiddenDropoutProb, c.AttentionProbsDropoutProb = 0, 0
	w, err := NewWeights(c, Heads{Classifier: true, MLM: true}, 5)
	if err != nil {
		t.Fatal(err)
	}
	be, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	m := Masking{Rate: 0.15, MaskID: 4, VocabSize: 60, Special: func(id int32) bool { return id < 5 },
		MaxPerRow: MaxPredictions(64, 0.15)}
	P := StaticPositions(m.MaxPerRow)
	r := rand.New(rand.NewPCG(1, 1))
	seqs := make([]Encoded, 9)
	for i := range seqs {
		n := 3 + r.IntN(25) // short: batches of 16 or 32 tokens when not static
		ids := make([]int32, n)
		for j := range ids {
			ids[j] = int32(5 + r.IntN(55))
		}
		ids[0] = 2
		seqs[i] = Encoded{IDs: ids, Ages: make([]float32, n)}
	}
	mk := func(task Task, static bool) *Engine {
		opts := []EngineOption{}
		if static {
			opts = append(opts, WithStaticShapes(P))
		}
		e, err := NewEngine(be, w.Clone(), task, DefaultOptim(), 1, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		return e
	}
	dyn, st := mk(TaskMLM, false), mk(TaskMLM, true)
	if dyn.Static() || !st.Static() {
		t.Fatal("Static()")
	}
	for step := 0; step < 3; step++ {
		b := MakeMLMBatch(rand.New(rand.NewPCG(uint64(step), 9)), m, seqs, 12, 64, 0)
		if b.L == 64 && b.P == P {
			t.Fatalf("step %d: the batch already has the static shape; the test needs a smaller one", step)
		}
		if f := st.fit(b, true); f.L != 64 || f.P != P || f.B != b.B {
			t.Fatalf("fit: %dx%d P %d, want %dx64 P %d", f.B, f.L, f.P, b.B, P)
		}
		rd, err := dyn.TrainStep(b, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := st.TrainStep(b, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(rd.Loss-rs.Loss) > 1e-5*math.Abs(rd.Loss) || math.Abs(rd.GradNorm-rs.GradNorm) > 1e-4*rd.GradNorm {
			t.Errorf("step %d: loss %v vs %v, grad norm %v vs %v", step, rd.Loss, rs.Loss, rd.GradNorm, rs.GradNorm)
		}
		md, err := dyn.MLMLogits(b)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := st.MLMLogits(b)
		if err != nil {
			t.Fatal(err)
		}
		if e, _ := relErr(ms, md); e > 1e-5 {
			t.Errorf("step %d: MLM logits differ by %.2e", step, e)
		}
	}
	cd, cs := mk(TaskClassify, false), mk(TaskClassify, true)
	ld, err := cd.PredictLogits(seqs, 4, 0) // 4 + 4 + 1 rows when not static, 3 × 4 when static
	if err != nil {
		t.Fatal(err)
	}
	ls, err := cs.PredictLogits(seqs, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := relErr(ls, ld); e > 1e-5 || len(ls) != len(seqs) {
		t.Errorf("PredictLogits: %d logits, relative error %.2e", len(ls), e)
	}
}

func TestPadToKeepsData(t *testing.T) {
	b := &Batch{B: 2, L: 3, IDs: []int32{1, 2, 3, 4, 5, 6}, Mask: []int32{1, 1, 0, 1, 1, 1},
		Ages: []float32{1, 2, 3, 4, 5, 6}, P: 1, Positions: []int32{1, 2}, Targets: []int32{7, 8},
		TargetWeights: []float32{1, 1}}
	if b.PadTo(2, 1) != b || b.PadTo(3, 1) != b {
		t.Fatal("PadTo to the same or smaller shapes should return the batch itself")
	}
	p := b.PadTo(5, 2)
	want := []int32{1, 2, 3, 0, 0, 4, 5, 6, 0, 0}
	if !slices.Equal(p.IDs, want) || !slices.Equal(p.Mask, []int32{1, 1, 0, 0, 0, 1, 1, 1, 0, 0}) ||
		!slices.Equal(p.Ages, []float32{1, 2, 3, 0, 0, 4, 5, 6, 0, 0}) {
		t.Errorf("padded: ids %v mask %v ages %v", p.IDs, p.Mask, p.Ages)
	}
	if !slices.Equal(p.Positions, []int32{1, 0, 2, 0}) || !slices.Equal(p.Targets, []int32{7, 0, 8, 0}) ||
		!slices.Equal(p.TargetWeights, []float32{1, 0, 1, 0}) {
		t.Errorf("padded positions %v targets %v weights %v", p.Positions, p.Targets, p.TargetWeights)
	}
	if b.L != 3 || len(b.IDs) != 6 {
		t.Error("PadTo changed its receiver")
	}
}

func TestTimeBucket(t *testing.T) {
	for _, c := range []struct {
		days float32
		want int32
	}{{-3, 0}, {0, 0}, {0.99, 0}, {1, 1}, {2.99, 1}, {3, 2}, {6.5, 2}, {7, 3}, {364, 8}, {365, 8}, {1e9, 15},
		{float32(math.NaN()), 0}} {
		if got := TimeBucket(c.days, 16); got != c.want {
			t.Errorf("TimeBucket(%v) = %d, want %d", c.days, got, c.want)
		}
	}
}

// TestTimeEmbeddingsMatter: with time embeddings, moving events in time changes the logits;
// without them it does not.
func TestTimeEmbeddingsMatter(t *testing.T) {
	be, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	for _, on := range []bool{false, true} {
		c, err := Named("tiny", 50, 16)
		if err != nil {
			t.Fatal(err)
		}
		c.TimeEmbeddings, c.TimeBuckets = on, DefaultTimeBuckets
		w, err := NewWeights(c, Heads{Classifier: true}, 2)
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewEngine(be, w, TaskClassify, DefaultOptim(), 1)
		if err != nil {
			t.Fatal(err)
		}
		seq := Encoded{IDs: []int32{2, 7, 8, 9, 3}, Ages: make([]float32, 5), Days: []float32{0, 400, 30, 2, 0}}
		recent := Encoded{IDs: seq.IDs, Ages: seq.Ages, Days: []float32{0, 1, 1, 1, 0}}
		got, err := e.PredictLogits([]Encoded{seq, recent}, 2, 0)
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
		if changed := got[0] != got[1]; changed != on {
			t.Errorf("time embeddings %v: logits %v (changed %v)", on, got, changed)
		}
	}
}

// TestEvalMLM: the MLM evaluation gives one loss and accuracy on a dynamic and a static-shape
// engine, the loss being the mean of -log softmax at the masked positions.
func TestEvalMLM(t *testing.T) {
	c, err := Named("tiny", 60, 64)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWeights(c, Heads{MLM: true}, 5)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMasking(0.15, 4, 60, func(id int32) bool { return id < 5 }, 64)
	r := rand.New(rand.NewPCG(2, 2))
	seqs := make([]Encoded, 9)
	for i := range seqs {
		ids := make([]int32, 3+r.IntN(25))
		for j := range ids {
			ids[j] = int32(5 + r.IntN(55))
		}
		seqs[i] = Encoded{IDs: ids, Ages: make([]float32, len(ids))}
	}
	dyn := newEngineOnCPU(t, w.Clone(), Device{Kind: "cpu"}, m.MaxPerRow)
	st := newEngineOnCPU(t, w.Clone(), Device{Kind: "gpu"}, m.MaxPerRow) // static shapes, on the CPU backend
	eb := MLMEvalBatches(rand.New(rand.NewPCG(7, 0)), m, seqs, 4, 64, 0)
	lossD, accD, err := dyn.EvalMLM(eb)
	if err != nil {
		t.Fatal(err)
	}
	lossS, accS, err := st.EvalMLM(eb)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(lossD-lossS) > 1e-5*lossD || accD != accS {
		t.Errorf("EvalMLM: loss %v vs %v, accuracy %v vs %v", lossD, lossS, accD, accS)
	}
	var sum float64
	var n int
	for _, b := range eb {
		logits, err := dyn.MLMLogits(b)
		if err != nil {
			t.Fatal(err)
		}
		for k, w := range b.TargetWeights {
			if w == 0 {
				continue
			}
			var z float64
			for _, x := range logits[k*60 : (k+1)*60] {
				z += math.Exp(float64(x))
			}
			sum += math.Log(z) - float64(logits[k*60+int(b.Targets[k])])
			n++
		}
	}
	if want := sum / float64(n); math.Abs(lossD-want) > 1e-9*want || n < len(seqs) {
		t.Errorf("EvalMLM loss %v, by definition %v (%d positions)", lossD, want, n)
	}
}

// newEngineOnCPU is an MLM engine with dev's options (static shapes for a GPU) on the CPU backend.
func newEngineOnCPU(t *testing.T, w *Weights, dev Device, maxMasked int) *Engine {
	t.Helper()
	be, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(be, w, TaskMLM, DefaultOptim(), 1,
		deviceOptions(dev.WithDType(""), StaticPositions(maxMasked))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if e.Static() != (dev.Kind == "gpu") {
		t.Fatalf("%s engine: Static() = %v", dev.Kind, e.Static())
	}
	return e
}
