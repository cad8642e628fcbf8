package eval

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// DeLong compares two models' AUROCs on the same rows (DeLong, DeLong & Clarke-Pearson 1988,
// with Sun & Xu's 2014 midrank algorithm, O(n log n)). diff is AUROC(a) − AUROC(b), se its
// standard error from the structural components' covariance, z = diff/se and p the two-sided
// normal p-value. When the two score vectors give identical structural components (se = 0)
// it returns z = 0 and p = 1 if diff is 0. It errors on mismatched lengths, one class, NaN.
func DeLong(labels []bool, a, b []float64) (diff, se, z, p float64, err error) {
	if len(labels) != len(a) || len(labels) != len(b) {
		return 0, 0, 0, 0, fmt.Errorf("delong: %d labels, %d and %d scores", len(labels), len(a), len(b))
	}
	var pos, neg []int
	for i, y := range labels {
		if math.IsNaN(a[i]) || math.IsNaN(b[i]) {
			return 0, 0, 0, 0, fmt.Errorf("delong: NaN score at row %d", i+1)
		}
		if y {
			pos = append(pos, i)
		} else {
			neg = append(neg, i)
		}
	}
	m, n := len(pos), len(neg)
	if m == 0 || n == 0 {
		return 0, 0, 0, 0, fmt.Errorf("delong: %w", ErrOneClass)
	}
	aucA, v10A, v01A := structural(a, pos, neg)
	aucB, v10B, v01B := structural(b, pos, neg)
	cov := func(x, y []float64) float64 {
		if len(x) < 2 {
			return 0
		}
		var mx, my float64
		for i := range x {
			mx += x[i]
			my += y[i]
		}
		mx /= float64(len(x))
		my /= float64(len(y))
		var c float64
		for i := range x {
			c += (x[i] - mx) * (y[i] - my)
		}
		return c / float64(len(x)-1)
	}
	v := (cov(v10A, v10A)+cov(v10B, v10B)-2*cov(v10A, v10B))/float64(m) +
		(cov(v01A, v01A)+cov(v01B, v01B)-2*cov(v01A, v01B))/float64(n)
	diff = aucA - aucB
	if v <= 0 {
		if diff == 0 {
			return 0, 0, 0, 1, nil
		}
		return diff, 0, math.Copysign(math.Inf(1), diff), 0, nil
	}
	se = math.Sqrt(v)
	z = diff / se
	p = 2 * distuv.UnitNormal.Survival(math.Abs(z))
	return diff, se, z, p, nil
}

// structural returns the AUROC and DeLong's structural components: V10 per positive (the
// fraction of negatives it beats, ties half) and V01 per negative (the fraction of positives
// that beat it).
func structural(s []float64, pos, neg []int) (auc float64, v10, v01 []float64) {
	m, n := len(pos), len(neg)
	x := make([]float64, m)
	y := make([]float64, n)
	for i, k := range pos {
		x[i] = s[k]
	}
	for j, k := range neg {
		y[j] = s[k]
	}
	tx, ty := midranks(x), midranks(y)
	tz := midranks(append(append([]float64(nil), x...), y...))
	v10 = make([]float64, m)
	v01 = make([]float64, n)
	var sum float64
	for i := range x {
		v10[i] = (tz[i] - tx[i]) / float64(n)
		sum += tz[i]
	}
	for j := range y {
		v01[j] = 1 - (tz[m+j]-ty[j])/float64(m)
	}
	auc = (sum - float64(m)*float64(m+1)/2) / (float64(m) * float64(n))
	return auc, v10, v01
}

// midranks returns the 1-based ranks of v, ties sharing their average rank.
func midranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			r[idx[k]] = mid
		}
		i = j
	}
	return r
}

// DeLongResult is a JSON-friendly DeLong comparison.
type DeLongResult struct {
	N     int `json:"n"`
	AUROC struct {
		A Num `json:"a"`
		B Num `json:"b"`
	} `json:"auroc"`
	Diff Num `json:"diff"`
	SE   Num `json:"se"`
	Z    Num `json:"z"`
	P    Num `json:"p"`
}

// PairRows joins two models' predictions on (subject_id, prediction_time). Every row of a
// must have exactly one partner in b with the same label, and no row may repeat.
func PairRows(a, b []Prediction) (labels []bool, sa, sb []float64, err error) {
	type key struct{ s, t int64 }
	if len(a) != len(b) {
		return nil, nil, nil, fmt.Errorf("pair predictions: %d rows against %d", len(a), len(b))
	}
	idx := make(map[key]int, len(b))
	for i, p := range b {
		k := key{p.SubjectID, p.PredictionTime}
		if _, dup := idx[k]; dup {
			return nil, nil, nil, fmt.Errorf("pair predictions: second model repeats subject %d at time %d (row %d)",
				p.SubjectID, p.PredictionTime, i+1)
		}
		idx[k] = i
	}
	seen := make(map[key]bool, len(a))
	for i, p := range a {
		k := key{p.SubjectID, p.PredictionTime}
		j, ok := idx[k]
		if !ok {
			return nil, nil, nil, fmt.Errorf("pair predictions: subject %d at time %d (row %d) has no prediction from the second model", p.SubjectID, p.PredictionTime, i+1)
		}
		if seen[k] {
			return nil, nil, nil, fmt.Errorf("pair predictions: first model repeats subject %d at time %d (row %d)",
				p.SubjectID, p.PredictionTime, i+1)
		}
		seen[k] = true
		if b[j].Label != p.Label {
			return nil, nil, nil, fmt.Errorf("pair predictions: subject %d at time %d has label %v in the first file and %v in the second", p.SubjectID, p.PredictionTime, p.Label, b[j].Label)
		}
		labels = append(labels, p.Label)
		sa = append(sa, p.Score)
		sb = append(sb, b[j].Score)
	}
	return labels, sa, sb, nil
}

// CompareAUROC runs DeLong's test on two models' predictions for the same rows.
func CompareAUROC(a, b []Prediction) (*DeLongResult, error) {
	y, sa, sb, err := PairRows(a, b)
	if err != nil {
		return nil, err
	}
	diff, se, z, p, err := DeLong(y, sa, sb)
	if err != nil {
		return nil, err
	}
	r := &DeLongResult{N: len(y), Diff: Num(diff), SE: Num(se), Z: Num(z), P: Num(p)}
	aa, err1 := AUROC(y, sa)
	bb, err2 := AUROC(y, sb)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	r.AUROC.A, r.AUROC.B = Num(aa), Num(bb)
	return r, nil
}
