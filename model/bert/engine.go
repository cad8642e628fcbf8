package bert

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Backend returns the compute backend for a device: "cpu" is gomlx's pure-Go backend with
// unlimited parallelism (the fastest setting measured here); "gpu" and "auto" go through
// SelectDevice (device.go: NVML discovery and a CUDA PJRT plugin search; the XLA backend only
// in builds with -tags xla). Nothing is ever downloaded.
func Backend(device string) (compute.Backend, error) {
	switch device {
	case "", "cpu":
		return cpuBackend()
	case "gpu", "auto":
		return deviceBackend(device)
	}
	return nil, fmt.Errorf("unknown device %q (cpu, gpu, auto)", device)
}

// cpuBackendConfig is the CPU backend's configuration, as recorded in Device.Backend.
const cpuBackendConfig = "go:parallelism=-1"

var cpuBackend = sync.OnceValues(func() (compute.Backend, error) {
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	// The Go backend prints its parallelism on stdout; keep stdout for our own output.
	stdout := os.Stdout
	if null, err := os.Open(os.DevNull); err == nil {
		os.Stdout = null
		defer func() { os.Stdout = stdout; null.Close() }()
	}
	return gobackend.New("parallelism=-1")
})

// Task is what a training step optimises.
type Task int

// Tasks.
const (
	TaskClassify Task = iota // BCE on the classifier's logit
	TaskMLM                  // cross-entropy on masked positions
)

// Optim is AdamW with decoupled weight decay (on Decays weights only) and clipping of the
// gradients' global norm.
type Optim struct {
	Beta1, Beta2, Eps float64
	WeightDecay       float64
	Clip              float64 // max global gradient norm; 0 for none
	PosWeight         float64 // BCE positive weight (classify); 0 means 1
}

// DefaultOptim is PyTorch's AdamW defaults with BERT's epsilon, weight decay 0.01 and clipping
// at 1.
func DefaultOptim() Optim {
	return Optim{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Clip: 1}
}

// Batch is one padded batch: B sequences of L tokens, flattened row-major.
type Batch struct {
	B, L          int
	IDs           []int32
	Mask          []int32
	Ages          []float32 // only read with age embeddings; nil means zeros
	Days          []float32 // days before the prediction time, only read with time embeddings; nil means zeros
	Labels        []float32 // classify: 0 or 1 per sequence
	Weights       []float32 // per sequence loss weight (0 for padding rows); nil means 1
	P             int       // MLM: positions per sequence
	Positions     []int32   // MLM [B*P]
	Targets       []int32   // MLM [B*P] original token ids
	TargetWeights []float32 // MLM [B*P] 1 for a masked position, 0 for padding
}

func (b *Batch) check(c Config, task Task, train bool) error {
	n := b.B * b.L
	if b.B <= 0 || b.L <= 0 || len(b.IDs) != n || len(b.Mask) != n {
		return fmt.Errorf("bert batch: %d×%d needs %d ids and mask values, got %d and %d", b.B, b.L, n, len(b.IDs), len(b.Mask))
	}
	if b.L > c.MaxPositionEmbeddings {
		return fmt.Errorf("bert batch: sequence length %d exceeds max_position_embeddings %d", b.L, c.MaxPositionEmbeddings)
	}
	for _, id := range b.IDs {
		if id < 0 || int(id) >= c.VocabSize {
			return fmt.Errorf("bert batch: token id %d outside the vocabulary [0, %d)", id, c.VocabSize)
		}
	}
	if b.Ages != nil && len(b.Ages) != n {
		return fmt.Errorf("bert batch: %d ages for %d tokens", len(b.Ages), n)
	}
	if b.Days != nil && len(b.Days) != n {
		return fmt.Errorf("bert batch: %d days for %d tokens", len(b.Days), n)
	}
	if task == TaskClassify && train && len(b.Labels) != b.B {
		return fmt.Errorf("bert batch: %d labels for %d sequences", len(b.Labels), b.B)
	}
	if b.Weights != nil && len(b.Weights) != b.B {
		return fmt.Errorf("bert batch: %d weights for %d sequences", len(b.Weights), b.B)
	}
	if task == TaskMLM {
		m := b.B * b.P
		if b.P <= 0 || len(b.Positions) != m || (train && (len(b.Targets) != m || len(b.TargetWeights) != m)) {
			return fmt.Errorf("bert batch: MLM needs %d positions, targets and weights", m)
		}
		for _, p := range b.Positions {
			if p < 0 || int(p) >= b.L {
				return fmt.Errorf("bert batch: masked position %d outside [0, %d)", p, b.L)
			}
		}
	}
	return nil
}

