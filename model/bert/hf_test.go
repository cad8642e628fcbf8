package bert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/medseq/medseq/tokenize"
)

// hfToyTokenizer is a tokenizer over toyConfig's 50 ids: the specials, then codes C5..C49,
// with a default length (512) far beyond the model's, as `tokenize build` writes it.
func hfToyTokenizer(t *testing.T) *tokenize.Tokenizer {
	t.Helper()
	toks := tokenize.SpecialTokens()
	for i := len(toks); i < 50; i++ {
		toks = append(toks, fmt.Sprintf("C%d", i))
	}
	v, err := tokenize.NewVocab(toks)
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenize.New(v)
	tok.MaxLen = 512
	return tok
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// TestSaveHFFolder: the bert/ folder is a self-contained HuggingFace folder: its tokenizer
// truncates at the trained length (not the tokenizer's 512), from the left, and pads with
// [PAD]; tokenizer_config.json and special_tokens_map.json say so; config.json says how the
// logit is read and lists the weights transformers drops; Load and Scorer read it back.
func TestSaveHFFolder(t *testing.T) {
	c := toyConfig(t, true) // 32 positions, age embeddings
	c.TimeEmbeddings, c.TimeBuckets = true, DefaultTimeBuckets
	c.PadTokenID = 0
	w, err := NewWeights(c, Heads{Classifier: true}, 3)
	if err != nil {
		t.Fatal(err)
	}
	tok := hfToyTokenizer(t)
	const maxLen = 24 // trained shorter than the 32 positions (train classify --init with --max-len)
	dir := t.TempDir()
	var logBuf bytes.Buffer
	res, err := SaveHF(dir, w, HFExport{Tokenizer: tok, MaxLen: maxLen, Label: "ICD10/E11",
		Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json",
		"tokenizer_config.json", "vocab.txt"}
	if !slices.Equal(res.Files, wantFiles) {
		t.Errorf("files %v, want %v", res.Files, wantFiles)
	}
	for _, f := range wantFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("folder lacks %s: %v", f, err)
		}
	}
	extras := []string{"bert.embeddings.age_embeddings.weight", "bert.embeddings.time_embeddings.weight"}
	if res.Architecture != "BertForSequenceClassification" || res.MaxLen != maxLen ||
		!slices.Equal(res.Dropped, extras) {
		t.Errorf("result %+v", res)
	}
	if l := logBuf.String(); !strings.Contains(l, "drops medseq's extra weights "+
		"[bert.embeddings.age_embeddings.weight, bert.embeddings.time_embeddings.weight]") {
		t.Errorf("the log does not say which weights transformers drops:\n%s", l)
	}

	// tokenizer.json: truncation Left at maxLen, padding Right with [PAD]'s id.
	tj := readJSON(t, filepath.Join(dir, "tokenizer.json"))
	wantTrunc := map[string]any{"direction": "Left", "max_length": float64(maxLen), "strategy": "LongestFirst",
		"stride": float64(0)}
	if !reflect.DeepEqual(tj["truncation"], wantTrunc) {
		t.Errorf("truncation %v, want %v", tj["truncation"], wantTrunc)
	}
	wantPad := map[string]any{"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": nil,
		"pad_id": float64(0), "pad_type_id": float64(0), "pad_token": "[PAD]"}
	if !reflect.DeepEqual(tj["padding"], wantPad) {
		t.Errorf("padding %v, want %v", tj["padding"], wantPad)
	}
	if tj["normalizer"] != nil {
		t.Errorf("normalizer %v, want none", tj["normalizer"])
	}
	// medseq reads it back with the trained length, and encodes a long line keeping the
	// newest codes.
	back, err := tokenize.ReadHF(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if back.MaxLen != maxLen {
		t.Errorf("tokenizer.json reads back with max length %d, want %d", back.MaxLen, maxLen)
	}
	var codes []string
	for i := 5; i < 50; i++ {
		codes = append(codes, fmt.Sprintf("C%d", i))
	}
	enc := back.EncodeText(strings.Join(codes, " "), tokenize.Options{MaxLen: back.MaxLen})
	if len(enc.IDs) != maxLen || enc.IDs[0] != tok.Vocab.Cls || enc.IDs[maxLen-1] != tok.Vocab.Sep ||
		enc.IDs[1] != 50-(maxLen-2) || enc.IDs[maxLen-2] != 49 {
		t.Errorf("a 45-code line encodes to %v: want [CLS], the newest %d codes (ids %d..49), [SEP]",
			enc.IDs, maxLen-2, 50-(maxLen-2))
	}
	if vt, _ := os.ReadFile(filepath.Join(dir, "vocab.txt")); !bytes.Equal(vt, tok.Vocab.VocabTxt()) {
		t.Errorf("vocab.txt differs from the tokenizer's")
	}

	// tokenizer_config.json and special_tokens_map.json: what AutoTokenizer reads. transformers
	// is not installed where the tests run, so they are checked here key by key.
	tc := readJSON(t, filepath.Join(dir, "tokenizer_config.json"))
	for k, want := range map[string]any{
		"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": float64(maxLen),
		"truncation_side": "left", "padding_side": "right",
		"do_lower_case": false, "clean_up_tokenization_spaces": false,
		"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
		"mask_token": "[MASK]",
	} {
		if !reflect.DeepEqual(tc[k], want) {
			t.Errorf("tokenizer_config.json %s = %v, want %v", k, tc[k], want)
		}
	}
	dec, _ := tc["added_tokens_decoder"].(map[string]any)
	if len(dec) != 5 {
		t.Errorf("added_tokens_decoder %v, want the 5 special tokens", tc["added_tokens_decoder"])
	}
	for id, name := range tokenize.SpecialTokens() {
		e, _ := dec[fmt.Sprint(id)].(map[string]any)
		if e["content"] != name || e["special"] != true || e["normalized"] != false {
			t.Errorf("added_tokens_decoder[%d] = %v, want special %s", id, e, name)
		}
	}
	st := readJSON(t, filepath.Join(dir, "special_tokens_map.json"))
	wantST := map[string]any{"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
		"mask_token": "[MASK]"}
	if !reflect.DeepEqual(st, wantST) {
		t.Errorf("special_tokens_map.json %v, want %v", st, wantST)
	}

	// config.json: one logit read through a sigmoid, the label, the trained length, the extras.
	cj := readJSON(t, filepath.Join(dir, "config.json"))
	for k, want := range map[string]any{
		"architectures": []any{"BertForSequenceClassification"}, "num_labels": float64(1),
		"id2label": map[string]any{"0": "ICD10/E11"}, "label2id": map[string]any{"ICD10/E11": float64(0)},
		"problem_type": "multi_label_classification", "medseq_max_length": float64(maxLen),
		"max_position_embeddings": float64(32), "pad_token_id": float64(0),
		"medseq_extra_weights": []any{extras[0], extras[1]},
	} {
		if !reflect.DeepEqual(cj[k], want) {
			t.Errorf("config.json %s = %v, want %v", k, cj[k], want)
		}
	}
	if s, _ := cj["medseq_logit"].(string); !strings.Contains(s, "sigmoid(logit)") {
		t.Errorf("config.json medseq_logit %q does not say probability = sigmoid(logit)", s)
	}
	if s, _ := cj["medseq_extra_weights_note"].(string); !strings.Contains(s, "drops") {
		t.Errorf("config.json medseq_extra_weights_note %q does not say transformers drops them", s)
	}

	// Load reads what SaveHF wrote; the trained length comes back for scoring.
	got, unused, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(unused) != 0 || got.Config != w.Config || got.Heads != w.Heads {
		t.Fatalf("round trip: unused %v, config %+v vs %+v, heads %+v", unused, got.Config, w.Config, got.Heads)
	}
	for _, s := range w.Specs {
		if !slices.Equal(got.Data[s.Name], w.Data[s.Name]) {
			t.Errorf("%s changed in the round trip", s.Name)
		}
	}
	if n, err := TrainedLength(dir, got.Config); err != nil || n != maxLen {
		t.Errorf("TrainedLength = %d, %v; want %d", n, err, maxLen)
	}
}

// TestSaveHFHeadsAndErrors: a pretraining checkpoint is a BertForMaskedLM without labels;
// Save alone records max_position_embeddings as the trained length; mismatches are refused.
func TestSaveHFHeadsAndErrors(t *testing.T) {
	c := toyConfig(t, false)
	w, err := NewWeights(c, Heads{MLM: true}, 3)
	if err != nil {
		t.Fatal(err)
	}
	tok := hfToyTokenizer(t)
	dir := t.TempDir()
	res, err := SaveHF(dir, w, HFExport{Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	cj := readJSON(t, filepath.Join(dir, "config.json"))
	if !reflect.DeepEqual(cj["architectures"], []any{"BertForMaskedLM"}) || cj["id2label"] != nil ||
		cj["problem_type"] != nil || cj["medseq_logit"] != nil || cj["medseq_extra_weights"] != nil ||
		cj["medseq_max_length"] != float64(32) {
		t.Errorf("MLM config.json: %v", cj)
	}
	if len(res.Dropped) != 0 {
		t.Errorf("dropped %v, want none without age or time embeddings", res.Dropped)
	}
	if tc := readJSON(t, filepath.Join(dir, "tokenizer_config.json")); tc["model_max_length"] != float64(32) {
		t.Errorf("model_max_length %v, want max_position_embeddings 32", tc["model_max_length"])
	}

	old := t.TempDir() // a folder written before medseq_max_length: max_position_embeddings
	if err := os.WriteFile(filepath.Join(old, ConfigFile),
		[]byte(`{"max_position_embeddings": 32}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := TrainedLength(old, c); err != nil || n != 32 {
		t.Errorf("TrainedLength without medseq_max_length = %d, %v; want 32", n, err)
	}

	for name, tc := range map[string]struct {
		x    HFExport
		want string
	}{
		"beyond positions": {HFExport{MaxLen: 33}, "max_position_embeddings 32"},
		"vocabulary": {HFExport{Tokenizer: tokenize.New(must(tokenize.NewVocab(tokenize.SpecialTokens())))},
			"vocab_size is 50"},
	} {
		if _, err := SaveHF(t.TempDir(), w, tc.x); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	w.Config.PadTokenID = 7
	if _, err := SaveHF(t.TempDir(), w, HFExport{Tokenizer: tok}); err == nil ||
		!strings.Contains(err.Error(), "pad_token_id is 7") {
		t.Errorf("pad mismatch: err = %v", err)
	}
}

func must[T any](x T, err error) T {
	if err != nil {
		panic(err)
	}
	return x
}
