// Package chat runs a chat turn: the conversation's memory and lock from
// memory.Store, the first-turn response cache, the LLM backend and, for a
// streamed turn, its resumable stream (pkg/stream).
//
// A turn's conversation comes from what the caller knows (Resolve); its
// errors are classified (pkg/fault) where they are made, and every turn is
// counted here, whoever asked for it (metrics.go).
//
// A streamed turn (Request.Stream set) sends its events as the backend
// makes them — a start, then the pieces of the reply — and writes them to
// Redis as it goes, so that the same request again (the same request id:
// the client's Idempotency-Key) resumes it on any instance: while the turn
// runs elsewhere it is followed live, once it is done it is replayed, and
// when its instance died it is run again from the start, as the stream's
// next attempt, once the memory lease has run out. The conversation gets
// the turn exactly once, at the end, in the commit round trip.
package chat

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/stream"
	"github.com/prometheus/client_golang/prometheus"
)

// Backend answers a prompt; llm's backends and its Router are ones.
type Backend interface {
	Name() string
	Complete(ctx context.Context, req llm.Request) (llm.Reply, error)
}

// Options tune a Service. Zero values take the defaults named.
type Options struct {
	// SystemPrompt starts every prompt; empty sends none.
	SystemPrompt string
	// Model names the model of a request that names none, in the response
	// cache key and in streamed turns' start.
	Model string
	// CacheTTL keeps first-turn replies in the response cache; 0 disables it.
	CacheTTL time.Duration
	// DefaultScope is the scope of a request that names none (see
	// Resolve). Default ScopeMember.
	DefaultScope string
	// Streams keeps streamed turns resumable; nil streams them to their
	// caller only.
	Streams *stream.Store
	// Instance names this instance in streamed turns' start.
	Instance string
	// Registerer, when set, gets the service's metrics (see metrics.go).
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	if o.DefaultScope == "" {
		o.DefaultScope = ScopeMember
	}
}

// Service runs chat turns. It is safe for concurrent use.
type Service struct {
	store   *memory.Store
	backend Backend
	opts    Options
	// cacheBase is the cache key's prefix, hashed prompt and model included.
	cacheBase []byte
	prefix    string
	now       func() time.Time
	metrics   *metrics
}

// New returns a Service that keeps memory in store and asks backend.
func New(store *memory.Store, backend Backend, opts Options) *Service {
	opts.setDefaults()
	h := sha256.Sum256([]byte(opts.SystemPrompt))
	return &Service{
		store: store, backend: backend, opts: opts,
		cacheBase: h[:8], prefix: store.Options().Prefix + ":cache:", now: time.Now,
		metrics: newMetrics(opts.Registerer),
	}
}

// Request is one user message, with what the caller knows of who sent it
// and where; Resolve turns that into the conversation.
type Request struct {
	// Tenant owns the conversation on the HTTP API (an API key's tenant);
	// empty is DefaultTenant. IM platforms are their own tenants.
	Tenant string
	// Platform is the IM platform the message came from; empty for the
	// HTTP API.
	Platform string
	// Scope, SessionID, UserID and GroupID choose the conversation.
	Scope, SessionID, UserID, GroupID string
	// ID makes the turn idempotent: a repeat returns the first result. It
	// is namespaced like the conversation, so ids chosen by clients and
	// by platforms never meet. Empty makes the turn not repeatable.
	ID string
	// Message is the user's text.
	Message string
	// Images are pictures sent with the message: the model gets them when
	// it takes image input (llm.ModelOptions.Images); memory keeps the
	// text alone, so a caller names them in Message (as the IM pipeline
	// does) when later turns should know. A turn with images is never
	// answered from the response cache.
	Images []llm.Image
	// Endpoint labels the turn in metrics: "chat", "completions", "im".
	Endpoint string

	// Model is the model to ask; empty is Options.Model's. Params are the
	// caller's sampling parameters.
	Model  string
	Params llm.Params
	// System, when set, is this turn's system prompt instead of
	// Options.SystemPrompt.
	System string
	// Stateless turns use Prompt as the whole prompt, as the client sent
	// it, instead of a conversation's memory: nothing is kept but, when ID
	// is set, the turn's outcome under that id (so a repeat replays it).
	Stateless bool
	Prompt    []llm.Message

	// Stream, when set, streams the turn: it gets the turn's events as
	// they happen (see Event). An error from it ends the turn (and the
	// backend call) with that error.
	Stream func(Event) error
	// After is the id of the last event the caller has (SSE's
	// Last-Event-ID): a resumed stream sends what comes after it.
	After string
}

// Event is an event of a streamed turn: "start" (with Start) and then
// "piece"s (with Text), each with an id to resume after. A start means the
// reply begins anew: one that follows pieces (the turn's instance died and
// another runs it again) makes them void.
type Event struct {
	Kind  string
	ID    string
	Text  string
	Start Start
}

// Start describes a streamed turn as it begins.
type Start struct {
	Turn      int    `json:"turn"`
	SessionID string `json:"session_id,omitempty"`
	Model     string `json:"model"`
	// Created is when the turn began, Unix seconds.
	Created  int64  `json:"created"`
	Instance string `json:"instance,omitempty"`
	// Attempt counts the runs of the turn; 0 for a stored reply replayed
	// after its stream expired.
	Attempt int `json:"attempt"`
}

// Result is a turn's outcome.
type Result struct {
	Reply      string  `json:"reply"`
	Confidence float64 `json:"confidence"`
	// Timestamp is when the reply was made, in Unix seconds.
	Timestamp int64 `json:"timestamp"`
	// Backend names what answered: a backend name or "cache".
	Backend string `json:"backend"`
	// Model is the model that answered; FinishReason why the reply ended;
	// Usage its tokens.
	Model        string    `json:"model,omitempty"`
	FinishReason string    `json:"finish_reason,omitempty"`
	Usage        llm.Usage `json:"usage"`
	// Turn is the turn's 1-based number in the conversation; 0 for a
	// stateless turn.
	Turn int `json:"-"`
	// Replayed is true when the request had finished before.
	Replayed bool `json:"-"`
	// SessionID names the conversation again (Conversation.SessionID).
	SessionID string `json:"-"`
}

// Inspect returns the conversation r names and what it holds, for an
// operator; it changes nothing.
func (s *Service) Inspect(ctx context.Context, r Request) (Conversation, memory.Info, error) {
	conv, err := s.Resolve(r)
	if err != nil {
		return conv, memory.Info{}, err
	}
	info, err := s.store.Inspect(ctx, conv.Key)
	return conv, info, err
}

// Clear forgets the memory of the conversation r names; it reports whether
// there was any.
func (s *Service) Clear(ctx context.Context, r Request) (Conversation, bool, error) {
	conv, err := s.Resolve(r)
	if err != nil {
		return conv, false, err
	}
	had, err := s.store.Clear(ctx, conv.Key)
	return conv, had, err
}

// History returns the memory of the conversation r names, oldest first.
func (s *Service) History(ctx context.Context, r Request) ([]memory.Entry, error) {
	conv, err := s.Resolve(r)
	if err != nil {
		return nil, err
	}
	return s.store.History(ctx, conv.Key)
}
