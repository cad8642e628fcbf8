package bert

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
)

// Choice is a configuration as a user asks for it: a named one (tiny, small, base) with its
// sizes overridden, and the embeddings beside the tokens'.
type Choice struct {
	Name string // tiny, small or base; "" takes a pretrained model's sizes (or tiny's)
	// Sizes; 0 keeps the named configuration's. Hidden alone also sets the intermediate size
	// to 4 × hidden, as BERT's configurations have it.
	Hidden, Layers, Heads, Intermediate int
	AgeEmbeddings, TimeEmbeddings       bool
	Dropout                             float64 // hidden and attention dropout; negative: the configuration's
	// Pooling is the classifier's pooling (PoolingCLS, PoolingMean; "" leaves a pretrained
	// model's, which is [CLS]): a choice of the head, so a pretrained encoder takes any.
	Pooling string
}

// defaultName is the configuration a Choice without a name starts from.
const defaultName = "tiny"

// asksSizes says whether ch names a configuration or a size.
func (ch Choice) asksSizes() bool {
	return ch.Name != "" || ch.Hidden > 0 || ch.Layers > 0 || ch.Heads > 0 || ch.Intermediate > 0
}

// Config is the validated configuration ch asks for over a vocabulary, maxPositions
// positions and the padding token's id.
func (ch Choice) Config(vocabSize, maxPositions, padID int) (Config, error) {
	name := ch.Name
	if name == "" {
		name = defaultName
	}
	c, err := Named(name, vocabSize, maxPositions)
	if err != nil {
		return c, err
	}
	for _, ov := range []struct {
		dst *int
		v   int
	}{{&c.HiddenSize, ch.Hidden}, {&c.NumHiddenLayers, ch.Layers}, {&c.NumAttentionHeads, ch.Heads},
		{&c.IntermediateSize, ch.Intermediate}} {
		if ov.v > 0 {
			*ov.dst = ov.v
		}
	}
	if ch.Hidden > 0 && ch.Intermediate == 0 {
		c.IntermediateSize = 4 * c.HiddenSize
	}
	if ch.Dropout >= 0 {
		c.HiddenDropoutProb, c.AttentionProbsDropoutProb = ch.Dropout, ch.Dropout
	}
	c.AgeEmbeddings, c.TimeEmbeddings = ch.AgeEmbeddings, ch.TimeEmbeddings
	if c.TimeEmbeddings {
		c.TimeBuckets = DefaultTimeBuckets
	}
	c.PadTokenID = padID
	c.Pooling = ch.Pooling
	return c, c.Validate()
}

// MismatchError is a pretrained model's configuration differing from what is asked.
type MismatchError struct {
	Field             string // config.json's name: num_hidden_layers, age_embeddings, vocab_size, ...
	Pretrained, Asked any
}

func (e *MismatchError) Error() string {
	if e.Field == "max_position_embeddings" {
		return fmt.Sprintf("config mismatch: the sequence length %v exceeds the pretrained model's "+
			"max_position_embeddings %v", e.Asked, e.Pretrained)
	}
	return fmt.Sprintf("config mismatch: the pretrained model's %s is %v, asked for %v", e.Field, e.Pretrained, e.Asked)
}

// Adapt checks that a pretrained model's configuration c is what ch asks for, over vocabSize
// tokens and sequences of maxLen: the vocabulary's size, the length within its positions, the
// sizes when ch asks for any (a name or a size), the age and time embeddings always. It
// returns c with ch's dropout and pooling. A difference is a *MismatchError.
func (ch Choice) Adapt(c Config, vocabSize, maxLen int) (Config, error) {
	if c.VocabSize != vocabSize {
		return c, &MismatchError{"vocab_size", c.VocabSize, vocabSize}
	}
	if maxLen > c.MaxPositionEmbeddings {
		return c, &MismatchError{"max_position_embeddings", c.MaxPositionEmbeddings, maxLen}
	}
	if ch.asksSizes() {
		want, err := ch.Config(c.VocabSize, c.MaxPositionEmbeddings, c.PadTokenID)
		if err != nil {
			return c, err
		}
		for _, x := range []struct {
			name      string
			got, want int
		}{{"hidden_size", c.HiddenSize, want.HiddenSize},
			{"num_hidden_layers", c.NumHiddenLayers, want.NumHiddenLayers},
			{"num_attention_heads", c.NumAttentionHeads, want.NumAttentionHeads},
			{"intermediate_size", c.IntermediateSize, want.IntermediateSize}} {
			if x.got != x.want {
				return c, &MismatchError{x.name, x.got, x.want}
			}
		}
	}
	if ch.AgeEmbeddings != c.AgeEmbeddings {
		return c, &MismatchError{"age_embeddings", c.AgeEmbeddings, ch.AgeEmbeddings}
	}
	if ch.TimeEmbeddings != c.TimeEmbeddings {
		return c, &MismatchError{"time_embeddings", c.TimeEmbeddings, ch.TimeEmbeddings}
	}
	if ch.Dropout >= 0 {
		c.HiddenDropoutProb, c.AttentionProbsDropoutProb = ch.Dropout, ch.Dropout
	}
	if ch.Pooling != "" {
		c.Pooling = ch.Pooling
	}
	return c, c.Validate()
}

// LoadPretrained reads the model in dir (a folder SaveHF wrote) to start a model with heads
// h: its configuration must be what ch asks for (Adapt) over vocabSize tokens and sequences
// of maxLen, the tensors for h it has are kept and the others initialised as NewWeights does
// (seed). As transformers does, log is told which of the folder's tensors the new model does
// not use and which it initialised (newly, also returned).
func LoadPretrained(dir string, ch Choice, vocabSize, maxLen int, h Heads, seed uint64,
	log *slog.Logger) (w *Weights, newly []string, err error) {
	pre, _, err := Load(dir)
	if err != nil {
		return nil, nil, err
	}
	if pre.Config, err = ch.Adapt(pre.Config, vocabSize, maxLen); err != nil {
		return nil, nil, err
	}
	w, newly, err = pre.WithHeads(h, seed)
	if err != nil {
		return nil, nil, err
	}
	var unused []string
	for n := range pre.Data {
		if _, ok := w.Data[n]; !ok {
			unused = append(unused, n)
		}
	}
	sort.Strings(unused)
	sort.Strings(newly)
	arch := architecture(h)
	if len(unused) > 0 {
		log.Info(fmt.Sprintf("Some weights of the model checkpoint at %s were not used when initializing %s: [%s]",
			dir, arch, strings.Join(unused, ", ")))
	}
	if len(newly) > 0 {
		log.Warn(fmt.Sprintf("Some weights of %s were not initialized from the model checkpoint at %s "+
			"and are newly initialized: [%s]", arch, dir, strings.Join(newly, ", ")))
	}
	log.Info("pretrained weights loaded", "dir", dir, "architecture", arch, "tensors", len(w.Data),
		"loaded", len(w.Data)-len(newly), "unused", len(unused), "newly_initialized", len(newly))
	return w, newly, nil
}
