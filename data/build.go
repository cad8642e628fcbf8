package data

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// CohortResult is a built cohort: its labels (sorted by subject) and its report.
type CohortResult struct {
	Labels []Label
	Report *CohortReport
}

// CohortReport is cohort_report.json: counts, every exclusion with its reason, splits, and
// the age-at-prediction distribution of each class, with the sampling methods compared.
type CohortReport struct {
	Dataset         string                 `json:"dataset"`
	RunID           string                 `json:"run_id"`
	Targets         []string               `json:"targets"`
	Subjects        int                    `json:"subjects"`
	Labels          int                    `json:"labels"`
	Positives       int                    `json:"positives"`
	Negatives       int                    `json:"negatives"`
	Prevalence      float64                `json:"prevalence"`
	Params          map[string]any         `json:"params"`
	Exclusions      []ExclusionCount       `json:"exclusions"`
	SplitSource     string                 `json:"split_source"`
	Splits          map[string]ClassCounts `json:"splits"`
	AgeAtPrediction AgeReport              `json:"age_at_prediction"`
	VisibleEvents   map[string]Summary     `json:"visible_events"`
	Sampling        SamplingReport         `json:"sampling"`
	Warnings        []string               `json:"warnings,omitempty"`
	// Source is how the labels were made: "targets" (BuildCohort) or "labels" (read from
	// LabelFiles by BuildLabelCohort, whose exclusions count labels, not subjects).
	Source         string   `json:"source"`
	LabelFiles     []string `json:"label_files,omitempty"`
	LabelRows      int      `json:"label_rows,omitempty"`      // rows read from LabelFiles
	LabelSubjects  int      `json:"label_subjects,omitempty"`  // distinct subjects of the kept labels
	IgnoredColumns []string `json:"ignored_columns,omitempty"` // value columns read and not used
	UnknownAge     int      `json:"unknown_age,omitempty"`     // labels whose subject has no birth code
	// TimeToEvent summarises the labels' time to event; absent when unknown (labels without
	// target codes, cohorts written before it existed).
	TimeToEvent *TimeToEventReport `json:"time_to_event,omitempty"`
}

