package im

import "github.com/prometheus/client_golang/prometheus"

// linkMetrics are the links' collectors.
type linkMetrics struct {
	up       *prometheus.GaugeVec
	leader   *prometheus.GaugeVec
	connects *prometheus.CounterVec
	events   *prometheus.CounterVec
}

func newLinkMetrics(reg prometheus.Registerer) *linkMetrics {
	m := &linkMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "botfleet_im_link_up", Help: "1 while this instance's link of the platform is connected.",
		}, []string{"platform"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "botfleet_im_link_leader", Help: "1 while this instance holds the lease of a platform's `one` link.",
		}, []string{"platform"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_im_link_connections_total", Help: "Link connections by platform and outcome (ok: connected, dropped: ended with an error).",
		}, []string{"platform", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_im_link_events_total", Help: "Events received over links by platform and outcome (queued, duplicate, ignored, answered, rejected, failed).",
		}, []string{"platform", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.leader, m.connects, m.events)
	}
	return m
}

func (m *linkMetrics) state(platform, state string) {
	v := 0.0
	if state == StateConnected {
		v = 1
	}
	m.up.WithLabelValues(platform).Set(v)
}
