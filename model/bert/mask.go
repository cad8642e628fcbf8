package bert

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Masking is BERT's masked-language-model corruption.
type Masking struct {
	Rate      float64          // share of eligible tokens chosen (0.15)
	MaskID    int32            // [MASK]
	VocabSize int              // random replacements are drawn from [0, VocabSize)
	Special   func(int32) bool // never chosen, never drawn as a replacement
	MaxPerRow int              // at most this many chosen per sequence (0: no cap), as BERT's max_predictions_per_seq
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
