package httpapi

import (
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the HTTP layer's:
//
//	botfleet_http_requests_total{route, method, code}   responses by route template
//	botfleet_http_request_duration_seconds{route, method, code}  response time by route template and status
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	v := telemetry.NewVecs(reg)
	return &metrics{
		requests: v.Counter("botfleet_http_requests_total", "HTTP responses by route, method and status code.", "route", "method", "code"),
		duration: v.Histogram("botfleet_http_request_duration_seconds", "HTTP response time by route, method and status code.",
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "route", "method", "code"),
	}
}
