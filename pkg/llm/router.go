package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ErrModelNotFound is a request for a model the router does not have.
var ErrModelNotFound = fault.New(http.StatusNotFound, "model_not_found", "the model does not exist")

// RouterOptions configure a Router.
type RouterOptions struct {
	// Models are the models clients may ask for. Required.
	Models []ModelOptions
	// Default is the model of a request that names none. Default: the
	// first of Models.
	Default string
	// Logger logs fallbacks and breaker changes; nil discards.
	Logger *slog.Logger
	// Registerer, when set, gets the router's metrics (see metrics.go).
	Registerer prometheus.Registerer
}

// ModelOptions are one model of a Router.
type ModelOptions struct {
	// Name is what a request's Model names and what the model list shows.
	// Required, unique.
	Name string
	// OwnedBy is shown in the model list. Default "botfleet".
	OwnedBy string
	// Endpoints answer for the model: several keys or base URLs of one
	// provider, balanced by weight. Each has a circuit breaker of its own
	// (Breaker), so a failing one is cooled down for OpenTimeout and then
	// probed half-open rather than dropped on one error. Required.
	Endpoints []EndpointOptions
	// Breaker tunes every endpoint's breaker.
	Breaker BreakerOptions
	// Fallbacks name the models tried in order when this one cannot answer
	// (every endpoint unavailable: breaker open, 429, 5xx, a timeout) before
	// any of the reply was streamed.
	Fallbacks []string
	// ContextTokens is the model's context window in tokens; the oldest
	// history is left out of the prompt so that it and the reply fit (see
	// Fit). 0 sends every message.
	ContextTokens int
	// MaxTokens is the room kept for the reply when the request sets no
	// max tokens. Default 0: none beyond the prompt.
	MaxTokens int
	// Images says the model takes image input: a user message's Images
	// are sent to it (OpenAI's image_url content parts). Default false:
	// they are left out and the message's text goes alone.
	Images bool
}

// EndpointOptions are one backend of a model.
type EndpointOptions struct {
	// Backend answers; an *OpenAI or a *Builtin. Required.
	Backend Backend
	// Weight is the endpoint's share of the model's traffic. Default 1.
	Weight int
}

// Router is the Backend of many models: the request's Model picks one, with
// its fallback chain; within a model, weighted endpoints behind breakers.
// It traces and measures every call. It is safe for concurrent use.
type Router struct {
	models   map[string]*model
	order    []*model
	def      *model
	log      *slog.Logger
	metrics  *routerMetrics
	breakers []*endpoint
}

type model struct {
	opts      ModelOptions
	endpoints []*endpoint
	chain     []*model // this model, then its fallbacks
	total     int
}

type endpoint struct {
	name    string
	model   string
	weight  int
	breaker *Breaker
}

