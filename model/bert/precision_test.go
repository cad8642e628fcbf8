package bert

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
)

// productCount is the DotGeneral nodes of a graph by operand dtypes ("BFloat16×BFloat16").
type productCount map[string]int

func (p productCount) total() int {
	n := 0
	for _, c := range p {
		n += c
	}
	return n
}

// buildTrainGraph builds (without compiling) an engine's training graph on B×L batches, and
// counts its matrix products by operand dtypes and its dtype conversions.
func buildTrainGraph(t *testing.T, e *Engine, B, L, P int) (productCount, int) {
	t.Helper()
	counts, converts, _ := trainGraphProducts(t, e, B, L, P)
	return counts, converts
}

// lhsContracting reads a DotGeneral node's lhs contracting axes from its description.
var lhsContracting = regexp.MustCompile(`lhsContractingAxes=\[([0-9 ]*)\]`)

// productFLOPs is 2 × output size × contracted size of a DotGeneral node.
func productFLOPs(t *testing.T, n *graph.Node) float64 {
	t.Helper()
	m := lhsContracting.FindStringSubmatch(n.String())
	if m == nil {
		t.Fatalf("no contracting axes in %s", n)
	}
	k := 1
	for _, a := range strings.Fields(m[1]) {
		axis, err := strconv.Atoi(a)
		if err != nil {
			t.Fatal(err)
		}
		k *= n.Inputs()[0].Shape().Dimensions[axis]
	}
	return 2 * float64(n.Shape().Size()) * float64(k)
}

// trainGraphProducts is buildTrainGraph with the FLOPs of all the products.
func trainGraphProducts(t *testing.T, e *Engine, B, L, P int) (productCount, int, float64) {
	t.Helper()
	g := graph.NewGraph(e.backend, "precision")
	var in []*graph.Node
	param := func(dt dtypes.DType, dims ...int) {
		in = append(in, graph.Parameter(g, fmt.Sprintf("p%d", len(in)), shapes.Make(dt, dims...)))
	}
	for range 3 { // params, m, v
		for _, s := range e.specs {
			param(dtypes.Float32, s.Shape...)
		}
	}
	for range 3 { // lr, bc1, bc2
		param(dtypes.Float32)
	}
	in = append(in, graph.Parameter(g, "rng", graph.RNGStateShape))
	if e.scaler != nil {
		param(dtypes.Float32)
	}
	param(dtypes.Int32, B, L) // ids
	param(dtypes.Int32, B, L) // mask
	if e.cfg.AgeEmbeddings {
		param(dtypes.Float32, B, L)
	}
	if e.task == TaskMLM {
		param(dtypes.Int32, B, P)
		param(dtypes.Int32, B, P)
		param(dtypes.Float32, B, P)
	} else {
		param(dtypes.Float32, B)
		param(dtypes.Float32, B)
	}
	e.trainGraph(in)
	counts, converts, flops := productCount{}, 0, 0.0
	for _, n := range g.Nodes() {
		switch n.Type() {
		case graph.NodeTypeDotGeneral:
			ops := n.Inputs()
			counts[ops[0].DType().String()+"×"+ops[1].DType().String()]++
			flops += productFLOPs(t, n)
		case graph.NodeTypeConvertDType:
			converts++
		}
	}
	return counts, converts, flops
}