func (b *Batch) inputs(c Config) []any {
	in := []any{
		tensors.FromFlatDataAndDimensions(b.IDs, b.B, b.L),
		tensors.FromFlatDataAndDimensions(b.Mask, b.B, b.L),
	}
	perToken := func(v []float32) any {
		if v == nil {
			v = make([]float32, b.B*b.L)
		}
		return tensors.FromFlatDataAndDimensions(v, b.B, b.L)
	}
	if c.AgeEmbeddings {
		in = append(in, perToken(b.Ages))
	}
	if c.TimeEmbeddings { // bucketed here, exactly, rather than in float arithmetic in the graph
		buckets := make([]int32, b.B*b.L)
		if b.Days != nil {
			for i, d := range b.Days {
				buckets[i] = TimeBucket(d, c.TimeBuckets)
			}
		}
		in = append(in, tensors.FromFlatDataAndDimensions(buckets, b.B, b.L))
	}
	return in
}

// TimeBucket is the time embedding's bucket of an event days before the prediction time:
// floor(log2(floor(days) + 1)) clamped to [0, buckets-1]; negative days count as 0.
func TimeBucket(days float32, buckets int) int32 {
	if !(days > 0) {
		return 0
	}
	d := uint64(min(days, 1e15))
	return int32(min(bits.Len64(d+1)-1, buckets-1))
}

// Engine holds a model's weights (and optimizer state) on a backend and runs training steps
// and inference. Every computation takes the current weights as inputs, so results always
// reflect the latest step. Not safe for concurrent use.
type Engine struct {
	backend compute.Backend
	cfg     Config
	heads   Heads
	specs   []TensorSpec
	task    Task
	opt     Optim
	dtype   dtypes.DType // compute dtype of the matrix products (weights and optimizer state stay float32)

	params, m, v []*tensors.Tensor
	rng          *tensors.Tensor
	steps        int

	trainExec, evalExec, mlmExec *graph.Exec

	static  bool // pad batches to fixed shapes (WithStaticShapes)
	staticP int  // MLM positions per row when static
}

// EngineOption configures an Engine.
type EngineOption func(*Engine) error

// WithDType sets the compute dtype (a --dtype value): "float32" (or "") computes everything in
// float32 ("tf32" too: the backend decides whether float32 products use TF32, BackendConfig);
// "bfloat16" is mixed precision: the forward and backward matrix products (Linear layers but
// the one-output classifier, attention, MLM decoder) run in bfloat16 on weights cast inside
// the graph at every step, while the master weights, AdamW's moments, the gradients the
// optimizer sees, LayerNorm, softmax and the loss stay float32. The backend must support bfloat16 (gomlx's Go backend
// and XLA do; whether a GPU does is ValidateDType's question). float16 is refused: it needs
// loss scaling, which is not implemented.
func WithDType(name string) EngineOption {
	return func(e *Engine) error {
		switch name {
		case "", "float32", "tf32": // tf32 is float32 to the graph; the backend picks the mode
			e.dtype = dtypes.Float32
		case "bfloat16":
			e.dtype = dtypes.BFloat16
		case "float16":
			return errors.New("bert: float16 training needs loss scaling, which is not implemented: use float32 or bfloat16")
		default:
			return fmt.Errorf("bert: unknown dtype %q (%s)", name, strings.Join(DTypes, ", "))
		}
		return nil
	}
}

// WithStaticShapes pads every batch to fixed shapes: sequences to the model's maximum length,
// MLM training batches to mlmPositions masked positions per row (0: as they come; a cap such as
// MaxPredictions keeps them within it), and PredictLogits to full batches. XLA compiles a graph
// for each new shape (about a second on a GPU, more for larger models), so a GPU run compiles
// once instead of for every length bucket and position count; on the CPU the padding only
// costs time. Results are the same up to the order of sums.
func WithStaticShapes(mlmPositions int) EngineOption {
	return func(e *Engine) error {
		if mlmPositions < 0 {
			return fmt.Errorf("bert: negative MLM positions %d", mlmPositions)
		}
		e.static, e.staticP = true, mlmPositions
		return nil
	}
}

// Static says whether the engine pads batches to fixed shapes.
func (e *Engine) Static() bool { return e.static }

