package synth

import (
	"math"
)

// Model holds the parameters of the generative model of type 2 diabetes onset; it is written
// as oracle/model.json. See the package documentation for the meaning of each term.
type Model struct {
	Description string `json:"description"`
	// Lambda0 is the baseline onset hazard per year at the peak age, for a subject whose
	// log multiplier is 0.
	Lambda0 float64 `json:"lambda0_per_year"`
	// AgeFunction is f(a) = -0.5*((a-AgePeak)/AgeWidth)^2, a in years.
	AgeFunction    string  `json:"age_function"`
	AgePeak        float64 `json:"age_peak_years"`
	AgeWidth       float64 `json:"age_width_years"`
	DelayMeanYears float64 `json:"diagnosis_delay_mean_years"`
	// Betas are the log hazard ratios of the risk factors (x_k in {0,1}).
	Betas     map[string]float64 `json:"betas"`
	FrailtySD float64            `json:"frailty_sd"`
	// Gompertz mortality: A*exp(B*age) per year, times DiabetesMortality after diagnosis,
	// plus a constant BackgroundMortality.
	GompertzA           float64 `json:"gompertz_a_per_year"`
	GompertzB           float64 `json:"gompertz_b_per_year"`
	DiabetesMortality   float64 `json:"diabetes_mortality_ratio"`
	BackgroundMortality float64 `json:"background_mortality_per_year"`
	TimeUnit            string  `json:"time_unit"`
	DataCutoff          string  `json:"data_cutoff"`
}

// Names of the risk factors in Model.Betas.
const (
	BetaMale          = "male"
	BetaOverweight    = "overweight"
	BetaObese         = "obese"
	BetaHypertension  = "hypertension"
	BetaPrediabetes   = "prediabetes"
	BetaGestational   = "past_gestational_diabetes"
	BetaStatin        = "statin"
	BetaPCOS          = "pcos"
	BetaFamilyHistory = "family_history"
)

// DefaultModel is the model Generate uses.
func DefaultModel() Model {
	return Model{
		Description: "Latent T2D onset O has hazard lambda(t) = lambda0 * exp(f(age(t)) + log_multiplier(t)), " +
			"log_multiplier = sum of betas over the subject's true risk-factor states at t " +
			"plus the frailty u ~ N(-sd^2/2, sd^2); " +
			"the diagnosis D = O + delay, delay ~ Exponential(mean diagnosis_delay_mean_years). " +
			"oracle/hazard.parquet holds log_multiplier as a step function of time per subject.",
		Lambda0:     0.0029,
		AgeFunction: "f(a) = -0.5*((a-age_peak)/age_width)^2",
		AgePeak:     68, AgeWidth: 15,
		DelayMeanYears: 1.25,
		Betas: map[string]float64{
			BetaMale: 0.25, BetaOverweight: 0.45, BetaObese: 1.0, BetaHypertension: 0.35, BetaPrediabetes: 1.4,
			BetaGestational: 1.1, BetaStatin: 0.25, BetaPCOS: 0.6, BetaFamilyHistory: 0.55,
		},
		FrailtySD: 0.6,
		GompertzA: 3.5e-5, GompertzB: 0.09, DiabetesMortality: 1.7, BackgroundMortality: 0.0003,
		TimeUnit:   "timestamps are microseconds since the Unix epoch (UTC); years are 365.25 days",
		DataCutoff: "2025-06-30T00:00:00Z",
	}
}

// ageIntegral is the integral of exp(f(a)) da from a1 to a2 (years).
func (m *Model) ageIntegral(a1, a2 float64) float64 {
	s := m.AgeWidth * math.Sqrt2
	return m.AgeWidth * math.Sqrt(math.Pi/2) * (math.Erf((a2-m.AgePeak)/s) - math.Erf((a1-m.AgePeak)/s))
}

// cumHazard is the onset cumulative hazard between ages a1 and a2 with a fixed log multiplier.
func (m *Model) cumHazard(a1, a2, logMult float64) float64 {
	return m.Lambda0 * math.Exp(logMult) * m.ageIntegral(a1, a2)
}

// invert returns the age a in (a1, a2] where the cumulative hazard from a1 reaches e, or
// ok=false (and the hazard used up in the segment) when it does not within the segment.
func (m *Model) invert(a1, a2, logMult, e float64) (a float64, used float64, ok bool) {
	k := m.Lambda0 * math.Exp(logMult) * m.AgeWidth * math.Sqrt(math.Pi/2)
	s := m.AgeWidth * math.Sqrt2
	z1, z2 := math.Erf((a1-m.AgePeak)/s), math.Erf((a2-m.AgePeak)/s)
	total := k * (z2 - z1)
	if e >= total {
		return 0, total, false
	}
	z := z1 + e/k
	a = m.AgePeak + s*math.Erfinv(z)
	if !(a > a1) {
		a = a1
	}
	if a > a2 {
		a = a2
	}
	return a, e, true
}
