package eval

import (
	"errors"
	"math"
	"sort"
)

// ErrOneClass is returned by metrics that need both classes when only one is present.
var ErrOneClass = errors.New("need at least one positive and one negative")

// AUROC is the area under the ROC curve: the probability that a random positive scores
// higher than a random negative, ties counting one half (the Mann–Whitney U statistic over
// n+·n−). NaN scores are an error.
func AUROC(labels []bool, scores []float64) (float64, error) {
	if len(labels) != len(scores) {
		return 0, errors.New("labels and scores differ in length")
	}
	idx := make([]int, len(scores))
	for i := range idx {
		if math.IsNaN(scores[i]) {
			return 0, errors.New("NaN score")
		}
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var npos, nneg float64
	var rankSum float64 // sum of positives' (mid-)ranks, 1-based
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // average of ranks i+1..j
		for k := i; k < j; k++ {
			if labels[idx[k]] {
				npos++
				rankSum += mid
			} else {
				nneg++
			}
		}
		i = j
	}
	if npos == 0 || nneg == 0 {
		return 0, ErrOneClass
	}
	return (rankSum - npos*(npos+1)/2) / (npos * nneg), nil
}
