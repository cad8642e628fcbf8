package train

import (
	"fmt"
	"strings"

	"github.com/medseq/medseq/data"
)

// outcomeLabel names what a classifier's logit scores, for config.json's id2label: the
// cohort's target codes ("ICD10/E11 or SNOMED/44054006"), or "positive" when the cohort's
// manifest does not list them.
func outcomeLabel(c *data.Cohort) string {
	if c == nil || c.Manifest == nil {
		return "positive"
	}
	var targets []string
	switch ts := c.Manifest.Params["targets"].(type) {
	case []string:
		targets = ts
	case []any:
		for _, t := range ts {
			targets = append(targets, fmt.Sprint(t))
		}
	}
	if len(targets) == 0 {
		return "positive"
	}
	return strings.Join(targets, " or ")
}
