package bert

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkTrainStep is one AdamW step (vocab 2000, 64 tokens, batch 32, dropout on) of the
// tiny and small configs, classification and MLM on gathered positions; it reports tokens/s.
func BenchmarkTrainStep(b *testing.B) {
	for _, name := range []string{"tiny", "small"} {
		for _, task := range []Task{TaskClassify, TaskMLM} {
			label := name + "/classify"
			h := Heads{Classifier: true}
			if task == TaskMLM {
				label, h = name+"/mlm", Heads{MLM: true}
			}
			b.Run(label, func(b *testing.B) {
				c, _ := Named(name, 2000, 64)
				be, err := Backend("cpu")
				if err != nil {
					b.Fatal(err)
				}
				w, _ := NewWeights(c, h, 1)
				e, err := NewEngine(be, w, task, DefaultOptim(), 1)
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				r := rand.New(rand.NewPCG(1, 2))
				const B, L = 32, 64
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
				m := Masking{Rate: 0.15, MaskID: 4, VocabSize: 2000, Special: func(id int32) bool { return id < 5 }}
				batch := func() *Batch {
					if task == TaskMLM {
						return MakeMLMBatch(r, m, seqs, B, L, 0)
					}
					return MakeBatch(seqs, labels, B, L, 0)
				}
				if _, err := e.TrainStep(batch(), 1e-4); err != nil { // compile outside the timing
					b.Fatal(err)
				}
				bt := batch()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if task == TaskMLM {
						bt = batch()
					}
					if _, err := e.TrainStep(bt, 1e-4); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*B*L)/b.Elapsed().Seconds(), "tokens/s")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
			})
		}
	}
}
