package data

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
)

// SplitFractions are the shares of subjects in train, tuning and held_out.
type SplitFractions struct {
	Train, Tuning, HeldOut float64
}

// DefaultSplitFractions is 80/10/10.
var DefaultSplitFractions = SplitFractions{0.8, 0.1, 0.1}

// ParseSplitFractions reads "0.8,0.1,0.1" (or percentages "80,10,10").
func ParseSplitFractions(s string) (SplitFractions, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return SplitFractions{}, fmt.Errorf("split fractions %q: want three numbers train,tuning,held_out", s)
	}
	var v [3]float64
	sum := 0.0
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return SplitFractions{}, fmt.Errorf("split fractions %q: %q is not a non-negative number", s, p)
		}
		v[i] = f
		sum += f
	}
	if sum <= 0 {
		return SplitFractions{}, fmt.Errorf("split fractions %q: all zero", s)
	}
	return SplitFractions{v[0] / sum, v[1] / sum, v[2] / sum}, nil
}

// subjectHash is a deterministic pseudo-random number in [0,1) for a subject and seed.
func subjectHash(seed, id int64) float64 {
	h := fnv.New64a()
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(uint64(seed) >> (8 * i))
		b[8+i] = byte(uint64(id) >> (8 * i))
	}
	h.Write(b[:])
	// Finalise with a splitmix step: FNV's low bits are weak for nearby ids.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / float64(1<<53)
}

// HashSplit assigns one subject to a split from its id and the seed alone, so the answer does
// not depend on which other subjects exist. Use StratifiedSplits when labels are known.
func HashSplit(seed, id int64, f SplitFractions) string {
	u := subjectHash(seed, id)
	switch {
	case u < f.Train:
		return SplitTrain
	case u < f.Train+f.Tuning:
		return SplitTuning
	default:
		return SplitHeldOut
	}
}

// StratifiedSplits assigns subjects to train, tuning and held_out so that each split holds the
// same share of every class (to within one subject per class), deterministically for a seed.
// Subjects in fixed (a dataset's subject_splits) keep their split; the rest are allocated so
// that each class's totals come as close as possible to the fractions.
func StratifiedSplits(labels map[int64]bool, fixed map[int64]string, seed int64, f SplitFractions) map[int64]string {
	out := make(map[int64]string, len(labels))
	for _, class := range []bool{true, false} {
		var free []int64
		count := map[string]int{}
		total := 0
		for id, y := range labels {
			if y != class {
				continue
			}
			total++
			if s, ok := fixed[id]; ok && s != "" {
				out[id] = s
				count[s]++
				continue
			}
			free = append(free, id)
		}
		sort.Slice(free, func(i, j int) bool {
			hi, hj := subjectHash(seed, free[i]), subjectHash(seed, free[j])
			if hi != hj {
				return hi < hj
			}
			return free[i] < free[j]
		})
		// Largest-remainder targets for the class as a whole, minus what fixed subjects took.
		want := apportion(total, []float64{f.Train, f.Tuning, f.HeldOut})
		names := []string{SplitTrain, SplitTuning, SplitHeldOut}
		i := 0
		for k, name := range names {
			need := want[k] - count[name]
			for ; need > 0 && i < len(free); need-- {
				out[free[i]] = name
				i++
			}
		}
		for ; i < len(free); i++ { // fixed subjects over-filled a split: rest go to train
			out[free[i]] = SplitTrain
		}
	}
	return out
}

// apportion splits n into parts proportional to w with the largest-remainder method.
func apportion(n int, w []float64) []int {
	out := make([]int, len(w))
	rem := make([]float64, len(w))
	got := 0
	for i, x := range w {
		q := float64(n) * x
		out[i] = int(math.Floor(q))
		rem[i] = q - float64(out[i])
		got += out[i]
	}
	idx := []int{0, 1, 2}[:len(w)]
	sort.SliceStable(idx, func(a, b int) bool { return rem[idx[a]] > rem[idx[b]] })
	for k := 0; got < n; k++ {
		out[idx[k%len(idx)]]++
		got++
	}
	return out
}

// assignSplits gives every label its subject's split, by subject: the dataset's
// subject_splits, else its shard folders (shardSplits), else stratified by whether the subject
// has a positive label (seed, fractions); a subject missing from the first two is stratified
// too. It returns where the splits came from, for the cohort report.
func assignSplits(ds *Dataset, shardSplits map[int64]string, labels []Label, seed int64,
	f SplitFractions) (string, error) {
	fixed, err := ds.SubjectSplits()
	if err != nil {
		return "", err
	}
	source := "dataset metadata/subject_splits.parquet"
	if len(fixed) == 0 {
		fixed, source = shardSplits, "dataset shard folders (data/<split>/)"
	}
	positive := make(map[int64]bool, len(labels))
	for _, l := range labels {
		positive[l.SubjectID] = positive[l.SubjectID] || l.Value
	}
	unlisted := 0
	for id := range positive {
		if _, ok := fixed[id]; !ok {
			unlisted++
		}
	}
	switch {
	case len(fixed) == 0:
		source = fmt.Sprintf("stratified by subject (any positive label), seed %d", seed)
	case unlisted > 0:
		source += fmt.Sprintf("; %d subjects not listed there stratified by subject, seed %d", unlisted, seed)
	}
	splits := StratifiedSplits(positive, fixed, seed, f)
	for i := range labels {
		labels[i].Split = splits[labels[i].SubjectID]
	}
	return source, nil
}
