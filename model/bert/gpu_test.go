//go:build xla && cgo

package bert

// Checks of the GPU path: gomlx's XLA backend on a CUDA PJRT plugin, against the pure-Go CPU
// backend (the reference) and PyTorch on the same GPU. They need an NVIDIA GPU and a plugin, so
// they run on a lent GPU machine (scripts/gpu-check.sh builds `go test -c -tags xla` here and
// runs the binary there); elsewhere they skip, unless MEDSEQ_GPU=1 says a GPU must be there.
// MEDSEQ_PJRT_PLUGIN names the plugin (default: FindPJRTPlugin's search).

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/gomlx/compute"

	"github.com/medseq/medseq/internal/testpy"
)

// gpuBackend selects the GPU (skipping, or failing under MEDSEQ_GPU=1, when there is none)
// and creates its XLA backend.
// MEDSEQ_GPU_DRY_RUN=1 puts the CPU backend in the GPU's place, to check the checks
// themselves on a machine without a GPU.
func gpuBackend(t testing.TB, dtype string) (compute.Backend, Device) {
	t.Helper()
	if os.Getenv("MEDSEQ_GPU_DRY_RUN") == "1" {
		be, err := Backend("cpu")
		if err != nil {
			t.Fatal(err)
		}
		return be, Device{Kind: "cpu", Reason: "MEDSEQ_GPU_DRY_RUN=1: the CPU in the GPU's place"}
	}
	d, err := SelectDevice("gpu", os.Getenv("MEDSEQ_PJRT_PLUGIN"))
	if err != nil {
		if os.Getenv("MEDSEQ_GPU") == "1" {
			t.Fatalf("MEDSEQ_GPU=1 but: %v", err)
		}
		t.Skipf("no GPU: %v", err)
	}
	if err := ValidateDType(dtype, d); err != nil {
		t.Fatal(err)
	}
	d.DType = dtype
	be, err := BackendFor(d)
	if err != nil {
		t.Fatalf("%s: %v", d.Reason, err)
	}
	return be, d
}

// l2Err is relErr's ‖got − want‖ / ‖want‖ (mixed_test.go; +Inf for NaN, Inf or a length
// mismatch).
func l2Err(got, want []float32) float64 {
	e, _ := relErr(got, want)
	return e
}

// meanAbs is the mean absolute value.
func meanAbs(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += math.Abs(float64(x))
	}
	return s / float64(max(len(v), 1))
}