// TestTrainFLOPs: TrainFLOPsPerToken equals the FLOPs of the products of the built training
// graph (MLM on static positions, as the GPU benchmark runs it), and PeakFLOPS knows the cards
// the benchmark reports MFU for.
func TestTrainFLOPs(t *testing.T) {
	for _, name := range []string{"tiny", "small"} {
		c, err := Named(name, 500, 48)
		if err != nil {
			t.Fatal(err)
		}
		w, err := NewWeights(c, Heads{MLM: true}, 1)
		if err != nil {
			t.Fatal(err)
		}
		e := newEngineFor(t, w, TaskMLM, "bfloat16")
		_, _, flops := trainGraphProducts(t, e, 3, 48, 16)
		e.Close()
		got, want := TrainFLOPsPerToken(c, 48, 16), flops/(3*48)
		t.Logf("%s: %.4g FLOPs per token (graph %.4g)", name, got, want)
		if math.Abs(got-want) > 1e-9*want {
			t.Errorf("%s: TrainFLOPsPerToken %v, the graph's products %v", name, got, want)
		}
	}
	for _, c := range []struct {
		gpu, dtype string
		ok         bool
	}{
		{"NVIDIA H200", "bfloat16", true}, {"NVIDIA H100 80GB HBM3", "float16", true},
		{"NVIDIA H100 PCIe", "tf32", true}, {"NVIDIA A100-SXM4-40GB", "float32", true},
		{"Tesla V100-SXM2-16GB", "float16", true}, {"Tesla V100-SXM2-16GB", "bfloat16", false},
		{"Tesla V100-SXM2-16GB", "tf32", false}, {"NVIDIA L4", "bfloat16", false},
	} {
		p, ok := PeakFLOPS(c.gpu, c.dtype)
		if ok != c.ok || ok && !(p > 1e13) {
			t.Errorf("PeakFLOPS(%q, %s) = %g, %v", c.gpu, c.dtype, p, ok)
		}
	}
	h, _ := PeakFLOPS("NVIDIA H200", "bfloat16")
	f, _ := PeakFLOPS("NVIDIA H200", "float32")
	if h < 10*f {
		t.Errorf("H200: bfloat16 peak %g not well above float32's %g", h, f)
	}
}

// TestMixedPrecisionProducts builds the training graph of each dtype and checks the dtype of
// every matrix product, forward and backward: in bfloat16 and float16 all of them take
// operands in that dtype but the classifier's one-output product and its two gradients
// (float32 on purpose, graph.go's classify); in float32 all are float32. Each forward product
// has two backward ones (the gradients with respect to both operands), so a graph of F
// forward products has 3F: 8 per layer (six Linear layers, the attention scores and context),
// and the heads' (MLM: transform and decoder; classify: pooler and classifier).
func TestMixedPrecisionProducts(t *testing.T) {
	for _, tc := range []struct {
		dtype string
		task  Task
	}{
		{"float32", TaskMLM}, {"bfloat16", TaskMLM}, {"float16", TaskMLM},
		{"bfloat16", TaskClassify}, {"float16", TaskClassify},
	} {
		name := tc.dtype + "/mlm"
		if tc.task == TaskClassify {
			name = tc.dtype + "/classify"
		}
		t.Run(name, func(t *testing.T) {
			c, err := Named("small", 300, 32)
			if err != nil {
				t.Fatal(err)
			}
			h := Heads{Classifier: tc.task == TaskClassify, MLM: tc.task == TaskMLM}
			w, err := NewWeights(c, h, 1)
			if err != nil {
				t.Fatal(err)
			}
			e := newEngineFor(t, w, tc.task, tc.dtype)
			defer e.Close()
			counts, converts := buildTrainGraph(t, e, 4, 32, 8)
			t.Logf("%s: products %v, %d dtype conversions", name, counts, converts)
			forward := 8*c.NumHiddenLayers + 2
			if got := counts.total(); got != 3*forward {
				t.Errorf("%d matrix products, want %d (%d forward, each with two gradients)", got, 3*forward, forward)
			}
			f32 := counts["Float32×Float32"]
			wantF32 := 0
			switch {
			case tc.dtype == "float32":
				wantF32 = 3 * forward
			case tc.task == TaskClassify:
				wantF32 = 3 // the classifier's product and its two gradients
			}
			if f32 != wantF32 {
				t.Errorf("%d float32 products, want %d", f32, wantF32)
			}
			if tc.dtype != "float32" {
				low := e.dtype.String()
				if got := counts[low+"×"+low]; got != 3*forward-wantF32 {
					t.Errorf("%d %s products, want %d: %v", got, low, 3*forward-wantF32, counts)
				}
			}
		})
	}
}

