package bert

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
)

// benchSetup builds an engine for a named config and task (vocab 2000, 64 tokens, batch 32,
// dropout on, DefaultOptim) and a batch maker: MLM batches are freshly masked each call (as a
// training loop does), classification batches are fixed.
func benchSetup(b *testing.B, name string, task Task, opts ...EngineOption) (*Engine, func() *Batch) {
	b.Helper()
	be, err := Backend("cpu")
	if err != nil {
		b.Fatal(err)
	}
	return benchSetupOn(b, be, name, task, benchBatch, benchSeq, opts...)
}

// benchSetupOn is benchSetup on a backend, for batches of B sequences of L tokens.
func benchSetupOn(b *testing.B, be compute.Backend, name string, task Task, B, L int,
	opts ...EngineOption) (*Engine, func() *Batch) {
	b.Helper()
	h := Heads{Classifier: true}
	if task == TaskMLM {
		h = Heads{MLM: true}
	}
	c, err := Named(name, 2000, L)
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewWeights(c, h, 1)
	if err != nil {
		b.Fatal(err)
	}
	e, err := NewEngine(be, w, task, DefaultOptim(), 1, opts...)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	seqs := make([]Encoded, B)
	labels := make([]float32, B)
	for i := range seqs {
		ids := make([]int32, L)
		for j := range ids {
			ids[j] = int32(5 + r.IntN(1995))
		}
		ids[0] = 2
		seqs[i] = Encoded{IDs: ids, Ages: make([]float32, L)}
		labels[i] = float32(i % 2)
	}
	m := Masking{Rate: 0.15, MaskID: 4, VocabSize: 2000, Special: func(id int32) bool { return id < 5 },
		MaxPerRow: MaxPredictions(L, 0.15)}
	fixed := MakeBatch(seqs, labels, B, L, 0)
	return e, func() *Batch {
		if task == TaskMLM {
			return MakeMLMBatch(r, m, seqs, B, L, 0)
		}
		return fixed
	}
}

// The benchmark batch: 32 sequences of 64 tokens.
const benchBatch, benchSeq = 32, 64

// timeTrainSteps times b.N training steps on batches of benchBatch × benchSeq tokens, after
// one untimed step that compiles the graph, and reports tokens/s.
func timeTrainSteps(b *testing.B, e *Engine, batch func() *Batch) {
	b.Helper()
	n, sec := timeSteps(b, e, batch, 1, 0)
	b.ReportMetric(float64(n*benchBatch*benchSeq)/sec, "tokens/s")
}

// BenchmarkTrainStep is one AdamW step (vocab 2000, 64 tokens, batch 32, dropout on) of the
// tiny and small configs, classification and MLM on gathered positions; it reports tokens/s.
// BenchmarkTrainStepVsTorch (torchbench_test.go) runs the PyTorch reference beside it.
func BenchmarkTrainStep(b *testing.B) {
	for _, name := range []string{"tiny", "small"} {
		for _, task := range []Task{TaskClassify, TaskMLM} {
			label := name + "/classify"
			if task == TaskMLM {
				label = name + "/mlm"
			}
			b.Run(label, func(b *testing.B) {
				e, batch := benchSetup(b, name, task)
				defer e.Close()
				timeTrainSteps(b, e, batch)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
			})
		}
	}
}

// BenchmarkTrainStepDType compares float32 with bfloat16 mixed precision on the CPU backend
// (tiny config, MLM): the CPU has no fast bfloat16 arithmetic, so this measures the cost of
// the casts; the speed-up is a GPU's (tensor cores, half the memory traffic).
func BenchmarkTrainStepDType(b *testing.B) {
	for _, dtype := range []string{"float32", "bfloat16"} {
		b.Run(dtype, func(b *testing.B) {
			e, batch := benchSetup(b, "tiny", TaskMLM, WithDType(dtype))
			defer e.Close()
			timeTrainSteps(b, e, batch)
		})
	}
}

// BenchmarkTrainStepAttention compares plain attention with fused attention (attention.Core:
// gomlx's Go backend has a fused float32 kernel) on the CPU, MLM, tiny and small. Fused has no
// dropout on the attention probabilities, so it computes a little less than plain.
func BenchmarkTrainStepAttention(b *testing.B) {
	for _, name := range []string{"tiny", "small"} {
		for _, mode := range []string{AttentionPlain, AttentionFused} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				e, batch := benchSetup(b, name, TaskMLM, WithAttention(mode))
				defer e.Close()
				timeTrainSteps(b, e, batch)
			})
		}
	}
}
