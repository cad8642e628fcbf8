package bert

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/tokenize"
)

// HFExport says what SaveHF writes beside the weights.
type HFExport struct {
	// Tokenizer, when set, goes into the folder too (tokenize's HFFolderFiles: tokenizer.json,
	// vocab.txt, tokenizer_config.json, special_tokens_map.json), truncating at MaxLen, so the
	// folder loads alone with AutoTokenizer. Its vocabulary must be the model's.
	Tokenizer *tokenize.Tokenizer
	// MaxLen is the sequence length (with [CLS] and [SEP]) the model trained with; 0 means
	// max_position_embeddings. It may not exceed max_position_embeddings.
	MaxLen int
	// Label names what the classifier's logit scores (id2label["0"]); "" is LABEL_0.
	Label string
	// Log, when set, is told what the folder holds and which weights transformers drops.
	Log *slog.Logger
}

// HFFolder says what SaveHF wrote.
type HFFolder struct {
	Architecture string   // BertForSequenceClassification, BertForMaskedLM or BertModel
	MaxLen       int      // the tokenizer's truncation length and config.json's medseq_max_length
	Files        []string // file names in the folder
	// Dropped are the tensors transformers' BERT has no place for and drops on loading
	// (medseq's age and time embeddings): its outputs then differ from medseq's.
	Dropped []string
	// MeanPooling: the classifier pools the mean of the tokens, which transformers'
	// BertForSequenceClassification cannot (it pools [CLS]): its logits differ from medseq's.
	MeanPooling bool
}

// ReadmeFile is the folder's README.md, written for what transformers cannot reproduce alone
// (mean pooling).
const ReadmeFile = "README.md"

// The classifier's logit, as config.json's medseq_logit states it.
const hfLogitNote = `logits[:, 0] is the log-odds of id2label["0"]: probability = sigmoid(logit). ` +
	`medseq trains this one logit with binary cross-entropy (problem_type multi_label_classification ` +
	`is transformers' name for that loss with one label; it is neither regression, which transformers ` +
	`assumes for num_labels 1 without a problem_type, nor a softmax). The probability is uncalibrated: ` +
	`the model version's calibration.json maps it to medseq's calibrated probability.`

// The extra weights, as config.json's medseq_extra_weights_note states it.
const hfExtraNote = `transformers' BERT has no age or time embeddings: from_pretrained drops these tensors ` +
	`("Some weights of the model checkpoint were not used") and its outputs then differ from medseq's, which adds ` +
	`them to every token's embedding (age_embeddings, time_embeddings above). Score this model with medseq.`

// The mean pooling, as config.json's medseq_pooling_note and the folder's README.md state it.
const hfMeanPoolingNote = `medseq_pooling is mean: the pooler (bert.pooler.dense, then tanh) reads the mean of the ` +
	`last hidden states over the tokens the attention mask keeps, not the [CLS] state. transformers' ` +
	`BertForSequenceClassification has no setting for this and always pools [CLS]: loaded there, the weights load ` +
	`without a warning but the logits differ from medseq's. Score this model with medseq, or pool as README.md shows.`

// hfMeanPoolingREADME is README.md of a mean-pooling classifier's folder.
const hfMeanPoolingREADME = `# A medseq BERT classifier with mean pooling

This folder loads in transformers (` + "`BertForSequenceClassification.from_pretrained`" + `), but its
classifier was trained on the **mean of the last hidden states over the non-padding tokens**
(config.json: ` + "`medseq_pooling: \"mean\"`" + `), not on the ` + "`[CLS]`" + ` state that
BertForSequenceClassification pools. transformers has no setting for mean pooling, so its
logits from this folder differ from medseq's. Reproduce medseq's logit with the model's parts:

` + "```python" + `
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

tok = AutoTokenizer.from_pretrained("bert")
m = BertForSequenceClassification.from_pretrained("bert").eval()
enc = tok(lines, truncation=True, padding=True, return_tensors="pt")
with torch.no_grad():
    h = m.bert(**enc).last_hidden_state                # [B, L, H]
    mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
    mean = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
    logit = m.classifier(torch.tanh(m.bert.pooler.dense(mean)))[:, 0]
probability = torch.sigmoid(logit)  # uncalibrated: calibration.json maps it
` + "```" + `

Age or time embeddings, when config.json lists them in ` + "`medseq_extra_weights`" + `, are dropped by
transformers as well: score such a model with medseq.
`

// extraWeights are the tensors of c that transformers' BertModel does not have.
func (c Config) extraWeights() []string {
	var out []string
	for _, s := range Spec(c, Heads{}) {
		if strings.HasPrefix(s.Name, "bert.embeddings.age_embeddings.") ||
			strings.HasPrefix(s.Name, "bert.embeddings.time_embeddings.") {
			out = append(out, s.Name)
		}
	}
	return out
}

// architecture is the transformers class config.json names for heads h.
func architecture(h Heads) string {
	switch {
	case h.Classifier:
		return "BertForSequenceClassification"
	case h.MLM:
		return "BertForMaskedLM"
	}
	return "BertModel"
}

