package serve

import (
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/medseq/medseq/modelrepo"
	medseqv1 "github.com/medseq/medseq/proto/medseq/v1"
)

// TestDynamicBatching sends concurrent Predict calls to a batching server: every answer
// must equal the offline score of its own subject, and batches must have formed exactly when
// the model's kind is one the server batches.
func TestDynamicBatching(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kinds   []string
		batched bool
	}{
		{"every kind", nil, true},
		{"xgboost named", []string{modelrepo.KindXGBoost}, true},
		{"bert only (medseq serve's default)", DefaultBatching().Kinds, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := newRepo(t)
			r := start(t, Config{Models: repo, Batching: Batching{MaxBatch: 16, MaxDelay: 2 * time.Millisecond, Workers: 2,
				Kinds: tc.kinds}})
			pc := medseqv1.NewPredictorClient(dial(t, r.addr))
			reqs := heldOut(t, 30)
			want := offline(t, filepath.Join(repo, fixtureModel, "1"), reqs)
			ctx := tctx(t)
			var wg sync.WaitGroup
			errs := make(chan error, len(reqs)*4)
			for round := range 4 {
				for i, lr := range reqs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						resp, err := pc.Predict(ctx, lr.Request)
						if err != nil {
							errs <- err
							return
						}
						if math.Abs(resp.Probability-want[i]) > 1e-12 ||
							resp.EventsUsed+resp.EventsCensored != int32(len(lr.Request.Events)) {
							t.Errorf("round %d subject %d: %v vs %v", round, i, resp.Probability, want[i])
						}
					}()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// The batch-size histogram: batches larger than one, or only ones.
			var sum, count float64
			mf, _ := r.srv.Metrics().Registry.Gather()
			for _, f := range mf {
				if f.GetName() == "medseq_batch_size" {
					for _, m := range f.GetMetric() {
						sum += m.GetHistogram().GetSampleSum()
						count += float64(m.GetHistogram().GetSampleCount())
					}
				}
			}
			if sum != float64(4*len(reqs)) || (count < sum) != tc.batched {
				t.Fatalf("batch sizes: %v subjects in %v scoring calls, want batched=%v", sum, count, tc.batched)
			}
		})
	}
}
