package synth

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/medseq/medseq/data"
)

const (
	year  = data.MicrosPerYear
	day   = data.MicrosPerDay
	week  = 7 * day
	month = year / 12
	hour  = day / 24
	never = int64(math.MaxInt64)
)

var (
	// CutoffTime is the end of the data: every record ends at death, transfer out or here.
	CutoffTime  = data.Micros(time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC))
	systemStart = data.Micros(time.Date(1987, 1, 1, 0, 0, 0, 0, time.UTC)) // first electronic records
	firstBirth  = data.Micros(time.Date(1920, 1, 1, 0, 0, 0, 0, time.UTC))
	// birthDecadeWeights shape the population pyramid over the births of 1920..2019.
	birthDecadeWeights = [10]float64{0.07, 0.09, 0.11, 0.12, 0.125, 0.115, 0.11, 0.10, 0.09, 0.08}
	nan                = data.NoValue
)

// risk factors whose state changes over a life
const (
	fBMI = iota // 0 normal, 1 overweight, 2 obese
	fHTN
	fPrediab
	fGDM
	fStatin
	fPCOS
	nFactors
)

type change struct {
	t      int64
	factor int8
	val    int8
}

type segment struct {
	t int64
	m float64
}

// oracleSubject is one subject's truth.
type oracleSubject struct {
	id                 int64
	birth              int64
	male               bool
	onset, diag        int64 // never when none in life
	frailty            float64
	regStart, recEnd   int64
	death              int64 // never when not recorded
	diagnosedInRecord  bool
	segStart, segCount int // into the chunk's segment slice
}

// gen simulates subjects; one per worker, reused from subject to subject.
type gen struct {
	pcg  rand.PCG
	r    *rand.Rand
	v    *vocab
	m    *Model
	beta [nFactors]float64
	ev   []data.Event

	// life
	birth                                 int64
	male, fam                             bool
	u                                     float64
	bmiBase, bmiSlope, height             float64
	htnT, prediabT, statinT, gdmT, pcosT  int64
	pregs                                 []int64
	pregGDM                               []bool
	changes                               []change
	segs                                  []segment
	onset, diag, death, lifeEnd, reg, end int64
	obeseFrom                             []int64 // alternating start/stop of obesity
	activity                              float64
	clusterCum                            [3][]float64
	fav                                   [][4]int32
	favN                                  []int
	htnCoded, prediabCoded, famCoded      bool
	pcosCodable, pcosCoded                bool
	antihyp, statin, smoking              int32
	timesBuf                              []int64
}

func newGen(v *vocab, m *Model) *gen {
	g := &gen{v: v, m: m}
	g.r = rand.New(&g.pcg)
	g.beta = [nFactors]float64{0, m.Betas[BetaHypertension], m.Betas[BetaPrediabetes], m.Betas[BetaGestational],
		m.Betas[BetaStatin], m.Betas[BetaPCOS]}
	for b := range g.clusterCum {
		g.clusterCum[b] = make([]float64, len(v.clusters))
	}
	g.fav = make([][4]int32, len(v.clusters))
	g.favN = make([]int, len(v.clusters))
	return g
}

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

func (g *gen) u01() float64 { return g.r.Float64() }

func (g *gen) age(t int64) float64 { return float64(t-g.birth) / float64(year) }

func (g *gen) emit(t int64, code int32, v float32) {
	g.ev = append(g.ev, data.Event{Time: t, Code: code, Value: v})
}

// visitTime snaps t to its day: a date-only entry (midnight) or an appointment slot.
func (g *gen) visitTime(t int64) int64 {
	d := data.FloorDiv(t, day) * day
	if g.r.IntN(10) < 3 {
		return d
	}
	return d + 8*hour + int64(g.r.IntN(60))*(10*60*1_000_000)
}

func (g *gen) poisson(lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*g.r.NormFloat64())))
	}
	l := math.Exp(-lambda)
	k, p := 0, g.u01()
	for p > l {
		k++
		p *= g.u01()
	}
	return k
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

func round(x, p float64) float32 { return float32(math.Round(x/p) * p) }

func (g *gen) bmiAt(a float64) float64 {
	switch {
	case a < 2:
		return 16.5
	case a < 18:
		f := (a - 2) / 16
		return 16 + (g.bmiBase-16)*f*f
	case a < 60:
		return g.bmiBase + g.bmiSlope*(a-18)
	case a < 70:
		return g.bmiBase + g.bmiSlope*42
	}
	return g.bmiBase + g.bmiSlope*42 - 0.12*(a-70)
}

