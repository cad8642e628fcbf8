package synth

import (
	"fmt"
	"strings"

	"github.com/medseq/medseq/data"
)

// Code styles: how Generate spells codes (Config.CodeStyle).
const (
	// CodeStylePlain writes the generator's own codes: SNOMED/<id>, ICD10/E11.9,
	// ATC/A10BA02, LOINC/4548-4, MEDS_BIRTH, SEX//F.
	CodeStylePlain = "plain"
	// CodeStyleETL writes every code through ETLCode, as MEDS ETLs spell real data.
	CodeStyleETL = "etl"
)

// CodeStyles lists the accepted values of Config.CodeStyle.
var CodeStyles = []string{CodeStylePlain, CodeStyleETL}

// ETLCode spells a synthetic code as MEDS ETLs such as MEDS_transforms or meds_etl spell
// MIMIC-IV's: spaces inside and at the end, repeated slashes, dots, commas, parentheses, '%',
// '/' in units, non-ASCII letters, and codes named like a tokenizer's special tokens:
//
//	ICD10/E11.9      -> DIAGNOSIS//ICD 10//E11.9
//	SNOMED/44054006  -> CONDITION//SNOMED CT//44054006 (a trailing blank when the code ends in 3 or 7)
//	ATC/A10BA02      -> MEDICATION//START//A10BA02 Insulin Glargine 100 unit/mL
//	LOINC/4548-4     -> LAB//4548-4//<a unit: mg/dL, %, " ", "g/dL, whole blood", ...>
//	ICD10/J06.9      -> [MASK];  ICD10/J20.9 -> x[SEP]y
//
// MEDS_BIRTH, MEDS_DEATH and SEX//F are kept (the cohort's demographics rules), as is any
// other code. The rest of a code is kept, so a target prefix maps to the mapped prefix:
// ETLCode("ICD10/E11") is a prefix of ETLCode("ICD10/E11.9").
func ETLCode(c string) string {
	last := byte(0)
	if c != "" {
		last = c[len(c)-1]
	}
	switch {
	case c == "ICD10/J06.9":
		return "[MASK]"
	case c == "ICD10/J20.9":
		return "x[SEP]y"
	case strings.HasPrefix(c, "ICD10/"):
		return "DIAGNOSIS//ICD 10//" + c[len("ICD10/"):]
	case strings.HasPrefix(c, "SNOMED/"):
		s := "CONDITION//SNOMED CT//" + c[len("SNOMED/"):]
		if last == '3' || last == '7' {
			s += " " // a trailing blank, as in LAB//51498//
		}
		return s
	case strings.HasPrefix(c, "ATC/"):
		return "MEDICATION//START//" + c[len("ATC/"):] + " Insulin Glargine 100 unit/mL"
	case strings.HasPrefix(c, "LOINC/"):
		units := []string{"mg/dL", "%", " ", "g/dL, whole blood", "mmol/L (calc.)", "Größe\u00a0naïve", "100%25"}
		return "LAB//" + c[len("LOINC/"):] + "//" + units[int(last)%len(units)]
	}
	return c
}

// styleCode returns the function that spells codes in a style.
func styleCode(style string) (func(string) string, error) {
	switch style {
	case "", CodeStylePlain:
		return nil, nil
	case CodeStyleETL:
		return ETLCode, nil
	}
	return nil, fmt.Errorf("synth: unknown code style %q (want one of %s)", style, strings.Join(CodeStyles, ", "))
}

// styledVocab returns the code names and metadata spelt by f (the vocabulary's own when f is
// nil); two codes spelt alike are an error.
func styledVocab(v *vocab, f func(string) string) ([]string, []data.CodeMeta, error) {
	if f == nil {
		return v.names, v.meta, nil
	}
	names := make([]string, len(v.names))
	seen := make(map[string]string, len(v.names))
	for i, n := range v.names {
		names[i] = f(n)
		if o, dup := seen[names[i]]; dup {
			return nil, nil, fmt.Errorf("synth: codes %q and %q are both spelt %q", o, n, names[i])
		}
		seen[names[i]] = n
	}
	meta := make([]data.CodeMeta, len(v.meta))
	for i, m := range v.meta {
		meta[i] = data.CodeMeta{Code: f(m.Code), Description: m.Description}
		if m.ParentCodes != nil {
			meta[i].ParentCodes = make([]string, len(m.ParentCodes))
			for j, p := range m.ParentCodes {
				meta[i].ParentCodes[j] = f(p)
			}
		}
	}
	return names, meta, nil
}

// styleSuffix is what dataset.json's dataset_version adds for a styled dataset: nothing for
// plain codes, so plain datasets keep their bytes.
func styleSuffix(style string, styled bool) string {
	if !styled {
		return ""
	}
	return "-codes-" + style
}