// fit pads b to the engine's static shapes (a no-op when not static): the length always, the
// MLM positions only when withP (TrainStep, whose outputs do not depend on P).
func (e *Engine) fit(b *Batch, withP bool) *Batch {
	if !e.static {
		return b
	}
	P := b.P
	if withP && b.P > 0 {
		P = max(P, e.staticP)
	}
	return b.PadTo(e.cfg.MaxPositionEmbeddings, P)
}

// NewEngine puts w on the backend for task (the task's head must be in w.Heads).
func NewEngine(backend compute.Backend, w *Weights, task Task, opt Optim, seed int64, opts ...EngineOption) (*Engine, error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	if task == TaskClassify && !w.Heads.Classifier {
		return nil, errors.New("bert: classification needs the classifier head")
	}
	if task == TaskMLM && !w.Heads.MLM {
		return nil, errors.New("bert: masked language modelling needs the MLM head")
	}
	e := &Engine{backend: backend, cfg: w.Config, heads: w.Heads, specs: w.Specs, task: task, opt: opt, dtype: dtypes.Float32}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, err
		}
	}
	if e.dtype != dtypes.Float32 && !backend.Capabilities().DTypes[e.dtype] {
		return nil, fmt.Errorf("bert: the %s backend does not support %s", backend.Name(), e.dtype)
	}
	if e.opt.PosWeight == 0 {
		e.opt.PosWeight = 1
	}
	rng, err := graph.RNGStateFromSeed(seed)
	if err != nil {
		return nil, err
	}
	e.rng = rng
	e.SetWeights(w)
	for _, s := range e.specs {
		e.m = append(e.m, tensors.FromFlatDataAndDimensions(make([]float32, s.Size()), s.Shape...))
		e.v = append(e.v, tensors.FromFlatDataAndDimensions(make([]float32, s.Size()), s.Shape...))
	}
	e.trainExec = graph.MustNewExec(backend, e.trainGraph).SetMaxCache(256)
	e.evalExec = graph.MustNewExec(backend, e.evalGraph).SetMaxCache(256)
	if w.Heads.MLM {
		e.mlmExec = graph.MustNewExec(backend, e.mlmGraph).SetMaxCache(256)
	}
	return e, nil
}

// Config is the model's configuration.
func (e *Engine) Config() Config { return e.cfg }

// DType is the compute dtype as a --dtype value: "float32" or "bfloat16".
func (e *Engine) DType() string {
	if e.dtype == dtypes.BFloat16 {
		return "bfloat16"
	}
	return "float32"
}

// Steps is the number of training steps taken.
func (e *Engine) Steps() int { return e.steps }

// SetOptim changes the optimizer settings (the graphs are rebuilt).
func (e *Engine) SetOptim(o Optim) {
	if o.PosWeight == 0 {
		o.PosWeight = 1
	}
	e.opt = o
	e.trainExec = graph.MustNewExec(e.backend, e.trainGraph).SetMaxCache(256)
}

// SetWeights replaces the weights (optimizer state is kept).
func (e *Engine) SetWeights(w *Weights) {
	old := e.params
	e.params = make([]*tensors.Tensor, len(e.specs))
	for i, s := range e.specs {
		e.params[i] = tensors.FromFlatDataAndDimensions(append([]float32(nil), w.Data[s.Name]...), s.Shape...)
	}
	finalize(old)
}

// Weights copies the current weights to the host.
func (e *Engine) Weights() (*Weights, error) {
	w := &Weights{Config: e.cfg, Heads: e.heads, Specs: append([]TensorSpec(nil), e.specs...), Data: map[string][]float32{}}
	for i, s := range e.specs {
		v, err := tensors.CopyFlatData[float32](e.params[i])
		if err != nil {
			return nil, err
		}
		w.Data[s.Name] = v
	}
	return w, nil
}

func finalize(ts []*tensors.Tensor) {
	for _, t := range ts {
		if t != nil {
			_ = t.FinalizeAll()
		}
	}
}

// Close frees the engine's tensors.
func (e *Engine) Close() {
	finalize(e.params)
	finalize(e.m)
	finalize(e.v)
	e.params, e.m, e.v = nil, nil, nil
}

// tokenInputs are a batch's per-token graph inputs.
type tokenInputs struct{ ids, mask, ages, days *graph.Node }

