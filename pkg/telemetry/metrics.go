package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are an instance's Prometheus metrics, in a registry of their own
// so that several instances can live in one test process.
type Metrics struct {
	// Registry holds every collector below plus the Go and process ones.
	Registry *prometheus.Registry
	// HTTPRequests counts responses by route, method and status code.
	HTTPRequests *prometheus.CounterVec
	// HTTPDuration times responses by route.
	HTTPDuration *prometheus.HistogramVec
	// Turns counts chat turns by outcome: answered, replayed, cached, failed.
	Turns *prometheus.CounterVec
	// LLMDuration times backend calls by backend and outcome (ok, error).
	LLMDuration *prometheus.HistogramVec
	// BreakerState is each backend's circuit: 0 closed, 1 half-open, 2 open.
	BreakerState *prometheus.GaugeVec
}

// NewMetrics returns the metrics of an instance, labelled with its name.
func NewMetrics(instance string) *Metrics {
	labels := prometheus.Labels{"instance": instance}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_http_requests_total", Help: "HTTP responses by route, method and status code.", ConstLabels: labels,
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "botfleet_http_request_duration_seconds", Help: "HTTP response time by route.", ConstLabels: labels,
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		Turns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_chat_turns_total", Help: "Chat turns by outcome (answered, replayed, cached, failed).", ConstLabels: labels,
		}, []string{"outcome"}),
		LLMDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "botfleet_llm_request_duration_seconds", Help: "LLM backend calls by backend and outcome.", ConstLabels: labels,
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"backend", "outcome"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "botfleet_llm_breaker_state", Help: "Circuit breaker state per backend: 0 closed, 1 half-open, 2 open.", ConstLabels: labels,
		}, []string{"backend"}),
	}
	m.Registry.MustRegister(m.HTTPRequests, m.HTTPDuration, m.Turns, m.LLMDuration, m.BreakerState,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
