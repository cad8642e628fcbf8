package tokenize

import (
	"errors"
	"fmt"
	"math"
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
	MaxPieces int  // at most this many pieces besides single characters (default 2000)
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
}

// NewCounter counts codes of one dataset's code table.
func NewCounter(codes *data.Codes) *Counter { return &Counter{codes: codes} }

// KeepValues makes the counter keep every numeric value (for BuildConfig.ValueBins).
func (c *Counter) KeepValues() { c.keep = true }

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
			c.values[e.Code] = append(c.values[e.Code], e.Value)
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
// with at least MinCount occurrences, then (with Subwords) WordPiece pieces learned from the
// codes' structure. Codes that contain whitespace cannot be tokens and are an error.
func Build(c *Counter, cfg BuildConfig) (*Tokenizer, *BuildReport, error) {
	if cfg.VocabSize <= 0 {
		return nil, nil, fmt.Errorf("vocabulary size %d: must be positive", cfg.VocabSize)
	}
	if cfg.MinCount < 1 {
		cfg.MinCount = 1
	}
	if cfg.ValueBins == 1 || cfg.ValueBins < 0 {
		return nil, nil, fmt.Errorf("value bins %d: 0 (off) or at least 2", cfg.ValueBins)
	}
	if cfg.ValueBins > 0 && !c.keep {
		return nil, nil, errors.New("value bins need a Counter that keeps values (Counter.KeepValues)")
	}
	c.grow()
	var all []counted
	for id, n := range c.count {
		if n == 0 {
			continue
		}
		name := c.codes.Name(int32(id))
		if strings.IndexFunc(name, unicode.IsSpace) >= 0 {
			return nil, nil, fmt.Errorf("code %q contains whitespace: it cannot be one token", name)
		}
		if cfg.ValueBins > 0 {
			if err := checkValueNamespace(name); err != nil {
				return nil, nil, err
			}
		}
		all = append(all, counted{name, n})
	}
	sortCounted(all)
	rep := &BuildReport{Sequences: c.Sequences(), Occurrences: c.total, DistinctCodes: len(all)}
	toks := SpecialTokens()
	seen := map[string]bool{}
	for _, t := range toks {
		seen[t] = true
	}
	var covered int64
	for _, cc := range all {
		switch {
		case cc.n < int64(cfg.MinCount):
			rep.DroppedRare++
		case rep.WholeCodes >= cfg.VocabSize:
			rep.DroppedTopN++
		case seen[cc.s]:
		default:
			toks = append(toks, cc.s)
			seen[cc.s] = true
			rep.WholeCodes++
			covered += cc.n
		}
	}
	if rep.WholeCodes == 0 {
		return nil, nil, fmt.Errorf("%w (%d distinct codes, the most frequent occurs %d times, --min-count %d)", ErrNoCodes, len(all), firstCount(all), cfg.MinCount)
	}
	if c.total > 0 {
		rep.Coverage = float64(covered) / float64(c.total)
	}
	var vb *ValueBins
	if cfg.ValueBins > 0 {
		vals := map[string][]float32{}
		for id, vs := range c.values {
			if name := c.codes.Name(int32(id)); len(vs) > 0 && seen[name] {
				vals[name] = vs
			}
		}
		vb = buildValueBins(vals, cfg.ValueBins)
		for k := 1; k <= cfg.ValueBins; k++ {
			toks = append(toks, ValueToken(k))
			seen[ValueToken(k)] = true
		}
		rep.ValueBins, rep.ValueCodes = cfg.ValueBins, len(vb.Edges)
	}
	wholeEnd := int32(len(toks))
	if cfg.Subwords {
		for _, p := range learnPieces(all, cfg) {
			if !seen[p] {
				toks = append(toks, p)
				seen[p] = true
				rep.Pieces++
			}
		}
	}
	v, err := NewVocab(toks)
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

// segments splits a code at runs of separator characters (anything not a letter or digit):
// ICD10/E11.65 -> [ICD10 / E11 . 65], LAB//51237//UNK -> [LAB // 51237 // UNK].
func segments(code string) []string {
	var out []string
	start := 0
	sepRun := func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }
	prev := -1 // -1 unknown, 0 alnum, 1 separator
	for i, r := range code {
		k := 0
		if sepRun(r) {
			k = 1
		}
		if prev >= 0 && k != prev {
			out = append(out, code[start:i])
			start = i
		}
		prev = k
	}
	return append(out, code[start:])
}

// learnPieces derives WordPiece pieces from the codes' structure, weighted by how often the
// codes occur:
//   - word-initial prefixes that end where a separator starts (ICD10/E11 of ICD10/E11.9) and the
//     namespace with its separator (ICD10/, SNOMED/, LAB//), so an unseen code starts with its
//     parent or its namespace;
//   - continuation pieces "##" + what follows a boundary (##.9, ##.65, ##65) so the rest of an
//     unseen code is one or two pieces;
//   - every character seen, as a first and a continuation piece, so any code written with
//     known characters encodes without [UNK].
func learnPieces(all []counted, cfg BuildConfig) []string {
	maxPieces := cfg.MaxPieces
	if maxPieces <= 0 {
		maxPieces = 2000
	}
	weight := map[string]int64{}
	chars := map[string]int64{}
	for _, c := range all {
		segs := segments(c.s)
		pos := 0
		for i, sg := range segs {
			r, _ := utf8.DecodeRuneInString(sg)
			isSep := !unicode.IsLetter(r) && !unicode.IsDigit(r)
			if i > 0 && isSep {
				weight[c.s[:pos]] += c.n // prefix ending before a separator
				weight["##"+c.s[pos:]] += c.n
				if i+1 < len(segs) {
					weight["##"+sg+segs[i+1]] += c.n
				}
			}
			if i == 1 && isSep {
				weight[c.s[:pos+len(sg)]] += c.n // namespace with its separator
			}
			if i > 0 && !isSep {
				weight["##"+sg] += c.n
			}
			pos += len(sg)
		}
		for _, r := range c.s {
			chars[string(r)] += c.n
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
	out := make([]string, 0, len(ps)+2*len(chars))
	for _, p := range ps {
		out = append(out, p.s)
	}
	var cs []counted
	for ch, n := range chars {
		cs = append(cs, counted{ch, n})
	}
	sortCounted(cs)
	for _, ch := range cs {
		out = append(out, ch.s, "##"+ch.s)
	}
	return out
}
