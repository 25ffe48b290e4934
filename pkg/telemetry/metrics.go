package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are an instance's Prometheus registries, of its own so that
// several instances can live in one test process. Every package registers
// its own metrics: those kept in memory on Registerer, those read when
// scraped (from Redis, the process) on ScrapeRegisterer.
type Metrics struct {
	// Registry holds the packages' own metrics: counters, gauges and
	// histograms in memory, so gathering it costs no I/O (the fleet
	// heartbeat reads it).
	Registry *prometheus.Registry
	// Registerer registers on Registry with the label instance=<name>;
	// packages register their metrics here.
	Registerer prometheus.Registerer
	// Runtime holds what is read when scraped: the Go runtime, the process,
	// the Redis connection pool, the queue's numbers (read from Redis).
	Runtime *prometheus.Registry
	// ScrapeRegisterer registers on Runtime with the label
	// instance=<name>.
	ScrapeRegisterer prometheus.Registerer
	// Gatherer is every metric of the instance: what /metrics serves.
	Gatherer prometheus.Gatherer
}

// NewMetrics returns the metrics of an instance, labelled with its name.
func NewMetrics(instance string) *Metrics {
	reg, runtime := prometheus.NewRegistry(), prometheus.NewRegistry()
	labels := prometheus.Labels{"instance": instance}
	m := &Metrics{
		Registry:         reg,
		Registerer:       prometheus.WrapRegistererWith(labels, reg),
		Runtime:          runtime,
		ScrapeRegisterer: prometheus.WrapRegistererWith(labels, runtime),
		Gatherer:         prometheus.Gatherers{reg, runtime},
	}
	runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