// TestGPUMatchesCPU runs the same weights and batches through the CPU backend (float32, the
// reference) and the GPU (float32, then bfloat16 mixed precision): classifier logits, three
// AdamW steps (losses, gradient norms, weights after) and MLM logits. Dropout is off so both
// compute the same function; inputs are fresh random draws each run (the seed is logged).
// Tolerances: float32 on the GPU is exact float32 (only the order of sums and the special
// functions differ); tf32 rounds matrix operands to 10 mantissa bits (about 1e-3 on fresh
// logits, more on MLM logits, which cancel); bfloat16 operands land between 1e-3 and 1e-2.
// bfloat16 is also compared with the CPU's own bfloat16 path, and each GPU answer is computed
// twice (it must not move).
func TestGPUMatchesCPU(t *testing.T) {
	_, d := gpuBackend(t, "float32")
	t.Logf("GPU: %s", d.Reason)
	cpu, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("MEDSEQ_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (MEDSEQ_SEED=%d repeats this run)", seed, seed)
	cases := []struct {
		name, config, dtype, attention string
		ages                           bool
		B, L                           int
		tol, tolTrained                float64
	}{
		{"tiny/float32", "tiny", "float32", "plain", false, 16, 64, 1e-4, 2e-3},
		{"small/float32/ages", "small", "float32", "plain", true, 32, 128, 1e-4, 2e-3},
		// First run on an H200 with TF32: 9.5e-4 on fresh logits, 1.5e-2 on MLM logits.
		{"small/tf32", "small", "tf32", "plain", false, 32, 128, 3e-3, 5e-2},
		// The CPU's own bfloat16 path, against float32, shows 3e-3 to 1.2e-2 on fresh logits and 7e-2 on
		// MLM logits after three steps (small random logits with cancellation): the GPU's
		// tolerances are those of the mixed precision itself.
		{"small/bfloat16", "small", "bfloat16", "plain", false, 32, 128, 3e-2, 0.15},
		// Fused attention (cuDNN flash attention) against the CPU's plain float32 path: the
		// scores agree within the dtype's tolerance. float16 keeps 3 more bits than bfloat16.
		{"small/bfloat16/fused", "small", "bfloat16", "fused", false, 32, 128, 3e-2, 0.15},
		{"small/float16", "small", "float16", "plain", false, 32, 128, 1e-2, 0.1},
		{"small/float16/fused", "small", "float16", "fused", false, 32, 128, 1e-2, 0.1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Named(tc.config, 1000, tc.L)
			if err != nil {
				t.Fatal(err)
			}
			c.AgeEmbeddings = tc.ages
			c.HiddenDropoutProb, c.AttentionProbsDropoutProb = 0, 0
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			w, err := NewWeights(c, Heads{Classifier: true, MLM: true}, seed+uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			batches := []*Batch{randomBatch(r, c, tc.B, tc.L), randomBatch(r, c, tc.B, tc.L),
				randomBatch(r, c, tc.B, tc.L)}
			probe := randomBatch(r, c, tc.B, tc.L)

			gpu, _ := gpuBackend(t, tc.dtype)
			engines := map[string]*Engine{}
			sides := []struct {
				name  string
				be    compute.Backend
				dtype string
			}{{"cpu", cpu, "float32"}, {"gpu", gpu, tc.dtype}}
			if tc.dtype == "bfloat16" || tc.dtype == "float16" {
				sides = append(sides, struct {
					name  string
					be    compute.Backend
					dtype string
				}{"cpu-half", cpu, tc.dtype})
			}
			for _, side := range sides {
				attn := AttentionPlain
				if side.name == "gpu" {
					attn = tc.attention
				}
				e, err := NewEngine(side.be, w.Clone(), TaskClassify, DefaultOptim(), 1,
					WithDType(side.dtype), WithAttention(attn))
				if err != nil {
					t.Fatalf("%s engine: %v", side.name, err)
				}
				defer e.Close()
				engines[side.name] = e
			}
			logits := func(name string, b *Batch) []float32 {
				out, err := engines[name].Logits(b)
				if err != nil {
					t.Fatalf("%s logits: %v", name, err)
				}
				return out
			}
			g0 := logits("gpu", probe)
			if e := l2Err(logits("gpu", probe), g0); e != 0 {
				t.Errorf("the GPU's logits moved between two runs on the same input: %.2e", e)
			}
			if e := l2Err(g0, logits("cpu", probe)); e > tc.tol {
				t.Errorf("initial logits: relative error %.2e > %.0e", e, tc.tol)
			} else {
				t.Logf("initial logits: relative error %.2e", e)
			}
			if engines["cpu-half"] != nil {
				cb := logits("cpu-half", probe)
				t.Logf("initial logits, %s: GPU vs CPU %.2e; CPU %s vs CPU float32 %.2e; |logit| mean %.3g",
					tc.dtype, l2Err(g0, cb), tc.dtype, l2Err(cb, logits("cpu", probe)), meanAbs(g0))
			}
			for s, b := range batches {
				rc, err := engines["cpu"].TrainStep(b, 1e-3)
				if err != nil {
					t.Fatalf("cpu step %d: %v", s+1, err)
				}
				rg, err := engines["gpu"].TrainStep(b, 1e-3)
				if err != nil {
					t.Fatalf("gpu step %d: %v", s+1, err)
				}
				if rg.Skipped {
					t.Errorf("gpu step %d skipped by the loss scaler (scale %g)", s+1, engines["gpu"].Scaler().Scale)
				}
				dl, dg := math.Abs(rg.Loss-rc.Loss)/math.Abs(rc.Loss), math.Abs(rg.GradNorm-rc.GradNorm)/rc.GradNorm
				t.Logf("step %d: loss cpu %.6f gpu %.6f (%.1e), grad norm cpu %.5f gpu %.5f (%.1e)",
					s+1, rc.Loss, rg.Loss, dl, rc.GradNorm, rg.GradNorm, dg)
				if !(dl <= tc.tol) || !(dg <= tc.tolTrained) {
					t.Errorf("step %d: loss differs by %.1e (tolerance %.0e), "+
						"gradient norm by %.1e (tolerance %.0e)", s+1, dl, tc.tol, dg, tc.tolTrained)
				}
			}
			wc, err := engines["cpu"].Weights()
			if err != nil {
				t.Fatal(err)
			}
			wg, err := engines["gpu"].Weights()
			if err != nil {
				t.Fatal(err)
			}
			before := flat(w)
			fc, fg := flat(wc), flat(wg)
			dc, dgv := make([]float32, len(fc)), make([]float32, len(fc))
			for j := range fc {
				dc[j], dgv[j] = fc[j]-before[j], fg[j]-before[j]
			}
			// Adam's first steps move each weight by about lr·sign(gradient): weights whose
			// gradient is near zero may move either way, so the updates agree only in the large.
			if e := l2Err(dgv, dc); e > 0.2 {
				t.Errorf("weight updates after 3 steps: relative error %.2e > 0.2", e)
			} else {
				t.Logf("weight updates after 3 steps: relative error %.2e", e)
			}
			if e := l2Err(logits("gpu", probe), logits("cpu", probe)); e > tc.tolTrained {
				t.Errorf("logits after 3 steps: relative error %.2e > %.0e", e, tc.tolTrained)
			} else {
				t.Logf("logits after 3 steps: relative error %.2e", e)
			}
			mc, err := engines["cpu"].MLMLogits(probe)
			if err != nil {
				t.Fatal(err)
			}
			mg, err := engines["gpu"].MLMLogits(probe)
			if err != nil {
				t.Fatal(err)
			}
			if e := l2Err(mg, mc); e > tc.tolTrained {
				t.Errorf("MLM logits: relative error %.2e > %.0e", e, tc.tolTrained)
			} else {
				t.Logf("MLM logits (%d values): relative error %.2e", len(mc), e)
			}
		})
	}
}

