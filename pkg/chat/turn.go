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
)

// Turn runs one turn: wait for the conversation, load its history, answer
// (from the response cache on a first turn, else the backend), then append
// both messages and release the conversation. A streamed turn streams as
// it answers, and resumes a run of the same request (see the package doc).
func (s *Service) Turn(ctx context.Context, r Request) (res Result, err error) {
	start := time.Now()
	defer s.metrics.begin(&r, start)()
	defer func() { s.metrics.observe(r, res, err, time.Since(start)) }()
	if r.Stateless && r.ID == "" {
		return s.direct(ctx, r)
	}
	conv, err := s.Resolve(r)
	if err != nil {
		return Result{}, err
	}
	id := r.ID
	if id == "" {
		id = newID()
	}
	req := memory.Request{Conversation: conv.Key, ID: conv.requestID(id), Fingerprint: fingerprint(r), Follow: r.Stream != nil}
	var cacheKey string
	if s.cacheable(r) {
		cacheKey = s.cacheKey(conv, r)
		req.Peek = cacheKey
	}
	for {
		turn, err := s.store.Begin(ctx, req)
		if err != nil {
			return Result{}, err
		}
		switch {
		case turn.InProgress:
			res, err := s.follow(ctx, conv, req.ID, r)
			if err == errTakeOver {
				req.Follow = false // wait for it to finish, or take it over once its holder's lease ends
				continue
			}
			return res, err
		case turn.Replay != nil:
			return s.replay(ctx, conv, req.ID, turn.Replay, r)
		}
		return s.run(ctx, conv, req.ID, turn, r, cacheKey)
	}
}

// run answers a turn that holds its conversation, and commits it.
func (s *Service) run(ctx context.Context, conv Conversation, reqID string, turn *memory.Turn, r Request, cacheKey string) (res Result, err error) {
	// Frees the conversation on every way out but Commit — an error, or a
	// backend that panics — instead of renewing its lease forever; a no-op
	// after Commit.
	defer turn.Abort()
	var w *streamRun
	defer func() {
		if err != nil {
			w.fail(err)
		}
	}()
	var put *memory.Put
	if cacheKey != "" && turn.Number == 1 {
		s.metrics.lookedUp(turn.Peeked != nil)
	}
	if turn.Number == 1 && turn.Peeked != nil && json.Unmarshal(turn.Peeked, &res) == nil {
		res.Backend = "cache"
	} else {
		if r.Stream != nil {
			if w, err = s.startStream(ctx, conv, reqID, r, turn.Number); err != nil {
				return Result{}, err
			}
		}
		req := s.llmRequest(turn.History, r, w)
		reply, err := s.backend.Complete(ctx, req)
		if err != nil {
			return Result{}, err
		}
		res = resultOf(reply, req.Messages)
		if turn.Number == 1 && cacheKey != "" && !reply.Fallback {
			b, _ := json.Marshal(res)
			put = &memory.Put{Key: cacheKey, Value: b, TTL: s.opts.CacheTTL}
		}
	}
	now := s.now()
	res.Timestamp, res.Turn, res.SessionID = now.Unix(), turn.Number, conv.SessionID
	payload, _ := json.Marshal(res)
	if err := turn.Commit(context.WithoutCancel(ctx), r.Message, res.Reply, now, payload, put, w.end(res)...); err != nil {
		return Result{}, err
	}
	return res, nil
}

// direct answers a stateless turn that no id makes repeatable: the
// backend alone, no Redis at all.
func (s *Service) direct(ctx context.Context, r Request) (Result, error) {
	var w *streamRun
	if r.Stream != nil {
		w = &streamRun{emit: r.Stream, attempt: 1}
		if err := w.start(s.start(r, 0, 1)); err != nil {
			return Result{}, err
		}
	}
	req := s.llmRequest(nil, r, w)
	reply, err := s.backend.Complete(ctx, req)
	if err != nil {
		return Result{}, err
	}
	res := resultOf(reply, req.Messages)
	res.Timestamp = s.now().Unix()
	return res, nil
}

// resultOf is a turn's result from its reply. A backend that reports no
// usage (the builtin) gets an estimate: a token per four bytes, and four
// per message.
func resultOf(reply llm.Reply, prompt []llm.Message) Result {
	res := Result{Reply: reply.Content, Confidence: reply.Confidence, Backend: reply.Backend,
		Model: reply.Model, FinishReason: reply.FinishReason, Usage: reply.Usage}
	if res.Usage == (llm.Usage{}) {
		for _, m := range prompt {
			res.Usage.PromptTokens += 4 + (len(m.Content)+3)/4
		}
		res.Usage.CompletionTokens = (len(reply.Content) + 3) / 4
	}
	return res
}

// llmRequest is the backend's request: the system prompt, the history and
// the message — or a stateless turn's own prompt — streamed into w.
func (s *Service) llmRequest(history []memory.Entry, r Request, w *streamRun) llm.Request {
	req := llm.Request{Model: r.Model, Params: r.Params}
	if r.Stateless {
		req.Messages = r.Prompt
	} else {
		req.Messages = s.prompt(history, r)
	}
	if w != nil {
		req.Stream = w.piece
	}
	return req
}

func (s *Service) prompt(history []memory.Entry, r Request) []llm.Message {
	msgs := make([]llm.Message, 0, len(history)+2)
	system := s.opts.SystemPrompt
	if r.System != "" {
		system = r.System
	}
	if system != "" {
		msgs = append(msgs, llm.Message{Role: llm.RoleSystem, Content: system})
	}
	for _, e := range history {
		msgs = append(msgs, llm.Message{Role: e.Role, Content: e.Content})
	}
	return append(msgs, llm.Message{Role: llm.RoleUser, Content: r.Message, Images: r.Images})
}

// cacheable tells the turns the response cache may answer: a plain first
// turn with the configured prompt and sampling.
func (s *Service) cacheable(r Request) bool {
	return s.opts.CacheTTL > 0 && r.Stream == nil && !r.Stateless && r.System == "" && len(r.Images) == 0 &&
		r.Params.Temperature == nil && r.Params.TopP == nil && r.Params.MaxTokens == 0 && len(r.Params.Stop) == 0
}

// cacheKey hashes the message, exactly as sent but for surrounding white
// space, with the model, the system prompt and the conversation's tenant
// (or platform): a cached reply is only ever handed to a caller of the
// same tenant who sent that very text.
func (s *Service) cacheKey(c Conversation, r Request) string {
	model := r.Model
	if model == "" {
		model = s.opts.Model
	}
	h := sha256.New()
	h.Write(s.cacheBase)
	for _, part := range []string{model, c.namespace, strings.TrimSpace(r.Message)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return s.prefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// fingerprint identifies a request's content for idempotency: the message,
// and a stateless turn's whole prompt.
func fingerprint(r Request) string {
	h := fnv.New64a()
	h.Write([]byte(r.Message))
	for _, m := range r.Prompt {
		fmt.Fprintf(h, "\x00%s\x00%s", m.Role, m.Content)
	}
	return strconv.FormatUint(h.Sum64(), 36)
}
