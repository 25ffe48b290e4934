package chat

import (
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's: every turn, whoever asked for it, is counted
// here and nowhere else.
//
//	botfleet_chat_turns_total{endpoint, outcome}        answered, replayed, cached, or failed
//	botfleet_chat_turn_duration_seconds{endpoint}       the whole turn, lock wait and backend included
//	botfleet_chat_turn_failures_total{endpoint, code}   failed turns by their fault code
//	botfleet_chat_turns_in_flight{endpoint}             turns running now
//	botfleet_chat_time_to_first_token_seconds{endpoint} streamed turns, from the request to the first piece sent
//	botfleet_chat_cache_lookups_total{result}           first-turn cache reads: hit or miss
type metrics struct {
	turns    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
	inFlight *prometheus.GaugeVec
	ttft     *prometheus.HistogramVec
	cache    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	v := telemetry.NewVecs(reg)
	return &metrics{
		turns:    v.Counter("botfleet_chat_turns_total", "Chat turns by endpoint and outcome (answered, replayed, cached, failed).", "endpoint", "outcome"),
		duration: v.Histogram("botfleet_chat_turn_duration_seconds", "Chat turn time by endpoint, lock wait and backend call included.", buckets, "endpoint"),
		failures: v.Counter("botfleet_chat_turn_failures_total", "Failed chat turns by endpoint and error code.", "endpoint", "code"),
		inFlight: v.Gauge("botfleet_chat_turns_in_flight", "Chat turns running now, by endpoint.", "endpoint"),
		ttft:     v.Histogram("botfleet_chat_time_to_first_token_seconds", "Streamed chat turns: time from the request to the first piece of the reply sent, lock wait included, by endpoint.", buckets, "endpoint"),
		cache:    v.Counter("botfleet_chat_cache_lookups_total", "First-turn response cache reads by result (hit, miss).", "result"),
	}
}

func endpointOf(r Request) string {
	if r.Endpoint == "" {
		return "chat"
	}
	return r.Endpoint
}

// begin counts a turn in flight and, for a streamed one, times its first
// piece; the returned func ends it.
func (m *metrics) begin(r *Request, start time.Time) (end func()) {
	endpoint := endpointOf(*r)
	g := m.inFlight.WithLabelValues(endpoint)
	g.Inc()
	if emit := r.Stream; emit != nil {
		first := true
		ttft := m.ttft.WithLabelValues(endpoint)
		r.Stream = func(e Event) error {
			if first && e.Kind == "piece" {
				first = false
				ttft.Observe(time.Since(start).Seconds())
			}
			return emit(e)
		}
	}
	return g.Dec
}

// observe counts one turn.
func (m *metrics) observe(r Request, res Result, err error, elapsed time.Duration) {
	endpoint := endpointOf(r)
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

// lookedUp counts a first-turn cache read.
func (m *metrics) lookedUp(hit bool) {
	result := "miss"
	if hit {
		result = "hit"
	}
	m.cache.WithLabelValues(result).Inc()
}
