package gbt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"

	"github.com/dmitryikh/leaves"
)

// CSR holds the rows of a sparse matrix in compressed sparse row form: row i's entries are
// Indices[Indptr[i]:Indptr[i+1]] (column indices) and Data[Indptr[i]:Indptr[i+1]] (values).
// An absent entry is MISSING, not zero, as in XGBoost. NumCol is the number of columns.
type CSR struct {
	Indptr  []int64
	Indices []uint32
	Data    []float32
	NumCol  int
}

// Rows is the number of rows (0 for an empty or malformed matrix).
func (m *CSR) Rows() int {
	if m == nil || len(m.Indptr) == 0 {
		return 0
	}
	return len(m.Indptr) - 1
}

// Row returns the column indices and values of row i's present entries.
func (m *CSR) Row(i int) ([]uint32, []float32) {
	a, b := m.Indptr[i], m.Indptr[i+1]
	return m.Indices[a:b], m.Data[a:b]
}

// Validate checks the matrix's shape: Indptr starts at 0, never decreases and ends at
// len(Indices) == len(Data); every column index is below NumCol. An empty matrix (no rows) is
// valid here; callers that need rows check Rows.
func (m *CSR) Validate() error {
	if m == nil {
		return errors.New("csr: nil matrix")
	}
	if m.NumCol < 0 {
		return fmt.Errorf("csr: NumCol %d < 0", m.NumCol)
	}
	if len(m.Indices) != len(m.Data) {
		return fmt.Errorf("csr: %d indices but %d values", len(m.Indices), len(m.Data))
	}
	if len(m.Indptr) == 0 {
		if len(m.Indices) != 0 {
			return errors.New("csr: entries without Indptr")
		}
		return nil
	}
	if m.Indptr[0] != 0 {
		return fmt.Errorf("csr: Indptr[0] = %d, want 0", m.Indptr[0])
	}
	for i := 1; i < len(m.Indptr); i++ {
		if m.Indptr[i] < m.Indptr[i-1] {
			return fmt.Errorf("csr: Indptr decreases at row %d", i-1)
		}
	}
	if last := m.Indptr[len(m.Indptr)-1]; last != int64(len(m.Indices)) {
		return fmt.Errorf("csr: Indptr ends at %d but there are %d entries", last, len(m.Indices))
	}
	for k, c := range m.Indices {
		if int64(c) >= int64(m.NumCol) {
			return fmt.Errorf("csr: entry %d: column %d out of range (NumCol %d)", k, c, m.NumCol)
		}
	}
	return nil
}

// Predictor predicts probabilities with a binary:logistic gradient-boosted tree model. It is
// safe for concurrent use.
type Predictor struct {
	ens         *leaves.Ensemble
	numFeatures int
	numTrees    int
	bufs        sync.Pool // *[]float64 of numFeatures, all NaN between uses
}

// Load reads the legacy XGBoost binary model at path (as xgb.SaveLegacyBinary writes it).
func Load(path string) (*Predictor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gbt: %w", err)
	}
	p, err := FromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("gbt: %s: %w", path, err)
	}
	return p, nil
}

// FromBytes reads a legacy XGBoost binary model from memory. raw is not modified.
func FromBytes(raw []byte) (*Predictor, error) {
	fixed, info, err := patchLegacy(raw)
	if err != nil {
		return nil, err
	}
	return fromPatched(fixed, info.numFeatures, info.numTrees)
}

// fromPatched hands a checked and patched model to leaves.
func fromPatched(fixed []byte, numFeatures, numTrees int) (p *Predictor, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("corrupt model: %v", r)
		}
	}()
	// loadTransformation=false: leaves returns the raw margin and we apply the logistic
	// function ourselves (no allocation per prediction).
	ens, err := leaves.XGEnsembleFromReader(bufio.NewReader(bytes.NewReader(fixed)), false)
	if err != nil {
		return nil, fmt.Errorf("corrupt model: %w", err)
	}
	if ens.NEstimators() != numTrees || ens.NRawOutputGroups() != 1 || ens.NFeatures() > numFeatures {
		return nil, fmt.Errorf("corrupt model: leaves read %d trees in %d groups, file has %d trees",
			ens.NEstimators(), ens.NRawOutputGroups(), numTrees)
	}
	p = &Predictor{ens: ens, numFeatures: numFeatures, numTrees: numTrees}
	p.bufs.New = func() any {
		b := make([]float64, p.numFeatures)
		for i := range b {
			b[i] = math.NaN()
		}
		return &b
	}
	return p, nil
}

