package tokenize

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Files transformers' AutoTokenizer.from_pretrained reads beside tokenizer.json and vocab.txt.
const (
	HFTokenizerConfigFile = "tokenizer_config.json"
	HFSpecialTokensFile   = "special_tokens_map.json"
)

// HFTokenizerClass is tokenizer_config.json's tokenizer_class. PreTrainedTokenizerFast runs
// tokenizer.json exactly as written (no normalizer: codes keep their case); BertTokenizerFast
// would not: it expects a BertNormalizer and rebuilds one from do_lower_case.
const HFTokenizerClass = "PreTrainedTokenizerFast"

// hfAddedTokenDecoder is one entry of tokenizer_config.json's added_tokens_decoder.
type hfAddedTokenDecoder struct {
	Content    string `json:"content"`
	Lstrip     bool   `json:"lstrip"`
	Normalized bool   `json:"normalized"`
	Rstrip     bool   `json:"rstrip"`
	SingleWord bool   `json:"single_word"`
	Special    bool   `json:"special"`
}

// specialTokensMap is special_tokens_map.json: the special tokens the vocabulary has, by role.
func (t *Tokenizer) specialTokensMap() map[string]string {
	v := t.Vocab
	m := map[string]string{}
	for _, s := range []struct {
		role string
		id   int32
	}{{"unk_token", v.Unk}, {"sep_token", v.Sep}, {"pad_token", v.Pad}, {"cls_token", v.Cls}, {"mask_token", v.Mask}} {
		if s.id >= 0 {
			m[s.role] = v.Token(s.id)
		}
	}
	return m
}

// HFFolderFiles returns, by file name, what makes a folder a HuggingFace tokenizer for a model
// of maxLen positions (with [CLS] and [SEP]): tokenizer.json truncating at maxLen (left: the
// oldest codes go, as medseq's encoder does) and padding batches on the right with [PAD];
// vocab.txt; tokenizer_config.json (PreTrainedTokenizerFast, model_max_length maxLen,
// truncation_side left, padding_side right, no lowercasing, the special tokens); and
// special_tokens_map.json. transformers' AutoTokenizer.from_pretrained loads the folder and,
// called with truncation=True, encodes a line of codes to the ids medseq's EncodeText gives
// with MaxLen maxLen; the tokenizers library applies the truncation without being asked.
func (t *Tokenizer) HFFolderFiles(maxLen int) (map[string][]byte, error) {
	if maxLen < 3 {
		return nil, fmt.Errorf("HuggingFace tokenizer: max length %d must be at least 3 ([CLS], a code, [SEP])", maxLen)
	}
	v := t.Vocab
	hf, err := t.MarshalHFWith(HFOptions{MaxLen: maxLen, Pad: true})
	if err != nil {
		return nil, err
	}
	special := t.specialTokensMap()
	decoder := map[string]hfAddedTokenDecoder{}
	for id, tok := range v.tokens {
		if v.IsSpecial(int32(id)) {
			decoder[strconv.Itoa(id)] = hfAddedTokenDecoder{Content: tok, Special: true}
		}
	}
	cfg := map[string]any{
		"tokenizer_class":              HFTokenizerClass,
		"model_max_length":             maxLen,
		"truncation_side":              "left",
		"padding_side":                 "right",
		"do_lower_case":                false,
		"clean_up_tokenization_spaces": false,
		"model_input_names":            []string{"input_ids", "token_type_ids", "attention_mask"},
		"added_tokens_decoder":         decoder,
	}
	for role, tok := range special {
		cfg[role] = tok
	}
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	sj, err := json.MarshalIndent(special, "", "  ")
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		HFFile:                hf,
		VocabFile:             v.VocabTxt(),
		HFTokenizerConfigFile: append(cj, '\n'),
		HFSpecialTokensFile:   append(sj, '\n'),
	}, nil
}
