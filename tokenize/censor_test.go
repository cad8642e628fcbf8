package tokenize

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/medseq/medseq/data"
)

// TestCountsIgnoreCensoredEvents: counting through data.Cohort.Sequences sees only what a
// model may see; codes after the prediction time (or in the gap) never reach a count.
func TestCountsIgnoreCensoredEvents(t *testing.T) {
	out := filepath.Join(t.TempDir(), "meds")
	w, err := data.NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	at := func(y int) int64 { return data.Micros(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)) }
	ev := func(code string, y int) data.Event {
		return data.Event{Time: at(y), Code: w.Codes.ID(code), Value: data.NoValue}
	}
	subj := []data.Subject{
		{ID: 1, Events: []data.Event{ev("A/1", 2001), ev("A/1", 2002), ev("B/2", 2009), ev("A/1", 2011), ev("POST/1", 2012)}},
		{ID: 2, Events: []data.Event{ev("A/1", 2003), ev("GAP/1", 2009), ev("POST/2", 2015)}},
		{ID: 3, Events: []data.Event{ev("TUNING/1", 2001)}}, // not in the training split
	}
	for _, s := range subj {
		if err := w.Add("", s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(nil); err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	cohort := &data.Cohort{Gap: 180 * data.MicrosPerDay, Labels: []data.Label{
		{SubjectID: 1, PredictionTime: at(2010), Value: true, Split: data.SplitTrain},
		{SubjectID: 2, PredictionTime: at(2009) + 30*data.MicrosPerDay, Value: false, Split: data.SplitTrain},
		{SubjectID: 3, PredictionTime: at(2010), Value: false, Split: data.SplitTuning},
	}}
	c := NewCounter(ds.Codes)
	err = cohort.Sequences(context.Background(), ds, []string{data.SplitTrain}, func(s data.Sequence) error {
		c.Add(s.Events, map[bool]int{true: 1, false: 0}[s.Label.Value])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"A/1": 3, "B/2": 1, "GAP/1": 0, "POST/1": 0, "POST/2": 0, "TUNING/1": 0}
	for code, n := range want {
		id, _ := ds.Codes.Lookup(code)
		if got := c.count[id]; got != n {
			t.Errorf("count of %s = %d, want %d", code, got, n)
		}
	}
	tok, _, err := Build(c, BuildConfig{VocabSize: 10, MinCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"POST/1", "POST/2", "GAP/1", "TUNING/1"} {
		if _, ok := tok.Vocab.ID(code); ok {
			t.Errorf("%s is in the vocabulary", code)
		}
	}
}