// NumFeatures is the number of columns the model was trained on; feature indices must be
// below it.
func (p *Predictor) NumFeatures() int { return p.numFeatures }

// NumTrees is the number of trees in the model.
func (p *Predictor) NumTrees() int { return p.numTrees }

// PredictSparse predicts the probability for one row given by its present entries (column
// indices and values); every other feature is missing.
func (p *Predictor) PredictSparse(indices []uint32, values []float32) (float64, error) {
	if len(indices) != len(values) {
		return 0, fmt.Errorf("gbt: %d indices but %d values", len(indices), len(values))
	}
	for _, c := range indices {
		if int64(c) >= int64(p.numFeatures) {
			return 0, fmt.Errorf("gbt: feature index %d out of range (model has %d features)", c, p.numFeatures)
		}
	}
	bp := p.bufs.Get().(*[]float64)
	fv := *bp
	y := p.predictRow(fv, indices, values)
	p.bufs.Put(bp)
	return y, nil
}

// predictRow fills fv (all NaN) with the row, predicts, and restores fv to all NaN. Indices
// must be in range.
func (p *Predictor) predictRow(fv []float64, indices []uint32, values []float32) float64 {
	for k, c := range indices {
		fv[c] = float64(values[k])
	}
	margin := p.ens.PredictSingle(fv, 0)
	for _, c := range indices {
		fv[c] = math.NaN()
	}
	return sigmoid(margin)
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// PredictCSR predicts the probability for every row of x. x.NumCol may be below
// NumFeatures (the trailing features are missing) but not above it, as in XGBoost.
func (p *Predictor) PredictCSR(x *CSR) ([]float64, error) {
	if err := x.Validate(); err != nil {
		return nil, fmt.Errorf("gbt: %w", err)
	}
	if x.NumCol > p.numFeatures {
		return nil, fmt.Errorf("gbt: matrix has %d columns but the model has %d features", x.NumCol, p.numFeatures)
	}
	n := x.Rows()
	out := make([]float64, n)
	if n == 0 {
		return out, nil
	}
	workers := runtime.GOMAXPROCS(0)
	const minRowsPerWorker = 256
	if w := n / minRowsPerWorker; w < workers {
		workers = max(w, 1)
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			bp := p.bufs.Get().(*[]float64)
			fv := *bp
			for i := lo; i < hi; i++ {
				a, b := x.Indptr[i], x.Indptr[i+1]
				out[i] = p.predictRow(fv, x.Indices[a:b], x.Data[a:b])
			}
			p.bufs.Put(bp)
		}(lo, hi)
	}
	wg.Wait()
	return out, nil
}

// ---- the legacy binary format of XGBoost 1.x ----
//
// Layout (little endian), from XGBoost's learner.cc, gbtree_model.cc and tree_model.cc:
//
//	["binf"]                           optional marker
//	LearnerModelParam   136 bytes      base_score f32 @0, num_feature u32 @4, num_class i32 @8
//	objective           u64 length + bytes
//	booster             u64 length + bytes
//	GBTreeModelParam    160 bytes      num_trees @0, num_parallel_tree @4, num_feature @8,
//	                                   num_output_group @24, size_leaf_vector @28
//	num_trees × tree:
//	  TreeParam         148 bytes      num_roots @0, num_nodes @4, num_feature @16, size_leaf_vector @20
//	  nodes             num_nodes × 20 parent, cleft, cright i32, sindex u32, info f32
//	  stats             num_nodes × 16
//	  [leaf vector      u64 length + f32s, when size_leaf_vector > 0]
//	tree_info           num_trees × i32
//	(attributes and the rest, which leaves does not read)