func (e *Engine) batchNodes(in []*graph.Node) (t tokenInputs, rest []*graph.Node) {
	t.ids, t.mask = in[0], in[1]
	rest = in[2:]
	if e.cfg.AgeEmbeddings {
		t.ages, rest = rest[0], rest[1:]
	}
	if e.cfg.TimeEmbeddings {
		t.days, rest = rest[0], rest[1:]
	}
	return
}

// evalGraph: [params..., ids, mask, (ages)] -> [logits B].
func (e *Engine) evalGraph(in []*graph.Node) []*graph.Node {
	P := len(e.specs)
	f := newFwd(e.cfg, e.specs, in[:P], false, nil, e.dtype)
	t, _ := e.batchNodes(in[P:])
	return []*graph.Node{f.classify(f.encode(t), t.mask)}
}

// mlmGraph: [params..., ids, mask, (ages), positions] -> [logits B×P×V].
func (e *Engine) mlmGraph(in []*graph.Node) []*graph.Node {
	P := len(e.specs)
	f := newFwd(e.cfg, e.specs, in[:P], false, nil, e.dtype)
	t, rest := e.batchNodes(in[P:])
	return []*graph.Node{f.mlmLogits(f.encode(t), rest[0])}
}

// trainGraph: [params, m, v (P each), lr, bc1, bc2, rng, ids, mask, (ages), task inputs...]
// -> [params', m', v', rng', loss, grad norm].
// Task inputs: classify labels [B], weights [B]; MLM positions, targets [B,P], weights [B,P].
func (e *Engine) trainGraph(in []*graph.Node) []*graph.Node {
	P := len(e.specs)
	params, ms, vs := in[:P], in[P:2*P], in[2*P:3*P]
	lr, bc1, bc2, rng := in[3*P], in[3*P+1], in[3*P+2], in[3*P+3]
	t, rest := e.batchNodes(in[3*P+4:])
	f := newFwd(e.cfg, e.specs, params, true, rng, e.dtype)
	hidden := f.encode(t)
	var loss *graph.Node
	switch e.task {
	case TaskClassify:
		logits := f.classify(hidden, t.mask)
		y, w := rest[0], rest[1]
		per := bceWithLogits(logits, y, e.opt.PosWeight)
		den := graph.Max(graph.ReduceAllSum(w), graph.ConstAs(w, 1))
		loss = graph.Div(graph.ReduceAllSum(graph.Mul(per, w)), den)
	case TaskMLM:
		loss = mlmLoss(f.mlmLogits(hidden, rest[0]), rest[1], rest[2])
	}
	grads := graph.Gradient(loss, params...)
	for i := range grads { // float32 already (the casts' VJPs cast back); make it explicit
		grads[i] = graph.ConvertDType(grads[i], dtypes.Float32)
	}
	var sq *graph.Node
	for _, g := range grads {
		s := graph.ReduceAllSum(graph.Square(g))
		if sq == nil {
			sq = s
		} else {
			sq = graph.Add(sq, s)
		}
	}
	norm := graph.Sqrt(sq)
	if e.opt.Clip > 0 {
		scale := graph.Min(graph.ConstAs(norm, 1), graph.Div(graph.ConstAs(norm, e.opt.Clip), graph.AddScalar(norm, 1e-6)))
		for i := range grads {
			grads[i] = graph.Mul(grads[i], scale)
		}
	}
	o := e.opt
	out := make([]*graph.Node, 0, 3*P+3)
	newM, newV := make([]*graph.Node, P), make([]*graph.Node, P)
	for i, p := range params {
		g := grads[i]
		m := graph.Add(graph.MulScalar(ms[i], o.Beta1), graph.MulScalar(g, 1-o.Beta1))
		v := graph.Add(graph.MulScalar(vs[i], o.Beta2), graph.MulScalar(graph.Square(g), 1-o.Beta2))
		upd := graph.Div(graph.Div(m, bc1), graph.AddScalar(graph.Sqrt(graph.Div(v, bc2)), o.Eps))
		if o.WeightDecay > 0 && Decays(e.specs[i].Name) {
			upd = graph.Add(upd, graph.MulScalar(p, o.WeightDecay))
		}
		out = append(out, graph.Sub(p, graph.Mul(upd, lr)))
		newM[i], newV[i] = m, v
	}
	out = append(out, newM...)
	out = append(out, newV...)
	return append(out, f.rng, loss, norm)
}

// call runs an Exec, turning gomlx's panics into errors.
func call(ex *graph.Exec, args []any) (out []*tensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bert graph: %v", r)
		}
	}()
	out, err = ex.Call(args...)
	if err != nil {
		err = fmt.Errorf("bert graph: %w", err)
	}
	return out, err
}

