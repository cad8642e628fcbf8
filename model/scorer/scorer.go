package scorer

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/features"
	"github.com/medseq/medseq/model/gbt"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// ErrUnsupported is returned for a model kind this build cannot score.
var ErrUnsupported = errors.New("unsupported model kind")

// Input is one history to score: censored events whose codes come from Codes.
type Input struct {
	Events         []data.Event
	Birth          int64 // data.StaticTime when unknown
	Sex            string
	PredictionTime int64
}

// Result is a score with what the encoding had to drop or could not read.
type Result struct {
	Probability float64 // raw model probability (uncalibrated)
	Unknown     int     // codes that became [UNK]
	Pieced      int     // codes outside the vocabulary read as a parent code and suffix pieces
	Truncated   int     // tokens dropped from the oldest end (BERT)
}

// Rates are the history's codes counted as whole-code hits, pieced and [UNK] (events is the
// number of codes scored).
func (r Result) Rates(events int) tokenize.CodeRates {
	return tokenize.CodeRates{Codes: int64(events), Whole: int64(events - r.Pieced - r.Unknown),
		Pieced: int64(r.Pieced), Unknown: int64(r.Unknown)}
}

// Scorer scores histories. Safe for concurrent use.
type Scorer interface {
	Kind() string
	Manifest() *modelrepo.Manifest
	Tokenizer() *tokenize.Tokenizer
	// Score scores inputs whose event codes come from codes.
	Score(codes *data.Codes, ins []Input) ([]Result, error)
}

// Loader opens a model version folder of one kind.
type Loader func(dir string, m *modelrepo.Manifest) (Scorer, error)

// Registry maps model kinds to loaders. Packages that implement a kind (model/bert) cannot be
// imported here without a cycle, so the binary registers them.
type Registry struct {
	mu      sync.RWMutex
	loaders map[string]Loader
}

// NewRegistry knows the XGBoost kind; Register adds others.
func NewRegistry() *Registry {
	xgb := func(dir string, m *modelrepo.Manifest) (Scorer, error) { return loadXGBoost(dir, m) }
	return &Registry{loaders: map[string]Loader{modelrepo.KindXGBoost: xgb}}
}

// Register adds or replaces the loader of a kind.
func (r *Registry) Register(kind string, l Loader) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loaders[kind] = l
}

// Load opens a model version folder with the loader of its kind.
func (r *Registry) Load(dir string) (Scorer, error) {
	m, err := modelrepo.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	l, ok := r.loaders[m.Kind]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("load %s: %w %q", dir, ErrUnsupported, m.Kind)
	}
	return l(dir, m)
}

// Load opens a model version folder of a kind this package knows (XGBoost); use a Registry
// for the others.
func Load(dir string) (Scorer, error) { return NewRegistry().Load(dir) }

// XGBoost scores with the pure-Go leaves predictor.
type XGBoost struct {
	manifest *modelrepo.Manifest
	tok      *tokenize.Tokenizer
	space    *features.Space
	pred     *gbt.Predictor
	LoadTime time.Duration

	words   *wordCache // code string -> token ids, shared by all calls
	scratch sync.Pool  // *scoreScratch
}

func loadXGBoost(dir string, m *modelrepo.Manifest) (*XGBoost, error) {
	start := time.Now()
	tok, _, err := tokenize.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	x := modelrepo.XGBoostPath(dir)
	sp, err := features.LoadSpace(x)
	if err != nil {
		return nil, err
	}
	if err := sp.Check(tok); err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	p, err := gbt.Load(modelrepo.XGBoostPath(dir, modelrepo.XGBoostLegacy))
	if err != nil {
		return nil, err
	}
	if p.NumFeatures() > sp.NumFeatures() {
		return nil, fmt.Errorf("load %s: model uses %d features, the feature space has %d", dir, p.NumFeatures(),
			sp.NumFeatures())
	}
	return &XGBoost{manifest: m, tok: tok, space: sp, pred: p, words: newWordCache(tok), LoadTime: time.Since(start)}, nil
}

// Kind is "xgboost".
func (x *XGBoost) Kind() string { return modelrepo.KindXGBoost }

// Manifest is the model's manifest.
func (x *XGBoost) Manifest() *modelrepo.Manifest { return x.manifest }

// Tokenizer is the model's tokenizer.
func (x *XGBoost) Tokenizer() *tokenize.Tokenizer { return x.tok }

// Space is the model's feature space.
func (x *XGBoost) Space() *features.Space { return x.space }

