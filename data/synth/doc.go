// Package synth generates medseq's built-in dataset: a synthetic UK-flavoured primary-care
// electronic health record, written as MEDS v0.4 (`medseq data synth`), together with an
// oracle that tells the true risk of type 2 diabetes (T2D) behind every record.
//
// # Population and records
//
// Births spread over 1920–2019 (a population pyramid by decade), sex is a static row SEX//F
// or SEX//M and birth a MEDS_BIRTH event. Every subject lives a whole simulated life: risk
// factors evolve year by year, T2D onset and diagnosis follow from them (below), and death
// follows a Gompertz law (3.5e-5·exp(0.09·age) per year, ×1.7 after a T2D diagnosis, plus a
// constant 3e-4 per year). Electronic records exist from 1987; a subject is observed from
// registration (from birth or 1987 for about 40%, later for the rest: moves, immigration)
// until death (MEDS_DEATH), transfer out (about 2% a year) or the data cut-off, 2025-06-30.
// Subjects whose life does not reach the record era are redrawn.
//
// General-practice visits arrive as a Poisson process whose yearly rate rises with age
// (high in infancy, about 1.6 to 3.2 a year for young adults, 9 in the very old), with a
// per-subject activity level, and with coded hypertension, obesity and diabetes. A visit
// has one timestamp (an appointment slot between 08:00 and 18:00, or midnight for a
// date-only entry) and draws one to three codes from a clinical cluster (respiratory, ENT
// and eye, musculoskeletal, mental health, cardiovascular, dermatology, gastrointestinal,
// genitourinary, neurology, endocrine, infections, symptoms, paediatrics, frailty,
// preventive care, women's health), chosen by age band, sex and a per-subject affinity, and
// often a drug and a measurement of the same cluster. Subjects come back to codes they have
// had before. Within a cluster codes have Zipf-like weights: the real named codes first,
// then generated ones. On top come routine measurements (blood pressure, BMI and weight,
// smoking status, cholesterol, HbA1c screening), repeat prescriptions of antihypertensives
// and statins, pregnancies (antenatal visits, delivery, gestational diabetes) and the
// childhood immunisation schedule.
//
// # Codes
//
// Codes mix vocabularies: SNOMED/<sctid> (generated ids carry a valid Verhoeff check digit
// and the partition "00"), ICD10/E11.9 style, ATC/A10BA02 drugs and LOINC/4548-4 labs
// (generated LOINC numbers carry a valid mod-10 check digit) with numeric values in UK
// units (HbA1c in mmol/mol, cholesterol in mmol/L, eGFR in mL/min/1.73m²). Named codes have
// their real descriptions; generated codes have generated descriptions and, for SNOMED,
// the cluster's root concept as parent. metadata/codes.parquet lists every code with its
// description and parent codes (ICD10/E11.9 has parent ICD10/E11). The vocabulary is the
// same whatever the seed.
//
// # Type 2 diabetes
//
// A latent onset time O is drawn exactly (by inverting the cumulative hazard) from
//
//	λ(t) = λ0 · exp(f(age(t)) + m(t)),   f(a) = -½·((a - 68)/15)²,   λ0 = 0.0029/year
//	m(t) = u + Σ β_k · x_k(t)
//
// where x_k(t) are the subject's true risk-factor states at t and u ~ N(-σ²/2, σ²), σ = 0.6,
// is an unobserved frailty (ethnicity, genetics, lifestyle). The log hazard ratios β are
//
//	male 0.25, family history 0.55, overweight (BMI 25–30) 0.45, obese (BMI ≥ 30) 1.0,
//	hypertension 0.35, prediabetes 1.4, past gestational diabetes 1.1, statin 0.25, PCOS 0.6
//
// Sex, family history and frailty are fixed; BMI follows a personal trajectory (gain to 60,
// loss after 70); hypertension, prediabetes and statin treatment begin with hazards that
// rise with age and BMI (prediabetes also with family history, frailty, gestational
// diabetes and PCOS); gestational diabetes arises in pregnancies (more often in obese and
// older mothers). The diagnosis is D = O + delay, delay ~ Exponential(mean 1.25 years),
// snapped to an appointment time. About 9% of subjects are diagnosed inside their record,
// mostly between 40 and 80.
//
// The record sees the true states only imperfectly: obesity through BMI measurements (and an
// obesity code at some of them), hypertension through blood pressure readings and a
// diagnosis code once a raised reading is noticed, prediabetes through HbA1c tests (ordered
// more often for obese, hypertensive, statin-treated or already-flagged subjects) and a code
// at some raised results, family history and PCOS through codes that appear only sometimes,
// frailty never. Between O and D, visits carry hyperglycaemia hints at a modest rate
// (thirst, polyuria, fatigue, candidiasis codes, more and rising HbA1c results).
//
// From D on the record carries what a diagnosis brings: SNOMED/44054006 and/or ICD10/E11.9
// (sometimes ICD10/E11.65) exactly at D, an HbA1c in the diabetic range, metformin
// (ATC/A10BA02) repeats every 4 or 8 weeks, later second-line drugs and insulin, HbA1c
// reviews every 3–6 months, annual reviews with retinopathy screening, foot checks, urine
// ACR and eGFR, and later complication codes. No code starting with ICD10/E11 or
// SNOMED/44054006, and no ATC/A10 drug, appears before D. A subject diagnosed before
// registration has the diagnosis code backdated to D as past history.
//
// # Oracle
//
// Beside data/ and metadata/ the dataset holds oracle/:
//
//   - subjects.parquet: subject_id, birth, sex, onset_time and diagnosis_time (null unless
//     they fall before death and the cut-off), frailty u, record_start, record_end and
//     death_time (null unless the record ends in death);
//   - hazard.parquet: subject_id, time, log_multiplier: m(t) as a step function, valid from
//     time until the subject's next row;
//   - model.json: λ0, the age function, the β, σ, the delay mean and the mortality law.
//
// [LoadOracle] reads it back and [Oracle.Risk] gives the true probability that D falls in
// (t, t+horizon] given the true state at t: 1-exp(-horizon/1.25y) once the onset has
// happened, otherwise the onset hazard with m frozen at m(t) and age advancing, integrated
// against the delay distribution (monthly steps), ignoring death. No model that sees only
// the record can match it, which is what makes it a ceiling for the models medseq trains.
//
// # Determinism and speed
//
// Each subject draws from its own PCG stream seeded from (seed, subject index), so workers
// on every core generate subjects in parallel and the same seed writes the same bytes in
// every file but manifest.json; dataset.json carries no creation time. Generation and
// writing run at about 2 million events a second on two cores; the default 10 000 subjects
// make about 2 million events.
package synth
