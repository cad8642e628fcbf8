package data

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const sharedMEDS = "../../shared/data/meds"

func sharedDataset(t testing.TB, name string) string {
	p := filepath.Join(sharedMEDS, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared MEDS sample %s absent: %v", name, err)
	}
	return p
}

func readAll(t testing.TB, root string) (*Dataset, []Subject) {
	t.Helper()
	ds, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	var subs []Subject
	if err := ds.ForEachSubject(context.Background(), func(s Subject) error {
		subs = append(subs, s)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ds, subs
}

func TestReadMEDSTransformsExample(t *testing.T) {
	root := sharedDataset(t, "meds_transforms_example")
	ds, subs := readAll(t, root)
	var s239684 *Subject
	rows := 0
	for i := range subs {
		rows += len(subs[i].Events)
		if subs[i].ID == 239684 {
			s239684 = &subs[i]
		}
	}
	if s239684 == nil {
		t.Fatal("subject 239684 missing")
	}
	// From the dataset's source.yaml: 2 static rows, birth (DOB), then 10 timed rows.
	ev := s239684.Events
	if len(ev) != 13 {
		t.Fatalf("subject 239684 has %d events, want 13", len(ev))
	}
	if !ev[0].IsStatic() || !ev[1].IsStatic() || ev[2].IsStatic() {
		t.Errorf("static rows not first: %+v", ev[:3])
	}
	if got := ds.Codes.Name(ev[2].Code); got != "DOB" { // this example predates MEDS_BIRTH
		t.Errorf("third code %q, want DOB", got)
	}
	if got, want := TimeOf(ev[2].Time), time.Date(1980, 12, 28, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("birth %v, want %v", got, want)
	}
	if got := TimeOf(ev[3].Time); !got.Equal(time.Date(2010, 5, 11, 17, 41, 51, 0, time.UTC)) {
		t.Errorf("first admission at %v", got)
	}
	heights := 0
	for _, e := range ev {
		if ds.Codes.Name(e.Code) == "HEIGHT" {
			heights++
			if math.Abs(float64(e.Value)-175.271115221764) > 1e-4 {
				t.Errorf("HEIGHT %v", e.Value)
			}
		}
		if ds.Codes.Name(e.Code) == "DISCHARGE" && e.HasValue() {
			t.Errorf("DISCHARGE has a value %v", e.Value)
		}
	}
	if heights != 1 {
		t.Errorf("%d HEIGHT rows", heights)
	}
	splits, err := ds.SubjectSplits()
	if err != nil {
		t.Fatal(err)
	}
	if splits[239684] != SplitTrain {
		t.Errorf("split of 239684 = %q", splits[239684])
	}
	if len(splits) != len(subs) {
		t.Errorf("%d subjects in splits, %d in data", len(splits), len(subs))
	}
	cm, err := ds.CodeMetadata()
	if err != nil {
		t.Fatal(err)
	}
	if len(cm) == 0 {
		t.Error("no code metadata")
	}
	t.Logf("%d subjects, %d rows, %d codes, %d code metadata rows", len(subs), rows, ds.Codes.Len(), len(cm))
}

func TestReadACESSample(t *testing.T) {
	root := sharedDataset(t, "aces_sample")
	ds, subs := readAll(t, root)
	rows, withValue := 0, 0
	seen := map[int64]bool{}
	for _, s := range subs {
		if seen[s.ID] {
			t.Fatalf("subject %d split across groups", s.ID)
		}
		seen[s.ID] = true
		for i, e := range s.Events {
			rows++
			if e.HasValue() {
				withValue++
			}
			if i > 0 && e.Time < s.Events[i-1].Time {
				t.Fatalf("subject %d events out of order", s.ID)
			}
		}
	}
	if rows < 50_000 || withValue == 0 {
		t.Errorf("rows=%d withValue=%d", rows, withValue)
	}
	if ds.ShardSplit(ds.Shards[0]) == "" {
		t.Errorf("no split from shard path %s", ds.Shards[0])
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ds")
	w, err := NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	w.ShardEvents = 5 // force several shards
	born := Micros(time.Date(1950, 3, 1, 0, 0, 0, 0, time.UTC))
	want := map[int64][]string{}
	for id := int64(10); id > 0; id-- { // added in reverse to check sorting
		s := Subject{ID: id, Events: []Event{
			{Time: born + id*MicrosPerDay + 3*MicrosPerYear, Code: w.Codes.ID("ICD10/E11.9"), Value: NoValue},
			{Time: StaticTime, Code: w.Codes.ID("GENDER//F"), Value: NoValue},
			{Time: born + id*MicrosPerDay, Code: w.Codes.ID(BirthCode), Value: NoValue},
			{Time: born + id*MicrosPerDay + MicrosPerYear, Code: w.Codes.ID("LOINC/4548-4"), Value: 6.5 + float32(id)},
		}}
		want[id] = []string{"GENDER//F", BirthCode, "LOINC/4548-4", "ICD10/E11.9"}
		split := SplitTrain
		if id%3 == 0 {
			split = SplitHeldOut
		}
		if err := w.Add(split, s); err != nil {
			t.Fatal(err)
		}
	}
	w.SetCodeMetadata([]CodeMeta{{Code: "ICD10/E11.9", Description: "Type 2 diabetes mellitus without complications",
		ParentCodes: []string{"ICD10/E11"}}})
	if err := w.Commit(NewManifest("test", nil)); err != nil {
		t.Fatal(err)
	}
	ds, subs := readAll(t, out)
	if len(ds.Shards) < 3 {
		t.Errorf("%d shards, want several", len(ds.Shards))
	}
	if len(subs) != 10 {
		t.Fatalf("%d subjects", len(subs))
	}
	for _, s := range subs {
		var got []string
		for _, e := range s.Events {
			got = append(got, ds.Codes.Name(e.Code))
		}
		if len(got) != 4 || got[0] != want[s.ID][0] || got[3] != want[s.ID][3] || got[2] != want[s.ID][2] {
			t.Errorf("subject %d codes %v, want %v", s.ID, got, want[s.ID])
		}
		if v := s.Events[2].Value; v != 6.5+float32(s.ID) {
			t.Errorf("subject %d value %v", s.ID, v)
		}
		if s.Events[0].HasValue() || !s.Events[0].IsStatic() {
			t.Errorf("subject %d static row %+v", s.ID, s.Events[0])
		}
	}
	splits, err := ds.SubjectSplits()
	if err != nil || splits[3] != SplitHeldOut || splits[4] != SplitTrain {
		t.Errorf("splits %v, %v", splits, err)
	}
	cm, err := ds.CodeMetadata()
	if err != nil || len(cm) != 1 || cm[0].ParentCodes[0] != "ICD10/E11" || cm[0].Description == "" {
		t.Errorf("code metadata %+v, %v", cm, err)
	}
	m, err := ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := Fingerprint(out)
	if m.Fingerprint != fp || fp == "" {
		t.Errorf("manifest fingerprint %s, actual %s", m.Fingerprint, fp)
	}
	ents, _ := os.ReadDir(filepath.Dir(out))
	if len(ents) != 1 {
		t.Errorf("left-overs beside the dataset: %v", ents)
	}
}
