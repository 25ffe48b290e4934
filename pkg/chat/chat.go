// Package chat runs a chat turn: the conversation's memory and lock from
// memory.Store, the first-turn response cache, and the LLM backend.
package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/prometheus/client_golang/prometheus"
)

// Backend answers a prompt; llm's backends, breaker and fallback are ones.
type Backend interface {
	Name() string
	Complete(ctx context.Context, req llm.Request) (llm.Reply, error)
}

// Options tune a Service. Zero values take the defaults named.
type Options struct {
	// SystemPrompt starts every prompt; empty sends none.
	SystemPrompt string
	// Model names the model in the response cache key.
	Model string
	// CacheTTL keeps first-turn replies in the response cache; 0 disables it.
	CacheTTL time.Duration
	// DefaultScope is the scope of a request that names none (see
	// Resolve). Default ScopeMember.
	DefaultScope string
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
	h := sha256.Sum256([]byte(opts.Model + "\x00" + opts.SystemPrompt))
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
	// Endpoint labels the turn in metrics: "chat", "completions", "im".
	Endpoint string
}

// Result is a turn's outcome.
type Result struct {
	Reply      string  `json:"reply"`
	Confidence float64 `json:"confidence"`
	// Timestamp is when the reply was made, in Unix seconds.
	Timestamp int64 `json:"timestamp"`
	// Backend names what answered: a backend name or "cache".
	Backend string `json:"backend"`
	// Turn is the turn's 1-based number in the conversation.
	Turn int `json:"-"`
	// Replayed is true when the request had finished before.
	Replayed bool `json:"-"`
	// SessionID names the conversation again (Conversation.SessionID).
	SessionID string `json:"-"`
}

// Turn runs one turn: wait for the conversation, load its history, answer
// (from the response cache on a first turn, else the backend), then append
// both messages and release the conversation.
func (s *Service) Turn(ctx context.Context, r Request) (res Result, err error) {
	defer func(start time.Time) { s.metrics.observe(r, res, err, time.Since(start)) }(time.Now())
	conv, err := s.Resolve(r)
	if err != nil {
		return Result{}, err
	}
	id := r.ID
	if id == "" {
		id = newID()
	}
	req := memory.Request{Conversation: conv.Key, ID: conv.requestID(id), Fingerprint: fingerprint(r.Message)}
	var cacheKey string
	if s.opts.CacheTTL > 0 {
		cacheKey = s.cacheKey(conv, r.Message)
		req.Peek = cacheKey
	}
	turn, err := s.store.Begin(ctx, req)
	if err != nil {
		return Result{}, err
	}
	// Frees the conversation on every way out but Commit — an error, or a
	// backend that panics — instead of renewing its lease forever; a no-op
	// after Commit and for a replay.
	defer turn.Abort()
	if turn.Replay != nil {
		if err := json.Unmarshal(turn.Replay.Payload, &res); err != nil {
			return Result{}, fmt.Errorf("chat: stored reply of request %s: %w", r.ID, err)
		}
		res.Turn, res.Replayed, res.SessionID = turn.Replay.Turn, true, conv.SessionID
		return res, nil
	}
	var put *memory.Put
	if turn.Number == 1 && turn.Peeked != nil && json.Unmarshal(turn.Peeked, &res) == nil {
		res.Backend = "cache"
	} else {
		reply, err := s.backend.Complete(ctx, llm.Request{Messages: s.prompt(turn.History, r.Message)})
		if err != nil {
			return Result{}, err
		}
		res = Result{Reply: reply.Content, Confidence: reply.Confidence, Backend: reply.Backend}
		if turn.Number == 1 && cacheKey != "" && !reply.Fallback {
			b, _ := json.Marshal(res)
			put = &memory.Put{Key: cacheKey, Value: b, TTL: s.opts.CacheTTL}
		}
	}
	now := s.now()
	res.Timestamp, res.Turn = now.Unix(), turn.Number
	payload, _ := json.Marshal(res)
	if err := turn.Commit(context.WithoutCancel(ctx), r.Message, res.Reply, now, payload, put); err != nil {
		return Result{}, err
	}
	res.SessionID = conv.SessionID
	return res, nil
}

// History returns the memory of the conversation r names, oldest first.
func (s *Service) History(ctx context.Context, r Request) ([]memory.Entry, error) {
	conv, err := s.Resolve(r)
	if err != nil {
		return nil, err
	}
	return s.store.History(ctx, conv.Key)
}

func (s *Service) prompt(history []memory.Entry, message string) []llm.Message {
	msgs := make([]llm.Message, 0, len(history)+2)
	if s.opts.SystemPrompt != "" {
		msgs = append(msgs, llm.Message{Role: llm.RoleSystem, Content: s.opts.SystemPrompt})
	}
	for _, e := range history {
		msgs = append(msgs, llm.Message{Role: e.Role, Content: e.Content})
	}
	return append(msgs, llm.Message{Role: llm.RoleUser, Content: message})
}

// cacheKey hashes the message, exactly as sent but for surrounding white
// space, with the model, the system prompt and the conversation's tenant
// (or platform): a cached reply is only ever handed to a caller of the
// same tenant who sent that very text.
func (s *Service) cacheKey(c Conversation, message string) string {
	h := sha256.New()
	h.Write(s.cacheBase)
	h.Write([]byte(c.namespace))
	h.Write([]byte{0})
	h.Write([]byte(strings.TrimSpace(message)))
	return s.prefix + hex.EncodeToString(h.Sum(nil)[:16])
}

func fingerprint(message string) string {
	h := fnv.New64a()
	h.Write([]byte(message))
	return strconv.FormatUint(h.Sum64(), 36)
}
