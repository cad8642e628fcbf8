// Package bert is a BERT encoder for sequences of medical codes, written with gomlx: token,
// position and (optionally) age embeddings, post-LayerNorm transformer layers with exact GELU,
// an MLM head tied to the token embeddings and a binary classification head (pooler +
// classifier on [CLS]). Weights carry HuggingFace BERT names and are exported and imported as
// config.json + model.safetensors, so `transformers` loads what we train. SaveHF (hf.go) writes
// a model version's bert/ folder as a self-contained HuggingFace folder: beside the weights the
// tokenizer (tokenizer.json truncating at the trained length from the left and padding with
// [PAD], vocab.txt, tokenizer_config.json, special_tokens_map.json), and in config.json how
// the single logit is read (probability = sigmoid(logit)), the trained length, and the extra
// weights (age and time embeddings) transformers drops. Scorer truncates at that trained length.
//
// The graph takes every weight as an explicit input of the compiled computation (never as a
// variable captured at build time), so an evaluation always sees the current weights.
//
// Engine runs training steps and inference on a gomlx backend: the pure-Go CPU backend, or
// XLA on an NVIDIA GPU through a CUDA PJRT plugin in builds with -tags xla (device.go:
// discovery through go-nvml, the plugin search, the dtype checks; float32 is exact float32,
// tf32, bfloat16 and float16 are opt-in, auto picks by compute capability). In bfloat16 and
// float16 every matrix product and both of its gradients take half-precision operands (graph.go's
// mm); float16 trains with dynamic loss scaling (scaler.go, PyTorch's GradScaler's rules).
// Attention is plain (materialised scores, the reference) or fused (WithAttention: gomlx's
// attention.Core, cuDNN flash attention on CUDA). On a GPU batches take static shapes
// (WithStaticShapes), so XLA compiles each graph once. TrainFLOPsPerToken and PeakFLOPS
// (flops.go) give the benchmarks' MFU. Scorer serves a model version folder (serve, predict).
//
// What training needs of BERT lives here too, so that package train asks rather than reaches
// in: Choice (choice.go) turns a named configuration and overrides into a Config and checks a
// pretrained model against them (Adapt, LoadPretrained with transformers' report of unused and
// newly initialised weights); OpenDevice and NewEngineOn (open.go) choose the device and put an
// engine on it; Engine.SaveState and RestoreState (state.go) write and read back the training
// state a checkpoint holds (weights, AdamW's moments and step count, the best weights), in a
// format named in each file so that another one is refused rather than misread.
package bert
