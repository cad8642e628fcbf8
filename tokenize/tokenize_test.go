package tokenize

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
)

// counterOf counts the given sequences of codes (one label each: 1, 0 or -1).
func counterOf(t *testing.T, seqs [][]string, labels []int) (*Counter, *data.Codes) {
	t.Helper()
	codes := data.NewCodes()
	c := NewCounter(codes)
	for i, s := range seqs {
		ev := make([]data.Event, len(s))
		for j, code := range s {
			ev[j] = data.Event{Time: int64(j), Code: codes.ID(code), Value: data.NoValue}
		}
		l := -1
		if labels != nil {
			l = labels[i]
		}
		c.Add(ev, l)
	}
	return c, codes
}

func repeat(code string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = code
	}
	return out
}

func testTokenizer(t *testing.T) *Tokenizer {
	t.Helper()
	seqs := [][]string{
		append(repeat("ICD10/E11.9", 20), repeat("SNOMED/44054006", 15)...),
		append(repeat("ICD10/E10.65", 8), repeat("ICD10/I10", 30)...),
		append(repeat("LAB//51237//UNK", 6), repeat("ATC/A10BA02", 7)...),
		repeat("RARE/1", 2),
	}
	c, _ := counterOf(t, seqs, nil)
	cfg := DefaultBuildConfig()
	cfg.MaxLen = 8
	tok, rep, err := Build(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.WholeCodes != 6 || rep.DroppedRare != 1 {
		t.Fatalf("report %+v", rep)
	}
	return tok
}

func TestBuildVocabulary(t *testing.T) {
	tok := testTokenizer(t)
	v := tok.Vocab
	// Specials first, then whole codes by frequency.
	want := []string{PadToken, UnkToken, ClsToken, SepToken, MaskToken, "ICD10/I10", "ICD10/E11.9", "SNOMED/44054006", "ICD10/E10.65", "ATC/A10BA02", "LAB//51237//UNK"}
	if got := v.Tokens()[:len(want)]; !reflect.DeepEqual(got, want) {
		t.Errorf("vocabulary starts %v, want %v", got, want)
	}
	if _, ok := v.ID("RARE/1"); ok {
		t.Error("a code under --min-count is in the vocabulary")
	}
	if tok.WholeEnd != int32(len(want)) {
		t.Errorf("WholeEnd %d", tok.WholeEnd)
	}
	t.Run("top-N", func(t *testing.T) {
		c, _ := counterOf(t, [][]string{append(repeat("A/1", 9), append(repeat("B/2", 8), repeat("C/3", 7)...)...)}, nil)
		tk, rep, err := Build(c, BuildConfig{VocabSize: 2, MinCount: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := tk.Vocab.ID("C/3"); ok || rep.DroppedTopN != 1 || tk.Vocab.Len() != 7 {
			t.Errorf("vocab %v, report %+v", tk.Vocab.Tokens(), rep)
		}
	})
	t.Run("nothing reaches min-count", func(t *testing.T) {
		c, _ := counterOf(t, [][]string{{"A/1"}}, nil)
		if _, _, err := Build(c, BuildConfig{VocabSize: 10, MinCount: 5}); !errors.Is(err, ErrNoCodes) {
			t.Errorf("err %v", err)
		}
	})
	t.Run("code with whitespace", func(t *testing.T) {
		c, _ := counterOf(t, [][]string{repeat("ETHNICITY//White British", 9)}, nil)
		tk, _, err := Build(c, BuildConfig{VocabSize: 10, MinCount: 1})
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := tk.Vocab.ID("ETHNICITY//White%20British"); !ok || tk.Vocab.Len() != 6 {
			t.Errorf("vocabulary %v", tk.Vocab.Tokens())
		} else if got, ok := tk.WholeCode("ETHNICITY//White British"); !ok || got != id {
			t.Errorf("WholeCode: %d, %v; want %d", got, ok, id)
		}
	})
	t.Run("code no stage accepts", func(t *testing.T) {
		c, _ := counterOf(t, [][]string{repeat("LAB//1\x00", 9)}, nil)
		if _, _, err := Build(c, BuildConfig{VocabSize: 10, MinCount: 1}); err == nil || !strings.Contains(err.Error(), `"LAB//1\x00" holds a NUL byte`) {
			t.Errorf("err %v", err)
		}
	})
}

func TestWordPieceFallback(t *testing.T) {
	tok := testTokenizer(t)
	for _, tc := range []struct {
		word string
		want []string
	}{
		{"ICD10/E11.9", []string{"ICD10/E11.9"}},
		{"ICD10/E11.65", []string{"ICD10/E11", "##.65"}},
		{"ICD10/E10.9", []string{"ICD10/E10", "##.9"}},
		{"SNOMED/44054", []string{UnkToken}}, // no parent: a namespace alone pieces nothing
		{"ICD10/E11", []string{"ICD10/E11"}}, // the stem itself, one token (a piece)
		{"ICD10/E11X.9", []string{UnkToken}}, // a parent matches only up to a separator
		{"ICD10/E119", []string{UnkToken}},
		{"ICD9/250.00", []string{UnkToken}}, // an unseen namespace
		{"READ/C10..", []string{UnkToken}},
		{"icd10/e11.9", []string{UnkToken}}, // case matters; lowercase letters never seen as pieces
		{"ZZZ", []string{UnkToken}},
		{strings.Repeat("1", 150), []string{UnkToken}}, // longer than max_input_chars_per_word
	} {
		t.Run(tc.word, func(t *testing.T) {
			if got := tok.Pieces(tc.word); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Pieces(%q) = %v, want %v", tc.word, got, tc.want)
			}
		})
	}
	t.Run("without subwords an unseen code is UNK", func(t *testing.T) {
		c, _ := counterOf(t, [][]string{repeat("ICD10/E11.9", 9)}, nil)
		tk, _, err := Build(c, BuildConfig{VocabSize: 10, MinCount: 1, Subwords: false})
		if err != nil {
			t.Fatal(err)
		}
		if got := tk.Pieces("ICD10/E11.65"); !reflect.DeepEqual(got, []string{UnkToken}) {
			t.Errorf("pieces %v", got)
		}
	})
}

func TestEncodeText(t *testing.T) {
	tok := testTokenizer(t) // MaxLen 8
	id := func(s string) int32 { i, _ := tok.Vocab.ID(s); return i }
	v := tok.Vocab
	t.Run("special tokens are never split", func(t *testing.T) {
		e := tok.EncodeText("ICD10/I10 [SEP] [MASK] ICD10/E11.9", Options{})
		want := []int32{v.Cls, id("ICD10/I10"), v.Sep, v.Mask, id("ICD10/E11.9"), v.Sep}
		if !reflect.DeepEqual(e.IDs, want) {
			t.Errorf("ids %v, want %v", e.IDs, want)
		}
	})
	t.Run("truncation keeps the newest codes", func(t *testing.T) {
		line := "ATC/A10BA02 ICD10/I10 ICD10/I10 ICD10/I10 ICD10/I10 ICD10/E11.9 SNOMED/44054006 ICD10/E10.65"
		e := tok.EncodeText(line, Options{MaxLen: 6})
		want := []int32{v.Cls, id("ICD10/I10"), id("ICD10/E11.9"), id("SNOMED/44054006"), id("ICD10/E10.65"), v.Sep}
		if !reflect.DeepEqual(e.IDs, want) || e.Truncated != 4 {
			t.Errorf("ids %v truncated %d, want %v and 4", e.IDs, e.Truncated, want)
		}
	})
	t.Run("unknown counted", func(t *testing.T) {
		e := tok.EncodeText("ZZZ ICD10/I10 QQQ", Options{})
		if e.Unknown != 2 {
			t.Errorf("unknown %d", e.Unknown)
		}
	})
	t.Run("padding", func(t *testing.T) {
		encs := tok.EncodeTexts([]string{"ICD10/I10", "ICD10/I10 ICD10/I10 ICD10/I10", ""}, Options{Padding: PadLongest})
		for i, e := range encs {
			if len(e.IDs) != 5 || len(e.AttentionMask) != 5 {
				t.Fatalf("encoding %d has length %d", i, len(e.IDs))
			}
		}
		if got := encs[0].AttentionMask; !reflect.DeepEqual(got, []int32{1, 1, 1, 0, 0}) {
			t.Errorf("mask %v", got)
		}
		if encs[2].IDs[0] != v.Cls || encs[2].IDs[1] != v.Sep || encs[2].IDs[2] != v.Pad {
			t.Errorf("empty line %v", encs[2].IDs)
		}
		fixed := tok.EncodeText("ICD10/I10", Options{MaxLen: 8, Padding: PadFixed})
		if len(fixed.IDs) != 8 || fixed.Len() != 3 {
			t.Errorf("fixed padding %v", fixed.IDs)
		}
	})
}

func TestEncodeEvents(t *testing.T) {
	tok := testTokenizer(t)
	codes := data.NewCodes()
	day := data.MicrosPerDay
	birth := int64(0)
	ev := []data.Event{
		{Time: data.StaticTime, Code: codes.ID("SEX//F")},
		{Time: 365 * day, Code: codes.ID("ICD10/I10")},
		{Time: 365*day + 3600e6, Code: codes.ID("ICD10/E11.65")},
		{Time: 400 * day, Code: codes.ID("ATC/A10BA02")},
	}
	m := tok.NewCodeMap(codes)
	enc := m.Encode(Input{Events: ev, Birth: birth, PredictionTime: 410 * day}, Options{VisitSeparators: true})
	got := make([]string, len(enc.IDs))
	for i, id := range enc.IDs {
		got[i] = tok.Vocab.Token(id)
	}
	want := []string{ClsToken, UnkToken, SepToken, "ICD10/I10", "ICD10/E11", "##.65", SepToken, "ATC/A10BA02", SepToken}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tokens %v, want %v", got, want)
	}
	if enc.Unknown != 1 {
		t.Errorf("unknown %d (SEX//F is not in this vocabulary)", enc.Unknown)
	}
	if a := enc.Ages[3]; a < 0.99 || a > 1.0 {
		t.Errorf("age at ICD10/I10 %.3f, want about 1 year", a)
	}
	if d := enc.DaysBefore[7]; d != 10 {
		t.Errorf("days before prediction %.2f, want 10", d)
	}
	// Truncation drops the oldest tokens, never the newest.
	short := m.Encode(Input{Events: ev, Birth: birth, PredictionTime: 410 * day}, Options{MaxLen: 4, VisitSeparators: true})
	if last := tok.Vocab.Token(short.IDs[len(short.IDs)-2]); last != "ATC/A10BA02" || short.Truncated != 5 {
		t.Errorf("truncated encoding %v (truncated %d)", short.IDs, short.Truncated)
	}
}

func TestFilesRoundTrip(t *testing.T) {
	tok := testTokenizer(t)
	tok.VisitSeparators = true
	dir := filepath.Join(t.TempDir(), "tok")
	if err := Save(dir, false, tok, Config{}, nil); err != nil {
		t.Fatal(err)
	}
	back, cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Vocab.Tokens(), tok.Vocab.Tokens()) || back.MaxLen != tok.MaxLen || !back.VisitSeparators || back.WholeEnd != tok.WholeEnd || cfg.MaxLen != 8 {
		t.Errorf("round trip changed the tokenizer: %+v", back)
	}
	txt, err := ReadVocabTxt(filepath.Join(dir, VocabFile))
	if err != nil || !reflect.DeepEqual(txt.Tokens(), tok.Vocab.Tokens()) {
		t.Errorf("vocab.txt: %v", err)
	}
	for _, line := range []string{"ICD10/I10 ICD10/E11.65 ZZZ", "[SEP] SNOMED/44054006"} {
		a, b := tok.EncodeText(line, Options{MaxLen: 8}), back.EncodeText(line, Options{MaxLen: 8})
		if !reflect.DeepEqual(a.IDs, b.IDs) {
			t.Errorf("%q: %v vs %v", line, a.IDs, b.IDs)
		}
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	hf := func(model string) string {
		return `{"version":"1.0","added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"WhitespaceSplit"},"model":` + model + `}`
	}
	for _, tc := range []struct {
		name, file, content, want string
	}{
		{"empty vocab.txt", "vocab.txt", "", "empty vocabulary"},
		{"duplicate in vocab.txt", "vocab.txt", "[PAD]\n[UNK]\nA/1\nA/1\n", `"A/1" appears twice`},
		{"no UNK", "vocab.txt", "[PAD]\nA/1\n", "[UNK]"},
		{"BPE model", "tokenizer.json", hf(`{"type":"BPE","vocab":{"[UNK]":0},"merges":[]}`), `model type "BPE"`},
		{"empty model vocab", "tokenizer.json", hf(`{"type":"WordPiece","unk_token":"[UNK]","vocab":{}}`), "empty vocabulary"},
		{"duplicate in model vocab", "tokenizer.json", hf(`{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"A/1":1,"A/1":2}}`), "duplicate"},
		{"hole in ids", "tokenizer.json", hf(`{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"A/1":2}}`), "outside"},
		{"lowercasing normalizer", "tokenizer.json", `{"normalizer":{"type":"BertNormalizer","lowercase":true},"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0}}}`, "BertNormalizer"},
		{"splitting pre-tokenizer", "tokenizer.json", `{"pre_tokenizer":{"type":"BertPreTokenizer"},"model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0}}}`, "BertPreTokenizer"},
		{"not JSON", "tokenizer.json", `{"model":`, "tokenizer.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.file, tc.content)
			var err error
			if tc.file == "vocab.txt" {
				_, err = ReadVocabTxt(p)
			} else {
				_, err = ReadHF(p)
			}
			if err == nil || !errors.Is(err, ErrBadVocab) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("err %v; want ErrBadVocab naming %s and %q", err, tc.file, tc.want)
			}
		})
	}
}