func (g *gen) drawBirth() int64 {
	u := g.u01()
	dec := 0
	for ; dec < 9; dec++ {
		if u < birthDecadeWeights[dec] {
			break
		}
		u -= birthDecadeWeights[dec]
	}
	t := firstBirth + int64((float64(dec)*10+g.u01()*10)*float64(year))
	return data.FloorDiv(t, day) * day
}

// simulateLife draws the subject's true life: risk factors, onset, diagnosis, death and the
// registration window. It returns false when the life does not reach the electronic record.
// The steps draw from g.r in this order; changing the order changes every dataset.
func (g *gen) simulateLife() bool {
	g.drawBaseline()
	g.evolveRiskFactors()
	g.buildHazardSteps()
	g.drawOnsetAndDiagnosis()
	g.drawDeath()
	return g.drawRecordWindow()
}

// drawBaseline draws what is fixed at birth: sex, frailty, family history, the BMI
// trajectory, height and PCOS; it clears the previous subject's life.
func (g *gen) drawBaseline() {
	m := g.m
	g.birth = g.drawBirth()
	g.male = g.u01() < 0.49
	g.u = m.FrailtySD*g.r.NormFloat64() - m.FrailtySD*m.FrailtySD/2
	g.fam = g.u01() < 0.22
	g.bmiBase = clamp(22.5+3.2*g.r.NormFloat64(), 17, 42)
	g.bmiSlope = clamp(0.11+0.07*g.r.NormFloat64(), -0.05, 0.35)
	if g.male {
		g.height = 1.76 + 0.07*g.r.NormFloat64()
	} else {
		g.height = 1.63 + 0.065*g.r.NormFloat64()
	}
	g.htnT, g.prediabT, g.statinT, g.gdmT, g.pcosT = never, never, never, never, never
	g.pregs, g.pregGDM, g.changes = g.pregs[:0], g.pregGDM[:0], g.changes[:0]
	g.segs, g.obeseFrom = g.segs[:0], g.obeseFrom[:0]
	if !g.male && g.u01() < 0.08 {
		g.pcosT = g.birth + int64((14+14*g.u01())*float64(year))
		g.changes = append(g.changes, change{g.pcosT, fPCOS, 1})
	}
	g.pcosCodable = g.u01() < 0.65
}

// lifeYear is one year of life as the risk factors see it: its start t0, the age a at its
// middle and the BMI b then.
type lifeYear struct {
	t0   int64
	a, b float64
}

// on is 1 when t has passed by the start of the year, else 0.
func (y lifeYear) on(t int64) float64 {
	if t <= y.t0 {
		return 1
	}
	return 0
}

// bit is 1 for true, 0 for false.
func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// evolveRiskFactors walks the life year by year (to age 106 or the cut-off), recording in
// g.changes when the BMI class, hypertension, prediabetes, statins and gestational diabetes
// begin.
func (g *gen) evolveRiskFactors() {
	cls, nextPreg := 0, int64(0)
	for k := 0; k < 106; k++ {
		t0 := g.birth + int64(k)*year
		if t0 > CutoffTime {
			break
		}
		a := float64(k) + 0.5
		y := lifeYear{t0: t0, a: a, b: g.bmiAt(a)}
		c := g.bmiClass(y, &cls)
		g.maybeHypertension(y)
		g.maybePrediabetes(y)
		g.maybeStatin(y)
		if !g.male && a >= 16 && a < 46 && t0 >= nextPreg {
			g.maybePregnancy(y, c, &nextPreg)
		}
	}
}

// bmiClass is the adult BMI class of the year (0 normal, 1 overweight, 2 obese); a change
// from *cls is recorded at a random time in the year and becomes *cls.
func (g *gen) bmiClass(y lifeYear, cls *int) int {
	c := 0
	if y.a >= 18 {
		if y.b >= 30 {
			c = 2
		} else if y.b >= 25 {
			c = 1
		}
	}
	if c != *cls {
		t := y.t0 + int64(g.u01()*float64(year))
		g.changes = append(g.changes, change{t, fBMI, int8(c)})
		if (c == 2) != (*cls == 2) {
			g.obeseFrom = append(g.obeseFrom, t)
		}
		*cls = c
	}
	return c
}

// startFactor records that factor f begins at a random time in the year.
func (g *gen) startFactor(y lifeYear, f int8) int64 {
	t := y.t0 + int64(g.u01()*float64(year))
	g.changes = append(g.changes, change{t, f, 1})
	return t
}

