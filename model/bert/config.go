package bert

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/medseq/medseq/data"
)

// Files of a model version's bert/ folder.
const (
	Dir             = "bert"
	ConfigFile      = "config.json"
	SafetensorsFile = "model.safetensors"
)

// Config is the model's shape, written as HuggingFace's BertConfig config.json.
type Config struct {
	VocabSize                 int     `json:"vocab_size"`
	HiddenSize                int     `json:"hidden_size"`
	NumHiddenLayers           int     `json:"num_hidden_layers"`
	NumAttentionHeads         int     `json:"num_attention_heads"`
	IntermediateSize          int     `json:"intermediate_size"`
	MaxPositionEmbeddings     int     `json:"max_position_embeddings"`
	HiddenDropoutProb         float64 `json:"hidden_dropout_prob"`
	AttentionProbsDropoutProb float64 `json:"attention_probs_dropout_prob"`
	TypeVocabSize             int     `json:"type_vocab_size"`
	LayerNormEps              float64 `json:"layer_norm_eps"`
	InitializerRange          float64 `json:"initializer_range"`
	HiddenAct                 string  `json:"hidden_act"`
	ModelType                 string  `json:"model_type"`
	PadTokenID                int     `json:"pad_token_id"`
	NumLabels                 int     `json:"num_labels"`
	// AgeEmbeddings adds a learned embedding of the token's age in whole years (BEHRT):
	// bucket = clamp(floor(age), 0, AgeBuckets-1). transformers ignores it (an unknown key).
	AgeEmbeddings bool `json:"age_embeddings,omitempty"`
	AgeBuckets    int  `json:"age_buckets,omitempty"`
	// TimeEmbeddings adds a learned embedding of how long before the prediction time each
	// token's event happened: bucket = clamp(floor(log2(days + 1)), 0, TimeBuckets-1) (same day,
	// 1-2 days, 3-6, ... up to ~90 years with 16 buckets). transformers ignores it.
	TimeEmbeddings bool `json:"time_embeddings,omitempty"`
	TimeBuckets    int  `json:"time_buckets,omitempty"`
	// Pooling is what the classifier's pooler reads: PoolingCLS ("" too, as in folders written
	// before it was recorded) is the last hidden state of [CLS], as transformers'
	// BertForSequenceClassification; PoolingMean is the mean of the last hidden states over
	// the non-padding tokens, which transformers cannot express (hf.go says so in the folder).
	Pooling string `json:"medseq_pooling,omitempty"`
}

// Poolings of the classifier head.
const (
	PoolingCLS  = "cls"
	PoolingMean = "mean"
)

// MeanPooling says whether the classifier pools the mean of the tokens rather than [CLS].
func (c Config) MeanPooling() bool { return c.Pooling == PoolingMean }

// DefaultTimeBuckets is the number of log2 buckets of days before the prediction time.
const DefaultTimeBuckets = 16

// hfConfig adds the fields transformers expects beside ours, and medseq's notes on what
// transformers cannot know (hf.go).
type hfConfig struct {
	Config
	Architectures         []string          `json:"architectures"`
	PositionEmbeddingType string            `json:"position_embedding_type"`
	ID2Label              map[string]string `json:"id2label,omitempty"`
	Label2ID              map[string]int    `json:"label2id,omitempty"`
	ProblemType           string            `json:"problem_type,omitempty"`
	TorchDType            string            `json:"torch_dtype"`
	UseCache              bool              `json:"use_cache"`
	ClassifierDropout     *float64          `json:"classifier_dropout"`
	// MedseqLogit says how the classifier's single logit is read.
	MedseqLogit string `json:"medseq_logit,omitempty"`
	// MedseqMaxLength is the sequence length (with [CLS] and [SEP]) the model trained with:
	// older tokens were dropped beyond it. medseq scores with it.
	MedseqMaxLength int `json:"medseq_max_length,omitempty"`
	// MedseqExtraWeights are tensors transformers' BERT does not have (it drops them).
	MedseqExtraWeights     []string `json:"medseq_extra_weights,omitempty"`
	MedseqExtraWeightsNote string   `json:"medseq_extra_weights_note,omitempty"`
	// MedseqPoolingNote says, for mean pooling, that transformers pools [CLS] instead.
	MedseqPoolingNote string `json:"medseq_pooling_note,omitempty"`
}

// Named configurations.
var named = map[string]Config{
	"tiny":  {HiddenSize: 64, NumHiddenLayers: 2, NumAttentionHeads: 4, IntermediateSize: 256},
	"small": {HiddenSize: 256, NumHiddenLayers: 4, NumAttentionHeads: 4, IntermediateSize: 1024},
	"base":  {HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12, IntermediateSize: 3072},
}

