package bert

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads best unqualified
	"github.com/gomlx/gomlx/ml/layers/attention"
)

// fwd builds one forward pass: the weights by name, whether it trains (dropout on), the
// random state dropout draws from, the compute dtype of the matrix products and whether
// attention is fused.
//
// Mixed precision: the weights (params) are always float32. With cd = BFloat16 or Float16 every
// matrix product (the Linear layers but the one-output classifier, the attention scores and
// context, the MLM decoder) takes its operands in cd with a float32 result (mm), and its two
// backward products take cd operands too: gomlx's DotGeneral gradient computes in the forward
// product's accumulator dtype, which mm sets to cd (gomlx's default for half-precision operands
// is a float32 accumulator, which put every backward product in float32). The products' results
// arrive in float32 for the bias, the residual stream, LayerNorm, GELU, the softmax and the loss;
// what enters the next product is cast to cd once (q, k, v, the attention probabilities, the
// GELU output), and XLA fuses each cast into the elementwise work before it.
type fwd struct {
	c     Config
	w     map[string]*Node
	train bool
	rng   *Node
	cd    dtypes.DType
	fused bool // attention through attention.Core (cuDNN flash attention on CUDA), WithAttention
}

func newFwd(c Config, specs []TensorSpec, params []*Node, train bool, rng *Node, cd dtypes.DType) *fwd {
	if cd == dtypes.InvalidDType {
		cd = dtypes.Float32
	}
	f := &fwd{c: c, w: make(map[string]*Node, len(specs)), train: train, rng: rng, cd: cd}
	for i, s := range specs {
		f.w[s.Name] = params[i]
	}
	return f
}

// bcast reshapes a vector to rank dims with it on the last axis.
func bcast(v *Node, rank int) *Node {
	dims := make([]int, rank)
	for i := range dims {
		dims[i] = 1
	}
	dims[rank-1] = v.Shape().Dimensions[0]
	return Reshape(v, dims...)
}

// low casts a float32 operand of a matrix product to the compute dtype (a no-op in float32).
func (f *fwd) low(x *Node) *Node { return ConvertDType(x, f.cd) }

// mm is DotGeneral in the compute dtype: operands cast to cd, a float32 result, and cd as the
// accumulator dtype, which is the dtype gomlx's gradient of DotGeneral computes in, so both
// backward products take cd operands as well (with a float32 accumulator: gomlx's default for
// half-precision operands, cuBLAS's on a GPU, the Go backend's too). In float32 it is DotGeneral.
func (f *fwd) mm(lhs *Node, lhsContract, lhsBatch []int, rhs *Node, rhsContract, rhsBatch []int) *Node {
	if f.cd == dtypes.Float32 {
		return DotGeneral(lhs, lhsContract, lhsBatch, rhs, rhsContract, rhsBatch)
	}
	return Dot(f.low(lhs), f.low(rhs)).WithAccumulatorDType(f.cd).WithOutputDType(dtypes.Float32).
		General(lhsContract, lhsBatch, rhsContract, rhsBatch)
}

// high casts a matrix product's result back to float32 (a no-op in float32).
func high(x *Node) *Node { return ConvertDType(x, dtypes.Float32) }

// linear is PyTorch's Linear: x[..., in] · w[out, in]ᵀ + b (the product in the compute dtype,
// the bias added in float32).
func (f *fwd) linear(x *Node, prefix string) *Node { return f.linearIn(x, prefix, f.mm) }

// dotFn is a DotGeneral: f.mm, or DotGeneral itself for a product kept in float32.
type dotFn func(lhs *Node, lhsContract, lhsBatch []int, rhs *Node, rhsContract, rhsBatch []int) *Node

// linearIn is linear with the product computed by dot.
func (f *fwd) linearIn(x *Node, prefix string, dot dotFn) *Node {
	w, b := f.w[prefix+".weight"], f.w[prefix+".bias"]
	dims := x.Shape().Dimensions
	in := dims[len(dims)-1]
	n := x.Shape().Size() / in
	y := high(dot(Reshape(x, n, in), []int{1}, nil, w, []int{1}, nil))
	y = Add(y, bcast(b, 2))
	out := append(append([]int(nil), dims[:len(dims)-1]...), w.Shape().Dimensions[0])
	return Reshape(y, out...)
}

// layerNorm normalises over the last axis (eps from the config).
func (f *fwd) layerNorm(x *Node, prefix string) *Node {
	r := x.Rank()
	mean := ReduceAndKeep(x, ReduceMean, r-1)
	d := Sub(x, mean)
	variance := ReduceAndKeep(Square(d), ReduceMean, r-1)
	y := Div(d, Sqrt(AddScalar(variance, f.c.LayerNormEps)))
	return Add(Mul(y, bcast(f.w[prefix+".weight"], r)), bcast(f.w[prefix+".bias"], r))
}

