package eval

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/medseq/medseq/data"
)

// TestCohortSequenceFeatures: the report's cohort check reads censored sequences, so a code
// recorded after the prediction time is invisible, while a code that alone separates the
// classes before it is flagged as a leak.
func TestCohortSequenceFeatures(t *testing.T) {
	out := filepath.Join(t.TempDir(), "meds")
	w, err := data.NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	at := func(y int) int64 { return data.Micros(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)) }
	var labels []data.Label
	for id := int64(1); id <= 40; id++ {
		pos := id%4 == 0
		ev := []data.Event{{Time: at(2001), Code: w.Codes.ID("C/COMMON"), Value: data.NoValue}}
		if pos {
			ev = append(ev, data.Event{Time: at(2005), Code: w.Codes.ID("ARTEFACT/X"), Value: data.NoValue})
		}
		ev = append(ev, data.Event{Time: at(2012), Code: w.Codes.ID("POST/Y"), Value: data.NoValue}) // after every prediction time
		if err := w.Add("", data.Subject{ID: id, Events: ev}); err != nil {
			t.Fatal(err)
		}
		labels = append(labels, data.Label{SubjectID: id, PredictionTime: at(2010), Value: pos, Age: 50})
	}
	if err := w.Commit(nil); err != nil {
		t.Fatal(err)
	}
	co := &data.Cohort{Labels: labels}
	lens, f, err := cohortSequenceFeatures(co, out)
	if err != nil {
		t.Fatal(err)
	}
	if lens[0] != 1 || lens[3] != 2 {
		t.Errorf("sequence lengths %v", lens[:4])
	}
	if _, ok := f.Sparse["code POST/Y"]; ok {
		t.Error("a code after the prediction time reached the cohort check")
	}
	chk, err := CheckCohort(labels, lens, f, CohortCheckConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if len(chk.Leaks) != 1 || chk.Leaks[0].Feature != "code ARTEFACT/X" || chk.Leaks[0].AUROC != 1 {
		t.Errorf("leaks %+v", chk.Leaks)
	}
}