func (g *gen) maybeHypertension(y lifeYear) {
	if g.htnT != never || y.a < 18 {
		return
	}
	h := math.Exp(-8.6 + 0.08*y.a + 0.09*(y.b-25) + 0.3*bit(g.male))
	if g.u01() < -math.Expm1(-h) {
		g.htnT = g.startFactor(y, fHTN)
	}
}

func (g *gen) maybePrediabetes(y lifeYear) {
	if g.prediabT != never || y.a < 20 {
		return
	}
	h := math.Exp(-8.0 + 0.06*y.a + 0.12*(y.b-25) + 0.4*bit(g.fam) + 0.6*g.u + 0.8*y.on(g.gdmT) + 0.5*y.on(g.pcosT))
	if g.u01() < -math.Expm1(-h) {
		g.prediabT = g.startFactor(y, fPrediab)
	}
}

func (g *gen) maybeStatin(y lifeYear) {
	if g.statinT != never || y.a < 40 {
		return
	}
	h := math.Exp(-6.4 + 0.05*y.a + 1.0*y.on(g.htnT) + 0.7*y.on(g.prediabT) + 0.4*bit(g.male))
	if g.u01() < -math.Expm1(-h) {
		g.statinT = g.startFactor(y, fStatin)
	}
}

// maybePregnancy draws a pregnancy in a woman's fertile year (BMI class c) and whether it
// brings gestational diabetes; the next cannot start before *nextPreg.
func (g *gen) maybePregnancy(y lifeYear, c int, nextPreg *int64) {
	a := y.a
	if g.u01() >= 0.11*math.Exp(-0.5*((a-30)/6)*((a-30)/6)) {
		return
	}
	ps := y.t0 + int64(g.u01()*float64(year))
	p := 0.035 * math.Exp(0.5*g.u)
	if c == 2 {
		p *= 2.5
	} else if c == 1 {
		p *= 1.4
	}
	if a > 35 {
		p *= 1.5
	}
	gdm := g.u01() < p
	g.pregs = append(g.pregs, ps)
	g.pregGDM = append(g.pregGDM, gdm)
	if gdm && g.gdmT == never {
		g.gdmT = ps + 27*week
		g.changes = append(g.changes, change{g.gdmT, fGDM, 1})
	}
	*nextPreg = ps + year*3/2
}

// buildHazardSteps turns g.changes into g.segs, the log hazard multiplier as a step function
// of time from birth.
func (g *gen) buildHazardSteps() {
	m := g.m
	sort.Slice(g.changes, func(i, j int) bool { return g.changes[i].t < g.changes[j].t })
	base := g.u
	if g.male {
		base += m.Betas[BetaMale]
	}
	if g.fam {
		base += m.Betas[BetaFamilyHistory]
	}
	var st [nFactors]int8
	g.segs = append(g.segs, segment{g.birth, g.logMultiplier(base, &st)})
	for _, c := range g.changes {
		st[c.factor] = c.val
		x := g.logMultiplier(base, &st)
		last := &g.segs[len(g.segs)-1]
		switch {
		case x == last.m:
		case c.t <= last.t:
			last.m = x
		default:
			g.segs = append(g.segs, segment{c.t, x})
		}
	}
}

// logMultiplier is base plus the betas of the risk factors in state st.
func (g *gen) logMultiplier(base float64, st *[nFactors]int8) float64 {
	m := g.m
	x := base
	switch st[fBMI] {
	case 1:
		x += m.Betas[BetaOverweight]
	case 2:
		x += m.Betas[BetaObese]
	}
	for f := fHTN; f < nFactors; f++ {
		if st[f] != 0 {
			x += g.beta[f]
		}
	}
	return x
}

// drawOnsetAndDiagnosis draws the onset by inverting the cumulative hazard over g.segs, and
// the diagnosis after an exponential delay (a morning appointment the day after).
func (g *gen) drawOnsetAndDiagnosis() {
	m := g.m
	g.onset, g.diag = never, never
	e := g.r.ExpFloat64()
	for i, s := range g.segs {
		a1, a2 := g.age(s.t), 120.0
		if i+1 < len(g.segs) {
			a2 = g.age(g.segs[i+1].t)
		}
		a, used, ok := m.invert(a1, a2, s.m, e)
		if ok {
			g.onset = g.birth + int64(a*float64(year))
			break
		}
		e -= used
	}
	if g.onset != never {
		d := g.onset + int64(g.r.ExpFloat64()*m.DelayMeanYears*float64(year))
		d = (data.FloorDiv(d, day)+1)*day + 8*hour + int64(g.r.IntN(60))*(10*60*1_000_000)
		g.diag = d
	}
}

