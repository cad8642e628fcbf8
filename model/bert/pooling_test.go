package bert

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPoolingReadsOnlyRealTokens: mean pooling averages the tokens the mask keeps, so what
// sits in the padding does not move a logit, while the pooling itself does ([CLS] and the
// mean give other logits from the same weights).
func TestPoolingReadsOnlyRealTokens(t *testing.T) {
	logits := map[string][]float32{}
	for _, tc := range []struct{ name, pooling string }{{"cls", PoolingCLS}, {"mean", PoolingMean}, {"unset", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			c := toyConfig(t, false)
			c.Pooling = tc.pooling
			w, err := NewWeights(c, Heads{Classifier: true}, 3)
			if err != nil {
				t.Fatal(err)
			}
			perturbed(w, 4)
			e := newEngineFor(t, w, TaskClassify, "float32")
			b := toyBatch(rand.New(rand.NewPCG(1, 2)), 6, 24)
			z, err := e.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			// The same batch with other ids and ages in every padding position.
			noisy := *b
			noisy.IDs, noisy.Ages = append([]int32(nil), b.IDs...), append([]float32(nil), b.Ages...)
			r := rand.New(rand.NewPCG(5, 6))
			changed := 0
			for i, m := range b.Mask {
				if m == 0 {
					noisy.IDs[i], noisy.Ages[i] = int32(8+r.IntN(42)), float32(r.IntN(90))
					changed++
				}
			}
			if changed == 0 {
				t.Fatal("the batch has no padding: the test would prove nothing")
			}
			z2, err := e.Logits(&noisy)
			if err != nil {
				t.Fatal(err)
			}
			for i := range z {
				if d := math.Abs(float64(z[i] - z2[i])); d > 1e-5 {
					t.Errorf("row %d: the padding moved the logit by %.3g", i, d)
				}
			}
			logits[tc.name] = z
		})
	}
	diff := 0.0
	for i := range logits["cls"] {
		diff = math.Max(diff, math.Abs(float64(logits["cls"][i]-logits["mean"][i])))
		if logits["cls"][i] != logits["unset"][i] {
			t.Errorf("row %d: no pooling gives %v, [CLS] pooling %v: want the same",
				i, logits["unset"][i], logits["cls"][i])
		}
	}
	if diff < 1e-3 {
		t.Errorf("mean and [CLS] pooling give logits within %.3g: the pooling is not applied", diff)
	}
}

// TestConfigPooling: the pooling is validated, chosen by Choice and kept or replaced by Adapt.
func TestConfigPooling(t *testing.T) {
	for _, tc := range []struct {
		name, pooling, want, err string
	}{{"default", "", "", ""}, {"cls", PoolingCLS, PoolingCLS, ""}, {"mean", PoolingMean, PoolingMean, ""},
		{"unknown", "max", "", `medseq_pooling "max"`}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Choice{Name: "tiny", Dropout: -1, Pooling: tc.pooling}.Config(40, 32, 0)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || c.Pooling != tc.want {
				t.Fatalf("pooling %q, err %v; want %q", c.Pooling, err, tc.want)
			}
			buf, err := c.MarshalHF()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseConfig(buf)
			if err != nil || back.Pooling != tc.want {
				t.Fatalf("config.json read back: pooling %q, err %v", back.Pooling, err)
			}
			// A pretrained encoder takes the pooling asked, or keeps its own when none is.
			pre := c
			pre.Pooling = PoolingMean
			got, err := Choice{Dropout: -1, Pooling: tc.pooling}.Adapt(pre, 40, 32)
			want := tc.want
			if want == "" {
				want = PoolingMean
			}
			if err != nil || got.Pooling != want {
				t.Fatalf("Adapt: pooling %q, err %v; want %q", got.Pooling, err, want)
			}
		})
	}
}
