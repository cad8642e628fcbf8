package tokenize

import (
	"fmt"

	"github.com/medseq/medseq/data"
)

// A vocabulary holds codes in their text form (data.CodeText): the code itself unless it holds
// whitespace, a control character, a '%' before two hex digits, a special token's name or a
// leading "##", which are %-escaped. vocab.txt, tokenizer.json and `tokenize encode` all use
// that form, so HuggingFace's WhitespaceSplit keeps every code one word and no code is ever
// read as a special token; AppendCode and WholeCode take the code as the data spells it.

// CodeKind is how a tokenizer reads one code.
type CodeKind uint8

// The three kinds: every code occurrence is exactly one.
const (
	CodeWhole   CodeKind = iota // one token: the code is in the vocabulary
	CodePieced                  // a known parent (a code or a stem) and suffix pieces: ICD10/E11 ##.65
	CodeUnknown                 // [UNK]
)

func (k CodeKind) String() string {
	switch k {
	case CodeWhole:
		return "whole"
	case CodePieced:
		return "pieced"
	}
	return "unknown"
}

// AppendCode appends the ids of one code (as the data spells it) and says how it was read: the
// ids AppendWord gives its text form, which HuggingFace's tokenizer.json gives too.
func (t *Tokenizer) AppendCode(dst []int32, code string) ([]int32, CodeKind) {
	n0 := len(dst)
	dst, unk := t.AppendWord(dst, data.CodeText(code))
	return dst, t.kindOf(dst[n0:], unk)
}

// WholeCode returns the one id of a code that is in the vocabulary as it stands (most are);
// ok=false sends the caller to AppendCode. Allocation-free for codes whose text form is
// themselves.
func (t *Tokenizer) WholeCode(code string) (int32, bool) { return t.WholeWord(data.CodeText(code)) }

// CodeKindOf is the kind of a code whose ids (and [UNK] flag) AppendWord or AppendCode gave.
func (t *Tokenizer) CodeKindOf(ids []int32, unk bool) CodeKind { return t.kindOf(ids, unk) }

func (t *Tokenizer) kindOf(ids []int32, unk bool) CodeKind {
	switch {
	case unk:
		return CodeUnknown
	case len(ids) == 1 && !t.IsPiece(ids[0]):
		return CodeWhole
	}
	return CodePieced
}

// IsPiece reports whether id is a WordPiece piece (a parent stem or a suffix) rather than a
// special token, a whole code or a value token (false for every id of a tokenizer that does not
// say, WholeEnd 0).
func (t *Tokenizer) IsPiece(id int32) bool { return t.WholeEnd > 0 && id >= t.WholeEnd }

// Parent returns the one token that stands for a code where one must (XGBoost's features):
// the code's token when it is whole, its parent — the first token, a whole code or a stem,
// never a suffix piece — when it is pieced, [UNK] when it is unknown.
func (t *Tokenizer) Parent(ids []int32, kind CodeKind) int32 {
	if kind == CodeUnknown || len(ids) == 0 {
		return t.Vocab.Unk
	}
	return ids[0]
}

// Code returns the code a token stands for (the token's text form decoded) and whether the
// token is a whole code rather than a special token, a value token or a piece.
func (t *Tokenizer) Code(id int32) (string, bool) {
	v := t.Vocab
	if id < 0 || int(id) >= v.Len() || v.IsSpecial(id) || t.IsPiece(id) || t.IsValueToken(id) {
		if id >= 0 && int(id) < v.Len() {
			return v.Token(id), false
		}
		return "", false
	}
	return data.ParseCodeText(v.Token(id)), true
}

// CodePieces returns the tokens a code encodes to (for display and tests).
func (t *Tokenizer) CodePieces(code string) []string { return t.Pieces(data.CodeText(code)) }

// CodeRates counts code occurrences by how a tokenizer reads them: whole-code hits, pieced
// (a parent code and suffix pieces) and [UNK]. Whole + Pieced + Unknown = Codes.
type CodeRates struct {
	Codes   int64 `json:"codes"`
	Whole   int64 `json:"whole"`
	Pieced  int64 `json:"pieced"`
	Unknown int64 `json:"unknown"`
}

// Count adds one occurrence of kind k.
func (r *CodeRates) Count(k CodeKind) {
	r.Codes++
	switch k {
	case CodeWhole:
		r.Whole++
	case CodePieced:
		r.Pieced++
	default:
		r.Unknown++
	}
}

// Add adds another count.
func (r *CodeRates) Add(o CodeRates) {
	r.Codes += o.Codes
	r.Whole += o.Whole
	r.Pieced += o.Pieced
	r.Unknown += o.Unknown
}

// Rates are the three shares of Codes (zeros when there is none).
func (r CodeRates) Rates() (whole, pieced, unknown float64) {
	if r.Codes == 0 {
		return 0, 0, 0
	}
	n := float64(r.Codes)
	return float64(r.Whole) / n, float64(r.Pieced) / n, float64(r.Unknown) / n
}

// String is "whole 97.10% (11987), pieced 1.20% (148), [UNK] 1.70% (210) of 12345 codes".
func (r CodeRates) String() string {
	w, p, u := r.Rates()
	return fmt.Sprintf("whole %.2f%% (%d), pieced %.2f%% (%d), [UNK] %.2f%% (%d) of %d codes", 100*w, r.Whole, 100*p,
		r.Pieced, 100*u, r.Unknown, r.Codes)
}