// NewRouter checks opts and returns the router.
func NewRouter(opts RouterOptions) (*Router, error) {
	if len(opts.Models) == 0 {
		return nil, errors.New("llm: a router needs at least one model")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{models: map[string]*model{}, log: logger, metrics: newRouterMetrics(opts.Registerer)}
	for _, mo := range opts.Models {
		if mo.Name == "" {
			return nil, errors.New("llm.models: a model without a name")
		}
		if _, dup := r.models[mo.Name]; dup {
			return nil, fmt.Errorf("llm.models: %s: named twice", mo.Name)
		}
		if len(mo.Endpoints) == 0 {
			return nil, fmt.Errorf("llm.models: %s: no endpoint", mo.Name)
		}
		if mo.OwnedBy == "" {
			mo.OwnedBy = "botfleet"
		}
		m := &model{opts: mo}
		for i, eo := range mo.Endpoints {
			if eo.Backend == nil {
				return nil, fmt.Errorf("llm.models: %s: endpoint %d has no backend", mo.Name, i)
			}
			w := max(eo.Weight, 1)
			name := mo.Name
			if len(mo.Endpoints) > 1 {
				name = fmt.Sprintf("%s#%d", mo.Name, i+1)
			}
			ep := &endpoint{name: name, model: mo.Name, weight: w}
			bo := mo.Breaker
			next := bo.OnStateChange
			bo.OnStateChange = func(_ string, from, to State) {
				r.metrics.breaker.WithLabelValues(name).Set(float64(to))
				if next != nil {
					next(name, from, to)
				}
			}
			ep.breaker = NewBreaker(named{eo.Backend, name}, bo, logger)
			r.metrics.breaker.WithLabelValues(name).Set(float64(StateClosed))
			m.endpoints = append(m.endpoints, ep)
			m.total += w
			r.breakers = append(r.breakers, ep)
		}
		r.models[mo.Name] = m
		r.order = append(r.order, m)
	}
	for _, m := range r.order {
		m.chain = []*model{m}
		seen := map[string]bool{m.opts.Name: true}
		for _, f := range m.opts.Fallbacks {
			fm, ok := r.models[f]
			if !ok {
				return nil, fmt.Errorf("llm.models: %s: fallback %q is not a model", m.opts.Name, f)
			}
			if !seen[f] {
				seen[f] = true
				m.chain = append(m.chain, fm)
			}
		}
	}
	r.def = r.order[0]
	if opts.Default != "" {
		d, ok := r.models[opts.Default]
		if !ok {
			return nil, fmt.Errorf("llm.default_model: %q is not a model", opts.Default)
		}
		r.def = d
	}
	return r, nil
}

// named gives a backend the name of its model's endpoint.
type named struct {
	Backend
	name string
}

func (n named) Name() string { return n.name }

// Name returns "router".
func (r *Router) Name() string { return "router" }

// ModelInfo describes a model for the model list.
type ModelInfo struct {
	ID      string
	OwnedBy string
	// ContextTokens is the model's window, 0 when unlimited.
	ContextTokens int
}

// Models lists the models, the default first.
func (r *Router) Models() []ModelInfo {
	out := []ModelInfo{{ID: r.def.opts.Name, OwnedBy: r.def.opts.OwnedBy, ContextTokens: r.def.opts.ContextTokens}}
	for _, m := range r.order {
		if m != r.def {
			out = append(out, ModelInfo{ID: m.opts.Name, OwnedBy: m.opts.OwnedBy, ContextTokens: m.opts.ContextTokens})
		}
	}
	return out
}

// Default is the name of the default model.
func (r *Router) Default() string { return r.def.opts.Name }

// Breakers reports every endpoint's circuit state by endpoint name: the
// model's name, with "#n" when it has several endpoints.
func (r *Router) Breakers() map[string]string {
	out := make(map[string]string, len(r.breakers))
	for _, ep := range r.breakers {
		out[ep.name] = ep.breaker.State().String()
	}
	return out
}

var tracer = otel.Tracer("github.com/botfleet/botfleet/pkg/llm")

// Complete answers req with its model (ErrModelNotFound if there is none):
// an endpoint of the model picked by weight among those whose breaker is
// not open, the next endpoint when one is unavailable, then the model's
// fallbacks in order — as long as nothing of the reply was streamed. The
// prompt is fitted to each model's context window first; when the new
// message fits none, the error is ErrContextLength.
func (r *Router) Complete(ctx context.Context, req Request) (Reply, error) {
	m := r.def
	if req.Model != "" {
		var ok bool
		if m, ok = r.models[req.Model]; !ok {
			return Reply{}, ErrModelNotFound.With(fmt.Sprintf("the model %q does not exist; GET /v1/models lists the models", req.Model))
		}
	}
	var streamed atomic.Bool
	start := time.Now()
	if sink := req.Stream; sink != nil {
		req.Stream = func(d string) error {
			if !streamed.Swap(true) {
				r.metrics.ttft.WithLabelValues(m.opts.Name).Observe(time.Since(start).Seconds())
			}
			return sink(d)
		}
	}
	var failures []error
	for i, cand := range m.chain {
		fitted, err := cand.fit(req)
		if err != nil {
			failures = append(failures, err)
			continue
		}
		if i > 0 {
			r.log.WarnContext(ctx, "llm: model unavailable, answering from its fallback",
				"model", m.opts.Name, "fallback", cand.opts.Name, "err", failures[len(failures)-1])
			r.metrics.fallbacks.WithLabelValues(m.opts.Name, cand.opts.Name).Inc()
		}
		for _, ep := range cand.pick() {
			reply, err := r.call(ctx, ep, fitted)
			if err == nil {
				reply.Fallback = i > 0
				return reply, nil
			}
			if streamed.Load() || ctx.Err() != nil || !errors.Is(err, ErrUnavailable) {
				return Reply{}, err
			}
			failures = append(failures, err)
		}
	}
	// Every failure stays in the chain; the first one classifies it.
	return Reply{}, errors.Join(failures...)
}

// call asks one endpoint, traced and measured.
func (r *Router) call(ctx context.Context, ep *endpoint, req Request) (Reply, error) {
	ctx, span := tracer.Start(ctx, "llm.complete", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("llm.model", ep.model), attribute.String("llm.endpoint", ep.name),
			attribute.Int("llm.messages", len(req.Messages)), attribute.Bool("llm.stream", req.Stream != nil)))
	defer span.End()
	start := time.Now()
	reply, err := ep.breaker.Complete(ctx, req)
	outcome := "ok"
	if err != nil {
		outcome = fault.Of(err).Code
		span.SetStatus(codes.Error, err.Error())
	} else {
		r.metrics.tokens.WithLabelValues(ep.model, "prompt").Add(float64(reply.Usage.PromptTokens))
		r.metrics.tokens.WithLabelValues(ep.model, "completion").Add(float64(reply.Usage.CompletionTokens))
	}
	r.metrics.duration.WithLabelValues(ep.model, ep.name, outcome).Observe(time.Since(start).Seconds())
	return reply, err
}

// pick orders the model's endpoints for one call: those whose breaker is
// not open first, each drawn by weight from those left; open ones last
// (their breaker refuses at once, so an all-open model fails fast).
func (m *model) pick() []*endpoint {
	if len(m.endpoints) == 1 {
		return m.endpoints
	}
	var up, down []*endpoint
	for _, ep := range m.endpoints {
		if ep.breaker.State() == StateOpen {
			down = append(down, ep)
		} else {
			up = append(up, ep)
		}
	}
	out := make([]*endpoint, 0, len(m.endpoints))
	for len(up) > 0 {
		total := 0
		for _, ep := range up {
			total += ep.weight
		}
		n := rand.IntN(total)
		for i, ep := range up {
			if n < ep.weight {
				out = append(out, ep)
				up = append(up[:i], up[i+1:]...)
				break
			}
			n -= ep.weight
		}
	}
	sort.SliceStable(down, func(i, j int) bool { return down[i].weight > down[j].weight })
	return append(out, down...)
}