// ExclusionCount is how many subjects of a class were left out for one reason.
type ExclusionCount struct {
	Class  string `json:"class"` // positive, negative or any
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

// ClassCounts counts labels per class.
type ClassCounts struct {
	Positives int `json:"positives"`
	Negatives int `json:"negatives"`
}

// AgeReport is the age at prediction of each class: histograms and summaries, and the KS
// distance between them (a sampling bias shows as a large distance).
type AgeReport struct {
	BinYears float64 `json:"bin_years"`
	Positive []int   `json:"positive"`
	Negative []int   `json:"negative"`
	// Summaries per class, in years.
	PositiveSummary Summary `json:"positive_summary"`
	NegativeSummary Summary `json:"negative_summary"`
	KS              float64 `json:"ks"`
}

// MarshalJSON writes a KS distance that could not be computed (a class without known ages,
// as in a cohort from labels on data without birth codes) as null.
func (a AgeReport) MarshalJSON() ([]byte, error) {
	type plain AgeReport
	if !math.IsNaN(a.KS) {
		return json.Marshal(plain(a))
	}
	return json.Marshal(struct {
		plain
		KS *float64 `json:"ks"`
	}{plain: plain(a)})
}

// SamplingReport says how negatives got their prediction times and what the other method
// would have produced on the same data.
type SamplingReport struct {
	Method               string                     `json:"method"`
	NegativesPerPositive float64                    `json:"negatives_per_positive,omitempty"`
	Comparison           map[string]SamplingOutcome `json:"comparison"`
	Bands                []BandReport               `json:"bands,omitempty"`
}

// SamplingOutcome is one method's result: negatives kept and their age distance to positives.
type SamplingOutcome struct {
	Negatives       int     `json:"negatives"`
	KS              float64 `json:"ks"`
	NegativeMeanAge float64 `json:"negative_mean_age"`
	PositiveMeanAge float64 `json:"positive_mean_age"`
}

// BandReport is one birth-year band of matched-age sampling.
type BandReport struct {
	BornFrom  int `json:"born_from"`
	BornTo    int `json:"born_to"`
	Positives int `json:"positives"`
	Eligible  int `json:"eligible_negatives"`
	Sampled   int `json:"sampled_negatives"`
}

// BuildCohort makes labels from a MEDS dataset in two steps. First one pass over the data
// keeps, per subject, birth, death, sex, the first target code and the times of its events
// (never codes). Then positives get prediction time = first target code - Lead, and
// negatives (no target code ever) get one by the chosen method; every candidate is checked
// for age, history and (negatives) follow-up, and every exclusion is counted with its reason.
//
// Matched-age sampling works per birth-year band, as risk-set sampling: each positive's age at
// prediction is a slot filled by k distinct negatives of the same band that are eligible at
// that age (k = NegativesPerPositive; when 0, the largest ratio that the bands holding 90% of
// the positives can supply, at least 1), so the negatives' ages reproduce the positives' within
// every band and overall. Bands short of negatives are reported as warnings.
func BuildCohort(ctx context.Context, ds *Dataset, cfg CohortConfig) (*CohortResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pop, err := summarise(ctx, ds, &cfg, nil)
	if err != nil {
		return nil, err
	}
	c := triage(&cfg, pop)
	if len(c.positives) == 0 {
		return nil, fmt.Errorf("%w: no subject has an eligible first code starting with %v (%d subjects read)",
			ErrEmptyCohort, cfg.Targets, len(pop.infos))
	}
	c.sampleNegatives()
	if len(c.negatives) == 0 {
		return nil, fmt.Errorf("%w: %d positives but no eligible negative (check --follow-up, --min-history, --min-age)",
			ErrEmptyCohort, len(c.positives))
	}
	labels := c.labels()
	source, err := assignSplits(ds, pop.shardSplit, labels, cfg.Seed, cfg.Fractions)
	if err != nil {
		return nil, err
	}
	return &CohortResult{Labels: labels, Report: c.report(ds.Root, labels, source)}, nil
}

// targetCohort is BuildCohort's state from step to step.
type targetCohort struct {
	cfg        *CohortConfig
	pop        *firstPass
	byID       map[int64]*subjectInfo
	excl       exclusions
	positives  []Label
	candidates []*subjectInfo // subjects without a target code: the candidate negatives
	matched    matchedSample
	random     []Label // the negatives of NegativesRandomDate, for the comparison
	negatives  []Label // those of cfg.Negatives
}

// triage sorts the subjects into excluded ones (no birth, no events, an ineligible
// positive), positives with their prediction time, and candidate negatives in a
// deterministic order for sampling.
func triage(cfg *CohortConfig, pop *firstPass) *targetCohort {
	c := &targetCohort{cfg: cfg, pop: pop, byID: make(map[int64]*subjectInfo, len(pop.infos)), excl: exclusions{}}
	for i := range pop.infos {
		s := &pop.infos[i]
		c.byID[s.id] = s
		switch {
		case s.birth == StaticTime:
			c.excl.add(classOf(s), ExclNoBirth)
		case s.first == StaticTime:
			c.excl.add(classOf(s), ExclNoEvents)
		case s.target == StaticTime:
			c.candidates = append(c.candidates, s)
		default:
			// The diagnosis itself is never visible: with --lead 0 the prediction is made just
			// before it.
			pt := s.target - max(cfg.Lead, 1)
			if r := cfg.eligible(s, pt, false); r != "" {
				c.excl.add("positive", r)
				continue
			}
			c.positives = append(c.positives, labelFor(s, pt, true))
		}
	}
	sort.Slice(c.candidates, func(i, j int) bool {
		hi, hj := subjectHash(cfg.Seed, c.candidates[i].id), subjectHash(cfg.Seed, c.candidates[j].id)
		if hi != hj {
			return hi < hj
		}
		return c.candidates[i].id < c.candidates[j].id
	})
	return c
}

// sampleNegatives samples negatives by both methods, keeps those of cfg.Negatives and counts
// the candidates it left out.
func (c *targetCohort) sampleNegatives() {
	c.matched = sampleMatchedAge(c.cfg, c.positives, c.candidates)
	random, rexcl := sampleRandomDate(c.cfg, c.positives, c.candidates)
	c.random = random
	negatives, nexcl := c.matched.labels, c.matched.excl
	if c.cfg.Negatives == NegativesRandomDate {
		negatives, nexcl = random, rexcl
	}
	for r, n := range nexcl {
		for i := 0; i < n; i++ {
			c.excl.add("negative", r)
		}
	}
	c.negatives = negatives
}

// labels is the positives and negatives by subject, with their time to event.
func (c *targetCohort) labels() []Label {
	labels := make([]Label, 0, len(c.positives)+len(c.negatives))
	labels = append(append(labels, c.positives...), c.negatives...)
	sort.Slice(labels, func(i, j int) bool { return labels[i].SubjectID < labels[j].SubjectID })
	for i := range labels {
		s := c.byID[labels[i].SubjectID]
		labels[i].setTimeToEvent(s.timeToEvent(labels[i].PredictionTime, c.pop.end, c.cfg.CensorWindow))
	}
	return labels
}

// report is the cohort report of labels, split from source.
func (c *targetCohort) report(dataset string, labels []Label, source string) *CohortReport {
	cfg := c.cfg
	rep := &CohortReport{
		Dataset: dataset, Source: "targets", Targets: cfg.Targets, Subjects: len(c.pop.infos), Labels: len(labels),
		Positives: len(c.positives), Negatives: len(c.negatives),
		Prevalence: float64(len(c.positives)) / float64(len(labels)),
		Params:     cfg.Params(), SplitSource: source, Splits: map[string]ClassCounts{},
		VisibleEvents: map[string]Summary{}, TimeToEvent: newTimeToEventReport(labels, c.pop.end, cfg.CensorWindow),
		Exclusions: c.excl.list(),
	}
	posAges := make([]float64, len(c.positives))
	for i, l := range c.positives {
		posAges[i] = l.Age
	}
	var negAges []float64
	visible := map[string][]float64{}
	for _, l := range labels {
		cc := rep.Splits[l.Split]
		if l.Value {
			cc.Positives++
		} else {
			cc.Negatives++
			negAges = append(negAges, l.Age)
		}
		rep.Splits[l.Split] = cc
		n := c.byID[l.SubjectID].visibleCount(l.PredictionTime - cfg.Gap)
		visible[className(l.Value)] = append(visible[className(l.Value)], float64(n))
	}
	rep.setDistributions(visible, posAges, negAges)
	rep.Sampling = SamplingReport{Method: cfg.Negatives, Comparison: map[string]SamplingOutcome{
		NegativesMatchedAge: outcome(posAges, c.matched.labels),
		NegativesRandomDate: outcome(posAges, c.random),
	}}
	if cfg.Negatives == NegativesMatchedAge {
		rep.Sampling.NegativesPerPositive = c.matched.k
		rep.Sampling.Bands = c.matched.bands
		rep.Warnings = append(rep.Warnings, c.matched.shortBands()...)
	}
	if ks := rep.AgeAtPrediction.KS; ks > 0.1 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the classes' ages at prediction differ (KS distance %.2f): "+
			"a model can score well on age alone; see sampling.comparison", ks))
	}
	if rep.Splits[SplitTuning].Positives == 0 || rep.Splits[SplitHeldOut].Positives == 0 {
		rep.Warnings = append(rep.Warnings, "a tuning or held_out split has no positives")
	}
	return rep
}