// gelu is the exact GELU: x·Φ(x) = 0.5·x·(1 + erf(x/√2)).
func gelu(x *Node) *Node {
	return Mul(MulScalar(x, 0.5), OnePlus(Erf(MulScalar(x, 1/math.Sqrt2))))
}

// dropout zeroes each element with probability rate and scales the rest by 1/(1-rate), in
// training only.
func (f *fwd) dropout(x *Node, rate float64) *Node {
	if !f.train || rate <= 0 {
		return x
	}
	var u *Node
	f.rng, u = RandomUniform(f.rng, x.Shape())
	keep := GreaterOrEqual(u, ConstAs(u, rate))
	return Where(keep, MulScalar(x, 1/(1-rate)), ZerosLike(x))
}

// encode runs the embeddings and the transformer layers: ids and mask [B, L] int32, ages
// [B, L] float32 (nil without age embeddings), days [B, L] int32 time buckets (nil without
// time embeddings, TimeBucket). It returns hidden states [B, L, H].
func (f *fwd) encode(t tokenInputs) *Node {
	ids, mask, ages, days := t.ids, t.mask, t.ages, t.days
	c := f.c
	B, L := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	H := c.HiddenSize
	x := Gather(f.w["bert.embeddings.word_embeddings.weight"], ExpandAxes(ids, -1))
	pos := Slice(f.w["bert.embeddings.position_embeddings.weight"], AxisRange(0, L))
	x = Add(x, Reshape(pos, 1, L, H))
	tt := Slice(f.w["bert.embeddings.token_type_embeddings.weight"], AxisRange(0, 1))
	x = Add(x, Reshape(tt, 1, 1, H))
	if c.AgeEmbeddings && ages != nil {
		bucket := ConvertDType(Clip(Floor(ages), ConstAs(ages, 0), ConstAs(ages, float64(c.AgeBuckets-1))),
			dtypes.Int32)
		x = Add(x, Gather(f.w["bert.embeddings.age_embeddings.weight"], ExpandAxes(bucket, -1)))
	}
	if c.TimeEmbeddings && days != nil {
		x = Add(x, Gather(f.w["bert.embeddings.time_embeddings.weight"], ExpandAxes(days, -1)))
	}
	x = f.layerNorm(x, "bert.embeddings.LayerNorm")
	x = f.dropout(x, c.HiddenDropoutProb)

	nh, hd := c.NumAttentionHeads, c.HeadDim()
	att := f.attentionFn(mask, B, L)
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := "bert.encoder.layer." + itoa(l) + "."
		q := f.low(Reshape(f.linear(x, p+"attention.self.query"), B, L, nh, hd))
		k := f.low(Reshape(f.linear(x, p+"attention.self.key"), B, L, nh, hd))
		v := f.low(Reshape(f.linear(x, p+"attention.self.value"), B, L, nh, hd))
		ctx := Reshape(att(q, k, v), B, L, H)
		a := f.dropout(f.linear(ctx, p+"attention.output.dense"), c.HiddenDropoutProb)
		x = f.layerNorm(Add(a, x), p+"attention.output.LayerNorm")
		h := f.low(gelu(f.linear(x, p+"intermediate.dense")))
		o := f.dropout(f.linear(h, p+"output.dense"), c.HiddenDropoutProb)
		x = f.layerNorm(Add(o, x), p+"output.LayerNorm")
	}
	return x
}

// attentionFn returns the scaled dot-product attention of q, k, v [B, L, heads, head dim] (in
// the compute dtype) under the key padding mask [B, L]: the context [B, L, heads, head dim].
//
// Plain (the reference, and the CPU's): scores and probabilities [B, heads, L, L] are
// materialised, padding is an additive -1e9 bias, the softmax is float32 and the probabilities
// take dropout in training. Fused (WithAttention): gomlx's attention.Core, which on CUDA with
// bfloat16 or float16 operands and a head dimension that is a multiple of 8 is cuDNN's flash
// attention (forward and backward custom calls, nothing [L, L] in memory), and elsewhere its own
// decomposed graph. Padding travels as lengths (the mask's count of ones per row: masks are
// prefixes, real tokens first), which also masks the padded query rows; their context is set
// to zero here either way, so what a kernel leaves there never reaches a real token. There is
// no dropout on the attention probabilities (cuDNN's kernels here take none).
func (f *fwd) attentionFn(mask *Node, B, L int) func(q, k, v *Node) *Node {
	c := f.c
	scale := 1 / math.Sqrt(float64(c.HeadDim()))
	if f.fused {
		lens := ReduceSum(ConvertDType(mask, dtypes.Int32), 1)
		keep := Reshape(NotEqual(mask, ZerosLike(mask)), B, L, 1, 1)
		return func(q, k, v *Node) *Node {
			out, _ := attention.Core(q, k, v, attention.LayoutBSHD,
				attention.CoreOptions{Scale: scale, QuerySeqLen: lens, KVSeqLen: lens})
			return Where(BroadcastToShape(keep, out.Shape()), out, ZerosLike(out))
		}
	}
	// Key padding mask as an additive bias [B, 1, 1, L]: 0 for real tokens, -1e9 for padding.
	bias := Reshape(MulScalar(OneMinus(ConvertDType(mask, dtypes.Float32)), -1e9), B, 1, 1, L)
	return func(q, k, v *Node) *Node {
		// scores [B, heads, Lq, Lk] = Σ_d q[b, q, h, d] k[b, k, h, d]
		scores := MulScalar(f.mm(q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2}), scale)
		probs := f.dropout(Softmax(Add(scores, bias), -1), c.AttentionProbsDropoutProb)
		// context [B, heads, Lq, d] = Σ_k probs[b, h, q, k] v[b, k, h, d], then [B, Lq, heads, d]
		return TransposeAllAxes(f.mm(probs, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2}), 0, 2, 1, 3)
	}
}

