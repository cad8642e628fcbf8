package bert

import (
	"fmt"
	"sort"
	"sync"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/scorer"
	"github.com/medseq/medseq/modelrepo"
	"github.com/medseq/medseq/tokenize"
)

// PadBucket rounds a batch's longest sequence up to a multiple of this, so few graph shapes
// are compiled.
const PadBucket = 16

// Encoded is one encoded sequence (unpadded) for batching.
type Encoded struct {
	IDs  []int32
	Ages []float32
	Days []float32 // days before the prediction time (nil: zeros)
}

// FromEncoding keeps the real (unpadded) tokens of an encoding.
func FromEncoding(e tokenize.Encoding) Encoded {
	n := e.Len()
	return Encoded{IDs: e.IDs[:n], Ages: e.Ages[:n], Days: e.DaysBefore[:n]}
}

// MakeBatch pads seqs to a shared length (a multiple of PadBucket, at most maxLen) with rows
// up to rows (extra rows are padding with weight 0). labels may be nil.
func MakeBatch(seqs []Encoded, labels []float32, rows, maxLen int, pad int32) *Batch {
	L := 0
	for _, s := range seqs {
		L = max(L, len(s.IDs))
	}
	L = min((L+PadBucket-1)/PadBucket*PadBucket, maxLen)
	L = max(L, min(2, maxLen))
	rows = max(rows, len(seqs))
	b := &Batch{B: rows, L: L, IDs: make([]int32, rows*L), Mask: make([]int32, rows*L), Ages: make([]float32, rows*L),
		Days: make([]float32, rows*L), Labels: make([]float32, rows), Weights: make([]float32, rows)}
	for i := range b.IDs {
		b.IDs[i] = pad
	}
	for i := 0; i < rows; i++ {
		if i >= len(seqs) {
			b.IDs[i*L] = pad
			b.Mask[i*L] = 1 // a lone token so every row attends to something
			continue
		}
		s := seqs[i]
		n := min(len(s.IDs), L)
		copy(b.IDs[i*L:], s.IDs[len(s.IDs)-n:])
		copy(b.Ages[i*L:], s.Ages[len(s.Ages)-n:])
		if len(s.Days) == len(s.IDs) {
			copy(b.Days[i*L:], s.Days[len(s.Days)-n:])
		}
		for j := 0; j < n; j++ {
			b.Mask[i*L+j] = 1
		}
		b.Weights[i] = 1
		if labels != nil {
			b.Labels[i] = labels[i]
		}
	}
	return b
}

// PadTo returns b with sequences padded to L tokens and MLM positions to P per row (padding
// is masked out and weighs nothing: the same results up to the order of sums), or b itself
// when it already has those shapes or larger.
func (b *Batch) PadTo(L, P int) *Batch {
	L, P = max(L, b.L), max(P, b.P)
	if L == b.L && P == b.P {
		return b
	}
	out := *b
	out.L, out.P = L, P
	if L != b.L {
		out.IDs, out.Mask = padRows(b.IDs, b.B, b.L, L), padRows(b.Mask, b.B, b.L, L)
		out.Ages, out.Days = padRows(b.Ages, b.B, b.L, L), padRows(b.Days, b.B, b.L, L)
	}
	if P != b.P && b.P > 0 {
		out.Positions, out.Targets = padRows(b.Positions, b.B, b.P, P), padRows(b.Targets, b.B, b.P, P)
		out.TargetWeights = padRows(b.TargetWeights, b.B, b.P, P)
	}
	return &out
}

// padRows copies B rows of l values into rows of L, zero-filled (nil stays nil).
func padRows[T int32 | float32](v []T, B, l, L int) []T {
	if v == nil {
		return nil
	}
	out := make([]T, B*L)
	for i := 0; i < B; i++ {
		copy(out[i*L:], v[i*l:(i+1)*l])
	}
	return out
}

// PredictLogits runs the classifier over seqs in batches of batchSize, shortest first (so
// batches pad little), and returns the logits in the input order.
func (e *Engine) PredictLogits(seqs []Encoded, batchSize int, pad int32) ([]float32, error) {
	if batchSize <= 0 {
		batchSize = 64
	}
	order := make([]int, len(seqs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(seqs[order[a]].IDs) < len(seqs[order[b]].IDs) })
	out := make([]float32, len(seqs))
	// Chunks of batchSize, batchSize/2, ..., 1 rows, each full: a few compiled shapes and no
	// padded rows (one subject costs one row; 17 run as 16 + 1).
	// A static engine runs every chunk as a full batch (padding rows): one shape.
	for lo := 0; lo < len(order); {
		rows := batchSize
		for !e.static && rows > 1 && rows > len(order)-lo {
			rows /= 2
		}
		hi := min(lo+rows, len(order))
		part := make([]Encoded, 0, rows)
		for _, i := range order[lo:hi] {
			part = append(part, seqs[i])
		}
		logits, err := e.Logits(MakeBatch(part, nil, rows, e.cfg.MaxPositionEmbeddings, pad))
		if err != nil {
			return nil, err
		}
		for k, i := range order[lo:hi] {
			out[i] = logits[k]
		}
		lo = hi
	}
	return out, nil
}

