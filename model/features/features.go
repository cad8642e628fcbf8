package features

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/tokenize"
)

// File names in a model's xgboost/ folder.
const (
	SpaceFile   = "features.json"
	FeatMapFile = "featmap.txt"
)

// Fixed features before the token-count blocks.
const (
	FeatAge = iota
	FeatSexMale
	FeatSexFemale
	numFixed
)

// Config says which count windows a space has.
type Config struct {
	// Windows in microseconds before the prediction time; 0 means the whole history.
	Windows []int64
	// LastValue adds, per token, the numeric value of the latest visible event whose code is
	// that one token (a lab result, a measurement); absent when there is none.
	LastValue bool
}

// DefaultConfig counts over the whole history, the last 365 days and the last 30 days. Last
// values stay off by default: the baseline sees what the BERT sees, the codes.
func DefaultConfig() Config {
	return Config{Windows: []int64{0, 365 * data.MicrosPerDay, 30 * data.MicrosPerDay}}
}

// Space is the layout of feature rows: index = 3 + window*V + token id for the counts, V the
// vocabulary size, then (with LastValue) 3 + len(Windows)*V + token id for the last values.
type Space struct {
	VocabSize int     `json:"vocab_size"`
	Windows   []int64 `json:"windows_us"`
	LastValue bool    `json:"last_value,omitempty"` // absent in models from before it existed
	// ParentOnly: a pieced code counts toward its parent token only (every space NewSpace
	// makes); false in models from before it existed, whose rows count every piece, as they
	// were trained.
	ParentOnly bool `json:"pieced_codes_count_parent,omitempty"`

	once    sync.Once
	special []bool // tokens never counted: special tokens but [UNK]; built once per space
}

// ErrSpaceMismatch is returned when a space does not fit the tokenizer it is used with.
var ErrSpaceMismatch = errors.New("feature space does not match the tokenizer")

// NewSpace lays out features for a tokenizer.
func NewSpace(tok *tokenize.Tokenizer, cfg Config) (*Space, error) {
	if len(cfg.Windows) == 0 {
		cfg = DefaultConfig()
	}
	seen := map[int64]bool{}
	for _, w := range cfg.Windows {
		if w < 0 {
			return nil, fmt.Errorf("feature window %s is negative", data.FormatDuration(w))
		}
		if seen[w] {
			return nil, fmt.Errorf("feature window %s listed twice", windowName(w))
		}
		seen[w] = true
	}
	return &Space{VocabSize: tok.Vocab.Len(), Windows: append([]int64(nil), cfg.Windows...), LastValue: cfg.LastValue,
		ParentOnly: true}, nil
}

// NumFeatures is the width of a row.
func (s *Space) NumFeatures() int {
	n := numFixed + len(s.Windows)*s.VocabSize
	if s.LastValue {
		n += s.VocabSize
	}
	return n
}

// lastValueBase is the index of the first last-value feature.
func (s *Space) lastValueBase() int { return numFixed + len(s.Windows)*s.VocabSize }

func windowName(w int64) string {
	if w == 0 {
		return "all"
	}
	return data.FormatDuration(w)
}

// Name is the readable name of feature i, e.g. "count[365d]:ICD10/E66.9".
func (s *Space) Name(i int, v *tokenize.Vocab) string {
	switch i {
	case FeatAge:
		return "age_years"
	case FeatSexMale:
		return "sex=M"
	case FeatSexFemale:
		return "sex=F"
	}
	if s.LastValue && i >= s.lastValueBase() {
		return "last_value:" + v.Token(int32(i-s.lastValueBase()))
	}
	j := i - numFixed
	return fmt.Sprintf("count[%s]:%s", windowName(s.Windows[j/s.VocabSize]), v.Token(int32(j%s.VocabSize)))
}

// Token returns the token of a count or last-value feature (ok=false for the fixed ones).
func (s *Space) Token(i int) (int32, bool) {
	if i < numFixed {
		return 0, false
	}
	return int32((i - numFixed) % s.VocabSize), true
}

// Check verifies the space fits tok.
func (s *Space) Check(tok *tokenize.Tokenizer) error {
	if s.VocabSize != tok.Vocab.Len() {
		return fmt.Errorf("%w: space has %d tokens, tokenizer %d", ErrSpaceMismatch, s.VocabSize, tok.Vocab.Len())
	}
	return nil
}

// TokenSource gives the token ids of a code id and whether the code is [UNK].
// *tokenize.CodeMap is one.
type TokenSource interface {
	Tokens(code int32) ([]int32, bool)
}

// Builder appends feature rows; one per goroutine (it keeps scratch space).
type Builder struct {
	space   *Space
	codes   TokenSource
	special []bool
	idx     []uint32    // scratch: one entry per counted token occurrence
	vals    []lastValue // scratch: one entry per valued event, in time order
}

type lastValue struct {
	idx uint32
	v   float32
}

// NewBuilder builds rows for events whose codes come from m's code table.
// The space must be used with one tokenizer (Check verifies the size).
func (s *Space) NewBuilder(tok *tokenize.Tokenizer, m *tokenize.CodeMap) *Builder {
	return s.NewBuilderFrom(tok, m)
}

