package bert

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph code reads best unqualified
)

// fwd builds one forward pass: the weights by name, whether it trains (dropout on), the
// random state dropout draws from and the compute dtype of the matrix products.
//
// Mixed precision: the weights (params) are always float32. With cd = BFloat16 every matrix
// product (the Linear layers, the attention scores and context, the MLM decoder) casts its
// operands to bfloat16 inside the graph and its result back to float32, so the embeddings sum,
// the residual stream, LayerNorm statistics, GELU, the softmax and the loss stay float32. The
// gradient of each cast casts back (gomlx's ConvertDType VJP), so the backward matrix products
// run in bfloat16 too and the weights' gradients arrive in float32.
type fwd struct {
	c     Config
	w     map[string]*Node
	train bool
	rng   *Node
	cd    dtypes.DType
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

// high casts a matrix product's result back to float32 (a no-op in float32).
func high(x *Node) *Node { return ConvertDType(x, dtypes.Float32) }

// linear is PyTorch's Linear: x[..., in] · w[out, in]ᵀ + b (the product in the compute dtype,
// the bias added in float32).
func (f *fwd) linear(x *Node, prefix string) *Node { return f.linearIn(x, prefix, f.low) }

// linearIn is linear with the product's operands cast by low (f.low, or the identity for
// float32).
func (f *fwd) linearIn(x *Node, prefix string, low func(*Node) *Node) *Node {
	w, b := f.w[prefix+".weight"], f.w[prefix+".bias"]
	dims := x.Shape().Dimensions
	in := dims[len(dims)-1]
	n := x.Shape().Size() / in
	y := high(DotGeneral(low(Reshape(x, n, in)), []int{1}, nil, low(w), []int{1}, nil))
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
		bucket := ConvertDType(Clip(Floor(ages), ConstAs(ages, 0), ConstAs(ages, float64(c.AgeBuckets-1))), dtypes.Int32)
		x = Add(x, Gather(f.w["bert.embeddings.age_embeddings.weight"], ExpandAxes(bucket, -1)))
	}
	if c.TimeEmbeddings && days != nil {
		x = Add(x, Gather(f.w["bert.embeddings.time_embeddings.weight"], ExpandAxes(days, -1)))
	}
	x = f.layerNorm(x, "bert.embeddings.LayerNorm")
	x = f.dropout(x, c.HiddenDropoutProb)

	// Key padding mask as an additive bias [B, 1, 1, L]: 0 for real tokens, -1e9 for padding.
	maskF := ConvertDType(mask, dtypes.Float32)
	bias := Reshape(MulScalar(OneMinus(maskF), -1e9), B, 1, 1, L)
	nh, hd := c.NumAttentionHeads, c.HeadDim()
	scale := 1 / math.Sqrt(float64(hd))
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := "bert.encoder.layer." + itoa(l) + "."
		q := Reshape(f.linear(x, p+"attention.self.query"), B, L, nh, hd)
		k := Reshape(f.linear(x, p+"attention.self.key"), B, L, nh, hd)
		v := Reshape(f.linear(x, p+"attention.self.value"), B, L, nh, hd)
		scores := MulScalar(high(Einsum("bqhd,bkhd->bhqk", f.low(q), f.low(k))), scale)
		probs := Softmax(Add(scores, bias), -1)
		probs = f.dropout(probs, c.AttentionProbsDropoutProb)
		ctx := Reshape(high(Einsum("bhqk,bkhd->bqhd", f.low(probs), f.low(v))), B, L, H)
		a := f.dropout(f.linear(ctx, p+"attention.output.dense"), c.HiddenDropoutProb)
		x = f.layerNorm(Add(a, x), p+"attention.output.LayerNorm")
		h := gelu(f.linear(x, p+"intermediate.dense"))
		o := f.dropout(f.linear(h, p+"output.dense"), c.HiddenDropoutProb)
		x = f.layerNorm(Add(o, x), p+"output.LayerNorm")
	}
	return x
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
	return Reshape(f.linearIn(pooled, "classifier", func(x *Node) *Node { return x }), B)
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
	logits := high(DotGeneral(f.low(Reshape(t, B*P, H)), []int{1}, nil, f.low(emb), []int{1}, nil))
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
