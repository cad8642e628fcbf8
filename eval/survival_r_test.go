package eval

import (
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// needR returns Rscript when it can load survival and riskRegression. Otherwise the test is
// skipped, or fails when CI is set or MEDSEQ_REQUIRE_R=1 (CI must run the reference checks).
func needR(t *testing.T) string {
	t.Helper()
	const pkgs = "r-base-core r-cran-survival r-cran-riskregression"
	rscript, err := exec.LookPath("Rscript")
	msg := ""
	if err != nil {
		msg = "Rscript not found (apt-get install -y " + pkgs + ")"
	} else {
		load := `invisible(find.package(c("survival", "prodlim", "riskRegression")))`
		if out, err := exec.Command(rscript, "-e", load).CombinedOutput(); err != nil {
			msg = "R cannot load survival, prodlim and riskRegression (apt-get install -y " + pkgs + "): " +
				strings.TrimSpace(string(out))
		}
	}
	if msg != "" {
		if os.Getenv("CI") != "" || os.Getenv("MEDSEQ_REQUIRE_R") == "1" {
			t.Fatalf("CI or MEDSEQ_REQUIRE_R is set: %s", msg)
		}
		t.Skip(msg)
	}
	return rscript
}

type survCase struct {
	name     string
	rows     []SurvivalRow
	horizons []float64
	tau      float64 // 0: the largest horizon
	groups   int
}

// survivalCases are the datasets checked against R: tied times (events and censorings at the
// same time), few distinct risks, heavy censoring with a horizon past the last follow-up, a
// curve that ends at 0, one risk for all, and a realistic cohort in days.
func survivalCases() []survCase {
	rng := rand.New(rand.NewPCG(17, 29))
	toy := []SurvivalRow{}
	for i, tm := range []float64{1, 2, 2, 2, 3, 3, 4, 5, 5, 6, 7, 7} {
		ev := []bool{true, true, false, false, false, false, true, false, false, true, true, true}[i]
		toy = append(toy, SurvivalRow{Time: tm, Event: ev, Risk: float64((i*7)%10) / 10})
	}
	one := tiedTimes(rng, 50)
	for i := range one {
		one[i].Risk = 0.2
	}
	return []survCase{
		{name: "ends-at-zero", rows: toy, horizons: []float64{0.5, 2, 2.5, 6.5, 7, 8}, groups: 3},
		{name: "tied-times", rows: tiedTimes(rng, 90), horizons: []float64{3, 5, 8}, groups: 3},
		{name: "tied-risks", rows: tiedRisks(rng, 400), horizons: []float64{1, 2.5, 4}, tau: 3, groups: 10},
		{name: "heavy-censoring", rows: heavyCensoring(rng, 600), horizons: []float64{0.5, 2, 5, 1e6}, groups: 5},
		{name: "one-risk", rows: one, horizons: []float64{2, 6}, groups: 10},
		{name: "realistic", rows: realisticCohort(rng, 3000), horizons: []float64{365, 730, 1826}, groups: 10},
	}
}

// tiedTimes has whole times 0..10 (events and censorings tied) and risks in tenths.
func tiedTimes(rng *rand.Rand, n int) []SurvivalRow {
	rows := make([]SurvivalRow, n)
	for i := range rows {
		risk := math.Round(rng.Float64()*10) / 10
		tm := math.Floor(rng.Float64() * 11 * (1.2 - risk))
		rows[i] = SurvivalRow{Time: tm, Event: rng.Float64() < 0.3+0.5*risk, Risk: risk}
	}
	return rows
}

// tiedRisks has eight distinct risks and times to the hundredth.
func tiedRisks(rng *rand.Rand, n int) []SurvivalRow {
	rows := make([]SurvivalRow, n)
	for i := range rows {
		risk := float64(1+rng.IntN(8)) / 10
		ev := rng.ExpFloat64() / (0.1 + risk)
		cens := rng.ExpFloat64() * 4
		rows[i] = SurvivalRow{Time: math.Round(min(ev, cens)*100) / 100, Event: ev <= cens, Risk: risk}
	}
	return rows
}

// heavyCensoring censors about nine in ten early.
func heavyCensoring(rng *rand.Rand, n int) []SurvivalRow {
	rows := make([]SurvivalRow, n)
	for i := range rows {
		risk := math.Round(rng.Float64()*1000) / 1000
		ev := rng.ExpFloat64() / (0.02 + 0.2*risk)
		cens := rng.ExpFloat64() * 1.5
		rows[i] = SurvivalRow{Time: math.Round(min(ev, cens)*1000) / 1000, Event: ev <= cens, Risk: risk}
	}
	return rows
}

// realisticCohort is a cohort in whole days: a latent risk, exponential event times, entry
// spread over six years (administrative censoring) and loss to follow-up; the model's
// calibrated five-year risk is the latent one blurred and rounded to four decimals.
func realisticCohort(rng *rand.Rand, n int) []SurvivalRow {
	rows := make([]SurvivalRow, n)
	for i := range rows {
		lp := -2.4 + 0.9*rng.NormFloat64()
		p5 := 1 / (1 + math.Exp(-lp))
		rate := -math.Log(1-p5) / 1826
		ev := rng.ExpFloat64() / rate
		cens := min(30+rng.Float64()*2200, rng.ExpFloat64()*365/0.08)
		risk := 1 / (1 + math.Exp(-(lp + 0.5*rng.NormFloat64())))
		rows[i] = SurvivalRow{Time: math.Floor(min(ev, cens)), Event: ev <= cens, Risk: math.Round(risk*1e4) / 1e4}
	}
	return rows
}

func TestSurvivalAgainstR(t *testing.T) {
	rscript := needR(t)
	dir := t.TempDir()
	cases := survivalCases()
	reports := make([]*SurvivalReport, len(cases))
	manifest := [][]string{{"name", "horizons", "tau", "groups"}}
	for ci, c := range cases {
		rep, err := Survival(c.rows, SurvivalOptions{Horizons: c.horizons, Groups: c.groups, Tau: c.tau, Curves: true})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		reports[ci] = rep
		writeSurvivalCSV(t, filepath.Join(dir, c.name+".csv"), c.rows, rep)
		var hs []string
		for _, h := range c.horizons {
			hs = append(hs, strconv.FormatFloat(h, 'g', -1, 64))
		}
		manifest = append(manifest, []string{c.name, strings.Join(hs, ";"), fmtR(float64(rep.Uno.Tau)),
			strconv.Itoa(c.groups)})
	}
	writeCSV(t, filepath.Join(dir, "cases.csv"), manifest)
	cmd := exec.Command(rscript, filepath.Join("testdata", "survival_ref.R"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("survival_ref.R: %v\n%s", err, out)
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := readRRef(t, filepath.Join(dir, c.name+".out.csv"))
			if ci == 0 {
				t.Logf("R survival %s, riskRegression %s", ref.str["version.survival"], ref.str["version.riskRegression"])
			}
			ref.t = t
			compareSurvival(ref, c, reports[ci])
			t.Logf("%d rows, %d events: %d figures agree with R to 1e-6", len(c.rows), reports[ci].Events, ref.compared)
		})
	}
}