func TestLeakGuard(t *testing.T) {
	var seqs [][]string
	var labels []int
	for i := 0; i < 100; i++ {
		pos := i%4 == 0
		s := []string{"ICD10/I10", "SNOMED/1234"}
		if pos {
			s = append(s, "ATC/A10BA02") // a post-diagnosis drug that slipped past censoring
			labels = append(labels, 1)
		} else {
			labels = append(labels, 0)
		}
		if i%3 == 0 {
			s = append(s, "ICD10/E66.9") // a genuine risk factor: associated, not separating
		}
		seqs = append(seqs, s)
	}
	c, _ := counterOf(t, seqs, labels)
	tok, _, err := Build(c, BuildConfig{VocabSize: 100, MinCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	rep := GuardLeaks(c, tok, LeakConfig{})
	if !rep.Checked || len(rep.Leaks) != 2 {
		t.Fatalf("leaks %+v", rep)
	}
	names := []string{rep.Leaks[0].Token, rep.Leaks[1].Token}
	if !(contains(names, "ATC/A10BA02") && contains(names, "ATC/")) {
		t.Errorf("flagged %v, want the drug and its namespace", names)
	}
	if l := rep.Leaks[0]; l.PosShare != 1 || l.NegShare != 0 || l.AUROC != 1 || l.Positives != 25 {
		t.Errorf("leak %+v", l)
	}
	few, _ := counterOf(t, seqs[:8], labels[:8])
	if r := GuardLeaks(few, tok, LeakConfig{}); r.Checked {
		t.Error("guard ran on 2 positives")
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestWholeWord checks the lock-free fast path against AppendWord: every vocabulary token,
// words that need pieces or are unknown, and a vocabulary word over the length limit.
func TestWholeWord(t *testing.T) {
	tok := testTokenizer(t)
	words := []string{"ICD10/E11.65", "SNOMED/44054", "icd10/e11.9", "ZZZ", "", strings.Repeat("1", 150)}
	for id := range tok.Vocab.Len() {
		words = append(words, tok.Vocab.Token(int32(id)))
	}
	for _, w := range words {
		id, ok := tok.WholeWord(w)
		_, inVocab := tok.Vocab.ID(w)
		if ok != inVocab {
			t.Errorf("WholeWord(%q) ok=%v, in vocabulary %v", w, ok, inVocab)
		}
		if ids, _ := tok.AppendWord(nil, w); ok && !reflect.DeepEqual(ids, []int32{id}) {
			t.Errorf("WholeWord(%q) = %d, AppendWord gives %v", w, id, ids)
		}
	}
	short := *tok
	short.MaxInputCharsPerWord = 3
	if _, ok := short.WholeWord("ICD10/E11.9"); ok {
		t.Error("a vocabulary word over MaxInputCharsPerWord must not be whole (AppendWord makes it [UNK])")
	}
}
