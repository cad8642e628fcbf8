package eval

import (
	"fmt"
	"strings"

	"github.com/medseq/medseq/data"
)

// DefaultHorizons are the survival panel's horizons when none are given: 1, 2 and 5 years.
var DefaultHorizons = []int64{data.MicrosPerYear, 2 * data.MicrosPerYear, 5 * data.MicrosPerYear}

// ParseHorizons reads a comma-separated list of positive durations ("1y,2y,5y", "180d").
func ParseHorizons(s string) ([]int64, error) {
	var out []int64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		h, err := data.ParseDuration(part)
		if err != nil {
			return nil, err
		}
		if h <= 0 {
			return nil, fmt.Errorf("horizon %q: must be longer than 0", part)
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no horizons in %q", s)
	}
	return out, nil
}

// SurvivalPanel says how a report's survival figures were made, or why there are none: they
// need each evaluated row's time to event, which the cohort's labels hold
// (data.Label.EventTime). Each model's figures are in its ModelReport.Survival.
type SurvivalPanel struct {
	Horizons []string `json:"horizons"` // as durations: 1y, 2y, 5y
	// Unit is the unit of every time and horizon in the models' survival reports.
	Unit string `json:"unit"`
	// Note says why there is no survival panel; empty when there is one.
	Note string `json:"note,omitempty"`
}

// survivalUnit is the time unit of the survival figures: days.
const (
	survivalUnit   = "days"
	survivalUnitUs = data.MicrosPerDay
)

// survivalGroups is the number of predicted-risk groups: deciles when the rows hold enough
// events for each decile to have about 20, else tertiles.
func survivalGroups(events int) int {
	if events >= 200 {
		return 10
	}
	return 3
}

// buildSurvival computes every model's survival figures from its stored (calibrated)
// predictions joined to the cohort's labels by subject and prediction time.
func buildSurvival(co *data.Cohort, horizons []int64, models []*ModelReport) *SurvivalPanel {
	p := &SurvivalPanel{Unit: survivalUnit}
	days := make([]float64, len(horizons))
	for i, h := range horizons {
		p.Horizons = append(p.Horizons, data.FormatDuration(h))
		days[i] = float64(h) / float64(survivalUnitUs)
	}
	if co == nil {
		p.Note = "no cohort: the survival figures need each label's time to event, which the cohort holds " +
			"(pass --cohort)"
		return p
	}
	if !co.TimeToEventColumns {
		p.Note = co.RequireTimeToEvent().Error()
		return p
	}
	type key struct{ id, t int64 }
	index := make(map[key]*data.Label, len(co.Labels))
	for i := range co.Labels {
		l := &co.Labels[i]
		index[key{l.SubjectID, l.PredictionTime}] = l
	}
	for _, m := range models {
		var rows []SurvivalRow
		missing, unknown := 0, 0
		for _, pr := range m.stored {
			l, ok := index[key{pr.SubjectID, pr.PredictionTime}]
			switch {
			case !ok:
				missing++
				continue
			case l.EventTime == data.StaticTime:
				unknown++
				continue
			}
			t := float64(l.EventTime-l.PredictionTime) / float64(survivalUnitUs)
			rows = append(rows, SurvivalRow{Time: t, Event: l.EventObserved, Risk: pr.Score})
		}
		m.SurvivalNote = survivalRowsNote(len(m.stored), missing, unknown, co)
		if len(rows) == 0 {
			continue
		}
		events := 0
		for _, r := range rows {
			if r.Event {
				events++
			}
		}
		sr, err := Survival(rows, SurvivalOptions{Horizons: days, Groups: survivalGroups(events), Curves: true})
		if err != nil {
			m.SurvivalNote = strings.TrimSpace(m.SurvivalNote + " " + err.Error())
			continue
		}
		eventSteps(sr)
		m.Survival = sr
	}
	return p
}

// survivalRowsNote says which evaluated rows have no time to event.
func survivalRowsNote(n, missing, unknown int, co *data.Cohort) string {
	var parts []string
	if missing > 0 {
		parts = append(parts, fmt.Sprintf("%d of the %d evaluated rows are not labels of cohort %s",
			missing, n, co.Dir))
	}
	if unknown > 0 {
		parts = append(parts, fmt.Sprintf(
			"%d have no time to event (a cohort from --labels needs --target codes to time events)", unknown))
	}
	if len(parts) == 0 {
		return ""
	}
	if missing+unknown == n {
		return "no survival figures: " + strings.Join(parts, "; ")
	}
	return strings.Join(parts, "; ") + ": the survival figures leave them out"
}

// eventSteps keeps of each Kaplan–Meier curve the steps with events and the last one: S(t)
// and its band change only at events, so the curve is the same and metrics.json stays small.
func eventSteps(sr *SurvivalReport) {
	keep := func(steps []KMStep) []KMStep {
		var out []KMStep
		for i, s := range steps {
			if s.Events > 0 || i == len(steps)-1 {
				out = append(out, s)
			}
		}
		return out
	}
	sr.Overall.Steps = keep(sr.Overall.Steps)
	for i := range sr.Groups {
		sr.Groups[i].KM.Steps = keep(sr.Groups[i].KM.Steps)
	}
}
