package tokenize

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/medseq/medseq/data"
)

// BuildConfig says how a vocabulary is built.
type BuildConfig struct {
	VocabSize int  // most frequent whole codes to keep (default 30000)
	MinCount  int  // a code (or piece) must occur at least this often (default 5)
	Subwords  bool // add WordPiece pieces learned from the codes' structure
	MaxPieces int  // at most this many pieces: parent stems and suffixes (default 2000)
	MaxLen    int  // default encoding length written into tokenizer.json (default 512)
	// ValueBins > 0 adds value tokens VALUE/Q1..QN and per-code quantile cut points for codes
	// with at least MinValuesPerBin·N numeric values (the Counter must keep values).
	ValueBins int
}

// DefaultBuildConfig returns the command line's defaults.
func DefaultBuildConfig() BuildConfig {
	return BuildConfig{VocabSize: 30000, MinCount: 5, Subwords: true, MaxPieces: 2000, MaxLen: 512}
}

// ErrNoCodes is returned when a vocabulary would hold no code.
var ErrNoCodes = errors.New("no code reaches --min-count")

// Counter counts codes over sequences (already censored by the caller) and, when labels are
// given, in how many sequences of each class each code is present (for the leakage guard).
type Counter struct {
	codes    *data.Codes
	count    []int64
	present  [2][]int32 // sequences per class holding the code
	lastSeen []int32    // sequence index that last counted presence
	nseq     [2]int
	seq      int32
	total    int64
	values   [][]float32 // numeric values per code, when kept
	keep     bool
	// sample > 0 keeps at most that many values per code: a uniform sample (reservoir
	// sampling, a fixed seed) of every value seen, counted in seen.
	sample int
	seen   []int64
	rng    *rand.Rand
}

// NewCounter counts codes of one dataset's code table.
func NewCounter(codes *data.Codes) *Counter { return &Counter{codes: codes} }

// KeepValues makes the counter keep every numeric value (for BuildConfig.ValueBins).
func (c *Counter) KeepValues() { c.keep = true }

// KeepValuesSample makes the counter keep at most n numeric values per code (n at least
// ValueBins·MinValuesPerBin, so that a code with enough values keeps enough): a uniform
// sample of them, the same for the same values in the same order. Memory then does not grow
// with the number of values, and the quantile cut points move by about 1/sqrt(n).
func (c *Counter) KeepValuesSample(n int) {
	c.keep, c.sample = true, n
	c.rng = rand.New(rand.NewPCG(0x76616c756573, 0x73616d706c65)) // "values", "sample"
}

// keepValue adds a numeric value of code id to its values or its sample.
func (c *Counter) keepValue(id int32, v float32) {
	if c.sample <= 0 {
		c.values[id] = append(c.values[id], v)
		return
	}
	for len(c.seen) <= int(id) {
		c.seen = append(c.seen, 0)
	}
	c.seen[id]++
	if len(c.values[id]) < c.sample {
		c.values[id] = append(c.values[id], v)
		return
	}
	if j := c.rng.Int64N(c.seen[id]); j < int64(c.sample) {
		c.values[id][j] = v
	}
}

func (c *Counter) grow() {
	for len(c.count) < c.codes.Len() {
		c.count = append(c.count, 0)
		c.present[0] = append(c.present[0], 0)
		c.present[1] = append(c.present[1], 0)
		c.lastSeen = append(c.lastSeen, -1)
	}
	for c.keep && len(c.values) < len(c.count) {
		c.values = append(c.values, nil)
	}
}

// Add counts one sequence. label is 1 or 0 for a labelled sequence, -1 for none.
func (c *Counter) Add(events []data.Event, label int) {
	c.grow()
	c.seq++
	if label == 0 || label == 1 {
		c.nseq[label]++
	}
	for _, e := range events {
		c.count[e.Code]++
		c.total++
		if c.keep && e.HasValue() && !math.IsInf(float64(e.Value), 0) {
			c.keepValue(e.Code, e.Value)
		}
		if (label == 0 || label == 1) && c.lastSeen[e.Code] != c.seq {
			c.lastSeen[e.Code] = c.seq
			c.present[label][e.Code]++
		}
	}
}

// Sequences is the number of sequences counted.
func (c *Counter) Sequences() int { return int(c.seq) }

// Occurrences is the number of codes counted.
func (c *Counter) Occurrences() int64 { return c.total }

