package bert

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Heads says which heads a model carries beside the encoder.
type Heads struct {
	MLM        bool // cls.predictions.* (decoder tied to the word embeddings)
	Classifier bool // bert.pooler.* and classifier.*
}

// TensorSpec is one weight's HuggingFace name and shape (PyTorch layout: Linear weights are
// [out, in]).
type TensorSpec struct {
	Name  string
	Shape []int
}

// Size is the number of elements.
func (t TensorSpec) Size() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Spec lists a model's weights in a fixed order: embeddings, layers, pooler and classifier,
// MLM head.
func Spec(c Config, h Heads) []TensorSpec {
	H, I := c.HiddenSize, c.IntermediateSize
	var out []TensorSpec
	add := func(name string, shape ...int) { out = append(out, TensorSpec{name, shape}) }
	linear := func(prefix string, o, i int) {
		add(prefix+".weight", o, i)
		add(prefix+".bias", o)
	}
	ln := func(prefix string) {
		add(prefix+".weight", H)
		add(prefix+".bias", H)
	}
	add("bert.embeddings.word_embeddings.weight", c.VocabSize, H)
	add("bert.embeddings.position_embeddings.weight", c.MaxPositionEmbeddings, H)
	add("bert.embeddings.token_type_embeddings.weight", c.TypeVocabSize, H)
	if c.AgeEmbeddings {
		add("bert.embeddings.age_embeddings.weight", c.AgeBuckets, H)
	}
	if c.TimeEmbeddings {
		add("bert.embeddings.time_embeddings.weight", c.TimeBuckets, H)
	}
	ln("bert.embeddings.LayerNorm")
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := fmt.Sprintf("bert.encoder.layer.%d.", l)
		linear(p+"attention.self.query", H, H)
		linear(p+"attention.self.key", H, H)
		linear(p+"attention.self.value", H, H)
		linear(p+"attention.output.dense", H, H)
		ln(p + "attention.output.LayerNorm")
		linear(p+"intermediate.dense", I, H)
		linear(p+"output.dense", H, I)
		ln(p + "output.LayerNorm")
	}
	if h.Classifier {
		linear("bert.pooler.dense", H, H)
		linear("classifier", c.NumLabels, H)
	}
	if h.MLM {
		linear("cls.predictions.transform.dense", H, H)
		ln("cls.predictions.transform.LayerNorm")
		add("cls.predictions.bias", c.VocabSize)
	}
	return out
}

// Weights are a model's configuration and weights by HuggingFace name, on the host.
type Weights struct {
	Config Config
	Heads  Heads
	Specs  []TensorSpec
	Data   map[string][]float32
}

// NewWeights initialises weights as BERT does: normal(0, initializer_range) for linear and
// embedding weights, zero biases, LayerNorm weight 1 and bias 0 (the padding token's
// embedding row is zero).
func NewWeights(c Config, h Heads, seed uint64) (*Weights, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x6d656473657162))
	w := &Weights{Config: c, Heads: h, Specs: Spec(c, h), Data: map[string][]float32{}}
	std := c.InitializerRange
	for _, s := range w.Specs {
		v := make([]float32, s.Size())
		switch {
		case strings.Contains(s.Name, "LayerNorm.weight"):
			for i := range v {
				v[i] = 1
			}
		case strings.HasSuffix(s.Name, ".bias"):
		default:
			for i := range v {
				v[i] = float32(r.NormFloat64() * std)
			}
			if s.Name == "bert.embeddings.word_embeddings.weight" && c.PadTokenID >= 0 && c.PadTokenID < c.VocabSize {
				clear(v[c.PadTokenID*c.HiddenSize : (c.PadTokenID+1)*c.HiddenSize])
			}
		}
		w.Data[s.Name] = v
	}
	return w, nil
}

// Clone deep-copies the weights.
func (w *Weights) Clone() *Weights {
	out := &Weights{Config: w.Config, Heads: w.Heads, Specs: append([]TensorSpec(nil), w.Specs...),
		Data: make(map[string][]float32, len(w.Data))}
	for k, v := range w.Data {
		out.Data[k] = append([]float32(nil), v...)
	}
	return out
}

// NumParams counts the weights.
func (w *Weights) NumParams() int {
	n := 0
	for _, s := range w.Specs {
		n += s.Size()
	}
	return n
}

// Decays says whether AdamW's weight decay applies to a weight: only the weights of dense
// (Linear) layers. LayerNorm weights, biases and embeddings are never decayed.
func Decays(name string) bool {
	switch {
	case strings.Contains(name, "LayerNorm"), strings.HasSuffix(name, ".bias"), strings.Contains(name, "embeddings"):
		return false
	}
	return strings.HasSuffix(name, ".weight")
}

// check verifies that every spec has data of the right size.
func (w *Weights) check() error {
	for _, s := range w.Specs {
		v, ok := w.Data[s.Name]
		if !ok {
			return fmt.Errorf("bert weights: %s is missing", s.Name)
		}
		if len(v) != s.Size() {
			return fmt.Errorf("bert weights: %s has %d values, shape %v needs %d", s.Name, len(v), s.Shape, s.Size())
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("bert weights: %s holds a NaN or infinity", s.Name)
			}
		}
	}
	return nil
}
