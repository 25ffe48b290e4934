package registry

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The instance's own metrics a heartbeat reads; each is registered by the
// package that owns it (pkg/chat, pkg/httpapi), and read here by name.
const (
	metricTurns     = "botfleet_chat_turns_total"
	metricDuration  = "botfleet_chat_turn_duration_seconds"
	metricTTFT      = "botfleet_chat_time_to_first_token_seconds"
	metricInFlight  = "botfleet_chat_turns_in_flight"
	metricHTTP      = "botfleet_http_requests_total"
	labelOutcome    = "outcome"
	labelRoute      = "route"
	labelCode       = "code"
	outcomeFailed   = "failed"
	trafficRoutes   = "/v1/"
	webhookRoutes   = "/webhook/"
	serverErrorCode = "5"
)

// counters are the instance's traffic counters at one moment.
type counters struct {
	at               time.Time
	turns, failed    float64
	requests, errors float64
	inFlight         float64
	duration, ttft   Histogram
}

// gather reads the counters from g. Only the API's routes (/v1/...,
// /webhook/...) count as requests: not probes, scrapes or the console.
func gather(g prometheus.Gatherer, at time.Time) (counters, error) {
	c := counters{at: at}
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return c, err
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case metricTurns:
				v := m.GetCounter().GetValue()
				c.turns += v
				if label(m, labelOutcome) == outcomeFailed {
					c.failed += v
				}
			case metricHTTP:
				route := label(m, labelRoute)
				if !strings.HasPrefix(route, trafficRoutes) && !strings.HasPrefix(route, webhookRoutes) {
					continue
				}
				v := m.GetCounter().GetValue()
				c.requests += v
				if strings.HasPrefix(label(m, labelCode), serverErrorCode) {
					c.errors += v
				}
			case metricInFlight:
				c.inFlight += m.GetGauge().GetValue()
			case metricDuration:
				c.duration.add(m.GetHistogram())
			case metricTTFT:
				c.ttft.add(m.GetHistogram())
			}
		}
	}
	return c, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Traffic is an instance's traffic over the heartbeat window, from its own
// counters: rates, and the distributions of turn time and time to first
// token of what it served in the window.
type Traffic struct {
	// WindowSeconds is the time the rates and distributions cover.
	WindowSeconds float64 `json:"window_seconds"`
	// TurnsPerSecond counts every turn; FailedPerSecond the failed ones.
	TurnsPerSecond  float64 `json:"turns_per_second"`
	FailedPerSecond float64 `json:"failed_per_second"`
	// RequestsPerSecond counts API requests (/v1/..., /webhook/...),
	// ErrorsPerSecond those answered 5xx.
	RequestsPerSecond float64 `json:"requests_per_second"`
	ErrorsPerSecond   float64 `json:"errors_per_second"`
	// Duration is the turns' time, TTFT streamed turns' time to the first
	// piece of the reply.
	Duration Histogram `json:"duration"`
	TTFT     Histogram `json:"ttft"`
	// Turns and FailedTurns count since the instance started.
	Turns       uint64 `json:"turns"`
	FailedTurns uint64 `json:"failed_turns"`
}

// traffic is what happened between old and c.
func (c counters) traffic(old counters) Traffic {
	t := Traffic{Turns: uint64(c.turns), FailedTurns: uint64(c.failed)}
	secs := c.at.Sub(old.at).Seconds()
	if secs <= 0 {
		return t
	}
	rate := func(now, before float64) float64 { return max(0, now-before) / secs }
	t.WindowSeconds = secs
	t.TurnsPerSecond, t.FailedPerSecond = rate(c.turns, old.turns), rate(c.failed, old.failed)
	t.RequestsPerSecond, t.ErrorsPerSecond = rate(c.requests, old.requests), rate(c.errors, old.errors)
	t.Duration, t.TTFT = c.duration.since(old.duration), c.ttft.since(old.ttft)
	return t
}