// drawDeath draws death from Gompertz mortality, raised after diagnosis, plus a constant
// background.
func (g *gen) drawDeath() {
	m := g.m
	A, B := m.GompertzA, m.GompertzB
	aD := math.Inf(1)
	if g.diag != never {
		aD = g.age(g.diag)
	}
	e := g.r.ExpFloat64()
	ad := math.Log1p(e*B/A) / B
	if ad > aD {
		e -= A / B * math.Expm1(B*aD)
		ad = math.Log(math.Exp(B*aD)+e*B/(A*m.DiabetesMortality)) / B
	}
	ad = math.Min(ad, g.r.ExpFloat64()/m.BackgroundMortality)
	g.death = data.FloorDiv(g.birth+int64(ad*float64(year)), day) * day
	g.lifeEnd = min(g.death, CutoffTime)
}

// drawRecordWindow draws registration and transfer out; false when the life overlaps the
// electronic record by less than 60 days.
func (g *gen) drawRecordWindow() bool {
	lo := max(g.birth, systemStart)
	if g.lifeEnd-lo < 60*day {
		return false
	}
	span := g.lifeEnd - lo
	if g.u01() < 0.4 {
		g.reg = lo + int64(g.u01()*float64(min(span/2, 60*day)))
	} else {
		f := g.u01()
		g.reg = lo + int64(f*f*0.95*float64(span))
	}
	g.reg = data.FloorDiv(g.reg, day) * day
	g.end = g.lifeEnd
	if x := data.FloorDiv(g.reg+int64(g.r.ExpFloat64()*45*float64(year)), day) * day; x < g.lifeEnd {
		g.end = max(x, g.reg+30*day) // transferred out
	}
	return true
}

func (g *gen) obeseAt(t int64) bool {
	on := false
	for _, x := range g.obeseFrom {
		if x > t {
			break
		}
		on = !on
	}
	return on
}

// generate simulates subject index i and returns its events and truth.
func (g *gen) generate(seed int64, i int, id int64) ([]data.Event, oracleSubject) {
	g.pcg.Seed(splitmix(uint64(seed)), splitmix(uint64(i)^0xD1B54A32D192ED03))
	for tries := 0; ; tries++ {
		if g.simulateLife() || tries > 1000 {
			break
		}
	}
	g.ev = g.ev[:0]
	g.record()
	// Stable: events at one time keep the order of generation. Sorting here, on the worker,
	// leaves the writer's own sort a sortedness check.
	slices.SortStableFunc(g.ev, func(x, y data.Event) int { return cmp.Compare(x.Time, y.Time) })
	out := make([]data.Event, len(g.ev))
	copy(out, g.ev)
	o := oracleSubject{id: id, birth: g.birth, male: g.male, onset: g.onset, diag: g.diag, frailty: g.u,
		regStart: g.reg, recEnd: g.end, death: never}
	if o.onset >= g.lifeEnd {
		o.onset = never
	}
	if o.diag >= g.lifeEnd {
		o.diag = never
	}
	o.diagnosedInRecord = o.diag < g.end
	if g.death <= g.end {
		o.death = g.death
	}
	return out, o
}

func (g *gen) either(sn, icd int32) int32 {
	if g.r.IntN(2) == 0 {
		return sn
	}
	return icd
}

// record writes the observed record of the simulated life into g.ev.
func (g *gen) record() {
	v, sp := g.v, &g.v.sp
	if g.male {
		g.emit(data.StaticTime, sp.sexM, nan)
	} else {
		g.emit(data.StaticTime, sp.sexF, nan)
	}
	g.emit(g.birth, sp.birth, nan)
	// per-subject care habits
	g.activity = math.Exp(0.5*g.r.NormFloat64() - 0.125)
	g.htnCoded, g.prediabCoded, g.famCoded, g.pcosCoded = false, false, false, false
	g.antihyp = sp.antihyp[g.r.IntN(len(sp.antihyp))]
	g.statin = sp.statins[g.r.IntN(len(sp.statins))]
	switch u := g.u01(); {
	case u < 0.18:
		g.smoking = sp.smoker
	case u < 0.45:
		g.smoking = sp.exSmoker
	default:
		g.smoking = sp.never
	}
	for c := range v.clusters {
		g.favN[c] = 0
		mul := math.Exp(0.9*g.r.NormFloat64() - 0.405)
		if g.male {
			mul *= v.clusters[c].maleMul
		} else {
			mul *= v.clusters[c].femaleMul
		}
		for b := 0; b < 3; b++ {
			w := v.clusters[c].weight[b] * mul
			if c > 0 {
				w += g.clusterCum[b][c-1]
			}
			g.clusterCum[b][c] = w
		}
	}
	reg := g.visitTime(g.reg)
	if reg < g.reg {
		reg = g.reg
	}
	if reg < g.end {
		g.emit(reg, sp.registration, nan)
		if g.age(reg) >= 16 {
			g.emit(reg, g.smoking, nan)
			g.measureBMI(reg)
			if g.htnT <= reg && g.u01() < 0.6 {
				g.emit(reg, g.either(sp.htnSN, sp.htnICD), nan)
				g.htnCoded = true
			}
		}
	}
	if g.diag < g.reg {
		g.emit(g.diag, sp.t2dSN, nan) // past history, backdated to the diagnosis
	}
	g.generalVisits()
	g.pregnancies()
	g.immunisations()
	if g.diag < g.end {
		g.diabetesCare()
	}
	if g.death <= g.end {
		g.emit(g.death, sp.death, nan)
	}
}

