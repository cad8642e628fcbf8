package tokenize

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
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
	// Values are the value bins (nil: numeric values are not encoded); values.go.
	Values *ValueBins

	fast *fastVocab // Vocab's short tokens for quick lookups (nil: use Vocab's map)
}

// New returns a WordPiece tokenizer over v with HuggingFace's defaults.
func New(v *Vocab) *Tokenizer {
	return &Tokenizer{Vocab: v, Model: ModelWordPiece, ContinuingPrefix: "##", MaxInputCharsPerWord: 100,
		fast: newFastVocab(v)}
}

// AppendWord appends the ids of one word (a code) to dst and reports whether it came out as
// [UNK]. A word longer than MaxInputCharsPerWord characters is [UNK] even when it is in the
// vocabulary (HuggingFace checks the length first). Otherwise a word in the vocabulary is one
// token; else WordPiece takes the longest prefix in the vocabulary, then the longest
// continuation piece, and so on; if any part cannot be matched, the whole word is [UNK] —
// exactly HuggingFace's WordPiece.
func (t *Tokenizer) AppendWord(dst []int32, word string) ([]int32, bool) {
	// Bytes bound characters from above: count characters only for long words.
	if len(word) > t.MaxInputCharsPerWord && utf8.RuneCountInString(word) > t.MaxInputCharsPerWord {
		return append(dst, t.Vocab.Unk), true
	}
	if id, ok := t.lookup(word); ok {
		return append(dst, id), id == t.Vocab.Unk
	}
	return t.appendPieces(dst, word)
}

// WholeWord returns the one id AppendWord gives a word that is in the vocabulary as it stands
// (most codes are); ok=false sends the caller to AppendWord. Read-only: safe for concurrent
// use and allocation-free.
func (t *Tokenizer) WholeWord(word string) (id int32, ok bool) {
	if len(word) > t.MaxInputCharsPerWord && utf8.RuneCountInString(word) > t.MaxInputCharsPerWord {
		return 0, false
	}
	return t.lookup(word)
}