// scoreScratch is one Score call's reusable state: the token ids of the call's code table
// (from the scorer's word cache), a feature builder and the CSR rows.
type scoreScratch struct {
	ids  [][]int32
	unk  []bool
	kind []tokenize.CodeKind
	b    *features.Builder
	rows features.CSR
}

// Tokens implements features.TokenSource over the call's code table.
func (s *scoreScratch) Tokens(code int32) ([]int32, bool) { return s.ids[code], s.unk[code] }

// maxPooledEntries bounds the CSR scratch kept between calls.
const maxPooledEntries = 1 << 20

// Score builds feature rows and predicts them.
func (x *XGBoost) Score(codes *data.Codes, ins []Input) ([]Result, error) {
	sc, _ := x.scratch.Get().(*scoreScratch)
	if sc == nil {
		sc = &scoreScratch{}
		sc.b = x.space.NewBuilderFrom(x.tok, sc)
	}
	n := codes.Len()
	sc.ids, sc.unk = slices.Grow(sc.ids[:0], n)[:n], slices.Grow(sc.unk[:0], n)[:n]
	sc.kind = slices.Grow(sc.kind[:0], n)[:n]
	for id := range n {
		sc.ids[id], sc.kind[id] = x.words.tokens(x.tok, codes.Name(int32(id)))
		sc.unk[id] = sc.kind[id] == tokenize.CodeUnknown
	}
	rows := &sc.rows
	rows.Indptr, rows.Indices, rows.Data, rows.NumCol = rows.Indptr[:0], rows.Indices[:0], rows.Data[:0], 0
	out := make([]Result, len(ins))
	for i, in := range ins {
		sc.b.Append(rows, features.Row{Events: in.Events, Birth: in.Birth, Sex: in.Sex, PredictionTime: in.PredictionTime})
		for _, e := range in.Events {
			switch sc.kind[e.Code] {
			case tokenize.CodeUnknown:
				out[i].Unknown++
			case tokenize.CodePieced:
				out[i].Pieced++
			}
		}
	}
	var p []float64
	var one [1]float64
	var err error
	if len(ins) == 1 && rows.NumCol <= x.pred.NumFeatures() {
		// One row: the same per-row prediction as PredictCSR, without its worker goroutine.
		one[0], err = x.pred.PredictSparse(rows.Indices, rows.Data)
		p = one[:]
	} else {
		p, err = x.pred.PredictCSR(rows)
	}
	clear(sc.ids) // drop references to cached slices; keep capacity
	if cap(rows.Indices) <= maxPooledEntries && cap(sc.ids) <= maxPooledEntries {
		x.scratch.Put(sc)
	}
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Probability = p[i]
	}
	return out, nil
}

// wordCache maps code strings to their token ids. Safe for concurrent use; bounded (a code
// met when the cache is full is tokenized on every call). Cached slices are never modified.
// A code that is one vocabulary token (the common case) takes no lock: its ids are a
// one-element window of single, read-only after load.
type wordCache struct {
	single []int32 // single[id] == id
	shards [wordShards]wordShard
}

func newWordCache(tok *tokenize.Tokenizer) *wordCache {
	c := &wordCache{single: make([]int32, tok.Vocab.Len())}
	for i := range c.single {
		c.single[i] = int32(i)
	}
	return c
}

const (
	wordShards      = 64
	wordShardMaxLen = 2048 // codes per shard: 128Ki codes in all
)

type wordShard struct {
	mu sync.RWMutex
	m  map[string]wordEntry
}

type wordEntry struct {
	ids  []int32
	kind tokenize.CodeKind
}

// tokens returns the token ids of code under tok and how it is read, as
// tok.AppendCode(nil, code) does.
func (c *wordCache) tokens(tok *tokenize.Tokenizer, code string) ([]int32, tokenize.CodeKind) {
	if id, ok := tok.WholeCode(code); ok && int(id) < len(c.single) {
		return c.single[id : id+1 : id+1], tok.CodeKindOf(c.single[id:id+1], id == tok.Vocab.Unk)
	}
	sh := &c.shards[maphash.String(wordSeed, code)%wordShards]
	sh.mu.RLock()
	e, ok := sh.m[code]
	sh.mu.RUnlock()
	if ok {
		return e.ids, e.kind
	}
	ids, kind := tok.AppendCode(nil, code)
	ids = slices.Clip(ids)
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[string]wordEntry)
	}
	if len(sh.m) < wordShardMaxLen {
		sh.m[strings.Clone(code)] = wordEntry{ids: ids, kind: kind}
	}
	sh.mu.Unlock()
	return ids, kind
}

var wordSeed = maphash.MakeSeed()