// marshalHF is config.json for weights with heads h, written as x says.
func (c Config) marshalHF(h Heads, x HFExport) ([]byte, error) {
	maxLen := x.MaxLen
	if maxLen == 0 {
		maxLen = c.MaxPositionEmbeddings
	}
	hc := hfConfig{Config: c, Architectures: []string{architecture(h)}, PositionEmbeddingType: "absolute",
		TorchDType: "float32", UseCache: true, MedseqMaxLength: maxLen}
	if h.Classifier {
		label := x.Label
		if label == "" {
			label = "LABEL_0"
		}
		hc.ID2Label, hc.Label2ID = map[string]string{"0": label}, map[string]int{label: 0}
		hc.ProblemType, hc.MedseqLogit = "multi_label_classification", hfLogitNote
	}
	if extra := c.extraWeights(); len(extra) > 0 {
		hc.MedseqExtraWeights, hc.MedseqExtraWeightsNote = extra, hfExtraNote
	}
	if h.Classifier && c.MeanPooling() {
		hc.MedseqPoolingNote = hfMeanPoolingNote
	}
	return json.MarshalIndent(hc, "", "  ")
}

// SaveHF writes dir as a HuggingFace model folder: config.json (the architecture for w's
// heads; for a classifier num_labels 1, id2label/label2id naming x.Label, problem_type and
// medseq_logit saying how the logit is read; medseq_max_length; medseq_extra_weights listing
// what transformers drops) and model.safetensors (HuggingFace names; the MLM decoder is tied
// to the word embeddings and, as transformers does, not stored twice), plus, with
// x.Tokenizer, the tokenizer files truncating at the trained length. Every file is written
// atomically. It is the one writer of a model version's bert/ folder.
func SaveHF(dir string, w *Weights, x HFExport) (*HFFolder, error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	c := w.Config
	maxLen := x.MaxLen
	if maxLen == 0 {
		maxLen = c.MaxPositionEmbeddings
	}
	if maxLen < 2 || maxLen > c.MaxPositionEmbeddings {
		return nil, fmt.Errorf("save %s: trained length %d must be in [2, max_position_embeddings %d]",
			dir, maxLen, c.MaxPositionEmbeddings)
	}
	x.MaxLen = maxLen
	files := map[string][]byte{}
	if t := x.Tokenizer; t != nil {
		if n := t.Vocab.Len(); n != c.VocabSize {
			return nil, fmt.Errorf("save %s: the tokenizer has %d tokens, the model's vocab_size is %d",
				dir, n, c.VocabSize)
		}
		if int(t.Vocab.Pad) != c.PadTokenID {
			return nil, fmt.Errorf("save %s: the tokenizer's [PAD] is id %d, the model's pad_token_id is %d",
				dir, t.Vocab.Pad, c.PadTokenID)
		}
		var err error
		if files, err = t.HFFolderFiles(maxLen); err != nil {
			return nil, fmt.Errorf("save %s: %w", dir, err)
		}
	}
	cj, err := c.marshalHF(w.Heads, x)
	if err != nil {
		return nil, err
	}
	files[ConfigFile] = append(cj, '\n')
	if w.Heads.Classifier && c.MeanPooling() {
		files[ReadmeFile] = []byte(hfMeanPoolingREADME)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := &HFFolder{Architecture: architecture(w.Heads), MaxLen: maxLen, Files: []string{SafetensorsFile}}
	for name := range files {
		out.Files = append(out.Files, name)
	}
	sort.Strings(out.Files)
	for _, name := range out.Files {
		if name == SafetensorsFile {
			continue
		}
		if err := data.WriteFileAtomic(filepath.Join(dir, name), files[name]); err != nil {
			return nil, err
		}
	}
	names := make([]string, len(w.Specs))
	ts := make(map[string]Tensor, len(w.Specs))
	for i, s := range w.Specs {
		names[i] = s.Name
		ts[s.Name] = Tensor{DType: "F32", Shape: s.Shape, F32: w.Data[s.Name]}
	}
	if err := WriteSafetensors(filepath.Join(dir, SafetensorsFile), names, ts,
		map[string]string{"format": "pt", "producer": "medseq"}); err != nil {
		return nil, err
	}
	out.Dropped, out.MeanPooling = c.extraWeights(), w.Heads.Classifier && c.MeanPooling()
	if x.Log != nil {
		x.Log.Info("HuggingFace folder written", "dir", dir, "architecture", out.Architecture, "max_length", maxLen,
			"tokenizer", x.Tokenizer != nil)
		if len(out.Dropped) > 0 {
			x.Log.Warn(fmt.Sprintf("transformers' %s drops medseq's extra weights [%s]: loaded there, "+
				"the model ignores ages and times, so its outputs differ from medseq's "+
				"(config.json's medseq_extra_weights says so)",
				out.Architecture, strings.Join(out.Dropped, ", ")), "dir", dir)
		}
		if out.MeanPooling {
			x.Log.Warn("the classifier pools the mean of the tokens, which transformers' "+
				"BertForSequenceClassification cannot express (it pools [CLS]): "+
				"loaded there its logits differ from medseq's (config.json's "+
				"medseq_pooling_note and README.md say so and show how to pool)", "dir", dir)
		}
	}
	return out, nil
}

// TrainedLength is the sequence length (with [CLS] and [SEP]) the model in dir trained with:
// config.json's medseq_max_length, or, in folders written before it was recorded,
// max_position_embeddings. Scoring truncates there, as training did.
func TrainedLength(dir string, c Config) (int, error) {
	p := filepath.Join(dir, ConfigFile)
	buf, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	var x struct {
		N int `json:"medseq_max_length"`
	}
	if err := json.Unmarshal(buf, &x); err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	switch {
	case x.N == 0:
		return c.MaxPositionEmbeddings, nil
	case x.N < 2 || x.N > c.MaxPositionEmbeddings:
		return 0, fmt.Errorf("%s: medseq_max_length %d must be in [2, max_position_embeddings %d]",
			p, x.N, c.MaxPositionEmbeddings)
	}
	return x.N, nil
}
