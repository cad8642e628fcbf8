package study

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/medseq/medseq/data"
)

// curveSubset is one fraction: the training subjects it keeps and the labels of its cohort.
type curveSubset struct {
	fraction float64
	subjects map[int64]bool // the training subjects kept
	train    CurveCounts    // their labels
	// labels are the kept training labels and every tuning and held-out label, in the
	// cohort's order.
	labels []data.Label
}

// nestedSubsets draws each fraction's training subjects. The training split's subjects are
// grouped by class as the splits stratify them (any positive label) and each group is put in
// an order drawn from seed; a fraction f keeps the first round(f·n) subjects of each group. So
// the fractions are nested, hold each class's share of the training split, and depend on the
// seed alone. A fraction that keeps no subject of a class is an error wrapping ErrFractions.
func nestedSubsets(labels []data.Label, fractions []float64, seed uint64) ([]curveSubset, error) {
	positive := map[int64]bool{}
	for _, l := range labels {
		if l.Split == data.SplitTrain {
			positive[l.SubjectID] = positive[l.SubjectID] || l.Value
		}
	}
	var order [2][]int64 // negatives, positives
	for _, id := range slices.Sorted(maps.Keys(positive)) {
		c := 0
		if positive[id] {
			c = 1
		}
		order[c] = append(order[c], id)
	}
	for c := range order {
		rng := rand.New(rand.NewPCG(seed, uint64(c)))
		rng.Shuffle(len(order[c]), func(i, j int) { order[c][i], order[c][j] = order[c][j], order[c][i] })
	}
	out := make([]curveSubset, 0, len(fractions))
	for _, f := range fractions {
		s := curveSubset{fraction: f, subjects: map[int64]bool{}}
		for c, ids := range order {
			k := int(math.Round(f * float64(len(ids))))
			if k == 0 {
				return nil, fmt.Errorf("%w: %g of the training split keeps none of its %d subjects %s: "+
					"a model needs both classes (raise the smallest fraction)", ErrFractions, f, len(ids),
					[]string{"without a positive label", "with a positive label"}[c])
			}
			for _, id := range ids[:k] {
				s.subjects[id] = true
			}
		}
		var kept []data.Label
		for _, l := range labels {
			if l.Split != data.SplitTrain || s.subjects[l.SubjectID] {
				s.labels = append(s.labels, l)
			}
			if l.Split == data.SplitTrain && s.subjects[l.SubjectID] {
				kept = append(kept, l)
			}
		}
		s.train = countLabels(kept)
		out = append(out, s)
	}
	return out, nil
}

// countLabels counts labels, their subjects and positives.
func countLabels(ls []data.Label) CurveCounts {
	subjects := map[int64]bool{}
	c := CurveCounts{Labels: len(ls)}
	for _, l := range ls {
		subjects[l.SubjectID] = true
		if l.Value {
			c.Positives++
		}
	}
	c.Subjects = len(subjects)
	return c
}

// rowsDigest is a short SHA-256 of rows' subjects, prediction times and labels, in sorted
// order: two sets of rows with the same digest are the same rows.
func rowsDigest(ls []data.Label) string {
	lines := make([]string, len(ls))
	for i, l := range ls {
		lines[i] = fmt.Sprintf("%d,%d,%t", l.SubjectID, l.PredictionTime, l.Value)
	}
	sort.Strings(lines)
	h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(h[:8])
}

// fractionName is a fraction as folder names spell it: 0.1 is "10pct", 0.125 "12_5pct".
func fractionName(f float64) string {
	return strings.ReplaceAll(strconv.FormatFloat(f*100, 'f', -1, 64), ".", "_") + "pct"
}

// writeSubset writes the fraction's cohort folder into dir: the parent cohort's rules and
// splits with the training split cut to the fraction's subjects. Its manifest records the
// dataset (fingerprint medsFP), the parent cohort and the fraction; its cohort_report.json is
// the parent's with the counts of the kept labels and the subjects left out as an exclusion.
func writeSubset(dir string, run *curveRun, s curveSubset) error {
	parent := run.oc.Cohort
	params := maps.Clone(parent.Manifest.Params)
	if params == nil {
		params = map[string]any{}
	}
	params["learning_curve"] = map[string]any{"cohort": parent.Dir, "cohort_run_id": parent.Manifest.RunID,
		"fraction": s.fraction, "seed": run.cfg.Seed}
	m := data.NewManifest(data.StageCohort, params)
	m.AddInputFingerprint(data.InputMEDS, run.cfg.MEDS, run.oc.MEDSFingerprint)
	if _, err := m.AddInput("parent_cohort", parent.Dir); err != nil {
		return err
	}
	rep, err := subsetReport(parent.Dir, run.res.Train.Subjects, s)
	if err != nil {
		return err
	}
	rep.Params = params
	return data.WriteCohort(dir, false, &data.CohortResult{Labels: s.labels, Report: rep}, m)
}

// subsetReport is the parent cohort's report with the subset's counts.
func subsetReport(parentDir string, trainSubjects int, s curveSubset) (*data.CohortReport, error) {
	rep := &data.CohortReport{Source: "targets"}
	buf, err := os.ReadFile(filepath.Join(parentDir, data.CohortReportFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(buf, rep); err != nil {
			return nil, fmt.Errorf("curve: %s: %w", filepath.Join(parentDir, data.CohortReportFile), err)
		}
	case os.IsNotExist(err):
		rep.Warnings = append(rep.Warnings, "the parent cohort has no "+data.CohortReportFile)
	default:
		return nil, err
	}
	left := trainSubjects - len(s.subjects)
	if rep.Source == data.SamplingLabels { // exclusions count label rows
		left = rep.Labels - len(s.labels)
	}
	rep.Exclusions = append(rep.Exclusions, data.ExclusionCount{Class: "any", Count: left,
		Reason: fmt.Sprintf("learning curve: training subject outside the %s kept", fractionName(s.fraction))})
	c := countLabels(s.labels)
	rep.Labels, rep.Positives, rep.Negatives = c.Labels, c.Positives, c.Labels-c.Positives
	rep.Prevalence = float64(c.Positives) / float64(max(c.Labels, 1))
	rep.Splits = map[string]data.ClassCounts{}
	for _, l := range s.labels {
		cc := rep.Splits[l.Split]
		if l.Value {
			cc.Positives++
		} else {
			cc.Negatives++
		}
		rep.Splits[l.Split] = cc
	}
	rep.SplitSource += fmt.Sprintf("; training split cut to %g of its subjects for a learning curve", s.fraction)
	rep.Warnings = append(rep.Warnings,
		"learning-curve subset: the age, visible-event and sampling summaries are the full cohort's")
	return rep, nil
}
