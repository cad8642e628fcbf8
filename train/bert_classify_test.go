package train

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/medseq/medseq/model/bert"
	"github.com/medseq/medseq/modelrepo"
)

func TestLRSchedule(t *testing.T) {
	for _, tc := range []struct {
		step, warmup, total int
		want                float64
	}{{0, 10, 110, 0.1}, {9, 10, 110, 1}, {10, 10, 110, 1}, {60, 10, 110, 0.5}, {110, 10, 110, 0}, {5, 0, 10, 0.5}} {
		if got := LRAt(tc.step, tc.warmup, tc.total, 1); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("LRAt(%d, %d, %d) = %v, want %v", tc.step, tc.warmup, tc.total, got, tc.want)
		}
	}
}

func TestBCELossMatchesDefinition(t *testing.T) {
	z, y := []float32{2, -1, 0.5}, []float32{1, 0, 1}
	pw := 3.0
	want := 0.0
	for i := range z {
		p := 1 / (1 + math.Exp(-float64(z[i])))
		if y[i] == 1 {
			want -= pw * math.Log(p)
		} else {
			want -= math.Log(1 - p)
		}
	}
	want /= 3
	if got := bceLoss(z, y, pw); math.Abs(got-want) > 1e-9 {
		t.Fatalf("bceLoss = %v, want %v", got, want)
	}
}

// TestClassifyBFloat16OnCPU: --dtype bfloat16 with --device cpu trains in mixed precision
// (gomlx's Go backend computes bfloat16), records the dtype, and saves float32 weights.
func TestClassifyBFloat16OnCPU(t *testing.T) {
	f := getFixture(t)
	c := classifyCfg(f, filepath.Join(t.TempDir(), "bf16"))
	c.DType = "bfloat16"
	res, err := BERTClassify(context.Background(), c, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Device.DType != "bfloat16" {
		t.Errorf("device dtype %q, want bfloat16", res.Device.DType)
	}
	ts, _, err := bert.ReadSafetensors(filepath.Join(modelrepo.BERTPath(c.Out), bert.SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range ts {
		if x.DType != "F32" {
			t.Errorf("saved %s as %s, want F32 master weights", name, x.DType)
		}
	}
}
