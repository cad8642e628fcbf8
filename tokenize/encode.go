package tokenize

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/medseq/medseq/data"
)

// Padding says how encodings are padded.
type Padding int

// Padding modes.
const (
	PadNone    Padding = iota // no padding
	PadFixed                  // pad every encoding to Options.MaxLen
	PadLongest                // pad a batch to its longest encoding
)

// Options control encoding.
type Options struct {
	// MaxLen is the total length including [CLS] and [SEP]; longer inputs lose their OLDEST
	// tokens. 0 means no limit.
	MaxLen int
	// Padding mode; PadFixed needs MaxLen.
	Padding Padding
	// VisitSeparators puts [SEP] between events on different days (static rows count as one
	// visit before the first day).
	VisitSeparators bool
}

// Encoding is one encoded sequence.
type Encoding struct {
	IDs           []int32
	AttentionMask []int32   // 1 for real tokens, 0 for padding
	Ages          []float32 // age in years at each token (0 for static rows and padding)
	DaysBefore    []float32 // days from each token's event to the prediction time (0 for specials)
	Unknown       int       // tokens that are [UNK]
	Truncated     int       // tokens dropped from the oldest end
}

// Len is the number of real (unpadded) tokens.
func (e *Encoding) Len() int {
	n := 0
	for _, m := range e.AttentionMask {
		n += int(m)
	}
	return n
}

// Input is one subject's censored events to encode.
type Input struct {
	Events         []data.Event
	Birth          int64 // microseconds; data.StaticTime when unknown (ages are then 0)
	PredictionTime int64
}

// CodeMap caches the token ids of every code of a dataset's code table, so encoding an event
// is a slice lookup. Build it after the dataset's codes are read; Refresh picks up new codes.
type CodeMap struct {
	tok   *Tokenizer
	codes *data.Codes
	ids   [][]int32
	unk   []bool
	kinds []CodeKind
	edges [][]float32 // value bins' cut points per code (nil: no value token)
}

// NewCodeMap maps every code currently in codes.
func (t *Tokenizer) NewCodeMap(codes *data.Codes) *CodeMap {
	m := &CodeMap{tok: t, codes: codes}
	m.Refresh()
	return m
}

// Refresh maps codes added to the table since the last call. Not safe concurrently with
// encoding.
func (m *CodeMap) Refresh() {
	for id := len(m.ids); id < m.codes.Len(); id++ {
		name := m.codes.Name(int32(id))
		ids, kind := m.tok.AppendCode(nil, name)
		m.ids = append(m.ids, ids)
		m.unk = append(m.unk, kind == CodeUnknown)
		m.kinds = append(m.kinds, kind)
		var e []float32
		if m.tok.Values != nil {
			e = m.tok.Values.Edges[name]
		}
		m.edges = append(m.edges, e)
	}
}

// Tokens returns the ids of a code and whether it is [UNK].
func (m *CodeMap) Tokens(code int32) ([]int32, bool) { return m.ids[code], m.unk[code] }

// Kind is how the tokenizer reads a code: whole, pieced or [UNK].
func (m *CodeMap) Kind(code int32) CodeKind { return m.kinds[code] }

// Count adds the kinds of the events' codes to r.
func (m *CodeMap) Count(r *CodeRates, events []data.Event) {
	for _, e := range events {
		r.Count(m.kinds[e.Code])
	}
}

