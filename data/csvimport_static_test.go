package data

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestImportCSVUndatedRowsAreStatic (issue 14, D1): every row with an empty (or blank) time is
// a static row wherever it stands in the file — before the first dated row of the file, between
// dated rows, at the end, for a subject born before or after 1970 — in memory and across the
// spill to disk; the summary counts them; none is dated 1970-01-01.
func TestImportCSVUndatedRowsAreStatic(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.csv")
	subjects := filepath.Join(dir, "subjects.csv")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The repro first (subject 1, born 1950), then a subject born after 1970 whose
	// file starts with an undated row after a dated one of another subject, and blank times.
	rows1 := []string{"1,,ICD10/E11,", "1,2010-01-01,ICD10/I11,"}
	rows2 := []string{"2,,BMI,27.5", "2, ,SMOKER,", "2,2015-06-01,ICD10/I10,"}
	rows3 := []string{"1,,ETHNICITY/X,", "2,2016-06-01,ICD10/I10,", "2,,LAST/STATIC,"}
	files := map[string][]string{
		"subject born 1950 first": slices.Concat(rows1, rows2, rows3),
		"subject born 1990 first": slices.Concat(rows2, rows1, rows3),
	}
	write(subjects, "subject_id,birth_date,sex\n1,1950-03-04,F\n2,1990-01-01,M\n")
	wantStatic := map[int64][]string{1: {"ICD10/E11", "ETHNICITY/X"}, 2: {"BMI", "SMOKER", "LAST/STATIC"}}
	wantTimed := map[int64][]string{1: {"ICD10/I11"}, 2: {"ICD10/I10", "ICD10/I10"}}
	for name, rows := range files {
		write(events, "subject_id,time,code,value\n"+strings.Join(rows, "\n")+"\n")
		for _, mem := range []int{0, 1, 2} {
			t.Run(fmt.Sprintf("%s/memory-events=%d", name, mem), func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "meds")
				sum, err := ImportCSV(context.Background(), ImportConfig{EventsPath: events, SubjectsPath: subjects, Out: out,
					MemoryEvents: mem})
				if err != nil {
					t.Fatal(err)
				}
				if sum.Static != 5 || sum.CSVEvents != 8 {
					t.Errorf("summary: %d static of %d rows, want 5 of 8", sum.Static, sum.CSVEvents)
				}
				if mem > 0 && sum.SpillRuns == 0 {
					t.Errorf("memory-events %d: nothing spilled", mem)
				}
				ds, err := Open(out)
				if err != nil {
					t.Fatal(err)
				}
				err = ds.ForEachSubject(context.Background(), func(s Subject) error {
					var static, timed []string
					for _, e := range s.Events {
						name := ds.Codes.Name(e.Code)
						if strings.HasPrefix(name, SexCodePrefix) || name == BirthCode {
							continue
						}
						if e.IsStatic() {
							static = append(static, name)
						} else {
							if e.Time == 0 {
								t.Errorf("subject %d: %s re-dated to 1970-01-01", s.ID, name)
							}
							timed = append(timed, name)
						}
					}
					if fmt.Sprint(static) != fmt.Sprint(wantStatic[s.ID]) || fmt.Sprint(timed) != fmt.Sprint(wantTimed[s.ID]) {
						t.Errorf("subject %d: static %v timed %v, want %v and %v", s.ID, static, timed, wantStatic[s.ID], wantTimed[s.ID])
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
