package tokenize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
)

// HuggingFace tokenizer.json (tokenizers >= 0.11 layout) for a WordPiece model over whole codes:
// no normalizer, WhitespaceSplit pre-tokenizer, BERT post-processor, left truncation.

type hfAddedToken struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfTruncation struct {
	Direction string `json:"direction"`
	MaxLength int    `json:"max_length"`
	Strategy  string `json:"strategy"`
	Stride    int    `json:"stride"`
}

// hfPadding is tokenizer.json's padding (tokenizers' PaddingParams).
type hfPadding struct {
	Strategy        string `json:"strategy"`
	Direction       string `json:"direction"`
	PadToMultipleOf *int   `json:"pad_to_multiple_of"`
	PadID           int32  `json:"pad_id"`
	PadTypeID       int    `json:"pad_type_id"`
	PadToken        string `json:"pad_token"`
}

// HFOptions say how MarshalHFWith writes tokenizer.json's truncation and padding.
type HFOptions struct {
	// MaxLen is the truncation length with [CLS] and [SEP]: longer inputs lose their oldest
	// tokens (direction Left). 0: no truncation.
	MaxLen int
	// Pad pads a batch to its longest encoding, on the right, with [PAD] (its id), attention
	// mask 0 (tokenizers' BatchLongest). Ignored when the vocabulary has no [PAD].
	Pad bool
}

// MarshalHF writes t as a HuggingFace tokenizer.json truncating at t.MaxLen, without padding.
// The vocabulary is written in id order.
func (t *Tokenizer) MarshalHF() ([]byte, error) { return t.MarshalHFWith(HFOptions{MaxLen: t.MaxLen}) }