// appendPieces is AppendWord's fallback for a word that is not in the vocabulary.
func (t *Tokenizer) appendPieces(dst []int32, word string) ([]int32, bool) {
	n0 := len(dst)
	// On failure drop any pieces already appended: the whole word is [UNK].
	unk := func() ([]int32, bool) { return append(dst[:n0], t.Vocab.Unk), true }
	if t.Model != ModelWordPiece {
		return unk()
	}
	var arr [128]byte
	buf := arr[:0]
	for start := 0; start < len(word); {
		end := len(word)
		found := int32(-1)
		for start < end {
			var id int32
			var ok bool
			if start == 0 {
				id, ok = t.lookup(word[:end])
			} else {
				buf = append(append(buf[:0], t.ContinuingPrefix...), word[start:end]...)
				id, ok = t.lookup(unsafe.String(unsafe.SliceData(buf), len(buf))) // not kept
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

// specials are the special tokens of a vocabulary as HuggingFace's tokenizer.json lists them
// in added_tokens (MarshalHF writes exactly these). HuggingFace finds them anywhere in the raw
// text before pre-tokenization, even inside a word ("ICD10/E11[SEP]9" is ICD10/E11, [SEP], 9),
// taking the leftmost match and, among matches starting there, the longest.
type specials struct {
	toks      []string
	ids       []int32
	first     [256]bool // first bytes of the tokens
	firstList []byte    // the same, listed
}

func (t *Tokenizer) specials() (sp specials) {
	v := t.Vocab
	for _, id := range [...]int32{v.Pad, v.Unk, v.Cls, v.Sep, v.Mask} {
		if id < 0 || slicesContains(sp.ids, id) {
			continue
		}
		tok := v.tokens[id]
		sp.toks = append(sp.toks, tok)
		sp.ids = append(sp.ids, id)
		if !sp.first[tok[0]] {
			sp.first[tok[0]] = true
			sp.firstList = append(sp.firstList, tok[0])
		}
	}
	return sp
}

func slicesContains(s []int32, x int32) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// asciiSpace marks the ASCII characters Rust's char::is_whitespace (HuggingFace's
// WhitespaceSplit) and Go's unicode.IsSpace agree are whitespace.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// SWAR (SIMD within a register) helpers over 8 bytes read little-endian.
const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// swarMark has the high bit of every byte of x below 0x21 (whitespace and control
// characters), from 0x80 (non-ASCII) or equal to one of the bytes of also. Only its lowest
// set bit is exact (borrows can mark bytes above a marked one), which is all the scanner
// needs.
func swarMark(x uint64, also []byte) uint64 {
	m := (x-0x21*swarOnes)&^x | x
	for _, c := range also {
		y := x ^ uint64(c)*swarOnes
		m |= (y - swarOnes) &^ y
	}
	return m & swarHigh
}

// appendText appends the ids of a line's words (no [CLS]/[SEP]) and counts the [UNK] tokens.
// Words are split at Unicode whitespace, as HuggingFace's WhitespaceSplit pre-tokenizer does;
// special tokens are split out of the text first (see specials). The line is scanned in
// place, 8 bytes at a time: nothing is allocated but dst's growth.
//
// cache, when not nil, remembers the pieces of words outside the vocabulary: the same unseen
// code then costs one map lookup instead of WordPiece's search.
func (t *Tokenizer) appendText(dst []int32, line string, sp *specials, cache *oovCache) ([]int32, int) {
	unknown := 0
	n := len(line)
	b := unsafe.Slice(unsafe.StringData(line), n) // read only
	for i := 0; i < n; {
		c := line[i]
		if c < utf8.RuneSelf {
			if asciiSpace[c] {
				i++
				continue
			}
		} else if r, size := utf8.DecodeRuneInString(line[i:]); unicode.IsSpace(r) {
			i += size
			continue
		}
		// A word starts at i; find its end. Bytes that are plain ASCII letters, digits and
		// punctuation (not a special token's first byte) are skipped 8 at a time.
		start, special := i, false
		for i < n {
			for i+8 <= n {
				if m := swarMark(binary.LittleEndian.Uint64(b[i:]), sp.firstList); m != 0 {
					i += bits.TrailingZeros64(m) >> 3
					break
				}
				i += 8
			}
			for i < n && plainByte(line[i], sp) {
				i++
			}
			if i == n {
				break
			}
			c := line[i]
			if c < utf8.RuneSelf {
				if asciiSpace[c] {
					break
				}
				special = special || sp.first[c]
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(line[i:])
			if unicode.IsSpace(r) {
				break
			}
			special = special || sp.first[c]
			i += size
		}
		word := line[start:i]
		if special {
			var u int
			dst, u = t.appendWithSpecials(dst, word, sp)
			unknown += u
			continue
		}
		var unk bool
		if cache == nil {
			dst, unk = t.AppendWord(dst, word)
		} else {
			dst, unk = t.appendWordCached(dst, word, cache)
		}
		if unk {
			unknown++
		}
	}
	return dst, unknown
}

// oovCache remembers what words outside the vocabulary encode to. One goroutine uses it.
type oovCache struct {
	m   map[string]oovEntry
	ids []int32
}

type oovEntry struct {
	off, n int32
	unk    bool
}

const oovCacheWords = 1 << 14 // the cache starts afresh when it holds this many words

// appendWordCached is AppendWord with the pieces of unseen words taken from, or put in, c.
func (t *Tokenizer) appendWordCached(dst []int32, word string, c *oovCache) ([]int32, bool) {
	if len(word) > t.MaxInputCharsPerWord && utf8.RuneCountInString(word) > t.MaxInputCharsPerWord {
		return append(dst, t.Vocab.Unk), true
	}
	if id, ok := t.lookup(word); ok {
		return append(dst, id), id == t.Vocab.Unk
	}
	if e, ok := c.m[word]; ok {
		return append(dst, c.ids[e.off:e.off+e.n]...), e.unk
	}
	n0 := len(dst)
	dst, unk := t.appendPieces(dst, word)
	if c.m == nil || len(c.m) >= oovCacheWords {
		c.m, c.ids = make(map[string]oovEntry), c.ids[:0]
	}
	c.m[strings.Clone(word)] = oovEntry{off: int32(len(c.ids)), n: int32(len(dst) - n0), unk: unk}
	c.ids = append(c.ids, dst[n0:]...)
	return dst, unk
}

// plainByte reports whether the scanner can step over c without a look: printable ASCII
// that starts no special token.
func plainByte(c byte, sp *specials) bool { return c > ' ' && c < utf8.RuneSelf && !sp.first[c] }

// fastKeyMax is the longest token fastVocab holds.
const fastKeyMax = 24

// fastVocab is an open-addressing table from the tokens of at most fastKeyMax bytes to their
// ids. A key is its bytes as three zero-padded little-endian words, stored in the slot: a
// lookup is a hash of three words and (mostly) one 32-byte slot read, with no call to hash or
// compare memory: about 12 ns per code against the Go map's 20 ns on a 30k-code vocabulary.
// Longer tokens are looked up in Vocab's map.
type fastVocab struct {
	v     *Vocab
	slots []fastSlot
	mask  uint64
}

type fastSlot struct {
	k  [3]uint64
	n  uint32 // key length; 0 marks an empty slot
	id int32
}

func newFastVocab(v *Vocab) *fastVocab {
	size := 16
	for size < 2*len(v.tokens) {
		size *= 2
	}
	f := &fastVocab{v: v, slots: make([]fastSlot, size), mask: uint64(size - 1)}
	for id, tok := range v.tokens {
		if len(tok) == 0 || len(tok) > fastKeyMax {
			continue
		}
		k0, k1, k2 := fastKey(tok)
		i := fastHash(k0, k1, k2, len(tok)) & f.mask
		for f.slots[i].n != 0 {
			i = (i + 1) & f.mask
		}
		f.slots[i] = fastSlot{k: [3]uint64{k0, k1, k2}, n: uint32(len(tok)), id: int32(id)}
	}
	return f
}

// fastKey returns s (at most fastKeyMax bytes) as three zero-padded little-endian words. It
// reads only s's bytes, with overlapping loads instead of a copy.
func fastKey(s string) (k0, k1, k2 uint64) {
	n := len(s)
	b := unsafe.Slice(unsafe.StringData(s), n) // read only
	le := binary.LittleEndian
	switch {
	case n > 16:
		return le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[n-8:]) >> (8 * (24 - n))
	case n > 8:
		return le.Uint64(b), le.Uint64(b[n-8:]) >> (8 * (16 - n)), 0
	case n == 8:
		return le.Uint64(b), 0, 0
	case n >= 4:
		// The two loads overlap on equal bytes, so or-ing them is exact.
		return uint64(le.Uint32(b)) | uint64(le.Uint32(b[n-4:]))<<(8*(n-4)), 0, 0
	case n > 0:
		return uint64(b[0]) | uint64(b[n/2])<<(8*(n/2)) | uint64(b[n-1])<<(8*(n-1)), 0, 0
	}
	return 0, 0, 0
}

func fastHash(k0, k1, k2 uint64, n int) uint64 {
	h := (k0 ^ uint64(n)<<56) * 0x9E3779B97F4A7C15
	h = (h ^ h>>29 ^ k1) * 0xBF58476D1CE4E5B9
	h = (h ^ h>>32 ^ k2) * 0x94D049BB133111EB
	return h ^ h>>29
}

func (f *fastVocab) find(s string) (int32, bool) {
	k0, k1, k2 := fastKey(s)
	n := uint32(len(s))
	for i := fastHash(k0, k1, k2, len(s)) & f.mask; ; i = (i + 1) & f.mask {
		sl := &f.slots[i]
		if sl.n == n && sl.k[0] == k0 && sl.k[1] == k1 && sl.k[2] == k2 {
			return sl.id, true
		}
		if sl.n == 0 {
			return 0, false
		}
	}
}

// lookup returns the id of a token.
func (t *Tokenizer) lookup(s string) (int32, bool) {
	if f := t.fast; f != nil && f.v == t.Vocab && len(s) <= fastKeyMax && len(s) > 0 {
		return f.find(s)
	}
	id, ok := t.Vocab.ids[s]
	return id, ok
}

// appendWithSpecials encodes a word that may hold special tokens: each special token is one
// id (a literal [UNK] counts as unknown), and the text between them is encoded as words.
func (t *Tokenizer) appendWithSpecials(dst []int32, word string, sp *specials) ([]int32, int) {
	unknown := 0
	for word != "" {
		at, size, id := -1, 0, int32(0)
		for k, tok := range sp.toks {
			j := strings.Index(word, tok)
			if j >= 0 && (at < 0 || j < at || j == at && len(tok) > size) {
				at, size, id = j, len(tok), sp.ids[k]
			}
		}
		if at < 0 {
			at = len(word)
		}
		if at > 0 {
			var unk bool
			if dst, unk = t.AppendWord(dst, word[:at]); unk {
				unknown++
			}
		}
		if size == 0 {
			break
		}
		dst = append(dst, id)
		if id == t.Vocab.Unk {
			unknown++
		}
		word = word[at+size:]
	}
	return dst, unknown
}
