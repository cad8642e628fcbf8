package gbt

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/small.model is a legacy binary model written by xgb.SaveLegacyBinary (12 trees of
// depth 3, base_score 0.3, 40 features); small_expected.json holds rows (many on split
// thresholds) and libxgboost's predictions for them. Regenerate both with
// MEDSEQ_REGEN_GBT=1 go test -run TestWriteGBTTestdata ./model/xgb.
const smallModel = "testdata/small.model"

type expected struct {
	Indptr  []int64   `json:"indptr"`
	Indices []uint32  `json:"indices"`
	Data    []float32 `json:"data"`
	NumCol  int       `json:"num_col"`
	XGBoost []float32 `json:"xgboost"`
}

func readExpected(t testing.TB) (*CSR, []float32) {
	t.Helper()
	raw, err := os.ReadFile("testdata/small_expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	return &CSR{Indptr: e.Indptr, Indices: e.Indices, Data: e.Data, NumCol: e.NumCol}, e.XGBoost
}

func TestMatchesLibxgboost(t *testing.T) {
	p, err := Load(smallModel)
	if err != nil {
		t.Fatal(err)
	}
	if p.NumFeatures() != 40 || p.NumTrees() != 12 {
		t.Fatalf("%d features, %d trees", p.NumFeatures(), p.NumTrees())
	}
	x, want := readExpected(t)
	got, err := p.PredictCSR(x)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range want {
		d := math.Abs(got[i] - float64(want[i]))
		worst = max(worst, d)
		if !(d <= 1e-6) {
			t.Fatalf("row %d: leaves %v, libxgboost %v", i, got[i], want[i])
		}
		idx, val := x.Row(i)
		one, err := p.PredictSparse(idx, val)
		if err != nil || one != got[i] {
			t.Fatalf("row %d: PredictSparse %v (%v), PredictCSR %v", i, one, err, got[i])
		}
	}
	t.Logf("%d rows, max |leaves - libxgboost| = %.3g", len(want), worst)
}

// Without the fixes of patchLegacy, leaves itself gets this model wrong: proof that each fix
// is needed (the threshold fix on the rows that sit on thresholds).
func TestUnpatchedLeavesDiffers(t *testing.T) {
	raw, err := os.ReadFile(smallModel)
	if err != nil {
		t.Fatal(err)
	}
	fixed, _, err := patchLegacy(raw)
	if err != nil {
		t.Fatal(err)
	}
	// undo the threshold fix only: walk the same structure again, moving thresholds back up
	unfixed := append([]byte{}, fixed...)
	r := &reader{b: unfixed, off: learnerParamSize}
	r.str("objective")
	r.str("booster")
	nTrees := int(le.Uint32(unfixed[r.off:]))
	r.off += gbtreeParamSize
	for t := 0; t < nTrees; t++ {
		n := int(le.Uint32(unfixed[r.off+4:]))
		r.off += treeParamSize
		for i := 0; i < n; i++ {
			o := r.off + i*nodeSize
			if int32(le.Uint32(unfixed[o+4:])) != -1 {
				th := math.Float32frombits(le.Uint32(unfixed[o+16:]))
				le.PutUint32(unfixed[o+16:], math.Float32bits(math.Nextafter32(th, float32(math.Inf(1)))))
			}
		}
		r.off += n * (nodeSize + statSize)
	}
	x, want := readExpected(t)
	for _, tc := range []struct {
		name string
		b    []byte
		bad  bool
	}{{"patched", fixed, false}, {"leaves' <=", unfixed, true}} {
		p, err := fromPatched(tc.b, 40, nTrees)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := p.PredictCSR(x)
		wrong := 0
		for i := range want {
			if math.Abs(got[i]-float64(want[i])) > 1e-6 {
				wrong++
			}
		}
		t.Logf("%s: %d of %d rows differ from libxgboost", tc.name, wrong, len(want))
		if (wrong > 0) != tc.bad {
			t.Fatalf("%s: %d rows wrong", tc.name, wrong)
		}
	}
}

func TestPredictSparseErrors(t *testing.T) {
	p, err := Load(smallModel)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		idx  []uint32
		val  []float32
		want string
	}{
		{"lengths", []uint32{1, 2}, []float32{1}, "2 indices but 1 values"},
		{"out of range", []uint32{40}, []float32{1}, "feature index 40 out of range"},
	} {
		if _, err := p.PredictSparse(tc.idx, tc.val); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	// all missing, and NaN values, are fine (default directions)
	a, err := p.PredictSparse(nil, nil)
	if err != nil || !(a > 0 && a < 1) {
		t.Fatalf("all missing: %v %v", a, err)
	}
	b, err := p.PredictSparse([]uint32{0, 5}, []float32{float32(math.NaN()), float32(math.NaN())})
	if err != nil || a != b {
		t.Fatalf("explicit NaN %v (%v) differs from absent %v", b, err, a)
	}
	for _, x := range []*CSR{
		{Indptr: []int64{0, 1}, Indices: []uint32{50}, Data: []float32{1}, NumCol: 51},
		{Indptr: []int64{0, 2}, Indices: []uint32{1}, Data: []float32{1}, NumCol: 40},
		{Indptr: []int64{1, 1}, NumCol: 40},
		nil,
	} {
		if _, err := p.PredictCSR(x); err == nil {
			t.Errorf("PredictCSR(%+v): no error", x)
		}
	}
	if out, err := p.PredictCSR(&CSR{NumCol: 40}); err != nil || len(out) != 0 {
		t.Errorf("empty: %v %v", out, err)
	}
}

// Every prefix of a model file is an error, never a panic or a model.
func TestTruncatedFiles(t *testing.T) {
	raw, err := os.ReadFile(smallModel)
	if err != nil {
		t.Fatal(err)
	}
	// the last bytes (attributes) are not needed to predict; every prefix shorter than the
	// end of tree_info must fail
	needed := len(raw)
	for n := len(raw) - 1; n >= 0; n-- {
		if _, err := FromBytes(raw[:n]); err == nil {
			needed = n
		} else {
			break
		}
	}
	for n := 0; n < needed; n++ {
		if p, err := FromBytes(raw[:n]); err == nil || p != nil {
			t.Fatalf("prefix of %d bytes: no error", n)
		}
	}
	t.Logf("all %d prefixes shorter than %d bytes (of %d) fail cleanly", needed, needed, len(raw))
	path := filepath.Join(t.TempDir(), "cut.model")
	os.WriteFile(path, raw[:len(raw)/2], 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("Load of half a file: %v", err)
	}
}

// Random corruption never panics: Load returns an error or a model that predicts in range.
func TestCorruptFiles(t *testing.T) {
	raw, err := os.ReadFile(smallModel)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := readExpected(t)
	r := rand.New(rand.NewPCG(1, 2))
	errs := 0
	for i := 0; i < 3000; i++ {
		b := append([]byte{}, raw...)
		for k := 0; k < 1+r.IntN(4); k++ {
			pos := r.IntN(len(b))
			switch r.IntN(3) {
			case 0:
				b[pos] ^= byte(1 << r.IntN(8))
			case 1:
				b[pos] = 0xff
			default:
				b[pos] = byte(r.IntN(256))
			}
		}
		p, err := FromBytes(b)
		if err != nil {
			errs++
			continue
		}
		if _, err := p.PredictCSR(x); err != nil && !strings.Contains(err.Error(), "columns") {
			t.Fatalf("corrupted model %d predicts with error %v", i, err)
		}
	}
	t.Logf("%d of 3000 corrupted files rejected, the rest load and predict without panic", errs)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"text", []byte("not a model"), "truncated"},
		{"json", []byte(`{"learner":{}}` + strings.Repeat(" ", 200)), "corrupt model"},
	} {
		if _, err := FromBytes(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("absent file: no error")
	}
}
