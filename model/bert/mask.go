package bert

import "math/rand/v2"

// Masking is BERT's masked-language-model corruption.
type Masking struct {
	Rate      float64          // share of eligible tokens chosen (0.15)
	MaskID    int32            // [MASK]
	VocabSize int              // random replacements are drawn from [0, VocabSize)
	Special   func(int32) bool // never chosen, never drawn as a replacement
}

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
		P = max(P, len(pos[i]))
	}
	P = (P + 7) / 8 * 8
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
