//go:build !(cgo && linux)

package serve

import "github.com/prometheus/client_golang/prometheus"

// newGPUCollector: builds without cgo have no NVML; no GPU metrics.
func newGPUCollector() prometheus.Collector { return nil }
