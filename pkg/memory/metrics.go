package memory

import (
	"errors"
	"time"

	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

var tracer = otel.Tracer("github.com/botfleet/botfleet/pkg/memory")

// metrics are the store's:
//
//	botfleet_memory_store_state{state}              the last readiness check (see Check)
//	botfleet_memory_lock_wait_seconds{outcome}      Begin: from the call until the turn may run (or why not)
//
// Begin's outcomes: granted (the turn holds its conversation), replayed (a
// finished request), following (in progress elsewhere, a streamed turn
// follows it), conflict, busy, in_progress, unavailable and canceled.
type metrics struct {
	state *prometheus.GaugeVec
	wait  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	v := telemetry.NewVecs(reg)
	return &metrics{
		state: v.Gauge("botfleet_memory_store_state", "The conversation store (Redis) as the last readiness check saw it: 1 for the current state (ok, full, unavailable), 0 for the others.", "state"),
		wait: v.Histogram("botfleet_memory_lock_wait_seconds", "Time a turn waited in Begin for its conversation (idempotency check, FIFO lock and history load), by outcome.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "outcome"),
	}
}

// waited records one Begin: its wait by outcome, and its span.
func (m *metrics) waited(span trace.Span, t *Turn, err error, polls int, d time.Duration) {
	outcome := "granted"
	switch {
	case errors.Is(err, ErrConflict):
		outcome = "conflict"
	case errors.Is(err, ErrBusy):
		outcome = "busy"
	case errors.Is(err, ErrInProgress):
		outcome = "in_progress"
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrFull):
		outcome = "unavailable"
	case err != nil:
		outcome = "canceled"
	case t.Replay != nil:
		outcome = "replayed"
	case t.InProgress:
		outcome = "following"
	}
	m.wait.WithLabelValues(outcome).Observe(d.Seconds())
	if span.IsRecording() {
		span.SetAttributes(attribute.String("memory.outcome", outcome), attribute.Int("memory.polls", polls),
			attribute.Float64("memory.wait_ms", float64(d.Microseconds())/1000))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}
