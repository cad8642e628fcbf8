package features

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/medseq/medseq/data"
	"github.com/medseq/medseq/tokenize"
)

func TestRowFeatures(t *testing.T) {
	v, err := tokenize.NewVocab(append(tokenize.SpecialTokens(), "ICD10/I10", "ICD10/E66.9", "ICD10/E11", "##.65"))
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenize.New(v)
	codes := data.NewCodes()
	day := data.MicrosPerDay
	pt := 1000 * day
	ev := []data.Event{
		{Time: data.StaticTime, Code: codes.ID("SEX//M")}, // [UNK] in this vocabulary
		{Time: 100 * day, Code: codes.ID("ICD10/I10")},
		{Time: 700 * day, Code: codes.ID("ICD10/I10")},
		{Time: 990 * day, Code: codes.ID("ICD10/E11.65")}, // pieces ICD10/E11 ##.65
		{Time: 995 * day, Code: codes.ID("ICD10/E66.9")},
	}
	sp, err := NewSpace(tok, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	b := sp.NewBuilder(tok, tok.NewCodeMap(codes))
	var x CSR
	b.Append(&x, Row{Events: ev, Birth: 0, Sex: data.SexMale, PredictionTime: pt})
	b.Append(&x, Row{Events: nil, Birth: data.StaticTime, Sex: data.SexUnknown, PredictionTime: pt})
	if x.Rows() != 2 || x.NumCol != 3+3*v.Len() {
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
		"count[all]:[UNK]": 1, "count[all]:ICD10/I10": 2, "count[all]:ICD10/E11": 1, "count[all]:##.65": 1, "count[all]:ICD10/E66.9": 1,
		"count[365d]:ICD10/I10": 1, "count[365d]:ICD10/E11": 1, "count[365d]:##.65": 1, "count[365d]:ICD10/E66.9": 1,
		"count[30d]:ICD10/E11": 1, "count[30d]:##.65": 1, "count[30d]:ICD10/E66.9": 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("features\n got %v\nwant %v", got, want)
	}
	if idx, _ := x.Row(1); len(idx) != 0 {
		t.Errorf("empty history has features %v", idx)
	}
	dir := t.TempDir()
	if err := sp.Save(dir, v); err != nil {
		t.Fatal(err)
	}
	back, err := LoadSpace(dir)
	if err != nil || back.VocabSize != sp.VocabSize || !reflect.DeepEqual(back.Windows, sp.Windows) || back.Check(tok) != nil {
		t.Errorf("round trip %+v %v", back, err)
	}
	if _, err := LoadSpace(filepath.Join(dir, "nope")); err == nil {
		t.Error("missing features.json accepted")
	}
	if _, err := NewSpace(tok, Config{Windows: []int64{0, 0}}); err == nil {
		t.Error("duplicate window accepted")
	}
}
