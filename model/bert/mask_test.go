package bert

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMaskingStatistics(t *testing.T) {
	special := func(id int32) bool { return id < 5 }
	m := Masking{Rate: 0.15, MaskID: 4, VocabSize: 100, Special: special}
	r := rand.New(rand.NewPCG(1, 2))
	var eligible, chosen, masked, kept, random int
	for n := 0; n < 2000; n++ {
		ids := []int32{2}
		for j := 0; j < 60; j++ {
			ids = append(ids, int32(5+r.IntN(95)))
		}
		ids = append(ids, 3, 0, 0)
		out, pos, tgt := m.Mask(r, ids)
		eligible += 60
		chosen += len(pos)
		for k, p := range pos {
			if special(ids[p]) {
				t.Fatalf("special token %d at %d was chosen", ids[p], p)
			}
			if tgt[k] != ids[p] {
				t.Fatalf("target %d is not the original %d", tgt[k], ids[p])
			}
			switch {
			case out[p] == m.MaskID:
				masked++
			case out[p] == ids[p]:
				kept++
			default:
				if special(out[p]) {
					t.Fatalf("random replacement %d is special", out[p])
				}
				random++
			}
		}
		for i := range ids {
			if special(ids[i]) && out[i] != ids[i] {
				t.Fatalf("special token at %d changed", i)
			}
		}
	}
	rate := float64(chosen) / float64(eligible)
	fm, fr := float64(masked)/float64(chosen), float64(random)/float64(chosen)
	// random replacements can redraw the original token (1/95), counted as kept.
	fk := float64(kept) / float64(chosen)
	t.Logf("chosen %.4f, [MASK] %.4f, random %.4f, kept %.4f", rate, fm, fr, fk)
	if math.Abs(rate-0.15) > 0.005 || math.Abs(fm-0.8) > 0.02 || math.Abs(fr-0.1) > 0.015 || math.Abs(fk-0.1) > 0.015 {
		t.Fatalf("masking statistics off: chosen %.4f [MASK] %.4f random %.4f kept %.4f", rate, fm, fr, fk)
	}
	// Only specials: nothing to mask.
	if _, pos, _ := m.Mask(r, []int32{2, 3, 0}); len(pos) != 0 {
		t.Fatalf("masked a special-only sequence: %v", pos)
	}
}

func TestMLMTrainingLowersLoss(t *testing.T) {
	c := toyConfig(t, false)
	e := newToyEngine(t, c, Heads{MLM: true}, TaskMLM)
	r := rand.New(rand.NewPCG(5, 6))
	m := Masking{Rate: 0.15, MaskID: 4, VocabSize: c.VocabSize, Special: func(id int32) bool { return id < 5 }}
	var first, last float64
	for step := 0; step < 150; step++ {
		tb := toyBatch(r, 32, 16)
		seqs := make([]Encoded, tb.B)
		for i := range seqs {
			// A learnable language: each code is followed by its successor.
			row := tb.IDs[i*16 : (i+1)*16]
			n := 0
			for n < 16 && tb.Mask[i*16+n] == 1 {
				n++
			}
			for j := 2; j < n-1; j++ {
				row[j] = 8 + (row[j-1]-8+1)%42
			}
			seqs[i] = Encoded{IDs: row[:n], Ages: tb.Ages[i*16 : i*16+n]}
		}
		res, err := e.TrainStep(MakeMLMBatch(r, m, seqs, 32, 16, 0), 2e-3)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = res.Loss
		}
		last = res.Loss
	}
	t.Logf("MLM loss %.3f -> %.3f", first, last)
	if last > first*0.7 {
		t.Fatalf("MLM loss %.3f -> %.3f: not learning", first, last)
	}
}
