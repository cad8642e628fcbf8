//go:build cgo && linux

package bert

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// discoverGPUs asks NVML, which go-nvml dlopens (libnvidia-ml.so.1) at run time.
func discoverGPUs() (gpus []GPU, err error) {
	defer func() { // a broken driver install must not take a CPU run down
		if r := recover(); r != nil {
			gpus, err = nil, fmt.Errorf("%w: NVML panicked: %v", ErrNoNVIDIADriver, r)
		}
	}()
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return nil, ErrNoNVIDIADriver
		}
		return nil, fmt.Errorf("%w: NVML init: %s", ErrNoNVIDIADriver, nvml.ErrorString(ret))
	}
	defer nvml.Shutdown()
	driver, _ := nvml.SystemGetDriverVersion()
	cuda := ""
	if v, ret := nvml.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS {
		cuda = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("NVML device count: %s", nvml.ErrorString(ret))
	}
	for i := 0; i < n; i++ {
		d, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return nil, fmt.Errorf("NVML device %d: %s", i, nvml.ErrorString(ret))
		}
		g := GPU{Index: i, DriverVersion: driver, CUDADriverVersion: cuda}
		g.Name, _ = d.GetName()
		g.UUID, _ = d.GetUUID()
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			g.MemoryBytes = m.Total
		}
		g.ComputeMajor, g.ComputeMinor, _ = d.GetCudaComputeCapability()
		g.BFloat16 = supportsBF16(g.ComputeMajor, g.ComputeMinor)
		gpus = append(gpus, g)
	}
	return gpus, nil
}
