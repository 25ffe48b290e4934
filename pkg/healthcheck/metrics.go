package healthcheck

import (
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the checker's Prometheus metrics.
type metrics struct {
	probes, restarts, alerts *prometheus.CounterVec
	state                    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	v := telemetry.NewVecs(reg)
	return &metrics{
		probes:   v.Counter("botfleet_healthcheck_probes_total", "Probes by target, kind (liveness, readiness) and result (success, failure).", "target", "kind", "result"),
		restarts: v.Counter("botfleet_healthcheck_restarts_total", "Restarts by target.", "target"),
		alerts:   v.Counter("botfleet_healthcheck_alerts_total", "Alerts fired by target (a target marked failed).", "target"),
		state:    v.Gauge("botfleet_healthcheck_target_state", "1 for the state each target is in, 0 for the others.", "target", "state"),
	}
}

func (m *metrics) setState(target string, s State) { telemetry.SetState(m.state, States, s, target) }

// forget drops a removed target's series.
func (m *metrics) forget(target string) {
	l := prometheus.Labels{"target": target}
	m.probes.DeletePartialMatch(l)
	m.restarts.DeletePartialMatch(l)
	m.alerts.DeletePartialMatch(l)
	m.state.DeletePartialMatch(l)
}
