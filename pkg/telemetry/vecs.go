package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Vecs makes a package's metric vectors, one line each, and registers
// them on the Registerer it was made with; with a nil Registerer (a
// package's zero Options) they work but are not registered. The package
// still owns its metrics: Vecs only spares it the options literal and the
// MustRegister, and panics as MustRegister does on a duplicate name.
type Vecs struct{ f promauto.Factory }

// NewVecs returns the Vecs registering on reg.
func NewVecs(reg prometheus.Registerer) Vecs { return Vecs{promauto.With(reg)} }

// Counter returns the counter vector name with help and labels.
func (v Vecs) Counter(name, help string, labels ...string) *prometheus.CounterVec {
	return v.f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// Gauge returns the gauge vector name with help and labels.
func (v Vecs) Gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return v.f.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// Histogram returns the histogram vector name with help, buckets and
// labels.
func (v Vecs) Histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return v.f.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}

// SetState sets a state gauge: 1 for the series of current, 0 for those
// of the other states. The state is the gauge's last label; labels are the
// values of the ones before it.
func SetState[S ~string](g *prometheus.GaugeVec, states []S, current S, labels ...string) {
	for _, s := range states {
		v := 0.0
		if s == current {
			v = 1
		}
		g.WithLabelValues(append(labels[:len(labels):len(labels)], string(s))...).Set(v)
	}
}
