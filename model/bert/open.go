package bert

import (
	"log/slog"
)

// OpenDevice chooses the device to train on (SelectDevice with the --device and
// --pjrt-plugin values), checks dtype against it (ValidateDType; auto resolved by
// ResolveDType), sets the attention (Device.WithAttention: plain, fused or auto) and tells log
// what was chosen and why.
func OpenDevice(flag, plugin, dtype, attention string, log *slog.Logger) (Device, error) {
	dev, err := SelectDevice(flag, plugin)
	if err != nil {
		return dev, err
	}
	if err := ValidateDType(dtype, dev); err != nil {
		return dev, err
	}
	dev = dev.WithDType(dtype)
	if dev, err = dev.WithAttention(attention); err != nil {
		return dev, err
	}
	log.Info("device", "kind", dev.Kind, "reason", dev.Reason, "plugin", dev.Plugin, "dtype", dev.DType,
		"attention", dev.Attention)
	if (dev.DType == "bfloat16" || dev.DType == "float16") && dev.Kind == "cpu" {
		log.Warn(dev.DType + " on the CPU: mixed precision runs correctly but slower than float32 (no half-precision " +
			"arithmetic here); it is meant for GPUs")
	}
	if dev.Attention == AttentionFused {
		log.Info("fused attention: no dropout on the attention probabilities, padding as lengths")
	}
	return dev, nil
}

// NewEngineOn is NewEngine on dev's backend (BackendFor), computing in dev's dtype. On a GPU
// batches take static shapes (sequences padded to the maximum length, MLM batches to the
// positions of maxMasked per row: Masking.MaxPerRow, 0 for classification), since XLA compiles
// every new batch shape while a CPU only pays for the padding.
func NewEngineOn(dev Device, w *Weights, task Task, opt Optim, seed int64, maxMasked int) (*Engine, error) {
	be, err := BackendFor(dev)
	if err != nil {
		return nil, err
	}
	positions := 0
	if maxMasked > 0 {
		positions = StaticPositions(maxMasked)
	}
	return NewEngine(be, w, task, opt, seed, deviceOptions(dev, positions)...)
}

// deviceOptions are the engine options of a device: its dtype, and static shapes on a GPU.
func deviceOptions(dev Device, mlmPositions int) []EngineOption {
	opts := []EngineOption{WithDType(dev.DType), WithAttention(dev.Attention)}
	if dev.Kind == "gpu" {
		opts = append(opts, WithStaticShapes(mlmPositions))
	}
	return opts
}
