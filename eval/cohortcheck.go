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
	cfg = cfg.withDefaults()
	n := len(labels)
	if seqLens != nil && len(seqLens) != n {
		return nil, fmt.Errorf("cohort check: %d labels but %d sequence lengths", n, len(seqLens))
	}
	pos, neg := splitClasses(labels, seqLens)
	c := &CohortCheck{AgeBinWidth: cfg.AgeBinWidth}
	c.Positive = pos.stats(cfg)
	c.Negative = neg.stats(cfg)
	c.AgeKS = Num(data.KSDistance(pos.ages, neg.ages))
	c.SeqLenKS = Num(math.NaN())
	if seqLens != nil {
		c.SeqLenKS = Num(data.KSDistance(pos.lens, neg.lens))
	}
	if pos.n == 0 || neg.n == 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf(
			"only one class (%d positive, %d negative): no comparison possible", pos.n, neg.n))
		return c, nil
	}
	if float64(c.AgeKS) > 0.3 {
		c.Warnings = append(c.Warnings, fmt.Sprintf(
			"ages differ strongly between classes (KS %.2f): age alone separates them; consider matching",
			float64(c.AgeKS)))
	}
	if seqLens != nil && float64(c.SeqLenKS) > 0.3 {
		c.Warnings = append(c.Warnings, fmt.Sprintf(
			"sequence lengths differ strongly between classes (KS %.2f): history length alone separates them",
			float64(c.SeqLenKS)))
	}
	leaks, err := findLeaks(labels, f, pos.n, neg.n, cfg.LeakAUROC)
	if err != nil {
		return nil, err
	}
	c.Leaks = leaks
	for _, l := range c.Leaks {
		c.Warnings = append(c.Warnings, leakWarning(l))
	}
	return c, nil
}

// withDefaults fills in the defaults of cfg's unset (or, for LeakAUROC, meaningless) fields.
func (cfg CohortCheckConfig) withDefaults() CohortCheckConfig {
	if cfg.AgeBinWidth <= 0 {
		cfg.AgeBinWidth = 5
	}
	if cfg.AgeBins <= 0 {
		cfg.AgeBins = 21
	}
	if cfg.LeakAUROC <= 0.5 || cfg.LeakAUROC > 1 {
		cfg.LeakAUROC = 0.99
	}
	return cfg
}

// classSample is one class of a cohort: its size, the known ages and the sequence lengths.
type classSample struct {
	n    int
	ages []float64
	lens []float64 // nil without sequence lengths
}

// add counts one label row of the class, with its sequence length when seqLens is not nil.
func (s *classSample) add(l data.Label, seqLens []int, i int) {
	s.n++
	if !math.IsNaN(l.Age) { // unknown without a birth code (a cohort from a label file)
		s.ages = append(s.ages, l.Age)
	}
	if seqLens != nil {
		s.lens = append(s.lens, float64(seqLens[i]))
	}
}

// stats describes the class.
func (s *classSample) stats(cfg CohortCheckConfig) ClassStats {
	return ClassStats{
		N:            s.n,
		Age:          data.Summarise(s.ages),
		AgeHistogram: data.Histogram(s.ages, cfg.AgeBinWidth, cfg.AgeBins),
		SeqLen:       data.Summarise(s.lens),
	}
}

// splitClasses sorts the label rows into the positive and the negative class.
func splitClasses(labels []data.Label, seqLens []int) (pos, neg classSample) {
	for i, l := range labels {
		if l.Value {
			pos.add(l, seqLens, i)
		} else {
			neg.add(l, seqLens, i)
		}
	}
	return pos, neg
}

// findLeaks returns the features whose presence alone reaches an AUROC of at least leakAUROC
// (or at most 1 − leakAUROC), strongest first, then by name. P and N count the classes'
// rows; both must be positive.
func findLeaks(labels []data.Label, f Features, P, N int, leakAUROC float64) ([]Leak, error) {
	var leaks []Leak
	check := func(name string, pp, pn int) {
		// AUROC of a 0/1 score: ½(1 + TPR − FPR), ties counting one half.
		auc := 0.5 * (1 + float64(pp)/float64(P) - float64(pn)/float64(N))
		if auc >= leakAUROC || auc <= 1-leakAUROC {
			leaks = append(leaks, Leak{Feature: name, AUROC: auc, PresentPositives: pp, PresentNegatives: pn})
		}
	}
	n := len(labels)
	for name, v := range f.Dense {
		if len(v) != n {
			return nil, fmt.Errorf("cohort check: feature %q has %d rows, want %d", name, len(v), n)
		}
		if _, dup := f.Sparse[name]; dup {
			return nil, fmt.Errorf("cohort check: feature %q given both dense and sparse", name)
		}
		pp, pn := denseCounts(labels, v)
		check(name, pp, pn)
	}
	for name, rows := range f.Sparse {
		pp, pn, err := sparseCounts(labels, name, rows)
		if err != nil {
			return nil, err
		}
		check(name, pp, pn)
	}
	sort.Slice(leaks, func(a, b int) bool {
		da, db := math.Abs(leaks[a].AUROC-0.5), math.Abs(leaks[b].AUROC-0.5)
		if da != db {
			return da > db
		}
		return leaks[a].Feature < leaks[b].Feature
	})
	return leaks, nil
}

// denseCounts counts the positive (pp) and negative (pn) rows where a dense feature is present.
func denseCounts(labels []data.Label, present []bool) (pp, pn int) {
	for i, p := range present {
		if p {
			if labels[i].Value {
				pp++
			} else {
				pn++
			}
		}
	}
	return pp, pn
}

// sparseCounts counts the positive (pp) and negative (pn) rows where the sparse feature name
// is present, each row once however often rows lists it.
func sparseCounts(labels []data.Label, name string, rows []int) (pp, pn int, err error) {
	n := len(labels)
	seen := make(map[int]bool, len(rows))
	for _, i := range rows {
		if i < 0 || i >= n {
			return 0, 0, fmt.Errorf("cohort check: feature %q names row %d of %d", name, i, n)
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
	return pp, pn, nil
}

// leakWarning is the warning for leak l.
func leakWarning(l Leak) string {
	what := "presence"
	if l.AUROC < 0.5 {
		what = "absence"
	}
	return fmt.Sprintf("possible leak: the %s of %q alone gives AUROC %.4f (present in %d positives, %d negatives)",
		what, l.Feature, math.Max(l.AUROC, 1-l.AUROC), l.PresentPositives, l.PresentNegatives)
}
