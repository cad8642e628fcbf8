package bert

import (
	"encoding/json"
	"fmt"
	"github.com/medseq/medseq/internal/memstat"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medseq/medseq/internal/testpy"
)

// BenchmarkTrainStepVsTorch times our MLM training step (gathered masked positions, AdamW,
// clipping, dropout 0.1; vocab 2000, batch 32 × 64 tokens) and then the same model and step in
// PyTorch (testdata/torch_bench.py, Debian's python3-torch, 2 threads) in the same run, for
// the tiny and small configs. Each half times at least b.N steps and at least
// MEDSEQ_BENCH_SECONDS seconds (default 5) after warm-up, so `-benchtime 1x` still measures
// many steps. It reports tokens/s, steps/s and peak RSS (VmHWM after clear_refs 5, reset
// before the model is built) for each, and the ratio ours / PyTorch on the pytorch row. The
// PyTorch half is skipped when torch cannot be imported. The goal: ratio >= 2.5.
func BenchmarkTrainStepVsTorch(b *testing.B) {
	minSec := benchSeconds()
	threads := 2
	if v, err := strconv.Atoi(os.Getenv("MEDSEQ_TORCH_THREADS")); err == nil && v > 0 {
		threads = v
	}
	ours := map[string]float64{}
	for _, name := range []string{"tiny", "small"} {
		b.Run(name+"/medseq", func(b *testing.B) {
			runtime.GC()
			debug.FreeOSMemory()
			memstat.ResetPeakRSS()
			e, batch := benchSetup(b, name, TaskMLM)
			defer e.Close()
			n, sec := timeSteps(b, e, batch, 2, minSec)
			tps := float64(n*benchBatch*benchSeq) / sec
			ours[name] = tps
			b.ReportMetric(tps, "tokens/s")
			b.ReportMetric(float64(n)/sec, "steps/s")
			b.ReportMetric(float64(memstat.PeakRSS())/(1<<20), "peak-RSS-MB")
			b.ReportMetric(0, "ns/op") // n steps, not b.N: tokens/s is the figure
		})
		b.Run(name+"/pytorch", func(b *testing.B) {
			python := testpy.Require(b, "python3-torch", "torch")
			res, err := runTorchBench(python, name, max(b.N, 3), minSec, threads)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.TokensPerS, "tokens/s")
			b.ReportMetric(res.StepsPerS, "steps/s")
			b.ReportMetric(res.PeakRSSMB, "peak-RSS-MB")
			b.ReportMetric(0, "ns/op")
			if o := ours[name]; o > 0 && res.TokensPerS > 0 {
				b.ReportMetric(o/res.TokensPerS, "x-pytorch")
				b.Logf("%s MLM step: medseq %.0f tokens/s, PyTorch %s (%d threads) %.0f tokens/s: %.2fx (goal 2.5x)",
					name, o, res.Torch, res.Threads, res.TokensPerS, o/res.TokensPerS)
			}
		})
	}
}

// benchSeconds is MEDSEQ_BENCH_SECONDS (default 5): the least time each half is timed.
func benchSeconds() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("MEDSEQ_BENCH_SECONDS"), 64); err == nil && v > 0 {
		return v
	}
	return 5
}

// timeSteps takes warmup training steps (compiling) outside the timing, then times at least
// b.N steps and at least minSec seconds; it returns the steps and seconds timed.
func timeSteps(b *testing.B, e *Engine, batch func() *Batch, warmup int, minSec float64) (int, float64) {
	b.Helper()
	for i := 0; i < warmup; i++ {
		if _, err := e.TrainStep(batch(), 1e-4); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start, n := time.Now(), 0
	for n < b.N || time.Since(start).Seconds() < minSec {
		if _, err := e.TrainStep(batch(), 1e-4); err != nil {
			b.Fatal(err)
		}
		n++
	}
	sec := time.Since(start).Seconds()
	b.StopTimer()
	return n, sec
}

// torchBenchResult is torch_bench.py's JSON line.
type torchBenchResult struct {
	Torch      string  `json:"torch"`
	Threads    int     `json:"threads"`
	Steps      int     `json:"steps"`
	TokensPerS float64 `json:"tokens_per_s"`
	StepsPerS  float64 `json:"steps_per_s"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	Loss       float64 `json:"loss"`
	PeakGPUMB  float64 `json:"peak_gpu_mb"`
	// PeakGPUReservedMB is what PyTorch's caching allocator held at most.
	PeakGPUReservedMB float64 `json:"peak_gpu_reserved_mb"`
	Attention         string  `json:"attention"` // plain or sdpa (torch_bench.py --attention)
}

// runTorchBench runs testdata/torch_bench.py's MLM step; extra adds its flags (--device,
// --dtype, --batch, --seq).
func runTorchBench(python, config string, steps int, minSec float64, threads int,
	extra ...string) (torchBenchResult, error) {
	args := []string{filepath.Join("testdata", "torch_bench.py"), "--config", config, "--task", "mlm",
		"--steps", strconv.Itoa(steps), "--warmup", "2", "--seconds", fmt.Sprint(minSec),
		"--threads", strconv.Itoa(threads)}
	cmd := exec.Command(python, append(args, extra...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return torchBenchResult{}, fmt.Errorf("torch_bench.py: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var res torchBenchResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		return res, fmt.Errorf("torch_bench.py output %q: %w", out, err)
	}
	return res, nil
}
