package xgb

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/medseq/medseq/internal/testpy"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/medseq/medseq/model/gbt"
)

func needLib(t testing.TB) {
	t.Helper()
	if !Available {
		t.Skip("libxgboost is not linked in this build (cgo disabled or -tags noxgboost); install libxgboost-dev (scripts/install-deps.sh)")
	}
}

// synth builds a sparse, counts-like dataset: nCol columns, column unseenCol never present
// (if >= 0), a Zipf-like choice of codes per row, and labels from a known logistic model with
// interactions, about 20% positive.
func synth(seed uint64, n, nCol, unseenCol int) (*CSR, []float32) {
	r := rand.New(rand.NewPCG(seed, 7))
	zipf := rand.NewZipf(r, 1.2, 3, uint64(nCol-2))
	x := &CSR{Indptr: []int64{0}, NumCol: nCol}
	y := make([]float32, n)
	for i := 0; i < n; i++ {
		row := map[uint32]float32{}
		// column 0: age in years (continuous, always present)
		row[0] = float32(18 + r.Float64()*70)
		k := 3 + r.IntN(25)
		for j := 0; j < k; j++ {
			c := uint32(1 + zipf.Uint64())
			if int(c) == unseenCol {
				continue
			}
			row[c]++
		}
		cols := make([]uint32, 0, len(row))
		for c := range row {
			cols = append(cols, c)
		}
		sort.Slice(cols, func(a, b int) bool { return cols[a] < cols[b] })
		for _, c := range cols {
			x.Indices = append(x.Indices, c)
			x.Data = append(x.Data, row[c])
		}
		x.Indptr = append(x.Indptr, int64(len(x.Indices)))
		z := -3.2 + 0.03*(float64(row[0])-50) +
			0.8*math.Log1p(float64(row[3])) + 0.6*math.Log1p(float64(row[5])) -
			0.5*math.Log1p(float64(row[8])) + 0.4*float64(min(row[13], 3))
		if row[4] > 0 && row[7] > 0 {
			z += 1.5
		}
		if row[20] > 1 && row[0] > 60 {
			z += 1.0
		}
		if r.Float64() < 1/(1+math.Exp(-z)) {
			y[i] = 1
		}
	}
	return x, y
}

// sub returns rows [lo, hi) of x.
func sub(x *CSR, lo, hi int) *CSR {
	a, b := x.Indptr[lo], x.Indptr[hi]
	out := &CSR{NumCol: x.NumCol, Indices: x.Indices[a:b], Data: x.Data[a:b]}
	for i := lo; i <= hi; i++ {
		out.Indptr = append(out.Indptr, x.Indptr[i]-a)
	}
	return out
}

// appendRow adds a row (entries sorted by column) to m.
func appendRow(m *CSR, row map[uint32]float32) {
	cols := make([]uint32, 0, len(row))
	for c := range row {
		cols = append(cols, c)
	}
	sort.Slice(cols, func(a, b int) bool { return cols[a] < cols[b] })
	for _, c := range cols {
		m.Indices = append(m.Indices, c)
		m.Data = append(m.Data, row[c])
	}
	m.Indptr = append(m.Indptr, int64(len(m.Indices)))
}

type dataset struct {
	trX, tuX, teX *CSR
	trY, tuY, teY []float32
}

const (
	nCol      = 300
	unseenCol = 299
)

func newDataset(seed uint64) dataset {
	x, y := synth(seed, 5000, nCol, unseenCol)
	return dataset{
		trX: sub(x, 0, 3500), trY: y[:3500],
		tuX: sub(x, 3500, 4250), tuY: y[3500:4250],
		teX: sub(x, 4250, 5000), teY: y[4250:],
	}
}

func testParams() Params {
	p := DefaultParams()
	p.Rounds = 150
	p.EarlyStopping = 20
	p.NThread = 2
	p.Seed = 1
	return p
}

