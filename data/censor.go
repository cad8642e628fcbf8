package data

import "sort"

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
