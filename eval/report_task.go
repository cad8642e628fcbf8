package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/modelrepo"
)

// TaskSummary is the prediction task as the models' cohort defines it, shown at the top of a
// report: the outcome, the timing rules, how negatives were chosen, who was left out and why,
// and the splits with the dates they cover. Without a readable cohort only Evaluated is known.
type TaskSummary struct {
	Cohort      string `json:"cohort,omitempty"` // the cohort folder
	CohortRunID string `json:"cohort_run_id,omitempty"`
	// CohortFrom says where the folder came from: "--cohort" or the first model's manifest.
	CohortFrom string `json:"cohort_from,omitempty"`
	// Source is "targets" (labels made from target codes) or "labels" (read from LabelFiles).
	Source     string   `json:"source,omitempty"`
	Targets    []string `json:"targets,omitempty"`
	LabelFiles []string `json:"label_files,omitempty"`
	// The cohort's rules, as durations (365d, 18y); empty when the cohort does not record one.
	Lead         string `json:"lead,omitempty"`
	Gap          string `json:"gap,omitempty"`
	FollowUp     string `json:"follow_up,omitempty"`
	MinHistory   string `json:"min_history,omitempty"`
	MinAge       string `json:"min_age,omitempty"`
	MinEvents    int    `json:"min_events,omitempty"`
	CensorWindow string `json:"censor_window,omitempty"`
	// Negatives is how negatives got their prediction times (matched-age, random-date);
	// NegativesPerPositive the ratio matched-age sampling used.
	Negatives            string  `json:"negatives,omitempty"`
	NegativesPerPositive float64 `json:"negatives_per_positive,omitempty"`
	// Flow is the exclusion flow from the subjects (or label rows) read to the labels kept.
	Flow []FlowStep `json:"flow,omitempty"`
	// FlowNote says when the recorded counts do not add up.
	FlowNote    string      `json:"flow_note,omitempty"`
	Splits      []SplitSpan `json:"splits,omitempty"`
	SplitSource string      `json:"split_source,omitempty"`
	DatasetEnd  string      `json:"dataset_end,omitempty"` // the dataset's last record (date)
	// Evaluated are the first model's evaluated rows.
	Evaluated SplitSpan `json:"evaluated"`
	Notes     []string  `json:"notes,omitempty"`
}

// FlowStep is one line of the exclusion flow: a starting count (Kind "start"), a rule that
// left Excluded subjects (or label rows) out ("exclude"), or what is kept ("kept"), with
// Remaining after it. Class is "" before the classes part, else positive or negative.
type FlowStep struct {
	Kind      string `json:"kind"`
	Class     string `json:"class,omitempty"`
	Step      string `json:"step"`
	Excluded  int    `json:"excluded,omitempty"`
	Remaining int    `json:"remaining"`
}