// BuildReport describes a built vocabulary.
type BuildReport struct {
	Sequences     int     `json:"sequences"`
	Occurrences   int64   `json:"occurrences"`
	DistinctCodes int     `json:"distinct_codes"`
	WholeCodes    int     `json:"whole_codes"`
	Pieces        int     `json:"pieces"`
	VocabSize     int     `json:"vocab_size"`
	Coverage      float64 `json:"coverage"` // share of counted occurrences that are whole codes in the vocabulary
	DroppedRare   int     `json:"dropped_below_min_count"`
	DroppedTopN   int     `json:"dropped_beyond_vocab_size"`
	ValueBins     int     `json:"value_bins,omitempty"`  // quantile bins per code (0: no value tokens)
	ValueCodes    int     `json:"value_codes,omitempty"` // codes with value tokens
}

type counted struct {
	s string
	n int64
}

func sortCounted(cs []counted) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].n != cs[j].n {
			return cs[i].n > cs[j].n
		}
		return cs[i].s < cs[j].s
	})
}

// Build makes a tokenizer from counts: special tokens, the VocabSize most frequent whole codes
// with at least MinCount occurrences (in their text form, data.CodeText: any code is one
// token), then (with Subwords) WordPiece suffix pieces learned from the codes' structure. A
// code data.CheckCode refuses is an error naming it.
func Build(c *Counter, cfg BuildConfig) (*Tokenizer, *BuildReport, error) {
	if err := cfg.check(c); err != nil {
		return nil, nil, err
	}
	if cfg.MinCount < 1 {
		cfg.MinCount = 1
	}
	all, err := c.counted(cfg.ValueBins > 0)
	if err != nil {
		return nil, nil, err
	}
	rep := &BuildReport{Sequences: c.Sequences(), Occurrences: c.total, DistinctCodes: len(all)}
	tl := newTokenList()
	covered := tl.addWholeCodes(all, cfg, rep)
	if rep.WholeCodes == 0 {
		return nil, nil, fmt.Errorf("%w (%d distinct codes, the most frequent occurs %d times, --min-count %d)",
			ErrNoCodes, len(all), firstCount(all), cfg.MinCount)
	}
	if c.total > 0 {
		rep.Coverage = float64(covered) / float64(c.total)
	}
	var vb *ValueBins
	if cfg.ValueBins > 0 {
		vb = tl.addValueBins(c, cfg.ValueBins)
		rep.ValueBins, rep.ValueCodes = cfg.ValueBins, len(vb.Edges)
	}
	wholeEnd := int32(len(tl.toks))
	if cfg.Subwords {
		for _, p := range learnPieces(all, cfg) {
			if tl.add(p) {
				rep.Pieces++
			}
		}
	}
	v, err := NewVocab(tl.toks)
	if err != nil {
		return nil, nil, err
	}
	t := New(v)
	t.MaxLen = cfg.MaxLen
	t.WholeEnd = wholeEnd
	if maxChars := longestCode(all); maxChars > t.MaxInputCharsPerWord {
		t.MaxInputCharsPerWord = maxChars
	}
	if err := t.SetValueBins(vb); err != nil {
		return nil, nil, err
	}
	rep.VocabSize = v.Len()
	return t, rep, nil
}

// check checks the configuration against the counter it builds from.
func (cfg *BuildConfig) check(c *Counter) error {
	if cfg.VocabSize <= 0 {
		return fmt.Errorf("vocabulary size %d: must be positive", cfg.VocabSize)
	}
	if cfg.ValueBins == 1 || cfg.ValueBins < 0 {
		return fmt.Errorf("value bins %d: 0 (off) or at least 2", cfg.ValueBins)
	}
	if cfg.ValueBins > 0 && !c.keep {
		return errors.New("value bins need a Counter that keeps values (Counter.KeepValues)")
	}
	return nil
}

// counted is every code counted, in its text form, most frequent first. A code
// data.CheckCode refuses is an error naming it, and so, with values (value bins), is a code
// in the value tokens' namespace.
func (c *Counter) counted(values bool) ([]counted, error) {
	c.grow()
	var all []counted
	for id, n := range c.count {
		if n == 0 {
			continue
		}
		name := c.codes.Name(int32(id))
		if err := data.CheckCode(name); err != nil {
			return nil, err
		}
		if values {
			if err := checkValueNamespace(name); err != nil {
				return nil, err
			}
		}
		all = append(all, counted{data.CodeText(name), n})
	}
	sortCounted(all)
	return all, nil
}

// tokenList is the vocabulary's tokens in order, special tokens first, each once.
type tokenList struct {
	toks []string
	seen map[string]bool
}

func newTokenList() *tokenList {
	tl := &tokenList{seen: map[string]bool{}}
	for _, t := range SpecialTokens() {
		tl.add(t)
	}
	return tl
}