func (g *gen) baseRate(a float64) float64 {
	switch {
	case a < 1:
		return 7
	case a < 5:
		return 3.5
	case a < 16:
		return 1.8
	case a < 45:
		if g.male {
			return 1.6
		}
		return 3.2
	case a < 65:
		return 3.2
	case a < 75:
		return 5
	case a < 85:
		return 7
	}
	return 9
}

func (g *gen) generalVisits() {
	for t0 := g.reg; t0 < g.end; t0 += year {
		t1 := min(t0+year, g.end)
		mid := t0 + (t1-t0)/2
		a := g.age(mid)
		rate := g.baseRate(a) * g.activity
		if g.htnCoded {
			rate += 1.2
		}
		if g.obeseAt(mid) {
			rate += 0.8
		}
		if g.diag <= mid {
			rate += 2
		}
		n := g.poisson(rate * float64(t1-t0) / float64(year))
		ts := g.timesBuf[:0]
		for i := 0; i < n; i++ {
			ts = append(ts, g.visitTime(t0+int64(g.u01()*float64(t1-t0))))
		}
		slicesSort(ts)
		g.timesBuf = ts
		for _, t := range ts {
			if t >= g.reg && t < g.end {
				g.visit(t)
			}
		}
	}
}

func slicesSort(ts []int64) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j] < ts[j-1]; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

func (g *gen) pickCluster(band int) int {
	cum := g.clusterCum[band]
	u := g.u01() * cum[len(cum)-1]
	for i, c := range cum {
		if u < c {
			return i
		}
	}
	return len(cum) - 1
}

func (g *gen) labValue(l *lab) float32 {
	return round(clamp(l.mean+l.sd*g.r.NormFloat64(), l.lo, l.hi), l.precision)
}

func (g *gen) measureBMI(t int64) {
	a := g.age(t)
	b := g.bmiAt(a) + 0.7*g.r.NormFloat64()
	g.emit(t, g.v.sp.bmi, round(b, 0.1))
	if a >= 18 {
		g.emit(t, g.v.sp.weight, round(b*g.height*g.height, 0.1))
	}
	if b >= 30 && a >= 18 && g.u01() < 0.3 {
		g.emit(t, g.either(g.v.sp.obesitySN, g.v.sp.obesityICD), nan)
	}
}

func (g *gen) hba1c(t int64) float64 {
	switch {
	case t >= g.onset:
		p := 1.0
		if g.diag > g.onset && t < g.diag {
			p = float64(t-g.onset) / float64(g.diag-g.onset)
		}
		return clamp(45+11*p+4*g.r.NormFloat64(), 38, 110)
	case t >= g.prediabT:
		return clamp(43.5+2*g.r.NormFloat64(), 39, 47.9)
	}
	return clamp(34+0.06*(g.age(t)-40)+3*g.r.NormFloat64(), 24, 46)
}

// visit writes one general-practice contact at t: the codes of a clinical cluster, then for
// adults the routine care their risk factors call for.
func (g *gen) visit(t int64) {
	a := g.age(t)
	g.clusterContact(t, a)
	if a < 18 {
		if a < 6 && g.u01() < 0.1 {
			g.measureBMI(t)
		}
		return
	}
	htn := g.htnT <= t
	g.bloodPressure(t, a, htn)
	g.routineCare(t)
	statin := g.lipids(t, a)
	if t < g.diag && a >= 25 {
		g.diabetesScreen(t, a, htn, statin)
	}
	if g.fam && !g.famCoded && g.u01() < 0.04 {
		g.emit(t, g.either(g.v.sp.famSN, g.v.sp.famICD), nan)
		g.famCoded = true
	}
	if g.pcosT <= t && g.pcosCodable && !g.pcosCoded && g.u01() < 0.08 {
		g.emit(t, g.either(g.v.sp.pcosSN, g.v.sp.pcosICD), nan)
		g.pcosCoded = true
	}
}

