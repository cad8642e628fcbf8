package serve

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the server's Prometheus metrics, in base units (seconds, bytes).
type Metrics struct {
	Registry *prometheus.Registry

	Requests     *prometheus.CounterVec   // method, model, code
	Latency      *prometheus.HistogramVec // method, model, version (seconds)
	RPCLatency   *prometheus.HistogramVec // method (seconds), every RPC
	BatchSize    *prometheus.HistogramVec // method, model
	QueueTime    *prometheus.HistogramVec // model (seconds waiting for a scoring slot)
	Inferences   *prometheus.CounterVec   // model, version: subjects scored
	Codes        *prometheus.CounterVec   // model, version, kind (whole|pieced|unknown): codes scored
	TrainCodes   *prometheus.GaugeVec     // model, version, kind: the training split's share (manifest)
	LoadTime     *prometheus.GaugeVec     // model, version (seconds)
	Threshold    *prometheus.GaugeVec     // model, version, source (manifest or override)
	Loads        *prometheus.CounterVec   // model, status (ok|error)
	ModelsLoaded prometheus.Gauge
	InFlight     prometheus.Gauge
	InflightMem  prometheus.Gauge       // bytes held by requests being received and answered
	AuthFailures *prometheus.CounterVec // reason (missing, malformed, unknown)

	cache metricCache // children of the vectors above, by label values
}

// labels3 is up to three label values.
type labels3 struct{ a, b, c string }

// metricCache caches metric children so a request does not hash its label values into
// every vector. Safe for concurrent use; the label values come from loaded models and fixed
// method names and codes, so it stays small.
type metricCache struct {
	mu sync.RWMutex
	m  map[cacheKey]prometheus.Collector
}

type cacheKey struct {
	vec any // the vector
	l   labels3
}

const maxCachedMetrics = 4096

func (c *metricCache) get(vec any, l labels3, make func() prometheus.Collector) prometheus.Collector {
	k := cacheKey{vec, l}
	c.mu.RLock()
	m, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return m
	}
	m = make()
	c.mu.Lock()
	if c.m == nil {
		c.m = map[cacheKey]prometheus.Collector{}
	}
	if len(c.m) < maxCachedMetrics {
		c.m[k] = m
	}
	c.mu.Unlock()
	return m
}

func (l labels3) values(n int) []string { return []string{l.a, l.b, l.c}[:n] }

// histogram is v.WithLabelValues of the first n of l, cached.
func (m *Metrics) histogram(v *prometheus.HistogramVec, n int, l labels3) prometheus.Observer {
	newHist := func() prometheus.Collector { return v.WithLabelValues(l.values(n)...).(prometheus.Histogram) }
	return m.cache.get(v, l, newHist).(prometheus.Histogram)
}

// counter is v.WithLabelValues of the first n of l, cached.
func (m *Metrics) counter(v *prometheus.CounterVec, n int, l labels3) prometheus.Counter {
	return m.cache.get(v, l, func() prometheus.Collector { return v.WithLabelValues(l.values(n)...) }).(prometheus.Counter)
}

var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics registers the metrics (and the Go and process collectors) in a new registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medseq_requests_total",
			Help: "gRPC requests by method, model and status code."}, []string{"method", "model", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "medseq_request_duration_seconds",
			Help: "Latency of prediction requests that reached a model, by method, model and version.", Buckets: latencyBuckets},
			[]string{"method", "model", "version"}),
		RPCLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "medseq_grpc_handling_seconds",
			Help: "Latency of every gRPC call, by method.", Buckets: latencyBuckets}, []string{"method"}),
		BatchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "medseq_batch_size",
			Help: "Subjects per scoring call.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}},
			[]string{"method", "model"}),
		QueueTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "medseq_queue_duration_seconds",
			Help: "Time a request waited for a scoring slot.", Buckets: latencyBuckets}, []string{"model"}),
		Inferences: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medseq_inference_count_total",
			Help: "Subjects scored, by model and version."}, []string{"model", "version"}),
		Codes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medseq_codes_total",
			Help: "Codes of scored histories (after censoring) by how the model's tokenizer read them: " +
				"whole (in the vocabulary), pieced (a known parent code and suffix pieces) or unknown ([UNK]); " +
				"compare with medseq_model_training_code_share to see drift to foreign codes."},
			[]string{"model", "version", "kind"}),
		TrainCodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "medseq_model_training_code_share",
			Help: "Share of the training split's codes the model's tokenizer read as whole, " +
				"pieced or unknown (the manifest's token_rates)."},
			[]string{"model", "version", "kind"}),
		LoadTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "medseq_model_load_duration_seconds",
			Help: "Time the last load of a model version took."}, []string{"model", "version"}),
		Threshold: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "medseq_model_threshold",
			Help: "The operating point a model version decides at (calibrated probability): source manifest, " +
				"or override (serve --threshold)."},
			[]string{"model", "version", "source"}),
		Loads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medseq_model_loads_total",
			Help: "Model version loads by outcome."}, []string{"model", "status"}),
		ModelsLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medseq_model_versions_loaded",
			Help: "Model versions loaded."}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medseq_requests_in_flight",
			Help: "gRPC calls being handled."}),
		InflightMem: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medseq_inflight_request_bytes",
			Help: "Bytes of request memory held by calls in flight (bounded by --max-inflight-bytes)."}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medseq_auth_failures_total",
			Help: "Calls refused for their bearer token, by reason (missing, malformed, unknown)."}, []string{"reason"}),
	}
	r.MustRegister(m.Requests, m.Latency, m.RPCLatency, m.BatchSize, m.QueueTime, m.Inferences, m.Codes, m.TrainCodes,
		m.LoadTime, m.Threshold, m.Loads, m.ModelsLoaded, m.InFlight, m.InflightMem, m.AuthFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, g := range gpuCollectors() {
		r.MustRegister(g)
	}
	return m
}
