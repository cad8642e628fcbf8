package synth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
)

// TestPlainGolden: the default code style writes today's bytes (every file but
// manifest.json). A change of the generator (or of the Parquet writer) that changes them
// must bump Version and update these hashes.
func TestPlainGolden(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	if _, err := Generate(context.Background(), Config{Out: dir, Subjects: 300, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"data/held_out/0.parquet":         "456e0b5437f839209f0cb56cbad7015eedb0067d7b0167b35b4db760aeb54f10",
		"data/train/0.parquet":            "751cd3499dd24a10aec4a09f75a371f2175dc31b626768752c4f312ce1222d28",
		"data/tuning/0.parquet":           "52bd2db684f91cde5a67020f380d9df44e91143d588009ed494b9ff54cf02b05",
		"metadata/codes.parquet":          "6937e18ab9bb3364400a8e35a59b0043baf96a3e0ccc6a516602306aad4d04bf",
		"metadata/dataset.json":           "95908901d1719f62fecd1a040940c0440f46e2533e24722b98ead07bb169ef7a",
		"metadata/subject_splits.parquet": "9262f95c55df96a2d76f21049bcf080af70f8486ebc04c05241105c7cfd25996",
		"oracle/hazard.parquet":           "bfec016a0bb9e6c7461a3776445a9fefa7218eb55f948f01e70560fd8e78956f",
		"oracle/model.json":               "18096fc0ca917a09e9321edb27ba515801f80d5c0e4c2799971f0be9d945b62b",
		"oracle/subjects.parquet":         "f46b80b6979a46d7b6a51b8a7285f8f3afeb42e993fe40a9299db34c41dbe6f2",
	}
	got := files(t, dir)
	if len(got) != len(want) {
		t.Errorf("%d files, want %d", len(got), len(want))
	}
	for name, b := range got {
		sum := sha256.Sum256(b)
		if h := hex.EncodeToString(sum[:]); h != want[filepath.ToSlash(name)] {
			t.Errorf("%s: sha256 %s, want %s", name, h, want[filepath.ToSlash(name)])
		}
	}
}

// TestETLCodeStyle: the etl style writes the plain dataset's events with every code spelt by
// ETLCode, code metadata included, and the same oracle; its targets are the oracle's.
func TestETLCodeStyle(t *testing.T) {
	base := t.TempDir()
	plainDir, etlDir := filepath.Join(base, "plain"), filepath.Join(base, "etl")
	if _, err := Generate(context.Background(), Config{Out: plainDir, Subjects: 200, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(context.Background(), Config{Out: etlDir, Subjects: 200, Seed: 3,
		CodeStyle: CodeStyleETL}); err != nil {
		t.Fatal(err)
	}
	p, e := readDataset(t, plainDir), readDataset(t, etlDir)
	if len(p.subjects) != len(e.subjects) {
		t.Fatalf("%d subjects vs %d", len(p.subjects), len(e.subjects))
	}
	spaced := 0
	for i, ps := range p.subjects {
		es := e.subjects[i]
		if ps.ID != es.ID || len(ps.Events) != len(es.Events) {
			t.Fatalf("subject %d: %d events vs %d", ps.ID, len(ps.Events), len(es.Events))
		}
		for j, pe := range ps.Events {
			ee := es.Events[j]
			name := e.ds.Codes.Name(ee.Code)
			valueDiffers := ee.Value != pe.Value && ee.Value == ee.Value // NaN (no value) equals NaN
			if want := ETLCode(p.ds.Codes.Name(pe.Code)); name != want || ee.Time != pe.Time || valueDiffers {
				t.Fatalf("subject %d event %d: %q at %d, want %q at %d", ps.ID, j, name, ee.Time, want, pe.Time)
			}
			if strings.ContainsAny(name, " \u00a0") {
				spaced++
			}
		}
	}
	if spaced == 0 {
		t.Error("no etl code holds a space")
	}
	pm, err := p.ds.CodeMetadata()
	if err != nil {
		t.Fatal(err)
	}
	em, err := e.ds.CodeMetadata()
	if err != nil {
		t.Fatal(err)
	}
	if len(pm) != len(em) {
		t.Fatalf("codes.parquet: %d rows vs %d", len(em), len(pm))
	}
	for i := range pm {
		parents := make([]string, len(pm[i].ParentCodes))
		for j, c := range pm[i].ParentCodes {
			parents[j] = ETLCode(c)
		}
		if em[i].Code != ETLCode(pm[i].Code) || em[i].Description != pm[i].Description ||
			!slices.Equal(em[i].ParentCodes, parents) {
			t.Fatalf("codes.parquet row %d: %+v, plain %+v", i, em[i], pm[i])
		}
	}
	pf, ef := files(t, plainDir), files(t, etlDir)
	for _, f := range []string{OracleSubjectsFile, OracleHazardFile, OracleModelFile, data.SubjectSplitsFile} {
		if string(pf[filepath.FromSlash(f)]) != string(ef[filepath.FromSlash(f)]) {
			t.Errorf("%s differs between the plain and etl datasets", f)
		}
	}
	etlTargets := []string{ETLCode(OracleTargets[1]), ETLCode(OracleTargets[0])}
	if !ModelsTargets(etlTargets) || ModelsTargets([]string{ETLCode(OracleTargets[0]), OracleTargets[1]}) {
		t.Errorf("ModelsTargets(%q) should hold, mixed spellings should not", etlTargets)
	}
	if _, err := Generate(context.Background(), Config{Out: filepath.Join(base, "x"), Subjects: 1,
		CodeStyle: "fancy"}); err == nil || !strings.Contains(err.Error(), "code style") {
		t.Errorf("unknown code style: %v", err)
	}
}
