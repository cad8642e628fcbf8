package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/tokenize"
)

// artefactDataset writes subjects whose history is coded in READ/ when they will be diagnosed
// and in SNOMED/ otherwise: the kind of coding artefact that hands a model its label.
func artefactDataset(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "meds")
	w, err := data.NewDatasetWriter(out, false)
	if err != nil {
		t.Fatal(err)
	}
	day := data.MicrosPerDay
	for id := int64(1); id <= 400; id++ {
		birth := data.Micros(time.Date(1950+int(id%10), 1, 1, 0, 0, 0, 0, time.UTC))
		ns := "SNOMED/"
		pos := id%4 == 0
		if pos {
			ns = "READ/"
		}
		ev := []data.Event{{Time: birth, Code: w.Codes.ID(data.BirthCode), Value: data.NoValue}}
		for y := 2005; y <= 2024; y++ {
			tm := data.Micros(time.Date(y, 3, 1, 0, 0, 0, 0, time.UTC)) + (id%28)*day
			ev = append(ev, data.Event{Time: tm, Code: w.Codes.ID(fmt.Sprintf("%s%d", ns, 100+y%7)), Value: data.NoValue})
			if pos && y == 2016 {
				ev = append(ev, data.Event{Time: tm + day, Code: w.Codes.ID("ICD10/E11.9"), Value: data.NoValue})
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

func TestTokenizeLeakageGuard(t *testing.T) {
	dir := t.TempDir()
	meds := artefactDataset(t, dir)
	cohort := filepath.Join(dir, "cohort")
	if code, _, stderr := runCmd(t, "data", "cohort", "--meds", meds, "--target", "ICD10/E11", "--out", cohort, "--negatives-per-positive", "2"); code != 0 {
		t.Fatal(stderr)
	}
	tok := filepath.Join(dir, "tok")
	code, stdout, stderr := runCmd(t, "tokenize", "build", "--meds", meds, "--cohort", cohort, "--out", tok, "--min-count", "1", "--strict")
	if code != 1 || !strings.Contains(stderr, "leakage guard") || !strings.Contains(stdout, "READ/") {
		t.Errorf("--strict: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if _, err := os.Stat(tok); !os.IsNotExist(err) {
		t.Errorf("--strict failure left %s behind", tok)
	}
	code, stdout, stderr = runCmd(t, "tokenize", "build", "--meds", meds, "--cohort", cohort, "--out", tok, "--min-count", "1")
	if code != 0 || !strings.Contains(stdout, "WARNING: leakage guard") || !strings.Contains(stdout, "namespace") {
		t.Errorf("warning only: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
}

// TestTokenizeOnDemo checks the demo's tokenizer: counted on censored sequences only, so no
// code that only follows a diagnosis is in the vocabulary, and the guard stays quiet.
func TestTokenizeOnDemo(t *testing.T) {
	out := t.TempDir()
	if code, _, stderr := runCmd(t, "demo", "--out", out, "--subjects", "2000", "--bert=false"); code != 0 {
		t.Fatal(stderr)
	}
	dir := filepath.Join(out, demoTokenizer)
	tk, cfg, err := tokenize.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, post := range []string{"ATC/A10BA02", "ICD10/E11.9", "SNOMED/44054006"} {
		if _, ok := tk.Vocab.ID(post); ok {
			t.Errorf("%s (recorded only from the diagnosis on) is in the vocabulary", post)
		}
	}
	if !cfg.Leaks.Checked || len(cfg.Leaks.Leaks) != 0 {
		t.Errorf("leakage guard on censored synth data: %+v", cfg.Leaks)
	}
	if cfg.TuningUnk.UnkRate > cfg.TuningUnk.UnkRateNoPieces {
		t.Errorf("pieces raised [UNK]: %+v", cfg.TuningUnk)
	}
	m, err := data.ReadManifest(dir)
	if err != nil || len(m.Inputs) != 2 {
		t.Fatalf("manifest %+v %v", m, err)
	}
	// encode: one subject per line on stdin, ids out, the same as the library's.
	in := "ICD10/I10 LOINC/4548-4 [SEP] ICD10/E11.65\n\nNOT_A_CODE\n"
	var so, se strings.Builder
	code := run(context.Background(), []string{"tokenize", "encode", "--tokenizer", dir}, &env{stdout: &so, stderr: &se, stdin: strings.NewReader(in)})
	if code != 0 {
		t.Fatal(se.String())
	}
	lines := strings.Split(strings.TrimSuffix(so.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("encode wrote %d lines: %q", len(lines), so.String())
	}
	for i, l := range strings.Split(strings.TrimSuffix(in, "\n"), "\n") {
		enc := tk.EncodeText(l, tokenize.Options{MaxLen: tk.MaxLen})
		want := strings.Trim(fmt.Sprint(enc.IDs), "[]")
		if lines[i] != want {
			t.Errorf("line %d: %q, want %q", i+1, lines[i], want)
		}
	}
	var raw map[string]any
	buf, _ := os.ReadFile(filepath.Join(dir, tokenize.HFFile))
	if err := json.Unmarshal(buf, &raw); err != nil {
		t.Fatalf("tokenizer.json: %v", err)
	}
}

// TestEncodeThirdParty: a third-party tokenizer.json file loads (through sugarme) and encodes.
func TestEncodeThirdParty(t *testing.T) {
	path := filepath.Join("..", "..", "tokenize", "testdata", "thirdparty", "wordpiece.json")
	tk, err := tokenize.LoadThirdParty(path)
	if err != nil {
		t.Fatal(err)
	}
	line := tk.Vocab.Token(int32(tk.Vocab.Len()-1)) + " NOT/A/CODE"
	var so, se strings.Builder
	code := run(context.Background(), []string{"tokenize", "encode", "--tokenizer", path, "--tokens"}, &env{stdout: &so, stderr: &se, stdin: strings.NewReader(line + "\n")})
	if code != 0 {
		t.Fatal(se.String())
	}
	want := tk.EncodeText(line, tokenize.Options{MaxLen: tk.MaxLen})
	toks := strings.Fields(so.String())
	if len(toks) != len(want.IDs) || toks[0] != tokenize.ClsToken {
		t.Errorf("encode --tokens %q, want %d tokens", so.String(), len(want.IDs))
	}
	bad := filepath.Join("..", "..", "tokenize", "testdata", "thirdparty", "bad_bpe.json")
	if _, err := os.Stat(bad); err == nil {
		code = run(context.Background(), []string{"tokenize", "encode", "--tokenizer", bad}, &env{stdout: &so, stderr: &se, stdin: strings.NewReader("")})
		if code != 1 || !strings.Contains(se.String(), "BPE") {
			t.Errorf("BPE file: exit %d %s", code, se.String())
		}
	}
}