func classOf(s *subjectInfo) string {
	if s.target != StaticTime {
		return "positive"
	}
	return "negative"
}

func className(v bool) string {
	if v {
		return "positive"
	}
	return "negative"
}

func labelFor(s *subjectInfo, pt int64, value bool) Label {
	return Label{SubjectID: s.id, PredictionTime: pt, Value: value, Age: ageYears(s, pt), Sex: s.sex, Birth: s.birth}
}

func outcome(posAges []float64, neg []Label) SamplingOutcome {
	ages := make([]float64, len(neg))
	for i, l := range neg {
		ages[i] = l.Age
	}
	return SamplingOutcome{Negatives: len(neg), KS: KSDistance(posAges, ages),
		NegativeMeanAge: Summarise(ages).Mean, PositiveMeanAge: Summarise(posAges).Mean}
}

// Params is the configuration as written into manifests and reports.
func (c CohortConfig) Params() map[string]any {
	return map[string]any{
		"targets": c.Targets, "lead": FormatDuration(c.Lead), "gap": FormatDuration(c.Gap),
		"min_history": FormatDuration(c.MinHistory), "min_events": c.MinEvents,
		"min_age": FormatDuration(c.MinAge), "follow_up": FormatDuration(c.FollowUp),
		"negatives": c.Negatives, "negatives_per_positive": c.NegativesPerPositive,
		"band_years": c.BandYears, "seed": c.Seed, "censor_window": FormatDuration(c.CensorWindow),
		"split_fractions": []float64{c.Fractions.Train, c.Fractions.Tuning, c.Fractions.HeldOut},
		"sex_prefixes":    c.SexPrefixes, "birth_codes": c.BirthCodes, "death_codes": c.DeathCodes,
	}
}

