package bert

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestChoiceConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		ch   Choice
		want func(*Config)
		err  string
	}{
		{"named", Choice{Name: "small", Dropout: -1}, func(c *Config) {
			c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize = 256, 4, 4, 1024
		}, ""},
		{"no name is tiny", Choice{Dropout: -1}, func(*Config) {}, ""},
		{"hidden alone sets intermediate", Choice{Name: "tiny", Hidden: 32, Dropout: -1}, func(c *Config) {
			c.HiddenSize, c.IntermediateSize = 32, 128
		}, ""},
		{"every size and dropout", Choice{Name: "tiny", Hidden: 16, Layers: 1, Heads: 2, Intermediate: 40, Dropout: 0},
			func(c *Config) {
				c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize = 16, 1, 2, 40
				c.HiddenDropoutProb, c.AttentionProbsDropoutProb = 0, 0
			}, ""},
		{"embeddings", Choice{Name: "tiny", AgeEmbeddings: true, TimeEmbeddings: true, Dropout: -1}, func(c *Config) {
			c.AgeEmbeddings, c.TimeEmbeddings, c.TimeBuckets = true, true, DefaultTimeBuckets
		}, ""},
		{"unknown name", Choice{Name: "huge"}, nil, `unknown BERT config "huge"`},
		{"heads that do not divide", Choice{Name: "tiny", Heads: 3, Dropout: -1}, nil, "not a multiple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ch.Config(40, 32, 0)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, _ := Named("tiny", 40, 32)
			tc.want(&want)
			if got != want {
				t.Errorf("config\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestChoiceAdapt(t *testing.T) {
	pre, err := Choice{Name: "tiny", Layers: 1, AgeEmbeddings: true, Dropout: -1}.Config(40, 32, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		ch            Choice
		vocab, maxLen int
		field         string // "" for no mismatch
	}{
		{"sizes not asked", Choice{AgeEmbeddings: true, Dropout: 0.2}, 40, 32, ""},
		{"sizes asked and equal", Choice{Name: "tiny", Layers: 1, AgeEmbeddings: true, Dropout: -1}, 40, 24, ""},
		{"layers differ", Choice{Name: "tiny", AgeEmbeddings: true, Dropout: -1}, 40, 32, "num_hidden_layers"},
		{"a size alone is asked of tiny", Choice{Hidden: 32, AgeEmbeddings: true, Dropout: -1}, 40, 32, "hidden_size"},
		{"age embeddings", Choice{Dropout: -1}, 40, 32, "age_embeddings"},
		{"time embeddings", Choice{AgeEmbeddings: true, TimeEmbeddings: true, Dropout: -1}, 40, 32, "time_embeddings"},
		{"vocabulary", Choice{AgeEmbeddings: true, Dropout: -1}, 41, 32, "vocab_size"},
		{"longer than the positions", Choice{AgeEmbeddings: true, Dropout: -1}, 40, 33, "max_position_embeddings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ch.Adapt(pre, tc.vocab, tc.maxLen)
			var mm *MismatchError
			if tc.field != "" {
				if !errors.As(err, &mm) || mm.Field != tc.field || !strings.Contains(err.Error(), "config mismatch") {
					t.Fatalf("error %v, want a mismatch of %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := pre
			if tc.ch.Dropout >= 0 {
				want.HiddenDropoutProb, want.AttentionProbsDropoutProb = tc.ch.Dropout, tc.ch.Dropout
			}
			if got != want {
				t.Errorf("adapted %+v, want %+v", got, want)
			}
		})
	}
}

// TestLoadPretrainedForClassifier starts a classifier from a saved MLM model: the encoder
// comes across exactly, the MLM head is reported unused and the classifier's heads newly
// initialised, as transformers reports them.
func TestLoadPretrainedForClassifier(t *testing.T) {
	c, err := Choice{Name: "tiny", Layers: 1, Dropout: -1}.Config(40, 32, 0)
	if err != nil {
		t.Fatal(err)
	}
	mlm, err := NewWeights(c, Heads{MLM: true}, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := SaveHF(dir, mlm, HFExport{}); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	w, newly, err := LoadPretrained(dir, Choice{Dropout: 0}, 40, 32, Heads{Classifier: true}, 9,
		slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bert.pooler.dense.bias", "bert.pooler.dense.weight",
		"classifier.bias", "classifier.weight"}; !slices.Equal(newly, want) {
		t.Errorf("newly %v, want %v", newly, want)
	}
	if !w.Heads.Classifier || w.Heads.MLM || w.Config.HiddenDropoutProb != 0 {
		t.Errorf("heads %+v, dropout %v", w.Heads, w.Config.HiddenDropoutProb)
	}
	for _, s := range Spec(c, Heads{}) {
		if !slices.Equal(w.Data[s.Name], mlm.Data[s.Name]) {
			t.Fatalf("encoder tensor %s changed", s.Name)
		}
	}
	for _, want := range []string{
		"were not used when initializing BertForSequenceClassification: [cls.predictions.bias",
		"are newly initialized: [bert.pooler.dense.bias",
	} {
		if !strings.Contains(logBuf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logBuf.String())
		}
	}
	if _, _, err := LoadPretrained(dir, Choice{Layers: 2, Dropout: -1}, 40, 32, Heads{Classifier: true}, 9,
		slog.Default()); err == nil {
		t.Error("a pretrained model of other sizes was accepted")
	}
}