const (
	learnerParamSize = 136
	gbtreeParamSize  = 160
	treeParamSize    = 148
	nodeSize         = 20
	statSize         = 16
	maxNameLen       = 1 << 10
)

type legacyInfo struct {
	numFeatures int
	numTrees    int
}

var le = binary.LittleEndian

type reader struct {
	b   []byte
	off int
}

func (r *reader) need(n int, what string) error {
	if n < 0 || len(r.b)-r.off < n {
		return fmt.Errorf("truncated model: %s needs %d bytes at offset %d, %d left", what, n, r.off, len(r.b)-r.off)
	}
	return nil
}

func (r *reader) str(what string) (string, error) {
	if err := r.need(8, what); err != nil {
		return "", err
	}
	n := le.Uint64(r.b[r.off:])
	if n > maxNameLen {
		return "", fmt.Errorf("corrupt model: %s length %d", what, n)
	}
	r.off += 8
	if err := r.need(int(n), what); err != nil {
		return "", err
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s, nil
}

// patchLegacy checks the structure of an XGBoost 1.x legacy binary model and returns a copy
// that leaves reads correctly (see the package comment).
func patchLegacy(raw []byte) ([]byte, legacyInfo, error) {
	var info legacyInfo
	b := bytes.Clone(raw)
	if bytes.HasPrefix(b, []byte("binf")) {
		b = b[4:]
	}
	r := &reader{b: b}
	numFeature, err := patchLearner(r)
	if err != nil {
		return nil, info, err
	}
	numTrees, err := patchGBTree(r, numFeature)
	if err != nil {
		return nil, info, err
	}
	// Every tree must fit in what is left, so a corrupt count cannot make anyone allocate much.
	if int64(numTrees)*(treeParamSize+nodeSize+statSize) > int64(len(b)-r.off) {
		return nil, info, fmt.Errorf("truncated model: %d trees do not fit in %d bytes", numTrees, len(b)-r.off)
	}
	for t := 0; t < numTrees; t++ {
		if err := patchTree(r, t, numFeature); err != nil {
			return nil, info, err
		}
	}
	if err := r.need(4*numTrees, "tree_info"); err != nil {
		return nil, info, err
	}
	for t := 0; t < numTrees; t++ {
		if v := le.Uint32(b[r.off+4*t:]); v != 0 {
			return nil, info, fmt.Errorf("corrupt model: tree_info[%d] = %d", t, v)
		}
	}
	info.numFeatures = int(numFeature)
	info.numTrees = numTrees
	return b, info, nil
}

// patchLearner checks the learner parameters, objective and booster at r's start, turns the
// stored base_score into a margin, and returns num_feature; r is left after the booster's
// name.
func patchLearner(r *reader) (numFeature uint32, err error) {
	b := r.b
	if err := r.need(learnerParamSize, "learner parameters"); err != nil {
		return 0, err
	}
	baseScore := math.Float32frombits(le.Uint32(b[0:]))
	numFeature = le.Uint32(b[4:])
	numClass := int32(le.Uint32(b[8:]))
	r.off = learnerParamSize
	obj, err := r.str("objective")
	if err != nil {
		return 0, err
	}
	gbm, err := r.str("booster")
	if err != nil {
		return 0, err
	}
	if obj != "binary:logistic" {
		return 0, fmt.Errorf("unsupported objective %q (want binary:logistic)", obj)
	}
	if gbm != "gbtree" {
		return 0, fmt.Errorf("unsupported booster %q (want gbtree)", gbm)
	}
	if numClass > 1 {
		return 0, fmt.Errorf("unsupported model: %d classes", numClass)
	}
	if numFeature == 0 || numFeature > 1<<28 {
		return 0, fmt.Errorf("corrupt model: num_feature %d", numFeature)
	}
	// base_score: XGBoost 1.x stores the probability and turns it into a margin when it loads
	// the model (ProbToMargin of the logistic objective, in float32); leaves adds the stored
	// value to the margin as is.
	if !(baseScore > 0 && baseScore < 1) {
		return 0, fmt.Errorf("corrupt model: base_score %v is not a probability", baseScore)
	}
	margin := -float32(math.Log(float64(1/baseScore - 1)))
	le.PutUint32(b[0:], math.Float32bits(margin))
	return numFeature, nil
}

// patchGBTree checks the gbtree parameters at r (one output group, written when 0) and
// returns the number of trees; r is left after them.
func patchGBTree(r *reader, numFeature uint32) (numTrees int, err error) {
	b, gp := r.b, r.off
	if err := r.need(gbtreeParamSize, "gbtree parameters"); err != nil {
		return 0, err
	}
	trees := int32(le.Uint32(b[gp:]))
	numParallel := int32(le.Uint32(b[gp+4:]))
	gbNumFeature := int32(le.Uint32(b[gp+8:]))
	numGroup := int32(le.Uint32(b[gp+24:]))
	gbLeafVec := int32(le.Uint32(b[gp+28:]))
	r.off += gbtreeParamSize
	if trees <= 0 {
		return 0, fmt.Errorf("corrupt model: %d trees", trees)
	}
	if numParallel != 1 {
		return 0, fmt.Errorf("unsupported model: num_parallel_tree %d", numParallel)
	}
	if gbNumFeature < 0 || uint32(gbNumFeature) > numFeature {
		return 0, fmt.Errorf("corrupt model: gbtree num_feature %d, learner %d", gbNumFeature, numFeature)
	}
	switch numGroup {
	case 0: // XGBoost 1.x no longer writes it; a binary model has one output group
		le.PutUint32(b[gp+24:], 1)
	case 1:
	default:
		return 0, fmt.Errorf("unsupported model: %d output groups", numGroup)
	}
	if gbLeafVec != 0 {
		return 0, fmt.Errorf("unsupported model: size_leaf_vector %d", gbLeafVec)
	}
	return int(trees), nil
}

func patchTree(r *reader, t int, numFeature uint32) error {
	b := r.b
	what := fmt.Sprintf("tree %d", t)
	if err := r.need(treeParamSize, what); err != nil {
		return err
	}
	tp := r.off
	numRoots := int32(le.Uint32(b[tp:]))
	numNodes := int32(le.Uint32(b[tp+4:]))
	leafVec := int32(le.Uint32(b[tp+20:]))
	r.off += treeParamSize
	if numRoots != 1 {
		return fmt.Errorf("corrupt model: %s has %d roots", what, numRoots)
	}
	if leafVec != 0 {
		return fmt.Errorf("unsupported model: %s has size_leaf_vector %d", what, leafVec)
	}
	if numNodes <= 0 {
		return fmt.Errorf("corrupt model: %s has %d nodes", what, numNodes)
	}
	n := int(numNodes)
	if err := r.need(n*(nodeSize+statSize), what+" nodes"); err != nil {
		return err
	}
	nodes := r.off
	referenced := make([]bool, n)
	for i := 0; i < n; i++ {
		o := nodes + i*nodeSize
		cleft := int32(le.Uint32(b[o+4:]))
		cright := int32(le.Uint32(b[o+8:]))
		if cleft == -1 { // leaf
			continue
		}
		if i == 0 && n == 1 {
			return fmt.Errorf("corrupt model: %s: single node is not a leaf", what)
		}
		for _, c := range [2]int32{cleft, cright} {
			if c <= 0 || int(c) >= n || referenced[c] {
				return fmt.Errorf("corrupt model: %s node %d: bad child %d", what, i, c)
			}
			referenced[c] = true
		}
		sindex := le.Uint32(b[o+12:])
		if feat := sindex & (1<<31 - 1); feat >= numFeature {
			return fmt.Errorf("corrupt model: %s node %d splits on feature %d of %d", what, i, feat, numFeature)
		}
		// XGBoost: x < t goes left; leaves: x <= t goes left. For float32 x (and thus for the
		// float64 leaves compares), x <= nextafter(t, -inf) exactly when x < t.
		th := math.Float32frombits(le.Uint32(b[o+16:]))
		le.PutUint32(b[o+16:], math.Float32bits(math.Nextafter32(th, float32(math.Inf(-1)))))
	}
	r.off += n * (nodeSize + statSize)
	return nil
}
