//go:build cgo && !noxgboost

package xgb

/*
#cgo LDFLAGS: -lxgboost
#include <stdlib.h>
#include <xgboost/c_api.h>

static int medseq_xgb_create2(DMatrixHandle a, DMatrixHandle b, BoosterHandle *out) {
	DMatrixHandle d[2] = {a, b};
	return XGBoosterCreate(d, b ? 2 : 1, out);
}

static int medseq_xgb_eval2(BoosterHandle h, int iter, DMatrixHandle a, DMatrixHandle b, const char **out) {
	DMatrixHandle d[2] = {a, b};
	const char *names[2] = {"train", "tune"};
	return XGBoosterEvalOneIter(h, iter, d, names, b ? 2 : 1, out);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// Available reports whether this build links libxgboost (false with -tags noxgboost or
// without cgo).
const Available = true

// LibraryVersion is the version of the libxgboost this process loaded, e.g. "1.7.4" ("" in a
// build without libxgboost).
func LibraryVersion() string {
	var major, minor, patch C.int
	C.XGBoostVersion(&major, &minor, &patch)
	return fmt.Sprintf("%d.%d.%d", int(major), int(minor), int(patch))
}

// xgCall runs f, which calls into libxgboost, on one locked OS thread, so that
// XGBGetLastError (thread-local in libxgboost) and any thread-local output buffer f copies
// belong to that call. A non-zero return code becomes an error naming op.
func xgCall(op string, f func() C.int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if rc := f(); rc != 0 {
		msg := C.GoString(C.XGBGetLastError())
		if i := strings.Index(msg, "\nStack trace:"); i >= 0 {
			msg = msg[:i] // libxgboost appends its C++ backtrace
		}
		msg = strings.TrimSpace(msg)
		if msg == "" {
			msg = fmt.Sprintf("return code %d", int(rc))
		}
		return fmt.Errorf("xgb: %s: %s", op, msg)
	}
	return nil
}

// checkXY checks a training matrix and its labels (0 or 1, one per row).
func checkXY(what string, x *CSR, y []float32) error {
	if x == nil {
		return fmt.Errorf("xgb: %s: nil matrix", what)
	}
	if err := x.Validate(); err != nil {
		return fmt.Errorf("xgb: %s: %w", what, err)
	}
	n := x.Rows()
	if n == 0 {
		return fmt.Errorf("xgb: %s: empty matrix (no rows)", what)
	}
	if x.NumCol == 0 {
		return fmt.Errorf("xgb: %s: empty matrix (no columns)", what)
	}
	if len(y) != n {
		return fmt.Errorf("xgb: %s: %d labels for %d rows", what, len(y), n)
	}
	for i, v := range y {
		if v != 0 && v != 1 {
			return fmt.Errorf("xgb: %s: label %d is %v, want 0 or 1", what, i, v)
		}
	}
	return nil
}

// dmatrix builds an XGBoost DMatrix from x (absent entries are missing) with labels y.
func dmatrix(what string, x *CSR, y []float32) (C.DMatrixHandle, error) {
	var h C.DMatrixHandle
	if err := checkXY(what, x, y); err != nil {
		return h, err
	}
	// size_t is 64 bits on every platform libxgboost supports; int64 offsets are never
	// negative after Validate.
	if unsafe.Sizeof(C.size_t(0)) != unsafe.Sizeof(int64(0)) {
		return h, errors.New("xgb: size_t is not 64 bits")
	}
	var ind *C.uint
	var dat *C.float
	if len(x.Indices) > 0 {
		ind = (*C.uint)(unsafe.Pointer(&x.Indices[0]))
		dat = (*C.float)(unsafe.Pointer(&x.Data[0]))
	}
	err := xgCall(what+": XGDMatrixCreateFromCSREx", func() C.int {
		return C.XGDMatrixCreateFromCSREx((*C.size_t)(unsafe.Pointer(&x.Indptr[0])), ind, dat,
			C.size_t(len(x.Indptr)), C.size_t(len(x.Indices)), C.size_t(x.NumCol), &h)
	})
	if err != nil {
		return h, err
	}
	if len(y) > 0 {
		field := C.CString("label")
		defer C.free(unsafe.Pointer(field))
		err = xgCall(what+": set labels", func() C.int {
			return C.XGDMatrixSetFloatInfo(h, field, (*C.float)(unsafe.Pointer(&y[0])), C.bst_ulong(len(y)))
		})
		if err != nil {
			C.XGDMatrixFree(h)
			return h, err
		}
	}
	return h, nil
}

// Booster is a trained (or loaded) XGBoost binary:logistic model. It owns the libxgboost
// handle: Close frees it (a finalizer does too, as a safety net). Its methods are safe for
// concurrent use; calls into libxgboost on one Booster are serialised.
type Booster struct {
	mu          sync.Mutex
	h           C.BoosterHandle
	best        int
	numFeatures int
}

func newBooster(h C.BoosterHandle) (*Booster, error) {
	b := &Booster{h: h}
	var rounds C.int
	var nf C.bst_ulong
	err := xgCall("XGBoosterBoostedRounds", func() C.int { return C.XGBoosterBoostedRounds(h, &rounds) })
	if err == nil {
		err = xgCall("XGBoosterGetNumFeature", func() C.int { return C.XGBoosterGetNumFeature(h, &nf) })
	}
	if err != nil {
		C.XGBoosterFree(h)
		return nil, err
	}
	b.best = int(rounds) - 1
	b.numFeatures = int(nf)
	runtime.SetFinalizer(b, (*Booster).Close)
	return b, nil
}

// Close frees the libxgboost handle. It is safe to call more than once.
func (b *Booster) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h != nil {
		C.XGBoosterFree(b.h)
		b.h = nil
	}
	runtime.SetFinalizer(b, nil)
	return nil
}

func (b *Booster) handle() (C.BoosterHandle, error) {
	if b == nil || b.h == nil {
		return nil, errors.New("xgb: booster is closed")
	}
	return b.h, nil
}

// BestIteration is the round early stopping kept (0-based). The booster holds exactly rounds
// 0..BestIteration: Train cuts the later ones off, so Predict, SaveJSON, SaveLegacyBinary and
// FeatureGain all use only those.
func (b *Booster) BestIteration() int { return b.best }

// NumFeatures is the number of columns the booster was trained on.
func (b *Booster) NumFeatures() int { return b.numFeatures }

func setParam(h C.BoosterHandle, k, v string) error {
	ck, cv := C.CString(k), C.CString(v)
	defer C.free(unsafe.Pointer(ck))
	defer C.free(unsafe.Pointer(cv))
	return xgCall("set "+k, func() C.int { return C.XGBoosterSetParam(h, ck, cv) })
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// Train fits a binary:logistic booster (tree_method hist) on train and watches logloss and
// auc on train and tune after every round; onRound (if not nil) sees each round's log. With
// p.EarlyStopping > 0, training stops when p.EvalMetric on tune has not improved for that
// many rounds, and the booster keeps rounds 0..best only. tune may be nil only when
// p.EarlyStopping is 0. Train stops with ctx's error when ctx is cancelled (checked between
// rounds).
func Train(ctx context.Context, p Params, train *CSR, trainY []float32, tune *CSR, tuneY []float32,
	onRound func(RoundLog)) (*Booster, []RoundLog, error) {
	spw, err := checkTrain(p, train, trainY, tune, tuneY)
	if err != nil {
		return nil, nil, err
	}
	// XGBoost's random engine (row and column sampling) is thread-local and seeded on the
	// thread that configures the booster. A goroutine may move between OS threads between cgo
	// calls, and then later rounds sample from an unseeded engine: same seed, different model.
	// Keep the whole training on one OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dtrain, err := dmatrix("train", train, trainY)
	if err != nil {
		return nil, nil, err
	}
	defer C.XGDMatrixFree(dtrain)
	var dtune C.DMatrixHandle
	if tune != nil {
		if dtune, err = dmatrix("tune", tune, tuneY); err != nil {
			return nil, nil, err
		}
		defer C.XGDMatrixFree(dtune)
	}
	h, err := configuredBooster(p, spw, dtrain, dtune)
	if err != nil {
		return nil, nil, err
	}
	owned := true // h is freed on every error path until it is handed to a Booster
	defer func() {
		if owned {
			C.XGBoosterFree(h)
		}
	}()
	best, logs, err := boostRounds(ctx, h, p, dtrain, dtune, onRound)
	if err != nil {
		return nil, logs, err
	}
	if best+1 < len(logs) {
		var sliced C.BoosterHandle
		if err := xgCall("XGBoosterSlice", func() C.int {
			return C.XGBoosterSlice(h, 0, C.int(best+1), 1, &sliced)
		}); err != nil {
			return nil, logs, err
		}
		C.XGBoosterFree(h)
		h = sliced
	}
	owned = false
	b, err := newBooster(h)
	if err != nil {
		return nil, logs, err
	}
	if b.best != best {
		b.Close()
		return nil, logs, fmt.Errorf("xgb: booster has %d rounds, want %d", b.best+1, best+1)
	}
	return b, logs, nil
}

// checkTrain checks Train's parameters and matrices and returns the positive-class weight:
// p.ScalePosWeight, or negatives/positives of trainY when it is 0.
func checkTrain(p Params, train *CSR, trainY []float32, tune *CSR, tuneY []float32) (float64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if tune == nil && p.EarlyStopping > 0 {
		return 0, errors.New("xgb: early stopping needs a tuning set")
	}
	if train == nil {
		return 0, errors.New("xgb: train: nil matrix")
	}
	if tune != nil && tune.NumCol != train.NumCol {
		return 0, fmt.Errorf("xgb: tune has %d columns, train %d", tune.NumCol, train.NumCol)
	}
	if err := checkXY("train", train, trainY); err != nil {
		return 0, err
	}
	if tune != nil {
		if err := checkXY("tune", tune, tuneY); err != nil {
			return 0, err
		}
	}
	if p.ScalePosWeight != 0 {
		return p.ScalePosWeight, nil
	}
	var pos, neg float64
	for _, v := range trainY {
		if v == 1 {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return 0, fmt.Errorf("xgb: train: labels have %v positives and %v negatives; need both", pos, neg)
	}
	return neg / pos, nil
}

// configuredBooster creates a booster over dtrain (and dtune, for evaluation) with p's
// parameters; the caller frees it.
func configuredBooster(p Params, spw float64, dtrain, dtune C.DMatrixHandle) (C.BoosterHandle, error) {
	var h C.BoosterHandle
	if err := xgCall("XGBoosterCreate", func() C.int { return C.medseq_xgb_create2(dtrain, dtune, &h) }); err != nil {
		return h, err
	}
	nthread := p.NThread
	if nthread == 0 {
		nthread = runtime.NumCPU()
	}
	kv := [][2]string{
		{"verbosity", "0"},
		{"validate_parameters", "1"},
		{"objective", "binary:logistic"},
		{"booster", "gbtree"},
		{"tree_method", "hist"},
		{"eta", ftoa(p.Eta)},
		{"gamma", ftoa(p.Gamma)},
		{"max_depth", strconv.Itoa(p.MaxDepth)},
		{"min_child_weight", ftoa(p.MinChildWeight)},
		{"subsample", ftoa(p.Subsample)},
		{"colsample_bytree", ftoa(p.ColsampleByTree)},
		{"lambda", ftoa(p.Lambda)},
		{"alpha", ftoa(p.Alpha)},
		{"scale_pos_weight", ftoa(spw)},
		{"nthread", strconv.Itoa(nthread)},
		{"seed", strconv.FormatInt(p.Seed, 10)},
		{"eval_metric", "logloss"},
		{"eval_metric", "auc"},
	}
	if p.baseScore != 0 {
		kv = append(kv, [2]string{"base_score", ftoa(p.baseScore)})
	}
	for _, e := range kv {
		if err := setParam(h, e[0], e[1]); err != nil {
			C.XGBoosterFree(h)
			return h, err
		}
	}
	return h, nil
}

// boostRounds runs up to p.Rounds boosting rounds, evaluating each on train and tune, and
// returns the best round (the last without early stopping; else the best tune score of
// p.EvalMetric, stopping p.EarlyStopping rounds after it) and every round's log.
func boostRounds(ctx context.Context, h C.BoosterHandle, p Params, dtrain, dtune C.DMatrixHandle,
	onRound func(RoundLog)) (int, []RoundLog, error) {
	higherBetter := p.EvalMetric == "auc"
	var logs []RoundLog
	best, bestScore := -1, 0.0
	for it := 0; it < p.Rounds; it++ {
		if err := ctx.Err(); err != nil {
			return best, logs, err
		}
		rl, s, err := boostOneRound(h, it, dtrain, dtune)
		if err != nil {
			return best, logs, err
		}
		logs = append(logs, rl)
		if onRound != nil {
			onRound(rl)
		}
		if p.EarlyStopping == 0 {
			best = it
			continue
		}
		score, ok := rl.Tune[p.EvalMetric]
		if !ok {
			return best, logs, fmt.Errorf("xgb: round %d: no tune-%s in %q", it, p.EvalMetric, s)
		}
		if best < 0 || (higherBetter && score > bestScore) || (!higherBetter && score < bestScore) {
			best, bestScore = it, score
		} else if it-best >= p.EarlyStopping {
			break
		}
	}
	return best, logs, nil
}

// boostOneRound runs round it and reads its evaluation (parsed, and the line as XGBoost wrote it).
func boostOneRound(h C.BoosterHandle, it int, dtrain, dtune C.DMatrixHandle) (RoundLog, string, error) {
	if err := xgCall(fmt.Sprintf("round %d: XGBoosterUpdateOneIter", it), func() C.int {
		return C.XGBoosterUpdateOneIter(h, C.int(it), dtrain)
	}); err != nil {
		return RoundLog{}, "", err
	}
	var s string
	if err := xgCall(fmt.Sprintf("round %d: XGBoosterEvalOneIter", it), func() C.int {
		var out *C.char
		rc := C.medseq_xgb_eval2(h, C.int(it), dtrain, dtune, &out)
		if rc == 0 {
			s = C.GoString(out)
		}
		return rc
	}); err != nil {
		return RoundLog{}, s, err
	}
	rl, err := parseEval(it, s)
	return rl, s, err
}

// parseEval reads XGBoost's evaluation line, "[3]\ttrain-logloss:0.61\ttrain-auc:0.7\ttune-...".
func parseEval(it int, s string) (RoundLog, error) {
	rl := RoundLog{Round: it, Train: map[string]float64{}, Tune: map[string]float64{}}
	fields := strings.Split(strings.TrimSpace(s), "\t")
	if len(fields) < 2 || fields[0] != "["+strconv.Itoa(it)+"]" {
		return rl, fmt.Errorf("xgb: round %d: unexpected evaluation %q", it, s)
	}
	for _, f := range fields[1:] {
		name, val, ok := strings.Cut(f, ":")
		set, metric, ok2 := strings.Cut(name, "-")
		v, err := strconv.ParseFloat(val, 64)
		if !ok || !ok2 || err != nil {
			return rl, fmt.Errorf("xgb: round %d: unexpected evaluation %q", it, s)
		}
		switch set {
		case "train":
			rl.Train[metric] = v
		case "tune":
			rl.Tune[metric] = v
		}
	}
	return rl, nil
}

// Predict returns the probability for every row of x (absent entries are missing). x.NumCol
// may not exceed NumFeatures. It uses libxgboost's in-place prediction (no DMatrix).
func (b *Booster) Predict(x *CSR) ([]float32, error) {
	if err := x.Validate(); err != nil {
		return nil, fmt.Errorf("xgb: predict: %w", err)
	}
	n := x.Rows()
	if n == 0 {
		return []float32{}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	h, err := b.handle()
	if err != nil {
		return nil, err
	}
	if x.NumCol > b.numFeatures {
		return nil, fmt.Errorf("xgb: predict: matrix has %d columns but the booster has %d features", x.NumCol, b.numFeatures)
	}
	// XGBoost reads the arrays through __array_interface__ addresses: pin them for the call.
	ind, dat := x.Indices, x.Data
	if len(ind) == 0 { // a valid address for an empty array
		ind, dat = []uint32{0}, []float32{0}
	}
	var pin runtime.Pinner
	pin.Pin(&x.Indptr[0])
	pin.Pin(&ind[0])
	pin.Pin(&dat[0])
	defer pin.Unpin()
	arr := func(p unsafe.Pointer, n int, typ string) *C.char {
		return C.CString(fmt.Sprintf(`{"data":[%d,true],"shape":[%d],"typestr":"%s","version":3}`, uintptr(p), n, typ))
	}
	cIndptr := arr(unsafe.Pointer(&x.Indptr[0]), len(x.Indptr), "<i8")
	cInd := arr(unsafe.Pointer(&ind[0]), len(x.Indices), "<u4")
	cDat := arr(unsafe.Pointer(&dat[0]), len(x.Data), "<f4")
	cCfg := C.CString(`{"type":0,"training":false,"iteration_begin":0,"iteration_end":0,"strict_shape":false,"missing":NaN,"cache_id":0}`)
	for _, s := range []*C.char{cIndptr, cInd, cDat, cCfg} {
		defer C.free(unsafe.Pointer(s))
	}
	out := make([]float32, n)
	err = xgCall("predict: XGBoosterPredictFromCSR", func() C.int {
		var shape *C.bst_ulong
		var dim C.bst_ulong
		var res *C.float
		rc := C.XGBoosterPredictFromCSR(h, cIndptr, cInd, cDat, C.bst_ulong(x.NumCol), cCfg, nil, &shape, &dim, &res)
		if rc != 0 {
			return rc
		}
		total := 1
		for _, s := range unsafe.Slice(shape, int(dim)) {
			total *= int(s)
		}
		if total != n {
			return -2
		}
		copy(out, unsafe.Slice((*float32)(unsafe.Pointer(res)), n))
		return 0
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// saveBuffer returns the model in the given XGBoost format ("json" or "deprecated").
func (b *Booster) saveBuffer(format string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, err := b.handle()
	if err != nil {
		return nil, err
	}
	cfg := C.CString(`{"format":"` + format + `"}`)
	defer C.free(unsafe.Pointer(cfg))
	var buf []byte
	err = xgCall("XGBoosterSaveModelToBuffer("+format+")", func() C.int {
		var n C.bst_ulong
		var p *C.char
		rc := C.XGBoosterSaveModelToBuffer(h, cfg, &n, &p)
		if rc == 0 {
			buf = C.GoBytes(unsafe.Pointer(p), C.int(n))
		}
		return rc
	})
	return buf, err
}

// SaveJSON writes XGBoost's own model.json (which Python's xgboost loads), holding rounds
// 0..BestIteration, atomically (temp file, fsync, rename).
func (b *Booster) SaveJSON(path string) error {
	buf, err := b.saveBuffer("json")
	if err != nil {
		return err
	}
	return writeAtomic(path, buf)
}

// SaveLegacyBinary writes the same trees in XGBoost's legacy binary format, which
// model/gbt (leaves) loads, atomically.
func (b *Booster) SaveLegacyBinary(path string) error {
	buf, err := b.saveBuffer("deprecated")
	if err != nil {
		return err
	}
	return writeAtomic(path, buf)
}

func writeAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("xgb: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("xgb: %w", err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("xgb: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("xgb: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("xgb: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("xgb: %w", err)
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// FeatureGain returns the total gain of every feature used in a split (importance_type
// total_gain), by column index. Features never used are absent.
func (b *Booster) FeatureGain() (map[int]float64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, err := b.handle()
	if err != nil {
		return nil, err
	}
	cfg := C.CString(`{"importance_type":"total_gain"}`)
	defer C.free(unsafe.Pointer(cfg))
	var names []string
	var scores []float32
	err = xgCall("XGBoosterFeatureScore", func() C.int {
		var nf, dim C.bst_ulong
		var feats **C.char
		var shape *C.bst_ulong
		var sc *C.float
		rc := C.XGBoosterFeatureScore(h, cfg, &nf, &feats, &dim, &shape, &sc)
		if rc != 0 {
			return rc
		}
		for _, f := range unsafe.Slice(feats, int(nf)) {
			names = append(names, C.GoString(f))
		}
		total := 1
		for _, s := range unsafe.Slice(shape, int(dim)) {
			total *= int(s)
		}
		if total != int(nf) {
			return -2
		}
		scores = append(scores, unsafe.Slice((*float32)(unsafe.Pointer(sc)), total)...)
		return 0
	})
	if err != nil {
		return nil, err
	}
	out := make(map[int]float64, len(names))
	for i, name := range names {
		idx, err := strconv.Atoi(strings.TrimPrefix(name, "f"))
		if err != nil || !strings.HasPrefix(name, "f") {
			return nil, fmt.Errorf("xgb: feature score: unexpected feature name %q", name)
		}
		out[idx] = float64(scores[i])
	}
	return out, nil
}

// LoadBooster reads a model written by SaveJSON or SaveLegacyBinary.
func LoadBooster(path string) (*Booster, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("xgb: %w", err)
	}
	var h C.BoosterHandle
	if err := xgCall("XGBoosterCreate", func() C.int { return C.XGBoosterCreate(nil, 0, &h) }); err != nil {
		return nil, err
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	if err := xgCall("load "+path, func() C.int { return C.XGBoosterLoadModel(h, cp) }); err != nil {
		C.XGBoosterFree(h)
		return nil, err
	}
	if err := setParam(h, "verbosity", "0"); err != nil {
		C.XGBoosterFree(h)
		return nil, err
	}
	b, err := newBooster(h)
	if err != nil {
		return nil, err
	}
	if b.best < 0 || b.numFeatures <= 0 {
		b.Close()
		return nil, fmt.Errorf("xgb: %s: model has %d rounds and %d features", path, b.best+1, b.numFeatures)
	}
	return b, nil
}
