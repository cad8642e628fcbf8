package xgb

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medseq/medseq/model/gbt"
)

// Demo-sized data: 3k training rows (plus 750 for tuning) and 10k rows to predict, 4k sparse
// columns.
const benchCols = 4000

var bench struct {
	once    sync.Once
	d       dataset
	pred    *CSR
	booster *Booster
	leaves  *gbt.Predictor
	err     error
}

func benchSetup(b *testing.B) {
	needLib(b)
	bench.once.Do(func() {
		x, y := synth(21, 3750, benchCols, -1)
		bench.d = dataset{trX: sub(x, 0, 3000), trY: y[:3000], tuX: sub(x, 3000, 3750), tuY: y[3000:]}
		bench.pred, _ = synth(22, 10000, benchCols, -1)
		p := benchParams()
		bench.booster, _, bench.err = Train(context.Background(), p, bench.d.trX, bench.d.trY, bench.d.tuX, bench.d.tuY, nil)
		if bench.err != nil {
			return
		}
		path := filepath.Join(b.TempDir(), "model.bin")
		if bench.err = bench.booster.SaveLegacyBinary(path); bench.err != nil {
			return
		}
		bench.leaves, bench.err = gbt.Load(path)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
}

func benchParams() Params {
	p := DefaultParams()
	p.Rounds = 100
	p.EarlyStopping = 0
	p.Seed = 1
	return p
}

// BenchmarkTrain: 100 rounds on 3k rows × 4k sparse columns (with logloss and auc on train
// and tune every round), nthread = all CPUs.
func BenchmarkTrain(b *testing.B) {
	benchSetup(b)
	p := benchParams()
	for i := 0; i < b.N; i++ {
		bst, _, err := Train(context.Background(), p, bench.d.trX, bench.d.trY, bench.d.tuX, bench.d.tuY, nil)
		if err != nil {
			b.Fatal(err)
		}
		bst.Close()
	}
	b.ReportMetric(float64(p.Rounds)*float64(b.N)/b.Elapsed().Seconds(), "rounds/s")
}

// BenchmarkPredictOne: latency of one row, as a serving request predicts it.
func BenchmarkPredictOne(b *testing.B) {
	benchSetup(b)
	x := bench.pred
	b.Run("leaves", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			idx, val := x.Row(i % x.Rows())
			if _, err := bench.leaves.PredictSparse(idx, val); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("libxgboost", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r := i % x.Rows()
			if _, err := bench.booster.Predict(sub(x, r, r+1)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkPredict10k: throughput over 10k rows (all CPUs for both).
func BenchmarkPredict10k(b *testing.B) {
	benchSetup(b)
	x := bench.pred
	b.Run("leaves", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := bench.leaves.PredictCSR(x); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(x.Rows())*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("libxgboost", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := bench.booster.Predict(x); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(x.Rows())*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
