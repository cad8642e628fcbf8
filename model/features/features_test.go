package features

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/tokenize"
)

func TestRowFeatures(t *testing.T) {
	v, err := tokenize.NewVocab(append(tokenize.SpecialTokens(), "ICD10/I10", "ICD10/E66.9", "ICD10/E11", "##.65",
		"LOINC/4548-4"))
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenize.New(v)
	codes := data.NewCodes()
	day := data.MicrosPerDay
	pt := 1000 * day
	nv := data.NoValue
	ev := []data.Event{
		{Time: data.StaticTime, Code: codes.ID("SEX//M"), Value: nv}, // [UNK] in this vocabulary
		{Time: 100 * day, Code: codes.ID("ICD10/I10"), Value: nv},
		{Time: 200 * day, Code: codes.ID("LOINC/4548-4"), Value: 41},
		{Time: 700 * day, Code: codes.ID("ICD10/I10"), Value: nv},
		{Time: 800 * day, Code: codes.ID("LOINC/4548-4"), Value: 0}, // the latest; a zero is a value
		{Time: 900 * day, Code: codes.ID("LOINC/9999-9"), Value: 7}, // [UNK]: no value feature
		// Pieced ICD10/E11 ##.65: counts toward ICD10/E11, no value.
		{Time: 990 * day, Code: codes.ID("ICD10/E11.65"), Value: 3},
		{Time: 995 * day, Code: codes.ID("ICD10/E66.9"), Value: nv},
	}
	cfg := DefaultConfig()
	cfg.LastValue = true
	sp, err := NewSpace(tok, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := sp.NewBuilder(tok, tok.NewCodeMap(codes))
	var x CSR
	b.Append(&x, Row{Events: ev, Birth: 0, Sex: data.SexMale, PredictionTime: pt})
	b.Append(&x, Row{Events: nil, Birth: data.StaticTime, Sex: data.SexUnknown, PredictionTime: pt})
	if x.Rows() != 2 || x.NumCol != 3+4*v.Len() {
		t.Fatalf("rows %d cols %d", x.Rows(), x.NumCol)
	}
	got := map[string]float32{}
	idx, val := x.Row(0)
	for i := range idx {
		if i > 0 && idx[i] <= idx[i-1] {
			t.Fatalf("indices not ascending: %v", idx)
		}
		got[sp.Name(int(idx[i]), v)] = val[i]
	}
	want := map[string]float32{
		"age_years": float32(1000.0 / 365.25), "sex=M": 1,
		"count[all]:[UNK]": 2, "count[all]:ICD10/I10": 2, "count[all]:ICD10/E11": 1, "count[all]:ICD10/E66.9": 1,
		"count[365d]:ICD10/I10": 1, "count[365d]:ICD10/E11": 1, "count[365d]:ICD10/E66.9": 1,
		"count[30d]:ICD10/E11": 1, "count[30d]:ICD10/E66.9": 1,
		"count[all]:LOINC/4548-4": 2, "count[365d]:LOINC/4548-4": 1, "count[365d]:[UNK]": 1,
		"last_value:LOINC/4548-4": 0,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("features\n got %v\nwant %v", got, want)
	}
	if idx, _ := x.Row(1); len(idx) != 0 {
		t.Errorf("empty history has features %v", idx)
	}
	// A space saved before pieced codes counted toward their parent counts every piece, as
	// its model was trained.
	old := &Space{VocabSize: sp.VocabSize, Windows: sp.Windows, LastValue: sp.LastValue}
	var y CSR
	old.NewBuilder(tok, tok.NewCodeMap(codes)).Append(&y, Row{Events: ev, Birth: 0, Sex: data.SexMale, PredictionTime: pt})
	oldGot := map[string]float32{}
	idx, val = y.Row(0)
	for i := range idx {
		oldGot[sp.Name(int(idx[i]), v)] = val[i]
	}
	if oldGot["count[all]:##.65"] != 1 || oldGot["count[all]:ICD10/E11"] != 1 {
		t.Errorf("a space without pieced_codes_count_parent: %v", oldGot)
	}
	dir := t.TempDir()
	if err := sp.Save(dir, v); err != nil {
		t.Fatal(err)
	}
	back, err := LoadSpace(dir)
	if err != nil || back.VocabSize != sp.VocabSize || !reflect.DeepEqual(back.Windows, sp.Windows) || !back.LastValue ||
		!back.ParentOnly || back.Check(tok) != nil {
		t.Errorf("round trip %+v %v", back, err)
	}
	if _, err := LoadSpace(filepath.Join(dir, "nope")); err == nil {
		t.Error("missing features.json accepted")
	}
	if _, err := NewSpace(tok, Config{Windows: []int64{0, 0}}); err == nil {
		t.Error("duplicate window accepted")
	}
}

// TestSpaceWithoutLastValue is a space saved before last values existed: the same width and
// rows as then.
func TestSpaceWithoutLastValue(t *testing.T) {
	v, _ := tokenize.NewVocab(append(tokenize.SpecialTokens(), "LOINC/4548-4"))
	tok := tokenize.New(v)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SpaceFile), []byte(`{"vocab_size": 6, "windows_us": [0]}`),
		0o644); err != nil {
		t.Fatal(err)
	}
	sp, err := LoadSpace(dir)
	if err != nil || sp.LastValue || sp.NumFeatures() != 3+v.Len() {
		t.Fatalf("%+v %v", sp, err)
	}
	codes := data.NewCodes()
	lab := codes.ID("LOINC/4548-4")
	var x CSR
	sp.NewBuilder(tok, tok.NewCodeMap(codes)).Append(&x,
		Row{Events: []data.Event{{Time: 5, Code: lab, Value: 48}}, Birth: data.StaticTime, PredictionTime: 10})
	if idx, val := x.Row(0); len(idx) != 1 || val[0] != 1 {
		t.Fatalf("row %v %v, want only the count", idx, val)
	}
}