func train(t testing.TB, p Params, d dataset) (*Booster, []RoundLog) {
	t.Helper()
	b, logs, err := Train(context.Background(), p, d.trX, d.trY, d.tuX, d.tuY, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, logs
}

// modelJSON is the part of XGBoost's model.json the tests read.
type modelJSON struct {
	Learner struct {
		GradientBooster struct {
			Model struct {
				GBTreeModelParam struct {
					NumTrees string `json:"num_trees"`
				} `json:"gbtree_model_param"`
				Trees []struct {
					LeftChildren    []int     `json:"left_children"`
					SplitIndices    []uint32  `json:"split_indices"`
					SplitConditions []float32 `json:"split_conditions"`
				} `json:"trees"`
			} `json:"model"`
		} `json:"gradient_booster"`
	} `json:"learner"`
}

func readModelJSON(t testing.TB, path string) modelJSON {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m modelJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// thresholdRows builds rows whose values sit exactly on split thresholds: for every split
// (feature, threshold), one row with only that entry and one with it on top of a real row.
func thresholdRows(m modelJSON, base *CSR) *CSR {
	out := &CSR{Indptr: []int64{0}, NumCol: base.NumCol}
	k := 0
	for _, tr := range m.Learner.GradientBooster.Model.Trees {
		for i, l := range tr.LeftChildren {
			if l == -1 {
				continue
			}
			f, th := tr.SplitIndices[i], tr.SplitConditions[i]
			appendRow(out, map[uint32]float32{f: th})
			row := map[uint32]float32{}
			idx, val := base.Row(k % base.Rows())
			for j := range idx {
				row[idx[j]] = val[j]
			}
			row[f] = th
			appendRow(out, row)
			k++
		}
	}
	return out
}

func maxDiff(t testing.TB, a []float32, b []float64) (float64, int) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d vs %d predictions", len(a), len(b))
	}
	worst, at := 0.0, -1
	for i := range a {
		if d := math.Abs(float64(a[i]) - b[i]); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	return worst, at
}

func TestParityLeavesLibxgboost(t *testing.T) {
	needLib(t)
	d := newDataset(1)
	auc := testParams()
	auc.EvalMetric = "auc"
	auc.MaxDepth = 3
	base := testParams()
	base.baseScore = 0.2
	base.EarlyStopping = 0
	base.Rounds = 60
	deep := testParams()
	deep.MaxDepth = 10
	deep.MinChildWeight = 0
	deep.Eta = 0.3
	for _, tc := range []struct {
		name string
		p    Params
	}{
		{"defaults", testParams()},
		{"auc-depth3", auc},
		{"base_score-0.2", base},
		{"deep", deep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := train(t, tc.p, d)
			dir := t.TempDir()
			legacy, js := filepath.Join(dir, "model.bin"), filepath.Join(dir, "model.json")
			if err := b.SaveLegacyBinary(legacy); err != nil {
				t.Fatal(err)
			}
			if err := b.SaveJSON(js); err != nil {
				t.Fatal(err)
			}
			pr, err := gbt.Load(legacy)
			if err != nil {
				t.Fatal(err)
			}
			if pr.NumFeatures() != nCol || pr.NumTrees() != b.BestIteration()+1 {
				t.Fatalf("leaves: %d features, %d trees; want %d, %d", pr.NumFeatures(), pr.NumTrees(), nCol, b.BestIteration()+1)
			}
			m := readModelJSON(t, js)
			th := thresholdRows(m, d.teX)
			if th.Rows() < 20 {
				t.Fatalf("only %d threshold rows", th.Rows())
			}
			for _, set := range []struct {
				name string
				x    *CSR
			}{{"held-out", d.teX}, {"on-thresholds", th}} {
				px, err := b.Predict(set.x)
				if err != nil {
					t.Fatal(err)
				}
				pl, err := pr.PredictCSR(set.x)
				if err != nil {
					t.Fatal(err)
				}
				worst, at := maxDiff(t, px, pl)
				t.Logf("%s: %d rows, %d trees, max |leaves - libxgboost| = %.3g", set.name, set.x.Rows(), pr.NumTrees(), worst)
				if worst > 1e-6 {
					t.Errorf("%s: row %d: leaves %v, libxgboost %v (diff %g)", set.name, at, pl[at], px[at], worst)
				}
				// One row at a time through PredictSparse gives the same.
				for i := 0; i < set.x.Rows(); i += 7 {
					idx, val := set.x.Row(i)
					p1, err := pr.PredictSparse(idx, val)
					if err != nil {
						t.Fatal(err)
					}
					if p1 != pl[i] {
						t.Fatalf("%s row %d: PredictSparse %v, PredictCSR %v", set.name, i, p1, pl[i])
					}
				}
			}
		})
	}
}

