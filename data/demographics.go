package data

import "strings"

// Demographics are the rules that find a subject's birth and sex among its events: data
// cohort's --birth-code and --sex-prefix. The cohort builder, the models' manifests and the
// server all apply them through this type, so a history yields the same birth and sex
// offline and served.
type Demographics struct {
	BirthCodes  []string `json:"birth_codes"`
	SexPrefixes []string `json:"sex_prefixes"` // matched case-insensitively; the rest is the value
}

// DefaultDemographics are data cohort's defaults: MEDS_BIRTH, and SEX//, GENDER//, SEX/,
// GENDER/ prefixes.
func DefaultDemographics() Demographics {
	return Demographics{BirthCodes: []string{BirthCode},
		SexPrefixes: []string{SexCodePrefix, "GENDER//", "SEX/", "GENDER/"}}
}

// IsBirth reports whether code marks birth.
func (d Demographics) IsBirth(code string) bool { return contains(d.BirthCodes, code) }

// Sex reports whether code carries sex, and its value (F, M or U; ParseSex).
func (d Demographics) Sex(code string) (string, bool) {
	for _, p := range d.SexPrefixes {
		if len(code) > len(p) && strings.EqualFold(code[:len(p)], p) {
			return ParseSex(code[len(p):]), true
		}
	}
	return "", false
}

// Derive finds birth and sex among events sorted by time (static first), as the cohort
// builder does: birth is the first timed birth event (StaticTime when none), sex the value of
// the last sex code that is not unknown (SexUnknown when none).
func (d Demographics) Derive(events []Event, codes *Codes) (birth int64, sex string) {
	birth, sex = StaticTime, SexUnknown
	for _, e := range events {
		name := codes.Name(e.Code)
		if d.IsBirth(name) {
			if e.Time != StaticTime && birth == StaticTime {
				birth = e.Time
			}
			continue
		}
		if v, ok := d.Sex(name); ok && v != SexUnknown {
			sex = v
		}
	}
	return birth, sex
}