// StepResult is one training step's loss and (pre-clipping) gradient norm.
type StepResult struct {
	Loss, GradNorm float64
}

// TrainStep takes one AdamW step on b at learning rate lr.
func (e *Engine) TrainStep(b *Batch, lr float64) (StepResult, error) {
	if err := b.check(e.cfg, e.task, true); err != nil {
		return StepResult{}, err
	}
	b = e.fit(b, true)
	t := float64(e.steps + 1)
	args := make([]any, 0, 3*len(e.specs)+12)
	for _, group := range [][]*tensors.Tensor{e.params, e.m, e.v} {
		for _, x := range group {
			args = append(args, x)
		}
	}
	args = append(args, tensors.FromScalar(float32(lr)), tensors.FromScalar(float32(1-math.Pow(e.opt.Beta1, t))),
		tensors.FromScalar(float32(1-math.Pow(e.opt.Beta2, t))), e.rng)
	args = append(args, b.inputs(e.cfg)...)
	switch e.task {
	case TaskClassify:
		w := b.Weights
		if w == nil {
			w = ones(b.B)
		}
		args = append(args, tensors.FromFlatDataAndDimensions(append([]float32(nil), b.Labels...), b.B),
			tensors.FromFlatDataAndDimensions(append([]float32(nil), w...), b.B))
	case TaskMLM:
		args = append(args, tensors.FromFlatDataAndDimensions(append([]int32(nil), b.Positions...), b.B, b.P),
			tensors.FromFlatDataAndDimensions(append([]int32(nil), b.Targets...), b.B, b.P),
			tensors.FromFlatDataAndDimensions(append([]float32(nil), b.TargetWeights...), b.B, b.P))
	}
	out, err := call(e.trainExec, args)
	if err != nil {
		return StepResult{}, err
	}
	P := len(e.specs)
	res := StepResult{Loss: float64(tensors.ToScalar[float32](out[3*P+1])), GradNorm: float64(tensors.ToScalar[float32](out[3*P+2]))}
	if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
		finalize(out)
		return res, fmt.Errorf("bert: training loss is %v at step %d (lower the learning rate?)", res.Loss, e.steps+1)
	}
	old := append(append(append([]*tensors.Tensor(nil), e.params...), e.m...), e.v...)
	e.params, e.m, e.v = out[:P], out[P:2*P], out[2*P:3*P]
	oldRNG := e.rng
	e.rng = out[3*P]
	finalize(old)
	finalize([]*tensors.Tensor{oldRNG, out[3*P+1], out[3*P+2]})
	e.steps++
	return res, nil
}

func ones(n int) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// Logits runs the classifier without dropout: one logit per sequence.
func (e *Engine) Logits(b *Batch) ([]float32, error) {
	if !e.heads.Classifier {
		return nil, errors.New("bert: the model has no classifier head")
	}
	if err := b.check(e.cfg, TaskClassify, false); err != nil {
		return nil, err
	}
	b = e.fit(b, false)
	args := make([]any, 0, len(e.specs)+3)
	for _, x := range e.params {
		args = append(args, x)
	}
	args = append(args, b.inputs(e.cfg)...)
	out, err := call(e.evalExec, args)
	if err != nil {
		return nil, err
	}
	defer finalize(out)
	return tensors.CopyFlatData[float32](out[0])
}

// MLMLogits runs the MLM head without dropout at b.Positions: [B*P*V] logits.
func (e *Engine) MLMLogits(b *Batch) ([]float32, error) {
	if e.mlmExec == nil {
		return nil, errors.New("bert: the model has no MLM head")
	}
	if err := b.check(e.cfg, TaskMLM, false); err != nil {
		return nil, err
	}
	b = e.fit(b, false) // the logits are per position: P stays the caller's
	args := make([]any, 0, len(e.specs)+4)
	for _, x := range e.params {
		args = append(args, x)
	}
	args = append(args, b.inputs(e.cfg)...)
	args = append(args, tensors.FromFlatDataAndDimensions(append([]int32(nil), b.Positions...), b.B, b.P))
	out, err := call(e.mlmExec, args)
	if err != nil {
		return nil, err
	}
	defer finalize(out)
	return tensors.CopyFlatData[float32](out[0])
}

// Probability is the logistic function of a logit.
func Probability(z float32) float64 { return 1 / (1 + math.Exp(-float64(z))) }

// shapeString prints a shape for errors.
func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