// NewBuilderFrom is NewBuilder for any source of code tokens.
func (s *Space) NewBuilderFrom(tok *tokenize.Tokenizer, src TokenSource) *Builder {
	s.once.Do(func() {
		s.special = make([]bool, tok.Vocab.Len())
		for id := range s.special {
			s.special[id] = tok.Vocab.IsSpecial(int32(id)) && int32(id) != tok.Vocab.Unk
		}
	})
	return &Builder{space: s, codes: src, special: s.special}
}

// Reset points a builder at another source of code tokens, keeping its scratch space.
func (b *Builder) Reset(src TokenSource) { b.codes = src }

// Row is one subject at one prediction time: censored events, birth and sex.
type Row struct {
	Events         []data.Event
	Birth          int64 // data.StaticTime when unknown
	Sex            string
	PredictionTime int64
}

// Append appends the row's features to x (indices ascending; absent means missing/zero count).
// Events must be in time order (censored histories are), so the last valued one is the latest.
func (b *Builder) Append(x *CSR, r Row) {
	s := b.space
	if len(x.Indptr) == 0 {
		x.Indptr = append(x.Indptr, 0)
	}
	x.NumCol = s.NumFeatures()
	if r.Birth != data.StaticTime {
		x.Indices = append(x.Indices, FeatAge)
		x.Data = append(x.Data, float32(float64(r.PredictionTime-r.Birth)/float64(data.MicrosPerYear)))
	}
	switch r.Sex {
	case data.SexMale:
		x.Indices, x.Data = append(x.Indices, FeatSexMale), append(x.Data, 1)
	case data.SexFemale:
		x.Indices, x.Data = append(x.Indices, FeatSexFemale), append(x.Data, 1)
	}
	// Collect one index per counted occurrence, sort, and emit each distinct index with its
	// run length (an exact float32 count, as incrementing one is).
	// Each event counts toward one token: its code's when the code is whole, its parent's (the
	// first token: a whole code or a stem, tokenize.Tokenizer.Parent) when it is pieced, [UNK]'s
	// when it is unknown. A suffix piece (##.65) is never a feature: alone it means nothing.
	idx := b.idx[:0]
	for _, e := range r.Events {
		ids, _ := b.codes.Tokens(e.Code)
		if s.ParentOnly {
			ids = ids[:1]
		}
		for wi, w := range s.Windows {
			if w != 0 && (e.Time == data.StaticTime || r.PredictionTime-e.Time > w) {
				continue
			}
			base := int32(numFixed + wi*s.VocabSize)
			for _, id := range ids {
				if !b.special[id] {
					idx = append(idx, uint32(base+id))
				}
			}
		}
	}
	slices.Sort(idx)
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && idx[j] == idx[i] {
			j++
		}
		x.Indices = append(x.Indices, idx[i])
		x.Data = append(x.Data, float32(j-i))
		i = j
	}
	b.idx = idx
	if s.LastValue {
		b.appendLastValues(x, r.Events)
	}
	x.Indptr = append(x.Indptr, int64(len(x.Indices)))
}

// appendLastValues appends, for each token that is the whole of a valued event's code, the
// value of the latest such event. Codes of several pieces or [UNK] carry no value feature: a
// value belongs to a code, and a piece or [UNK] stands for many.
func (b *Builder) appendLastValues(x *CSR, events []data.Event) {
	base := uint32(b.space.lastValueBase())
	vals := b.vals[:0]
	for _, e := range events {
		if v := float64(e.Value); math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		ids, unk := b.codes.Tokens(e.Code)
		if unk || len(ids) != 1 || b.special[ids[0]] {
			continue
		}
		vals = append(vals, lastValue{idx: base + uint32(ids[0]), v: e.Value})
	}
	// Stable: among one token's values, time order survives and the last is the latest.
	slices.SortStableFunc(vals, func(a, b lastValue) int { return cmp.Compare(a.idx, b.idx) })
	for i, lv := range vals {
		if i+1 < len(vals) && vals[i+1].idx == lv.idx {
			continue
		}
		x.Indices = append(x.Indices, lv.idx)
		x.Data = append(x.Data, lv.v)
	}
	b.vals = vals
}

// Save writes features.json and XGBoost's featmap.txt into dir.
func (s *Space) Save(dir string, v *tokenize.Vocab) error {
	buf, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := data.WriteFileAtomic(dir+"/"+SpaceFile, append(buf, '\n')); err != nil {
		return err
	}
	var b strings.Builder
	for i := 0; i < s.NumFeatures(); i++ {
		kind := "q"
		if i == FeatSexMale || i == FeatSexFemale {
			kind = "i"
		} else if i >= numFixed && !(s.LastValue && i >= s.lastValueBase()) {
			kind = "int"
		}
		fmt.Fprintf(&b, "%d\t%s\t%s\n", i, s.Name(i, v), kind)
	}
	return data.WriteFileAtomic(dir+"/"+FeatMapFile, []byte(b.String()))
}

// LoadSpace reads features.json.
func LoadSpace(dir string) (*Space, error) {
	p := dir + "/" + SpaceFile
	buf, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read feature space: %w", err)
	}
	var s Space
	if err := json.Unmarshal(buf, &s); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if s.VocabSize <= 0 || len(s.Windows) == 0 {
		return nil, fmt.Errorf("read %s: empty feature space", p)
	}
	return &s, nil
}
