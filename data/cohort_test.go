package data

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var cutoff = Micros(time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC))

// population writes a dataset of n subjects whose type 2 diabetes incidence rises steeply
// with age. Every diagnosed subject carries codes that would leak the label: WINDOW/ codes in
// the year before diagnosis (after the prediction time) and LEAK/ codes after it.
func population(t testing.TB, dir string, n int, seed uint64) string {
	t.Helper()
	out := filepath.Join(dir, "meds")
	w, err := NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	start := Micros(time.Date(1995, 1, 1, 0, 0, 0, 0, time.UTC))
	for id := int64(1); id <= int64(n); id++ {
		birth := Micros(time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC)) + int64(rng.Float64()*75*float64(MicrosPerYear))
		reg := max(birth, start+int64(rng.Float64()*10*float64(MicrosPerYear)))
		end := cutoff
		if rng.Float64() < 0.2 {
			end = reg + int64(rng.Float64()*float64(cutoff-reg))
		}
		sex := "SEX//F"
		if rng.IntN(2) == 0 {
			sex = "GENDER//M"
		}
		ev := []Event{{Time: StaticTime, Code: w.Codes.ID(sex), Value: NoValue},
			{Time: birth, Code: w.Codes.ID(BirthCode), Value: NoValue}}
		diag := StaticTime
		days := func(d float64) int64 { return int64(d * float64(MicrosPerDay)) }
		for tm := reg + days(rng.Float64()*200); tm < end; tm += days(30 + rng.Float64()*300) {
			age := float64(tm-birth) / float64(MicrosPerYear)
			if diag == StaticTime && age > 20 && rng.Float64() < 0.001*math.Exp(0.07*(age-40)) {
				diag = tm
				ev = append(ev, Event{Time: tm, Code: w.Codes.ID("ICD10/E11.9"), Value: NoValue})
				// A code between prediction time and diagnosis, and one inside a 30-day gap.
				ev = append(ev, Event{Time: tm - 100*MicrosPerDay, Code: w.Codes.ID("WINDOW/HBA1C_HIGH"), Value: 50})
				ev = append(ev, Event{Time: tm - MicrosPerYear - 10*MicrosPerDay, Code: w.Codes.ID("GAP/HBA1C_TEST"), Value: 44})
			}
			if diag != StaticTime && tm > diag {
				ev = append(ev, Event{Time: tm, Code: w.Codes.ID("LEAK/METFORMIN"), Value: NoValue})
				ev = append(ev, Event{Time: tm, Code: w.Codes.ID("SNOMED/44054006"), Value: NoValue})
			}
			ev = append(ev, Event{Time: tm, Code: w.Codes.ID("C/" + string(rune('A'+rng.IntN(26)))), Value: NoValue})
		}
		SortEvents(ev)
		if err := w.Add(HashSplit(int64(seed), id, DefaultSplitFractions), Subject{ID: id, Events: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(NewManifest("test population", nil)); err != nil {
		t.Fatal(err)
	}
	return out
}

func testCohortConfig() CohortConfig {
	c := DefaultCohortConfig()
	c.Targets = []string{"ICD10/E11", "SNOMED/44054006"}
	return c
}

func TestCensor(t *testing.T) {
	day := MicrosPerDay
	ev := []Event{{Time: StaticTime}, {Time: 10 * day}, {Time: 20 * day}, {Time: 20 * day}, {Time: 30 * day}}
	for _, tc := range []struct {
		name    string
		pt, gap int64
		want    int
	}{
		{"before everything keeps static rows", 5 * day, 0, 1},
		{"inclusive at prediction time", 20 * day, 0, 4},
		{"just before", 20*day - 1, 0, 2},
		{"gap hides the window", 25 * day, 10 * day, 2},
		{"after everything", 40 * day, 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Censor(ev, tc.pt, tc.gap)
			if len(got) != tc.want {
				t.Fatalf("kept %d events, want %d", len(got), tc.want)
			}
			for _, e := range got {
				if e.Time > tc.pt-tc.gap {
					t.Errorf("event at %d after limit %d", e.Time, tc.pt-tc.gap)
				}
			}
		})
	}
}

// TestCohortNoLeak plants post-diagnosis codes and proves none reaches any sequence.
func TestCohortNoLeak(t *testing.T) {
	dir := t.TempDir()
	meds := population(t, dir, 3000, 1)
	for _, gap := range []int64{0, 30 * MicrosPerDay} {
		t.Run("gap="+FormatDuration(gap), func(t *testing.T) {
			cfg := testCohortConfig()
			cfg.Gap = gap
			ds, err := Open(meds)
			if err != nil {
				t.Fatal(err)
			}
			res, err := BuildCohort(context.Background(), ds, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Report.Positives < 50 || res.Report.Negatives < 200 {
				t.Fatalf("too small a cohort: %+v", res.Report)
			}
			m := NewManifest(StageCohort, cfg.Params())
			if _, err := m.AddInput(InputMEDS, meds); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "cohort-"+FormatDuration(gap))
			if err := WriteCohort(out, false, res, m); err != nil {
				t.Fatal(err)
			}
			c, err := LoadCohort(out)
			if err != nil {
				t.Fatal(err)
			}
			if c.Gap != gap || len(c.Labels) != len(res.Labels) {
				t.Fatalf("loaded gap %d labels %d", c.Gap, len(c.Labels))
			}
			if err := c.CheckDataset(meds); err != nil {
				t.Fatal(err)
			}
			ds2, _ := Open(meds)
			seqs, gapCodes := 0, 0
			err = c.Sequences(context.Background(), ds2, nil, func(s Sequence) error {
				seqs++
				for _, e := range s.Events {
					name := ds2.Codes.Name(e.Code)
					if e.Time != StaticTime && e.Time > s.Label.PredictionTime-gap {
						t.Fatalf("subject %d: event at %s after prediction time %s - gap", s.Label.SubjectID, TimeOf(e.Time),
							TimeOf(s.Label.PredictionTime))
					}
					for _, bad := range []string{"LEAK/", "WINDOW/", "ICD10/E11", "SNOMED/44054006"} {
						if strings.HasPrefix(name, bad) {
							t.Fatalf("subject %d (label %v): %s reached the sequence", s.Label.SubjectID, s.Label.Value, name)
						}
					}
					if strings.HasPrefix(name, "GAP/") {
						gapCodes++
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if seqs != len(c.Labels) {
				t.Errorf("%d sequences for %d labels", seqs, len(c.Labels))
			}
			// GAP/ codes sit 10 days before the prediction time: visible without a gap only.
			if (gap == 0) != (gapCodes > 0) {
				t.Errorf("gap %s: %d GAP/ codes visible", FormatDuration(gap), gapCodes)
			}
		})
	}
}

func TestMatchedAgeRemovesSamplingBias(t *testing.T) {
	meds := population(t, t.TempDir(), 6000, 2)
	results := map[string]*CohortResult{}
	for _, method := range []string{NegativesMatchedAge, NegativesRandomDate} {
		cfg := testCohortConfig()
		cfg.Negatives = method
		ds, _ := Open(meds)
		res, err := BuildCohort(context.Background(), ds, cfg)
		if err != nil {
			t.Fatal(err)
		}
		results[method] = res
		// Same comparison whichever method was chosen.
		if got := res.Report.Sampling.Comparison[method].KS; math.Abs(got-res.Report.AgeAtPrediction.KS) > 1e-12 {
			t.Errorf("%s: comparison KS %v != age report KS %v", method, got, res.Report.AgeAtPrediction.KS)
		}
	}
	m, r := results[NegativesMatchedAge].Report, results[NegativesRandomDate].Report
	t.Logf("KS matched-age %.3f (neg mean age %.1f), random-date %.3f (neg mean age %.1f), positives mean age %.1f",
		m.AgeAtPrediction.KS, m.AgeAtPrediction.NegativeSummary.Mean, r.AgeAtPrediction.KS,
		r.AgeAtPrediction.NegativeSummary.Mean, m.AgeAtPrediction.PositiveSummary.Mean)
	if m.AgeAtPrediction.KS > 0.05 {
		t.Errorf("matched-age KS %.3f, want near 0", m.AgeAtPrediction.KS)
	}
	if r.AgeAtPrediction.KS < 0.2 {
		t.Errorf("random-date KS %.3f: the naive method's bias should show", r.AgeAtPrediction.KS)
	}
	if r.AgeAtPrediction.NegativeSummary.Mean >= r.AgeAtPrediction.PositiveSummary.Mean {
		t.Errorf("random-date negatives should be younger")
	}
	// Labels are deterministic for a seed.
	ds, _ := Open(meds)
	cfg := testCohortConfig()
	again, err := BuildCohort(context.Background(), ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := results[NegativesMatchedAge].Labels
	if len(again.Labels) != len(a) {
		t.Fatal("different label count on a second run")
	}
	for i := range a {
		if a[i] != again.Labels[i] {
			t.Fatalf("label %d differs: %+v vs %+v", i, a[i], again.Labels[i])
		}
	}
}

// handDataset writes subjects given as (birth, events) by hand.
func handDataset(t *testing.T, subjects map[int64][]struct {
	code string
	at   time.Time
}) string {
	out := filepath.Join(t.TempDir(), "hand")
	w, err := NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	for id, evs := range subjects {
		var ev []Event
		for _, e := range evs {
			tm := StaticTime
			if !e.at.IsZero() {
				tm = Micros(e.at)
			}
			ev = append(ev, Event{Time: tm, Code: w.Codes.ID(e.code), Value: NoValue})
		}
		SortEvents(ev)
		if err := w.Add("", Subject{ID: id, Events: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(nil); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCohortExclusions(t *testing.T) {
	d := func(y, m, day int) time.Time { return time.Date(y, time.Month(m), day, 0, 0, 0, 0, time.UTC) }
	type ev = struct {
		code string
		at   time.Time
	}
	visits := func(from, to int) []ev {
		var out []ev
		for y := from; y <= to; y++ {
			out = append(out, ev{"C/VISIT", d(y, 6, 1)})
		}
		return out
	}
	subj := map[int64][]ev{
		// A good positive: born 1950, records 2000-2020, diagnosed 2015.
		1: append([]ev{{BirthCode, d(1950, 1, 1)}, {"SEX//F", time.Time{}}, {"ICD10/E11.9", d(2015, 3, 1)}},
			visits(2000, 2020)...),
		// Positive diagnosed at 17: too young at prediction.
		2: append([]ev{{BirthCode, d(1998, 1, 1)}, {"ICD10/E11.9", d(2015, 3, 1)}}, visits(2000, 2020)...),
		// Positive whose records start 6 months before the prediction time: short history.
		3: append([]ev{{BirthCode, d(1950, 1, 1)}, {"ICD10/E11.9", d(2015, 3, 1)}}, visits(2013, 2020)[1:]...),
		// No birth code.
		4: visits(2000, 2020),
		// Negative observed only 2000-2001: no time with a year of history and a year of follow-up.
		5: append([]ev{{BirthCode, d(1950, 1, 1)}}, visits(2000, 2001)...),
		// Good negatives of the same age.
		6: append([]ev{{BirthCode, d(1951, 1, 1)}, {"GENDER//M", time.Time{}}}, visits(2000, 2020)...),
		7: append([]ev{{BirthCode, d(1952, 1, 1)}}, visits(2000, 2020)...),
	}
	meds := handDataset(t, subj)
	ds, err := Open(meds)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testCohortConfig()
	cfg.NegativesPerPositive = 5
	res, err := BuildCohort(context.Background(), ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, x := range res.Report.Exclusions {
		got[x.Class+": "+x.Reason] = x.Count
	}
	for _, want := range []string{
		"positive: " + ExclTooYoung,
		"positive: " + ExclShortHistory,
		"negative: " + ExclNoBirth,
		"negative: " + ExclShortRecord,
	} {
		if got[want] != 1 {
			t.Errorf("exclusion %q counted %d, want 1 (all: %v)", want, got[want], got)
		}
	}
	if res.Report.Positives != 1 || res.Report.Negatives != 2 {
		t.Fatalf("positives %d negatives %d, want 1 and 2", res.Report.Positives, res.Report.Negatives)
	}
	for _, l := range res.Labels {
		switch l.SubjectID {
		case 1:
			if !l.Value || l.PredictionTime != Micros(d(2014, 3, 1)) || l.Sex != SexFemale {
				t.Errorf("positive label %+v", l)
			}
		case 6:
			if l.Value || l.Sex != SexMale {
				t.Errorf("negative label %+v", l)
			}
			// Matched age: the only positive age, 64.2 years.
			if math.Abs(l.Age-res.Labels[0].Age) > 0.01 {
				t.Errorf("negative age %.2f, positive %.2f", l.Age, res.Labels[0].Age)
			}
		}
	}
}

func TestCohortErrors(t *testing.T) {
	meds := population(t, t.TempDir(), 200, 3)
	ds, _ := Open(meds)
	cfg := testCohortConfig()
	cfg.Targets = []string{"ICD10/Z99"}
	if _, err := BuildCohort(context.Background(), ds, cfg); !errors.Is(err, ErrEmptyCohort) {
		t.Errorf("no positives: err %v, want ErrEmptyCohort", err)
	}
	cfg.Targets = nil
	if _, err := BuildCohort(context.Background(), ds, cfg); err == nil {
		t.Error("no targets accepted")
	}
	cfg = testCohortConfig()
	cfg.Negatives = "nearest"
	if _, err := BuildCohort(context.Background(), ds, cfg); err == nil || !strings.Contains(err.Error(), "nearest") {
		t.Errorf("bad method: %v", err)
	}
}

func TestCohortRefusesOtherDataset(t *testing.T) {
	dir := t.TempDir()
	medsA := population(t, filepath.Join(dir, "a"), 1500, 4)
	medsB := population(t, filepath.Join(dir, "b"), 1500, 5)
	ds, _ := Open(medsA)
	res, err := BuildCohort(context.Background(), ds, testCohortConfig())
	if err != nil {
		t.Fatal(err)
	}
	m := NewManifest(StageCohort, nil)
	if _, err := m.AddInput(InputMEDS, medsA); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cohort")
	if err := WriteCohort(out, false, res, m); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCohort(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckDataset(medsA); err != nil {
		t.Errorf("own dataset refused: %v", err)
	}
	err = c.CheckDataset(medsB)
	if !errors.Is(err, ErrInputMismatch) || !strings.Contains(err.Error(), medsB) ||
		!strings.Contains(err.Error(), m.RunID) {
		t.Errorf("other dataset: %v", err)
	}
	// Writing again without --force is refused and leaves the old cohort untouched.
	if err := WriteCohort(out, false, res, NewManifest(StageCohort, nil)); err == nil ||
		!strings.Contains(err.Error(), "--force") {
		t.Errorf("overwrite without force: %v", err)
	}
	if m2, _ := ReadManifest(out); m2.RunID != m.RunID {
		t.Error("cohort replaced without force")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temp left behind: %s", e.Name())
		}
	}
}

func TestStratifiedSplits(t *testing.T) {
	labels := map[int64]bool{}
	for id := int64(1); id <= 1003; id++ {
		labels[id] = id%10 == 0
	}
	fixed := map[int64]string{10: SplitHeldOut, 11: SplitTuning}
	a := StratifiedSplits(labels, fixed, 42, DefaultSplitFractions)
	b := StratifiedSplits(labels, fixed, 42, DefaultSplitFractions)
	c := StratifiedSplits(labels, fixed, 43, DefaultSplitFractions)
	if a[10] != SplitHeldOut || a[11] != SplitTuning {
		t.Error("fixed splits not honoured")
	}
	count := map[string]map[bool]int{}
	diff := 0
	for id, y := range labels {
		if a[id] != b[id] {
			t.Fatal("not deterministic")
		}
		if a[id] != c[id] {
			diff++
		}
		if count[a[id]] == nil {
			count[a[id]] = map[bool]int{}
		}
		count[a[id]][y]++
	}
	if diff == 0 {
		t.Error("seed has no effect")
	}
	// 100 positives, 903 negatives: 80/10/10 within one subject per class.
	for _, tc := range []struct {
		split string
		pos   int
		neg   int
	}{{SplitTrain, 80, 722}, {SplitTuning, 10, 90}, {SplitHeldOut, 10, 90}} {
		if p := count[tc.split][true]; p < tc.pos-1 || p > tc.pos+1 {
			t.Errorf("%s positives %d, want %d±1", tc.split, p, tc.pos)
		}
		if n := count[tc.split][false]; n < tc.neg-1 || n > tc.neg+1 {
			t.Errorf("%s negatives %d, want %d±1", tc.split, n, tc.neg)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"365d", 365 * MicrosPerDay, true}, {"1y", MicrosPerYear, true}, {"2w", 14 * MicrosPerDay, true},
		{"12h", 12 * 3600e6, true}, {"0", 0, true}, {"30min", 1800e6, true}, {"1.5d", 36 * 3600e6, true},
		{"-1d", 0, false}, {"365", 0, false}, {"d", 0, false}, {"1 fortnight", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParseDuration(%q) = %d, %v", tc.in, got, err)
			}
		})
	}
}

func TestKSDistance(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []float64
		want float64
	}{
		{"identical", []float64{1, 2, 3}, []float64{3, 2, 1}, 0},
		{"disjoint", []float64{1, 2}, []float64{5, 6, 7}, 1},
		{"half", []float64{1, 2, 3, 4}, []float64{3, 4, 5, 6}, 0.5},
		{"ties", []float64{1, 1, 2}, []float64{1, 2, 2}, 1.0 / 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KSDistance(tc.a, tc.b); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("KS = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestZeroLeadHidesDiagnosis: with --lead 0 the prediction is made just before the diagnosis,
// so the diagnosis code (and what is recorded with it) stays invisible.
func TestZeroLeadHidesDiagnosis(t *testing.T) {
	meds := population(t, t.TempDir(), 1500, 6)
	ds, _ := Open(meds)
	cfg := testCohortConfig()
	cfg.Lead = 0
	res, err := BuildCohort(context.Background(), ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cohort{Labels: res.Labels}
	ds2, _ := Open(meds)
	err = c.Sequences(context.Background(), ds2, nil, func(s Sequence) error {
		for _, e := range s.Events {
			if name := ds2.Codes.Name(e.Code); strings.HasPrefix(name, "ICD10/E11") || strings.HasPrefix(name, "LEAK/") {
				t.Fatalf("subject %d sees %s with --lead 0", s.Label.SubjectID, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
