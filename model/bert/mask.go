package bert

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Masking is BERT's masked-language-model corruption.
type Masking struct {
	Rate      float64          // share of eligible tokens chosen (0.15)
	MaskID    int32            // [MASK]
	VocabSize int              // random replacements are drawn from [0, VocabSize)
	Special   func(int32) bool // never chosen, never drawn as a replacement
	MaxPerRow int              // at most this many chosen per sequence (0: no cap), as BERT's max_predictions_per_seq
}

// NewMasking is BERT's masking at rate of sequences of up to maxLen tokens over a vocabulary
// of vocabSize (maskID: [MASK]; special tokens are never chosen nor drawn), at most
// MaxPredictions(maxLen, rate) chosen per sequence.
func NewMasking(rate float64, maskID int32, vocabSize int, special func(int32) bool, maxLen int) Masking {
	return Masking{Rate: rate, MaskID: maskID, VocabSize: vocabSize, Special: special,
		MaxPerRow: MaxPredictions(maxLen, rate)}
}

// MaxPredictions is the cap on masked positions per sequence for sequences of up to maxLen
// tokens at rate: the mean plus 4 standard deviations of the binomial count (for 128 tokens at
// 0.15, 36), which a sequence exceeds with probability about 3e-5. It bounds the positions
// per row, so batches can have one shape (WithStaticShapes).
func MaxPredictions(maxLen int, rate float64) int {
	n := float64(maxLen)
	return max(1, int(math.Ceil(n*rate+4*math.Sqrt(n*rate*(1-rate)))))
}

// StaticPositions is the positions per row of batches whose rows hold at most maxPerRow
// (MakeMLMBatch's multiple of 8).
func StaticPositions(maxPerRow int) int { return (max(maxPerRow, 1) + 7) / 8 * 8 }

// Mask chooses each non-special token with probability Rate (at least one when any is
// eligible) and corrupts it: 80% [MASK], 10% a random non-special token, 10% unchanged. It
// returns the corrupted ids (a copy), the chosen positions and their original ids.
func (m Masking) Mask(r *rand.Rand, ids []int32) (out, positions, targets []int32) {
	out = append([]int32(nil), ids...)
	var eligible []int32
	for i, id := range ids {
		if !m.Special(id) {
			eligible = append(eligible, int32(i))
		}
	}
	if len(eligible) == 0 {
		return out, nil, nil
	}
	for _, p := range eligible {
		if r.Float64() < m.Rate {
			positions = append(positions, p)
		}
	}
	if len(positions) == 0 {
		positions = append(positions, eligible[r.IntN(len(eligible))])
	}
	if m.MaxPerRow > 0 && len(positions) > m.MaxPerRow { // keep a uniform subset, in order
		r.Shuffle(len(positions), func(i, j int) { positions[i], positions[j] = positions[j], positions[i] })
		positions = positions[:m.MaxPerRow]
		slices.Sort(positions)
	}
	for _, p := range positions {
		targets = append(targets, ids[p])
		switch u := r.Float64(); {
		case u < 0.8:
			out[p] = m.MaskID
		case u < 0.9:
			for {
				t := int32(r.IntN(m.VocabSize))
				if !m.Special(t) {
					out[p] = t
					break
				}
			}
		}
	}
	return out, positions, targets
}

// MakeMLMBatch masks each sequence and pads the batch: positions per row are padded (weight
// 0) to a shared count, a multiple of 8.
func MakeMLMBatch(r *rand.Rand, m Masking, seqs []Encoded, rows, maxLen int, pad int32) *Batch {
	masked := make([]Encoded, len(seqs))
	pos := make([][]int32, len(seqs))
	tgt := make([][]int32, len(seqs))
	P := 1
	for i, s := range seqs {
		ids := s.IDs
		if len(ids) > maxLen {
			ids = ids[len(ids)-maxLen:]
		}
		var out []int32
		out, pos[i], tgt[i] = m.Mask(r, ids)
		masked[i] = Encoded{IDs: out, Ages: s.Ages[len(s.Ages)-len(ids):]}
		if len(s.Days) == len(s.IDs) {
			masked[i].Days = s.Days[len(s.Days)-len(ids):]
		}
		P = max(P, len(pos[i]))
	}
	P = StaticPositions(P)
	b := MakeBatch(masked, nil, rows, maxLen, pad)
	b.P = P
	b.Positions = make([]int32, b.B*P)
	b.Targets = make([]int32, b.B*P)
	b.TargetWeights = make([]float32, b.B*P)
	for i := range seqs {
		for j, p := range pos[i] {
			b.Positions[i*P+j], b.Targets[i*P+j], b.TargetWeights[i*P+j] = p, tgt[i][j], 1
		}
	}
	return b
}

// MLMEvalBatches masks evaluation sequences once, drawing from r, in batches of up to rows
// sequences of similar lengths (shortest first), so every evaluation sees the same masks and
// validation losses compare across evaluations and runs.
func MLMEvalBatches(r *rand.Rand, m Masking, seqs []Encoded, rows, maxLen int, pad int32) []*Batch {
	order := make([]int, len(seqs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(seqs[order[a]].IDs) < len(seqs[order[b]].IDs) })
	var out []*Batch
	for lo := 0; lo < len(order); lo += rows {
		hi := min(lo+rows, len(order))
		part := make([]Encoded, 0, hi-lo)
		for _, i := range order[lo:hi] {
			part = append(part, seqs[i])
		}
		out = append(out, MakeMLMBatch(r, m, part, rows, maxLen, pad))
	}
	return out
}

// EvalMLM is the mean cross-entropy and the share predicted right (the arg max) over every
// masked position of the batches, without dropout. A static-shape engine runs each batch
// padded to its one shape.
func (e *Engine) EvalMLM(batches []*Batch) (loss, acc float64, err error) {
	V := e.cfg.VocabSize
	var n int
	for _, b := range batches {
		if e.static {
			b = b.PadTo(e.cfg.MaxPositionEmbeddings, e.staticP)
		}
		logits, err := e.MLMLogits(b)
		if err != nil {
			return 0, 0, err
		}
		for k, w := range b.TargetWeights {
			if w == 0 {
				continue
			}
			l, right := crossEntropy(logits[k*V:(k+1)*V], b.Targets[k])
			loss += l
			if right {
				acc++
			}
			n++
		}
	}
	if n == 0 {
		return 0, 0, errors.New("bert: no masked tokens to evaluate on")
	}
	return loss / float64(n), acc / float64(n), nil
}

// crossEntropy is -log softmax(row)[target], and whether target is the row's arg max.
func crossEntropy(row []float32, target int32) (float64, bool) {
	mx, arg := math.Inf(-1), 0
	for j, z := range row {
		if float64(z) > mx {
			mx, arg = float64(z), j
		}
	}
	var se float64
	for _, z := range row {
		se += math.Exp(float64(z) - mx)
	}
	return mx + math.Log(se) - float64(row[target]), arg == int(target)
}
