package tokenize

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The special tokens, in the order of their ids (0..4) in vocabularies medseq builds.
const (
	PadToken  = "[PAD]"
	UnkToken  = "[UNK]"
	ClsToken  = "[CLS]"
	SepToken  = "[SEP]"
	MaskToken = "[MASK]"
)

// SpecialTokens returns the special tokens in id order.
func SpecialTokens() []string { return []string{PadToken, UnkToken, ClsToken, SepToken, MaskToken} }

// ErrBadVocab is wrapped by every error about a malformed vocabulary or tokenizer file.
var ErrBadVocab = errors.New("bad vocabulary")

// Vocab maps tokens to ids and back.
type Vocab struct {
	tokens []string
	ids    map[string]int32
	// Ids of the special tokens (-1 when absent).
	Pad, Unk, Cls, Sep, Mask int32
}

// NewVocab makes a vocabulary from tokens in id order. Duplicate or empty tokens, tokens with
// whitespace, and a missing [UNK] are errors.
func NewVocab(tokens []string) (*Vocab, error) {
	v := &Vocab{tokens: tokens, ids: make(map[string]int32, len(tokens))}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: empty vocabulary", ErrBadVocab)
	}
	for i, t := range tokens {
		if t == "" {
			return nil, fmt.Errorf("%w: token %d is empty", ErrBadVocab, i)
		}
		if strings.ContainsAny(t, " \t\r\n") {
			return nil, fmt.Errorf("%w: token %d (%q) contains whitespace", ErrBadVocab, i, t)
		}
		if j, dup := v.ids[t]; dup {
			return nil, fmt.Errorf("%w: token %q appears twice (ids %d and %d)", ErrBadVocab, t, j, i)
		}
		v.ids[t] = int32(i)
	}
	v.Pad, v.Unk, v.Cls, v.Sep, v.Mask = v.id(PadToken), v.id(UnkToken), v.id(ClsToken), v.id(SepToken), v.id(MaskToken)
	if v.Unk < 0 {
		return nil, fmt.Errorf("%w: no %s token", ErrBadVocab, UnkToken)
	}
	return v, nil
}

func (v *Vocab) id(t string) int32 {
	if id, ok := v.ids[t]; ok {
		return id
	}
	return -1
}

// ID returns the id of a token.
func (v *Vocab) ID(t string) (int32, bool) {
	id, ok := v.ids[t]
	return id, ok
}

// Token returns the token of an id.
func (v *Vocab) Token(id int32) string { return v.tokens[id] }

// Len is the number of tokens.
func (v *Vocab) Len() int { return len(v.tokens) }

// Tokens returns the tokens in id order; the caller must not modify it.
func (v *Vocab) Tokens() []string { return v.tokens }

// IsSpecial reports whether id is one of the special tokens.
func (v *Vocab) IsSpecial(id int32) bool {
	return id == v.Pad || id == v.Unk || id == v.Cls || id == v.Sep || id == v.Mask
}

// ReadVocabTxt reads a vocab.txt (one token per line, line n is id n-1).
func ReadVocabTxt(path string) (*Vocab, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read vocabulary: %w", err)
	}
	defer f.Close()
	var toks []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		toks = append(toks, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := NewVocab(toks)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}

// VocabTxt is the vocab.txt content of v.
func (v *Vocab) VocabTxt() []byte {
	var b strings.Builder
	for _, t := range v.tokens {
		b.WriteString(t)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
