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
		return fmt.Errorf("bert batch: %d×%d needs %d ids and mask values, got %d and %d",
			b.B, b.L, n, len(b.IDs), len(b.Mask))
	}
	if b.L > c.MaxPositionEmbeddings {
		return fmt.Errorf("bert batch: sequence length %d exceeds max_position_embeddings %d",
			b.L, c.MaxPositionEmbeddings)
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
	fused   bool         // attention through attention.Core (WithAttention)
	scaler  *LossScaler  // dynamic loss scaling (float16); nil otherwise

	params, m, v []*tensors.Tensor
	rng          *tensors.Tensor
	steps        int // TrainStep calls that returned without error
	skipped      int // of which the loss scaler skipped (AdamW's own step count is steps - skipped)

	trainExec, evalExec, mlmExec *graph.Exec

	static  bool // pad batches to fixed shapes (WithStaticShapes)
	staticP int  // MLM positions per row when static
}

// EngineOption configures an Engine.
type EngineOption func(*Engine) error

// WithDType sets the compute dtype (a --dtype value): "float32" (or "") computes everything in
// float32 ("tf32" too: the backend decides whether float32 products use TF32, BackendConfig);
// "bfloat16" and "float16" are mixed precision: every forward and backward matrix product
// (Linear layers but the one-output classifier, attention, MLM decoder) takes operands in that
// dtype with float32 accumulation (graph.go's mm), on weights cast inside the graph at every
// step, while the master weights, AdamW's moments, the gradients the optimizer sees,
// LayerNorm, softmax and the loss stay float32. float16 adds dynamic loss scaling
// (LossScaler), since its gradients underflow without it. The backend must support the dtype
// (gomlx's Go backend and XLA do; whether a GPU does is ValidateDType's question). "auto" is
// for devices (ResolveDType), not engines.
func WithDType(name string) EngineOption {
	return func(e *Engine) error {
		switch name {
		case "", "float32", "tf32": // tf32 is float32 to the graph; the backend picks the mode
			e.dtype = dtypes.Float32
		case "bfloat16":
			e.dtype = dtypes.BFloat16
		case "float16":
			e.dtype = dtypes.Float16
			e.scaler = NewLossScaler()
		default:
			return fmt.Errorf("bert: unknown dtype %q (%s)", name, strings.Join(DTypes, ", "))
		}
		return nil
	}
}

// Attention modes (--attention).
const (
	AttentionPlain = "plain" // scores and probabilities materialised (the reference)
	AttentionFused = "fused" // attention.Core: cuDNN flash attention on CUDA in bfloat16/float16
	AttentionAuto  = "auto"  // fused on a GPU in bfloat16/float16, plain elsewhere (Device.WithAttention)
)

// WithAttention sets the attention (graph.go's attentionFn): "plain" or "" (the default), or
// "fused": gomlx's attention.Core, which XLA on CUDA lowers to cuDNN's flash attention for
// bfloat16 and float16 operands and a head dimension that is a multiple of 8, and which is its
// own decomposed graph elsewhere. Fused attention takes padding as lengths and has no dropout
// on the attention probabilities. "auto" is for devices (Device.WithAttention), not engines.
func WithAttention(mode string) EngineOption {
	return func(e *Engine) error {
		switch mode {
		case "", AttentionPlain:
			e.fused = false
		case AttentionFused:
			e.fused = true
		default:
			return fmt.Errorf("bert: unknown attention %q (plain, fused)", mode)
		}
		return nil
	}
}