// TestGPUPredictLogitsChunks checks serving's entry point on the GPU: PredictLogits over
// batches of 1, 5 and 70 sequences (full chunks and a remainder) equals the CPU's.
func TestGPUPredictLogitsChunks(t *testing.T) {
	gpu, _ := gpuBackend(t, "float32")
	cpu, err := Backend("cpu")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Named("tiny", 500, 128)
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	w, err := NewWeights(c, Heads{Classifier: true}, seed)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for _, n := range []int{1, 5, 70} {
		seqs := make([]Encoded, n)
		b := randomBatch(r, c, n, 128)
		for i := range seqs {
			k := 0
			for k < 128 && b.Mask[i*128+k] == 1 {
				k++
			}
			seqs[i] = Encoded{IDs: b.IDs[i*128 : i*128+k], Ages: b.Ages[i*128 : i*128+k]}
		}
		var out [2][]float32
		for j, be := range []compute.Backend{cpu, gpu} {
			e, err := NewEngine(be, w.Clone(), TaskClassify, DefaultOptim(), 1)
			if err != nil {
				t.Fatal(err)
			}
			out[j], err = e.PredictLogits(seqs, 128, 0)
			e.Close()
			if err != nil {
				t.Fatalf("%d sequences: %v", n, err)
			}
		}
		if e := l2Err(out[1], out[0]); e > 1e-4 {
			t.Errorf("%d sequences: relative error %.2e", n, e)
		} else {
			t.Logf("%d sequences: relative error %.2e", n, e)
		}
	}
}

// gpuBenchCases are BenchmarkTrainStepGPUVsTorch's: the CPU benchmark's shapes (tiny and
// small, static shapes), and BERT-base at 64 × 128 and 256 × 128 tokens in each precision, with
// plain and fused attention.
var gpuBenchCases = []struct {
	config, dtype, attention string
	B, L                     int
}{
	{"tiny", "float32", "plain", 32, 64},
	{"small", "float32", "plain", 32, 64},
	{"small", "bfloat16", "fused", 32, 64},
	{"base", "float32", "plain", 64, 128},
	{"base", "tf32", "plain", 64, 128},
	{"base", "bfloat16", "plain", 64, 128},
	{"base", "bfloat16", "fused", 64, 128},
	{"base", "float16", "fused", 64, 128},
	{"base", "bfloat16", "fused", 256, 128},
	{"base", "float16", "fused", 256, 128},
}

