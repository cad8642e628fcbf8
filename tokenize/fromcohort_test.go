package tokenize

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medseq/medseq/data"
)

// artefactMEDS writes n subjects whose history is coded in READ/ when they will be diagnosed
// (every fourth) and in SNOMED/ otherwise, a coding artefact that hands a model its label;
// after the diagnosis (ICD10/E11.9 in 2016) they get LEAK/METFORMIN, which censoring hides.
// seed shifts the visit days, so two seeds are two datasets with the same subjects.
func artefactMEDS(t *testing.T, out string, n int, seed int64) string {
	t.Helper()
	w, err := data.NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	day := data.MicrosPerDay
	for id := int64(1); id <= int64(n); id++ {
		birth := data.Micros(time.Date(1950+int(id%10), 1, 1, 0, 0, 0, 0, time.UTC))
		ns, pos := "SNOMED/", id%4 == 0
		if pos {
			ns = "READ/"
		}
		ev := []data.Event{{Time: birth, Code: w.Codes.ID(data.BirthCode), Value: data.NoValue}}
		for y := 2005; y <= 2024; y++ {
			tm := data.Micros(time.Date(y, 3, 1, 0, 0, 0, 0, time.UTC)) + ((id+seed)%28)*day
			ev = append(ev, data.Event{Time: tm, Code: w.Codes.ID(fmt.Sprintf("%s%d", ns, 100+y%7)), Value: data.NoValue})
			if pos && y == 2016 {
				ev = append(ev, data.Event{Time: tm + day, Code: w.Codes.ID("ICD10/E11.9"), Value: data.NoValue})
			}
			if pos && y > 2016 {
				ev = append(ev, data.Event{Time: tm + 2*day, Code: w.Codes.ID("LEAK/METFORMIN"), Value: data.NoValue})
			}
		}
		data.SortEvents(ev)
		if err := w.Add("", data.Subject{ID: id, Events: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(data.NewManifest("test", nil)); err != nil {
		t.Fatal(err)
	}
	return out
}

// writeTestCohort builds and writes the type 2 diabetes cohort of meds.
func writeTestCohort(t *testing.T, meds, out string) *data.Cohort {
	t.Helper()
	ds, err := data.Open(meds)
	if err != nil {
		t.Fatal(err)
	}
	cfg := data.DefaultCohortConfig()
	cfg.Targets, cfg.NegativesPerPositive = []string{"ICD10/E11"}, 2
	res, err := data.BuildCohort(context.Background(), ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := data.NewManifest(data.StageCohort, cfg.Params())
	if _, err := m.AddInput(data.InputMEDS, meds); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteCohort(out, false, res, m); err != nil {
		t.Fatal(err)
	}
	c, err := data.LoadCohort(out)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBuildFromCohort(t *testing.T) {
	dir := t.TempDir()
	meds := artefactMEDS(t, filepath.Join(dir, "meds"), 400, 0)
	other := artefactMEDS(t, filepath.Join(dir, "other"), 400, 3)
	cohortDir := filepath.Join(dir, "cohort")
	cohort := writeTestCohort(t, meds, cohortDir)
	nTrain := 0
	for _, l := range cohort.Labels {
		if l.Split == data.SplitTrain {
			nTrain++
		}
	}
	base := func(out string) FromCohortConfig {
		b := DefaultBuildConfig()
		b.MinCount = 1
		return FromCohortConfig{MEDS: meds, Cohort: cohortDir, Out: filepath.Join(dir, out), Build: b,
			Leak: LeakConfig{Threshold: 0.95}}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*FromCohortConfig)
		wantErr []string // substrings; nil: written
		leak    bool     // the error wraps ErrLeak and a result comes back
		warn    string   // a log line that must be there
	}{
		{name: "written", edit: func(*FromCohortConfig) {}},
		{name: "strict", edit: func(c *FromCohortConfig) { c.Strict = true }, wantErr: []string{"nothing written"}, leak: true},
		{name: "other dataset", edit: func(c *FromCohortConfig) { c.MEDS = other }, wantErr: []string{other, "--allow-mismatch"}},
		{name: "other dataset allowed", edit: func(c *FromCohortConfig) { c.MEDS, c.AllowMismatch = other, true },
			warn: "not built from"},
		{name: "min count too high", edit: func(c *FromCohortConfig) { c.Build.MinCount = 1 << 30 },
			wantErr: []string{cohortDir, ErrNoCodes.Error()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base(strings.ReplaceAll(tc.name, " ", "-"))
			tc.edit(&cfg)
			var logs bytes.Buffer
			cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
			res, err := BuildFromCohort(context.Background(), cfg)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("built, want an error")
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				if got := errors.Is(err, ErrLeak); got != tc.leak {
					t.Errorf("errors.Is(ErrLeak) = %v, want %v", got, tc.leak)
				}
				if tc.leak && (res == nil || len(res.Config.Leaks.Leaks) == 0 || res.RunID != "") {
					t.Errorf("strict failure: result %+v, want the leaks and no run", res)
				}
				if _, err := os.Stat(cfg.Out); !os.IsNotExist(err) {
					t.Errorf("a failure left %s behind", cfg.Out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.warn != "" && !strings.Contains(logs.String(), tc.warn) {
				t.Errorf("no warning %q in the log: %s", tc.warn, logs.String())
			}
			checkBuilt(t, cfg, res, nTrain)
		})
	}
}

// checkBuilt checks a written tokenizer against what BuildFromCohort returned: counted on the
// censored training sequences only, the artefact flagged, the files and manifest there.
func checkBuilt(t *testing.T, cfg FromCohortConfig, res *BuildResult, nTrain int) {
	t.Helper()
	b := res.Config.Build
	if b.Sequences != nTrain {
		t.Errorf("counted %d sequences, the cohort has %d training labels", b.Sequences, nTrain)
	}
	if _, ok := res.Tokenizer.WholeCode("LEAK/METFORMIN"); ok {
		t.Error("a code recorded only after the diagnosis is in the vocabulary: censoring bypassed")
	}
	if _, ok := res.Tokenizer.WholeCode("READ/101"); !ok {
		t.Error("READ/101, seen before prediction times, is not in the vocabulary")
	}
	flagged := false
	for _, l := range res.Config.Leaks.Leaks {
		flagged = flagged || (l.Namespace && l.Token == "READ/")
	}
	if !flagged {
		t.Errorf("the READ/ artefact is not flagged: %+v", res.Config.Leaks)
	}
	if u := res.Config.TuningUnk; u == nil || u.Occurrences == 0 {
		t.Errorf("no [UNK] statistics on the tuning split: %+v", u)
	}
	tok, saved, err := Load(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Vocab.Len() != res.Tokenizer.Vocab.Len() || saved.Build.WholeCodes != b.WholeCodes {
		t.Errorf("saved %d tokens (%d whole codes), built %d (%d)", tok.Vocab.Len(), saved.Build.WholeCodes,
			res.Tokenizer.Vocab.Len(), b.WholeCodes)
	}
	m, err := data.ReadManifest(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if m.RunID != res.RunID || m.Stage != StageTokenize {
		t.Errorf("manifest run %s stage %q, result run %s", m.RunID, m.Stage, res.RunID)
	}
	for name, p := range map[string]string{data.InputMEDS: cfg.MEDS, "cohort": cfg.Cohort} {
		if err := m.CheckInput(name, p); err != nil {
			t.Errorf("manifest input %s: %v", name, err)
		}
	}
	// Without Force an existing tokenizer is kept.
	if _, err := BuildFromCohort(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("rebuilt over %s without Force: %v", cfg.Out, err)
	}
}
