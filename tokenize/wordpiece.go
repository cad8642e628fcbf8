package tokenize

import (
	"strings"
	"unicode/utf8"
)

// Model kinds a tokenizer can have.
const (
	ModelWordPiece = "WordPiece"
	ModelWordLevel = "WordLevel"
)

// Tokenizer turns codes into token ids. It is safe for concurrent use once built.
type Tokenizer struct {
	Vocab *Vocab
	// Model is ModelWordPiece (whole codes, then pieces) or ModelWordLevel (whole codes only).
	Model string
	// ContinuingPrefix marks a piece that continues a word ("##").
	ContinuingPrefix string
	// MaxInputCharsPerWord: longer words become [UNK] (HuggingFace's rule).
	MaxInputCharsPerWord int
	// MaxLen is the default total length (with [CLS] and [SEP]) recorded in tokenizer.json's
	// truncation; 0 means none.
	MaxLen int
	// WholeEnd: ids below it are special tokens and whole codes, ids from it on are pieces
	// (0 when unknown, as for a third-party tokenizer: every token then counts as whole).
	WholeEnd int32
	// VisitSeparators is the encoding default recorded with the tokenizer.
	VisitSeparators bool
}

// New returns a WordPiece tokenizer over v with HuggingFace's defaults.
func New(v *Vocab) *Tokenizer {
	return &Tokenizer{Vocab: v, Model: ModelWordPiece, ContinuingPrefix: "##", MaxInputCharsPerWord: 100}
}

// AppendWord appends the ids of one word (a code) to dst and reports whether it came out as
// [UNK]. A word in the vocabulary is one token; otherwise WordPiece takes the longest prefix
// in the vocabulary, then the longest continuation piece, and so on; if any part cannot be
// matched, the whole word is [UNK] — exactly HuggingFace's WordPiece.
func (t *Tokenizer) AppendWord(dst []int32, word string) ([]int32, bool) {
	if id, ok := t.Vocab.ids[word]; ok {
		return append(dst, id), id == t.Vocab.Unk
	}
	n0 := len(dst)
	// On failure drop any pieces already appended: the whole word is [UNK].
	unk := func() ([]int32, bool) { return append(dst[:n0], t.Vocab.Unk), true }
	if t.Model != ModelWordPiece {
		return unk()
	}
	if utf8.RuneCountInString(word) > t.MaxInputCharsPerWord {
		return unk()
	}
	var buf []byte
	for start := 0; start < len(word); {
		end := len(word)
		found := int32(-1)
		for start < end {
			var id int32
			var ok bool
			if start == 0 {
				id, ok = t.Vocab.ids[word[:end]]
			} else {
				buf = append(append(buf[:0], t.ContinuingPrefix...), word[start:end]...)
				id, ok = t.Vocab.ids[string(buf)]
			}
			if ok {
				found = id
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if found < 0 {
			return unk()
		}
		dst = append(dst, found)
		start = end
	}
	if len(dst) == n0 {
		return unk()
	}
	return dst, false
}

// Pieces returns the tokens a word encodes to (for display and tests).
func (t *Tokenizer) Pieces(word string) []string {
	ids, _ := t.AppendWord(nil, word)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.Vocab.Token(id)
	}
	return out
}

// isSpecialWord reports whether a whitespace-separated word is a special token, which is
// never split (HuggingFace matches added tokens before the model sees the text).
func (t *Tokenizer) specialID(word string) (int32, bool) {
	if len(word) < 3 || word[0] != '[' || word[len(word)-1] != ']' {
		return 0, false
	}
	id, ok := t.Vocab.ids[word]
	if !ok || !t.Vocab.IsSpecial(id) {
		return 0, false
	}
	return id, true
}

// fields splits on whitespace as HuggingFace's WhitespaceSplit pre-tokenizer does.
func fields(s string) []string { return strings.Fields(s) }
