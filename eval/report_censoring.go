package eval

import "fmt"

// censoringWarning says when the censoring result (CensoringSensitivity, censoring_file.go) is
// of no model in the report.
func censoringWarning(c *CensoringSensitivity, models []*ModelReport) string {
	for _, m := range models {
		if m.RunID != "" && m.RunID == c.ModelRun {
			return ""
		}
	}
	return fmt.Sprintf("the censoring sensitivity %s is of model run %s (%s), not of a model in this report", c.File,
		c.ModelRun, c.Model)
}