// BenchmarkTrainStepGPUVsTorch times the MLM training step (as BenchmarkTrainStepVsTorch does
// on the CPU) on the GPU: ours through XLA, then PyTorch (testdata/torch_bench.py --device
// cuda, $MEDSEQ_PYTHON) on the same GPU, in the same run, for gpuBenchCases (sub-benchmarks
// config/BxL/dtype/attention). PyTorch runs as a PyTorch user would: autocast for bfloat16 and
// float16 (with GradScaler), F.scaled_dot_product_attention, and the attention dropout ours
// has (0.1 plain, none fused); its float32 is exact unless tf32 is asked for, as ours is. Each
// half times at least MEDSEQ_BENCH_SECONDS (default 5) after warm-up. Both report tokens/s,
// steps/s, MFU (TrainFLOPsPerToken at the expected 15% masked positions, over PeakFLOPS of the
// card and dtype) and peak GPU memory (ours: NVML's memory in use on the device after the timed
// steps, which XLA's allocator keeps at its peak; PyTorch: max_memory_reserved, and
// max_memory_allocated as peak-alloc-MB). Ours synchronises every step (it reads the loss
// back); PyTorch's loop queues steps and synchronises at the end.
func BenchmarkTrainStepGPUVsTorch(b *testing.B) {
	_, d := gpuBackend(b, "float32")
	b.Logf("GPU: %s", d.Reason)
	minSec := benchSeconds()
	for _, tc := range gpuBenchCases {
		name := fmt.Sprintf("%s/%dx%d/%s/%s", tc.config, tc.B, tc.L, tc.dtype, tc.attention)
		c, err := Named(tc.config, 2000, tc.L)
		if err != nil {
			b.Fatal(err)
		}
		flops := TrainFLOPsPerToken(c, tc.L, 0.15*float64(tc.L))
		mfu := func(b *testing.B, tokensPerS float64) {
			if d.GPU == nil {
				return
			}
			if peak, ok := PeakFLOPS(d.GPU.Name, tc.dtype); ok {
				b.ReportMetric(100*tokensPerS*flops/peak, "MFU-%")
			}
		}
		var ours float64
		b.Run(name+"/medseq", func(b *testing.B) {
			gpu, _ := gpuBackend(b, tc.dtype)
			// Static shapes, as training on a GPU uses: one compiled graph (the first H200 run,
			// without them, compiled new MLM shapes inside the timing: 1 step/s for tiny).
			e, batch := benchSetupOn(b, gpu, tc.config, TaskMLM, tc.B, tc.L,
				WithDType(tc.dtype), WithAttention(tc.attention),
				WithStaticShapes(StaticPositions(MaxPredictions(tc.L, 0.15))))
			defer e.Close()
			n, sec := timeSteps(b, e, batch, 5, minSec)
			ours = float64(n*tc.B*tc.L) / sec
			b.ReportMetric(ours, "tokens/s")
			b.ReportMetric(float64(n)/sec, "steps/s")
			mfu(b, ours)
			if d.GPU != nil {
				b.ReportMetric(gpuMemoryUsedMB(d.GPU.Index), "peak-GPU-MB")
			}
			if e.Scaler() != nil {
				b.Logf("%s: loss scale %g, %d of %d steps skipped", name, e.Scaler().Scale, e.SkippedSteps(), e.Steps())
			}
			b.ReportMetric(0, "ns/op")
		})
		b.Run(name+"/pytorch", func(b *testing.B) {
			python := testpy.Require(b, "python3-torch", "torch")
			attnDropout := "0.1"
			if tc.attention == AttentionFused {
				attnDropout = "0"
			}
			device := "cuda"
			if d.Kind == "cpu" { // MEDSEQ_GPU_DRY_RUN
				device = "cpu"
			}
			res, err := runTorchBench(python, tc.config, max(b.N, 3), minSec, 4,
				"--device", device, "--dtype", tc.dtype, "--batch", strconv.Itoa(tc.B),
				"--seq", strconv.Itoa(tc.L), "--attention", "sdpa", "--attn-dropout", attnDropout)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.TokensPerS, "tokens/s")
			b.ReportMetric(res.StepsPerS, "steps/s")
			mfu(b, res.TokensPerS)
			b.ReportMetric(res.PeakGPUReservedMB, "peak-GPU-MB")
			b.ReportMetric(res.PeakGPUMB, "peak-alloc-MB")
			b.ReportMetric(0, "ns/op")
			if ours > 0 && res.TokensPerS > 0 {
				b.ReportMetric(ours/res.TokensPerS, "x-pytorch")
				b.Logf("%s MLM step on the GPU: medseq %.0f tokens/s, PyTorch %s (%s attention) %.0f tokens/s: "+
					"%.2fx (goal 1.2x for base)",
					name, ours, res.Torch, res.Attention, res.TokensPerS, ours/res.TokensPerS)
			}
		})
	}
}

// gpuMemoryUsedMB is NVML's memory in use on GPU index (all processes), 0 when unknown.
func gpuMemoryUsedMB(index int) float64 {
	if nvml.Init() != nvml.SUCCESS {
		return 0
	}
	defer nvml.Shutdown()
	dev, ret := nvml.DeviceGetHandleByIndex(index)
	if ret != nvml.SUCCESS {
		return 0
	}
	m, ret := dev.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return 0
	}
	return float64(m.Used) / (1 << 20)
}