// SplitSpan is one split's labels and the prediction dates they cover (YYYY-MM-DD, UTC).
type SplitSpan struct {
	Split     string `json:"split"`
	Labels    int    `json:"labels"`
	Subjects  int    `json:"subjects"`
	Positives int    `json:"positives"`
	Negatives int    `json:"negatives"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
}

// Kinds of flow steps.
const (
	flowStart   = "start"
	flowExclude = "exclude"
	flowKept    = "kept"
)

// flowOrder is the order exclusions subtract in the flow: the rules data applies to every
// subject or label row first, then each class's rules roughly in the order they are checked.
// Each subject (or row) is counted once, under the rule that excluded it, so the order only
// decides the running counts. Reasons not listed follow, sorted.
var flowOrder = []string{
	data.ExclNoBirth, data.ExclNoEvents, data.ExclNullValue, data.ExclConflicting, data.ExclDuplicate,
	data.ExclNotInData, data.ExclNoPositiveBand, data.ExclBeforeBirth, data.ExclAfterDeath, data.ExclNoVisibleEvent,
	data.ExclShortRecord, data.ExclTooYoung, data.ExclShortHistory, data.ExclFewEvents, data.ExclShortFollowUp,
	data.ExclNoMatchedTime, data.ExclOverNegRatio,
}

// commonExclusions are rules BuildCohort applies before a subject's class matters.
var commonExclusions = map[string]bool{data.ExclNoBirth: true, data.ExclNoEvents: true}

// taskCohort finds the cohort of a report: --cohort, else the one the first model's manifest
// names. explicit is whether it was given.
func taskCohort(cfg ReportConfig) (dir, runID string, explicit bool) {
	if cfg.CohortDir != "" {
		return cfg.CohortDir, "", true
	}
	if man, err := modelrepo.ReadManifest(cfg.Models[0]); err == nil {
		if in, ok := man.Input("cohort"); ok {
			return in.Path, in.RunID, false
		}
	}
	return "", "", false
}

// loadTaskCohort loads the report's cohort. A cohort given with --cohort must load; one only
// named by the model's manifest may have moved: then the task has a note instead.
func loadTaskCohort(cfg ReportConfig, task *TaskSummary) (*data.Cohort, error) {
	dir, runID, explicit := taskCohort(cfg)
	if dir == "" {
		task.Notes = append(task.Notes,
			"no cohort: the models' manifests name none and no --cohort was given, so the task's rules are unknown")
		return nil, nil
	}
	co, err := data.LoadCohort(dir)
	switch {
	case err != nil && explicit:
		return nil, fmt.Errorf("report: %w", err)
	case err != nil:
		task.Notes = append(task.Notes,
			fmt.Sprintf("the cohort the model was trained on (%s) cannot be read (%v): pass --cohort", dir, err))
		return nil, nil
	}
	task.Cohort, task.CohortRunID, task.CohortFrom = dir, co.Manifest.RunID, "--cohort"
	if !explicit {
		task.CohortFrom = "the first model's manifest"
		if runID != "" && runID != co.Manifest.RunID {
			task.Notes = append(task.Notes, fmt.Sprintf(
				"the cohort at %s is run %s, but the model was trained on run %s: it was rebuilt since",
				dir, co.Manifest.RunID, runID))
		}
	}
	return co, nil
}

// fillTask fills the task from the loaded cohort co (nil: unknown) and its report file.
func fillTask(task *TaskSummary, co *data.Cohort, models []*ModelReport, split string) {
	task.Evaluated = spanOfPredictions(split, models[0].stored)
	for i, m := range models {
		if i == 0 && task.CohortFrom != "--cohort" {
			continue // the task's cohort is the one its manifest names: loadTaskCohort checked its run
		}
		if mm, err := modelrepo.ReadManifest(m.Dir); err == nil && task.CohortRunID != "" {
			if in, ok := mm.Input("cohort"); ok && in.RunID != "" && in.RunID != task.CohortRunID {
				task.Notes = append(task.Notes,
					fmt.Sprintf("%s was trained on another cohort (run %s)", m.Name, in.RunID))
			}
		}
	}
	if co == nil {
		return
	}
	task.Splits = splitSpans(co.Labels)
	rep, err := readCohortReport(co.Dir)
	if err != nil {
		task.Notes = append(task.Notes, err.Error())
		return
	}
	task.Source, task.Targets, task.LabelFiles = rep.Source, rep.Targets, rep.LabelFiles
	task.SplitSource = rep.SplitSource
	p := rep.Params
	task.Lead, task.Gap, task.FollowUp = paramString(p, "lead"), paramString(p, "gap"), paramString(p, "follow_up")
	task.MinHistory, task.MinAge = paramString(p, "min_history"), paramString(p, "min_age")
	task.CensorWindow = paramString(p, "censor_window")
	if v, ok := p["min_events"].(float64); ok {
		task.MinEvents = int(v)
	}
	if len(task.Targets) == 0 {
		task.Targets = paramStrings(p, "event_targets")
	}
	if rep.Source != data.SamplingLabels {
		task.Negatives, task.NegativesPerPositive = rep.Sampling.Method, rep.Sampling.NegativesPerPositive
	}
	if rep.TimeToEvent != nil && len(rep.TimeToEvent.DatasetEnd) >= 10 {
		task.DatasetEnd = rep.TimeToEvent.DatasetEnd[:10]
	}
	task.Flow, task.FlowNote = exclusionFlow(rep)
}

// readCohortReport reads a cohort folder's cohort_report.json.
func readCohortReport(dir string) (*data.CohortReport, error) {
	p := filepath.Join(dir, data.CohortReportFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cohort %s has no %s: its rules and exclusion counts are unknown",
			dir, data.CohortReportFile)
	}
	if err != nil {
		return nil, err
	}
	var rep data.CohortReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return &rep, nil
}

func paramString(p map[string]any, k string) string {
	s, _ := p[k].(string)
	return s
}

func paramStrings(p map[string]any, k string) []string {
	vs, _ := p[k].([]any)
	var out []string
	for _, v := range vs {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// exclusionFlow turns a cohort report's exclusion counts into the flow from what was read to
// the labels kept: the rules applied before the class matters, then each class's rules. note
// says when the counts do not add up to what was read (a cohort written by another version).
func exclusionFlow(rep *data.CohortReport) (flow []FlowStep, note string) {
	byClass := map[string]map[string]int{}
	for _, e := range rep.Exclusions {
		class := e.Class
		if class == "any" || (rep.Source != data.SamplingLabels && commonExclusions[e.Reason]) {
			class = ""
		}
		if byClass[class] == nil {
			byClass[class] = map[string]int{}
		}
		byClass[class][e.Reason] += e.Count
	}
	start, unit := rep.Subjects, "subjects in the dataset"
	posStart, negStart := "with a target code", "without a target code"
	if rep.Source == data.SamplingLabels {
		start, unit = rep.LabelRows, "label rows read"
		posStart, negStart = "positive label rows", "negative label rows"
	}
	flow = append(flow, FlowStep{Kind: flowStart, Step: unit, Remaining: start})
	left := subtract(&flow, "", byClass[""], start)
	pos := rep.Positives + sumCounts(byClass["positive"])
	neg := rep.Negatives + sumCounts(byClass["negative"])
	if pos+neg != left {
		note = fmt.Sprintf("the recorded counts do not add up: %d remain after the first rules but the classes account for %d",
			left, pos+neg)
	}
	for _, c := range []struct {
		class, start string
		n, kept      int
	}{{"positive", posStart, pos, rep.Positives}, {"negative", negStart, neg, rep.Negatives}} {
		flow = append(flow, FlowStep{Kind: flowStart, Class: c.class, Step: c.start, Remaining: c.n})
		subtract(&flow, c.class, byClass[c.class], c.n)
		flow = append(flow, FlowStep{Kind: flowKept, Class: c.class, Step: c.class + " labels kept", Remaining: c.kept})
	}
	flow = append(flow, FlowStep{Kind: flowKept, Step: "labels in the cohort", Remaining: rep.Labels})
	return flow, note
}

// subtract appends one step per reason of counts (in flowOrder) and returns what remains.
func subtract(flow *[]FlowStep, class string, counts map[string]int, n int) int {
	reasons := make([]string, 0, len(counts))
	for r := range counts {
		reasons = append(reasons, r)
	}
	rank := func(r string) int {
		for i, o := range flowOrder {
			if o == r {
				return i
			}
		}
		return len(flowOrder)
	}
	sort.Slice(reasons, func(a, b int) bool {
		ra, rb := rank(reasons[a]), rank(reasons[b])
		if ra != rb {
			return ra < rb
		}
		return reasons[a] < reasons[b]
	})
	for _, r := range reasons {
		n -= counts[r]
		*flow = append(*flow, FlowStep{Kind: flowExclude, Class: class, Step: r, Excluded: counts[r], Remaining: n})
	}
	return n
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// splitSpans counts each split's labels and the prediction dates they cover, splits in the
// order train, tuning, held_out, then others by name.
func splitSpans(labels []data.Label) []SplitSpan {
	type acc struct {
		span     SplitSpan
		lo, hi   int64
		subjects map[int64]bool
	}
	by := map[string]*acc{}
	for _, l := range labels {
		a := by[l.Split]
		if a == nil {
			a = &acc{span: SplitSpan{Split: l.Split}, lo: math.MaxInt64, hi: math.MinInt64, subjects: map[int64]bool{}}
			by[l.Split] = a
		}
		a.span.Labels++
		if l.Value {
			a.span.Positives++
		} else {
			a.span.Negatives++
		}
		a.subjects[l.SubjectID] = true
		a.lo, a.hi = min(a.lo, l.PredictionTime), max(a.hi, l.PredictionTime)
	}
	names := make([]string, 0, len(by))
	for s := range by {
		names = append(names, s)
	}
	order := map[string]int{data.SplitTrain: 0, data.SplitTuning: 1, data.SplitHeldOut: 2}
	sort.Slice(names, func(a, b int) bool {
		oa, ok := order[names[a]]
		if !ok {
			oa = 3
		}
		ob, ok := order[names[b]]
		if !ok {
			ob = 3
		}
		if oa != ob {
			return oa < ob
		}
		return names[a] < names[b]
	})
	out := make([]SplitSpan, len(names))
	for i, s := range names {
		a := by[s]
		a.span.Subjects = len(a.subjects)
		a.span.From, a.span.To = dateOf(a.lo), dateOf(a.hi)
		out[i] = a.span
	}
	return out
}

// spanOfPredictions is the span of a model's evaluated rows.
func spanOfPredictions(split string, preds []Prediction) SplitSpan {
	labels := make([]data.Label, len(preds))
	for i, p := range preds {
		labels[i] = data.Label{SubjectID: p.SubjectID, PredictionTime: p.PredictionTime, Value: p.Label, Split: split}
	}
	if s := splitSpans(labels); len(s) == 1 {
		return s[0]
	}
	return SplitSpan{Split: split}
}

func dateOf(us int64) string { return data.TimeOf(us).UTC().Format("2006-01-02") }

// TaskText is the task in one line: targets (or label files), lead, gap and follow-up.
func (t *TaskSummary) TaskText() string {
	var what string
	switch {
	case len(t.Targets) > 0 && t.Source != data.SamplingLabels:
		what = "first code starting with " + strings.Join(t.Targets, " or ")
	case len(t.LabelFiles) > 0:
		what = "labels from " + strings.Join(t.LabelFiles, ", ")
	default:
		return ""
	}
	if t.Lead != "" {
		what += ", predicted " + t.Lead + " ahead"
	}
	return what
}