// ConfigNames lists the named configurations.
func ConfigNames() []string {
	out := make([]string, 0, len(named))
	for k := range named {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Named returns a named configuration (tiny, small, base) for a vocabulary and maximum
// sequence length, with BERT's defaults elsewhere (dropout 0.1, one binary label).
func Named(name string, vocabSize, maxPositions int) (Config, error) {
	c, ok := named[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown BERT config %q (have %s)", name, strings.Join(ConfigNames(), ", "))
	}
	c.VocabSize = vocabSize
	c.MaxPositionEmbeddings = maxPositions
	c.HiddenDropoutProb = 0.1
	c.AttentionProbsDropoutProb = 0.1
	c.TypeVocabSize = 2
	c.LayerNormEps = 1e-12
	c.InitializerRange = 0.02
	c.HiddenAct = "gelu"
	c.ModelType = "bert"
	c.NumLabels = 1
	c.AgeBuckets = 121
	return c, nil
}

// HeadDim is the size of one attention head.
func (c Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.VocabSize <= 0:
		return fmt.Errorf("bert config: vocab_size %d must be positive", c.VocabSize)
	case c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.NumAttentionHeads <= 0 || c.IntermediateSize <= 0:
		return fmt.Errorf("bert config: hidden_size %d, num_hidden_layers %d, num_attention_heads %d "+
			"and intermediate_size %d must be positive",
			c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize)
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("bert config: hidden_size %d is not a multiple of num_attention_heads %d",
			c.HiddenSize, c.NumAttentionHeads)
	case c.MaxPositionEmbeddings < 2:
		return fmt.Errorf("bert config: max_position_embeddings %d must be at least 2", c.MaxPositionEmbeddings)
	case c.HiddenDropoutProb < 0 || c.HiddenDropoutProb >= 1 ||
		c.AttentionProbsDropoutProb < 0 || c.AttentionProbsDropoutProb >= 1:
		return fmt.Errorf("bert config: dropout must be in [0, 1)")
	case c.HiddenAct != "" && c.HiddenAct != "gelu":
		return fmt.Errorf("bert config: hidden_act %q is not supported (only gelu)", c.HiddenAct)
	case c.ModelType != "" && c.ModelType != "bert":
		return fmt.Errorf("bert config: model_type %q is not bert", c.ModelType)
	case c.NumLabels != 1:
		return fmt.Errorf("bert config: num_labels %d: only one binary logit is supported", c.NumLabels)
	case c.AgeEmbeddings && c.AgeBuckets <= 0:
		return fmt.Errorf("bert config: age_buckets %d must be positive with age embeddings", c.AgeBuckets)
	case c.TimeEmbeddings && c.TimeBuckets <= 0:
		return fmt.Errorf("bert config: time_buckets %d must be positive with time embeddings", c.TimeBuckets)
	case c.TypeVocabSize <= 0:
		return fmt.Errorf("bert config: type_vocab_size %d must be positive", c.TypeVocabSize)
	case c.Pooling != "" && c.Pooling != PoolingCLS && c.Pooling != PoolingMean:
		return fmt.Errorf("bert config: medseq_pooling %q is not %s or %s", c.Pooling, PoolingCLS, PoolingMean)
	}
	return nil
}

// withDefaults fills what an older or foreign config.json left out.
func (c Config) withDefaults() Config {
	if c.LayerNormEps == 0 {
		c.LayerNormEps = 1e-12
	}
	if c.TypeVocabSize == 0 {
		c.TypeVocabSize = 2
	}
	if c.InitializerRange == 0 {
		c.InitializerRange = 0.02
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "gelu"
	}
	if c.ModelType == "" {
		c.ModelType = "bert"
	}
	if c.NumLabels == 0 {
		c.NumLabels = 1
	}
	if c.AgeEmbeddings && c.AgeBuckets == 0 {
		c.AgeBuckets = 121
	}
	if c.TimeEmbeddings && c.TimeBuckets == 0 {
		c.TimeBuckets = DefaultTimeBuckets
	}
	return c
}

// MarshalHF is config.json for BertForSequenceClassification as SaveHF writes it, with
// transformers' default label name LABEL_0 and max_position_embeddings as the trained length.
func (c Config) MarshalHF() ([]byte, error) {
	return c.marshalHF(Heads{Classifier: true}, HFExport{})
}

// ParseConfig reads a config.json (ours or transformers').
func ParseConfig(buf []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(buf, &c); err != nil {
		return Config{}, fmt.Errorf("bert config: %w", err)
	}
	c = c.withDefaults()
	return c, c.Validate()
}

// LoadConfig reads dir/config.json.
func LoadConfig(dir string) (Config, error) {
	p := filepath.Join(dir, ConfigFile)
	buf, err := os.ReadFile(p)
	if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig(buf)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", p, err)
	}
	return c, nil
}

// SaveConfig writes dir/config.json atomically.
func SaveConfig(dir string, c Config) error {
	buf, err := c.MarshalHF()
	if err != nil {
		return err
	}
	return data.WriteFileAtomic(filepath.Join(dir, ConfigFile), append(buf, '\n'))
}
