package synth

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/medseq/medseq/data"
)

const fixtureSubjects = 2000

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureSum  *Summary
	fixtureErr  error
	fixtureRoot string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureRoot != "" {
		os.RemoveAll(fixtureRoot)
	}
	os.Exit(code)
}

// fixture is one dataset of 2000 subjects shared by the read-back tests.
func fixture(t *testing.T) (string, *Summary) {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureRoot, fixtureErr = os.MkdirTemp("", "synth-test-")
		if fixtureErr != nil {
			return
		}
		fixtureDir = filepath.Join(fixtureRoot, "ds")
		fixtureSum, fixtureErr = Generate(context.Background(), Config{Out: fixtureDir, Subjects: fixtureSubjects, Seed: 42})
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureDir, fixtureSum
}

type readBack struct {
	ds       *data.Dataset
	subjects []data.Subject
	counts   map[string]int
}

func readDataset(t *testing.T, dir string) *readBack {
	t.Helper()
	ds, err := data.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rb := &readBack{ds: ds, counts: map[string]int{}}
	err = ds.ForEachSubject(context.Background(), func(s data.Subject) error {
		s.Events = append([]data.Event(nil), s.Events...)
		rb.subjects = append(rb.subjects, s)
		for _, e := range s.Events {
			rb.counts[ds.Codes.Name(e.Code)]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rb
}

var (
	readOnce sync.Once
	readRB   *readBack
)

func fixtureData(t *testing.T) (*readBack, *Oracle) {
	dir, _ := fixture(t)
	readOnce.Do(func() { readRB = readDataset(t, dir) })
	o, err := LoadOracle(dir)
	if err != nil {
		t.Fatal(err)
	}
	return readRB, o
}

func TestCheckDigits(t *testing.T) {
	for _, c := range []struct {
		code  string
		valid bool
	}{
		{"44054006", true}, {"195967001", true}, {"714628002", true}, {"38341003", true}, {"44054007", false},
		{"195967010", false},
	} {
		if got := verhoeffValid(c.code); got != c.valid {
			t.Errorf("verhoeffValid(%s) = %v, want %v", c.code, got, c.valid)
		}
	}
	for _, c := range []struct{ body, check string }{{"4548", "4"}, {"39156", "5"}, {"8480", "6"}, {"2093", "3"},
		{"14959", "1"}} {
		if got := luhnCheck(c.body); string(rune('0'+got)) != c.check {
			t.Errorf("LOINC check digit of %s = %d, want %s", c.body, got, c.check)
		}
	}
}

func TestVocabulary(t *testing.T) {
	v := getVocab()
	snomed := regexp.MustCompile(`^SNOMED/[1-9][0-9]{5,17}$`)
	icd := regexp.MustCompile(`^ICD10/[A-Z][0-9]{2}(\.[0-9]{1,2})?$`)
	atc := regexp.MustCompile(`^ATC/[A-Z][0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?$`)
	loinc := regexp.MustCompile(`^LOINC/([0-9]{1,5})-([0-9])$`)
	seen := map[string]bool{}
	diabetes := map[int32]bool{v.sp.t2dSN: true, v.sp.t2dICD: true, v.sp.t2dICD65: true, v.sp.metformin: true,
		v.sp.insulin: true, v.sp.prediabICD: true, v.sp.gdmICD: true, v.index["ICD10/E11"]: true}
	for _, id := range append(append([]int32{}, v.sp.t2dComplications...), v.sp.secondLine...) {
		diabetes[id] = true
	}
	for i, m := range v.meta {
		if seen[m.Code] {
			t.Errorf("code %s listed twice", m.Code)
		}
		seen[m.Code] = true
		if m.Description == "" {
			t.Errorf("code %s has no description", m.Code)
		}
		if forbidden(m.Code) && !diabetes[int32(i)] && !strings.HasPrefix(m.Description, "ICD-10 category") {
			t.Errorf("code %s uses a reserved prefix", m.Code)
		}
		switch sys, _, _ := strings.Cut(m.Code, "/"); sys {
		case "SNOMED":
			if !snomed.MatchString(m.Code) || !verhoeffValid(strings.TrimPrefix(m.Code, "SNOMED/")) {
				t.Errorf("bad SNOMED code %s", m.Code)
			}
		case "ICD10":
			if !icd.MatchString(m.Code) {
				t.Errorf("bad ICD-10 code %s", m.Code)
			}
		case "ATC":
			if !atc.MatchString(m.Code) {
				t.Errorf("bad ATC code %s", m.Code)
			}
		case "LOINC":
			p := loinc.FindStringSubmatch(m.Code)
			if p == nil || string(rune('0'+luhnCheck(p[1]))) != p[2] {
				t.Errorf("bad LOINC code %s", m.Code)
			}
		}
	}
	if len(v.meta) < 2000 {
		t.Errorf("vocabulary has %d codes, want a few thousand", len(v.meta))
	}
	var e119 data.CodeMeta
	for _, m := range v.meta {
		if m.Code == "ICD10/E11.9" {
			e119 = m
		}
	}
	if len(e119.ParentCodes) != 1 || e119.ParentCodes[0] != "ICD10/E11" || !seen["ICD10/E11"] {
		t.Errorf("ICD10/E11.9 parents = %v, want [ICD10/E11] with its own row", e119.ParentCodes)
	}
}

func TestDatasetShape(t *testing.T) {
	rb, o := fixtureData(t)
	dir, sum := fixture(t)
	if len(rb.subjects) != fixtureSubjects || o.Len() != fixtureSubjects || sum.Subjects != fixtureSubjects {
		t.Fatalf("subjects: data %d, oracle %d, summary %d; want %d", len(rb.subjects), o.Len(), sum.Subjects,
			fixtureSubjects)
	}
	codes := rb.ds.Codes
	var events int64
	minBirth, maxBirth := int64(math.MaxInt64), int64(math.MinInt64)
	for _, s := range rb.subjects {
		events += int64(len(s.Events))
		births, sexes := 0, 0
		for i, e := range s.Events {
			if i > 0 && e.Time < s.Events[i-1].Time {
				t.Fatalf("subject %d: events out of order at %d", s.ID, i)
			}
			name := codes.Name(e.Code)
			switch {
			case name == data.BirthCode:
				births++
				minBirth, maxBirth = min(minBirth, e.Time), max(maxBirth, e.Time)
				if truth, _ := o.Subject(s.ID); truth.Birth != e.Time {
					t.Errorf("subject %d: birth %d, oracle %d", s.ID, e.Time, truth.Birth)
				}
			case strings.HasPrefix(name, "SEX//"):
				sexes++
				if !e.IsStatic() {
					t.Errorf("subject %d: sex row is not static", s.ID)
				}
			case e.IsStatic():
				t.Errorf("subject %d: unexpected static row %s", s.ID, name)
			}
			if !e.IsStatic() && e.Time > CutoffTime {
				t.Errorf("subject %d: event %s after the cut-off", s.ID, name)
			}
		}
		if births != 1 || sexes != 1 {
			t.Errorf("subject %d: %d birth rows and %d sex rows, want 1 and 1", s.ID, births, sexes)
		}
	}
	if events != sum.Events {
		t.Errorf("read %d events, summary says %d", events, sum.Events)
	}
	if per := float64(events) / fixtureSubjects; per < 100 || per > 500 {
		t.Errorf("%.0f events per subject, want 100..500", per)
	}
	if span := float64(maxBirth-minBirth) / float64(year); span < 80 {
		t.Errorf("births span %.1f years, want > 80", span)
	}
	if len(rb.counts) < 1000 || len(rb.counts) != sum.DistinctCodes {
		t.Errorf("%d distinct codes (summary %d), want > 1000", len(rb.counts), sum.DistinctCodes)
	}
	var freq []int
	bySys := map[string]int{}
	for c, n := range rb.counts {
		freq = append(freq, n)
		sys, _, _ := strings.Cut(c, "/")
		bySys[sys]++
	}
	for _, sys := range []string{"SNOMED", "ICD10", "ATC", "LOINC"} {
		if bySys[sys] < 20 {
			t.Errorf("only %d %s codes in the data", bySys[sys], sys)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(freq)))
	if top, med := freq[0], freq[len(freq)/2]; top < 100*med {
		t.Errorf("code frequencies not Zipf-like: top %d, median %d", top, med)
	}
	// Numeric values where expected: every HbA1c carries a plausible mmol/mol value.
	hb, _ := codes.Lookup("LOINC/4548-4")
	for _, s := range rb.subjects {
		for _, e := range s.Events {
			if e.Code == hb && (!e.HasValue() || e.Value < 20 || e.Value > 140) {
				t.Fatalf("subject %d: HbA1c value %v", s.ID, e.Value)
			}
		}
	}
	ds, _ := data.Open(dir)
	splits, err := ds.SubjectSplits()
	if err != nil || len(splits) != fixtureSubjects {
		t.Fatalf("subject splits: %d, %v", len(splits), err)
	}
	for id, sp := range splits {
		if want := data.HashSplit(42, id, data.DefaultSplitFractions); sp != want {
			t.Fatalf("subject %d in %s, want %s", id, sp, want)
		}
	}
	meta, err := ds.CodeMetadata()
	if err != nil || len(meta) < len(rb.counts) {
		t.Fatalf("codes.parquet: %d rows, %v", len(meta), err)
	}
	if ds.Meta.MEDSVersion != data.MEDSVersion || ds.Meta.CreatedAt != "" {
		t.Errorf("dataset.json: %+v", ds.Meta)
	}
}

// isTarget: the oracle's outcome is the first code with a prefix in OracleTargets (checked
// against the oracle's diagnosis times in TestDiagnosisAndLeakage).
func isTarget(code string) bool {
	for _, p := range OracleTargets {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
}

func TestModelsTargets(t *testing.T) {
	for _, tc := range []struct {
		targets []string
		want    bool
	}{
		{[]string{"ICD10/E11", "SNOMED/44054006"}, true},
		{[]string{"SNOMED/44054006", "ICD10/E11", "ICD10/E11"}, true},
		{[]string{"ICD10/E11"}, false}, // misses the subjects diagnosed with the SNOMED code only
		{[]string{"ICD10/I10"}, false},
		{[]string{"ICD10/E11", "SNOMED/44054006", "ICD10/I10"}, false},
		{nil, false},
	} {
		if got := ModelsTargets(tc.targets); got != tc.want {
			t.Errorf("ModelsTargets(%v) = %v, want %v", tc.targets, got, tc.want)
		}
	}
}

func TestDiagnosisAndLeakage(t *testing.T) {
	rb, o := fixtureData(t)
	_, sum := fixture(t)
	codes := rb.ds.Codes
	diagnosed := 0
	var ages []float64
	for _, s := range rb.subjects {
		truth, ok := o.Subject(s.ID)
		if !ok {
			t.Fatalf("subject %d not in the oracle", s.ID)
		}
		if truth.Onset != NoTime && truth.Diagnosis != NoTime && truth.Diagnosis < truth.Onset {
			t.Errorf("subject %d: diagnosis before onset", s.ID)
		}
		firstTarget := NoTime
		for _, e := range s.Events {
			name := codes.Name(e.Code)
			if isTarget(name) && firstTarget == NoTime {
				firstTarget = e.Time
			}
			if name == "ATC/A10BA02" && e.Time < truth.Diagnosis {
				t.Errorf("subject %d: metformin before the diagnosis", s.ID)
			}
			if (strings.HasPrefix(name, "ATC/A10") || name == "LOINC/14959-1") && truth.Diagnosis == NoTime {
				t.Errorf("subject %d: %s without a diagnosis", s.ID, name)
			}
		}
		if truth.DiagnosedInRecord() {
			diagnosed++
			ages = append(ages, float64(truth.Diagnosis-truth.Birth)/float64(year))
			if firstTarget != truth.Diagnosis {
				t.Errorf("subject %d: first target code at %d, diagnosis at %d", s.ID, firstTarget, truth.Diagnosis)
			}
		} else if firstTarget != NoTime {
			t.Errorf("subject %d: target code without a diagnosis in the record", s.ID)
		}
	}
	if diagnosed != sum.Diagnosed {
		t.Errorf("oracle counts %d diagnosed, summary %d", diagnosed, sum.Diagnosed)
	}
	if f := float64(diagnosed) / fixtureSubjects; f < 0.05 || f > 0.12 {
		t.Errorf("diagnosed fraction %.3f, want about 0.06..0.10", f)
	}
	sort.Float64s(ages)
	inRange := 0
	for _, a := range ages {
		if a >= 40 && a <= 80 {
			inRange++
		}
	}
	if med := ages[len(ages)/2]; med < 50 || med > 72 || float64(inRange) < 0.8*float64(len(ages)) {
		t.Errorf("ages at diagnosis: median %.1f, %d of %d in 40..80", med, inRange, len(ages))
	}
}

// auroc is the rank AUROC with ties counted half.
func auroc(scores []float64, labels []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var rankSum, pos float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		r := float64(i+j+1) / 2 // average 1-based rank
		for k := i; k < j; k++ {
			if labels[idx[k]] {
				rankSum += r
				pos++
			}
		}
		i = j
	}
	neg := float64(len(idx)) - pos
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

func TestOracleRiskDiscriminates(t *testing.T) {
	_, o := fixtureData(t)
	r := rand.New(rand.NewPCG(1, 2))
	var scores []float64
	var labels []bool
	var posSum, negSum float64
	for _, s := range o.Subjects() {
		hi := min(s.RecordEnd, CutoffTime) - year
		if hi <= s.RecordStart {
			continue
		}
		for k := 0; k < 10; k++ {
			tt := s.RecordStart + r.Int64N(hi-s.RecordStart)
			p, ok := o.Risk(s.ID, tt, year)
			if !ok {
				if s.Diagnosis > tt {
					t.Fatalf("subject %d: no risk at %d before the diagnosis", s.ID, tt)
				}
				continue
			}
			if p < 0 || p > 1 {
				t.Fatalf("risk %v out of [0,1]", p)
			}
			y := s.Diagnosis > tt && s.Diagnosis <= tt+year
			scores, labels = append(scores, p), append(labels, y)
			if y {
				posSum += p
			} else {
				negSum += p
			}
		}
	}
	pos := 0
	for _, y := range labels {
		if y {
			pos++
		}
	}
	if pos < 30 {
		t.Fatalf("only %d positive (subject, time) pairs", pos)
	}
	a := auroc(scores, labels)
	t.Logf("oracle AUROC %.3f over %d pairs (%d positive); mean risk %.3f positive, %.4f negative", a, len(scores), pos,
		posSum/float64(pos), negSum/float64(len(scores)-pos))
	if a <= 0.75 || a >= 1 {
		t.Errorf("oracle AUROC %.3f, want in (0.75, 1)", a)
	}
	if posSum/float64(pos) <= negSum/float64(len(scores)-pos) {
		t.Errorf("mean risk of positives not higher than negatives")
	}
}

func TestRiskCases(t *testing.T) {
	_, o := fixtureData(t)
	var diag, healthy OracleSubject
	for _, s := range o.Subjects() {
		if diag.ID == 0 && s.Onset != NoTime && s.Diagnosis != NoTime && s.Diagnosis-s.Onset > 2*day {
			diag = s
		}
		if healthy.ID == 0 && s.Onset == NoTime && s.Birth < CutoffTime-60*year {
			healthy = s
		}
	}
	if diag.ID == 0 || healthy.ID == 0 {
		t.Fatal("fixture lacks a diagnosed or a healthy adult subject")
	}
	mu := o.Model.DelayMeanYears * float64(year)
	mid := diag.Onset + (diag.Diagnosis-diag.Onset)/2
	for _, c := range []struct {
		name         string
		id, t, h     int64
		ok           bool
		want, within float64 // want < 0: only check ok and range
	}{
		{"unknown subject", -5, 0, year, false, 0, 0},
		{"before birth", diag.ID, diag.Birth - day, year, false, 0, 0},
		{"zero horizon", diag.ID, diag.Onset, 0, false, 0, 0},
		{"at diagnosis", diag.ID, diag.Diagnosis, year, false, 0, 0},
		{"after diagnosis", diag.ID, diag.Diagnosis + year, year, false, 0, 0},
		{"between onset and diagnosis", diag.ID, mid, year, true, -math.Expm1(-float64(year) / mu), 1e-12},
		{"healthy at 60", healthy.ID, healthy.Birth + 60*year, year, true, -1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, ok := o.Risk(c.id, c.t, c.h)
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			if c.want >= 0 && math.Abs(p-c.want) > c.within {
				t.Errorf("risk %v, want %v", p, c.want)
			}
			if p <= 0 || p >= 1 {
				t.Errorf("risk %v not in (0,1)", p)
			}
		})
	}
	// Before onset, risk over a longer horizon is larger, and matches a fine-step integral.
	t0 := healthy.Birth + 60*year
	p1, _ := o.Risk(healthy.ID, t0, year)
	p5, _ := o.Risk(healthy.ID, t0, 5*year)
	if !(p5 > p1) {
		t.Errorf("5-year risk %v not above 1-year risk %v", p5, p1)
	}
	lm, _ := o.LogMultiplier(healthy.ID, t0)
	want := 0.0
	const steps = 20000
	a0 := float64(t0-healthy.Birth) / float64(year)
	for k := 0; k < steps; k++ {
		s := (float64(k) + 0.5) / steps // years
		haz := o.Model.Lambda0 * math.Exp(lm-0.5*math.Pow((a0+s-o.Model.AgePeak)/o.Model.AgeWidth, 2))
		surv := math.Exp(-o.Model.cumHazard(a0, a0+s, lm))
		want += haz * surv * -math.Expm1(-(1-s)/o.Model.DelayMeanYears) / steps
	}
	if math.Abs(p1-want) > 0.02*want {
		t.Errorf("1-year risk %v, fine integral %v", p1, want)
	}
}

func TestLoadOracleMissing(t *testing.T) {
	if _, err := LoadOracle(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadOracle on an empty folder: %v, want os.ErrNotExist", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no output", Config{Subjects: 10}, "no output"},
		{"no subjects", Config{Out: t.TempDir() + "/x", Subjects: 0}, "at least 1"},
		{"existing output", Config{Out: t.TempDir(), Subjects: 1}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "existing output" {
				os.WriteFile(filepath.Join(c.cfg.Out, "keep"), []byte("x"), 0o644)
			}
			_, err := Generate(context.Background(), c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

// files reads every file under root but manifest.json.
func files(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == data.ManifestFile {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterminism(t *testing.T) {
	base := t.TempDir()
	gen := func(name string, seed int64, workers int) map[string][]byte {
		dir := filepath.Join(base, name)
		if _, err := Generate(context.Background(), Config{Out: dir, Subjects: 300, Seed: seed,
			Workers: workers}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, data.ManifestFile)); err != nil {
			t.Fatal(err)
		}
		return files(t, dir)
	}
	a := gen("a", 7, 2)
	b := gen("b", 7, 1)
	c := gen("c", 8, 2)
	for _, f := range []string{OracleSubjectsFile, OracleHazardFile, OracleModelFile, data.CodesFile,
		data.SubjectSplitsFile, data.DatasetJSONFile} {
		if _, ok := a[filepath.FromSlash(f)]; !ok {
			t.Errorf("missing %s", f)
		}
	}
	if len(a) != len(b) {
		t.Fatalf("same seed: %d files vs %d", len(a), len(b))
	}
	for name, x := range a {
		if !bytes.Equal(x, b[name]) {
			t.Errorf("same seed, different bytes in %s", name)
		}
	}
	differ := 0
	for name, x := range a {
		if strings.HasPrefix(name, data.DataDir) && !bytes.Equal(x, c[name]) {
			differ++
		}
	}
	if differ == 0 || bytes.Equal(a[filepath.FromSlash(OracleSubjectsFile)], c[filepath.FromSlash(OracleSubjectsFile)]) {
		t.Errorf("different seeds wrote the same data")
	}
}

func BenchmarkGenerate(b *testing.B) {
	base := b.TempDir()
	var events int64
	for i := 0; b.Loop(); i++ {
		s, err := Generate(context.Background(), Config{Out: filepath.Join(base, "ds"), Subjects: 5000, Seed: int64(i),
			Force: true})
		if err != nil {
			b.Fatal(err)
		}
		events += s.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
