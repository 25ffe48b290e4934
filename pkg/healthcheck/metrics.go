package healthcheck

import "github.com/prometheus/client_golang/prometheus"

// metrics are the checker's Prometheus metrics.
type metrics struct {
	probes   *prometheus.CounterVec
	restarts *prometheus.CounterVec
	alerts   *prometheus.CounterVec
	state    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_healthcheck_probes_total",
			Help: "Probes by target, kind (liveness, readiness) and result (success, failure).",
		}, []string{"target", "kind", "result"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_healthcheck_restarts_total",
			Help: "Restarts by target.",
		}, []string{"target"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_healthcheck_alerts_total",
			Help: "Alerts fired by target (a target marked failed).",
		}, []string{"target"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "botfleet_healthcheck_target_state",
			Help: "1 for the state each target is in, 0 for the others.",
		}, []string{"target", "state"}),
	}
	reg.MustRegister(m.probes, m.restarts, m.alerts, m.state)
	return m
}

func (m *metrics) setState(target string, s State) {
	for _, st := range States {
		v := 0.0
		if st == s {
			v = 1
		}
		m.state.WithLabelValues(target, string(st)).Set(v)
	}
}

// forget drops a removed target's series.
func (m *metrics) forget(target string) {
	l := prometheus.Labels{"target": target}
	m.probes.DeletePartialMatch(l)
	m.restarts.DeletePartialMatch(l)
	m.alerts.DeletePartialMatch(l)
	m.state.DeletePartialMatch(l)
}
