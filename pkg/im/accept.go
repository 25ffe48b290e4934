package im

import (
	"context"
	"encoding/json"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Outcomes of an event handed to the pipeline, by webhook or over a link.
const (
	OutcomeQueued    = "queued"    // a new event, queued for a worker
	OutcomeDuplicate = "duplicate" // the fleet has seen it: nothing queued
	OutcomeIgnored   = "ignored"   // not for the bot (no mention, no text)
	OutcomeAnswered  = "answered"  // needs no reply (a challenge, another event type)
	OutcomeRejected  = "rejected"  // not the platform's format, or forged
)

// EventParser is an adapter that parses an event that came over an
// authenticated connection (stream mode: the connection, not each event,
// proves where it came from), exactly as its webhook path parses it once
// verified. Its errors are *Error.
type EventParser interface {
	ParseEvent(ctx context.Context, body []byte) (*Inbound, error)
}

// Accept takes one event body that arrived over platform's long connection
// and runs it through parse → dedup → classify → queue, like Webhook. It
// returns once the job is queued (or found a duplicate), so that the link
// acknowledges the event only then. Its error is *Error for an event no
// retry can fix (acknowledge it and move on), else a temporary failure
// (queue.ErrUnavailable: do not acknowledge; the platform redelivers).
func (p *Pipeline) Accept(ctx context.Context, platform string, body []byte) (string, error) {
	a, ok := p.adapters[platform]
	if !ok {
		return OutcomeRejected, &Error{Code: "platform_off", Message: "platform " + platform + " is off on this instance"}
	}
	ep, ok := a.(EventParser)
	if !ok {
		return OutcomeRejected, &Error{Code: "no_stream", Message: "platform " + platform + " has no stream mode"}
	}
	in, err := ep.ParseEvent(ctx, body)
	if err != nil {
		return OutcomeRejected, err
	}
	return p.admit(ctx, platform, in)
}

// admit dedups, classifies and queues a parsed event.
func (p *Pipeline) admit(ctx context.Context, platform string, in *Inbound) (string, error) {
	m := in.Message
	if m == nil {
		return OutcomeAnswered, nil
	}
	if reason := p.prepare(m); reason != "" {
		p.log.DebugContext(ctx, "im: event ignored", "platform", platform, "event", m.EventID, "reason", reason)
		return OutcomeIgnored, nil
	}
	if p.opts.Admit != nil {
		outcome, err := p.opts.Admit(ctx, m)
		if err != nil {
			return "", err
		}
		if outcome != "" {
			p.log.InfoContext(ctx, "im: event dropped", "platform", platform, "event", m.EventID, "outcome", outcome, "conversation", m.Conversation)
			return outcome, nil
		}
	}
	payload, _ := json.Marshal(m)
	fields := map[string]string{"platform": m.Platform, "event": m.EventID, "msg": string(payload)}
	// The job carries the webhook's trace context (traceparent), so that
	// its turn and its reply, on whichever instance, join the trace.
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(fields))
	id, dup, err := p.q.Enqueue(ctx, m.Priority, "im:"+m.Key(), p.opts.DedupTTL, fields)
	if err != nil {
		return "", err
	}
	if dup {
		p.log.InfoContext(ctx, "im: duplicate event", "platform", platform, "event", m.EventID)
		return OutcomeDuplicate, nil
	}
	p.log.InfoContext(ctx, "im: queued", "platform", platform, "event", m.EventID, "priority", m.Priority, "entry", id, "conversation", m.Conversation)
	return OutcomeQueued, nil
}
