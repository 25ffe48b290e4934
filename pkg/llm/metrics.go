package llm

import "github.com/prometheus/client_golang/prometheus"

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
	m := &routerMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "botfleet_llm_request_duration_seconds", Help: "LLM endpoint calls by model, endpoint and outcome (ok or the error code).", Buckets: buckets,
		}, []string{"model", "endpoint", "outcome"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "botfleet_llm_time_to_first_token_seconds", Help: "Streamed LLM calls: time from the call to the first piece of the reply, by model.", Buckets: buckets,
		}, []string{"model"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "botfleet_llm_breaker_state", Help: "Circuit breaker state per model endpoint: 0 closed, 1 half-open, 2 open.",
		}, []string{"backend"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_llm_fallbacks_total", Help: "LLM calls answered by a fallback model, by the model asked for and the fallback.",
		}, []string{"model", "fallback"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "botfleet_llm_tokens_total", Help: "Tokens by model and kind (prompt, completion), as the backends report them.",
		}, []string{"model", "kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.duration, m.ttft, m.breaker, m.fallbacks, m.tokens)
	}
	return m
}
