package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/config"
	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/telemetry"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// newBackend builds the configured provider behind its circuit breaker,
// with the builtin fallback when configured. breakers reports the
// breaker's state for /health.
func newBackend(c config.LLMConfig, logger *slog.Logger, m *telemetry.Metrics) (b chat.Backend, breakers func() map[string]string, err error) {
	builtin, err := llm.NewBuiltin(llm.BuiltinOptions{
		FAQ: c.Builtin.FAQ, Fallback: c.Builtin.FallbackTemplate, FallbackConfidence: c.Builtin.FallbackConfidence,
	})
	if err != nil {
		return nil, nil, err
	}
	var primary llm.Backend = builtin
	if c.Provider == "openai" {
		primary, err = llm.NewOpenAI(llm.OpenAIOptions{
			BaseURL: c.OpenAI.BaseURL, APIKey: c.OpenAI.APIKey, Model: c.Model,
			Temperature: c.Temperature, MaxTokens: c.MaxTokens, Timeout: c.Timeout,
			Retries: retries(c.Retries), Logprobs: c.OpenAI.Logprobs,
		})
		if err != nil {
			return nil, nil, err
		}
	}
	breaker := llm.NewBreaker(timed{primary, m}, llm.BreakerOptions{
		Failures: c.Breaker.Failures, Interval: c.Breaker.Interval,
		OpenTimeout: c.Breaker.OpenTimeout, HalfOpenRequests: c.Breaker.HalfOpenRequests,
		OnStateChange: func(backend string, _, to llm.State) {
			m.BreakerState.WithLabelValues(backend).Set(float64(to))
		},
	}, logger)
	m.BreakerState.WithLabelValues(breaker.Name()).Set(float64(breaker.State()))
	breakers = func() map[string]string { return map[string]string{breaker.Name(): breaker.State().String()} }
	if c.Fallback == "builtin" && c.Provider != "builtin" {
		return llm.WithFallback(breaker, builtin, logger), breakers, nil
	}
	return breaker, breakers, nil
}

// retries maps the config's "0 means none" onto OpenAIOptions' "negative
// means none".
func retries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// timed measures every backend call, and traces it.
type timed struct {
	llm.Backend
	m *telemetry.Metrics
}

var tracer = otel.Tracer("github.com/botfleet/botfleet/cmd/bot")

func (t timed) Complete(ctx context.Context, req llm.Request) (llm.Reply, error) {
	start := time.Now()
	ctx, span := tracer.Start(ctx, "llm.complete", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("llm.backend", t.Backend.Name()), attribute.Int("llm.messages", len(req.Messages))))
	defer span.End()
	r, err := t.Backend.Complete(ctx, req)
	outcome := "ok"
	if err != nil {
		outcome = "error"
		span.SetStatus(codes.Error, err.Error())
	}
	t.m.LLMDuration.WithLabelValues(t.Backend.Name(), outcome).Observe(time.Since(start).Seconds())
	return r, err
}
