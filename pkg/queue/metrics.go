package queue

import (
	"context"
	"time"

	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the queue's job metrics of one instance: what its workers
// ran (botfleet_queue_jobs_total by priority and outcome,
// botfleet_queue_job_duration_seconds by priority). Observe is a
// ConsumerOptions.Observe.
type Metrics struct {
	jobs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the job metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	v := telemetry.NewVecs(reg)
	return &Metrics{
		jobs: v.Counter("botfleet_queue_jobs_total", "Queue jobs run by this instance, by priority and outcome (done, retry, dead, abandoned, lost).", "priority", "outcome"),
		duration: v.Histogram("botfleet_queue_job_duration_seconds", "Queue job run time by priority.",
			[]float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}, "priority"),
	}
}

// Observe counts and times one job.
func (m *Metrics) Observe(p Priority, outcome string, elapsed time.Duration) {
	m.jobs.WithLabelValues(string(p), outcome).Inc()
	m.duration.WithLabelValues(string(p)).Observe(elapsed.Seconds())
}

var (
	depthDesc   = prometheus.NewDesc("botfleet_queue_depth", "Unfinished jobs (waiting plus in progress) per priority stream, fleet-wide.", []string{"priority"}, nil)
	pendingDesc = prometheus.NewDesc("botfleet_queue_pending", "Jobs taken by a worker and not finished, per priority stream, fleet-wide.", []string{"priority"}, nil)
	lagDesc     = prometheus.NewDesc("botfleet_queue_lag", "Jobs no worker has taken yet, per priority stream, fleet-wide.", []string{"priority"}, nil)
	oldestDesc  = prometheus.NewDesc("botfleet_queue_oldest_age_seconds", "Age of the oldest unfinished job per priority stream.", []string{"priority"}, nil)
	deadDesc    = prometheus.NewDesc("botfleet_queue_dead_letters", "Jobs in the dead-letter stream, fleet-wide.", nil, nil)
)

// Collector reads the queue's fleet-wide numbers (Stats, one round trip)
// from Redis when scraped: register it on a registry that is gathered at
// scrape time, not on one read by every heartbeat.
func (q *Queue) Collector() prometheus.Collector { return collector{q} }

type collector struct{ q *Queue }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{depthDesc, pendingDesc, lagDesc, oldestDesc, deadDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := c.q.Stats(ctx)
	if err != nil {
		return
	}
	for _, s := range st.Streams {
		p := string(s.Priority)
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(s.Depth), p)
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.Pending), p)
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(s.Lag), p)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, s.OldestAgeSeconds, p)
	}
	ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(st.DeadLetters))
}
