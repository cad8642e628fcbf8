package eval

import (
	"fmt"
	"math"
	"sort"

	"github.com/medseq/medseq/data"
)

// Features is what the leak check looks at: each feature's presence per label row, either
// dense (one bool per row) or sparse (the indexes of the rows where it is present). A feature
// may appear in one of the two only.
type Features struct {
	Dense  map[string][]bool
	Sparse map[string][]int
}

// CohortCheckConfig controls CheckCohort.
type CohortCheckConfig struct {
	AgeBinWidth float64 `json:"age_bin_width"` // years, default 5
	AgeBins     int     `json:"age_bins"`      // default 21 (the last holds 100+)
	// LeakAUROC flags a feature whose presence alone reaches this AUROC (or whose absence
	// does: AUROC <= 1 − LeakAUROC). Default 0.99.
	LeakAUROC float64 `json:"leak_auroc"`
}

// ClassStats describes one class of a cohort.
type ClassStats struct {
	N            int          `json:"n"`
	Age          data.Summary `json:"age"`
	AgeHistogram []int        `json:"age_histogram"`
	SeqLen       data.Summary `json:"sequence_length"`
}

// Leak is a feature that alone nearly decides the label.
type Leak struct {
	Feature string  `json:"feature"`
	AUROC   float64 `json:"auroc"` // of presence as the score
	// PresentPositives and PresentNegatives count the rows of each class with the feature.
	PresentPositives int `json:"present_positives"`
	PresentNegatives int `json:"present_negatives"`
}

// CohortCheck compares the classes of a cohort: what a model could tell apart without
// learning anything clinical.
type CohortCheck struct {
	Positive    ClassStats `json:"positive"`
	Negative    ClassStats `json:"negative"`
	AgeBinWidth float64    `json:"age_bin_width"`
	AgeKS       Num        `json:"age_ks"`    // two-sample KS distance of ages between classes
	SeqLenKS    Num        `json:"seqlen_ks"` // and of sequence lengths (null without lengths)
	Leaks       []Leak     `json:"leaks,omitempty"`
	Warnings    []string   `json:"warnings,omitempty"`
}

// CheckCohort describes ages and sequence lengths per class and flags single-feature leaks.
// seqLens (tokens or events per label row) may be nil; otherwise it, like every dense
// feature, must have one entry per label.
func CheckCohort(labels []data.Label, seqLens []int, f Features, cfg CohortCheckConfig) (*CohortCheck, error) {
	if cfg.AgeBinWidth <= 0 {
		cfg.AgeBinWidth = 5
	}
	if cfg.AgeBins <= 0 {
		cfg.AgeBins = 21
	}
	if cfg.LeakAUROC <= 0.5 || cfg.LeakAUROC > 1 {
		cfg.LeakAUROC = 0.99
	}
	n := len(labels)
	if seqLens != nil && len(seqLens) != n {
		return nil, fmt.Errorf("cohort check: %d labels but %d sequence lengths", n, len(seqLens))
	}
	var agePos, ageNeg, lenPos, lenNeg []float64
	var P, N int
	for i, l := range labels {
		known := !math.IsNaN(l.Age) // unknown without a birth code (a cohort from a label file)
		if l.Value {
			P++
			if known {
				agePos = append(agePos, l.Age)
			}
			if seqLens != nil {
				lenPos = append(lenPos, float64(seqLens[i]))
			}
		} else {
			N++
			if known {
				ageNeg = append(ageNeg, l.Age)
			}
			if seqLens != nil {
				lenNeg = append(lenNeg, float64(seqLens[i]))
			}
		}
	}
	c := &CohortCheck{AgeBinWidth: cfg.AgeBinWidth}
	c.Positive = ClassStats{N: P, Age: data.Summarise(agePos), AgeHistogram: data.Histogram(agePos, cfg.AgeBinWidth, cfg.AgeBins), SeqLen: data.Summarise(lenPos)}
	c.Negative = ClassStats{N: N, Age: data.Summarise(ageNeg), AgeHistogram: data.Histogram(ageNeg, cfg.AgeBinWidth, cfg.AgeBins), SeqLen: data.Summarise(lenNeg)}
	c.AgeKS = Num(data.KSDistance(agePos, ageNeg))
	c.SeqLenKS = Num(math.NaN())
	if seqLens != nil {
		c.SeqLenKS = Num(data.KSDistance(lenPos, lenNeg))
	}
	if P == 0 || N == 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("only one class (%d positive, %d negative): no comparison possible", P, N))
		return c, nil
	}
	if float64(c.AgeKS) > 0.3 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("ages differ strongly between classes (KS %.2f): age alone separates them; consider matching", float64(c.AgeKS)))
	}
	if seqLens != nil && float64(c.SeqLenKS) > 0.3 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("sequence lengths differ strongly between classes (KS %.2f): history length alone separates them", float64(c.SeqLenKS)))
	}
	check := func(name string, pp, pn int) {
		// AUROC of a 0/1 score: ½(1 + TPR − FPR), ties counting one half.
		auc := 0.5 * (1 + float64(pp)/float64(P) - float64(pn)/float64(N))
		if auc >= cfg.LeakAUROC || auc <= 1-cfg.LeakAUROC {
			c.Leaks = append(c.Leaks, Leak{Feature: name, AUROC: auc, PresentPositives: pp, PresentNegatives: pn})
		}
	}
	for name, v := range f.Dense {
		if len(v) != n {
			return nil, fmt.Errorf("cohort check: feature %q has %d rows, want %d", name, len(v), n)
		}
		if _, dup := f.Sparse[name]; dup {
			return nil, fmt.Errorf("cohort check: feature %q given both dense and sparse", name)
		}
		var pp, pn int
		for i, present := range v {
			if present {
				if labels[i].Value {
					pp++
				} else {
					pn++
				}
			}
		}
		check(name, pp, pn)
	}
	for name, rows := range f.Sparse {
		seen := make(map[int]bool, len(rows))
		var pp, pn int
		for _, i := range rows {
			if i < 0 || i >= n {
				return nil, fmt.Errorf("cohort check: feature %q names row %d of %d", name, i, n)
			}
			if seen[i] {
				continue
			}
			seen[i] = true
			if labels[i].Value {
				pp++
			} else {
				pn++
			}
		}
		check(name, pp, pn)
	}
	sort.Slice(c.Leaks, func(a, b int) bool {
		da, db := math.Abs(c.Leaks[a].AUROC-0.5), math.Abs(c.Leaks[b].AUROC-0.5)
		if da != db {
			return da > db
		}
		return c.Leaks[a].Feature < c.Leaks[b].Feature
	})
	for _, l := range c.Leaks {
		what := "presence"
		if l.AUROC < 0.5 {
			what = "absence"
		}
		c.Warnings = append(c.Warnings, fmt.Sprintf("possible leak: the %s of %q alone gives AUROC %.4f (present in %d positives, %d negatives)", what, l.Feature, math.Max(l.AUROC, 1-l.AUROC), l.PresentPositives, l.PresentNegatives))
	}
	return c, nil
}