// TestFloat16MatchesFloat32 trains the toy classifier in float16 with loss scaling on the CPU
// backend: the logits stay within the half-precision tolerance of the float32 engine's on the
// same weights, the loss falls, and no step is skipped at the default scale on this task.
func TestFloat16MatchesFloat32(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 100 steps in float16 on the CPU")
	}
	c := toyConfig(t, true)
	w0, err := NewWeights(c, Heads{Classifier: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	test := toyBatch(r, 64, 16)
	fp := newEngineFor(t, w0, TaskClassify, "float16")
	defer fp.Close()
	f32 := newEngineFor(t, w0, TaskClassify, "float32")
	defer f32.Close()
	want, err := f32.Logits(test)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fp.Logits(test)
	if err != nil {
		t.Fatal(err)
	}
	if l2, mx := relErr(got, want); l2 > bf16Tol || mx > bf16Tol || l2 == 0 {
		t.Fatalf("float16 logits differ from float32 by %.3g (L2), %.3g (max), want in (0, %g)", l2, mx, bf16Tol)
	}
	var first, last float64
	for step := 0; step < 100; step++ {
		res, err := fp.TrainStep(toyBatch(r, 32, 16), 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		if res.Skipped {
			t.Fatalf("step %d skipped at scale %g (loss %v, gradient norm %v)",
				step, fp.Scaler().Scale, res.Loss, res.GradNorm)
		}
		if step < 10 {
			first += res.Loss / 10
		}
		if step >= 90 {
			last += res.Loss / 10
		}
	}
	t.Logf("float16 training loss %.4f -> %.4f, scale %g", first, last, fp.Scaler().Scale)
	if !(last < first*0.8) {
		t.Fatalf("float16 training loss %.4f -> %.4f: not learning", first, last)
	}
}

// TestLossScalerOverflow forces overflow: a scale so large that the scaled gradients are not
// finite in float16. The step is skipped (weights, AdamW's moments and step count unchanged),
// the scale halves at each such step until the gradients fit, and then training proceeds and
// the scale grows again after GrowthInterval clean steps.
func TestLossScalerOverflow(t *testing.T) {
	c := toyConfig(t, false)
	w0, err := NewWeights(c, Heads{Classifier: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngineFor(t, w0, TaskClassify, "float16")
	defer e.Close()
	s := e.Scaler()
	if s.Scale != 65536 || s.Growth != 2 || s.Backoff != 0.5 || s.GrowthInterval != 2000 {
		t.Fatalf("scaler defaults %+v, want GradScaler's", *s)
	}
	const huge = 1 << 40
	s.Scale, s.GrowthInterval = huge, 3 // float16 overflows at 65504
	r := rand.New(rand.NewPCG(7, 8))
	before, err := e.Weights()
	if err != nil {
		t.Fatal(err)
	}
	adam0, err := e.copyAdam()
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.TrainStep(toyBatch(r, 16, 16), 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Skipped || s.Scale != huge/2 || e.Steps() != 1 || e.SkippedSteps() != 1 {
		t.Fatalf("overflowing step: skipped %v, scale %g, steps %d (%d skipped); want skipped, 2^39, 1 (1)",
			res.Skipped, s.Scale, e.Steps(), e.SkippedSteps())
	}
	if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
		t.Errorf("the unscaled loss %v should be finite (only the scaled gradients overflow)", res.Loss)
	}
	after, err := e.Weights()
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(flat(before), flat(after)); d != 0 {
		t.Fatalf("a skipped step changed the weights by up to %g", d)
	}
	adam1, err := e.copyAdam()
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range e.specs {
		if maxAbsDiff(adam0.M[sp.Name], adam1.M[sp.Name]) != 0 || maxAbsDiff(adam0.V[sp.Name], adam1.V[sp.Name]) != 0 {
			t.Fatalf("a skipped step changed AdamW's moments of %s", sp.Name)
		}
	}
	// Back off until the step fits, then train; the scale follows GradScaler's rules (mirrored
	// here), growing after every 3 clean steps in a row and halving at each skipped step.
	skipped, clean, run, want := 1, 0, 0, float64(huge/2)
	for i := 0; i < 150 && clean < 8; i++ {
		res, err := e.TrainStep(toyBatch(r, 16, 16), 1e-3)
		if err != nil {
			t.Fatalf("step %d: %v", e.Steps(), err)
		}
		if res.Skipped {
			skipped, run, want = skipped+1, 0, want/2
			continue
		}
		clean, run = clean+1, run+1
		if run == 3 {
			run, want = 0, want*2
		}
	}
	t.Logf("%d skipped steps, scale now %g after %d clean steps", skipped, s.Scale, clean)
	if clean < 8 || skipped < 10 || e.SkippedSteps() != skipped || e.Steps() != skipped+clean {
		t.Fatalf("%d clean and %d skipped steps (engine: %d steps, %d skipped)",
			clean, skipped, e.Steps(), e.SkippedSteps())
	}
	if s.Scale != want {
		t.Errorf("scale %g, want %g", s.Scale, want)
	}
	trained, err := e.Weights()
	if err != nil {
		t.Fatal(err)
	}
	if maxAbsDiff(flat(before), flat(trained)) == 0 {
		t.Error("the clean steps changed nothing")
	}
}

// TestLossScalerGivesUp: a loss that is never finite ends in ErrLossNotFinite after
// MaxSkipped skipped steps instead of skipping forever.
func TestLossScalerGivesUp(t *testing.T) {
	s := NewLossScaler()
	s.MaxSkipped = 3
	for i := 0; i < 3; i++ {
		if err := s.update(false); err != nil {
			t.Fatalf("skip %d: %v", i+1, err)
		}
	}
	if err := s.update(false); err == nil {
		t.Fatal("no error after MaxSkipped+1 skipped steps")
	}
	s = NewLossScaler()
	s.GrowthInterval = 2
	for _, finite := range []bool{true, false, true, true} {
		if err := s.update(finite); err != nil {
			t.Fatal(err)
		}
	}
	if s.Scale != 65536 || s.CleanSteps() != 0 { // halved once, doubled once (a skip resets the count)
		t.Errorf("scale %g, clean %d; want 65536, 0", s.Scale, s.CleanSteps())
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// flat concatenates weights in spec order.
func flat(w *Weights) []float32 {
	var out []float32
	for _, s := range w.Specs {
		out = append(out, w.Data[s.Name]...)
	}
	return out
}

// TestFusedAttentionMatchesPlain builds the fused attention path (attention.Core) on the CPU
// backend, where gomlx has no fused kernel and Core builds its own decomposed graph with the
// padding given as lengths, and checks it against the plain path: logits and MLM logits on
// batches with padding agree (dropout off, so both compute the same function), in float32
// within 1e-5 and in bfloat16 within its tolerance, and a few training steps give the same
// losses. It also records whether the graph holds gomlx's fused op (on CUDA it does).
func TestFusedAttentionMatchesPlain(t *testing.T) {
	c, err := Named("tiny", 200, 32)
	if err != nil {
		t.Fatal(err)
	}
	c.HiddenDropoutProb, c.AttentionProbsDropoutProb = 0, 0
	w, err := NewWeights(c, Heads{Classifier: true, MLM: true}, 3)
	if err != nil {
		t.Fatal(err)
	}
	be, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 9))
	probe := randomBatch(r, c, 8, 32)
	batches := []*Batch{randomBatch(r, c, 8, 32), randomBatch(r, c, 8, 32)}
	for _, tc := range []struct {
		dtype string
		tol   float64
	}{{"float32", 1e-5}, {"bfloat16", bf16Tol}} {
		t.Run(tc.dtype, func(t *testing.T) {
			engines := map[string]*Engine{}
			for _, mode := range []string{AttentionPlain, AttentionFused} {
				e, err := NewEngine(be, w.Clone(), TaskClassify, DefaultOptim(), 1,
					WithDType(tc.dtype), WithAttention(mode))
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				if e.Attention() != mode {
					t.Fatalf("engine attention %q, want %q", e.Attention(), mode)
				}
				engines[mode] = e
			}
			plain, fused := engines[AttentionPlain], engines[AttentionFused]
			compare := func(what string, got, want []float32) {
				t.Helper()
				l2, mx := relErr(got, want)
				t.Logf("%s: fused vs plain relative L2 %.2e, max %.2e", what, l2, mx)
				if l2 > tc.tol || mx > tc.tol {
					t.Errorf("%s: fused attention differs from plain by %.3g (L2), %.3g (max), want <= %g",
						what, l2, mx, tc.tol)
				}
			}
			lp, err := plain.Logits(probe)
			if err != nil {
				t.Fatal(err)
			}
			lf, err := fused.Logits(probe)
			if err != nil {
				t.Fatal(err)
			}
			compare("logits", lf, lp)
			mp, err := plain.MLMLogits(probe)
			if err != nil {
				t.Fatal(err)
			}
			mf, err := fused.MLMLogits(probe)
			if err != nil {
				t.Fatal(err)
			}
			compare("MLM logits", mf, mp)
			for i, b := range batches {
				rp, err := plain.TrainStep(b, 1e-3)
				if err != nil {
					t.Fatal(err)
				}
				rf, err := fused.TrainStep(b, 1e-3)
				if err != nil {
					t.Fatal(err)
				}
				if d := math.Abs(rf.Loss-rp.Loss) / rp.Loss; !(d <= tc.tol) {
					t.Errorf("step %d: loss fused %v, plain %v", i+1, rf.Loss, rp.Loss)
				}
			}
			g := graph.NewGraph(be, "fused")
			in := make([]*graph.Node, 0, len(fused.specs)+2)
			for i, s := range fused.specs {
				in = append(in, graph.Parameter(g, fmt.Sprintf("w%d", i), shapes.Make(dtypes.Float32, s.Shape...)))
			}
			in = append(in, graph.Parameter(g, "ids", shapes.Make(dtypes.Int32, 2, 32)),
				graph.Parameter(g, "mask", shapes.Make(dtypes.Int32, 2, 32)))
			fused.evalGraph(in)
			n := 0
			for _, node := range g.Nodes() {
				if node.Type() == graph.NodeTypeFusedScaledDotProductAttention {
					n++
				}
			}
			t.Logf("%s backend: %d fused attention ops in the graph (0: attention.Core's decomposed fallback)",
				be.Name(), n)
		})
	}
}

// randomBatch is B sequences of random lengths over the vocabulary (ids 5.. are codes),
// padded to L, with ages and labels; MLM positions mask about 15% of each row.
func randomBatch(r *rand.Rand, c Config, B, L int) *Batch {
	b := &Batch{B: B, L: L, IDs: make([]int32, B*L), Mask: make([]int32, B*L), Ages: make([]float32, B*L),
		Labels: make([]float32, B)}
	seqs := make([]Encoded, B)
	for i := 0; i < B; i++ {
		n := 2 + r.IntN(L-1)
		ids := make([]int32, n)
		ages := make([]float32, n)
		ids[0], ids[n-1] = 2, 3
		for j := 1; j < n-1; j++ {
			ids[j] = int32(5 + r.IntN(c.VocabSize-5))
			ages[j] = float32(20 + r.IntN(70))
		}
		seqs[i] = Encoded{IDs: ids, Ages: ages}
		copy(b.IDs[i*L:], ids)
		copy(b.Ages[i*L:], ages)
		for j := 0; j < n; j++ {
			b.Mask[i*L+j] = 1
		}
		b.Labels[i] = float32(r.IntN(2))
	}
	m := MakeMLMBatch(r, Masking{Rate: 0.15, MaskID: 4, VocabSize: c.VocabSize,
		Special: func(id int32) bool { return id < 5 }}, seqs, B, L, 0)
	b.P, b.Positions, b.Targets, b.TargetWeights = m.P, m.Positions, m.Targets, m.TargetWeights
	return b
}

// TestLossScalerState: the loss scale, its count of clean steps and the skipped steps travel
// with the engine's state (SaveState, RestoreState), so a resumed float16 run scales as an
// unbroken one.
func TestLossScalerState(t *testing.T) {
	w, err := NewWeights(toyConfig(t, false), Heads{Classifier: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngineFor(t, w, TaskClassify, "float16")
	defer e.Close()
	e.Scaler().Scale = 1 << 40 // the first steps overflow and are skipped
	r := rand.New(rand.NewPCG(1, 1))
	for e.SkippedSteps() == 0 || e.Scaler().CleanSteps() < 2 {
		if _, err := e.TrainStep(toyBatch(r, 16, 16), 1e-3); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if _, err := e.SaveState(dir, nil); err != nil {
		t.Fatal(err)
	}
	back := newEngineFor(t, w, TaskClassify, "float16")
	defer back.Close()
	if _, err := back.RestoreState(dir); err != nil {
		t.Fatal(err)
	}
	if back.Scaler().Scale != e.Scaler().Scale || back.Scaler().CleanSteps() != e.Scaler().CleanSteps() ||
		back.SkippedSteps() != e.SkippedSteps() || back.Steps() != e.Steps() {
		t.Fatalf("restored scale %g (clean %d), steps %d (%d skipped); saved %g (%d), %d (%d)", back.Scaler().Scale,
			back.Scaler().CleanSteps(), back.Steps(), back.SkippedSteps(), e.Scaler().Scale, e.Scaler().CleanSteps(),
			e.Steps(), e.SkippedSteps())
	}
	// The next step is the same on both (dropout drawn from the same seed, as the loop does).
	b := toyBatch(r, 16, 16)
	for _, x := range []*Engine{e, back} {
		if err := x.SetDropoutSeed(5); err != nil {
			t.Fatal(err)
		}
	}
	r1, err := e.TrainStep(b, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := back.TrainStep(b, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	if r1 != r2 {
		t.Errorf("step after restore: %+v, unbroken %+v", r2, r1)
	}
}

// TestNonFiniteStepChangesNothing: without a loss scaler, a step whose loss is not finite is an
// error and leaves the weights, AdamW's moments and the step count as they were (the state is
// donated to the step, so it is the graph that keeps them), and training can go on from there.
func TestNonFiniteStepChangesNothing(t *testing.T) {
	w, err := NewWeights(toyConfig(t, false), Heads{Classifier: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngineFor(t, w, TaskClassify, "float32")
	defer e.Close()
	r := rand.New(rand.NewPCG(2, 3))
	if _, err := e.TrainStep(toyBatch(r, 16, 16), 1e-3); err != nil {
		t.Fatal(err)
	}
	before, err := e.Weights()
	if err != nil {
		t.Fatal(err)
	}
	adam0, err := e.copyAdam()
	if err != nil {
		t.Fatal(err)
	}
	b := toyBatch(r, 16, 16)
	b.Labels[0] = float32(math.Inf(1)) // an infinite label: the loss is not finite
	if _, err := e.TrainStep(b, 1e-3); err == nil || !strings.Contains(err.Error(), "training loss is") {
		t.Fatalf("non-finite loss: %v", err)
	}
	after, err := e.Weights()
	if err != nil {
		t.Fatal(err)
	}
	adam1, err := e.copyAdam()
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(flat(before), flat(after)); d != 0 || e.Steps() != 1 || adam1.Steps != adam0.Steps {
		t.Fatalf("after a non-finite step: weights moved by %g, steps %d", d, e.Steps())
	}
	for _, sp := range e.specs {
		if maxAbsDiff(adam0.M[sp.Name], adam1.M[sp.Name]) != 0 || maxAbsDiff(adam0.V[sp.Name], adam1.V[sp.Name]) != 0 {
			t.Fatalf("a non-finite step changed AdamW's moments of %s", sp.Name)
		}
	}
	if _, err := e.TrainStep(toyBatch(r, 16, 16), 1e-3); err != nil || e.Steps() != 2 {
		t.Fatalf("training after a non-finite step: %v (steps %d)", err, e.Steps())
	}
}
