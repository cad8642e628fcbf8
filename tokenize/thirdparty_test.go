package tokenize

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	sugarme "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// Hand-written third-party tokenizer.json files (laid out as HuggingFace tokenizers writes
// them) and a corpus of code sequences, under testdata/thirdparty:
//
//	wordpiece.json  WordPiece, BertProcessing, truncation Left at 24, max_input_chars_per_word 20,
//	                whole codes, code-system prefixes and ## pieces (some non-ASCII)
//	wordlevel.json  WordLevel over whole codes, TemplateProcessing, no truncation
//	bad_*.json      one problem each (see TestLoadThirdParty)
//	corpus.txt      300 lines: whole codes, codes that split into pieces, codes that come out
//	                as [UNK] (unmatched piece, lowercase, longer than max_input_chars_per_word),
//	                special tokens and ## pieces as words, empty lines, tabs, runs of spaces,
//	                Unicode spaces, and lines long enough to be truncated.
const thirdPartyDir = "testdata/thirdparty"

func TestLoadThirdParty(t *testing.T) {
	cases := []struct {
		file     string
		model    string // want this model, or else an error naming all of want
		size     int
		maxLen   int
		want     []string
		notExist bool
		prefix   string
	}{
		{file: "wordpiece.json", model: ModelWordPiece, size: 56, maxLen: 24},
		{file: "wordlevel.json", model: ModelWordLevel, size: 19},
		{file: "wordpiece_prefix.json", model: ModelWordPiece, size: 56, maxLen: 24, prefix: "@@"},
		{file: "bad_bpe.json", want: []string{"model type BPE is not supported"}},
		{file: "bad_normalizer.json", want: []string{"normalizer BertNormalizer would change codes"}},
		{file: "bad_pretokenizer.json", want: []string{"pre_tokenizer BertPreTokenizer splits codes"}},
		{file: "bad_duplicate.json", want: []string{"5 entries for 4 distinct tokens (duplicate tokens)"}},
		{file: "bad_empty.json", want: []string{"empty vocabulary"}},
		{file: "bad_holes.json", want: []string{`"ICD10/I10" has id 5 outside 0..3`}},
		{file: "bad_json.json", want: []string{"github.com/sugarme/tokenizer cannot load it", "invalid character"}},
		// sugarme panics on a model without a vocab; LoadThirdParty turns that into an error.
		{file: "bad_no_vocab.json", want: []string{"github.com/sugarme/tokenizer cannot load it", "malformed file"}},
		{file: "missing.json", want: []string{"read third-party tokenizer"}, notExist: true},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
			path := filepath.Join(thirdPartyDir, c.file)
			tok, err := LoadThirdParty(path)
			if c.model != "" {
				if err != nil {
					t.Fatal(err)
				}
				if tok.Model != c.model || tok.Vocab.Len() != c.size || tok.MaxLen != c.maxLen {
					t.Fatalf("got model %s, %d tokens, max len %d; want %s, %d, %d", tok.Model, tok.Vocab.Len(), tok.MaxLen, c.model, c.size, c.maxLen)
				}
				if c.prefix != "" && tok.ContinuingPrefix != c.prefix {
					t.Fatalf("continuing prefix %q, want %q", tok.ContinuingPrefix, c.prefix)
				}
				v := tok.Vocab
				if v.Pad != 0 || v.Unk != 1 || v.Cls != 2 || v.Sep != 3 || v.Mask != 4 || tok.WholeEnd != 0 {
					t.Fatalf("specials %d %d %d %d %d, whole end %d", v.Pad, v.Unk, v.Cls, v.Sep, v.Mask, tok.WholeEnd)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if c.notExist {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("error %q is not os.ErrNotExist", msg)
				}
			} else if !errors.Is(err, ErrBadVocab) {
				t.Errorf("error %q does not wrap ErrBadVocab", msg)
			}
		})
	}
}

