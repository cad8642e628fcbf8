package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// CensoringSensitivity is the JSON that `medseq eval censoring --out FILE` writes (package
// study's CensoringReport), as a report reads it to show the censoring-sensitivity table: the
// same model's numbers when the cohort requires 0, 6 months, 1 or 2 years of follow-up of its
// negatives, with censored negatives dropped or kept. eval cannot import study (study uses
// eval), so the fields are read by their JSON names; fields a report does not show are
// ignored.
type CensoringSensitivity struct {
	File           string         `json:"file"` // where the report read it
	Model          string         `json:"model"`
	ModelKind      string         `json:"model_kind"`
	ModelRun       string         `json:"model_run_id"`
	Cohort         string         `json:"cohort"`
	CohortFollowUp string         `json:"cohort_follow_up"`
	Rebuilt        bool           `json:"rebuilt"`
	Split          string         `json:"split"`
	Calibration    string         `json:"calibration"`
	Bootstrap      int            `json:"bootstrap"`
	Variants       []CensoringRow `json:"variants"`
	Warnings       []string       `json:"warnings,omitempty"`
}

// CensoringRow is one follow-up requirement and policy of a CensoringSensitivity.
type CensoringRow struct {
	FollowUp       string         `json:"follow_up"`
	FollowUpMicros int64          `json:"follow_up_us"`
	Policy         string         `json:"policy"` // keep, drop or drop-lost
	Censored       map[string]int `json:"censored"`
	Dropped        int            `json:"dropped"`
	MatchesCohort  bool           `json:"matches_cohort,omitempty"`
	Metrics        struct {
		Labels                int `json:"labels"`
		Subjects              int `json:"subjects"`
		Positives             int `json:"positives"`
		Negatives             int `json:"negatives"`
		AUROC                 Num `json:"auroc"`
		AUROCLow              Num `json:"auroc_ci_low"`
		AUROCHigh             Num `json:"auroc_ci_high"`
		Prevalence            Num `json:"prevalence"`
		MeanPredicted         Num `json:"mean_predicted"`
		CalibrationInTheLarge Num `json:"calibration_in_the_large"`
		Slope                 Num `json:"calibration_slope"`
		ECE                   Num `json:"ece"`
	} `json:"metrics"`
	Delta *struct {
		AUROC      Num `json:"auroc"`
		Prevalence Num `json:"prevalence"`
	} `json:"delta,omitempty"`
}

// ErrCensoringFile marks a file that is not a censoring-sensitivity result.
var ErrCensoringFile = errors.New("not a censoring-sensitivity result (medseq eval censoring --out FILE.json)")

// ReadCensoringSensitivity reads the JSON medseq eval censoring wrote.
func ReadCensoringSensitivity(path string) (*CensoringSensitivity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("censoring sensitivity: %w", err)
	}
	var c CensoringSensitivity
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("censoring sensitivity %s: %w", path, err)
	}
	if len(c.Variants) == 0 {
		return nil, fmt.Errorf("censoring sensitivity %s: no variants: %w", path, ErrCensoringFile)
	}
	for i, v := range c.Variants {
		if v.Policy == "" || v.FollowUp == "" {
			return nil, fmt.Errorf("censoring sensitivity %s: variant %d has no follow_up or policy: %w",
				path, i+1, ErrCensoringFile)
		}
	}
	c.File = path
	return &c, nil
}

// censoringWarning says when the censoring result is of no model in the report.
func censoringWarning(c *CensoringSensitivity, models []*ModelReport) string {
	for _, m := range models {
		if m.RunID != "" && m.RunID == c.ModelRun {
			return ""
		}
	}
	return fmt.Sprintf("the censoring sensitivity %s is of model run %s (%s), not of a model in this report", c.File,
		c.ModelRun, c.Model)
}
