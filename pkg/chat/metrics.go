package chat

import (
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's: every turn, whoever asked for it, is counted
// here and nowhere else.
//
//	botfleet_chat_turns_total{endpoint, outcome}        answered, replayed, cached, or failed
//	botfleet_chat_turn_duration_seconds{endpoint}       the whole turn, lock wait and backend included
//	botfleet_chat_turn_failures_total{endpoint, code}   failed turns by their fault code
type metrics struct {
	turns    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		turns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_chat_turns_total", Help: "Chat turns by endpoint and outcome (answered, replayed, cached, failed).",
		}, []string{"endpoint", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "botfleet_chat_turn_duration_seconds", Help: "Chat turn time by endpoint, lock wait and backend call included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"endpoint"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_chat_turn_failures_total", Help: "Failed chat turns by endpoint and error code.",
		}, []string{"endpoint", "code"}),
	}
	if reg != nil {
		reg.MustRegister(m.turns, m.duration, m.failures)
	}
	return m
}

// observe counts one turn.
func (m *metrics) observe(r Request, res Result, err error, elapsed time.Duration) {
	endpoint := r.Endpoint
	if endpoint == "" {
		endpoint = "chat"
	}
	outcome := "answered"
	switch {
	case err != nil:
		outcome = "failed"
		m.failures.WithLabelValues(endpoint, fault.Of(err).Code).Inc()
	case res.Replayed:
		outcome = "replayed"
	case res.Backend == "cache":
		outcome = "cached"
	}
	m.turns.WithLabelValues(endpoint, outcome).Inc()
	m.duration.WithLabelValues(endpoint).Observe(elapsed.Seconds())
}
