package serve

import (
	"context"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/scorer"
)

// BenchmarkScorePath is the server's per-request work without gRPC: decode, censor, score,
// calibrate.
func BenchmarkScorePath(b *testing.B) {
	fx := getFixture(b)
	repo := NewRepository(fx.models, Policy{}, nil)
	if err := repo.Scan(context.Background()); err != nil {
		b.Fatal(err)
	}
	v, _ := repo.Resolve(fixtureModel, "")
	for _, tc := range []struct {
		name string
		req  func() any
	}{{"small", nil}, {"heldout", nil}} {
		req := smallRequest(b)
		if tc.name == "heldout" {
			req = heldOut(b, 1)[0].Request
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				table := data.NewCodes()
				sub, err := decodePredict(table, req, DefaultLimits(), "")
				if err != nil {
					b.Fatal(err)
				}
				in, _ := sub.toInput(v.Gap)
				res, err := v.Scorer.Score(table, []scorer.Input{in})
				if err != nil {
					b.Fatal(err)
				}
				_ = v.Calibrate(res[0].Probability)
			}
		})
	}
}
