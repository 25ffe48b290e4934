package im

import (
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// linkMetrics are the links' collectors.
type linkMetrics struct {
	up, leader       *prometheus.GaugeVec
	connects, events *prometheus.CounterVec
}

func newLinkMetrics(reg prometheus.Registerer) *linkMetrics {
	v := telemetry.NewVecs(reg)
	return &linkMetrics{
		up:       v.Gauge("botfleet_im_link_up", "1 while this instance's link of the platform is connected.", "platform"),
		leader:   v.Gauge("botfleet_im_link_leader", "1 while this instance holds the lease of a platform's `one` link.", "platform"),
		connects: v.Counter("botfleet_im_link_connections_total", "Link connections by platform and outcome (ok: connected, dropped: ended with an error).", "platform", "outcome"),
		events:   v.Counter("botfleet_im_link_events_total", "Events received over links by platform and outcome (queued, duplicate, ignored, answered, rejected, failed).", "platform", "outcome"),
	}
}

func (m *linkMetrics) state(platform, state string) {
	v := 0.0
	if state == StateConnected {
		v = 1
	}
	m.up.WithLabelValues(platform).Set(v)
}
