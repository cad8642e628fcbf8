package tokenize

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medseq/medseq/data"
)

func TestQuantileEdges(t *testing.T) {
	seq := func(lo, n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(lo + (n - 1 - i)) // descending: the function sorts
		}
		return v
	}
	halves := make([]float32, 100)
	for i := 50; i < 100; i++ {
		halves[i] = 1
	}
	for _, c := range []struct {
		name string
		vals []float32
		n    int
		want []float32
	}{
		{"1..1000 in tenths", seq(1, 1000), 10, []float32{101, 201, 301, 401, 501, 601, 701, 801, 901}},
		{"one value: no cut point", []float32{5, 5, 5, 5, 5, 5, 5, 5}, 4, nil},
		{"two values: one cut point", halves, 4, []float32{1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := quantileEdges(c.vals, c.n)
			if !slices.Equal(got, c.want) {
				t.Fatalf("edges %v, want %v", got, c.want)
			}
		})
	}
	edges := []float32{101, 201, 901}
	for _, c := range []struct {
		x    float32
		want int
	}{{-5, 0}, {1, 0}, {100.9, 0}, {101, 1}, {500, 2}, {901, 3}, {1e9, 3}} {
		if got := Bin(edges, c.x); got != c.want {
			t.Errorf("Bin(%v) = %d, want %d", c.x, got, c.want)
		}
	}
}