// fmtR writes a number for R: NaN (no tau) as Inf.
func fmtR(f float64) string {
	if math.IsNaN(f) {
		return "Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func writeSurvivalCSV(t *testing.T, path string, rows []SurvivalRow, rep *SurvivalReport) {
	t.Helper()
	group := rowGroups(rep, len(rows))
	recs := [][]string{{"time", "status", "risk", "group"}}
	for i, r := range rows {
		recs = append(recs, []string{strconv.FormatFloat(r.Time, 'g', -1, 64), strconv.Itoa(b2i(r.Event)),
			strconv.FormatFloat(r.Risk, 'g', -1, 64), strconv.Itoa(group[i])})
	}
	writeCSV(t, path, recs)
}

func writeCSV(t *testing.T, path string, recs [][]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// rRef is one dataset's R figures by key, and the comparisons made against them.
type rRef struct {
	t        *testing.T
	num      map[string]float64
	str      map[string]string
	compared int
}

func readRRef(t *testing.T, path string) *rRef {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	ref := &rRef{num: map[string]float64{}, str: map[string]string{}}
	for _, rec := range recs[1:] {
		ref.str[rec[0]] = rec[1]
		if rec[1] == "NA" {
			ref.num[rec[0]] = math.NaN()
		} else if v, err := strconv.ParseFloat(rec[1], 64); err == nil {
			ref.num[rec[0]] = v
		}
	}
	return ref
}

func (r *rRef) has(key string) bool { _, ok := r.num[key]; return ok }

// near checks got against R's key to 1e-6 (relative above 1); NA must be NaN.
func (r *rRef) near(key string, got float64) {
	r.t.Helper()
	want, ok := r.num[key]
	if !ok {
		r.t.Errorf("R wrote no %s", key)
		return
	}
	r.compared++
	switch {
	case math.IsNaN(want) || math.IsNaN(got):
		if math.IsNaN(want) != math.IsNaN(got) {
			r.t.Errorf("%s = %v, R %v", key, got, want)
		}
	case math.IsInf(want, 0) || math.IsInf(got, 0):
		if want != got {
			r.t.Errorf("%s = %v, R %v", key, got, want)
		}
	case math.Abs(got-want) > 1e-6*max(1, math.Abs(want)):
		r.t.Errorf("%s = %.12g, R %.12g (diff %.3g)", key, got, want, got-want)
	}
}

func compareSurvival(ref *rRef, c survCase, rep *SurvivalReport) {
	t := ref.t
	compareKM(ref, "km", rep.Overall)
	for i, g := range rowGroups(rep, len(c.rows)) {
		ref.near(fmt.Sprintf("group.of.%d", i+1), float64(g))
	}
	for _, g := range rep.Groups {
		compareKM(ref, fmt.Sprintf("group.%d", g.Group), g.KM)
	}
	for _, cc := range []struct {
		name string
		c    Concordance
	}{{"harrell", rep.Harrell}, {"uno", rep.Uno}} {
		ref.near(cc.name+".c", float64(cc.c.C))
		ref.near(cc.name+".se", float64(cc.c.SE))
		ref.near(cc.name+".concordant", cc.c.Concordant)
		ref.near(cc.name+".discordant", cc.c.Discordant)
		ref.near(cc.name+".tied.x", cc.c.TiedRisk)
	}
	for k, h := range rep.AtHorizon {
		p := fmt.Sprintf("score.%d", k+1)
		if !ref.has(p + ".auc") {
			if h.Horizon <= rep.MaxTime || !math.IsNaN(float64(h.Brier)) || h.BrierReason == "" {
				t.Errorf("horizon %g: R computed no Score, Go brier %v (%q)", h.Horizon, h.Brier, h.BrierReason)
			}
			continue
		}
		ref.near(p+".auc", float64(h.AUC))
		ref.near(p+".brier", float64(h.Brier))
		ref.near(p+".brier.null", float64(h.BrierNull))
		ref.near(p+".ipa", float64(h.IPA))
	}
}

// compareKM checks every step of a Kaplan–Meier curve and its reading at each horizon.
func compareKM(ref *rRef, prefix string, km KMSummary) {
	t := ref.t
	if n := len(km.Steps); !ref.has(fmt.Sprintf("%s.step.time.%d", prefix, n)) ||
		ref.has(fmt.Sprintf("%s.step.time.%d", prefix, n+1)) {
		if !(n == 1 && ref.has(prefix+".step.time")) {
			t.Errorf("%s: %d steps, R another number", prefix, n)
			return
		}
	}
	key := func(field string, i, n int) string {
		if n == 1 {
			return fmt.Sprintf("%s.step.%s", prefix, field)
		}
		return fmt.Sprintf("%s.step.%s.%d", prefix, field, i+1)
	}
	for i, st := range km.Steps {
		n := len(km.Steps)
		ref.near(key("time", i, n), st.Time)
		ref.near(key("n.risk", i, n), float64(st.AtRisk))
		ref.near(key("n.event", i, n), float64(st.Events))
		ref.near(key("n.censor", i, n), float64(st.Censored))
		ref.near(key("surv", i, n), float64(st.Survival))
		ref.near(key("std.err", i, n), float64(st.SELog))
		ref.near(key("lower", i, n), float64(st.Lo))
		ref.near(key("upper", i, n), float64(st.Hi))
	}
	for k, a := range km.At {
		p := fmt.Sprintf("%s.at.%d", prefix, k+1)
		if !ref.has(p + ".surv") {
			if a.Reason == "" || !math.IsNaN(float64(a.Incidence)) {
				t.Errorf("%s: horizon %g past the last time, Go gives %v without a reason", prefix, a.Horizon, a.Incidence)
			}
			continue
		}
		ref.near(p+".surv", float64(a.Survival))
		ref.near(p+".std.err", float64(a.SE))
		ref.near(p+".lower", 1-float64(a.Hi))
		ref.near(p+".upper", 1-float64(a.Lo))
		ref.near(p+".n.risk", float64(a.AtRisk))
	}
}

// rowGroups is each row's risk group (1-based).
func rowGroups(rep *SurvivalReport, n int) []int {
	group := make([]int, n)
	for _, g := range rep.Groups {
		for _, i := range g.idx {
			group[i] = g.Group
		}
	}
	return group
}
