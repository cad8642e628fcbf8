//go:build !(cgo && linux)

package serve

import "github.com/prometheus/client_golang/prometheus"

// gpuCollectors: builds without cgo have no NVML; no GPU metrics.
func gpuCollectors() []prometheus.Collector { return nil }
