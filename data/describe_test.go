package data

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestDescribe counts a small hand-written dataset: rows, static and valued rows, the time
// span, the splits and the codes by frequency; a dataset with static rows only has no span.
func TestDescribe(t *testing.T) {
	day := func(y int, m time.Month, d int) int64 { return Micros(time.Date(y, m, d, 0, 0, 0, 0, time.UTC)) }
	for _, tc := range []struct {
		name     string
		subjects map[string][]Subject // by split
		want     DatasetDescription   // without Shards and Elapsed
	}{
		{
			name: "timed and static",
			subjects: map[string][]Subject{
				SplitTrain: {{ID: 1, Events: []Event{{Time: StaticTime, Value: NoValue}, {Time: day(1990, 1, 1), Value: NoValue},
					{Time: day(2001, 5, 2), Value: 7.5}, {Time: day(2001, 5, 2), Value: NoValue}}}},
				SplitHeldOut: {{ID: 2, Events: []Event{{Time: StaticTime, Value: NoValue}, {Time: day(2020, 2, 29), Value: 1}}},
					{ID: 3, Events: []Event{{Time: day(1985, 12, 31), Value: NoValue}}}},
			},
			want: DatasetDescription{Subjects: 3, Rows: 7, Static: 2, Valued: 2, FirstTime: day(1985, 12, 31),
				LastTime: day(2020, 2, 29),
				Splits:   map[string]int{SplitTrain: 1, SplitHeldOut: 2}},
		},
		{
			name:     "static only, no splits",
			subjects: map[string][]Subject{"": {{ID: 9, Events: []Event{{Time: StaticTime, Value: NoValue}}}}},
			want:     DatasetDescription{Subjects: 1, Rows: 1, Static: 1, FirstTime: 1<<63 - 1, LastTime: StaticTime},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "meds")
			w, err := NewDatasetWriter(out, false)
			if err != nil {
				t.Fatal(err)
			}
			// Codes: static rows SEX//F, then A, B, A, ...: A is the most frequent.
			names := []string{"A", "B"}
			wantCodes := map[string]int{}
			for split, subs := range tc.subjects {
				for _, s := range subs {
					for i := range s.Events {
						name := names[i%2]
						if s.Events[i].IsStatic() {
							name = "SEX//F"
						}
						s.Events[i].Code = w.Codes.ID(name)
						wantCodes[name]++
					}
					if err := w.Add(split, s); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := w.Commit(nil); err != nil {
				t.Fatal(err)
			}
			ds, err := Open(out)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Describe(context.Background(), ds)
			if err != nil {
				t.Fatal(err)
			}
			if got.Shards != len(ds.Shards) || got.Elapsed <= 0 {
				t.Errorf("shards %d of %d, elapsed %v", got.Shards, len(ds.Shards), got.Elapsed)
			}
			codes := map[string]int{}
			for i, c := range got.Codes {
				codes[c.Code] = c.Rows
				if i > 0 && c.Rows > got.Codes[i-1].Rows {
					t.Errorf("codes not by frequency: %v", got.Codes)
				}
			}
			if !reflect.DeepEqual(codes, wantCodes) {
				t.Errorf("codes %v, want %v", codes, wantCodes)
			}
			got.Shards, got.Elapsed, got.Codes = 0, 0, nil
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}