// valueFixture builds a tokenizer with 10 value bins over LAB/A (200 values 0..199), LAB/B
// (5 values: too few) and DX/C (no values).
func valueFixture(t *testing.T) (*Tokenizer, *data.Codes) {
	t.Helper()
	codes := data.NewCodes()
	a, b, c := codes.ID("LAB/A"), codes.ID("LAB/B"), codes.ID("DX/C")
	ctr := NewCounter(codes)
	ctr.KeepValues()
	for i := 0; i < 200; i++ {
		evs := []data.Event{{Time: int64(i), Code: a, Value: float32(i)}, {Time: int64(i), Code: c, Value: data.NoValue}}
		if i < 5 {
			evs = append(evs, data.Event{Time: int64(i), Code: b, Value: float32(i)})
		} else {
			evs = append(evs, data.Event{Time: int64(i), Code: b, Value: data.NoValue})
		}
		ctr.Add(evs, i%2)
	}
	cfg := DefaultBuildConfig()
	cfg.ValueBins = 10
	tok, rep, err := Build(ctr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ValueBins != 10 || rep.ValueCodes != 1 {
		t.Fatalf("report: %d bins, %d codes; want 10 and 1 (LAB/A only)", rep.ValueBins, rep.ValueCodes)
	}
	return tok, codes
}

func TestValueTokens(t *testing.T) {
	tok, codes := valueFixture(t)
	v := tok.Vocab
	for k := 1; k <= 10; k++ {
		id, ok := v.ID(ValueToken(k))
		if !ok || !tok.IsValueToken(id) {
			t.Fatalf("%s: id %d, in vocabulary %v", ValueToken(k), id, ok)
		}
	}
	if tok.IsValueToken(v.Cls) {
		t.Fatal("[CLS] is not a value token")
	}
	id := func(s string) int32 {
		i, ok := v.ID(s)
		if !ok {
			t.Fatalf("no token %s", s)
		}
		return i
	}
	a, b, c := codes.ID("LAB/A"), codes.ID("LAB/B"), codes.ID("DX/C")
	m := tok.NewCodeMap(codes)
	enc := m.Encode(Input{Birth: data.StaticTime, Events: []data.Event{
		{Time: 1, Code: a, Value: 3}, {Time: 2, Code: a, Value: 199}, {Time: 3, Code: a, Value: data.NoValue},
		{Time: 4, Code: b, Value: 4}, {Time: 5, Code: c, Value: 1}, {Time: 6, Code: a, Value: 100},
	}}, Options{})
	want := []int32{v.Cls, id("LAB/A"), id("VALUE/Q1"), id("LAB/A"), id("VALUE/Q10"), id("LAB/A"), id("LAB/B"), id("DX/C"),
		id("LAB/A"), id("VALUE/Q6"), v.Sep}
	if !slices.Equal(enc.IDs, want) {
		t.Fatalf("ids %v, want %v", enc.IDs, want)
	}
	// The text path (HuggingFace's tokenizer.json) reads the same tokens.
	if txt := tok.EncodeText("LAB/A VALUE/Q1 LAB/A VALUE/Q10", Options{}); !slices.Equal(txt.IDs, append(want[:5:5], v.Sep)) {
		t.Fatalf("text ids %v", txt.IDs)
	}

	// Truncation never keeps a value token without its code: the 2 newest tokens of
	// [LAB/A Q1 LAB/A Q10 DX/C] would start at Q10.
	evs := []data.Event{{Time: 1, Code: a, Value: 3}, {Time: 2, Code: a, Value: 199}, {Time: 3, Code: c, Value: data.NoValue}}
	tr := m.Encode(Input{Birth: data.StaticTime, Events: evs}, Options{MaxLen: 4})
	if !slices.Equal(tr.IDs, []int32{v.Cls, id("DX/C"), v.Sep}) || tr.Truncated != 4 {
		t.Fatalf("truncated: ids %v (%d dropped), want [CLS] DX/C [SEP] with 4 dropped", tr.IDs, tr.Truncated)
	}
	tr = m.Encode(Input{Birth: data.StaticTime, Events: evs}, Options{MaxLen: 5})
	if !slices.Equal(tr.IDs, []int32{v.Cls, id("LAB/A"), id("VALUE/Q10"), id("DX/C"), v.Sep}) || tr.Truncated != 2 {
		t.Fatalf("truncated at a code: ids %v (%d dropped)", tr.IDs, tr.Truncated)
	}
}

func TestValueBinsSaveLoad(t *testing.T) {
	tok, codes := valueFixture(t)
	dir := filepath.Join(t.TempDir(), "tok")
	if err := Save(dir, false, tok, Config{}, nil); err != nil {
		t.Fatal(err)
	}
	back, cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Values == nil || cfg.ValueBins == nil || back.Values.N != 10 || !slices.Equal(back.Values.Edges["LAB/A"], tok.Values.Edges["LAB/A"]) {
		t.Fatalf("loaded value bins %+v", back.Values)
	}
	in := Input{Birth: data.StaticTime, Events: []data.Event{{Time: 1, Code: codes.ID("LAB/A"), Value: 42}}}
	if a, b := tok.NewCodeMap(codes).Encode(in, Options{}), back.NewCodeMap(codes).Encode(in, Options{}); !slices.Equal(a.IDs, b.IDs) {
		t.Fatalf("after a round trip: %v vs %v", b.IDs, a.IDs)
	}

	// A damaged medseq_tokenizer.json is refused with the file and the field named.
	path := filepath.Join(dir, ConfigFile)
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(map[string]any){
		"decreasing": func(m map[string]any) {
			m["value_bins"].(map[string]any)["edges"].(map[string]any)["LAB/A"] = []float64{5, 3}
		},
		"too many": func(m map[string]any) {
			m["value_bins"].(map[string]any)["edges"].(map[string]any)["LAB/A"] = []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
		},
		"one bin":               func(m map[string]any) { m["value_bins"].(map[string]any)["bins"] = 1 },
		"more bins than tokens": func(m map[string]any) { m["value_bins"].(map[string]any)["bins"] = 11 },
	} {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(buf, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			bad, _ := json.Marshal(m)
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), "value_bins") || !strings.Contains(err.Error(), ConfigFile) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestValueBinsBuildErrors(t *testing.T) {
	codes := data.NewCodes()
	ctr := NewCounter(codes)
	ctr.Add([]data.Event{{Code: codes.ID("VALUE/Q3"), Value: 1}, {Code: codes.ID("DX/C"), Value: data.NoValue}}, -1)
	cfg := DefaultBuildConfig()
	cfg.MinCount, cfg.ValueBins = 1, 10
	if _, _, err := Build(ctr, cfg); err == nil || !strings.Contains(err.Error(), "KeepValues") {
		t.Errorf("a counter without values: %v", err)
	}
	ctr = NewCounter(codes)
	ctr.KeepValues()
	ctr.Add([]data.Event{{Code: codes.ID("VALUE/Q3"), Value: 1}, {Code: codes.ID("DX/C"), Value: float32(math.NaN())}}, -1)
	if _, _, err := Build(ctr, cfg); err == nil || !strings.Contains(err.Error(), "VALUE/Q3") {
		t.Errorf("a code in the VALUE/Q namespace: %v", err)
	}
	cfg.ValueBins = 1
	if _, _, err := Build(ctr, cfg); err == nil || !strings.Contains(err.Error(), "value bins 1") {
		t.Errorf("one bin: %v", err)
	}
	// Without value bins the namespace is anyone's.
	cfg.ValueBins = 0
	if _, _, err := Build(ctr, cfg); err != nil {
		t.Errorf("no value bins: %v", err)
	}
}
