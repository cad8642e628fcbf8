package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataImportCommand(t *testing.T) {
	fixtures := filepath.Join("..", "..", "data", "testdata", "csv")
	dir := t.TempDir()
	badEvents := filepath.Join(dir, "bad_events.csv")
	if err := os.WriteFile(badEvents, []byte("subject_id,time,code\n1,2015-01-01,A\n1,2021-13-01,B\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(fixtures, "events.csv")
	subjects := filepath.Join(fixtures, "subjects.csv")
	// Issue 14, D1: an undated row before the file's first dated row is static, not 1970.
	undatedFirst := filepath.Join(dir, "undated_first.csv")
	undatedSubjects := filepath.Join(dir, "undated_subjects.csv")
	if err := os.WriteFile(undatedFirst, []byte("subject_id,time,code,value\n1,,ICD10/E11,\n1,2010-01-01,ICD10/I11,\n2,,ICD10/E11,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(undatedSubjects, []byte("subject_id,birth_date,sex\n1,1950-03-04,F\n2,1990-01-01,M\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   func(out string) []string
		code   int
		stdout []string // parts of stdout
		stderr []string // parts of stderr
		exists bool     // whether out exists afterwards
	}{
		{
			name:   "good",
			args:   func(out string) []string { return []string{"--events", good, "--subjects", subjects, "--out", out} },
			code:   0,
			stdout: []string{"subjects: 4\n", "events:   21 (12 rows from", "codes:    15\n", "splits:   train 2, tuning 1, held_out 1\n", "output:   "},
			exists: true,
		},
		{
			name: "spilling past a tiny memory budget",
			args: func(out string) []string {
				return []string{"--events", good, "--subjects", subjects, "--out", out, "--memory-events", "5"}
			},
			code:   0,
			stdout: []string{"subjects: 4\n", "events:   21 (12 rows from", "codes:    15\n", "spilled:  18 events in 2 runs on disk (--memory-events 5)"},
			exists: true,
		},
		{
			name: "undated rows first",
			args: func(out string) []string {
				return []string{"--events", undatedFirst, "--subjects", undatedSubjects, "--out", out}
			},
			code:   0,
			stdout: []string{"(3 rows from", "2 of them static"},
			exists: true,
		},
		{
			name: "undated rows first, spilling",
			args: func(out string) []string {
				return []string{"--events", undatedFirst, "--subjects", undatedSubjects, "--out", out, "--memory-events", "1"}
			},
			code:   0,
			stdout: []string{"(3 rows from", "2 of them static", "spilled:  "},
			exists: true,
		},
		{
			name: "a memory budget of nothing",
			args: func(out string) []string {
				return []string{"--events", good, "--subjects", subjects, "--out", out, "--memory-events", "0"}
			},
			code:   2,
			stderr: []string{"--memory-events"},
		},
		{
			name: "bad file",
			args: func(out string) []string {
				return []string{"--events", badEvents, "--subjects", subjects, "--out", out}
			},
			code:   1,
			stderr: []string{"medseq data import: " + badEvents + `:3: column time: cannot parse "2021-13-01" as a date or time`},
		},
		{
			name:   "missing flag",
			args:   func(out string) []string { return []string{"--events", good, "--out", out} },
			code:   2,
			stderr: []string{"missing --subjects"},
		},
		{
			name: "stray argument",
			args: func(out string) []string {
				return []string{"--events", good, "--subjects", subjects, "--out", out, "extra"}
			},
			code:   2,
			stderr: []string{`unexpected argument "extra"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "meds")
			var stdout, stderr bytes.Buffer
			args := append([]string{"data", "import"}, tc.args(out)...)
			code := run(context.Background(), args, &env{stdout: &stdout, stderr: &stderr})
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout %q lacks %q", stdout.String(), s)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q lacks %q", stderr.String(), s)
				}
			}
			if tc.code == 0 && !strings.Contains(stdout.String(), out) {
				t.Errorf("stdout %q does not name the output %s", stdout.String(), out)
			}
			_, err := os.Stat(filepath.Join(out, "data"))
			if exists := err == nil; exists != tc.exists {
				t.Errorf("output exists: %v, want %v", exists, tc.exists)
			}
		})
	}
}