// Encode encodes one subject's events: [CLS], each event's code tokens (and its value token,
// with value bins, when it has a numeric value and the code has bins; with [SEP] between
// visits if asked), [SEP]; then truncation from the oldest end (never keeping a value token
// without its code) and padding.
func (m *CodeMap) Encode(in Input, o Options) Encoding {
	v := m.tok.Vocab
	n := 0
	for _, e := range in.Events {
		n += len(m.ids[e.Code]) + 1 // + a visit separator
		if m.edges[e.Code] != nil && e.HasValue() {
			n++
		}
	}
	ids := make([]int32, 0, n+2)
	ages := make([]float32, 0, n+2)
	days := make([]float32, 0, n+2)
	unknown := 0
	lastDay := int64(math.MinInt64)
	ageOf := func(t int64) float32 {
		if t == data.StaticTime || in.Birth == data.StaticTime {
			return 0
		}
		return float32(float64(t-in.Birth) / float64(data.MicrosPerYear))
	}
	daysOf := func(t int64) float32 {
		if t == data.StaticTime {
			return 0
		}
		return float32(float64(in.PredictionTime-t) / float64(data.MicrosPerDay))
	}
	for i, e := range in.Events {
		if o.VisitSeparators {
			day := int64(math.MinInt64 + 1)
			if e.Time != data.StaticTime {
				day = data.FloorDiv(e.Time, data.MicrosPerDay)
			}
			if i > 0 && day != lastDay {
				ids = append(ids, v.Sep)
				ages = append(ages, ages[len(ages)-1])
				days = append(days, days[len(days)-1])
			}
			lastDay = day
		}
		toks := m.ids[e.Code]
		if m.unk[e.Code] {
			unknown++
		}
		a, d := ageOf(e.Time), daysOf(e.Time)
		for _, id := range toks {
			ids = append(ids, id)
			ages = append(ages, a)
			days = append(days, d)
		}
		if edges := m.edges[e.Code]; edges != nil && e.HasValue() {
			ids = append(ids, m.tok.Values.token(edges, e.Value))
			ages = append(ages, a)
			days = append(days, d)
		}
	}
	// Truncation keeps the newest MaxLen-2 tokens: if the oldest kept one is a value token,
	// its code is gone, so drop it too.
	dropped := 0
	if o.MaxLen > 0 && len(ids) > o.MaxLen-2 && o.MaxLen >= 2 {
		if cut := len(ids) - (o.MaxLen - 2); cut < len(ids) && m.tok.IsValueToken(ids[cut]) {
			for _, id := range ids[:cut+1] {
				if id == v.Unk {
					unknown--
				}
			}
			ids, ages, days, dropped = ids[cut+1:], ages[cut+1:], days[cut+1:], cut+1
		}
	}
	enc := finish(v, ids, ages, days, unknown, ageOf(in.PredictionTime), o)
	enc.Truncated += dropped
	return enc
}

// truncateOldest drops the oldest tokens of body so that it fits maxLen with [CLS] and [SEP]
// (maxLen 0: no limit), and discounts the [UNK] tokens it dropped from unknown.
func truncateOldest(v *Vocab, body []int32, unknown, maxLen int) ([]int32, int, int) {
	if maxLen <= 0 || len(body) <= maxLen-2 {
		return body, unknown, 0
	}
	truncated := len(body) - max(maxLen-2, 0)
	for _, id := range body[:truncated] {
		if id == v.Unk {
			unknown--
		}
	}
	return body[truncated:], unknown, truncated
}

// finish truncates (keeping the newest tokens), adds [CLS] and [SEP], builds the mask and pads.
func finish(v *Vocab, body []int32, ages, days []float32, unknown int, predAge float32, o Options) Encoding {
	body, unknown, truncated := truncateOldest(v, body, unknown, o.MaxLen)
	ages, days = ages[truncated:], days[truncated:]
	total := len(body) + 2
	size := total
	if o.Padding == PadFixed && o.MaxLen > size {
		size = o.MaxLen
	}
	e := Encoding{
		IDs: make([]int32, size), AttentionMask: make([]int32, size), Ages: make([]float32, size),
		DaysBefore: make([]float32, size), Unknown: unknown, Truncated: truncated,
	}
	e.IDs[0], e.Ages[0] = v.Cls, predAge
	copy(e.IDs[1:], body)
	copy(e.Ages[1:], ages)
	copy(e.DaysBefore[1:], days)
	e.IDs[total-1], e.Ages[total-1] = v.Sep, predAge
	for i := 0; i < total; i++ {
		e.AttentionMask[i] = 1
	}
	for i := total; i < size; i++ {
		e.IDs[i] = v.Pad
	}
	return e
}

// EncodeBatch encodes inputs on all cores and pads them as o says.
func (m *CodeMap) EncodeBatch(ins []Input, o Options) []Encoding {
	out := make([]Encoding, len(ins))
	parallel(len(ins), func(i int) { out[i] = m.Encode(ins[i], o) })
	if o.Padding == PadLongest {
		padLongest(m.tok.Vocab, out)
	}
	return out
}

// EncodeText encodes one line of whitespace-separated codes exactly as HuggingFace's
// tokenizers library does with our tokenizer.json (tokenize/hf_test.go checks it): words are
// split at Unicode whitespace; special tokens ([SEP], [MASK], ...) are found anywhere in the
// text, even inside a word, and kept whole (a literal [UNK] counts as unknown); a word longer
// than MaxInputCharsPerWord characters is [UNK]; the rest is WordPiece; then truncation
// (keeping the newest tokens), [CLS] and [SEP], and padding. Ages and DaysBefore are zeros.
func (t *Tokenizer) EncodeText(line string, o Options) Encoding {
	var scratch [256]int32
	sp := t.specials()
	body, unknown := t.appendText(scratch[:0], line, &sp, nil)
	return finishText(t.Vocab, body, unknown, o, nil)
}

