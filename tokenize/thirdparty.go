package tokenize

import (
	"bytes"
	"fmt"
	"os"

	sugarme "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/model/bpe"
	"github.com/sugarme/tokenizer/model/unigram"
	"github.com/sugarme/tokenizer/model/wordlevel"
	"github.com/sugarme/tokenizer/model/wordpiece"
	"github.com/sugarme/tokenizer/pretrained"
)

// LoadThirdParty reads a tokenizer.json written by someone else (HuggingFace tokenizers or a
// tool built on it) with a WordPiece or WordLevel model, and returns medseq's own Tokenizer
// for it.
//
// The file is loaded twice: once by github.com/sugarme/tokenizer, a Go port of HuggingFace
// tokenizers, as an independent reader (a file it cannot load is refused with its error,
// wrapped with the path), and once by ParseHF, which also refuses pipelines that would not
// keep codes whole and exact (a normalizer, a pre-tokenizer other than WhitespaceSplit). The
// two vocabularies must then agree token for token. sugarme is used for loading and
// validation only, never for encoding, so keep it off the hot path: it is 50-100x slower than
// the returned Tokenizer (BenchmarkSugarmeVsOurs: about 50x on codes that split into pieces,
// 75x on whole codes, one goroutine each), it cannot save, and it diverges from HuggingFace
// on corners our encoder follows HuggingFace on (it ignores truncation.direction and a
// continuing_subword_prefix other than "##", splits only on ASCII white space, and can miss a
// special token glued to a code; see thirdparty_test.go).
//
// Unlike Load, LoadThirdParty reads no medseq_tokenizer.json: WholeEnd stays 0 (every token
// counts as whole) and VisitSeparators false.
func LoadThirdParty(path string) (*Tokenizer, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read third-party tokenizer: %w", err)
	}
	ref, err := loadSugarme(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: github.com/sugarme/tokenizer cannot load it: %w", path, ErrBadVocab, err)
	}
	model := ref.GetModel()
	typ := modelType(model)
	if typ != ModelWordPiece && typ != ModelWordLevel {
		return nil, fmt.Errorf("%s: %w: model type %s is not supported (want WordPiece or WordLevel)", path, ErrBadVocab, typ)
	}
	t, err := ParseHF(path, buf)
	if err != nil {
		return nil, err
	}
	if t.Model != typ {
		return nil, fmt.Errorf("%s: %w: model type: sugarme read %s, medseq read %s", path, ErrBadVocab, typ, t.Model)
	}
	if err := sameVocab(model.GetVocab(), t.Vocab); err != nil {
		return nil, fmt.Errorf("%s: %w: vocabulary read by github.com/sugarme/tokenizer differs: %v", path, ErrBadVocab, err)
	}
	return t, nil
}

// loadSugarme runs sugarme's loader, turning its panics (it type-asserts JSON fields without
// checking, e.g. a missing "type" or a vocab that is not an object) into errors.
func loadSugarme(buf []byte) (tk *sugarme.Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			tk, err = nil, fmt.Errorf("malformed file: %v", r)
		}
	}()
	return pretrained.FromReader(bytes.NewReader(buf))
}

// modelType names a sugarme model as tokenizer.json's model.type does.
func modelType(m sugarme.Model) string {
	switch m.(type) {
	case *wordpiece.WordPiece, wordpiece.WordPiece:
		return ModelWordPiece
	case *wordlevel.WordLevel:
		return ModelWordLevel
	case *bpe.BPE, bpe.BPE:
		return "BPE"
	case *unigram.Unigram:
		return "Unigram"
	case nil:
		return "(none)"
	}
	return fmt.Sprintf("%T", m)
}

// sameVocab reports the first difference between sugarme's token->id map and v.
func sameVocab(ref map[string]int, v *Vocab) error {
	if len(ref) != v.Len() {
		return fmt.Errorf("%d tokens, medseq read %d", len(ref), v.Len())
	}
	for id, tok := range v.Tokens() {
		rid, ok := ref[tok]
		if !ok {
			return fmt.Errorf("token %q (id %d) is missing", tok, id)
		}
		if rid != id {
			return fmt.Errorf("token %q has id %d, medseq read %d", tok, rid, id)
		}
	}
	return nil
}