// The thresholds really bite: reading the model with leaves' own `<=` (no Nextafter) must
// change some predictions on the threshold rows, or the test above proves nothing.
func TestThresholdRowsHitSplits(t *testing.T) {
	needLib(t)
	d := newDataset(2)
	b, _ := train(t, testParams(), d)
	dir := t.TempDir()
	js := filepath.Join(dir, "model.json")
	if err := b.SaveJSON(js); err != nil {
		t.Fatal(err)
	}
	th := thresholdRows(readModelJSON(t, js), d.teX)
	// Nudge every threshold value up by one float32 step: XGBoost's `<` then sends some of
	// them the other way, so the threshold values are decisive.
	up := &CSR{Indptr: th.Indptr, Indices: th.Indices, Data: make([]float32, len(th.Data)), NumCol: th.NumCol}
	copy(up.Data, th.Data)
	m := readModelJSON(t, js)
	k := 0
	for _, tr := range m.Learner.GradientBooster.Model.Trees {
		for i, l := range tr.LeftChildren {
			if l == -1 {
				continue
			}
			// rows 2k and 2k+1 carry this split's value; the first has only that entry
			up.Data[th.Indptr[2*k]] = math.Nextafter32(tr.SplitConditions[i], float32(math.Inf(-1)))
			k++
		}
	}
	p1, err := b.Predict(th)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := b.Predict(up)
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for i := range p1 {
		if p1[i] != p2[i] {
			changed++
		}
	}
	t.Logf("%d of %d threshold rows change when the value moves one ulp below the threshold", changed, len(p1))
	if changed == 0 {
		t.Fatal("no threshold row is decided by its threshold value")
	}
}

func TestUnseenAndMissingFeature(t *testing.T) {
	needLib(t)
	d := newDataset(3)
	b, _ := train(t, testParams(), d)
	dir := t.TempDir()
	legacy := filepath.Join(dir, "model.bin")
	if err := b.SaveLegacyBinary(legacy); err != nil {
		t.Fatal(err)
	}
	pr, err := gbt.Load(legacy)
	if err != nil {
		t.Fatal(err)
	}
	gain, err := b.FeatureGain()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gain[unseenCol]; ok {
		t.Fatalf("unseen column %d has gain", unseenCol)
	}
	// The most important feature, to drop as missing.
	top, topGain := -1, 0.0
	for f, g := range gain {
		if g > topGain {
			top, topGain = f, g
		}
	}
	x := &CSR{Indptr: []int64{0}, NumCol: nCol}
	for i := 0; i < 50; i++ {
		idx, val := d.teX.Row(i)
		row := map[uint32]float32{}
		for j := range idx {
			row[idx[j]] = val[j]
		}
		appendRow(x, row) // as is
		withUnseen := map[uint32]float32{unseenCol: 7}
		for k, v := range row {
			withUnseen[k] = v
		}
		appendRow(x, withUnseen) // + a value in a column never seen in training
		noTop := map[uint32]float32{}
		for k, v := range row {
			if int(k) != top {
				noTop[k] = v
			}
		}
		appendRow(x, noTop)                // the top feature missing
		appendRow(x, map[uint32]float32{}) // everything missing
	}
	px, err := b.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pr.PredictCSR(x)
	if err != nil {
		t.Fatal(err)
	}
	if worst, at := maxDiff(t, px, pl); worst > 1e-6 {
		t.Fatalf("row %d: leaves %v, libxgboost %v", at, pl[at], px[at])
	}
	for i := 0; i < len(px); i += 4 {
		if px[i] != px[i+1] || pl[i] != pl[i+1] {
			t.Fatalf("row %d: an unseen feature changed the prediction: xgb %v -> %v, leaves %v -> %v", i/4, px[i], px[i+1], pl[i], pl[i+1])
		}
	}
	// An all-missing row: leaves and libxgboost agree (checked above) and it is the same for all.
	if px[3] != px[7] {
		t.Fatalf("all-missing rows differ: %v vs %v", px[3], px[7])
	}
	// Missing is not zero: with the top feature set to 0 the prediction generally differs.
	zero := &CSR{Indptr: []int64{0}, NumCol: nCol}
	for i := 0; i < 50; i++ {
		appendRow(zero, map[uint32]float32{uint32(top): 0})
	}
	pz, err := b.Predict(zero)
	if err != nil {
		t.Fatal(err)
	}
	plz, err := pr.PredictCSR(zero)
	if err != nil {
		t.Fatal(err)
	}
	if worst, at := maxDiff(t, pz, plz); worst > 1e-6 {
		t.Fatalf("explicit zero row %d: leaves %v, libxgboost %v", at, plz[at], pz[at])
	}
	t.Logf("top feature %d; all-missing p=%v, top=0 p=%v", top, px[3], pz[0])
}

