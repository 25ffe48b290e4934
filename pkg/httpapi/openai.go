package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"
)

// errRestarted ends an OpenAI stream whose turn began anew on another
// instance: the client sends the request again (same Idempotency-Key).
var errRestarted = fault.New(http.StatusServiceUnavailable, "stream_interrupted",
	"the instance producing the reply died and another one started it over; send the request again with the same Idempotency-Key", fault.Retry(time.Second))

// completionRequest is OpenAI's chat completion request; members we do not
// use are accepted and ignored (clients send many).
type completionRequest struct {
	Model               string          `json:"model"`
	Messages            []openaiMessage `json:"messages"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                jsontext.Value  `json:"stop"`
	User                string          `json:"user"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`

	stop []string
	text []string // each message's text
}

type openaiMessage struct {
	Role    string         `json:"role"`
	Content jsontext.Value `json:"content"`
}

// contentPart is one part of a message's content given as an array.
type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func (r *completionRequest) valid(s *Server) error {
	bad := func(param, format string, args ...any) error {
		return newError(http.StatusBadRequest, "invalid_request", param+": "+fmt.Sprintf(format, args...))
	}
	if len(r.Messages) == 0 {
		return bad("messages", "must hold at least one message")
	}
	if r.N != nil && *r.N != 1 {
		return bad("n", "only one choice (n: 1) is supported")
	}
	for _, t := range []struct {
		name string
		v    *float64
		max  float64
	}{{"temperature", r.Temperature, 2}, {"top_p", r.TopP, 1}} {
		if t.v != nil && (*t.v < 0 || *t.v > t.max) {
			return bad(t.name, "must be between 0 and %v, got %v", t.max, *t.v)
		}
	}
	for _, mt := range []*int{r.MaxTokens, r.MaxCompletionTokens} {
		if mt != nil && *mt < 1 {
			return bad("max_tokens", "must be at least 1, got %d", *mt)
		}
	}
	if err := r.decodeStop(); err != nil {
		return bad("stop", "%v", err)
	}
	r.text = make([]string, len(r.Messages))
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return bad(fmt.Sprintf("messages[%d].role", i), "must be system, developer, user, assistant or tool, got %q", m.Role)
		}
		text, err := messageText(m.Content)
		if err != nil {
			return bad(fmt.Sprintf("messages[%d].content", i), "%v", err)
		}
		r.text[i] = text
	}
	last := len(r.Messages) - 1
	if r.Messages[last].Role != "user" {
		return bad(fmt.Sprintf("messages[%d].role", last), "the last message must be the user's, got %q", r.Messages[last].Role)
	}
	return s.validMessage(fmt.Sprintf("messages[%d].content", last), r.text[last])
}

// messageText is a message's text: its content string, or its text parts.
func messageText(v jsontext.Value) (string, error) {
	switch v.Kind() {
	case 0, 'n':
		return "", nil
	case '"':
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	case '[':
		var parts []contentPart
		if err := json.Unmarshal(v, &parts); err != nil {
			return "", err
		}
		var b strings.Builder
		for _, p := range parts {
			if p.Type == "text" {
				b.WriteString(p.Text)
			}
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("must be a string or an array of content parts")
}

func (r *completionRequest) decodeStop() error {
	switch r.Stop.Kind() {
	case 0, 'n':
		return nil
	case '"':
		var s string
		if err := json.Unmarshal(r.Stop, &s); err != nil {
			return err
		}
		r.stop = []string{s}
	default:
		if err := json.Unmarshal(r.Stop, &r.stop); err != nil {
			return fmt.Errorf("must be a string or an array of strings")
		}
	}
	if len(r.stop) > 4 {
		return fmt.Errorf("at most 4 sequences, got %d", len(r.stop))
	}
	return nil
}

func (r *completionRequest) params() llm.Params {
	p := llm.Params{Temperature: r.Temperature, TopP: r.TopP, Stop: r.stop}
	if r.MaxCompletionTokens != nil {
		p.MaxTokens = *r.MaxCompletionTokens
	} else if r.MaxTokens != nil {
		p.MaxTokens = *r.MaxTokens
	}
	return p
}

// chatRequest maps the OpenAI request onto a turn. With user (or an
// X-Session-Id header) the conversation lives in the fleet's memory:
// only the last message is new — the fleet's memory is the history, and
// what the client resends of it is not stored twice — and the client's
// system messages, when it sends any, replace the configured prompt.
// Without either the call is stateless: the client's messages are the
// prompt, as given.
func (r *completionRequest) chatRequest(c echo.Context, id string) chat.Request {
	last := len(r.Messages) - 1
	cr := chat.Request{ID: id, Message: r.text[last], Model: r.Model, Params: r.params(), Endpoint: "completions"}
	session := c.Request().Header.Get("X-Session-Id")
	if r.User == "" && session == "" {
		cr.Stateless = true
		if c.Request().Header.Get("Idempotency-Key") == "" {
			cr.ID = "" // only the client's own key makes a stateless call repeatable
		}
		for i, m := range r.Messages {
			role := m.Role
			switch role {
			case "developer":
				role = llm.RoleSystem
			case "tool":
				continue
			}
			cr.Prompt = append(cr.Prompt, llm.Message{Role: role, Content: r.text[i]})
		}
		return cr
	}
	cr.SessionID, cr.UserID = session, r.User
	var system []string
	for i, m := range r.Messages[:last] {
		if m.Role == "system" || m.Role == "developer" {
			system = append(system, r.text[i])
		}
	}
	cr.System = strings.Join(system, "\n\n")
	return cr
}

// completion is OpenAI's chat completion (and, as chunks, its stream).
type completion struct {
	ID      string         `json:"id"`
	Object  string         `json:"object"`
	Created int64          `json:"created"`
	Model   string         `json:"model"`
	Choices []choice       `json:"choices"`
	Usage   *openaiUsage   `json:"usage,omitempty"`
	Fleet   *fleetOfAnswer `json:"botfleet,omitempty"`
}

type choice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatMessage `json:"delta,omitempty"`
	FinishReason *string      `json:"finish_reason"`
}

type chatMessage struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

type openaiUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// fleetOfAnswer is botfleet's addition to a completion: where the turn
// landed in the conversation.
type fleetOfAnswer struct {
	Turn      int    `json:"turn,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	Instance  string `json:"instance"`
}