// MarshalHFWith writes t as a HuggingFace tokenizer.json with o's truncation and padding.
func (t *Tokenizer) MarshalHFWith(o HFOptions) ([]byte, error) {
	v := t.Vocab
	var b bytes.Buffer
	w := func(s string) { b.WriteString(s) }
	js := func(x any) {
		buf, err := json.Marshal(x)
		if err != nil {
			panic(err) // plain values only
		}
		b.Write(buf)
	}
	w("{\n  \"version\": \"1.0\",\n  \"truncation\": ")
	if o.MaxLen > 0 {
		js(hfTruncation{Direction: "Left", MaxLength: o.MaxLen, Strategy: "LongestFirst", Stride: 0})
	} else {
		w("null")
	}
	w(",\n  \"padding\": ")
	if o.Pad && v.Pad >= 0 {
		js(hfPadding{Strategy: "BatchLongest", Direction: "Right", PadID: v.Pad, PadToken: v.Token(v.Pad)})
	} else {
		w("null")
	}
	w(",\n  \"added_tokens\": [")
	first := true
	for id, tok := range v.tokens {
		if !v.IsSpecial(int32(id)) {
			continue
		}
		if !first {
			w(",")
		}
		first = false
		w("\n    ")
		js(hfAddedToken{ID: int32(id), Content: tok, Special: true})
	}
	w("\n  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": {\"type\": \"WhitespaceSplit\"},\n")
	if v.Cls >= 0 && v.Sep >= 0 {
		w("  \"post_processor\": {\"type\": \"BertProcessing\", \"sep\": [")
		js(v.Token(v.Sep))
		w(", " + strconv.Itoa(int(v.Sep)) + "], \"cls\": [")
		js(v.Token(v.Cls))
		w(", " + strconv.Itoa(int(v.Cls)) + "]},\n")
	} else {
		w("  \"post_processor\": null,\n")
	}
	w("  \"decoder\": {\"type\": \"WordPiece\", \"prefix\": ")
	js(t.ContinuingPrefix)
	w(", \"cleanup\": false},\n  \"model\": {\n    \"type\": ")
	js(t.Model)
	w(",\n    \"unk_token\": ")
	js(v.Token(v.Unk))
	if t.Model == ModelWordPiece {
		w(",\n    \"continuing_subword_prefix\": ")
		js(t.ContinuingPrefix)
		w(",\n    \"max_input_chars_per_word\": " + strconv.Itoa(t.MaxInputCharsPerWord))
	}
	w(",\n    \"vocab\": {")
	for id, tok := range v.tokens {
		if id > 0 {
			w(",")
		}
		w("\n      ")
		js(tok)
		w(": " + strconv.Itoa(id))
	}
	w("\n    }\n  }\n}\n")
	return b.Bytes(), nil
}

// hfFile is the part of tokenizer.json medseq reads.
type hfFile struct {
	Truncation    *hfTruncation   `json:"truncation"`
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type                    string          `json:"type"`
		UnkToken                string          `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    *int            `json:"max_input_chars_per_word"`
		Vocab                   json.RawMessage `json:"vocab"`
	} `json:"model"`
}

// ParseHF reads a tokenizer.json with a WordPiece or WordLevel model. It refuses pipelines
// that would not keep codes whole and exact: a normalizer (lowercasing, accent stripping) or a
// pre-tokenizer other than whitespace splitting. name is used in error messages.
func ParseHF(name string, buf []byte) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(buf, &f); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrBadVocab, err)
	}
	if f.Model.Type != ModelWordPiece && f.Model.Type != ModelWordLevel {
		return nil, fmt.Errorf("%s: %w: model type %q is not supported (want WordPiece or WordLevel)", name,
			ErrBadVocab, f.Model.Type)
	}
	if n := bytes.TrimSpace(f.Normalizer); len(n) > 0 && string(n) != "null" {
		return nil, fmt.Errorf("%s: %w: normalizer %s would change codes (medseq keeps codes exact: no normalizer)",
			name, ErrBadVocab, typeOf(n))
	}
	if p := bytes.TrimSpace(f.PreTokenizer); len(p) > 0 && string(p) != "null" {
		if tp := typeOf(p); tp != "WhitespaceSplit" {
			return nil, fmt.Errorf("%s: %w: pre_tokenizer %s splits codes (want WhitespaceSplit)", name, ErrBadVocab, tp)
		}
	}
	toks, err := denseVocab(f.Model.Vocab)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, a := range f.AddedTokens {
		if int(a.ID) >= len(toks) || toks[a.ID] != a.Content {
			return nil, fmt.Errorf("%s: %w: added token %q id %d is not in the model vocabulary", name, ErrBadVocab,
				a.Content, a.ID)
		}
	}
	v, err := NewVocab(toks)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if f.Model.UnkToken != "" && f.Model.UnkToken != UnkToken {
		id, ok := v.ids[f.Model.UnkToken]
		if !ok {
			return nil, fmt.Errorf("%s: %w: unk_token %q is not in the vocabulary", name, ErrBadVocab, f.Model.UnkToken)
		}
		v.Unk = id
	}
	t := New(v)
	t.Model = f.Model.Type
	if f.Model.ContinuingSubwordPrefix != nil {
		t.ContinuingPrefix = *f.Model.ContinuingSubwordPrefix
	}
	if f.Model.MaxInputCharsPerWord != nil {
		t.MaxInputCharsPerWord = *f.Model.MaxInputCharsPerWord
	}
	if f.Truncation != nil {
		if f.Truncation.Direction != "" && f.Truncation.Direction != "Left" {
			return nil, fmt.Errorf("%s: %w: truncation direction %q would drop the most recent codes (want Left)", name,
				ErrBadVocab, f.Truncation.Direction)
		}
		t.MaxLen = f.Truncation.MaxLength
	}
	return t, nil
}

// ReadHF reads a tokenizer.json file.
func ReadHF(path string) (*Tokenizer, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	return ParseHF(path, buf)
}

func typeOf(raw json.RawMessage) string {
	var x struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(raw, &x) != nil || x.Type == "" {
		return "(unknown)"
	}
	return x.Type
}

// denseVocab turns {"token": id} into tokens by id; ids must be 0..n-1 without holes.
func denseVocab(raw json.RawMessage) ([]string, error) {
	var m map[string]int
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: model vocab: %v", ErrBadVocab, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: empty vocabulary", ErrBadVocab)
	}
	// A JSON object with a repeated key silently keeps the last; catch it by counting keys.
	if n := countKeys(raw); n != len(m) {
		return nil, fmt.Errorf("%w: model vocab lists %d entries for %d distinct tokens (duplicate tokens)",
			ErrBadVocab, n, len(m))
	}
	toks := make([]string, len(m))
	for tok, id := range m {
		if id < 0 || id >= len(m) {
			return nil, fmt.Errorf("%w: token %q has id %d outside 0..%d", ErrBadVocab, tok, id, len(m)-1)
		}
		if toks[id] != "" {
			return nil, fmt.Errorf("%w: tokens %q and %q share id %d", ErrBadVocab, toks[id], tok, id)
		}
		toks[id] = tok
	}
	return toks, nil
}

func countKeys(raw json.RawMessage) int {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return -1
	}
	n := 0
	for dec.More() {
		if _, err := dec.Token(); err != nil { // key
			return -1
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return -1
		}
		n++
	}
	return n
}
