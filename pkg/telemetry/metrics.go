package telemetry

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are an instance's Prometheus registries, of its own so that
// several instances can live in one test process, and the metrics no
// package owns yet. Every package registers its own metrics on Registerer.
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
	// Gatherer is every metric of the instance: what /metrics serves.
	Gatherer prometheus.Gatherer
	// QueueJobs counts queue jobs by priority and outcome: done, retry,
	// dead, abandoned, lost.
	QueueJobs *prometheus.CounterVec
	// QueueJobDuration times queue jobs by priority.
	QueueJobDuration *prometheus.HistogramVec

	queueStats func(ctx context.Context) ([]QueueStat, int64, error)
}

// QueueStat is one priority stream's numbers, read at scrape time.
type QueueStat struct {
	Priority string
	// Depth counts unfinished jobs, Pending those taken by a worker, Lag
	// those no worker has taken yet.
	Depth, Pending, Lag int64
	// OldestAge is the age of the oldest unfinished job in seconds.
	OldestAge float64
}

// SetQueueStats makes /metrics read the queue's depth, pending jobs, lag,
// oldest age and dead letters through f at every scrape.
func (m *Metrics) SetQueueStats(f func(ctx context.Context) ([]QueueStat, int64, error)) {
	m.queueStats = f
}

// NewMetrics returns the metrics of an instance, labelled with its name.
func NewMetrics(instance string) *Metrics {
	reg, runtime := prometheus.NewRegistry(), prometheus.NewRegistry()
	labels := prometheus.Labels{"instance": instance}
	m := &Metrics{
		Registry:   reg,
		Registerer: prometheus.WrapRegistererWith(labels, reg),
		Runtime:    runtime,
		Gatherer:   prometheus.Gatherers{reg, runtime},
	}
	m.QueueJobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "botfleet_queue_jobs_total", Help: "Queue jobs run by this instance, by priority and outcome (done, retry, dead, abandoned, lost).",
	}, []string{"priority", "outcome"})
	m.QueueJobDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "botfleet_queue_job_duration_seconds", Help: "Queue job run time by priority.",
		Buckets: []float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"priority"})
	m.Registerer.MustRegister(m.QueueJobs, m.QueueJobDuration)
	prometheus.WrapRegistererWith(labels, runtime).MustRegister(queueCollector{m})
	runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	queueDepthDesc   = []string{"botfleet_queue_depth", "Unfinished jobs (waiting plus in progress) per priority stream, fleet-wide."}
	queuePendingDesc = []string{"botfleet_queue_pending", "Jobs taken by a worker and not finished, per priority stream, fleet-wide."}
	queueLagDesc     = []string{"botfleet_queue_lag", "Jobs no worker has taken yet, per priority stream, fleet-wide."}
	queueOldestDesc  = []string{"botfleet_queue_oldest_age_seconds", "Age of the oldest unfinished job per priority stream."}
	queueDeadDesc    = []string{"botfleet_queue_dead_letters", "Jobs in the dead-letter stream, fleet-wide."}
)

// queueCollector reads the queue's numbers from Redis at scrape time.
type queueCollector struct{ m *Metrics }

func (c queueCollector) desc(d []string, vars ...string) *prometheus.Desc {
	return prometheus.NewDesc(d[0], d[1], vars, nil)
}

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range [][]string{queueDepthDesc, queuePendingDesc, queueLagDesc, queueOldestDesc} {
		ch <- c.desc(d, "priority")
	}
	ch <- c.desc(queueDeadDesc)
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	if c.m.queueStats == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	stats, dead, err := c.m.queueStats(ctx)
	if err != nil {
		return
	}
	for _, s := range stats {
		ch <- prometheus.MustNewConstMetric(c.desc(queueDepthDesc, "priority"), prometheus.GaugeValue, float64(s.Depth), s.Priority)
		ch <- prometheus.MustNewConstMetric(c.desc(queuePendingDesc, "priority"), prometheus.GaugeValue, float64(s.Pending), s.Priority)
		ch <- prometheus.MustNewConstMetric(c.desc(queueLagDesc, "priority"), prometheus.GaugeValue, float64(s.Lag), s.Priority)
		ch <- prometheus.MustNewConstMetric(c.desc(queueOldestDesc, "priority"), prometheus.GaugeValue, s.OldestAge, s.Priority)
	}
	ch <- prometheus.MustNewConstMetric(c.desc(queueDeadDesc), prometheus.GaugeValue, float64(dead))
}
