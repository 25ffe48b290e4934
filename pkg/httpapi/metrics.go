package httpapi

import "github.com/prometheus/client_golang/prometheus"

// metrics are the HTTP layer's:
//
//	botfleet_http_requests_total{route, method, code}   responses by route template
//	botfleet_http_request_duration_seconds{route, method, code}  response time by route template and status
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_http_requests_total", Help: "HTTP responses by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "botfleet_http_request_duration_seconds", Help: "HTTP response time by route, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method", "code"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}
