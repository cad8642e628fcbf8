package train

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/medseq/medseq/data"
)

// writeStreamDataset writes n subjects of 200 visits (about 400 events each; 80% train, 10%
// tuning, 10% held out) in shards of 50,000 events, with a tokenizer of every code: a corpus
// far larger than one shard or the shuffle buffer.
func writeStreamDataset(b *testing.B, dir string, n int) Inputs {
	b.Helper()
	in := Inputs{MEDS: filepath.Join(dir, "meds"), Cohort: filepath.Join(dir, "cohort"),
		Tokenizer: filepath.Join(dir, "tok")}
	w, err := data.NewDatasetWriter(in.MEDS, false)
	if err != nil {
		b.Fatal(err)
	}
	w.ShardEvents = 50_000
	for id := int64(1); id <= int64(n); id++ {
		split := data.HashSplit(1, id, data.DefaultSplitFractions)
		if err := w.Add(split, plantedSubject(w.Codes, id, 200, "")); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Commit(data.NewManifest("bench", nil)); err != nil {
		b.Fatal(err)
	}
	p := planted{meds: in.MEDS, cohort: in.Cohort, tokAll: in.Tokenizer}
	writePlantedCohort(b, p)
	writeTokenizerOfAll(b, p)
	return in
}

// liveHeap is the heap in use after a collection: what the process holds on to.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkRecordStreamMemory streams one epoch of a records corpus of n and of 2n subjects
// (shuffle buffer 256 windows of 128 tokens) and reports the peak live heap the stream added
// to the opened inputs (sampled every 8 batches after a collection). Memory must not grow with
// the dataset: it fails when twice the subjects need more than 1.2 times the peak plus 2 MiB
// (holding every window would need about 4 MiB more per 1,000 subjects).
func BenchmarkRecordStreamMemory(b *testing.B) {
	const n = 1000
	peaks, windows := map[int]float64{}, map[int]int{}
	for _, subjects := range []int{n, 2 * n} {
		in := writeStreamDataset(b, b.TempDir(), subjects)
		tr := tinyTraining()
		tr.BatchSize = 32
		mf := tinyModel()
		mf.MaxLen = 128
		run, err := startBERTRun("train pretrain", in, outFolder{path: filepath.Join(b.TempDir(), "out")},
			mf, tr, quietLog())
		if err != nil {
			b.Fatal(err)
		}
		cc := DefaultCorpusConfig()
		cc.ShuffleBuffer = 256
		corpus, err := openCorpus(context.Background(), run, cc)
		if err != nil {
			b.Fatal(err)
		}
		base, peak := liveHeap(), uint64(0)
		b.ResetTimer()
		for range b.N {
			for step := 0; step*tr.BatchSize < corpus.summary.Windows; step++ {
				if _, err := corpus.batch(step); err != nil {
					b.Fatal(err)
				}
				if step%8 == 0 {
					peak = max(peak, liveHeap())
				}
			}
		}
		b.StopTimer()
		peaks[subjects] = float64(peak-min(base, peak)) / (1 << 20)
		windows[subjects] = corpus.summary.Windows
		run.close()
		b.StartTimer()
	}
	for subjects, p := range peaks { // ResetTimer drops metrics: report them at the end
		b.ReportMetric(p, fmt.Sprintf("peak-MiB/%d-subjects", subjects))
		b.ReportMetric(float64(windows[subjects]), fmt.Sprintf("windows/%d-subjects", subjects))
	}
	if peaks[2*n] > 1.2*peaks[n]+2 {
		b.Fatalf("streaming %d subjects took %.1f MiB at peak, %d subjects %.1f MiB: memory grows with the dataset",
			2*n, peaks[2*n], n, peaks[n])
	}
}