// matchedSample is what matched-age sampling made: the negatives, the candidates it left
// out by reason, the negatives per positive k and each birth band's counts.
type matchedSample struct {
	labels []Label
	excl   map[string]int
	k      float64
	bands  []BandReport
}

// shortBands warns of the bands that supplied less than 90% of the negatives they were asked
// for.
func (m *matchedSample) shortBands() []string {
	var out []string
	for _, b := range m.bands {
		if want := int(math.Round(m.k * float64(b.Positives))); float64(b.Sampled) < 0.9*float64(want) {
			out = append(out, fmt.Sprintf("birth band %d-%d: %d eligible negatives for %d positives (wanted %d): "+
				"older or sicker bands short of negatives skew the age match; "+
				"lower --negatives-per-positive or widen --band-years",
				b.BornFrom, b.BornTo, b.Eligible, b.Positives, want))
		}
	}
	return out
}

// sampleMatchedAge gives negatives prediction times matched on age within birth-year bands.
func sampleMatchedAge(cfg *CohortConfig, positives []Label, cands []*subjectInfo) matchedSample {
	m := matchedSample{excl: map[string]int{}}
	bandAges := map[int][]float64{} // the positives' ages at prediction by birth band, sorted
	for _, p := range positives {
		b := int(math.Floor(float64(TimeOf(p.Birth).Year()) / float64(cfg.BandYears)))
		bandAges[b] = append(bandAges[b], p.Age)
	}
	for _, a := range bandAges {
		sort.Float64s(a)
	}
	eligible := map[int][]*subjectInfo{}
	for _, s := range cands {
		b := birthBand(s, cfg.BandYears)
		if r := cfg.matchable(s, bandAges[b]); r != "" {
			m.excl[r]++
			continue
		}
		eligible[b] = append(eligible[b], s)
	}
	m.k = cfg.NegativesPerPositive
	if m.k == 0 {
		m.k = supplyRatio(bandAges, eligible, len(positives))
	}
	bandKeys := make([]int, 0, len(bandAges))
	for b := range bandAges {
		bandKeys = append(bandKeys, b)
	}
	sort.Ints(bandKeys)
	for _, b := range bandKeys {
		band := cfg.sampleBand(b, bandAges[b], eligible[b], m.k)
		m.labels = append(m.labels, band.labels...)
		if band.unused > 0 {
			m.excl[ExclOverNegRatio] += band.unused
		}
		m.bands = append(m.bands, band.report)
	}
	return m
}

// matchable is "" when a candidate negative can be matched to one of its band's positive
// ages (sorted; nil when the band has no positive), else why not.
func (cfg *CohortConfig) matchable(s *subjectInfo, ages []float64) string {
	if ages == nil {
		return ExclNoPositiveBand
	}
	lo, hi, ok := cfg.feasibleRange(s)
	if !ok {
		return cfg.whyInfeasible(s)
	}
	// Positive ages a with birth + a inside [lo, hi].
	i := sort.SearchFloat64s(ages, ageYears(s, lo))
	j := sort.Search(len(ages), func(k int) bool { return ages[k] > ageYears(s, hi) })
	if i >= j {
		return ExclNoMatchedTime
	}
	return ""
}

// supplyRatio is the negatives per positive when none is asked for: the largest ratio of
// eligible negatives to positives that the bands holding 90% of the positives supply, at
// least 1.
func supplyRatio(bandAges map[int][]float64, eligible map[int][]*subjectInfo, positives int) float64 {
	type br struct {
		ratio float64
		pos   int
	}
	var ratios []br
	for b, ages := range bandAges {
		ratios = append(ratios, br{float64(len(eligible[b])) / float64(len(ages)), len(ages)})
	}
	sort.Slice(ratios, func(i, j int) bool { return ratios[i].ratio < ratios[j].ratio })
	need := 0.1 * float64(positives)
	acc, k := 0, 0.0
	for _, r := range ratios {
		acc += r.pos
		k = r.ratio
		if float64(acc) > need {
			break
		}
	}
	return math.Max(1, math.Floor(k))
}