// clusterContact writes what brought the subject in: one to three distinct codes of a
// cluster chosen by age band (often the subject's favourites), maybe a drug and a lab.
func (g *gen) clusterContact(t int64, a float64) {
	band := 1
	if a < 16 {
		band = 0
	} else if a >= 65 {
		band = 2
	}
	ci := g.pickCluster(band)
	c := &g.v.clusters[ci]
	nc := 1
	if g.u01() < 0.45 {
		nc++
		if g.u01() < 0.3 {
			nc++
		}
	}
	first := len(g.ev)
	for j := 0; j < nc; j++ {
		code := g.clusterCode(ci)
		if !slices.ContainsFunc(g.ev[first:], func(e data.Event) bool { return e.Code == code }) {
			g.emit(t, code, nan)
		}
	}
	if len(c.drugs.ids) > 0 && g.u01() < c.drugProb {
		g.emit(t, c.drugs.sample(g.r), nan)
	}
	if len(c.labs) > 0 && g.u01() < c.labProb {
		l := &c.labs[g.r.IntN(len(c.labs))]
		g.emit(t, l.id, g.labValue(l))
	}
}

// clusterCode draws a condition of cluster ci: one of the subject's up to four favourites
// of the cluster, or a fresh draw that may become one.
func (g *gen) clusterCode(ci int) int32 {
	n := g.favN[ci]
	if n > 0 && g.u01() < 0.3 {
		return g.fav[ci][g.r.IntN(n)]
	}
	code := g.v.clusters[ci].cond.sample(g.r)
	if n < 4 {
		g.fav[ci][n] = code
		g.favN[ci]++
	} else if g.u01() < 0.2 {
		g.fav[ci][g.r.IntN(4)] = code
	}
	return code
}

// bloodPressure measures an adult's blood pressure now and then (more often with
// hypertension), which may get hypertension coded.
func (g *gen) bloodPressure(t int64, a float64, htn bool) {
	sp := &g.v.sp
	pBP := 0.08
	if htn {
		pBP = 0.35
	}
	if g.u01() >= pBP {
		return
	}
	sbp := 118 + 0.45*(a-40) + 0.8*(g.bmiAt(a)-25) + 10*g.r.NormFloat64()
	if htn {
		sbp += 20
		if g.htnCoded {
			sbp -= 9
		}
	}
	g.emit(t, sp.sbp, round(clamp(sbp, 85, 230), 1))
	g.emit(t, sp.dbp, round(clamp(0.5*sbp+18+6*g.r.NormFloat64(), 45, 130), 1))
	if htn && !g.htnCoded && sbp >= 140 && g.u01() < 0.6 {
		g.emit(t, g.either(sp.htnSN, sp.htnICD), nan)
		g.htnCoded = true
	}
}

// routineCare writes an adult's occasional BMI and smoking status, and the antihypertensive
// and recoded hypertension of a coded hypertensive.
func (g *gen) routineCare(t int64) {
	sp := &g.v.sp
	if g.u01() < 0.06 {
		g.measureBMI(t)
	}
	if g.u01() < 0.03 {
		g.emit(t, g.smoking, nan)
	}
	if g.htnCoded {
		if g.u01() < 0.45 {
			g.emit(t, g.antihyp, nan)
		}
		if g.u01() < 0.05 {
			g.emit(t, g.either(sp.htnSN, sp.htnICD), nan)
		}
	}
}

// lipids writes the statin and cholesterol tests of a subject on statins, or an occasional
// cholesterol test from 40; it reports whether the subject is on statins.
func (g *gen) lipids(t int64, a float64) bool {
	sp := &g.v.sp
	statin := g.statinT <= t
	if statin {
		if g.u01() < 0.4 {
			g.emit(t, g.statin, nan)
		}
		if g.u01() < 0.08 {
			g.emit(t, sp.chol, round(clamp(4.2+0.8*g.r.NormFloat64(), 2, 9), 0.1))
			g.emit(t, sp.ldl, round(clamp(2.2+0.6*g.r.NormFloat64(), 0.8, 6), 0.1))
		}
	} else if a >= 40 && g.u01() < 0.02 {
		g.emit(t, sp.chol, round(clamp(5.3+0.9*g.r.NormFloat64(), 2.5, 10), 0.1))
	}
	return statin
}

