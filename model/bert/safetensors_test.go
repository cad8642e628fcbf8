package bert

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"math/rand/v2"
)

func TestDecaysOnlyDenseWeights(t *testing.T) {
	c := toyConfig(t, true)
	decayed := 0
	for _, s := range Spec(c, Heads{Classifier: true, MLM: true}) {
		d := Decays(s.Name)
		bad := strings.Contains(s.Name, "LayerNorm") || strings.HasSuffix(s.Name, ".bias") ||
			strings.Contains(s.Name, "embeddings")
		if d && bad {
			t.Errorf("%s is decayed", s.Name)
		}
		if !d && !bad {
			t.Errorf("%s (a dense weight) is not decayed", s.Name)
		}
		if d {
			decayed++
		}
	}
	if decayed == 0 {
		t.Fatal("nothing is decayed")
	}
}

// TestWeightDecayGraphSkipsNormsAndBiases takes the same step with weight decay 0 and 10:
// LayerNorm, bias and embedding tensors must come out identical, dense weights must differ.
func TestWeightDecayGraphSkipsNormsAndBiases(t *testing.T) {
	c := toyConfig(t, false)
	c.HiddenDropoutProb, c.AttentionProbsDropoutProb = 0, 0
	w, _ := NewWeights(c, Heads{Classifier: true}, 1)
	be, _ := Backend("cpu")
	run := func(wd float64) *Weights {
		o := DefaultOptim()
		o.WeightDecay = wd
		e, err := NewEngine(be, w, TaskClassify, o, 1)
		if err != nil {
			t.Fatal(err)
		}
		b := toyBatch(rand.New(rand.NewPCG(1, 1)), 4, 8)
		if _, err := e.TrainStep(b, 1e-2); err != nil {
			t.Fatal(err)
		}
		out, err := e.Weights()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := run(0), run(10)
	for _, s := range a.Specs {
		same := true
		for i := range a.Data[s.Name] {
			if a.Data[s.Name][i] != b.Data[s.Name][i] {
				same = false
				break
			}
		}
		if Decays(s.Name) == same {
			t.Errorf("%s: decayed=%v but weight decay changed it=%v", s.Name, Decays(s.Name), !same)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	c := toyConfig(t, true)
	w, _ := NewWeights(c, Heads{Classifier: true, MLM: true}, 3)
	perturbed(w, 4)
	dir := t.TempDir()
	if err := Save(dir, w); err != nil {
		t.Fatal(err)
	}
	got, unused, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(unused) != 0 || got.Config != w.Config || got.Heads != w.Heads {
		t.Fatalf("round trip: unused %v, config %+v vs %+v, heads %+v", unused, got.Config, w.Config, got.Heads)
	}
	be, _ := Backend("cpu")
	b := toyBatch(rand.New(rand.NewPCG(1, 1)), 5, 12)
	var outs [2][]float32
	for i, x := range []*Weights{w, got} {
		e, err := NewEngine(be, x, TaskClassify, DefaultOptim(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if outs[i], err = e.Logits(b); err != nil {
			t.Fatal(err)
		}
	}
	for i := range outs[0] {
		if outs[0][i] != outs[1][i] {
			t.Fatalf("logit %d: %v before export, %v after import", i, outs[0][i], outs[1][i])
		}
	}
	// The file names the tensors as transformers does.
	ts, md, err := ReadSafetensors(filepath.Join(dir, SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{
		"bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.attention.self.query.weight",
		"bert.encoder.layer.0.output.LayerNorm.bias", "bert.pooler.dense.weight", "classifier.weight",
		"cls.predictions.transform.dense.weight", "cls.predictions.bias",
	} {
		if _, ok := ts[n]; !ok {
			t.Errorf("no %s in the checkpoint", n)
		}
	}
	if q := ts["bert.encoder.layer.0.intermediate.dense.weight"].Shape; q[0] != c.IntermediateSize ||
		q[1] != c.HiddenSize {
		t.Errorf("intermediate weight shape %v, want [out, in]", q)
	}
	if md["format"] != "pt" {
		t.Errorf("metadata %v", md)
	}
}

func TestLoadRejectsMismatchedConfig(t *testing.T) {
	c := toyConfig(t, false)
	w, _ := NewWeights(c, Heads{Classifier: true}, 3)
	dir := t.TempDir()
	if err := Save(dir, w); err != nil {
		t.Fatal(err)
	}
	c.IntermediateSize = 128
	if err := SaveConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "bert.encoder.layer.0.intermediate.dense.weight") ||
		!strings.Contains(err.Error(), "does not match") {
		t.Fatalf("err = %v, want a mismatch naming the tensor", err)
	}
	c.IntermediateSize, c.NumHiddenLayers = 256, 3
	SaveConfig(dir, c)
	if _, _, err = Load(dir); err == nil || !strings.Contains(err.Error(), "bert.encoder.layer.2.") {
		t.Fatalf("err = %v, want a missing layer 2 tensor", err)
	}
}

func stFile(header string, body []byte) []byte {
	buf := make([]byte, 8, 8+len(header)+len(body))
	binary.LittleEndian.PutUint64(buf, uint64(len(header)))
	return append(append(buf, header...), body...)
}

func TestParseSafetensorsCorrupt(t *testing.T) {
	f32 := func(xs ...float32) []byte {
		b := make([]byte, 4*len(xs))
		for i, x := range xs {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b
	}
	good := stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}`, f32(1, 2))
	ts, md, err := ParseSafetensors(good)
	if err != nil || ts["a"].F32[1] != 2 || md["k"] != "v" {
		t.Fatalf("good file: %v %v %v", ts, md, err)
	}
	bf := stFile(`{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},`+
		`"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}}`, []byte{0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f})
	ts, _, err = ParseSafetensors(bf)
	if err != nil || ts["h"].F32[0] != 1 || ts["h"].F32[1] != -2 || ts["b"].F32[0] != 1 {
		t.Fatalf("half floats: %v %v", ts, err)
	}
	for name, tc := range map[string]struct {
		buf  []byte
		want string
	}{
		"short":          {[]byte{1, 2}, "at least 8"},
		"header too big": {stFile(`{}`, nil)[:8], "header size"},
		"not json":       {stFile(`[1]`, nil), "not a JSON object"},
		"bad json":       {stFile(`{"a":`, nil), "corrupt safetensors header"},
		"out of range":   {stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}`, f32(1, 2)), "outside"},
		"size mismatch":  {stFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, f32(1, 2)), "needs 12"},
		"overlap": {stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},`+
			`"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32(1, 2)), "overlaps"},
		"trailing":  {stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32(1, 2)), "cover 4 of 8"},
		"gap":       {stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32(1, 2)), "unused bytes"},
		"dtype":     {stFile(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, f32(1, 2)), "not supported"},
		"bad field": {stFile(`{"a":{"dtype":"F32","shape":[1],"offsets":[0,4]}}`, f32(1)), "unknown field"},
		"negative":  {stFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f32(1)), "corrupt"},
		"metadata":  {stFile(`{"__metadata__":{"k":1}}`, nil), "__metadata__"},
	} {
		_, _, err := ParseSafetensors(tc.buf)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	// A truncated checkpoint on disk fails with the file named.
	c := toyConfig(t, false)
	w, _ := NewWeights(c, Heads{Classifier: true}, 3)
	dir := t.TempDir()
	if err := Save(dir, w); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, SafetensorsFile)
	buf, _ := os.ReadFile(p)
	os.WriteFile(p, buf[:len(buf)-10], 0o644)
	if _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), p) ||
		!strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("truncated: %v", err)
	}
}
