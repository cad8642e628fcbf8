package train

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/model/features"
	"github.com/medseq/medseq/tokenize"
)

// TestFeatureRowsCensored plants codes after each prediction time (and inside the gap) and
// gives the tokenizer those codes as whole tokens, as a tokenizer built on uncensored counts
// would: no feature row may count them in any window, while earlier codes are counted.
func TestFeatureRowsCensored(t *testing.T) {
	out := filepath.Join(t.TempDir(), "meds")
	w, err := data.NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	at := func(y int) int64 { return data.Micros(time.Date(y, 6, 1, 0, 0, 0, 0, time.UTC)) }
	var labels []data.Label
	splits := []string{data.SplitTrain, data.SplitTuning, data.SplitHeldOut}
	for id := int64(1); id <= 30; id++ {
		pos := id%3 == 0
		ev := []data.Event{
			{Time: at(1960), Code: w.Codes.ID(data.BirthCode), Value: data.NoValue},
			{Time: at(2005), Code: w.Codes.ID("ICD10/I10"), Value: data.NoValue},
			// inside the 30-day gap
			{Time: at(2009) + 200*data.MicrosPerDay, Code: w.Codes.ID("GAP/HBA1C"), Value: 47},
			// after the prediction time
			{Time: at(2011), Code: w.Codes.ID("LEAK/METFORMIN"), Value: data.NoValue},
		}
		if pos {
			ev = append(ev, data.Event{Time: at(2011), Code: w.Codes.ID("ICD10/E11.9"), Value: data.NoValue})
		}
		data.SortEvents(ev)
		if err := w.Add("", data.Subject{ID: id, Events: ev}); err != nil {
			t.Fatal(err)
		}
		labels = append(labels, data.Label{SubjectID: id, PredictionTime: at(2009) + 220*data.MicrosPerDay, Value: pos,
			Split: splits[id%3], Birth: at(1960), Sex: data.SexFemale})
	}
	if err := w.Commit(nil); err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokenize.NewVocab(append(tokenize.SpecialTokens(),
		"ICD10/I10", "GAP/HBA1C", "LEAK/METFORMIN", "ICD10/E11.9"))
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenize.New(v)
	o := &opened{ds: ds, cohort: &data.Cohort{Labels: labels, Gap: 30 * data.MicrosPerDay}, tok: tok}
	space, err := features.NewSpace(tok, features.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := featureRows(context.Background(), o, space)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	n := 0
	for _, sd := range rows {
		for r := 0; r < sd.x.Rows(); r++ {
			n++
			idx, _ := sd.x.Row(r)
			for _, i := range idx {
				name := space.Name(int(i), v)
				seen[name[strings.Index(name, ":")+1:]]++
			}
		}
	}
	if n != 30 {
		t.Fatalf("%d rows, want 30", n)
	}
	for _, leak := range []string{"LEAK/METFORMIN", "ICD10/E11.9", "GAP/HBA1C"} {
		if seen[leak] > 0 {
			t.Errorf("%s reached %d features", leak, seen[leak])
		}
	}
	if seen["ICD10/I10"] == 0 {
		t.Error("a code before the prediction time is missing from the features")
	}
}
