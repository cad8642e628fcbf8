//go:build !(cgo && linux)

package bert

import "fmt"

// discoverGPUs: go-nvml is cgo (for dlopen) and Linux-only; this build has neither.
func discoverGPUs() ([]GPU, error) {
	return nil, fmt.Errorf("%w (built without cgo on Linux: NVML not compiled in)", ErrNoNVIDIADriver)
}
