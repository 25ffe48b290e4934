package llm

import (
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// routerMetrics are the router's:
//
//	botfleet_llm_request_duration_seconds{model, endpoint, outcome}  each endpoint call; outcome ok or the error's code
//	botfleet_llm_time_to_first_token_seconds{model}                   streamed calls, from the call to the first piece
//	botfleet_llm_breaker_state{backend}                               each endpoint's circuit: 0 closed, 1 half-open, 2 open
//	botfleet_llm_fallbacks_total{model, fallback}                     calls answered by a fallback model
//	botfleet_llm_tokens_total{model, kind}                            prompt and completion tokens, as the backends report them
type routerMetrics struct {
	duration  *prometheus.HistogramVec
	ttft      *prometheus.HistogramVec
	breaker   *prometheus.GaugeVec
	fallbacks *prometheus.CounterVec
	tokens    *prometheus.CounterVec
}

func newRouterMetrics(reg prometheus.Registerer) *routerMetrics {
	buckets := []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	v := telemetry.NewVecs(reg)
	return &routerMetrics{
		duration:  v.Histogram("botfleet_llm_request_duration_seconds", "LLM endpoint calls by model, endpoint and outcome (ok or the error code).", buckets, "model", "endpoint", "outcome"),
		ttft:      v.Histogram("botfleet_llm_time_to_first_token_seconds", "Streamed LLM calls: time from the call to the first piece of the reply, by model.", buckets, "model"),
		breaker:   v.Gauge("botfleet_llm_breaker_state", "Circuit breaker state per model endpoint: 0 closed, 1 half-open, 2 open.", "backend"),
		fallbacks: v.Counter("botfleet_llm_fallbacks_total", "LLM calls answered by a fallback model, by the model asked for and the fallback.", "model", "fallback"),
		tokens:    v.Counter("botfleet_llm_tokens_total", "Tokens by model and kind (prompt, completion), as the backends report them.", "model", "kind"),
	}
}