// classify is the pooler (dense + tanh) and the classifier: one logit per sequence [B]. The
// pooler reads the last hidden state of [CLS], or with mean pooling the mean of the last
// hidden states over the tokens mask marks (every row has at least one).
func (f *fwd) classify(hidden, mask *Node) *Node {
	B, H := hidden.Shape().Dimensions[0], f.c.HiddenSize
	var rep *Node
	if f.c.MeanPooling() {
		m := ExpandAxes(ConvertDType(mask, dtypes.Float32), -1) // [B, L, 1]
		sum := ReduceSum(Mul(hidden, m), 1)                     // [B, H]
		n := Max(ReduceSum(m, 1), ConstAs(m, 1))                // [B, 1]
		rep = Div(sum, n)
	} else {
		rep = Reshape(Slice(hidden, AxisRange(), AxisElem(0)), B, H)
	}
	pooled := Tanh(f.linear(rep, "bert.pooler.dense"))
	pooled = f.dropout(pooled, f.c.HiddenDropoutProb)
	// The classifier is a matrix-vector product (one output): float32 in every dtype. It costs
	// nothing, and XLA may lower a low-precision one to a reduction summed in that precision.
	// (On an H200, before this, bfloat16 logits at initialisation were 15% off float32's where
	// the CPU's bfloat16 path was 1% off; not yet rerun on a GPU since.)
	return Reshape(f.linearIn(pooled, "classifier", DotGeneral), B)
}

// mlmLogits gathers the hidden states at positions [B, P] and returns the vocabulary logits
// [B, P, V] with the decoder tied to the word embeddings.
func (f *fwd) mlmLogits(hidden, positions *Node) *Node {
	B, L, H := hidden.Shape().Dimensions[0], hidden.Shape().Dimensions[1], f.c.HiddenSize
	P := positions.Shape().Dimensions[1]
	flat := Reshape(hidden, B*L, H)
	rowStart := MulScalar(Iota(hidden.Graph(), positions.Shape(), 0), L)
	idx := Add(positions, rowStart)
	g := Gather(flat, ExpandAxes(idx, -1)) // [B, P, H]
	t := gelu(f.linear(g, "cls.predictions.transform.dense"))
	t = f.layerNorm(t, "cls.predictions.transform.LayerNorm")
	emb := f.w["bert.embeddings.word_embeddings.weight"]
	logits := high(f.mm(Reshape(t, B*P, H), []int{1}, nil, emb, []int{1}, nil))
	logits = Add(logits, bcast(f.w["cls.predictions.bias"], 2))
	return Reshape(logits, B, P, f.c.VocabSize)
}

// bceWithLogits is PyTorch's BCEWithLogitsLoss per element with pos_weight:
// pw·y·softplus(-z) + (1-y)·softplus(z), computed stably.
func bceWithLogits(z, y *Node, posWeight float64) *Node {
	sp := func(x *Node) *Node { // softplus(x) = max(x,0) + log1p(exp(-|x|))
		return Add(Max(x, ZerosLike(x)), Log1p(Exp(Neg(Abs(x)))))
	}
	return Add(Mul(MulScalar(y, posWeight), sp(Neg(z))), Mul(OneMinus(y), sp(z)))
}

// mlmLoss is the mean cross-entropy over the target positions with weight 1 (padding
// positions have weight 0).
func mlmLoss(logits, targets, weights *Node) *Node {
	logp := LogSoftmax(logits, -1)
	V := logits.Shape().Dimensions[2]
	nll := Neg(ReduceSum(Mul(logp, OneHot(targets, V, dtypes.Float32)), -1)) // [B, P]
	den := Max(ReduceAllSum(weights), ConstAs(weights, 1))
	return Div(ReduceAllSum(Mul(nll, weights)), den)
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