// Attention is the engine's attention as an --attention value: plain or fused.
func (e *Engine) Attention() string {
	if e.fused {
		return AttentionFused
	}
	return AttentionPlain
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
func NewEngine(backend compute.Backend, w *Weights, task Task, opt Optim, seed int64,
	opts ...EngineOption) (*Engine, error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	if task == TaskClassify && !w.Heads.Classifier {
		return nil, errors.New("bert: classification needs the classifier head")
	}
	if task == TaskMLM && !w.Heads.MLM {
		return nil, errors.New("bert: masked language modelling needs the MLM head")
	}
	e := &Engine{backend: backend, cfg: w.Config, heads: w.Heads, specs: w.Specs, task: task, opt: opt,
		dtype: dtypes.Float32}
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

// DType is the compute dtype as a --dtype value: "float32", "bfloat16" or "float16".
func (e *Engine) DType() string {
	switch e.dtype {
	case dtypes.BFloat16:
		return "bfloat16"
	case dtypes.Float16:
		return "float16"
	}
	return "float32"
}

// Steps is the number of training steps taken, those the loss scaler skipped included.
func (e *Engine) Steps() int { return e.steps }

// SkippedSteps is the number of steps the loss scaler skipped (gradients not finite).
func (e *Engine) SkippedSteps() int { return e.skipped }

// Scaler is the engine's loss scaler (float16), nil without one.
func (e *Engine) Scaler() *LossScaler { return e.scaler }

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
	w := &Weights{Config: e.cfg, Heads: e.heads, Specs: append([]TensorSpec(nil), e.specs...),
		Data: map[string][]float32{}}
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
	f := e.newFwd(in[:P], false, nil)
	t, _ := e.batchNodes(in[P:])
	return []*graph.Node{f.classify(f.encode(t), t.mask)}
}

// mlmGraph: [params..., ids, mask, (ages), positions] -> [logits B×P×V].
func (e *Engine) mlmGraph(in []*graph.Node) []*graph.Node {
	P := len(e.specs)
	f := e.newFwd(in[:P], false, nil)
	t, rest := e.batchNodes(in[P:])
	return []*graph.Node{f.mlmLogits(f.encode(t), rest[0])}
}

// newFwd is a forward pass with the engine's configuration, dtype and attention.
func (e *Engine) newFwd(params []*graph.Node, train bool, rng *graph.Node) *fwd {
	f := newFwd(e.cfg, e.specs, params, train, rng, e.dtype)
	f.fused = e.fused
	return f
}

// trainState is the number of scalar and state inputs between the optimizer state and the
// batch: lr, bc1, bc2, rng and, with a loss scaler, the scale.
func (e *Engine) trainState() int {
	if e.scaler != nil {
		return 5
	}
	return 4
}

// trainGraph: [params, m, v (P each), lr, bc1, bc2, rng, (scale), ids, mask, (ages), task inputs...]
// -> [params', m', v', rng', loss, grad norm].
// Task inputs: classify labels [B], weights [B]; MLM positions, targets [B,P], weights [B,P].
// A step whose loss or gradients are not finite changes nothing (params', m', v' are the
// inputs): the loss scaler skips such steps, and TrainStep reports them.
func (e *Engine) trainGraph(in []*graph.Node) []*graph.Node {
	P := len(e.specs)
	params, ms, vs := in[:P], in[P:2*P], in[2*P:3*P]
	lr, bc1, bc2, rng := in[3*P], in[3*P+1], in[3*P+2], in[3*P+3]
	t, rest := e.batchNodes(in[3*P+e.trainState():])
	f := e.newFwd(params, true, rng)
	loss := e.loss(f, f.encode(t), t, rest)
	var grads []*graph.Node
	if e.scaler != nil { // gradients of the scaled loss, unscaled in float32
		scale := in[3*P+4]
		grads = graph.Gradient(graph.Mul(loss, scale), params...)
		for i := range grads {
			grads[i] = graph.Div(graph.ConvertDType(grads[i], dtypes.Float32), scale)
		}
	} else {
		grads = graph.Gradient(loss, params...)
		for i := range grads { // float32 already (the casts' VJPs cast back); make it explicit
			grads[i] = graph.ConvertDType(grads[i], dtypes.Float32)
		}
	}
	norm := globalNorm(grads)
	finite := graph.LogicalAnd(graph.IsFinite(loss), graph.IsFinite(norm))
	if e.opt.Clip > 0 {
		scale := graph.Min(graph.ConstAs(norm, 1),
			graph.Div(graph.ConstAs(norm, e.opt.Clip), graph.AddScalar(norm, 1e-6)))
		for i := range grads {
			grads[i] = graph.Mul(grads[i], scale)
		}
	}
	newP, newM, newV := e.adamW(params, ms, vs, grads, lr, bc1, bc2)
	out := make([]*graph.Node, 0, 3*P+3)
	for _, group := range [][2][]*graph.Node{{newP, params}, {newM, ms}, {newV, vs}} {
		for i := range group[0] {
			out = append(out, graph.Where(finite, group[0][i], group[1][i]))
		}
	}
	return append(out, f.rng, loss, norm)
}

// loss is the task's training loss on the encoder's hidden states.
func (e *Engine) loss(f *fwd, hidden *graph.Node, t tokenInputs, rest []*graph.Node) *graph.Node {
	if e.task == TaskMLM {
		return mlmLoss(f.mlmLogits(hidden, rest[0]), rest[1], rest[2])
	}
	logits := f.classify(hidden, t.mask)
	y, w := rest[0], rest[1]
	per := bceWithLogits(logits, y, e.opt.PosWeight)
	den := graph.Max(graph.ReduceAllSum(w), graph.ConstAs(w, 1))
	return graph.Div(graph.ReduceAllSum(graph.Mul(per, w)), den)
}

// globalNorm is the L2 norm of all gradients together.
func globalNorm(grads []*graph.Node) *graph.Node {
	var sq *graph.Node
	for _, g := range grads {
		s := graph.ReduceAllSum(graph.Square(g))
		if sq == nil {
			sq = s
		} else {
			sq = graph.Add(sq, s)
		}
	}
	return graph.Sqrt(sq)
}

// adamW is one AdamW update (decoupled weight decay on the weights Decays names).
func (e *Engine) adamW(params, ms, vs, grads []*graph.Node, lr, bc1, bc2 *graph.Node) (newP, newM, newV []*graph.Node) {
	o := e.opt
	P := len(params)
	newP, newM, newV = make([]*graph.Node, P), make([]*graph.Node, P), make([]*graph.Node, P)
	for i, p := range params {
		g := grads[i]
		m := graph.Add(graph.MulScalar(ms[i], o.Beta1), graph.MulScalar(g, 1-o.Beta1))
		v := graph.Add(graph.MulScalar(vs[i], o.Beta2), graph.MulScalar(graph.Square(g), 1-o.Beta2))
		upd := graph.Div(graph.Div(m, bc1), graph.AddScalar(graph.Sqrt(graph.Div(v, bc2)), o.Eps))
		if o.WeightDecay > 0 && Decays(e.specs[i].Name) {
			upd = graph.Add(upd, graph.MulScalar(p, o.WeightDecay))
		}
		newP[i], newM[i], newV[i] = graph.Sub(p, graph.Mul(upd, lr)), m, v
	}
	return newP, newM, newV
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

// StepResult is one training step's loss and (pre-clipping) gradient norm, and whether the
// loss scaler skipped it (its gradients were not finite: nothing changed but the scale).
type StepResult struct {
	Loss, GradNorm float64
	Skipped        bool
}

// TrainStep takes one AdamW step on b at learning rate lr. The weights and AdamW's moments are
// donated to the step (XLA updates them in place). A step whose loss or gradients are not
// finite changes no weight: with a loss scaler (float16) it is skipped and the scale backs off
// (StepResult.Skipped; an error after LossScaler.MaxSkipped such steps in a row), without one
// it is an error. A failure of the computation itself (a backend error) leaves the engine
// without its donated state: do not train on after it.
func (e *Engine) TrainStep(b *Batch, lr float64) (StepResult, error) {
	if err := b.check(e.cfg, e.task, true); err != nil {
		return StepResult{}, err
	}
	b = e.fit(b, true)
	args, err := e.trainArgs(b, lr)
	if err != nil {
		return StepResult{}, err
	}
	out, err := call(e.trainExec, args)
	if err != nil {
		return StepResult{}, err
	}
	P := len(e.specs)
	res := StepResult{Loss: float64(tensors.ToScalar[float32](out[3*P+1])),
		GradNorm: float64(tensors.ToScalar[float32](out[3*P+2]))}
	finite := !math.IsNaN(res.Loss) && !math.IsInf(res.Loss, 0) &&
		!math.IsNaN(res.GradNorm) && !math.IsInf(res.GradNorm, 0)
	// The donated inputs are gone: the outputs are the state either way (unchanged when not finite).
	e.params, e.m, e.v = out[:P], out[P:2*P], out[2*P:3*P]
	finalize(out[3*P+1 : 3*P+3])
	if !finite && e.scaler == nil {
		finalize(out[3*P : 3*P+1])
		return res, fmt.Errorf("bert: training loss is %v (gradient norm %v) at step %d (lower the learning rate?)",
			res.Loss, res.GradNorm, e.steps+1)
	}
	finalize([]*tensors.Tensor{e.rng})
	e.rng = out[3*P]
	if e.scaler != nil {
		if err := e.scaler.update(finite); err != nil {
			return res, fmt.Errorf("bert: step %d: %w", e.steps+1, err)
		}
	}
	e.steps++
	if !finite {
		res.Skipped = true
		e.skipped++
	}
	return res, nil
}

// trainArgs are the training graph's arguments for b: the state (weights and moments
// donated), the step's scalars and the batch.
func (e *Engine) trainArgs(b *Batch, lr float64) ([]any, error) {
	t := float64(e.steps - e.skipped + 1) // AdamW's step: skipped steps do not count
	args := make([]any, 0, 3*len(e.specs)+13)
	for _, group := range [][]*tensors.Tensor{e.params, e.m, e.v} {
		for _, x := range group {
			d, err := graph.DonateTensorBuffer(x, e.backend, 0)
			if err != nil {
				return nil, fmt.Errorf("bert: donating the training state: %w", err)
			}
			args = append(args, d)
		}
	}
	args = append(args, tensors.FromScalar(float32(lr)), tensors.FromScalar(float32(1-math.Pow(e.opt.Beta1, t))),
		tensors.FromScalar(float32(1-math.Pow(e.opt.Beta2, t))), e.rng)
	if e.scaler != nil {
		args = append(args, tensors.FromScalar(float32(e.scaler.Scale)))
	}
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
	return args, nil
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