// diabetesScreen may test the HbA1c of an undiagnosed adult (more likely with risk factors or
// a latent onset), coding prediabetes from it, and writes the hints of a latent onset.
func (g *gen) diabetesScreen(t int64, a float64, htn, statin bool) {
	sp := &g.v.sp
	if g.u01() < g.screenProbability(t, a, htn, statin) {
		h := g.hba1c(t)
		g.emit(t, sp.hba1c, round(h, 1))
		if h >= 42 && h < 48 && !g.prediabCoded && g.u01() < 0.7 {
			g.emit(t, g.either(sp.prediabSN, sp.prediabICD), nan)
			g.prediabCoded = true
		}
		if g.u01() < 0.15 {
			f := 5.0 + (h-36)*0.12 + 0.4*g.r.NormFloat64()
			g.emit(t, sp.fpg, round(clamp(f, 3.5, 20), 0.1))
		}
	}
	if t >= g.onset && g.u01() < 0.12 {
		g.emit(t, sp.hints[g.r.IntN(len(sp.hints))], nan)
	}
}

// screenProbability is the chance that a visit at t tests the HbA1c.
func (g *gen) screenProbability(t int64, a float64, htn, statin bool) float64 {
	p := 0.012
	if a >= 40 {
		p += 0.02
	}
	if g.obeseAt(t) {
		p += 0.04
	}
	if htn {
		p += 0.03
	}
	if statin {
		p += 0.04
	}
	if g.prediabCoded {
		p += 0.12
	}
	if g.fam {
		p += 0.02
	}
	if t >= g.onset {
		p += 0.08
	}
	return p
}

func (g *gen) in(t int64) bool { return t >= g.reg && t < g.end }

func (g *gen) pregnancies() {
	sp := &g.v.sp
	pc := &g.v.clusters[g.v.pregnant]
	for k, ps := range g.pregs {
		gdm := g.pregGDM[k]
		at := func(w int64) int64 { return g.visitTime(ps + w*week + int64(g.r.IntN(7))*day) }
		if t := at(8); g.in(t) {
			g.emit(t, pc.cond.ids[0], nan) // Pregnancy
			g.emit(t, pc.cond.ids[1], nan) // Supervision of normal pregnancy
			g.emit(t, pc.drugs.ids[0], nan)
		}
		for _, w := range []int64{16, 24, 28, 32, 36} {
			t := at(w)
			if !g.in(t) {
				continue
			}
			sbp := 112 + 10*g.r.NormFloat64()
			g.emit(t, sp.sbp, round(sbp, 1))
			g.emit(t, sp.dbp, round(0.5*sbp+16+5*g.r.NormFloat64(), 1))
			if g.u01() < 0.6 {
				g.emit(t, pc.cond.sample(g.r), nan)
			}
			if g.u01() < 0.5 {
				l := &pc.labs[0]
				g.emit(t, l.id, round(float64(w)+2*g.r.NormFloat64(), 1))
			}
			if gdm && w == 28 {
				g.emit(t, sp.fpg, round(clamp(5.8+0.6*g.r.NormFloat64(), 5.1, 9), 0.1))
				g.emit(t, sp.gdmICD, nan)
				g.emit(t, sp.gdmSN, nan)
			} else if gdm && w > 28 && g.u01() < 0.5 {
				g.emit(t, g.either(sp.gdmSN, sp.gdmICD), nan)
			}
		}
		if t := at(40); g.in(t) {
			g.emit(t, pc.cond.ids[3], nan) // Single spontaneous delivery
			if g.u01() < 0.5 {
				g.emit(t, pc.cond.ids[2], nan)
			}
		}
		if t := at(46); g.in(t) && g.u01() < 0.7 {
			g.emit(t, pc.cond.sample(g.r), nan)
		}
		if t := at(53); gdm && g.in(t) && t < g.diag && g.u01() < 0.7 {
			g.emit(t, sp.hba1c, round(g.hba1c(t), 1))
		}
	}
}

var immunisationSchedule = []struct {
	ageDays int64
	which   []int
}{{56, []int{0, 2, 3}}, {84, []int{0, 1, 3}}, {112, []int{0, 2}}, {365, []int{1, 2, 4}}, {1220, []int{4, 5}},
	{4400, []int{6}}}