// Scorer scores histories with a BERT model version folder (kind "bert"), without dropout.
// Safe for concurrent use.
type Scorer struct {
	manifest *modelrepo.Manifest
	tok      *tokenize.Tokenizer
	opts     tokenize.Options
	mu       sync.Mutex
	engine   *Engine
}

var _ scorer.Scorer = (*Scorer)(nil)

// LoadScorer opens a model version folder written by `medseq train classify`: manifest.json,
// the tokenizer files and bert/config.json + bert/model.safetensors. m may be nil (it is then
// read from dir). It scores on the CPU; LoadScorerOn takes a device.
func LoadScorer(dir string, m *modelrepo.Manifest) (*Scorer, error) {
	return LoadScorerOn(dir, m, Device{Requested: "cpu", Kind: "cpu"}.WithDType(""))
}

// LoadScorerOn is LoadScorer on a device (SelectDevice; its DType, float32 when empty). On a
// GPU every call runs as full batches of the model's maximum length (WithStaticShapes), so XLA
// compiles the graph once instead of for each batch and length.
func LoadScorerOn(dir string, m *modelrepo.Manifest, dev Device) (*Scorer, error) {
	if m == nil {
		var err error
		if m, err = modelrepo.ReadManifest(dir); err != nil {
			return nil, err
		}
	}
	if m.Kind != modelrepo.KindBERT {
		return nil, fmt.Errorf("load %s: model kind %q is not %q", dir, m.Kind, modelrepo.KindBERT)
	}
	tok, _, err := tokenize.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	w, _, err := Load(modelrepo.BERTPath(dir))
	if err != nil {
		return nil, err
	}
	if !w.Heads.Classifier {
		return nil, fmt.Errorf("load %s: the checkpoint has no classifier (a pretraining checkpoint?)", dir)
	}
	if w.Config.VocabSize != tok.Vocab.Len() {
		return nil, fmt.Errorf("load %s: the model's vocab_size %d differs from the tokenizer's %d tokens",
			dir, w.Config.VocabSize, tok.Vocab.Len())
	}
	// Truncate as training did: at the trained length, not the tokenizer folder's max_len.
	maxLen, err := TrainedLength(modelrepo.BERTPath(dir), w.Config)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	if err := ValidateDType(dev.DType, dev); err != nil {
		return nil, err
	}
	e, err := NewEngineOn(dev, w, TaskClassify, DefaultOptim(), 0, 0)
	if err != nil {
		return nil, err
	}
	return &Scorer{manifest: m, tok: tok, engine: e,
		opts: tokenize.Options{MaxLen: maxLen, VisitSeparators: tok.VisitSeparators}}, nil
}

// Kind is "bert".
func (s *Scorer) Kind() string { return modelrepo.KindBERT }

// Manifest is the model's manifest.
func (s *Scorer) Manifest() *modelrepo.Manifest { return s.manifest }

// Tokenizer is the model's tokenizer.
func (s *Scorer) Tokenizer() *tokenize.Tokenizer { return s.tok }

// Score encodes each history (oldest tokens dropped beyond the length the model trained with,
// TrainedLength) and runs the classifier. On the CPU every history runs alone, padded to its
// own length bucket: the floating-point sums of a batched product depend on the rows and
// length they are batched with, so a history scored alone (a served Predict), in a batch
// (PredictBatch, dynamic batching) or among a whole cohort (medseq predict, the model folder's
// predictions) would otherwise differ in its last bits, which a steep calibration step can
// magnify. A static-shape (GPU) engine runs full batches of one shape, every row alike.
func (s *Scorer) Score(codes *data.Codes, ins []scorer.Input) ([]scorer.Result, error) {
	m := s.tok.NewCodeMap(codes)
	out := make([]scorer.Result, len(ins))
	seqs := make([]Encoded, len(ins))
	for i, in := range ins {
		enc := m.Encode(tokenize.Input{Events: in.Events, Birth: in.Birth, PredictionTime: in.PredictionTime}, s.opts)
		seqs[i] = FromEncoding(enc)
		out[i].Truncated = enc.Truncated
		for _, e := range in.Events {
			switch m.Kind(e.Code) {
			case tokenize.CodeUnknown:
				out[i].Unknown++
			case tokenize.CodePieced:
				out[i].Pieced++
			}
		}
	}
	batch := 64
	if !s.engine.static {
		batch = 1
	}
	s.mu.Lock()
	logits, err := s.engine.PredictLogits(seqs, batch, s.tok.Vocab.Pad)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for i, z := range logits {
		out[i].Probability = Probability(z)
	}
	return out, nil
}