// bandSample is one birth band's matched negatives, how many eligible ones were left unused
// and its report.
type bandSample struct {
	labels []Label
	unused int
	report BandReport
}

// sampleBand samples band b's negatives by risk-set sampling: every positive's age is a slot
// to fill k times with a distinct negative eligible at that age, so the negatives' ages
// reproduce the positives'. Oldest slots first: they have the fewest eligible negatives.
func (cfg *CohortConfig) sampleBand(b int, ages []float64, cs []*subjectInfo, k float64) bandSample {
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(int64(b))))
	copies := int(math.Floor(k))
	if rng.Float64() < k-math.Floor(k) {
		copies++
	}
	lo := make([]float64, len(cs))
	hi := make([]float64, len(cs))
	for i, c := range cs {
		l, h, _ := cfg.feasibleRange(c)
		lo[i], hi[i] = ageYears(c, l), ageYears(c, h)
	}
	var out bandSample
	used := make([]bool, len(cs))
	n := 0
	quota := int(math.Round(k * float64(len(ages))))
	for si := len(ages) - 1; si >= 0 && n < quota; si-- {
		a := ages[si]
		for rep := 0; rep < copies && n < quota; rep++ {
			pick, seen := -1, 0
			for i := range cs {
				if !used[i] && lo[i] <= a && a <= hi[i] {
					seen++
					if rng.IntN(seen) == 0 {
						pick = i
					}
				}
			}
			if pick < 0 {
				break
			}
			used[pick] = true
			c := cs[pick]
			l, h, _ := cfg.feasibleRange(c)
			pt := min(max(c.birth+int64(a*float64(MicrosPerYear)), l), h)
			out.labels = append(out.labels, labelFor(c, pt, false))
			n++
		}
	}
	out.unused = len(cs) - n
	out.report = BandReport{BornFrom: b * cfg.BandYears, BornTo: b*cfg.BandYears + cfg.BandYears - 1,
		Positives: len(ages), Eligible: len(cs), Sampled: n}
	return out
}

// whyInfeasible names the first rule that leaves a negative no eligible prediction time.
func (cfg *CohortConfig) whyInfeasible(s *subjectInfo) string {
	end := s.observedEnd() - cfg.FollowUp
	switch {
	case s.observedEnd()-s.first < cfg.MinHistory+cfg.Gap+cfg.FollowUp:
		return ExclShortRecord
	case end <= s.birth:
		return ExclShortFollowUp
	case end-s.birth < cfg.MinAge:
		return ExclTooYoung
	case s.first+cfg.MinHistory+cfg.Gap > end:
		return ExclShortHistory
	case cfg.MinEvents > len(s.times) || s.times[cfg.MinEvents-1]+cfg.Gap > end:
		return ExclFewEvents
	}
	return ExclShortFollowUp
}

// sampleRandomDate is the naive method: a random positive prediction date for each negative.
func sampleRandomDate(cfg *CohortConfig, positives []Label, cands []*subjectInfo) ([]Label, map[string]int) {
	excl := map[string]int{}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	var out []Label
	for _, s := range cands {
		pt := positives[rng.IntN(len(positives))].PredictionTime
		if r := cfg.eligible(s, pt, true); r != "" {
			excl[r]++
			continue
		}
		out = append(out, labelFor(s, pt, false))
	}
	return out, excl
}

// setDistributions fills the report's per-class summaries of visible events and the age
// histograms, summaries and KS distance between the classes.
func (rep *CohortReport) setDistributions(visible map[string][]float64, posAges, negAges []float64) {
	for c, v := range visible {
		rep.VisibleEvents[c] = Summarise(v)
	}
	const binYears, nbins = 5.0, 24
	rep.AgeAtPrediction = AgeReport{
		BinYears: binYears, Positive: Histogram(posAges, binYears, nbins), Negative: Histogram(negAges, binYears, nbins),
		PositiveSummary: Summarise(posAges), NegativeSummary: Summarise(negAges), KS: KSDistance(posAges, negAges),
	}
}
