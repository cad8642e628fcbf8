package tokenize

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
)

// The reference is HuggingFace's tokenizers library through its Node bindings (npm package
// tokenizers, pinned in testdata/hf/package.json and package-lock.json; install with
// scripts/hf-deps.sh or `npm ci` in testdata/hf). testdata/hf/encode.js encodes a corpus with
// the tokenizer.json we write.

const hfDir = "testdata/hf"

// hfNode returns the node binary, with the npm package installed. Where node or the package is
// missing it skips, except under CI (CI set), where it installs the package with `npm ci` or
// fails: CI must run the parity test.
func hfNode(tb testing.TB) string {
	tb.Helper()
	node, err := exec.LookPath("node")
	ci := os.Getenv("CI") != "" && os.Getenv("CI") != "false"
	if err != nil {
		if ci {
			tb.Fatalf("CI: node is not installed: run scripts/hf-deps.sh (HuggingFace parity needs node and the npm package tokenizers)")
		}
		tb.Skip("node is not installed (scripts/hf-deps.sh installs it and the HuggingFace tokenizers package)")
	}
	pkg := filepath.Join(hfDir, "node_modules", "tokenizers", "package.json")
	if _, err := os.Stat(pkg); errors.Is(err, os.ErrNotExist) {
		if !ci {
			tb.Skipf("%s/node_modules is missing: run scripts/hf-deps.sh (or `npm ci` in %s)", hfDir, hfDir)
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			tb.Fatalf("CI: %s/node_modules is missing and npm is not installed: run scripts/hf-deps.sh", hfDir)
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = hfDir
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("CI: npm ci in %s: %v\n%s", hfDir, err, out)
		}
	}
	return node
}

// hfInstalled reports whether node and the npm package are there.
func hfInstalled() bool {
	_, err := exec.LookPath("node")
	_, errPkg := os.Stat(filepath.Join(hfDir, "node_modules", "tokenizers", "package.json"))
	return err == nil && errPkg == nil
}

