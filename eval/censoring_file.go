package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/medseq/medseq/data"
)

// Policies for negatives censored within the required follow-up (CensoringRow.Policy).
const (
	CensoringPolicyKeep     = "keep"      // kept as negatives (the follow-up-0 rows)
	CensoringPolicyDrop     = "drop"      // dropped, as data cohort --follow-up does
	CensoringPolicyDropLost = "drop-lost" // dropped when lost to follow-up; those censored by death stay negatives
)

// CensoringSensitivity is the censoring sensitivity of one model on one cohort, the file
// `medseq eval censoring --out FILE.json` writes (WriteCensoringSensitivity, filled by package
// study) and `eval report --censoring FILE` reads (ReadCensoringSensitivity) to show the panel:
// the labels rebuilt with follow-up 0 and scored once, and each variant's metrics (the same
// model's numbers when the cohort requires 0, 6 months, 1 or 2 years of follow-up of its
// negatives, with censored negatives dropped or kept). Every figure is computed on the rows the
// variant keeps. eval owns the format: no other package declares its fields.
type CensoringSensitivity struct {
	// File is where the report read it (ReadCensoringSensitivity); it is in the report's
	// metrics.json, never in the file itself.
	File      string `json:"file,omitempty"`
	Model     string `json:"model"`
	ModelKind string `json:"model_kind"`
	ModelRun  string `json:"model_run_id"`
	Dataset   string `json:"dataset"`
	Cohort    string `json:"cohort"`
	// CohortFollowUp is the follow-up the model's cohort required of negatives ("" for a cohort
	// from external labels).
	CohortFollowUp string `json:"cohort_follow_up"`
	// Rebuilt: the labels were rebuilt from the cohort's rules with follow-up 0; false for a
	// cohort from external labels, used as it is.
	Rebuilt bool   `json:"rebuilt"`
	Split   string `json:"split"`
	// SplitFromCohort counts rebuilt labels whose subject took the model's cohort's split
	// instead of the rebuilt one.
	SplitFromCohort int     `json:"split_from_cohort"`
	Calibration     string  `json:"calibration"` // how scores were calibrated (the model's method, or "none")
	Threshold       float64 `json:"threshold"`   // the model's operating point, for eval's threshold metrics
	Bootstrap       int     `json:"bootstrap"`   // AUROC interval resamples
	// Variants: the reference (follow-up 0) first, then each follow-up with drop and drop-lost.
	Variants []CensoringRow `json:"variants"`
	Warnings []string       `json:"warnings,omitempty"`
}

// CensoringRow is one follow-up requirement and policy of a CensoringSensitivity (a variant):
// the rows it keeps and the model's numbers on them.
type CensoringRow struct {
	FollowUp       string `json:"follow_up"`    // required follow-up of negatives ("0", "182d", "365d", ...)
	FollowUpMicros int64  `json:"follow_up_us"` // the same in microseconds
	Policy         string `json:"policy"`       // CensoringPolicyKeep, CensoringPolicyDrop or CensoringPolicyDropLost
	// Censored counts negatives censored within the follow-up (no event, followed less), by
	// censoring reason (death, end_of_record, dataset_end); Dropped those of them the policy
	// left out.
	Censored map[string]int `json:"censored"`
	Dropped  int            `json:"dropped"`
	// MatchesCohort marks the variant whose rows the model's own cohort would hold (drop at the
	// cohort's follow-up).
	MatchesCohort bool             `json:"matches_cohort,omitempty"`
	Metrics       CensoringMetrics `json:"metrics"`
	// Delta is Metrics minus the reference's (follow-up 0); nil on the reference.
	Delta *CensoringDelta `json:"delta,omitempty"`
}

// CensoringMetrics are a variant's numbers, from eval on its rows: AUROC with its bootstrap
// interval over subjects, prevalence, and calibration of the calibrated probabilities. A figure
// that cannot be computed (one class only, a logistic fit that diverges) is null.
type CensoringMetrics struct {
	Labels    int `json:"labels"`
	Subjects  int `json:"subjects"`
	Positives int `json:"positives"`
	Negatives int `json:"negatives"`
	AUROC     Num `json:"auroc"`
	AUROCLow  Num `json:"auroc_ci_low"`
	AUROCHigh Num `json:"auroc_ci_high"`
	// Prevalence is the observed rate of positives; MeanPredicted the mean calibrated
	// probability; CalibrationInTheLarge their difference, observed minus predicted (below 0:
	// the model over-predicts on these rows).
	Prevalence            Num `json:"prevalence"`
	MeanPredicted         Num `json:"mean_predicted"`
	CalibrationInTheLarge Num `json:"calibration_in_the_large"`
	// Slope is eval's calibration slope (logistic regression of the label on logit(p); 1 when
	// calibrated) and ECE its expected calibration error over ten uniform bins.
	Slope Num `json:"calibration_slope"`
	ECE   Num `json:"ece"`
}

// CensoringDelta is how far a variant moves the numbers from the reference.
type CensoringDelta struct {
	AUROC                 Num `json:"auroc"`
	Prevalence            Num `json:"prevalence"`
	CalibrationInTheLarge Num `json:"calibration_in_the_large"`
	Slope                 Num `json:"calibration_slope"`
	ECE                   Num `json:"ece"`
}

// ErrCensoringFile marks a file that is not a censoring-sensitivity result.
var ErrCensoringFile = errors.New("not a censoring-sensitivity result (medseq eval censoring --out FILE.json)")

// ReadCensoringSensitivity reads the JSON medseq eval censoring wrote (WriteCensoringSensitivity)
// and sets File to path.
func ReadCensoringSensitivity(path string) (*CensoringSensitivity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("censoring sensitivity: %w", err)
	}
	var c CensoringSensitivity
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("censoring sensitivity %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("censoring sensitivity %s: %w", path, err)
	}
	c.File = path
	return &c, nil
}

// WriteCensoringSensitivity writes c to path as indented JSON, atomically (the previous file
// stays whole on a failure). It refuses a result ReadCensoringSensitivity would refuse; c.File
// is not written.
func WriteCensoringSensitivity(path string, c *CensoringSensitivity) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("censoring sensitivity %s: %w", path, err)
	}
	out := *c
	out.File = ""
	buf, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return fmt.Errorf("censoring sensitivity %s: %w", path, err)
	}
	return data.WriteFileAtomic(path, append(buf, '\n'))
}

// validate checks that c is a censoring-sensitivity result: variants, each with its follow-up
// and one of the policies.
func (c *CensoringSensitivity) validate() error {
	if len(c.Variants) == 0 {
		return fmt.Errorf("no variants: %w", ErrCensoringFile)
	}
	for i, v := range c.Variants {
		switch {
		case v.Policy == "" || v.FollowUp == "":
			return fmt.Errorf("variant %d has no follow_up or policy: %w", i+1, ErrCensoringFile)
		case v.Policy != CensoringPolicyKeep && v.Policy != CensoringPolicyDrop && v.Policy != CensoringPolicyDropLost:
			return fmt.Errorf("variant %d: policy %q is not %s, %s or %s: %w", i+1, v.Policy, CensoringPolicyKeep,
				CensoringPolicyDrop, CensoringPolicyDropLost, ErrCensoringFile)
		}
	}
	return nil
}