func writeCSRRaw(t testing.TB, dir string, x *CSR) {
	t.Helper()
	write := func(name string, v any) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := binary.Write(f, binary.LittleEndian, v); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("indptr.i64", x.Indptr)
	write("indices.u4", x.Indices)
	write("data.f4", x.Data)
	if err := os.WriteFile(filepath.Join(dir, "shape.txt"), fmt.Appendf(nil, "%d %d\n", x.Rows(), x.NumCol), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPythonLoadsModelJSON(t *testing.T) {
	needLib(t)
	py := testpy.Require(t, "python3-xgboost", "xgboost", "numpy", "scipy")
	d := newDataset(4)
	b, _ := train(t, testParams(), d)
	dir := t.TempDir()
	js := filepath.Join(dir, "model.json")
	if err := b.SaveJSON(js); err != nil {
		t.Fatal(err)
	}
	x := thresholdRows(readModelJSON(t, js), d.teX)
	// held-out rows followed by the threshold rows
	all := &CSR{Indptr: append([]int64{}, d.teX.Indptr...), Indices: append([]uint32{}, d.teX.Indices...),
		Data: append([]float32{}, d.teX.Data...), NumCol: nCol}
	for i := 0; i < x.Rows(); i++ {
		idx, val := x.Row(i)
		all.Indices = append(all.Indices, idx...)
		all.Data = append(all.Data, val...)
		all.Indptr = append(all.Indptr, int64(len(all.Indices)))
	}
	writeCSRRaw(t, dir, all)
	out := filepath.Join(dir, "pred.f4")
	cmd := exec.Command(py, "testdata/predict_json.py", js, dir, out)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, msg)
	}
	t.Logf("python: %s", strings.TrimSpace(string(msg)))
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pyPred := make([]float32, len(raw)/4)
	if err := binary.Read(strings.NewReader(string(raw)), binary.LittleEndian, pyPred); err != nil {
		t.Fatal(err)
	}
	goPred, err := b.Predict(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(pyPred) != len(goPred) {
		t.Fatalf("python gave %d predictions for %d rows", len(pyPred), len(goPred))
	}
	for i := range goPred {
		if d := math.Abs(float64(pyPred[i] - goPred[i])); d > 1e-6 {
			t.Fatalf("row %d: python %v, go %v", i, pyPred[i], goPred[i])
		}
	}
}

func TestEarlyStoppingKeepsBest(t *testing.T) {
	needLib(t)
	d := newDataset(5)
	// Labels without signal: the tuning loss gets worse after a few rounds.
	r := rand.New(rand.NewPCG(9, 9))
	noisy := d
	noisy.trY = make([]float32, len(d.trY))
	noisy.tuY = make([]float32, len(d.tuY))
	for _, ys := range [][]float32{noisy.trY, noisy.tuY} {
		for i := range ys {
			if r.Float64() < 0.2 {
				ys[i] = 1
			}
		}
	}
	for _, metric := range []string{"logloss", "auc"} {
		t.Run(metric, func(t *testing.T) {
			p := testParams()
			p.EvalMetric = metric
			p.Eta = 0.3
			p.MaxDepth = 8
			p.MinChildWeight = 0
			p.Rounds = 300
			p.EarlyStopping = 10
			var seen []RoundLog
			b, logs, err := Train(context.Background(), p, noisy.trX, noisy.trY, noisy.tuX, noisy.tuY, func(l RoundLog) { seen = append(seen, l) })
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			best := b.BestIteration()
			t.Logf("%s: stopped after %d rounds, best %d", metric, len(logs), best)
			if len(seen) != len(logs) {
				t.Fatalf("onRound saw %d rounds, logs %d", len(seen), len(logs))
			}
			if len(logs) >= p.Rounds || len(logs) != best+1+p.EarlyStopping {
				t.Fatalf("%d rounds run with best %d and patience %d", len(logs), best, p.EarlyStopping)
			}
			for i, l := range logs {
				for _, m := range []string{"logloss", "auc"} {
					if _, ok := l.Train[m]; !ok {
						t.Fatalf("round %d: no train %s", i, m)
					}
					if _, ok := l.Tune[m]; !ok {
						t.Fatalf("round %d: no tune %s", i, m)
					}
				}
				v, bv := l.Tune[metric], logs[best].Tune[metric]
				better := v < bv
				if metric == "auc" {
					better = v > bv
				}
				if better || (i < best && v == bv) {
					t.Fatalf("round %d has tune %s %v, better than or equal to best round %d's %v", i, metric, v, best, bv)
				}
			}
			dir := t.TempDir()
			js, legacy := filepath.Join(dir, "model.json"), filepath.Join(dir, "model.bin")
			if err := b.SaveJSON(js); err != nil {
				t.Fatal(err)
			}
			if err := b.SaveLegacyBinary(legacy); err != nil {
				t.Fatal(err)
			}
			m := readModelJSON(t, js)
			if n := len(m.Learner.GradientBooster.Model.Trees); n != best+1 || m.Learner.GradientBooster.Model.GBTreeModelParam.NumTrees != fmt.Sprint(best+1) {
				t.Fatalf("model.json has %d trees (num_trees %s), want %d", n, m.Learner.GradientBooster.Model.GBTreeModelParam.NumTrees, best+1)
			}
			pr, err := gbt.Load(legacy)
			if err != nil {
				t.Fatal(err)
			}
			if pr.NumTrees() != best+1 {
				t.Fatalf("legacy model has %d trees, want %d", pr.NumTrees(), best+1)
			}
			before, err := b.Predict(d.teX)
			if err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{js, legacy} {
				lb, err := LoadBooster(path)
				if err != nil {
					t.Fatal(err)
				}
				if lb.BestIteration() != best || lb.NumFeatures() != nCol {
					t.Fatalf("%s: best %d, %d features", filepath.Base(path), lb.BestIteration(), lb.NumFeatures())
				}
				after, err := lb.Predict(d.teX)
				lb.Close()
				if err != nil {
					t.Fatal(err)
				}
				for i := range before {
					if before[i] != after[i] {
						t.Fatalf("%s: row %d: %v before save, %v after load", filepath.Base(path), i, before[i], after[i])
					}
				}
			}
			// No temp files left behind by the atomic writes.
			ents, _ := os.ReadDir(dir)
			if len(ents) != 2 {
				t.Fatalf("%d files in the model dir, want 2", len(ents))
			}
		})
	}
}

func TestFeatureGain(t *testing.T) {
	needLib(t)
	d := newDataset(6)
	b, _ := train(t, testParams(), d)
	gain, err := b.FeatureGain()
	if err != nil {
		t.Fatal(err)
	}
	type fg struct {
		f int
		g float64
	}
	var all []fg
	for f, g := range gain {
		if f < 0 || f >= nCol || !(g > 0) {
			t.Fatalf("feature %d gain %v", f, g)
		}
		all = append(all, fg{f, g})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].g > all[j].g })
	top := map[int]bool{}
	for _, e := range all[:min(6, len(all))] {
		top[e.f] = true
	}
	// age (0) and the strongest codes of the true model are among the top features
	for _, f := range []int{0, 3} {
		if !top[f] {
			t.Errorf("feature %d is not among the top features %v", f, all[:min(6, len(all))])
		}
	}
}

