package data

import (
	"math"
	"sort"
	"time"
)

// Censor returns the part of a subject's time-ordered events that a model may see for a
// prediction made at predictionTime: static rows and every event at or before
// predictionTime-gap. It is the only place medseq decides what is visible; every stage that
// reads sequences for a label goes through it (see Cohort.Sequences). The result shares
// memory with events.
func Censor(events []Event, predictionTime, gap int64) []Event {
	limit := predictionTime - gap
	n := sort.Search(len(events), func(i int) bool { return events[i].Time > limit })
	return events[:n:n]
}

// Time to event. Every label of a cohort built from target codes (BuildCohort), or from
// external labels with target codes given (BuildLabelCohort), carries the time from its
// prediction time to what ends its follow-up:
//
//   - the event: the first target code at or after the prediction time (EventObserved). A
//     negative external label whose target comes after the task's window has an observed
//     event too; BuildCohort's negatives never have one (they have no target code at all).
//   - otherwise the end of observation (censored): the subject's last record or death,
//     whichever is later (the end BuildCohort's --follow-up measures), never before the
//     prediction time. CensorReason says which end it is:
//     CensorDeath when the subject died (a death code at or after its last record);
//     CensorDatasetEnd (administrative censoring) when the end is within the cohort's
//     CensorWindow (default DefaultCensorWindow) of the dataset's end: the subject was most
//     likely still under observation when the extract was taken, and an absent record only
//     means no visit yet; CensorEndOfRecord otherwise: the records stop early (a move, a
//     transfer, loss to follow-up), and what happened later is unknown.
//
// The dataset's end is DatasetEnd over every subject's last timed event: a high quantile rather
// than the maximum, so that a few mistyped far-future dates do not move it.

// DefaultCensorWindow is the default CohortConfig.CensorWindow: a year, the longest a subject
// still registered in primary care commonly goes without a coded visit.
const DefaultCensorWindow = 365 * MicrosPerDay

// datasetEndQuantile is the share of subjects whose last event may lie after DatasetEnd.
const datasetEndQuantile = 0.001

// DatasetEnd is the end of a dataset estimated from its subjects' last event times (in any
// order; it sorts lasts): the latest time that more than 0.1% of subjects reach (at least the
// one latest subject), so that a few outlying future dates do not count. StaticTime when
// lasts is empty.
func DatasetEnd(lasts []int64) int64 {
	if len(lasts) == 0 {
		return StaticTime
	}
	sort.Slice(lasts, func(i, j int) bool { return lasts[i] < lasts[j] })
	k := int(math.Ceil(datasetEndQuantile * float64(len(lasts)))) // subjects allowed beyond the end, at least 1
	return lasts[len(lasts)-max(k, 1)]
}

// TimeToEvent is a label's follow-up as Label holds it.
type TimeToEvent struct {
	EventTime     int64 // StaticTime when unknown
	EventObserved bool
	CensorReason  string
}

// timeToEvent is the time to event of a label of s at pt. end is the dataset's end (DatasetEnd)
// and window the CensorWindow.
func (s *subjectInfo) timeToEvent(pt, end, window int64) TimeToEvent {
	if i := sort.Search(len(s.targets), func(i int) bool { return s.targets[i] >= pt }); i < len(s.targets) {
		return TimeToEvent{EventTime: s.targets[i], EventObserved: true}
	}
	obs := s.observedEnd()
	if obs == StaticTime {
		return TimeToEvent{EventTime: StaticTime}
	}
	out := TimeToEvent{EventTime: max(obs, pt)}
	switch {
	case s.death != StaticTime && (s.last == StaticTime || s.death >= s.last):
		out.CensorReason = CensorDeath
	case end != StaticTime && obs >= end-window:
		out.CensorReason = CensorDatasetEnd
	default:
		out.CensorReason = CensorEndOfRecord
	}
	return out
}

// setTimeToEvent fills l's time to event.
func (l *Label) setTimeToEvent(t TimeToEvent) {
	l.EventTime, l.EventObserved, l.CensorReason = t.EventTime, t.EventObserved, t.CensorReason
}

// FollowUp is how long the label is followed: from its prediction time to its event, or to its
// censoring. ok is false when the time to event is unknown (EventTime is StaticTime).
func (l *Label) FollowUp() (d int64, ok bool) {
	if l.EventTime == StaticTime {
		return 0, false
	}
	return l.EventTime - l.PredictionTime, true
}

// CensoredWithin reports whether the label's outcome over followUp after its prediction time is
// unknown: its time to event is known, no event was observed, and it is followed for less than
// followUp.
func (l *Label) CensoredWithin(followUp int64) bool {
	d, ok := l.FollowUp()
	return ok && !l.EventObserved && d < followUp
}

// TimeToEventReport is the cohort report's account of its labels' time to event.
type TimeToEventReport struct {
	DatasetEnd   string `json:"dataset_end"`   // RFC 3339; "" when the dataset has no timed event
	CensorWindow string `json:"censor_window"` // ends this close to DatasetEnd are CensorDatasetEnd
	Known        int    `json:"known"`         // labels with a time to event
	// Events counts labels whose event was observed, Censored those censored, by reason.
	Events   ClassCounts            `json:"events"`
	Censored map[string]ClassCounts `json:"censored"`
	// FollowUpYears summarises, per class, the years from prediction time to the event or the
	// censoring.
	FollowUpYears map[string]Summary `json:"follow_up_years"`
	// PositivesWithoutEvent are positive labels with no target code at or after their
	// prediction time: external labels whose task is not the first --target code.
	PositivesWithoutEvent int `json:"positives_without_event,omitempty"`
}

// newTimeToEventReport summarises the labels' time to event.
func newTimeToEventReport(labels []Label, end, window int64) *TimeToEventReport {
	r := &TimeToEventReport{CensorWindow: FormatDuration(window), Censored: map[string]ClassCounts{},
		FollowUpYears: map[string]Summary{}}
	if end != StaticTime {
		r.DatasetEnd = TimeOf(end).Format(time.RFC3339)
	}
	years := map[string][]float64{}
	for i := range labels {
		l := &labels[i]
		d, ok := l.FollowUp()
		if !ok {
			continue
		}
		r.Known++
		class := className(l.Value)
		years[class] = append(years[class], float64(d)/float64(MicrosPerYear))
		if l.EventObserved {
			r.Events.add(l.Value)
			continue
		}
		cc := r.Censored[l.CensorReason]
		cc.add(l.Value)
		r.Censored[l.CensorReason] = cc
		if l.Value {
			r.PositivesWithoutEvent++
		}
	}
	for c, v := range years {
		r.FollowUpYears[c] = Summarise(v)
	}
	return r
}

// add counts one label of class value.
func (c *ClassCounts) add(value bool) {
	if value {
		c.Positives++
	} else {
		c.Negatives++
	}
}