// EncodeTextIDs appends to dst the ids EncodeText(line, Options{MaxLen: maxLen}) gives
// ([CLS], the newest tokens that fit, [SEP]), without building an Encoding: the lean path for
// callers that only need ids.
func (t *Tokenizer) EncodeTextIDs(line string, maxLen int, dst []int32) []int32 {
	sp := t.specials()
	return t.encodeTextIDs(line, maxLen, dst, &sp)
}

func (t *Tokenizer) encodeTextIDs(line string, maxLen int, dst []int32, sp *specials) []int32 {
	v := t.Vocab
	n0 := len(dst)
	dst = append(dst, v.Cls)
	dst, _ = t.appendText(dst, line, sp, nil)
	if body := len(dst) - n0 - 1; maxLen > 0 && body > maxLen-2 {
		keep := max(maxLen-2, 0)
		copy(dst[n0+1:], dst[len(dst)-keep:])
		dst = dst[:n0+1+keep]
	}
	return append(dst, v.Sep)
}

// finishText is finish for text, where ages and days are zero: it truncates, adds [CLS] and
// [SEP] and pads like finish, with two allocations (ids and mask share one, ages and days the
// other) or none when slab has room.
func finishText(v *Vocab, body []int32, unknown int, o Options, sl *slab) Encoding {
	body, unknown, truncated := truncateOldest(v, body, unknown, o.MaxLen)
	total := len(body) + 2
	size := total
	if o.Padding == PadFixed && o.MaxLen > size {
		size = o.MaxLen
	}
	var ints []int32
	var floats []float32
	if sl != nil {
		ints, floats = sl.take(size)
	} else {
		ints, floats = make([]int32, 2*size), make([]float32, 2*size)
	}
	e := Encoding{
		IDs: ints[:size:size], AttentionMask: ints[size : 2*size : 2*size],
		Ages: floats[:size:size], DaysBefore: floats[size : 2*size : 2*size],
		Unknown: unknown, Truncated: truncated,
	}
	e.IDs[0] = v.Cls
	copy(e.IDs[1:], body)
	e.IDs[total-1] = v.Sep
	for i := 0; i < total; i++ {
		e.AttentionMask[i] = 1
	}
	for i := total; i < size; i++ {
		e.IDs[i] = v.Pad
	}
	return e
}

// slab hands out zeroed memory for many encodings from a few large allocations (one
// encoding's slices then keep its slab alive: fine for a batch's results).
type slab struct {
	ints   []int32
	floats []float32
}

const slabInts = 1 << 16

func (s *slab) take(size int) ([]int32, []float32) {
	n := 2 * size
	if n > slabInts/4 {
		return make([]int32, n), make([]float32, n)
	}
	if len(s.ints) < n {
		s.ints, s.floats = make([]int32, slabInts), make([]float32, slabInts)
	}
	ints, floats := s.ints[:n:n], s.floats[:n:n]
	s.ints, s.floats = s.ints[n:], s.floats[n:]
	return ints, floats
}

// EncodeTexts encodes lines on all cores; each encoding is EncodeText's.
func (t *Tokenizer) EncodeTexts(lines []string, o Options) []Encoding {
	out := make([]Encoding, len(lines))
	sp := t.specials()
	parallelChunks(len(lines), func(lo, hi int) {
		var sl slab
		var cache oovCache
		scratch := make([]int32, 0, 256)
		for i := lo; i < hi; i++ {
			var unknown int
			scratch, unknown = t.appendText(scratch[:0], lines[i], &sp, &cache)
			out[i] = finishText(t.Vocab, scratch, unknown, o, &sl)
		}
	})
	if o.Padding == PadLongest {
		padLongest(t.Vocab, out)
	}
	return out
}

func padLongest(v *Vocab, encs []Encoding) {
	longest := 0
	for _, e := range encs {
		longest = max(longest, len(e.IDs))
	}
	for i := range encs {
		e := &encs[i]
		for len(e.IDs) < longest {
			e.IDs = append(e.IDs, v.Pad)
			e.AttentionMask = append(e.AttentionMask, 0)
			e.Ages = append(e.Ages, 0)
			e.DaysBefore = append(e.DaysBefore, 0)
		}
	}
}

// parallel runs f(0..n-1) on GOMAXPROCS goroutines in contiguous chunks.
func parallel(n int, f func(i int)) {
	parallelChunks(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f(i)
		}
	})
}

// parallelChunks runs f over [0,n) split into contiguous chunks, at most GOMAXPROCS at a time.
// Chunks are small enough (about 8 per worker) that a worker slowed by other load does not
// hold up the rest.
func parallelChunks(n int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < 256 || workers == 1 {
		f(0, n)
		return
	}
	chunk := max((n+8*workers-1)/(8*workers), 64)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= n {
					return
				}
				f(lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
}