func (g *gen) immunisations() {
	sp := &g.v.sp
	for _, s := range immunisationSchedule {
		t := g.visitTime(g.birth + (s.ageDays+int64(g.r.IntN(21)))*day)
		if !g.in(t) || g.u01() > 0.93 {
			continue
		}
		for _, w := range s.which {
			g.emit(t, sp.immunisations[w], nan)
		}
	}
}

// repeats issues a repeat prescription from start every interval until the record ends.
func (g *gen) repeats(code int32, start, interval int64, p float64) {
	for t := max(start, g.reg); t < g.end; t += interval + int64(g.r.IntN(7)-3)*day {
		if g.u01() < p {
			if tv := g.visitTime(t); tv >= g.diag && g.in(tv) {
				g.emit(tv, code, nan)
			}
		}
	}
}

// diabetesCare writes what follows a type 2 diabetes diagnosis at g.diag.
func (g *gen) diabetesCare() {
	sp := &g.v.sp
	d := g.diag
	if d >= g.reg { // a diagnosed-before-registration subject already has the backdated code
		switch u := g.u01(); {
		case u < 0.5:
			g.emit(d, sp.t2dSN, nan)
			g.emit(d, sp.t2dICD, nan)
		case u < 0.75:
			g.emit(d, sp.t2dSN, nan)
		case u < 0.9:
			g.emit(d, sp.t2dICD, nan)
		default:
			g.emit(d, sp.t2dICD65, nan)
		}
		g.emit(d, sp.hba1c, round(clamp(58+10*g.r.ExpFloat64()+3*g.r.NormFloat64(), 48, 130), 1))
		if g.u01() < 0.5 {
			g.emit(d, sp.dietAdv, nan)
		}
		if g.u01() < 0.4 {
			g.emit(d, sp.diabEducation, nan)
		}
	}
	interval := 56 * day
	if g.u01() < 0.15 {
		interval = 28 * day
	}
	if g.u01() < 0.9 {
		g.repeats(sp.metformin, d+int64(1+g.r.IntN(45))*day, interval, 0.93)
	}
	if t2 := d + int64(g.r.ExpFloat64()*6*float64(year)); t2 < g.end {
		g.repeats(sp.secondLine[g.r.IntN(len(sp.secondLine))], t2, interval, 0.9)
	}
	if t3 := d + int64(g.r.ExpFloat64()*20*float64(year)); t3 < g.end {
		g.repeats(sp.insulin, t3, 56*day, 0.9)
	}
	annual := true
	for t := d + int64(90+g.r.IntN(90))*day; t < g.end; t += int64(90+g.r.IntN(92)) * day {
		tv := g.visitTime(t)
		if !g.in(tv) || tv < d {
			annual = !annual
			continue
		}
		ys := float64(tv-d) / float64(year)
		g.emit(tv, sp.hba1c, round(clamp(54+0.6*ys+8*g.r.NormFloat64(), 38, 130), 1))
		if g.u01() < 0.6 {
			sbp := 132 + 12*g.r.NormFloat64()
			g.emit(tv, sp.sbp, round(sbp, 1))
			g.emit(tv, sp.dbp, round(0.5*sbp+14+6*g.r.NormFloat64(), 1))
		}
		if g.u01() < 0.4 {
			g.measureBMI(tv)
		}
		if annual {
			g.emit(tv, sp.diabReview, nan)
			if g.u01() < 0.85 {
				if te := g.visitTime(tv + int64(g.r.IntN(60))*day); g.in(te) {
					g.emit(te, sp.eyeScreen, nan)
				}
			}
			if g.u01() < 0.8 {
				g.emit(tv, sp.footCheck, nan)
			}
			g.emit(tv, sp.acr, round(clamp(math.Exp(0.5+0.9*g.r.NormFloat64()+0.05*ys), 0.1, 300), 0.1))
			g.emit(tv, sp.egfr, round(clamp(100-0.8*(g.age(tv)-30)-1.2*ys+12*g.r.NormFloat64(), 5, 130), 1))
			if g.u01() < 0.7 {
				g.emit(tv, sp.chol, round(clamp(4.3+0.8*g.r.NormFloat64(), 2, 9), 0.1))
			}
			if g.u01() < 0.3 {
				g.emit(tv, g.either(sp.t2dSN, sp.t2dICD), nan)
			}
			if g.u01() < 0.05*(1+ys/5) {
				g.emit(tv, sp.t2dComplications[g.r.IntN(len(sp.t2dComplications))], nan)
			}
		}
		annual = !annual
	}
}