func TestCancel(t *testing.T) {
	needLib(t)
	d := newDataset(7)
	ctx, cancel := context.WithCancel(context.Background())
	p := testParams()
	p.EarlyStopping = 0
	_, logs, err := Train(ctx, p, d.trX, d.trY, d.tuX, d.tuY, func(l RoundLog) {
		if l.Round == 4 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || len(logs) != 5 {
		t.Fatalf("err %v after %d rounds, want context.Canceled after 5", err, len(logs))
	}
}

func TestBadInputs(t *testing.T) {
	needLib(t)
	d := newDataset(8)
	p := testParams()
	p.Rounds = 3
	nanY := append([]float32{}, d.trY...)
	nanY[10] = float32(math.NaN())
	twoY := append([]float32{}, d.trY...)
	twoY[3] = 2
	empty := &CSR{Indptr: []int64{0}, NumCol: nCol}
	badPtr := &CSR{Indptr: []int64{0, 5}, Indices: []uint32{1}, Data: []float32{1}, NumCol: nCol}
	badCol := &CSR{Indptr: []int64{0, 1}, Indices: []uint32{nCol}, Data: []float32{1}, NumCol: nCol}
	zeroDepth := p
	zeroDepth.MaxDepth = 0
	badMetric := p
	badMetric.EvalMetric = "error"
	badSub := p
	badSub.Subsample = 1.5
	badLambda, badAlpha := p, p
	badLambda.Lambda, badAlpha.Alpha = -1, math.Inf(1)
	allNeg := make([]float32, len(d.trY))
	for _, tc := range []struct {
		name  string
		p     Params
		x     *CSR
		y     []float32
		tuneX *CSR
		want  string
	}{
		{"label length", p, d.trX, d.trY[:100], d.tuX, "100 labels for 3500 rows"},
		{"NaN label", p, d.trX, nanY, d.tuX, "label 10 is NaN"},
		{"label 2", p, d.trX, twoY, d.tuX, "label 3 is 2"},
		{"NaN tune label", p, d.trX, d.trY, d.tuX, "tune: label 0 is NaN"},
		{"empty matrix", p, empty, []float32{}, d.tuX, "empty matrix"},
		{"nil matrix", p, nil, nil, d.tuX, "nil matrix"},
		{"bad indptr", p, badPtr, []float32{1}, d.tuX, "Indptr ends at 5"},
		{"column out of range", p, badCol, []float32{1}, d.tuX, "column 300 out of range"},
		{"one class", p, d.trX, allNeg, d.tuX, "need both"},
		{"max_depth", zeroDepth, d.trX, d.trY, d.tuX, "max_depth must be >= 1"},
		{"eval_metric", badMetric, d.trX, d.trY, d.tuX, "eval_metric must be"},
		{"subsample", badSub, d.trX, d.trY, d.tuX, "subsample must be in (0, 1]"},
		{"lambda", badLambda, d.trX, d.trY, d.tuX, "lambda must be >= 0"},
		{"alpha", badAlpha, d.trX, d.trY, d.tuX, "alpha must be >= 0"},
		{"tune columns", p, d.trX, d.trY, &CSR{Indptr: []int64{0}, NumCol: 3}, "tune has 3 columns"},
		{"no tune set", p, d.trX, d.trY, nil, "early stopping needs a tuning set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tuneY := d.tuY
			if tc.tuneX == nil {
				tuneY = nil
			}
			if strings.HasPrefix(tc.name, "NaN tune") {
				tuneY = append([]float32{float32(math.NaN())}, d.tuY[1:]...)
			}
			b, _, err := Train(context.Background(), tc.p, tc.x, tc.y, tc.tuneX, tuneY, nil)
			if err == nil {
				b.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}

	b, _ := train(t, p, d)
	t.Run("predict too many columns", func(t *testing.T) {
		_, err := b.Predict(&CSR{Indptr: []int64{0, 1}, Indices: []uint32{400}, Data: []float32{1}, NumCol: 401})
		if err == nil || !strings.Contains(err.Error(), "401 columns") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("predict empty", func(t *testing.T) {
		out, err := b.Predict(empty)
		if err != nil || len(out) != 0 {
			t.Fatalf("%v %v", out, err)
		}
	})
	dir := t.TempDir()
	good := filepath.Join(dir, "model.bin")
	if err := b.SaveLegacyBinary(good); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(good)
	corrupt := filepath.Join(dir, "corrupt.json")
	os.WriteFile(corrupt, []byte(`{"learner": 42, "version": [1, 7, 4]}`), 0o644)
	garbage := filepath.Join(dir, "garbage.bin")
	os.WriteFile(garbage, []byte("this is not a model at all"), 0o644)
	truncated := filepath.Join(dir, "truncated.bin")
	os.WriteFile(truncated, raw[:len(raw)/3], 0o644)
	for _, path := range []string{corrupt, garbage, truncated, filepath.Join(dir, "absent.json")} {
		t.Run("load "+filepath.Base(path), func(t *testing.T) {
			if lb, err := LoadBooster(path); err == nil {
				lb.Close()
				t.Fatal("no error")
			} else {
				t.Log(err)
			}
			if _, err := gbt.Load(path); err == nil {
				t.Fatal("gbt: no error")
			}
		})
	}
	t.Run("closed booster", func(t *testing.T) {
		b2, _ := train(t, p, d)
		b2.Close()
		b2.Close()
		if _, err := b2.Predict(d.teX); err == nil {
			t.Fatal("predict after close: no error")
		}
		if err := b2.SaveJSON(filepath.Join(dir, "x.json")); err == nil {
			t.Fatal("save after close: no error")
		}
	})
}

// libgomp must see OMP_WAIT_POLICY=PASSIVE when it initialises. Run this test binary again
// with OMP_DISPLAY_ENV=true, which makes libgomp print its settings at initialisation.
func TestOMPWaitPolicy(t *testing.T) {
	needLib(t)
	if os.Getenv("MEDSEQ_XGB_CHILD") == "1" {
		fmt.Println("C getenv OMP_WAIT_POLICY =", ompWaitPolicy())
		return
	}
	for _, tc := range []struct{ set, want string }{{"", "PASSIVE"}, {"ACTIVE", "ACTIVE"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOMPWaitPolicy$", "-test.v")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "OMP_WAIT_POLICY=") && !strings.HasPrefix(kv, "OMP_DISPLAY_ENV=") {
				env = append(env, kv)
			}
		}
		env = append(env, "MEDSEQ_XGB_CHILD=1", "OMP_DISPLAY_ENV=true")
		if tc.set != "" {
			env = append(env, "OMP_WAIT_POLICY="+tc.set)
		}
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "OMP_WAIT_POLICY = '"+tc.want+"'") {
			t.Fatalf("set %q: libgomp did not initialise with OMP_WAIT_POLICY=%s:\n%s", tc.set, tc.want, out)
		}
		if !strings.Contains(string(out), "C getenv OMP_WAIT_POLICY = "+tc.want) {
			t.Fatalf("set %q: C environment lacks OMP_WAIT_POLICY=%s:\n%s", tc.set, tc.want, out)
		}
	}
}

// TestWriteGBTTestdata regenerates model/gbt/testdata (a small legacy model and libxgboost's
// predictions for it), which the pure-Go tests of model/gbt use: MEDSEQ_REGEN_GBT=1 go test.
func TestWriteGBTTestdata(t *testing.T) {
	if os.Getenv("MEDSEQ_REGEN_GBT") != "1" {
		t.Skip("set MEDSEQ_REGEN_GBT=1 to regenerate model/gbt/testdata")
	}
	needLib(t)
	x, y := synth(11, 1200, 40, 39)
	d := dataset{trX: sub(x, 0, 800), trY: y[:800], tuX: sub(x, 800, 1000), tuY: y[800:1000], teX: sub(x, 1000, 1200)}
	p := testParams()
	p.Rounds = 12
	p.MaxDepth = 3
	p.EarlyStopping = 0
	p.baseScore = 0.3
	b, _ := train(t, p, d)
	dir := "../gbt/testdata"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveLegacyBinary(filepath.Join(dir, "small.model")); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(t.TempDir(), "m.json")
	if err := b.SaveJSON(js); err != nil {
		t.Fatal(err)
	}
	rows := thresholdRows(readModelJSON(t, js), d.teX)
	for i := 0; i < d.teX.Rows(); i++ {
		idx, val := d.teX.Row(i)
		rows.Indices = append(rows.Indices, idx...)
		rows.Data = append(rows.Data, val...)
		rows.Indptr = append(rows.Indptr, int64(len(rows.Indices)))
	}
	appendRow(rows, map[uint32]float32{})
	pred, err := b.Predict(rows)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{"indptr": rows.Indptr, "indices": rows.Indices, "data": rows.Data,
		"num_col": rows.NumCol, "xgboost": pred})
	if err := os.WriteFile(filepath.Join(dir, "small_expected.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
}
