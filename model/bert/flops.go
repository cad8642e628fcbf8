package bert

import "strings"

// TrainFLOPsPerToken is the model FLOPs of one training step per token of a batch of
// sequences of L tokens with P masked positions per sequence (MLM, on average; 0 for classification,
// whose head costs next to nothing): the matrix products only, 2 FLOPs per multiply-add,
// three times the forward pass (the forward product and its two gradients), as MFU is
// usually counted (no recomputation, no elementwise work). Per token and layer the forward
// pass has 8H² (query, key, value, output), 4HI (the feed-forward pair) and 4LH (attention
// scores and context); the MLM head has 2H² + 2HV per masked position. TestTrainFLOPs checks it
// against the products of the built training graph.
func TrainFLOPsPerToken(c Config, L int, P float64) float64 {
	H, I, V := float64(c.HiddenSize), float64(c.IntermediateSize), float64(c.VocabSize)
	layer := 8*H*H + 4*H*I + 4*float64(L)*H
	fwd := float64(c.NumHiddenLayers) * layer
	if P > 0 {
		fwd += P / float64(L) * (2*H*H + 2*H*V)
	}
	return 3 * fwd
}

// PeakFLOPS is a GPU's dense peak in FLOP/s for a --dtype (float32 is the CUDA cores' rate,
// tf32 and the half-precision dtypes the tensor cores'), from NVIDIA's data sheets, by the
// GPU's name as NVML reports it; false for a card or dtype it does not know (a V100 has no
// bfloat16 or TF32). SXM figures unless the name says PCIe.
func PeakFLOPS(gpuName, dtype string) (float64, bool) {
	type peaks struct{ f32, tf32, half float64 } // TFLOP/s, dense
	var p peaks
	name := strings.ToUpper(gpuName)
	pcie := strings.Contains(name, "PCIE")
	switch {
	case strings.Contains(name, "H200"):
		p = peaks{66.9, 494.7, 989.4}
	case strings.Contains(name, "H100") && pcie:
		p = peaks{51.2, 378, 756}
	case strings.Contains(name, "H100"):
		p = peaks{66.9, 494.7, 989.4}
	case strings.Contains(name, "A100"):
		p = peaks{19.5, 156, 312}
	case strings.Contains(name, "V100") && pcie:
		p = peaks{14, 0, 112}
	case strings.Contains(name, "V100"):
		p = peaks{15.7, 0, 125}
	default:
		return 0, false
	}
	var v float64
	switch dtype {
	case "", "float32":
		v = p.f32
	case "tf32":
		v = p.tf32
	case "bfloat16":
		if !strings.Contains(name, "V100") {
			v = p.half
		}
	case "float16":
		v = p.half
	}
	return v * 1e12, v > 0
}