// hfRun runs encode.js with args and returns its stdout.
func hfRun(tb testing.TB, node string, args ...string) []byte {
	tb.Helper()
	cmd := exec.Command(node, append([]string{filepath.Join(hfDir, "encode.js")}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("node encode.js %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// hfEncode runs encode.js on a tokenizer.json and a corpus and returns HuggingFace's ids for
// every line.
func hfEncode(tb testing.TB, node, tokPath, corpusPath string) [][]int32 {
	tb.Helper()
	outPath := corpusPath + ".ids"
	hfRun(tb, node, tokPath, corpusPath, outPath)
	f, err := os.Open(outPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var all [][]int32
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		ids := make([]int32, len(fs))
		for i, s := range fs {
			n, err := strconv.ParseInt(s, 10, 32)
			if err != nil {
				tb.Fatalf("%s line %d: %v", outPath, len(all)+1, err)
			}
			ids[i] = int32(n)
		}
		all = append(all, ids)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return all
}

// hfWrite writes t's tokenizer.json and the lines (one a line) into dir.
func hfWrite(tb testing.TB, dir string, t *Tokenizer, lines []string) (tokPath, corpusPath string) {
	tb.Helper()
	js, err := t.MarshalHF()
	if err != nil {
		tb.Fatal(err)
	}
	tokPath, corpusPath = filepath.Join(dir, HFFile), filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(tokPath, js, 0o644); err != nil {
		tb.Fatal(err)
	}
	var b strings.Builder
	for _, l := range lines {
		if strings.Contains(l, "\n") {
			tb.Fatalf("corpus line %q holds a newline", l)
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(corpusPath, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return tokPath, corpusPath
}

// hfCompare reports every line whose ids differ (the first few in full).
func hfCompare(tb testing.TB, t *Tokenizer, lines []string, ours, theirs [][]int32) {
	tb.Helper()
	if len(ours) != len(theirs) {
		tb.Fatalf("HuggingFace encoded %d lines, we encoded %d", len(theirs), len(ours))
	}
	toks := func(ids []int32) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			if id >= 0 && int(id) < t.Vocab.Len() {
				out[i] = t.Vocab.Token(id)
			} else {
				out[i] = fmt.Sprintf("<%d>", id)
			}
		}
		return out
	}
	bad := 0
	for i := range lines {
		if slices.Equal(ours[i], theirs[i]) {
			continue
		}
		bad++
		if bad <= 5 {
			tb.Errorf("line %d differs:\n  line:        %q\n  medseq:      %v\n  huggingface: %v\n  medseq:      %q\n  huggingface: %q",
				i+1, lines[i], ours[i], theirs[i], toks(ours[i]), toks(theirs[i]))
		}
	}
	if bad > 0 {
		tb.Errorf("%d of %d lines differ from HuggingFace", bad, len(lines))
	}
}

// hfCode makes the k-th code of a synthetic code system: namespaces as medical data spells
// them (SNOMED/44054006, ICD10/E11.9, LAB//51237//UNK, ATC/A10BA02, ...), deterministic in k.
func hfCode(k int) string {
	x := uint32(k)*2654435761 + 12345 // spread consecutive k over the digits
	letter := func(v uint32) byte { return byte('A' + v%26) }
	switch k % 8 {
	case 0, 1:
		return "SNOMED/" + strconv.Itoa(100000+int(x%900000000))
	case 2:
		return fmt.Sprintf("ICD10/%c%02d.%d", letter(x), x/26%100, x/2600%10)
	case 3:
		return fmt.Sprintf("ICD10/%c%02d.%02d", letter(x), x/26%100, x/2600%100)
	case 4:
		return fmt.Sprintf("LAB//%05d//UNK", x%100000)
	case 5:
		return fmt.Sprintf("LAB//%05d//mg/dL", x%100000)
	case 6:
		return fmt.Sprintf("ATC/%c%02d%c%c%02d", letter(x), x/26%100, letter(x/2600), letter(x/67600), x/1757600%100)
	default:
		return fmt.Sprintf("NOTE/%s-%d", []string{"café", "Größe", "naïve", "ñandú"}[x%4], x/4%1000)
	}
}

// hfUniverse returns n distinct codes (hfCode(0..), skipping repeats).
func hfUniverse(n, from int) []string {
	seen := map[string]bool{}
	var out []string
	for k := from; len(out) < n; k++ {
		c := hfCode(k)
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// hfBuild builds a tokenizer with our API: counts Zipf-distributed sequences over universe
// (each code at least once) and builds whole codes plus WordPiece pieces.
func hfBuild(tb testing.TB, r *rand.Rand, universe []string, seqs, perSeq int, cfg BuildConfig) *Tokenizer {
	tb.Helper()
	codes := data.NewCodes()
	c := NewCounter(codes)
	if cfg.ValueBins > 0 {
		c.KeepValues()
	}
	// The most frequent codes carry numeric values (used with value bins).
	value := func(rank uint64) float32 {
		if rank < 20 {
			return float32(r.NormFloat64())
		}
		return data.NoValue
	}
	ev := make([]data.Event, 0, len(universe))
	for _, u := range universe {
		ev = append(ev, data.Event{Code: codes.ID(u), Value: data.NoValue})
	}
	c.Add(ev, -1)
	z := rand.NewZipf(r, 1.1, 2, uint64(len(universe)-1))
	for s := 0; s < seqs; s++ {
		ev = ev[:0]
		for range perSeq {
			k := z.Uint64()
			ev = append(ev, data.Event{Code: codes.ID(universe[k]), Value: value(k)})
		}
		c.Add(ev, -1)
	}
	tok, _, err := Build(c, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// hfLines generates a corpus that exercises every path of the encoder: codes in the
// vocabulary, unseen codes that fall back to pieces, [UNK] (characters never seen, words
// longer than max_input_chars_per_word), special tokens alone and inside words, Unicode
// whitespace, long lines (truncation), empty and blank lines.
func hfLines(r *rand.Rand, n int, universe, unseen []string, maxChars int) []string {
	z := rand.NewZipf(r, 1.1, 2, uint64(len(universe)-1))
	specials := SpecialTokens()
	odd := []string{
		"ICD10/E11[SEP]9", "[MASK]SNOMED/44054006", "[[SEP]]", "[SEP", "SEP]", "[sep]", "[SEP][SEP]",
		"ICD10/E11.65[CLS]", "x[UNK]y", "[PAD][MASK]", "[]", "[", "]", "##.9", "##", "ICD10/E11.65",
		"ICD10/E11.€", "ZZZ_Ω", "icd10/e11.9", "SNOMED/", "LAB//51237//UNK", "ATC/A10BA02", "SNOMED/44054006",
		strings.Repeat("1", maxChars), strings.Repeat("1", maxChars+1), strings.Repeat("é", maxChars/2+1),
		strings.Repeat("é", maxChars), strings.Repeat("é", maxChars+1), "ICD10/" + strings.Repeat("9", maxChars),
		"NOTE/\u200bcafé", "A\u001cB", "日本語", "VALUE/Q1", "VALUE/Q10", "VALUE/Q11", "VALUE/", "VALUE/Q3[SEP]",
	}
	seps := []string{" ", " ", " ", " ", "  ", "\t", "\u00a0", "\u3000", "\r", "\v", "\f", "\u0085", "\u2028", " \t "}
	word := func() string {
		switch p := r.Intn(100); {
		case p < 78:
			return universe[z.Uint64()]
		case p < 88:
			return unseen[r.Intn(len(unseen))]
		case p < 93:
			return specials[r.Intn(len(specials))]
		default:
			return odd[r.Intn(len(odd))]
		}
	}
	lines := make([]string, n)
	for i := range lines {
		var k int
		switch p := r.Intn(100); {
		case p < 3:
			k = 0 // empty
		case p < 5:
			lines[i] = seps[r.Intn(len(seps))] + seps[r.Intn(len(seps))] // blank
			continue
		case p < 20:
			k = 60 + r.Intn(200) // truncated
		default:
			k = 1 + r.Intn(40)
		}
		var b strings.Builder
		if r.Intn(10) == 0 {
			b.WriteString(seps[r.Intn(len(seps))])
		}
		for j := 0; j < k; j++ {
			if j > 0 {
				b.WriteString(seps[r.Intn(len(seps))])
			}
			b.WriteString(word())
		}
		if r.Intn(10) == 0 {
			b.WriteString(seps[r.Intn(len(seps))])
		}
		lines[i] = b.String()
	}
	return lines
}

// TestHuggingFaceParity checks that HuggingFace's tokenizers library, loading the
// tokenizer.json we write, gives the same ids as EncodeText on every line of a corpus.
func TestHuggingFaceParity(t *testing.T) {
	node := hfNode(t)
	universe := hfUniverse(3000, 0)
	unseen := hfUniverse(400, 100000)

	built := func(t *testing.T, maxLen, valueBins int) *Tokenizer {
		cfg := BuildConfig{VocabSize: 2000, MinCount: 2, Subwords: true, MaxPieces: 500, MaxLen: maxLen, ValueBins: valueBins}
		return hfBuild(t, rand.New(rand.NewSource(1)), universe, 400, 40, cfg)
	}
	// A vocabulary made directly (as a third-party one would be), with a word limit shorter
	// than some of its codes: HuggingFace checks the length before the vocabulary.
	direct := func(t *testing.T, model string, maxLen, maxChars int) *Tokenizer {
		toks := append(SpecialTokens(), universe[:300]...)
		toks = append(toks, "SNOMED/", "ICD10/", "LAB//", "ATC/", "NOTE/", "##.", "##//", "##/", "##UNK")
		for _, ch := range "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ./-é" {
			toks = append(toks, string(ch), "##"+string(ch))
		}
		seen, uniq := map[string]bool{}, toks[:0]
		for _, tk := range toks {
			if !seen[tk] {
				seen[tk] = true
				uniq = append(uniq, tk)
			}
		}
		v, err := NewVocab(uniq)
		if err != nil {
			t.Fatal(err)
		}
		tok := New(v)
		tok.Model, tok.MaxLen, tok.MaxInputCharsPerWord = model, maxLen, maxChars
		return tok
	}
	for _, tc := range []struct {
		name  string
		tok   func(t *testing.T) *Tokenizer
		lines int
	}{
		{"built/max_len=64", func(t *testing.T) *Tokenizer { return built(t, 64, 0) }, 3000},
		{"built/no_truncation", func(t *testing.T) *Tokenizer { return built(t, 0, 0) }, 1000},
		{"built/value_bins=10", func(t *testing.T) *Tokenizer {
			tok := built(t, 64, 10)
			if tok.Values == nil || len(tok.Values.Edges) == 0 {
				t.Fatal("no value bins built")
			}
			return tok
		}, 1000},
		{"direct/max_chars=12/max_len=3", func(t *testing.T) *Tokenizer { return direct(t, ModelWordPiece, 3, 12) }, 1000},
		{"direct/wordlevel/max_len=16", func(t *testing.T) *Tokenizer { return direct(t, ModelWordLevel, 16, 100) }, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.tok(t)
			lines := hfLines(rand.New(rand.NewSource(int64(len(tc.name)))), tc.lines, universe, unseen, tok.MaxInputCharsPerWord)
			tokPath, corpusPath := hfWrite(t, t.TempDir(), tok, lines)
			theirs := hfEncode(t, node, tokPath, corpusPath)

			o := Options{MaxLen: tok.MaxLen}
			ours := make([][]int32, len(lines))
			pieces, unk, truncated := 0, 0, 0
			for i, l := range lines {
				e := tok.EncodeText(l, o)
				ours[i] = e.IDs
				unk += e.Unknown
				if e.Truncated > 0 {
					truncated++
				}
				for _, id := range e.IDs {
					if tok.WholeEnd > 0 && id >= tok.WholeEnd {
						pieces++
					}
				}
			}
			hfCompare(t, tok, lines, ours, theirs)
			t.Logf("%d lines, %d pieces, %d [UNK], %d lines truncated", len(lines), pieces, unk, truncated)
			if tok.MaxLen > 0 && truncated == 0 {
				t.Errorf("no line was truncated: the corpus does not exercise truncation")
			}
			if unk == 0 {
				t.Errorf("no [UNK]: the corpus does not exercise the unknown path")
			}
			if tok.WholeEnd > 0 && pieces == 0 {
				t.Errorf("no WordPiece piece: the corpus does not exercise the fallback")
			}

			// The batch and lean paths give the same ids.
			for i, e := range tok.EncodeTexts(lines, o) {
				if !slices.Equal(e.IDs, ours[i]) {
					t.Fatalf("EncodeTexts line %d: %v, EncodeText %v", i+1, e.IDs, ours[i])
				}
				if got := tok.EncodeTextIDs(lines[i], o.MaxLen, nil); !slices.Equal(got, ours[i]) {
					t.Fatalf("EncodeTextIDs line %d: %v, EncodeText %v", i+1, got, ours[i])
				}
			}
		})
	}
}

// TestFastVocab checks the encoder's lookup table against the vocabulary's map: every token,
// every prefix of every token (most are not tokens), and keys of every length up to and past
// fastKeyMax.
func TestFastVocab(t *testing.T) {
	universe := hfUniverse(3000, 0)
	tok := hfBuild(t, rand.New(rand.NewSource(3)), universe, 50, 40, BuildConfig{VocabSize: 2000, MinCount: 2, Subwords: true, MaxPieces: 500})
	if tok.fast == nil {
		t.Fatal("New built no lookup table")
	}
	check := func(s string) {
		want, wantOK := tok.Vocab.ids[s]
		got, ok := tok.lookup(s)
		if ok != wantOK || got != want {
			t.Fatalf("lookup(%q) = %d, %v; the map says %d, %v", s, got, ok, want, wantOK)
		}
	}
	keys := append(slices.Clone(tok.Vocab.Tokens()), "", "a", "ab", "abc", "é", "日本", strings.Repeat("x", fastKeyMax), strings.Repeat("x", fastKeyMax+1))
	for _, k := range keys {
		for end := 0; end <= len(k); end++ {
			check(k[:end])
			check(k[end:])
		}
	}
	for n := 0; n <= 2*fastKeyMax; n++ { // a key differing from a token only in its last byte
		s := []byte(strings.Repeat("SNOMED/1234567890", 3)[:n])
		check(string(s))
		if n > 0 {
			s[n-1]++
			check(string(s))
		}
	}
	// A Tokenizer whose Vocab is replaced after New must not use the old table.
	other, err := NewVocab(append(SpecialTokens(), "ZZZ"))
	if err != nil {
		t.Fatal(err)
	}
	stale := New(tok.Vocab)
	stale.Vocab = other
	if id, ok := stale.lookup("ZZZ"); !ok || id != 5 {
		t.Fatalf("lookup after replacing the vocabulary: %d, %v", id, ok)
	}
}