// The vocabulary cross-check catches a vocabulary sugarme reads differently from ours.
func TestSameVocab(t *testing.T) {
	v, err := NewVocab([]string{"[PAD]", "[UNK]", "A", "##1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ref  map[string]int
		want string
	}{
		{map[string]int{"[PAD]": 0, "[UNK]": 1, "A": 2, "##1": 3}, ""},
		{map[string]int{"[PAD]": 0, "[UNK]": 1, "A": 2}, "3 tokens, medseq read 4"},
		{map[string]int{"[PAD]": 0, "[UNK]": 1, "A": 2, "##2": 3}, `token "##1" (id 3) is missing`},
		{map[string]int{"[PAD]": 0, "[UNK]": 1, "A": 3, "##1": 2}, `token "A" has id 3, medseq read 2`},
	} {
		err := sameVocab(c.ref, v)
		if (err == nil) != (c.want == "") || err != nil && err.Error() != c.want {
			t.Errorf("sameVocab(%v) = %v, want %q", c.ref, err, c.want)
		}
	}
}

func thirdPartyCorpus(tb testing.TB) []string {
	tb.Helper()
	buf, err := os.ReadFile(filepath.Join(thirdPartyDir, "corpus.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(buf), "\n"), "\n")
}

func sugarmeIDs(tb testing.TB, ref *sugarme.Tokenizer, line string) []int32 {
	tb.Helper()
	enc, err := ref.EncodeSingle(line, true)
	if err != nil {
		tb.Fatalf("sugarme: encode %q: %v", line, err)
	}
	ids := make([]int32, len(enc.Ids))
	for i, id := range enc.Ids {
		ids[i] = int32(id)
	}
	return ids
}

// leftTruncate is what HuggingFace does with truncation {"direction": "Left"} on a single
// sequence with [CLS] ... [SEP]: keep the last maxLen-2 tokens of the body.
func leftTruncate(ids []int32, maxLen int) []int32 {
	if maxLen <= 0 || len(ids) <= maxLen {
		return ids
	}
	body := ids[1 : len(ids)-1]
	out := append([]int32{ids[0]}, body[len(body)-(maxLen-2):]...)
	return append(out, ids[len(ids)-1])
}

// sugarmeText rewrites a line so that sugarme reads it as HuggingFace reads the original:
// the Unicode white space sugarme does not split on (all but ' ', \t, \n, \r) becomes ' '
// (HuggingFace's WhitespaceSplit splits on all of it, like strings.Fields), and special tokens
// get spaces around them (HuggingFace extracts added tokens from anywhere in the text, so the
// spaces change nothing for it).
func sugarmeText(line string) string {
	line = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, line)
	return specialSpacer.Replace(line)
}

var specialSpacer = func() *strings.Replacer {
	var pairs []string
	for _, s := range SpecialTokens() {
		pairs = append(pairs, s, " "+s+" ")
	}
	return strings.NewReplacer(pairs...)
}()

// Known divergences of sugarme v0.3.0 from HuggingFace tokenizers (checked against
// HuggingFace tokenizers 0.23.2, see corpus.hf.*.ids). HuggingFace is the reference; we follow
// it, and TestThirdPartyMatchesSugarme compares with sugarme only around these bugs:
//
//  1. Truncation: sugarme ignores truncation.direction (pretrained/truncation.go leaves it
//     unread) and always drops the newest tokens; with "Left" HuggingFace drops the oldest.
//  2. WhitespaceSplit: sugarme splits only on ' ', \t, \n and \r (normalizer.isWhitespace);
//     HuggingFace splits on all Unicode White_Space (\v, \f, U+0085, U+00A0, U+3000, ...), so
//     sugarme reads "A\u00a0B" as one unknown word.
//  3. WordPiece continuing_subword_prefix: sugarme ignores the file's value and always uses
//     "##" (pretrained.createWordPiece calls opts.Get instead of opts.Set, and wordpiece.New
//     looks for the key "continuingSubwordPrefix"), so a vocabulary with "@@" pieces encodes
//     every split code as [UNK].
//  4. Added tokens: sugarme's AddedVocabulary.findMatches sorts the matches by start, then
//     again by token (sort.Sort(byId)), and skips any match that starts before the last one
//     kept; so a special token followed later in the line by one with a lower index in
//     added_tokens is not extracted. Alone between spaces it is still found as a word of the
//     model vocabulary; glued to a code it is lost ("ICD10/I10[SEP][UNK]" reads as one unknown
//     word "ICD10/I10[SEP]", then [UNK]), where HuggingFace splits it out.
//
// TestSugarmeDivergences pins them: when one is fixed, drop its workaround.

// TestThirdPartyMatchesSugarme encodes the corpus with sugarme's tokenizer (an independent
// Go port of HuggingFace tokenizers) and with ours, and requires identical ids. Around the
// divergences above: lines longer than max_length are compared with sugarme's untruncated
// encoding truncated from the left; sugarme reads lines with Unicode white space rewritten as
// ' '; the "@@" file is compared with the same vocabulary under "##" (wordpiece.json), on the
// corpus with "##" rewritten as "@@" for ours.
func TestThirdPartyMatchesSugarme(t *testing.T) {
	lines := thirdPartyCorpus(t)
	cases := []struct {
		file, ref string
		ours      func(string) string // the line ours encodes, from the corpus line
	}{
		{file: "wordpiece.json", ref: "wordpiece.json"},
		{file: "wordlevel.json", ref: "wordlevel.json"},
		{file: "wordpiece_prefix.json", ref: "wordpiece.json", ours: func(s string) string { return strings.ReplaceAll(s, "##", "@@") }},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
			tok, err := LoadThirdParty(filepath.Join(thirdPartyDir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			refPath := filepath.Join(thirdPartyDir, c.ref)
			ref, err := pretrained.FromFile(refPath)
			if err != nil {
				t.Fatal(err)
			}
			full, err := pretrained.FromFile(refPath)
			if err != nil {
				t.Fatal(err)
			}
			full.WithTruncation(nil)
			var truncated, unknown, rewritten int
			for i, line := range lines {
				ourLine, refLine := line, sugarmeText(line)
				if c.ours != nil {
					ourLine = c.ours(line)
				}
				if refLine != line {
					rewritten++
				}
				got := tok.EncodeText(ourLine, Options{MaxLen: tok.MaxLen})
				all := sugarmeIDs(t, full, refLine)
				want := leftTruncate(all, tok.MaxLen)
				if len(all) == len(want) {
					// Fits: sugarme as loaded (with its truncation) must agree directly.
					want = sugarmeIDs(t, ref, refLine)
				} else {
					truncated++
				}
				if !reflect.DeepEqual(got.IDs, want) {
					t.Fatalf("line %d %q:\n ours    %v\n sugarme %v", i+1, ourLine, got.IDs, want)
				}
				if got.Truncated != len(all)-len(want) {
					t.Fatalf("line %d: truncated %d, want %d", i+1, got.Truncated, len(all)-len(want))
				}
				unknown += got.Unknown
			}
			if tok.MaxLen > 0 && truncated == 0 || unknown == 0 || rewritten == 0 {
				t.Fatalf("corpus exercises too little: %d truncated lines, %d [UNK], %d lines rewritten for sugarme", truncated, unknown, rewritten)
			}
		})
	}
}

// TestThirdPartyMatchesHuggingFace compares ours with the ids HuggingFace tokenizers 0.23.2
// gave for the corpus (no workarounds: HuggingFace is the reference). Regenerate with
//
//	cd testdata/hf && for m in wordpiece wordlevel; do
//	  node encode.js ../thirdparty/$m.json ../thirdparty/corpus.txt ../thirdparty/corpus.hf.$m.ids; done
//
// (HuggingFace gives wordpiece_prefix.json on the corpus with "##" rewritten as "@@" the same
// ids as wordpiece.json on the corpus.)
func TestThirdPartyMatchesHuggingFace(t *testing.T) {
	lines := thirdPartyCorpus(t)
	for _, c := range []struct {
		file, ids string
		ours      func(string) string
	}{
		{file: "wordpiece.json", ids: "corpus.hf.wordpiece.ids"},
		{file: "wordlevel.json", ids: "corpus.hf.wordlevel.ids"},
		{file: "wordpiece_prefix.json", ids: "corpus.hf.wordpiece.ids", ours: func(s string) string { return strings.ReplaceAll(s, "##", "@@") }},
	} {
		t.Run(strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
			tok, err := LoadThirdParty(filepath.Join(thirdPartyDir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			buf, err := os.ReadFile(filepath.Join(thirdPartyDir, c.ids))
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Split(strings.TrimSuffix(string(buf), "\n"), "\n")
			if len(want) != len(lines) {
				t.Fatalf("%s has %d lines, corpus %d", c.ids, len(want), len(lines))
			}
			for i, line := range lines {
				if c.ours != nil {
					line = c.ours(line)
				}
				ids := tok.EncodeText(line, Options{MaxLen: tok.MaxLen}).IDs
				got := make([]string, len(ids))
				for j, id := range ids {
					got[j] = strconv.Itoa(int(id))
				}
				if g := strings.Join(got, " "); g != want[i] {
					t.Fatalf("line %d %q:\n ours        %s\n HuggingFace %s", i+1, line, g, want[i])
				}
			}
		})
	}
}

// TestSugarmeDivergences pins the sugarme bugs listed above. If a case fails, sugarme was
// fixed: remove the matching workaround from TestThirdPartyMatchesSugarme.
func TestSugarmeDivergences(t *testing.T) {
	for _, c := range []struct {
		name, file, line string
		sugarme, hf      []int32 // hf: what HuggingFace (and ours) gives
	}{
		{"truncation ignores direction", "wordpiece.json", strings.Repeat("ICD10/I10 ", 22) + "ICD10/E11.9 CPT/99213",
			append(append([]int32{2}, slices.Repeat([]int32{6}, 22)...), 3),
			append(append([]int32{2}, slices.Repeat([]int32{6}, 20)...), 5, 17, 3)},
		{"whitespace is ASCII only", "wordlevel.json", "ICD10/E11.9\u00a0ICD10/I10", []int32{2, 1, 3}, []int32{2, 5, 6, 3}},
		{"special tokens glued to codes", "wordpiece.json", "ICD10/I10[SEP][UNK]", []int32{2, 1, 1, 3}, []int32{2, 6, 3, 1, 3}},
		{"continuing prefix ignored", "wordpiece_prefix.json", "ICD10/E11.90 ICD10/I10.1", []int32{2, 1, 1, 3}, []int32{2, 5, 29, 6, 39, 30, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(thirdPartyDir, c.file)
			ref, err := pretrained.FromFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := sugarmeIDs(t, ref, c.line); !slices.Equal(got, c.sugarme) {
				t.Errorf("sugarme gives %v, used to give %v (HuggingFace: %v)", got, c.sugarme, c.hf)
			}
			tok, err := LoadThirdParty(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.EncodeText(c.line, Options{MaxLen: tok.MaxLen}).IDs; !slices.Equal(got, c.hf) {
				t.Errorf("ours gives %v, HuggingFace %v", got, c.hf)
			}
		})
	}
}

// BenchmarkSugarmeVsOurs encodes a corpus with wordpiece.json, one line per call on one
// goroutine, without truncation, with sugarme and with ours; compare the tokens/s metrics
// ([CLS] and [SEP] count as tokens). "mixed" is corpus.txt (many codes split into pieces or
// [UNK]: the slow path of ours); "whole" is corpus.txt keeping only the words that are in the
// vocabulary (one map lookup each, the common case with a vocabulary built for the data).
func BenchmarkSugarmeVsOurs(b *testing.B) {
	mixed := thirdPartyCorpus(b)
	path := filepath.Join(thirdPartyDir, "wordpiece.json")
	tok, err := LoadThirdParty(path)
	if err != nil {
		b.Fatal(err)
	}
	ref, err := pretrained.FromFile(path)
	if err != nil {
		b.Fatal(err)
	}
	ref.WithTruncation(nil)
	var whole []string
	for _, line := range mixed {
		var kept []string
		for _, w := range strings.Fields(line) {
			if _, ok := tok.Vocab.ID(w); ok {
				kept = append(kept, w)
			}
		}
		whole = append(whole, strings.Join(kept, " "))
	}
	for _, c := range []struct {
		name  string
		lines []string
	}{{"mixed", mixed}, {"whole", whole}} {
		tokens := 0
		for _, line := range c.lines {
			tokens += len(tok.EncodeText(line, Options{}).IDs)
		}
		b.Run(c.name+"/sugarme", func(b *testing.B) {
			for b.Loop() {
				for _, line := range c.lines {
					if _, err := ref.EncodeSingle(line, true); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
		b.Run(c.name+"/ours", func(b *testing.B) {
			for b.Loop() {
				for _, line := range c.lines {
					tok.EncodeText(line, Options{})
				}
			}
			b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