func usageOf(res chat.Result) *openaiUsage {
	u := res.Usage
	return &openaiUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
}

func finish(reason string) *string {
	if reason == "" {
		reason = "stop"
	}
	return &reason
}

// handleCompletions is POST /v1/chat/completions, OpenAI's chat API.
func (s *Server) handleCompletions() echo.HandlerFunc {
	return func(c echo.Context) error {
		req, err := decode[*completionRequest](s, c, lenient)
		if err != nil {
			return err
		}
		id, err := idempotencyKey(c)
		if err != nil {
			return err
		}
		creq := req.chatRequest(c, id)
		if err := s.admitTurn(c, &creq); err != nil {
			return err
		}
		cid := "chatcmpl-" + id
		if req.Stream {
			return s.streamCompletion(c, req, creq, cid)
		}
		res, err := s.turn(c, c.Request().Context(), creq)
		if err != nil {
			return err
		}
		s.turnHeaders(c, res)
		return c.JSON(http.StatusOK, completion{
			ID: cid, Object: "chat.completion", Created: res.Timestamp, Model: s.modelName(creq, res.Model),
			Choices: []choice{{Message: &chatMessage{Role: "assistant", Content: res.Reply}, FinishReason: finish(res.FinishReason)}},
			Usage:   usageOf(res),
			Fleet:   &fleetOfAnswer{Turn: res.Turn, SessionID: res.SessionID, Instance: s.deps.Instance},
		})
	}
}

// modelName is the model a completion names: the one asked for, else the
// one that answered.
func (s *Server) modelName(r chat.Request, answered string) string {
	if r.Model != "" {
		return r.Model
	}
	if answered != "" {
		return answered
	}
	return "botfleet"
}

// streamCompletion answers stream: true as OpenAI does: chat.completion.chunk
// events — the role, each piece, the finish reason, the usage (with
// stream_options.include_usage) — then "data: [DONE]"; a failure once the
// stream has begun is a last {"error": ...} event. A client that goes away
// cancels the backend call and leaves memory as it was.
func (s *Server) streamCompletion(c echo.Context, req *completionRequest, creq chat.Request, cid string) error {
	st := s.newStream(c)
	defer st.sse.close()
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	head := completion{ID: cid, Object: "chat.completion.chunk", Model: s.modelName(creq, ""), Created: time.Now().Unix()}
	chunk := func(delta *chatMessage, reason *string) completion {
		ch := head
		ch.Choices = []choice{{Delta: delta, FinishReason: reason}}
		return ch
	}
	pieces := 0
	creq.Stream = func(ev chat.Event) error {
		switch ev.Kind {
		case "start":
			if pieces > 0 {
				// The turn began anew (its instance died): OpenAI's chunks
				// cannot take back what was sent.
				return errRestarted
			}
			head.Created = ev.Start.Created
			if ev.Start.Model != "" && creq.Model == "" {
				head.Model = ev.Start.Model
			}
			return st.sse.event("", "", mustJSON(chunk(&chatMessage{Role: "assistant"}, nil)))
		case "piece":
			pieces++
			return st.sse.event("", "", mustJSON(chunk(&chatMessage{Content: ev.Text}, nil)))
		}
		return nil
	}
	res, err := s.turn(c, ctx, creq)
	if err != nil && !st.sse.Started() {
		return err
	}
	if err != nil {
		s.deps.Logger.WarnContext(ctx, "stream failed", "code", classify(err).Code, "err", err)
		_ = st.sse.event("", "", mustJSON(openaiErrorBody(classify(err))))
		return nil
	}
	_ = st.sse.event("", "", mustJSON(chunk(&chatMessage{}, finish(res.FinishReason))))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := head
		u.Choices, u.Usage = []choice{}, usageOf(res)
		_ = st.sse.event("", "", mustJSON(u))
	}
	_ = st.sse.event("", "", []byte("[DONE]"))
	return nil
}

// handleModels is GET /v1/models, in the shape Open WebUI and LobeChat read.
func (s *Server) handleModels() echo.HandlerFunc {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	return func(c echo.Context) error {
		out := struct {
			Object string  `json:"object"`
			Data   []model `json:"data"`
		}{Object: "list", Data: []model{}}
		if s.deps.Models != nil {
			for _, m := range s.deps.Models() {
				out.Data = append(out.Data, model{ID: m.ID, Object: "model", Created: s.started.Unix(), OwnedBy: m.OwnedBy})
			}
		}
		return c.JSON(http.StatusOK, out)
	}
}