// add appends tok unless the list has it; it reports whether it did.
func (tl *tokenList) add(tok string) bool {
	if tl.seen[tok] {
		return false
	}
	tl.toks = append(tl.toks, tok)
	tl.seen[tok] = true
	return true
}

// addWholeCodes adds the cfg.VocabSize most frequent codes (all, most frequent first) with at
// least cfg.MinCount occurrences, counting what it adds and drops in rep; it returns the
// occurrences of the codes added.
func (tl *tokenList) addWholeCodes(all []counted, cfg BuildConfig, rep *BuildReport) (covered int64) {
	for _, cc := range all {
		switch {
		case cc.n < int64(cfg.MinCount):
			rep.DroppedRare++
		case rep.WholeCodes >= cfg.VocabSize:
			rep.DroppedTopN++
		case tl.add(cc.s):
			rep.WholeCodes++
			covered += cc.n
		}
	}
	return covered
}

// addValueBins learns bins edges from the values of the codes in the list, and adds the
// value tokens of bins bins.
func (tl *tokenList) addValueBins(c *Counter, bins int) *ValueBins {
	vals := map[string][]float32{}
	for id, vs := range c.values {
		if name := c.codes.Name(int32(id)); len(vs) > 0 && tl.seen[data.CodeText(name)] {
			vals[name] = vs
		}
	}
	vb := buildValueBins(vals, bins)
	for k := 1; k <= bins; k++ {
		tl.add(ValueToken(k))
	}
	return vb
}

func firstCount(all []counted) int64 {
	if len(all) == 0 {
		return 0
	}
	return all[0].n
}

func longestCode(all []counted) int {
	n := 0
	for _, c := range all {
		n = max(n, utf8.RuneCountInString(c.s))
	}
	return n
}

// isSep reports whether r separates a code's segments (anything not a letter or digit).
func isSep(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }

// pieceBoundaries returns where a code's text form may be cut into a parent code and a suffix:
// the starts of separator runs that follow a letter or digit after the namespace (the text
// up to its first '/' run) — ICD10/E11.65 at ".65", LAB//51237//UNK at "//UNK". A code without
// a '/' has none: it is its own namespace.
func pieceBoundaries(text string) []int {
	ns := strings.IndexByte(text, '/')
	if ns < 0 {
		return nil
	}
	for ns < len(text) && text[ns] == '/' {
		ns++
	}
	var out []int
	prevAlnum := false
	for i, r := range text {
		sep := isSep(r)
		if i > ns && sep && prevAlnum {
			out = append(out, i)
		}
		prevAlnum = !sep
	}
	return out
}

// hasAlnum reports whether s holds a letter or digit.
func hasAlnum(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !isSep(r) }) >= 0
}

// learnPieces derives WordPiece pieces from the codes' structure, weighted by how often the
// codes occur. At each boundary (pieceBoundaries) of a code's text form:
//   - the stem before it, a parent code (ICD10/E11 of ICD10/E11.65, LAB//51237 of
//     LAB//51237//UNK): namespace, separator and at least one segment, ending before a
//     separator;
//   - the rest of the code as a suffix piece ("##.65", "##//UNK"), and the separator with the
//     next segment ("##.6" of ".6.1").
//
// Every suffix piece starts with a separator and holds a letter or digit, and every token that
// can start a word is a whole code or a stem, so WordPiece (HuggingFace's too: longest known
// prefix, then longest known continuation) reads an unseen code as a known parent and suffix
// pieces cut where the code's own separators are, or as [UNK]: never a bare character, never
// across namespaces (a parent matches only up to a separator, and no piece starts with a letter
// or digit), never a code of an unseen namespace.
func learnPieces(all []counted, cfg BuildConfig) []string {
	maxPieces := cfg.MaxPieces
	if maxPieces <= 0 {
		maxPieces = 2000
	}
	weight := map[string]int64{}
	for _, c := range all {
		b := pieceBoundaries(c.s)
		for k, at := range b {
			weight[c.s[:at]] += c.n
			if rest := c.s[at:]; hasAlnum(rest) {
				weight["##"+rest] += c.n
			}
			if k+1 < len(b) {
				if next := c.s[at:b[k+1]]; hasAlnum(next) {
					weight["##"+next] += c.n
				}
			}
		}
	}
	var ps []counted
	for p, n := range weight {
		if n >= int64(cfg.MinCount) {
			ps = append(ps, counted{p, n})
		}
	}
	sortCounted(ps)
	if len(ps) > maxPieces {
		ps = ps[:maxPieces]
	}
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.s)
	}
	return out
}