// TestFeatMapAnyCode: featmap.txt is whitespace separated (XGBoost's FeatureMap reads
// "id name type" with >>), so every feature name is one field whatever its code holds; the
// name carries the code's text form, which decodes back to the code.
func TestFeatMapAnyCode(t *testing.T) {
	weird := []string{"LAB//51498// ", "HOSPITAL_ADMISSION//EW EMER.//EMERGENCY ROOM",
		"MEDICATION//START//Insulin Glargine 100 unit/mL",
		"[MASK]", "NOTE//naïve\u00a0café", "LAB//x\ty"}
	toks := tokenize.SpecialTokens()
	for _, c := range weird {
		toks = append(toks, data.CodeText(c))
	}
	v, err := tokenize.NewVocab(toks)
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenize.New(v)
	sp, err := NewSpace(tok, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	codes := data.NewCodes()
	var ev []data.Event
	for i, c := range weird {
		ev = append(ev, data.Event{Time: int64(i), Code: codes.ID(c), Value: data.NoValue})
	}
	var x CSR
	sp.NewBuilder(tok, tok.NewCodeMap(codes)).Append(&x, Row{Events: ev, Birth: data.StaticTime, PredictionTime: 100})
	got := map[string]bool{}
	idx, _ := x.Row(0)
	for _, i := range idx {
		got[sp.Name(int(i), v)] = true
	}
	for _, c := range weird {
		if name := "count[all]:" + data.CodeText(c); !got[name] {
			t.Errorf("no feature %q for code %q (got %v)", name, c, got)
		}
	}
	dir := t.TempDir()
	if err := sp.Save(dir, v); err != nil {
		t.Fatal(err)
	}
	buf, err := os.ReadFile(filepath.Join(dir, FeatMapFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(buf), "\n"), "\n")
	if len(lines) != sp.NumFeatures() {
		t.Fatalf("%d lines for %d features", len(lines), sp.NumFeatures())
	}
	back := map[string]bool{}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != strconv.Itoa(i) || f[1] != sp.Name(i, v) {
			t.Fatalf("featmap line %d: %q splits into %q", i, l, f)
		}
		if name, ok := strings.CutPrefix(f[1], "count[all]:"); ok {
			back[data.ParseCodeText(name)] = true
		}
	}
	for _, c := range weird {
		if !back[c] {
			t.Errorf("no featmap name decodes to %q", c)
		}
	}
}
