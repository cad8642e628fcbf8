package tokenize

import (
	"math"
	"runtime"
	"sync"

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
		ids, unk := m.tok.AppendWord(nil, m.codes.Name(int32(id)))
		m.ids = append(m.ids, ids)
		m.unk = append(m.unk, unk)
	}
}

// Tokens returns the ids of a code and whether it is [UNK].
func (m *CodeMap) Tokens(code int32) ([]int32, bool) { return m.ids[code], m.unk[code] }

// Encode encodes one subject's events: [CLS], each event's code tokens (with [SEP] between
// visits if asked), [SEP]; then truncation from the oldest end and padding.
func (m *CodeMap) Encode(in Input, o Options) Encoding {
	v := m.tok.Vocab
	n := 0
	for _, e := range in.Events {
		n += len(m.ids[e.Code]) + 1
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
				day = floorDiv(e.Time, data.MicrosPerDay)
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
	}
	return finish(v, ids, ages, days, unknown, ageOf(in.PredictionTime), o)
}

// finish truncates (keeping the newest tokens), adds [CLS] and [SEP], builds the mask and pads.
func finish(v *Vocab, body []int32, ages, days []float32, unknown int, predAge float32, o Options) Encoding {
	truncated := 0
	if o.MaxLen > 0 && len(body) > o.MaxLen-2 {
		keep := max(o.MaxLen-2, 0)
		truncated = len(body) - keep
		for _, id := range body[:truncated] {
			if id == v.Unk {
				unknown--
			}
		}
		body, ages, days = body[truncated:], ages[truncated:], days[truncated:]
	}
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

// EncodeText encodes one line of whitespace-separated codes, as HuggingFace's tokenizer does
// with our tokenizer.json: special tokens in the text are kept whole.
func (t *Tokenizer) EncodeText(line string, o Options) Encoding {
	words := fields(line)
	ids := make([]int32, 0, len(words)+2)
	unknown := 0
	for _, w := range words {
		if id, ok := t.specialID(w); ok {
			ids = append(ids, id)
			continue
		}
		var unk bool
		ids, unk = t.AppendWord(ids, w)
		if unk {
			unknown++
		}
	}
	z := make([]float32, len(ids))
	return finish(t.Vocab, ids, z, z, unknown, 0, o)
}

// EncodeTexts encodes lines on all cores.
func (t *Tokenizer) EncodeTexts(lines []string, o Options) []Encoding {
	out := make([]Encoding, len(lines))
	parallel(len(lines), func(i int) { out[i] = t.EncodeText(lines[i], o) })
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
	workers := runtime.GOMAXPROCS(0)
	if n < 256 || workers == 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				f(i)
			}
		}()
	}
	wg.Wait()
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
