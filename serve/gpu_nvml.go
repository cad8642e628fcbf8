//go:build cgo && linux

package serve

import (
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// gpuCollector exports GPU utilisation, memory and power through NVML (go-nvml dlopens
// libnvidia-ml.so.1 at run time), under the names Triton's metrics use, so existing
// dashboards work: nv_gpu_utilization (0-1), nv_gpu_memory_total_bytes,
// nv_gpu_memory_used_bytes, nv_gpu_power_usage (W), nv_gpu_power_limit (W); labelled by
// gpu_uuid. Without a driver or a GPU it exports nothing.
type gpuCollector struct {
	mu                                    sync.Mutex
	ok                                    bool
	util, memTotal, memUsed, power, limit *prometheus.Desc
}

// gpuCollectors is the GPU collector (it exports nothing without a driver or a GPU).
func gpuCollectors() []prometheus.Collector {
	l := []string{"gpu_uuid"}
	c := &gpuCollector{
		util:     prometheus.NewDesc("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0].", l, nil),
		memTotal: prometheus.NewDesc("nv_gpu_memory_total_bytes", "GPU total memory, in bytes.", l, nil),
		memUsed:  prometheus.NewDesc("nv_gpu_memory_used_bytes", "GPU used memory, in bytes.", l, nil),
		power:    prometheus.NewDesc("nv_gpu_power_usage", "GPU power usage in watts.", l, nil),
		limit:    prometheus.NewDesc("nv_gpu_power_limit", "GPU power management limit in watts.", l, nil),
	}
	func() {
		defer func() { _ = recover() }() // a broken driver install must not take serving down
		c.ok = nvml.Init() == nvml.SUCCESS
	}()
	return []prometheus.Collector{c}
}

func (c *gpuCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.util, c.memTotal, c.memUsed, c.power, c.limit} {
		ch <- d
	}
}

func (c *gpuCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ok {
		return
	}
	defer func() { _ = recover() }()
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return
	}
	for i := range n {
		d, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		uuid, _ := d.GetUUID()
		if u, ret := d.GetUtilizationRates(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, float64(u.Gpu)/100, uuid)
		}
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(c.memTotal, prometheus.GaugeValue, float64(m.Total), uuid)
			ch <- prometheus.MustNewConstMetric(c.memUsed, prometheus.GaugeValue, float64(m.Used), uuid)
		}
		if p, ret := d.GetPowerUsage(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(c.power, prometheus.GaugeValue, float64(p)/1000, uuid)
		}
		if p, ret := d.GetPowerManagementLimit(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(p)/1000, uuid)
		}
	}
}
